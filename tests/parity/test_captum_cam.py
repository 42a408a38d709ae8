"""The CAM family, guided backprop and deconvnet vs Captum (and a torch CAM / Grad-CAM++) on twins.

Two networks, each with identical weights in JAX and torch, ReLUs as ``nn.ReLU`` modules on the
torch side (Captum's GuidedBackprop/Deconvolution hook those modules):

* a GAP twin defined here: conv(valid) ReLU, conv ReLU, avgpool 2, conv ReLU, global average
  pooling, dense; on 14 x 14 inputs the last convolution is 6 x 6, so resizing to the input is by
  a non-integer factor. JAX side: a Flax Linen model tapped by path (``block3/conv`` is torch's
  ``conv3``, ``block3`` its ReLU ``act3``, the pooled layer);
* the benchmark CNN of benchmarks/twins.py (flatten + dense head), as a plain JAX function.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

from captum.attr import (  # noqa: E402
    Deconvolution,
    GuidedBackprop,
    GuidedGradCam,
    LayerAttribution,
    LayerGradCam,
    NeuronDeconvolution,
    NeuronGuidedBackprop,
)

import jaxplain as jx  # noqa: E402
from tests import twins

pytestmark = pytest.mark.parity

SIZE, CLASSES, N = 14, 5, 4
WIDTHS = (4, 6, 6)


class _Block(nn.Module):
    features: int
    padding: str

    @nn.compact
    def __call__(self, x):
        return nn.relu(nn.Conv(self.features, (3, 3), padding=self.padding, name="conv")(x))


class GapNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = _Block(WIDTHS[0], "VALID", name="block1")(x)
        h = _Block(WIDTHS[1], "SAME", name="block2")(h)
        h = nn.avg_pool(h, (2, 2), (2, 2))
        h = _Block(WIDTHS[2], "SAME", name="block3")(h)
        return nn.Dense(CLASSES, name="fc")(jnp.mean(h, axis=(1, 2)))


def _torch_gap_twin(p):
    from torch import nn as tnn

    def conv(q, padding):
        w = np.asarray(q["kernel"])  # HWIO -> OIHW
        m = tnn.Conv2d(w.shape[2], w.shape[3], 3, padding=padding)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))))
            m.bias.copy_(torch.from_numpy(np.asarray(q["bias"])))
        return m

    class TorchGapNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.act1 = conv(p["block1"]["conv"], 0), tnn.ReLU()
            self.conv2, self.act2 = conv(p["block2"]["conv"], 1), tnn.ReLU()
            self.pool = tnn.AvgPool2d(2)
            self.conv3, self.act3 = conv(p["block3"]["conv"], 1), tnn.ReLU()
            self.fc = tnn.Linear(WIDTHS[2], CLASSES)
            with torch.no_grad():
                w = np.ascontiguousarray(np.asarray(p["fc"]["kernel"]).T)
                self.fc.weight.copy_(torch.from_numpy(w))
                self.fc.bias.copy_(torch.from_numpy(np.asarray(p["fc"]["bias"])))

        def forward(self, x):  # (N, 3, H, W)
            h = self.pool(self.act2(self.conv2(self.act1(self.conv1(x)))))
            h = self.act3(self.conv3(h))
            return self.fc(h.mean(dim=(2, 3)))

    return TorchGapNet().eval()


@pytest.fixture(scope="module")
def gap():
    model = GapNet()
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))
    rng = np.random.default_rng(7)

    def init(s):
        fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 10
        return (rng.normal(size=s.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    v = jax.tree_util.tree_map(init, shapes)
    f = lambda x, t: model.apply(v, x[None])[0, t]
    tm = _torch_gap_twin(v["params"])
    xs = rng.normal(size=(N, SIZE, SIZE, 3)).astype(np.float32)
    ts = np.array([0, 2, 4, 1])
    ours = jnp.asarray(model.apply(v, jnp.asarray(xs)))
    theirs = tm(torch.from_numpy(twins.nhwc_to_nchw(xs))).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)  # the twins agree
    return dict(f=f, torch=tm, xs=xs, ts=ts, x_t=torch.from_numpy(twins.nhwc_to_nchw(xs)))


@pytest.fixture(scope="module")
def cnn():
    apply, params, tm = twins.make_twins(3, size=8, channels=(4, 6, 6, 6))
    a, conv, pool = jax.nn.relu, twins._conv, twins._avgpool2

    def features(x):  # up to conv3's output, pre-activation (torch: model.conv3)
        h = pool(a(conv(a(conv(x[None], params["w1"], params["b1"])), params["w2"], params["b2"])))
        return conv(h, params["w3"], params["b3"])

    def head(h, t):
        h = pool(a(conv(a(h), params["w4"], params["b4"])))
        return (h.reshape(1, -1) @ params["wd"] + params["bd"])[0, t]

    xs = np.asarray(jax.random.normal(jax.random.key(4), (N, 8, 8, 3)), np.float32)
    ts = np.array([0, 3, 7, 9])
    return dict(f=twins.logit_fn(apply, params), features=features, head=head, torch=tm.eval(),
                xs=xs, ts=ts, x_t=torch.from_numpy(twins.nhwc_to_nchw(xs)))


def _close(ours, theirs):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def _batch(ex, d):
    return np.asarray(jax.jit(jax.vmap(ex))(jnp.asarray(d["xs"]), jnp.asarray(d["ts"])))


def _nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _grad_cam_torch(d, module, relu):
    out = LayerGradCam(d["torch"], module).attribute(
        d["x_t"], target=torch.tensor(d["ts"]), relu_attributions=relu
    )
    return out  # (N, 1, h, w)


def test_grad_cam_matches_layer_grad_cam(gap):
    tm = gap["torch"]
    for path, module in (("block3/conv", tm.conv3), ("block3", tm.act3), ("block1", tm.act1)):
        for relu in (False, True):
            theirs = _grad_cam_torch(gap, module, relu)
            ours = _batch(jx.grad_cam(gap["f"], layer=path, relu=relu, upsample=False), gap)
            _close(ours, theirs.detach().numpy()[:, 0])
            # upsample=True: Captum's map through LayerAttribution.interpolate(..., "bilinear").
            up = LayerAttribution.interpolate(theirs, (SIZE, SIZE), interpolate_mode="bilinear")
            ours = _batch(jx.grad_cam(gap["f"], layer=path, relu=relu), gap)
            _close(ours, up.detach().numpy()[:, 0])


def test_cam_matches_zhou_et_al_in_torch_and_grad_cam_times_hw(gap):
    tm, hw = gap["torch"], 6 * 6
    acts = []
    handle = tm.conv3.register_forward_hook(lambda m, i, o: acts.append(torch.relu(o).detach()))
    with torch.no_grad():
        tm(gap["x_t"])
    handle.remove()
    weights = tm.fc.weight.detach()[torch.tensor(gap["ts"])][:, :, None, None]  # (N, K, 1, 1)
    zhou = (weights * acts[0]).sum(dim=1, keepdim=True)  # M_c = sum_k w_k^c f_k, no bias
    plain = _batch(jx.cam(gap["f"], layer="block3", relu=False, upsample=False), gap)
    _close(plain, zhou.numpy()[:, 0])
    shown = torch.nn.functional.interpolate(torch.relu(zhou), size=(SIZE, SIZE), mode="bilinear",
                                            align_corners=False)  # the lecture's display recipe
    _close(_batch(jx.cam(gap["f"], layer="block3"), gap), shown.numpy()[:, 0])
    lgc = _grad_cam_torch(gap, tm.act3, False).detach().numpy()[:, 0]
    _close(_batch(jx.cam(gap["f"], layer="block3", relu=False, upsample=False), gap), lgc * hw)


def test_grad_cam_plus_plus_matches_a_torch_implementation(gap):
    # pytorch-grad-cam's GradCAMPlusPlus weights (Chattopadhyay et al. eq. 19), written in torch on
    # torch autograd's gradients at act3, in float64, with alpha = 0 where the gradient is 0 (the
    # library adds 1e-6 to the denominator instead).
    tm = gap["torch"]
    store = {}

    def hook(m, i, o):
        o.retain_grad()
        store["a"] = o

    handle = tm.act3.register_forward_hook(hook)
    out = tm(gap["x_t"])
    handle.remove()
    out[torch.arange(N), torch.tensor(gap["ts"])].sum().backward()
    a, g = store["a"].detach().double(), store["a"].grad.double()
    g2, g3 = g**2, g**3
    denom = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where((g != 0) & (denom != 0), g2 / torch.where(denom != 0, denom, 1.0), 0.0)
    w = (alpha * torch.relu(g)).sum(dim=(2, 3), keepdim=True)
    ref = (w * a).sum(dim=1).numpy()
    ex = jx.grad_cam_plus_plus(gap["f"], layer="block3", relu=False, upsample=False)
    _close(_batch(ex, gap), ref)


@pytest.mark.parametrize(
    "ours, theirs",
    [(jx.guided_backprop, GuidedBackprop), (jx.deconvnet, Deconvolution)],
    ids=["guided_backprop", "deconvnet"],
)
def test_modified_relu_backprop_matches_captum(gap, cnn, ours, theirs):
    for d in (gap, cnn):  # a Flax Linen closure, and a plain JAX function
        ref = theirs(d["torch"]).attribute(d["x_t"], target=torch.tensor(d["ts"]))
        out = _batch(ours(d["f"]), d)
        _close(out, _nhwc(ref))
        assert not np.allclose(out, _batch(jx.gradient(d["f"]), d), rtol=1e-3)


def test_guided_grad_cam_matches_captum(gap, cnn):
    for mode in ("nearest", "bilinear"):
        # GAP twin: conv3 is 6 x 6 for a 14 x 14 input (torch's nearest rule at a 7/3 factor).
        ref = GuidedGradCam(gap["torch"], gap["torch"].conv3).attribute(
            gap["x_t"], target=torch.tensor(gap["ts"]), interpolate_mode=mode
        )
        ex = jx.guided_grad_cam(gap["f"], layer="block3/conv", interpolation=mode)
        _close(_batch(ex, gap), _nhwc(ref))
    ref = GuidedGradCam(cnn["torch"], cnn["torch"].conv3)
    ref = ref.attribute(cnn["x_t"], target=torch.tensor(cnn["ts"]))
    _close(_batch(jx.guided_grad_cam(features=cnn["features"], head=cnn["head"]), cnn), _nhwc(ref))


def test_grad_cam_per_channel_and_on_a_dense_layer_match_layer_grad_cam(gap):
    """attr_dim_summation=False (one map per channel, channels last here) and a non-spatial
    layer (the dense output: each unit weighted by its own gradient)."""
    tm, t = gap["torch"], torch.tensor(gap["ts"])
    theirs = LayerGradCam(tm, tm.conv3).attribute(gap["x_t"], target=t, attr_dim_summation=False)
    ours = _batch(jx.grad_cam(gap["f"], layer="block3/conv", relu=False, upsample=False,
                              attr_dim_summation=False), gap)
    _close(ours, _nhwc(theirs))
    up = LayerAttribution.interpolate(theirs, (SIZE, SIZE), interpolate_mode="bilinear")
    ours = _batch(jx.grad_cam(gap["f"], layer="block3/conv", relu=False,
                              attr_dim_summation=False), gap)
    _close(ours, _nhwc(up))
    for summed in (True, False):
        theirs = LayerGradCam(tm, tm.fc).attribute(gap["x_t"], target=t, attr_dim_summation=summed)
        ours = _batch(jx.grad_cam(gap["f"], layer="fc", relu=False, upsample=False,
                                  attr_dim_summation=summed), gap)
        _close(ours, theirs.detach().numpy()[:, 0] if summed else theirs.detach().numpy())


def test_a_sequence_map_is_resized_as_torchs_linear_interpolation():
    """grad_cam on an (L, K) layer upsamples its (L,) map to x's length like
    torch.nn.functional.interpolate(mode="linear", align_corners=False)."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(11, 2)), jnp.float32)
    pool = lambda v: v.reshape(-1)[:16].reshape(4, 4)  # (L=4, K=4) from the first 16 values
    ex = jx.grad_cam(features=pool, head=lambda a: jnp.sum(jnp.sin(a)), relu=False)
    small = jx.grad_cam(features=pool, head=lambda a: jnp.sum(jnp.sin(a)), relu=False,
                        upsample=False)(x)
    theirs = torch.nn.functional.interpolate(torch.from_numpy(np.asarray(small))[None, None],
                                             size=11, mode="linear", align_corners=False)
    np.testing.assert_allclose(ex(x), theirs.numpy()[0, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "ours, theirs",
    [(jx.neuron_guided_backprop, NeuronGuidedBackprop), (jx.neuron_deconvnet, NeuronDeconvolution)],
    ids=["guided_backprop", "deconvnet"],
)
def test_neuron_modified_relu_backprop_matches_captum(gap, cnn, ours, theirs):
    """One unit of block2's convolution (torch conv2: channel 3 at (5, 4)); of conv3 on the CNN,
    by path on the Linen twin and by features= on the plain one; and at conv3's input."""
    ref = theirs(gap["torch"], gap["torch"].conv2).attribute(gap["x_t"], neuron_selector=(3, 5, 4))
    _close(_batch(ours(gap["f"], layer="block2/conv", neuron=(0, 5, 4, 3)), gap), _nhwc(ref))
    ref = theirs(cnn["torch"], cnn["torch"].conv3).attribute(cnn["x_t"], neuron_selector=(2, 1, 3))
    out = _batch(ours(features=cnn["features"], head=cnn["head"], neuron=(0, 1, 3, 2)), cnn)
    _close(out, _nhwc(ref))
    assert not np.allclose(out, _batch(jx.neuron_gradient(features=cnn["features"], head=cnn["head"],
                                                          neuron=(0, 1, 3, 2)), cnn), rtol=1e-3)
    ref = theirs(gap["torch"], gap["torch"].conv3).attribute(
        gap["x_t"], neuron_selector=(1, 2, 2), attribute_to_neuron_input=True)
    ex = ours(gap["f"], layer="block3/conv", neuron=(0, 2, 2, 1), attribute_to_layer_input=True)
    _close(_batch(ex, gap), _nhwc(ref))


def test_grad_cam_at_a_layer_input_matches_layer_grad_cam(gap):
    """conv3's input (the pooled ReLU maps of block2), Captum's attribute_to_layer_input."""
    tm = gap["torch"]
    theirs = LayerGradCam(tm, tm.conv3).attribute(gap["x_t"], target=torch.tensor(gap["ts"]),
                                                   attribute_to_layer_input=True)
    ex = jx.grad_cam(gap["f"], layer="block3/conv", relu=False, upsample=False, attribute_to_layer_input=True)
    assert ex.options["attribute_to_layer_input"] is True
    ours = _batch(ex, gap)
    _close(ours, theirs.detach().numpy()[:, 0])
    assert ours.shape[1:] == (6, 6) and not np.allclose(
        ours, _batch(jx.grad_cam(gap["f"], layer="block3/conv", relu=False, upsample=False), gap))
