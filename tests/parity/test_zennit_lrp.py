"""Parity of ``jaxplain.lrp`` with Zennit 0.5.1 on twin models (benchmarks/twins.py,
benchmarks/resnet_twins.py).

The same weights go into a JAX model (NHWC) and a torch ``nn.Module`` (NCHW); the same images and
targets go into both. Zennit's relevance starts at the logit (``Gradient`` attributor with
``lambda out: out * one_hot``), as ours starts at ``f(x)``; its relevances are transposed
NCHW -> NHWC before comparing.

* The 4-conv CNN of twins.py (ReLU modules, 2x2 ``nn.AvgPool2d``, dense head): our
  ``epsilon_plus_flat()`` against ``EpsilonPlusFlat()`` and ``epsilon_gamma_box(low, high)``
  against ``EpsilonGammaBox(low, high)``, for images in [0, 1] (bounds 0 and 1) and standard
  normal images (per-channel bounds just outside the batch's range).
* ``jaxplain.zoo.ResNet`` with randomized BatchNorm statistics (resnet_twins.py: residual
  additions as ``zennit.layer.Sum``, global average pooling as ``nn.AdaptiveAvgPool2d``), with
  ``jx.canonizers.merge_batchnorm`` against Zennit's ``NamedMergeBatchNorm``, and without
  canonizers on either side (BatchNorm gets ``Pass`` in Zennit, ``pass_through`` here).

Tolerance: ``max |ours - Zennit| / max |Zennit| <= 1e-4`` and ``assert_allclose(rtol=1e-4,
atol=1e-4 * max |Zennit|)`` (float32 on both sides).

Known difference (``test_mean_pooling_stabilizer_is_zennits``, an expected failure while it
lasts): Zennit's ``Norm`` on an average pooling module stabilizes the *mean*,
``R_i = x_i R / (N (mean + eps))``, while jaxplain sees ``jnp.mean`` / ``nn.avg_pool`` as
``reduce_sum`` / ``reduce_window_sum`` (rule ``norm``) followed by a division that passes
relevance through, so it stabilizes the *sum*: ``x_i R / (sum + eps)``. It shows where pooled
activations are small against ``N * eps``: on a ResNet with Flax's default (LeCun) initialization
it moved relevances by up to 5e-4 (merged BatchNorm, z+) and 1.7e-3 (gamma) of their maximum; with
the stabilizer of ``reduce_sum`` set to ``N * eps`` (and Zennit's merged BatchNorm made exactly
the identity) they agreed to 1e-15 in float64. The twins here have activations of order one, where
the difference stays below 1e-5.

Zennit's merged BatchNorm keeps its ``eps`` and still divides by ``sqrt(1 + eps)``, which moves
its relevances by about 1e-5 against ours with ``merge_batchnorm``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests import resnet_twins
from tests import twins

try:
    resnet_twins.import_zennit()
except ImportError as err:  # pragma: no cover - depends on the environment
    pytest.skip(f"zennit is not importable: {err}", allow_module_level=True)

from zennit.attribution import Gradient  # noqa: E402
from zennit.canonizers import NamedMergeBatchNorm  # noqa: E402
from zennit.composites import EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat  # noqa: E402

import jaxplain as jx  # noqa: E402

pytestmark = pytest.mark.parity


def close(ours, theirs):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = np.abs(theirs).max()
    assert scale > 0
    rel = np.abs(ours - theirs).max() / scale
    assert rel <= 1e-4, f"max |ours - Zennit| / max |Zennit| = {rel:.3g}"
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale)


def zennit_relevance(module, composite, xs, ts, classes):
    """Zennit's relevance (NHWC numpy) of the logits ``ts`` of the NHWC batch ``xs``."""
    x = torch.from_numpy(twins.nhwc_to_nchw(xs)).requires_grad_(True)
    one_hot = torch.eye(classes, dtype=x.dtype)[torch.from_numpy(np.asarray(ts))]
    with Gradient(model=module, composite=composite) as attributor:
        _, relevance = attributor(x, lambda out: out * one_hot)
    return twins.nchw_to_nhwc(relevance)


def our_relevance(f, rules, xs, ts):
    return np.asarray(jax.vmap(jx.lrp(f, rules=rules))(jnp.asarray(xs), jnp.asarray(ts)))


def bounds_tensor(b):
    """Per-channel bounds (C,) -> Zennit's NCHW-broadcastable (1, C, 1, 1); scalars as tensors."""
    return torch.as_tensor(np.asarray(b, np.float32)).reshape((1, -1, 1, 1) if np.ndim(b) else ())




# ---------------------------------------------------------------------------- the 4-conv CNN

CNN_SIZE = 16
CNN_CHANNELS = (4, 6, 6, 6)
CNN_TARGETS = np.array([0, 3, 7])


@pytest.fixture(scope="module")
def cnn():
    apply, params, module = twins.make_twins(0, act="relu", size=CNN_SIZE, channels=CNN_CHANNELS)
    rng = np.random.default_rng(7)
    shape = (len(CNN_TARGETS), CNN_SIZE, CNN_SIZE, 3)
    unit = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    normal = rng.standard_normal(shape).astype(np.float32)
    return dict(
        f=twins.logit_fn(apply, params),
        module=module,
        inputs={
            # images in [0, 1], bounds 0 and 1
            "unit": (unit, 0.0, 1.0),
            # standard normal images, per-channel bounds just outside the batch's range
            "normal": (normal, normal.min(axis=(0, 1, 2)) - 0.1, normal.max(axis=(0, 1, 2)) + 0.1),
        },
    )


def test_cnn_modules_are_what_zennit_expects(cnn):
    """ReLU modules (Pass), AvgPool2d modules (Norm), the first layer a convolution."""
    from torch import nn

    module = cnn["module"]
    assert all(isinstance(getattr(module, f"act{i}"), nn.ReLU) for i in range(1, 5))
    assert isinstance(module.pool1, nn.AvgPool2d) and isinstance(module.pool2, nn.AvgPool2d)
    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers[0] is module.conv1


@pytest.mark.parametrize("data", ["unit", "normal"])
@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box"])
def test_cnn_matches_zennit(cnn, composite, data):
    xs, low, high = cnn["inputs"][data]
    if composite == "epsilon_plus_flat":
        ours_rules, theirs = jx.composites.epsilon_plus_flat(), EpsilonPlusFlat()
    else:
        ours_rules = jx.composites.epsilon_gamma_box(low=low, high=high)
        theirs = EpsilonGammaBox(low=bounds_tensor(low), high=bounds_tensor(high))
    ours = our_relevance(cnn["f"], ours_rules, xs, CNN_TARGETS)
    close(ours, zennit_relevance(cnn["module"], theirs, xs, CNN_TARGETS, classes=10))


# ---------------------------------------------------------------------------- the ResNet

RESNET_SIZE = 16
RESNET_FEATURES = (4, 8)  # stage0: identity skip; stage1: stride 2 with a projected skip
RESNET_CLASSES = 5
RESNET_TARGETS = np.array([0, 2, 4])


@pytest.fixture(scope="module")
def resnet():
    model, variables, module = resnet_twins.make_resnet_twins(
        0, features=RESNET_FEATURES, classes=RESNET_CLASSES, size=RESNET_SIZE
    )
    rng = np.random.default_rng(3)
    xs = rng.uniform(0.0, 1.0, size=(len(RESNET_TARGETS), RESNET_SIZE, RESNET_SIZE, 3))
    return dict(
        model=model,
        variables=variables,
        f=resnet_twins.logit_fn(model, variables),
        module=module,
        xs=xs.astype(np.float32),
    )


def test_resnet_twins_agree(resnet):
    """The logits agree, and merging BatchNorm changes neither side's logits."""
    xs = resnet["xs"]
    ours = np.asarray(resnet["model"].apply(resnet["variables"], jnp.asarray(xs)))
    with torch.no_grad():
        theirs = resnet["module"](torch.from_numpy(twins.nhwc_to_nchw(xs))).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * np.abs(theirs).max())
    g = jx.canonizers.merge_batchnorm(resnet["f"])
    all_logits = jax.vmap(jax.vmap(g, in_axes=(None, 0)), in_axes=(0, None))
    merged = np.asarray(jax.jit(all_logits)(jnp.asarray(xs), jnp.arange(RESNET_CLASSES)))
    np.testing.assert_allclose(merged, ours, rtol=1e-5, atol=1e-5 * np.abs(ours).max())
    # every BatchNorm of the torch twin is in Zennit's merge map
    names = dict(resnet["module"].named_modules())
    bns = {n for n, m in names.items() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {bn for _, bn in resnet_twins.merge_map(resnet["module"])} == bns


@pytest.mark.parametrize("canonize", [True, False], ids=["merge_batchnorm", "no_canonizer"])
@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box"])
def test_resnet_matches_zennit(resnet, composite, canonize):
    module, xs = resnet["module"], resnet["xs"]
    canonizers = [NamedMergeBatchNorm(resnet_twins.merge_map(module))] if canonize else None
    if composite == "epsilon_plus_flat":
        ours_rules = jx.composites.epsilon_plus_flat()
        theirs = EpsilonPlusFlat(canonizers=canonizers)
    else:
        ours_rules = jx.composites.epsilon_gamma_box(low=0.0, high=1.0)
        theirs = EpsilonGammaBox(
            low=bounds_tensor(0.0), high=bounds_tensor(1.0), canonizers=canonizers
        )
    f = jx.canonizers.merge_batchnorm(resnet["f"]) if canonize else resnet["f"]
    ours = our_relevance(f, ours_rules, xs, RESNET_TARGETS)
    close(ours, zennit_relevance(module, theirs, xs, RESNET_TARGETS, classes=RESNET_CLASSES))


# ---------------------------------------------------------------------------- average pooling


@pytest.mark.parametrize("pooling", ["global", "window"])
def test_mean_pooling_stabilizer_is_zennits(pooling):
    """ReLU, average pooling (global, or 2x2 windows), dense; activations of order eps, where the
    stabilizer shows: both stabilize the mean, x R / (N (mean + eps)), not the sum (jnp.mean and
    nn.avg_pool trace to a sum and a division, which jaxplain treats as one operation)."""
    from torch import nn

    rng = np.random.default_rng(0)
    xs = rng.uniform(0.0, 1e-5, size=(2, 4, 4, 2)).astype(np.float32)
    features = 2 if pooling == "global" else 8
    w = rng.standard_normal((features, 3)).astype(np.float32)
    b = np.array([0.1, -0.2, 0.3], np.float32)
    ts = np.array([0, 2])

    def f(x, t):
        h = jax.nn.relu(x)
        if pooling == "global":
            h = jnp.mean(h, axis=(0, 1))
        else:
            window = (2, 2, 1)
            h = jax.lax.reduce_window(h, np.float32(0), jax.lax.add, window, window, "VALID") / 4
        return (h.reshape(-1) @ w + b)[t]

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.relu = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1) if pooling == "global" else nn.AvgPool2d(2)
            self.dense = nn.Linear(features, 3)
            with torch.no_grad():
                self.dense.weight.copy_(torch.from_numpy(w.T.copy()))
                self.dense.bias.copy_(torch.from_numpy(b))

        def forward(self, x):
            h = self.pool(self.relu(x)).permute(0, 2, 3, 1).flatten(1)  # NHWC order, as ours
            return self.dense(h)

    ours = our_relevance(f, jx.composites.epsilon_plus(), xs, ts)
    close(ours, zennit_relevance(Twin().eval(), EpsilonPlus(), xs, ts, classes=3))


# ---------------------------------------------------------------------------- BatchNorm, unbatched


def test_merge_batchnorm_of_an_unbatched_flax_call_matches_zennit():
    """A Flax Conv + BatchNorm called on one example without a batch axis (Flax reshapes the
    convolution's output before the BatchNorm): merged, its LRP equals Zennit's MergeBatchNorm."""
    import flax.linen as nn

    class ConvBN(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.BatchNorm(use_running_average=True, name="bn")(nn.Conv(4, (3, 3), name="conv")(x)))
            return nn.Dense(3, name="dense")(jnp.mean(h, axis=(-3, -2)))

    rng = np.random.default_rng(40)
    model = ConvBN()
    v = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.uniform(0.3, 1.2, a.shape), jnp.float32),
                               model.init(jax.random.key(0), jnp.zeros((1, 6, 6, 3))))
    v = {"params": {**v["params"], "conv": {"kernel": v["params"]["conv"]["kernel"] - 0.7,
                                             "bias": v["params"]["conv"]["bias"] - 0.7}},
         "batch_stats": v["batch_stats"]}
    p, st = v["params"], v["batch_stats"]["bn"]

    class Torch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(4, eps=1e-5)
            self.relu = torch.nn.ReLU()
            self.pool = torch.nn.AdaptiveAvgPool2d(1)
            self.flat = torch.nn.Flatten()
            self.dense = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.dense(self.flat(self.pool(self.relu(self.bn(self.conv(x))))))

    module = Torch().eval()
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32).copy())
    with torch.no_grad():
        module.conv.weight.copy_(t(np.transpose(p["conv"]["kernel"], (3, 2, 0, 1))))
        module.conv.bias.copy_(t(p["conv"]["bias"]))
        module.bn.weight.copy_(t(p["bn"]["scale"]))
        module.bn.bias.copy_(t(p["bn"]["bias"]))
        module.bn.running_mean.copy_(t(st["mean"]))
        module.bn.running_var.copy_(t(st["var"]))
        module.dense.weight.copy_(t(np.asarray(p["dense"]["kernel"]).T))
        module.dense.bias.copy_(t(p["dense"]["bias"]))
    xs = rng.uniform(0, 1, (2, 6, 6, 3)).astype(np.float32)
    ts = np.array([0, 2])
    f = jx.canonizers.merge_batchnorm(lambda x, c: model.apply(v, x)[c])  # no batch axis
    ours = our_relevance(f, jx.composites.epsilon_plus(), xs, ts)
    theirs = zennit_relevance(module, EpsilonPlus(canonizers=[NamedMergeBatchNorm([(["conv"], "bn")])]),
                              xs, ts, classes=3)
    close(ours, theirs)


# ---------------------------------------------------------------------------- Zennit's options


def _layer_map(rule, act=None):
    from torch import nn
    from zennit.composites import LayerMapComposite
    from zennit.rules import Norm, Pass
    from zennit.types import Activation, AvgPool

    return LayerMapComposite([(Activation, act or Pass()), (AvgPool, Norm()),
                              (nn.Conv2d, rule), (nn.Linear, rule)])


@pytest.mark.parametrize("variant", ["zero_params", "clip", "norm_scale"])
def test_epsilon_options_match_zennit(cnn, variant):
    """Epsilon with zero_params='bias', and with Stabilizer(clip=True) / (norm_scale=True)."""
    from zennit.core import Stabilizer
    from zennit.rules import Epsilon

    xs, _, _ = cnn["inputs"]["normal"]
    if variant == "zero_params":
        theirs, ours = Epsilon(0.1, zero_params="bias"), jx.rules.epsilon(epsilon=0.1, zero_params="bias")
    elif variant == "clip":
        theirs = Epsilon(Stabilizer(0.1, clip=True))
        ours = jx.rules.epsilon(epsilon=jx.rules.stabilizer(0.1, clip=True))
    else:
        theirs = Epsilon(Stabilizer(0.1, norm_scale=True))
        ours = jx.rules.epsilon(epsilon=jx.rules.stabilizer(0.1, norm_scale=True))
    rules = jx.composites.custom(types={"avg_pool": jx.rules.norm}, default=ours)
    close(our_relevance(cnn["f"], rules, xs, CNN_TARGETS),
          zennit_relevance(cnn["module"], _layer_map(theirs), xs, CNN_TARGETS, classes=10))


def test_relu_beta_smooth_matches_zennit(cnn):
    """ReLUBetaSmooth on the ReLUs, the gradient elsewhere (Zennit: no rule on the layers)."""
    from zennit.composites import LayerMapComposite
    from zennit.rules import ReLUBetaSmooth
    from zennit.types import Activation

    xs, _, _ = cnn["inputs"]["normal"]
    rules = jx.composites.custom(
        types={"activation": jx.rules.relu_beta_smooth(beta_smooth=5.0), "avg_pool": jx.rules.gradient,
               "sum": jx.rules.gradient}, default=jx.rules.gradient)
    theirs = LayerMapComposite([(Activation, ReLUBetaSmooth(beta_smooth=5.0))])
    close(our_relevance(cnn["f"], rules, xs, CNN_TARGETS),
          zennit_relevance(cnn["module"], theirs, xs, CNN_TARGETS, classes=10))


# ---------------------------------------------------------------------------- relevance at a layer


def _zennit_layer_relevance(module, layer_module, composite, xs, ts, classes):
    """The gradient Zennit's rules leave at ``layer_module``'s output: the relevance there."""
    x = torch.from_numpy(twins.nhwc_to_nchw(xs)).requires_grad_(True)
    one_hot = torch.eye(classes, dtype=x.dtype)[torch.from_numpy(np.asarray(ts))]
    seen = {}

    def keep(_, __, out):
        out.register_hook(lambda g: seen.__setitem__("r", g.detach()))

    with Gradient(model=module, composite=composite) as attributor:
        handle = layer_module.register_forward_hook(keep)
        try:
            attributor(x, lambda out: out * one_hot)
        finally:
            handle.remove()
    return twins.nchw_to_nhwc(seen["r"].numpy())


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_plus"])
def test_layer_lrp_at_conv3_matches_zennit(cnn, composite):
    """Relevance at conv3's output (Zennit: the gradient its rules leave there), by a split of the
    twin's own JAX program: the layers above keep their place (conv1 stays the flat layer)."""
    xs, _, _ = cnn["inputs"]["normal"]
    ours_rules = getattr(jx.composites, composite)()
    theirs_rules = {"epsilon_plus_flat": EpsilonPlusFlat, "epsilon_plus": EpsilonPlus}[composite]()
    _, params, _ = twins.make_twins(0, act="relu", size=CNN_SIZE, channels=CNN_CHANNELS)
    a, conv, pool = jax.nn.relu, twins._conv, twins._avgpool2

    def features(x):
        h = a(conv(x[None], params["w1"], params["b1"]))
        h = pool(a(conv(h, params["w2"], params["b2"])))
        return conv(h, params["w3"], params["b3"])

    def head(h, t):
        h = pool(a(conv(a(h), params["w4"], params["b4"])))
        return (h.reshape(1, -1) @ params["wd"] + params["bd"])[0, t]

    ex = jx.layer_lrp(features=features, head=head, rules=ours_rules)
    ours = np.asarray(jax.vmap(ex)(jnp.asarray(xs), jnp.asarray(CNN_TARGETS)))[:, 0]
    theirs = _zennit_layer_relevance(cnn["module"], cnn["module"].conv3, theirs_rules, xs,
                                     CNN_TARGETS, 10)
    close(ours, theirs)


# ---------------------------------------------------------------------------- a softmax inside


@pytest.mark.parametrize("rule", ["pass", "gradient"])
def test_softmax_rules_match_zennit(rule):
    """Linear -> Softmax -> Linear: Zennit's Pass on the softmax module (relevance through
    unchanged), and no rule there (its ordinary gradient), against types={"softmax": ...}."""
    from torch import nn
    from zennit.composites import LayerMapComposite
    from zennit.rules import Epsilon, Pass

    rng = np.random.default_rng(3)
    w1, b1 = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    w2, b2 = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    f = lambda x, t: (jax.nn.softmax(x @ w1 + b1) @ w2 + b2)[t]

    lin1, lin2 = nn.Linear(6, 5), nn.Linear(5, 3)
    with torch.no_grad():
        for lin, w, b in ((lin1, w1, b1), (lin2, w2, b2)):
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
    module = nn.Sequential(lin1, nn.Softmax(dim=1), lin2).eval()
    mapping = [(nn.Linear, Epsilon())] + ([(nn.Softmax, Pass())] if rule == "pass" else [])
    xs = rng.normal(size=(4, 6)).astype(np.float32)
    ts = np.array([0, 1, 2, 1])
    x = torch.from_numpy(xs).requires_grad_(True)
    with Gradient(model=module, composite=LayerMapComposite(mapping)) as attributor:
        _, theirs = attributor(x, lambda out: out * torch.eye(3)[torch.from_numpy(ts)])
    ours_rule = jx.rules.pass_through if rule == "pass" else jx.rules.gradient
    composite = jx.composites.custom(types={"softmax": ours_rule}, default=jx.rules.epsilon)
    ours = jax.vmap(jx.lrp(f, rules=composite))(jnp.asarray(xs), jnp.asarray(ts))
    close(ours, theirs.detach().numpy())
