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


def _theirs(cls, setup, **kw):
    _, _, _, torch_model, xs, ts = setup
    method = cls(torch_model, torch_model.conv3)
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


def test_layer_conductance_matches_captum(setup):
    theirs = _theirs(LayerConductance, setup, baselines=0.0)
    _close(_ours(lambda *a, **k: jx.layer_conductance(*a, **k, steps=STEPS), setup), theirs)


def test_internal_influence_matches_captum(setup):
    theirs = _theirs(InternalInfluence, setup, baselines=0.0)
    _close(_ours(lambda *a, **k: jx.internal_influence(*a, **k, steps=STEPS), setup), theirs)

