"""Layer attribution vs Captum on the same CNN (benchmarks/twins.py), tapped at conv3's output.

(The CAM family and guided backprop are compared in test_captum_cam.py.)
Captum hooks ``model.conv3`` (NCHW, pre-activation); jaxplain splits the same network there with
``features(x) -> A`` (NHWC, with the batch axis of 1) and ``head(A, t)``, and also reaches it
through a Flax Linen copy tapped by module path.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

from captum.attr import (  # noqa: E402
    InternalInfluence,
    LayerConductance,
    LayerGradientXActivation,
    LayerIntegratedGradients,
)

import jaxplain as jx  # noqa: E402
from tests import twins

pytestmark = pytest.mark.parity

SIZE, CHANNELS, STEPS = 8, (4, 6, 6, 6), 16


@pytest.fixture(scope="module")
def setup():
    params = twins.init_params(3, size=SIZE, channels=CHANNELS)
    a = jax.nn.relu
    conv, pool = twins._conv, twins._avgpool2

    def features(x):
        h = a(conv(x[None], params["w1"], params["b1"]))
        h = pool(a(conv(h, params["w2"], params["b2"])))
        return conv(h, params["w3"], params["b3"])

    def head(h, t):
        h = pool(a(conv(a(h), params["w4"], params["b4"])))
        return (h.reshape(1, -1) @ params["wd"] + params["bd"])[0, t]

    class Linen(nn.Module):  # the same network as Flax modules, for the layer-path form
        @nn.compact
        def __call__(self, x):
            c = lambda i: nn.Conv(CHANNELS[i - 1], (3, 3), name=f"conv{i}")
            h = nn.relu(c(1)(x))
            h = pool(nn.relu(c(2)(h)))
            h = pool(nn.relu(c(4)(nn.relu(c(3)(h)))))
            return nn.Dense(10, name="dense")(h.reshape(h.shape[0], -1))

    variables = {"params": {f"conv{i}": {"kernel": params[f"w{i}"], "bias": params[f"b{i}"]} for i in range(1, 5)}}
    variables["params"]["dense"] = {"kernel": params["wd"], "bias": params["bd"]}
    model = Linen()
    f_linen = lambda x, t: model.apply(variables, x[None])[0, t]
    torch_model = twins.make_torch_module(params, "relu").eval()
    xs = np.asarray(jax.random.normal(jax.random.key(4), (4, SIZE, SIZE, 3)), np.float32)
    ts = np.array([0, 3, 7, 9])
    return features, head, f_linen, torch_model, xs, ts


def _close(ours, theirs):
    theirs = np.asarray(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def _theirs(cls, setup, *, init=None, **kw):
    _, _, _, torch_model, xs, ts = setup
    method = cls(torch_model, torch_model.conv3, **(init or {}))
    x = torch.tensor(twins.nhwc_to_nchw(xs))
    out = method.attribute(x, target=torch.tensor(ts), n_steps=STEPS, method="gausslegendre", **kw)
    return out.detach().numpy().transpose(0, 2, 3, 1)  # NCHW -> NHWC


def _ours(make, setup):
    features, head, f_linen, _, xs, ts = setup
    split = jax.jit(jax.vmap(make(features=features, head=head)))(jnp.asarray(xs), jnp.asarray(ts))
    by_path = jax.jit(jax.vmap(make(f_linen, layer="conv3")))(jnp.asarray(xs), jnp.asarray(ts))
    np.testing.assert_allclose(split, by_path, rtol=1e-4, atol=1e-5)
    return np.asarray(split)[:, 0]  # drop the batch axis of 1 the model sees


def test_layer_integrated_gradients_matches_captum(setup):
    theirs = _theirs(LayerIntegratedGradients, setup, baselines=0.0)
    _close(_ours(lambda *a, **k: jx.layer_integrated_gradients(*a, **k, steps=STEPS), setup), theirs)


def test_layer_integrated_gradients_global_matches_captum(setup):
    theirs = _theirs(LayerIntegratedGradients, setup, init=dict(multiply_by_inputs=False),
                     baselines=0.0)
    _close(_ours(lambda *a, **k: jx.layer_integrated_gradients(
        *a, **k, steps=STEPS, multiply_by_inputs=False), setup), theirs)


def test_layer_conductance_matches_captum(setup):
    theirs = _theirs(LayerConductance, setup, baselines=0.0)
    _close(_ours(lambda *a, **k: jx.layer_conductance(*a, **k, steps=STEPS), setup), theirs)


def test_layer_conductance_delta_matches_captum(setup):
    features, head, _, torch_model, xs, ts = setup
    method = LayerConductance(torch_model, torch_model.conv3)
    _, theirs = method.attribute(torch.tensor(twins.nhwc_to_nchw(xs)), target=torch.tensor(ts),
                                 n_steps=STEPS, method="gausslegendre", baselines=0.0,
                                 return_convergence_delta=True)
    ex = jx.layer_conductance(features=features, head=head, steps=STEPS, return_delta=True)
    _, ours = jax.vmap(ex)(jnp.asarray(xs), jnp.asarray(ts))
    theirs = theirs.detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)  # logits of order 1


def test_internal_influence_matches_captum(setup):
    theirs = _theirs(InternalInfluence, setup, baselines=0.0)
    _close(_ours(lambda *a, **k: jx.internal_influence(*a, **k, steps=STEPS), setup), theirs)



def test_layer_conductance_on_captums_convnet_at_300_steps():
    """Captum's BasicModel_ConvNet (dense layers of ones; fc2 redrawn so that its softmax depends on
    relu3), LayerConductance at relu3 with 300 steps: the case XLA:CPU 0.10.2 got all zeros."""
    from captum.testing.helpers.basic_models import BasicModel_ConvNet

    from tests.nets import convnet_features

    torch.manual_seed(0)
    model = BasicModel_ConvNet().eval()
    with torch.no_grad():
        model.fc2.weight.copy_(torch.randn(10, 8))
    t = lambda m: jnp.asarray(m.detach().numpy())
    p = dict(w1=t(model.conv1.weight).transpose(2, 3, 1, 0), b1=t(model.conv1.bias),
             w2=t(model.conv2.weight).transpose(2, 3, 1, 0), b2=t(model.conv2.bias),
             w3=t(model.fc1.weight).T, b3=t(model.fc1.bias), w4=t(model.fc2.weight).T, b4=t(model.fc2.bias))
    head = lambda a, c: jax.nn.softmax(a @ p["w4"] + p["b4"])[0, c]
    xs = np.random.default_rng(0).uniform(0, 3, (2, 10, 10, 1)).astype(np.float32)
    ts = np.array([1, 4])
    ours = jax.jit(jax.vmap(jx.layer_conductance(features=lambda v: convnet_features(p, v), head=head,
                                                 steps=300)))(jnp.asarray(xs), jnp.asarray(ts))
    theirs = LayerConductance(model, model.relu3).attribute(
        torch.tensor(xs.transpose(0, 3, 1, 2)), baselines=0.0, target=torch.tensor(ts), n_steps=300,
        method="gausslegendre").detach().numpy()
    assert np.abs(theirs).max() > 1e-3  # not a degenerate case
    _close(np.asarray(ours)[:, 0], theirs)


def test_layer_conductance_at_the_layer_input_matches_captum(setup):
    _, _, f_linen, torch_model, xs, ts = setup
    method = LayerConductance(torch_model, torch_model.conv3)
    theirs = method.attribute(torch.tensor(twins.nhwc_to_nchw(xs)), target=torch.tensor(ts),
                              n_steps=STEPS, method="gausslegendre", baselines=0.0,
                              attribute_to_layer_input=True)
    ex = jx.layer_conductance(f_linen, layer="conv3", steps=STEPS, attribute_to_layer_input=True)
    ours = jax.jit(jax.vmap(ex))(jnp.asarray(xs), jnp.asarray(ts))
    _close(np.asarray(ours)[:, 0], theirs.detach().numpy().transpose(0, 2, 3, 1))


def test_gradient_x_activation_at_two_layers_matches_captum(setup):
    _, _, f_linen, torch_model, xs, ts = setup
    method = LayerGradientXActivation(torch_model, [torch_model.conv1, torch_model.conv3])
    theirs = method.attribute(torch.tensor(twins.nhwc_to_nchw(xs)), target=torch.tensor(ts))
    ours = jax.jit(jax.vmap(jx.layer_gradient_x_activation(f_linen, layer=("conv1", "conv3"))))(
        jnp.asarray(xs), jnp.asarray(ts))
    assert len(theirs) == len(ours) == 2
    for o, t in zip(ours, theirs):
        _close(np.asarray(o)[:, 0], t.detach().numpy().transpose(0, 2, 3, 1))
