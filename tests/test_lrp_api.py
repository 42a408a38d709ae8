"""jaxplain.lrp (jaxplain._lrp.api): the transform contract (jit, vmap, no retrace, grad), Linen and
NNX twins, bad input, and the doctests."""

import doctest
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxplain as jx
import jaxplain.flax as jxf
from jaxplain import zoo

from tests.lrp_nets import dense_connections, np_stab, reference, vgg
from tests.nets import cnn_f, init_cnn


def test_bad_inputs_raise_and_leave_the_explainer_usable():
    W = jnp.array([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.3]])
    x = jnp.array([0.2, 0.9, 0.4])
    f = lambda v: jnp.sum(jax.nn.relu(v @ W))
    expected = jx.lrp(f, rules=jx.rules.zero)(x)
    with pytest.raises(TypeError, match="scalar"):
        jx.lrp(lambda v: v @ W, rules=jx.rules.zero)(x)
    ex = jx.lrp(f, rules=jx.rules.zero)
    with pytest.raises(TypeError, match="floating"):
        ex(jnp.arange(3))
    np.testing.assert_allclose(ex(x), expected)
    box = jx.lrp(f, rules=jx.rules.zbox(low=0.0, high=1.0))
    with pytest.raises(ValueError, match="outside"):
        box(jnp.array([0.2, 1.5, 0.4]))
    with pytest.raises(ValueError, match="outside"):
        box(jnp.array([-0.1, 0.5, 0.4]))
    r = box(x)
    # z^B on the only layer, then the sum's norm rule: check against the reference
    conn = dense_connections(np.asarray(W, np.float64))
    z = np.asarray(x, np.float64) @ np.asarray(W, np.float64)
    r_out = np.maximum(z, 0) * (z > 0)  # relu passes relevance; the sum's share is a_j / stab(f)
    r_out = r_out * float(np.sum(np.maximum(z, 0))) / np_stab(np.sum(np.maximum(z, 0)), 1e-6)
    ref = reference("zbox", np.asarray(x, np.float64), conn, np.zeros(2), r_out, low=np.zeros(3), high=np.ones(3))
    np.testing.assert_allclose(r, ref, rtol=1e-5, atol=1e-7)

def test_jit_vmap_equals_loop():
    rng = np.random.default_rng(20)
    shapes = jax.eval_shape(lambda: init_cnn(jax.random.key(0), size=4, channels=(2, 3)))
    f = cnn_f({k: jnp.asarray(rng.normal(size=v.shape) * 0.4, jnp.float32) for k, v in shapes.items()})
    xs = jnp.asarray(rng.normal(size=(3, 4, 4, 3)), jnp.float32)
    ts = jnp.array([0, 2, 1])
    ex = jx.lrp(f)
    out = jax.jit(jax.vmap(ex))(xs, ts)
    loop = jnp.stack([ex(xs[i], ts[i]) for i in range(3)])
    assert out.shape == xs.shape and out.dtype == xs.dtype
    np.testing.assert_allclose(out, loop, rtol=1e-5, atol=1e-6)

def test_second_call_does_not_retrace():
    count = [0]
    W = jnp.asarray(np.random.default_rng(22).normal(size=(4, 3)), jnp.float32)

    def f(x, t):
        count[0] += 1
        return jax.nn.relu(x @ W)[t]

    ex = jx.lrp(f, rules=jx.rules.epsilon)
    ex(jnp.ones(4), jnp.asarray(0))
    n = count[0]
    assert n >= 1
    r = ex(jnp.array([1.0, -2.0, 3.0, 0.5]), jnp.asarray(2))
    assert count[0] == n
    np.testing.assert_allclose(r, jx.lrp(f, rules=jx.rules.epsilon)(jnp.array([1.0, -2.0, 3.0, 0.5]), 2), rtol=1e-6)

def test_nnx_and_linen_twins_agree():
    model, variables = vgg(seed=3)
    abstract = nnx.eval_shape(lambda: zoo.VGGNNX(features=(2, 3), classes=3, rngs=nnx.Rngs(0)))
    twin = zoo.linen_to_nnx(model, variables, abstract)
    f, g = jxf.from_linen(model, variables), jxf.from_nnx(twin)
    x = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (4, 4, 3)), jnp.float32)
    paths = {"head": jx.rules.zero, "stage0/conv0": jx.rules.flat}
    by_path = jx.composites.custom(default=jx.rules.epsilon, paths=paths)
    for comp in (None, by_path):
        a = jx.lrp(f, rules=comp)(x, 2) if comp is not None else jx.lrp(f)(x, 2)
        b = jx.lrp(g, rules=comp)(x, 2) if comp is not None else jx.lrp(g)(x, 2)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # the path composite really changed something on both
    plain = jx.lrp(g, rules=jx.composites.custom(default=jx.rules.epsilon))(x, 2)
    assert not np.allclose(b, plain, rtol=1e-3)

def test_grad_of_the_explanation_matches_finite_differences(x64):
    rng = np.random.default_rng(23)
    W1, b1, w2 = map(jnp.asarray, (rng.normal(size=(4, 5)), rng.normal(size=5), rng.normal(size=5)))
    f = lambda v: jax.nn.softplus(v @ W1 + b1) @ w2
    v = jnp.asarray(rng.normal(size=4))
    ex = jx.lrp(f, rules=jx.rules.epsilon(epsilon=0.1))
    loss = lambda x: jnp.sum(ex(x) * v)
    x = jnp.asarray(rng.normal(size=4))
    g = np.asarray(jax.grad(loss)(x))
    h = 1e-6
    fd = np.array([(loss(x + h * e) - loss(x - h * e)) / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)

@pytest.mark.parametrize("module", ["rules", "composites", "canonizers", "api"])
def test_doctests_run(module):
    mod = importlib.import_module(f"jaxplain._lrp.{module}")
    result = doctest.testmod(mod)
    assert result.failed == 0
    assert result.attempted > 0


def test_lrp_with_the_adapters_default_target_none():
    """from_linen's target=None picks the predicted class through argmax(stop_gradient(.)):
    LRP follows the picked logit (stop_gradient carries no relevance), also for a Dense(1) head."""
    import flax.linen as nn

    import jaxplain.flax as jxf

    class Net(nn.Module):
        out: int

        @nn.compact
        def __call__(self, x):
            return nn.Dense(self.out)(nn.relu(nn.Dense(6)(x)))

    x = jnp.array([0.5, -1.0, 2.0, 0.1])
    for out in (3, 1):
        model = Net(out)
        v = model.init(jax.random.key(0), jnp.zeros((1, 4)))
        f = jxf.from_linen(model, v)
        t = int(jnp.argmax(model.apply(v, x[None])[0]))
        np.testing.assert_allclose(jx.lrp(f)(x), jx.lrp(f)(x, t), rtol=1e-6)
        np.testing.assert_allclose(jx.deeplift(f)(x), jx.deeplift(f)(x, t), rtol=1e-6)


def test_lrp_through_a_recurrence_points_to_the_gradient_family():
    import flax.linen as nn

    class RNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.RNN(nn.LSTMCell(4))(x)
            return nn.Dense(2)(h[:, -1])

    model = RNN()
    x = jnp.ones((5, 3))
    v = model.init(jax.random.key(0), x[None])
    with pytest.raises(ValueError, match=r"straight-line programs.*'scan'.*integrated_gradients"):
        jx.lrp(lambda x: model.apply(v, x[None])[0, 0])(x)
