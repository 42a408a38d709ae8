"""The affine input layer split (jaxplain/_interpret/affine.py) and the path methods that use it.

The split must be invisible: ``rest(prefix(x)) == f(x)``, ``prefix`` affine, and integrated
gradients / SmoothGrad computed through it equal the plain per-point gradients (to rounding), also
under ``jax.grad`` and in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain import _paths
from jaxplain._interpret import affine as _affine
from jaxplain import flax as jf
from jaxplain import zoo
from tests.nets import cnn, cnn_f, init_cnn

KEY = jax.random.key(0)


def _prims(fn, *args):
    return [e.primitive.name for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns]


@pytest.fixture
def plain(monkeypatch):
    """Builds explainers that never split (the reference): the threshold is read when traced."""

    def build(factory, *a, **kw):
        explainer = factory(*a, **kw)

        def call(*args, **kwargs):
            with monkeypatch.context() as m:
                m.setattr(_paths, "SPLIT_MIN_POINTS", 10**9)
                return jax.jit(explainer)(*args, **kwargs)

        return call

    return build


# ------------------------------------------------------------------------------------ the split


def test_split_of_a_cnn_puts_the_first_convolution_and_its_bias_in_the_prefix():
    params = init_cnn(KEY)
    f = cnn_f(params)
    x = jax.random.normal(KEY, (8, 8, 3))
    sp = _affine.split(f, x, (1,))
    assert sp is not None
    np.testing.assert_allclose(sp.rest(sp.prefix(x)), f(x, 1), rtol=1e-6)
    assert _prims(sp.prefix, x).count("conv_general_dilated") == 1
    assert "add" in _prims(sp.prefix, x)  # the bias
    zs = sp.prefix(x)
    assert [z.shape for z in zs] == [(8, 8, 4)]
    assert _prims(sp.rest, zs).count("conv_general_dilated") == 1  # the second one
    # affine: prefix(a x + (1 - a) y) = a prefix(x) + (1 - a) prefix(y)
    y = jax.random.normal(jax.random.key(1), x.shape)
    mix = sp.prefix(0.3 * x + 0.7 * y)[0]
    np.testing.assert_allclose(mix, 0.3 * sp.prefix(x)[0] + 0.7 * sp.prefix(y)[0], atol=1e-5)


def test_split_reaches_through_jit_and_batchnorm_and_keeps_the_output_exact():
    model = zoo.ResNet(features=(4, 8), blocks=1, classes=3)
    x = jax.random.normal(KEY, (8, 8, 3))
    variables = model.init(KEY, x[None])
    f = jax.jit(jf.from_linen(model, variables))  # a call: inlined before the analysis
    sp = _affine.split(f, x, (2,))
    assert sp is not None
    assert "conv_general_dilated" in _prims(sp.prefix, x)
    np.testing.assert_allclose(sp.rest(sp.prefix(x)), f(x, 2), rtol=1e-5, atol=1e-6)


def test_split_of_a_pytree_input_with_a_nonlinear_use_of_x():
    w = jax.random.normal(KEY, (3, 5))

    def f(x):
        return jnp.sum(jnp.tanh(x["a"] @ w)) + jnp.sum(x["b"] ** 2) + jnp.sum(x["a"] * 0.5)

    x = {"a": jnp.arange(3.0), "b": jnp.ones(2)}
    sp = _affine.split(f, x)
    assert sp is not None
    np.testing.assert_allclose(sp.rest(sp.prefix(x)), f(x), rtol=1e-6)
    assert _prims(sp.prefix, x).count("dot_general") == 1
    # x["b"] enters a square: it is itself a boundary value
    assert any(z.shape == (2,) for z in sp.prefix(x))


@pytest.mark.parametrize(
    "f",
    [
        lambda x: jnp.sum(jnp.sin(x)),  # no matrix product or convolution: nothing to gain
        lambda x: jnp.sum(jnp.tanh(x) @ jnp.ones((3, 2))),  # the product comes after tanh
        lambda x: jnp.sum((x * x) @ jnp.ones((3, 2))),  # x * x is not affine
    ],
)
def test_split_declines_when_no_product_is_affine_in_x(f):
    assert _affine.split(f, jnp.ones(3)) is None


def test_split_treats_products_of_two_x_dependent_values_as_nonlinear():
    w = jnp.arange(6.0).reshape(3, 2)
    f = lambda x: jnp.sum((x @ w) * (x @ w))
    sp = _affine.split(f, jnp.ones(3))
    x = jnp.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(sp.rest(sp.prefix(x)), f(x), rtol=1e-6)
    assert "mul" not in _prims(sp.prefix, x)


# ----------------------------------------------------- integrated gradients through the split


def _ig_loop(f, x, t, *, baseline, steps, method="gausslegendre"):
    """Integrated gradients straight from the definition: one gradient per path point."""
    alphas, weights = jx.quadrature(method, steps)
    g = jax.grad(f)
    total = sum(w * g(baseline + a * (x - baseline), t) for a, w in zip(alphas, weights))
    return (x - baseline) * total


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
@pytest.mark.parametrize("batch_size", [None, 3])
def test_integrated_gradients_through_the_split_equal_the_definition(method, batch_size):
    params = init_cnn(KEY)
    f = cnn_f(params, "softplus")
    x = jax.random.normal(KEY, (8, 8, 3))
    b = 0.1 * jax.random.normal(jax.random.key(3), (8, 8, 3))
    ex = jx.integrated_gradients(f, baseline=b, steps=7, method=method, batch_size=batch_size)
    ours = ex(x, 2)
    ref = _ig_loop(f, x, 2, baseline=b, steps=7, method=method)
    np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=1e-6 * float(jnp.abs(ref).max()))


def test_integrated_gradients_split_equals_plain_in_float64(plain):
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: a.astype(jnp.float64), init_cnn(KEY))
        f = cnn_f(params, "tanh")
        x = jax.random.normal(KEY, (8, 8, 3), jnp.float64)
        split = jx.integrated_gradients(f, steps=16)(x, 0)
        ref = plain(jx.integrated_gradients, f, steps=16)(x, 0)
        np.testing.assert_allclose(split, ref, rtol=1e-10, atol=1e-14)


def test_split_explainer_jit_vmap_grad_and_parameters(plain):
    params = init_cnn(KEY)
    x = jax.random.normal(KEY, (3, 8, 8, 3))
    ts = jnp.array([0, 2, 1])
    f = cnn_f(params, "softplus")
    ex = jx.integrated_gradients(f, steps=6)
    ref = plain(jx.integrated_gradients, f, steps=6)
    np.testing.assert_allclose(jax.vmap(ex)(x, ts), jax.vmap(ref)(x, ts), rtol=1e-4, atol=1e-7)
    # differentiable in x and in parameters passed as an argument
    loss = lambda e: (lambda x0: jnp.sum(e(x0, 1) ** 2))
    np.testing.assert_allclose(jax.grad(loss(ex))(x[0]), jax.grad(loss(ref))(x[0]), rtol=1e-3, atol=1e-7)
    g = lambda x0, p, t: cnn(p, x0, "softplus")[t]
    by_p = lambda e: jax.grad(lambda p: jnp.sum(e(x[0], p, 1)))(params)
    a = by_p(jx.integrated_gradients(g, steps=6))
    b = by_p(plain(jx.integrated_gradients, g, steps=6))
    for k in params:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-3, atol=1e-6)


def test_completeness_through_the_split_on_a_flax_cnn_with_batchnorm():
    model = zoo.ResNet(features=(4, 8), blocks=1, classes=3)
    x = jax.random.normal(KEY, (8, 8, 3))
    variables = model.init(KEY, x[None])
    # non-trivial running statistics, so inference BatchNorm is a real affine map
    stats = jax.tree.map(lambda a: a + 0.3, variables["batch_stats"])
    f = jf.from_linen(model, {**variables, "batch_stats": stats})
    attr, delta = jx.integrated_gradients(f, steps=64, return_delta=True)(x, 1)
    gap = f(x, 1) - f(jnp.zeros_like(x), 1)
    assert abs(float(delta)) <= 5e-3 * abs(float(gap)) + 1e-6


def test_linear_model_needs_no_path():
    w = jax.random.normal(KEY, (4, 3))
    f = lambda x, t: (x @ w + 1.0)[t]  # f is affine: the boundary is its output
    x = jnp.arange(4.0)
    attr = jx.integrated_gradients(f, steps=5)(x, 2)
    np.testing.assert_allclose(attr, x * w[:, 2], rtol=1e-6)


def test_second_call_does_not_retrace():
    traces = []
    params = init_cnn(KEY)

    def f(x, t):
        traces.append(1)
        return cnn(params, x)[t]

    ex = jx.integrated_gradients(f, steps=4)
    ex(jnp.ones((8, 8, 3)), 0)
    n = len(traces)
    ex(jnp.zeros((8, 8, 3)), 1)
    assert len(traces) == n


# ------------------------------------------------------------------ SmoothGrad through the split


@pytest.mark.parametrize("kind", ["smoothgrad", "vargrad"])
def test_smoothgrad_of_the_gradient_through_the_split_equals_plain(plain, kind):
    params = init_cnn(KEY)
    f = cnn_f(params, "relu")
    x = jax.random.normal(KEY, (8, 8, 3))
    opts = dict(samples=5, sigma=0.2, kind=kind, batch_size=2)
    ours = jx.smoothgrad(jx.gradient(f), **opts)(x, 1, key=KEY)
    ref = plain(jx.smoothgrad, jx.gradient(f), **opts)(x, 1, key=KEY)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * float(jnp.abs(ref).max()))


# ------------------------------------------------------------- casts to coarser floats are not affine


def _cast_models():
    W = jax.random.normal(KEY, (16, 8))
    W16 = (0.1 * jax.random.normal(KEY, (6, 4))).astype(jnp.float16)
    return [
        # fake-quantized input (float8 round trip)
        (lambda x: jnp.sum(jnp.tanh(x.astype(jnp.float8_e4m3fn).astype(jnp.float32) @ W)),
         jax.random.normal(jax.random.key(1), (16,)), 0.0),
        # a bfloat16 layer on a float32 input
        (lambda x: jnp.sum(jnp.tanh(x.astype(jnp.bfloat16) @ W.astype(jnp.bfloat16))).astype(
            jnp.float32), jax.random.normal(jax.random.key(2), (16,)), 0.0),
        # x and b fit in float16, x - b does not
        (lambda x: jnp.sum(jnp.tanh((x.astype(jnp.float16) * jnp.float16(1e-4)) @ W16)).astype(
            jnp.float32), jnp.full((6,), 40000.0), -40000.0),
    ]


@pytest.mark.parametrize("case", range(3))
def test_rounding_casts_end_the_affine_prefix(case, plain):
    f, x, b = _cast_models()[case]
    ours = jx.integrated_gradients(f, baseline=b, steps=16)(x)
    ref = plain(jx.integrated_gradients, f, baseline=b, steps=16)(x)
    assert bool(jnp.all(jnp.isfinite(ours)))
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7)


def test_widening_casts_stay_affine():
    W = jax.random.normal(KEY, (4, 3))
    f = lambda x: jnp.sum(jnp.tanh(x.astype(jnp.float32) @ W))
    x16 = jnp.arange(4.0, dtype=jnp.float16)
    assert _affine.split(f, x16) is not None  # float16 -> float32 is exact
    assert _affine.split(lambda x: f(x.astype(jnp.float16)), jnp.ones(4)) is None


def test_smoothgrad_errors_name_the_wrapped_gradient():
    f = lambda x: jnp.tanh(x @ jnp.ones((3, 2)))  # not a scalar
    for samples in (2, 8):  # without and with the split
        with pytest.raises(TypeError, match="jaxplain.gradient: f must return a scalar"):
            jx.smoothgrad(jx.gradient(f), samples=samples)(jnp.ones(3), key=KEY)
