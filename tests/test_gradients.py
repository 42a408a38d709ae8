"""The gradient family: closed forms, axioms, slow references, composition and bad input."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain import _gradients, _paths
from tests.nets import cnn, cnn_f, init_cnn

KEY = jax.random.key(0)
SEED_F = lambda v: 5.0 * v[0] + v[1] ** 2  # the lectures' f(x, y) = 5x + y^2
SEED_X = jnp.array([100.0, 5.0])


def test_doctests_run():
    for module in (jx, _gradients, _paths):
        assert doctest.testmod(module).failed == 0


# ----------------------------------------------------------------------------- the seeds' figures


def test_seed_figures_gradient_and_gradient_x_input():
    np.testing.assert_allclose(jx.gradient(SEED_F)(SEED_X), [5.0, 10.0])
    np.testing.assert_allclose(jx.saliency(SEED_F)(SEED_X), [5.0, 10.0])
    np.testing.assert_allclose(jx.gradient_x_input(SEED_F)(SEED_X), [500.0, 50.0])


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle", "riemann_trapezoid"])
def test_seed_figures_integrated_gradients(method):
    # The integrand is linear in alpha: these three rules are exact.
    attr, delta = jx.integrated_gradients(SEED_F, method=method, return_delta=True)(SEED_X)
    np.testing.assert_allclose(attr, [500.0, 25.0], atol=1e-3)
    np.testing.assert_allclose(float(jnp.sum(attr)), 525.0, atol=1e-3)
    assert abs(float(delta)) < 1e-3


def test_riemann_left_right_have_their_known_bias():
    # Integral of 2 a y^2 over [0, 1] with left/right sums is off by -/+ y^2 / n exactly.
    n = 10
    left = jx.integrated_gradients(SEED_F, method="riemann_left", steps=n)(SEED_X)
    right = jx.integrated_gradients(SEED_F, method="riemann_right", steps=n)(SEED_X)
    np.testing.assert_allclose(left, [500.0, 25.0 - 25.0 / n], rtol=1e-6)
    np.testing.assert_allclose(right, [500.0, 25.0 + 25.0 / n], rtol=1e-6)


# ----------------------------------------------------------------------------- axioms on CNNs


def _ig_rel_error(f, x, t, steps, method, predicted=0.0):
    attr, delta = jx.integrated_gradients(
        f, steps=steps, method=method, batch_size=256, return_delta=True
    )(x, t)
    gap = f(x, t) - f(jnp.zeros_like(x), t)
    return abs(float(delta - predicted)) / abs(float(gap)), attr


@pytest.mark.parametrize("act", ["softplus", "tanh"])
@pytest.mark.parametrize("method", _paths.IG_METHODS)
def test_ig_completeness_smooth_cnn(act, method):
    params = init_cnn(jax.random.key(1))
    f = jax.jit(cnn_f(params, act))
    x = jax.random.normal(jax.random.key(2), (8, 8, 3))
    # First-order rules: by Euler-Maclaurin their error is -/+ (g(1) - g(0)) / (2n) + O(1/n^2)
    # with g(a) = d/da f(a x); on this CNN that term is 1e-3..3e-2 of f(x) - f(0) at n = 256,
    # so 1e-3 holds only once the known first-order term is accounted for.
    g = jax.jit(lambda a, t: jnp.vdot(jax.grad(f)(a * x, t), x))
    sign = {"riemann_left": -1.0, "riemann_right": 1.0}.get(method, 0.0)
    for t in range(3):
        predicted = sign * (g(1.0, t) - g(0.0, t)) / (2 * 256)
        err, attr = _ig_rel_error(f, x, t, 256, method, predicted)
        assert attr.shape == x.shape and attr.dtype == x.dtype
        assert err <= 1e-3, (t, err)


def test_ig_completeness_relu_cnn_converges():
    params = init_cnn(jax.random.key(3))
    f = cnn_f(params, "relu")
    x = jax.random.normal(jax.random.key(4), (8, 8, 3))
    errors = [_ig_rel_error(f, x, 0, s, "riemann_middle")[0] for s in (16, 64, 256, 1024)]
    assert errors[-1] < 5e-3, errors
    assert errors[-1] < errors[0], errors


def test_ig_matches_slow_reference_from_the_paper():
    # Sundararajan et al. eq. (3): (x - x') * sum_k df/dx(x' + k/m (x - x')) / m  (right Riemann).
    params = init_cnn(jax.random.key(5))
    f = cnn_f(params, "tanh")
    x = jax.random.normal(jax.random.key(6), (8, 8, 3))
    base = 0.3 * jax.random.normal(jax.random.key(7), (8, 8, 3))
    m = 20
    total = np.zeros(x.shape)
    for k in range(1, m + 1):
        total += np.asarray(jax.grad(f)(base + k / m * (x - base), 2))
    ref = np.asarray(x - base) * total / m
    ours = jx.integrated_gradients(f, baseline=base, steps=m, method="riemann_right")(x, 2)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_ig_baseline_forms_agree():
    f = cnn_f(init_cnn(jax.random.key(8)), "tanh")
    x = jax.random.normal(jax.random.key(9), (8, 8, 3))
    per_channel = jnp.array([0.1, -0.2, 0.3])
    full = jnp.broadcast_to(per_channel, x.shape)
    a = jx.integrated_gradients(f, baseline=per_channel, steps=8)(x, 0)
    b = jx.integrated_gradients(f, baseline=full, steps=8)(x, 0)
    c = jx.integrated_gradients(f, baseline=lambda v: jnp.broadcast_to(per_channel, v.shape), steps=8)(x, 0)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-7)
    # The baseline itself gets zero attribution.
    np.testing.assert_allclose(jx.integrated_gradients(f, baseline=full, steps=8)(full, 0), 0.0)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 2])
def test_chunking_equals_all_at_once(batch_size):
    # steps=133 with batch_size=2 runs 66 chunks in a lax.scan plus a remainder of 1.
    steps = 133 if batch_size == 2 else 10
    f = cnn_f(init_cnn(jax.random.key(10)), "softplus")
    x = jax.random.normal(jax.random.key(11), (8, 8, 3))
    whole = jx.integrated_gradients(f, steps=steps)(x, 1)
    chunked = jx.integrated_gradients(f, steps=steps, batch_size=batch_size)(x, 1)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-7)
    assert -(-steps // batch_size) > _paths.MAX_UNROLLED_CHUNKS or batch_size != 2


# ----------------------------------------------------------------------------- pytrees and dtypes


def test_pytree_inputs():
    f = lambda p, s: s * (jnp.sum(p["a"] ** 2) + jnp.prod(p["b"]))
    x = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([3.0, 4.0, 0.5])}
    g = jx.gradient(f)(x, 2.0)
    np.testing.assert_allclose(g["a"], [4.0, 8.0])
    np.testing.assert_allclose(g["b"], [4.0, 3.0, 24.0])
    attr, delta = jx.integrated_gradients(f, steps=16, return_delta=True)(x, 2.0)
    assert set(attr) == {"a", "b"}
    total = sum(float(jnp.sum(v)) for v in attr.values())
    np.testing.assert_allclose(total, float(f(x, 2.0)), rtol=1e-5)
    np.testing.assert_allclose(attr["a"], 2.0 * x["a"] ** 2, rtol=1e-5)  # exact for sum of squares
    assert abs(float(delta)) < 1e-4


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_attribution_keeps_the_input_dtype(dtype):
    x = jnp.array([1.0, 2.0], dtype)
    f = lambda v: jnp.sum(v.astype(jnp.float32) ** 2)
    for ex in (jx.gradient(f), jx.gradient_x_input(f), jx.integrated_gradients(f, steps=4)):
        assert ex(x).dtype == dtype
    assert jx.smoothgrad(jx.gradient(f), samples=2)(x, key=KEY).dtype == dtype


def test_float64():
    with jax.enable_x64(True):
        x = jnp.array([100.0, 5.0], jnp.float64)
        attr = jx.integrated_gradients(SEED_F, steps=3)(x)
        assert attr.dtype == jnp.float64
        np.testing.assert_allclose(attr, [500.0, 25.0], rtol=1e-13)


# ----------------------------------------------------------------------------- composition


def _all_explainers(f):
    return {
        "gradient": jx.gradient(f),
        "saliency": jx.saliency(f),
        "gradient_x_input": jx.gradient_x_input(f),
        "integrated_gradients": jx.integrated_gradients(f, steps=6, batch_size=4),
    }


def test_jit_vmap_equals_python_loop_and_does_not_recompile():
    traces = []
    params = init_cnn(jax.random.key(12))

    def f(x, t):
        traces.append(1)
        return cnn(params, x, "relu")[t]

    xs = jax.random.normal(jax.random.key(13), (5, 8, 8, 3))
    ts = jnp.array([0, 1, 2, 0, 1])
    for name, ex in _all_explainers(f).items():
        batched = jax.jit(jax.vmap(ex))
        out = batched(xs, ts)
        loop = jnp.stack([ex(xs[i], int(ts[i])) for i in range(len(ts))])
        np.testing.assert_allclose(out, loop, rtol=1e-5, atol=1e-6, err_msg=name)
        n = len(traces)
        out2 = batched(xs * 0.5 + 1.0, ts[::-1])  # new values, same shapes
        ex(xs[0] + 1.0, 2)  # eager call: compiled once inside the explainer
        assert len(traces) == n, f"{name} retraced"
        assert out2.shape == xs.shape


def test_random_explainers_vmap_with_per_example_keys():
    f = cnn_f(init_cnn(jax.random.key(14)), "tanh")
    xs = jax.random.normal(jax.random.key(15), (3, 8, 8, 3))
    ts = jnp.array([0, 1, 2])
    keys = jax.random.split(jax.random.key(16), 3)
    for ex in (
        jx.smoothgrad(jx.gradient(f), samples=4),
        jx.expected_gradients(f, baselines=xs[::-1], samples=4),
    ):
        out = jax.jit(jax.vmap(ex))(xs, ts, key=keys)
        loop = jnp.stack([ex(xs[i], ts[i], key=keys[i]) for i in range(3)])
        np.testing.assert_allclose(out, loop, rtol=1e-5, atol=1e-6)
        # Same key, same answer; another key, another answer.
        np.testing.assert_array_equal(ex(xs[0], 0, key=keys[0]), ex(xs[0], 0, key=keys[0]))
        assert not np.allclose(ex(xs[0], 0, key=keys[0]), ex(xs[0], 0, key=keys[1]))


def test_explanations_are_differentiable():
    w = jnp.array([1.0, -2.0, 0.5])
    f = lambda v: jnp.sum(w * v**2)
    x = jnp.array([0.3, 1.2, -2.0])
    # gradient x input = 2 w x^2, so d/dx sum(.) = 4 w x.
    g = jax.grad(lambda v: jnp.sum(jx.gradient_x_input(f)(v)))(x)
    np.testing.assert_allclose(g, 4 * w * x, rtol=1e-6)
    # IG from 0 of a sum of squares is w x^2 exactly, so d/dx sum(.) = 2 w x.
    g = jax.jit(jax.grad(lambda v: jnp.sum(jx.integrated_gradients(f, steps=4)(v))))(x)
    np.testing.assert_allclose(g, 2 * w * x, rtol=1e-6)


def test_differentiable_with_respect_to_parameters():
    # A saliency-regularized loss, as in training loops: d/dparams of |grad_x f|^2.
    params = init_cnn(jax.random.key(17))
    x = jax.random.normal(jax.random.key(18), (8, 8, 3))

    def loss(p):
        return jnp.sum(jx.gradient(lambda v, t: cnn(p, v, "tanh")[t])(x, 1) ** 2)

    def loss_ref(p):
        return jnp.sum(jax.grad(lambda v: cnn(p, v, "tanh")[1])(x) ** 2)

    g, g_ref = jax.grad(loss)(params), jax.grad(loss_ref)(params)
    for k in params:
        np.testing.assert_allclose(g[k], g_ref[k], rtol=1e-5, atol=1e-7)


def test_sharded_batch_matches_unsharded():
    devices = jax.devices()
    assert len(devices) == 8, "tests/conftest.py asks XLA for 8 host devices"
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    f = cnn_f(init_cnn(jax.random.key(19)), "relu")
    xs = jax.random.normal(jax.random.key(20), (16, 8, 8, 3))
    ts = jnp.arange(16) % 3
    ig = jax.jit(jax.vmap(jx.integrated_gradients(f, steps=8)))
    ref = ig(xs, ts)
    out = ig(jax.device_put(xs, spec), jax.device_put(ts, spec))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert out.sharding.is_equivalent_to(spec, out.ndim)
    # A random explainer: per-example keys sharded with the batch; its noise (JAX's classic
    # threefry stream) is the same draw on every layout.
    sg = jax.jit(jax.vmap(jx.smoothgrad(jx.gradient(f), samples=4, sigma=0.2)))
    keys = jax.random.split(jax.random.key(21), 16)
    ref = sg(xs, ts, key=keys)
    out = sg(jax.device_put(xs, spec), jax.device_put(ts, spec), key=jax.device_put(keys, spec))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert out.sharding.is_equivalent_to(spec, out.ndim)


# ----------------------------------------------------------------------------- SmoothGrad / VarGrad


def test_smoothgrad_kinds_closed_forms():
    # f = sum(x^2): gradient 2(x + e); E = 2x, E[a^2] = 4x^2 + 4 s^2, Var = 4 s^2.
    f = lambda v: jnp.sum(v**2)
    x = jnp.array([1.0, -2.0, 0.5])
    s = 0.3
    n = 20000
    # all draws at once: 20000 evaluations of a 3-vector function are one small batch (the default
    # would compile 25 chunks sized for a CNN)
    mk = lambda kind: jx.smoothgrad(jx.gradient(f), samples=n, sigma=s, relative=False, kind=kind,
                                    batch_size=n)
    np.testing.assert_allclose(mk("smoothgrad")(x, key=KEY), 2 * x, atol=0.02)
    np.testing.assert_allclose(mk("smoothgrad_sq")(x, key=KEY), 4 * x**2 + 4 * s**2, rtol=0.03)
    np.testing.assert_allclose(mk("vargrad")(x, key=KEY), 4 * s**2, rtol=0.05)
    # relative noise: std = sigma * (max(x) - min(x)) = 0.1 * 3.0
    vg = jx.smoothgrad(jx.gradient(f), samples=n, sigma=0.1, kind="vargrad", batch_size=n)(x, key=KEY)
    np.testing.assert_allclose(vg, 4 * 0.3**2, rtol=0.05)


def test_smoothgrad_without_noise_is_the_explainer():
    f = cnn_f(init_cnn(jax.random.key(21)), "tanh")
    x = jax.random.normal(jax.random.key(22), (8, 8, 3))
    g = jx.gradient(f)(x, 1)
    for kind, expect in (("smoothgrad", g), ("smoothgrad_sq", g**2), ("vargrad", 0 * g)):
        out = jx.smoothgrad(jx.gradient(f), samples=3, sigma=0.0, kind=kind, batch_size=2)(x, 1, key=KEY)
        np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-7)


def test_smoothgrad_matches_slow_reference():
    # Smilkov et al. eq. (3): (1/n) sum_i M(x + N(0, s^2)), with the same noise draws.
    f = cnn_f(init_cnn(jax.random.key(23)), "softplus")
    x = jax.random.normal(jax.random.key(24), (8, 8, 3))
    n, s = 6, 0.2
    ours = jx.smoothgrad(jx.gradient(f), samples=n, sigma=s, relative=False, batch_size=4)(x, 0, key=KEY)
    ref = np.zeros(x.shape)
    for k in jax.random.split(KEY, n):  # the documented draw: split per sample, then noise key
        noise_key = jax.random.split(jax.random.split(k)[0], 1)[0]
        with jax.threefry_partitionable(False):  # the documented stream
            noise = jax.random.normal(noise_key, x.shape)
        ref += np.asarray(jax.grad(f)(x + s * noise, 0))
    np.testing.assert_allclose(ours, ref / n, rtol=1e-5, atol=1e-6)


def test_smoothgrad_wraps_random_explainers():
    w = jnp.array([2.0, -1.0])
    f = lambda v: w @ v
    eg = jx.expected_gradients(f, baselines=jnp.zeros((3, 2)), samples=2)
    sg = jx.smoothgrad(eg, samples=5, sigma=0.0)
    # Linear f, zero baselines: every draw gives w * x.
    np.testing.assert_allclose(sg(jnp.array([1.0, 3.0]), key=KEY), [2.0, -3.0], rtol=1e-6)
    sg_of_sg = jx.smoothgrad(jx.smoothgrad(jx.gradient(f), samples=2), samples=2)
    np.testing.assert_allclose(sg_of_sg(jnp.array([1.0, 3.0]), key=KEY), w, rtol=1e-6)


# ----------------------------------------------------------------------------- expected gradients


def test_expected_gradients_linear_is_exact():
    w = jnp.array([1.0, -2.0, 3.0])
    refs = jax.random.normal(KEY, (1, 3))
    x = jnp.array([0.5, 0.5, -1.0])
    eg = jx.expected_gradients(lambda v: w @ v, baselines=refs, samples=7, batch_size=3)
    np.testing.assert_allclose(eg(x, key=KEY), w * (x - refs[0]), rtol=1e-6)


def test_expected_gradients_converges_to_mean_ig_and_completeness():
    # E[attr] = mean over baselines of IG(x, b); its sum is f(x) - mean f(b).
    f = lambda v: jnp.sum(jnp.tanh(v) * jnp.array([1.0, 2.0, -1.0]))
    refs = jnp.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5], [-0.5, 0.3, 2.0]])
    x = jnp.array([1.5, 0.5, -1.0])
    eg = jx.expected_gradients(f, baselines=refs, samples=40000)(x, key=KEY)
    ig = jnp.mean(
        jnp.stack([jx.integrated_gradients(f, baseline=b, steps=64)(x) for b in refs]), axis=0
    )
    np.testing.assert_allclose(eg, ig, atol=0.03)
    np.testing.assert_allclose(
        float(jnp.sum(eg)), float(f(x) - jnp.mean(jax.vmap(f)(refs))), atol=0.05
    )


def test_gradient_shap_is_expected_gradients_with_captum_defaults():
    f = lambda v: jnp.sum(jnp.sin(v))
    refs = jax.random.normal(KEY, (4, 3))
    x = jnp.ones(3)
    gs = jx.gradient_shap(f, baselines=refs)
    assert gs.options["samples"] == 5 and gs.method == "gradient_shap"
    np.testing.assert_array_equal(
        gs(x, key=KEY), jx.expected_gradients(f, baselines=refs, samples=5)(x, key=KEY)
    )


# ----------------------------------------------------------------------------- bad input


def _f(v):
    return jnp.sum(v**2)


@pytest.mark.parametrize(
    "build, exc, match",
    [
        (lambda: jx.integrated_gradients(_f, steps=0), ValueError, "steps must be >= 1, got 0"),
        (lambda: jx.integrated_gradients(_f, steps=2.5), TypeError, "steps must be an int"),
        (lambda: jx.integrated_gradients(_f, steps=1, method="riemann_trapezoid"), ValueError, ">= 2"),
        (lambda: jx.integrated_gradients(_f, method="simpson"), ValueError, "unknown method 'simpson'"),
        (lambda: jx.integrated_gradients(_f, batch_size=0), ValueError, "batch_size must be >= 1"),
        (lambda: jx.integrated_gradients(_f, baseline=jnp.array([jnp.nan])), ValueError, "NaN"),
        (lambda: jx.integrated_gradients("f"), TypeError, "f must be a callable, got str"),
        (lambda: jx.integrated_gradients(_f, 8), TypeError, "positional"),
        (lambda: jx.smoothgrad(jx.gradient(_f), sigma=-0.1), ValueError, "sigma must be .* got -0.1"),
        (lambda: jx.smoothgrad(jx.gradient(_f), kind="var"), ValueError, "unknown kind 'var'"),
        (lambda: jx.smoothgrad(jx.gradient(_f), samples=0), ValueError, "samples must be >= 1"),
        (lambda: jx.expected_gradients(_f, baselines=jnp.zeros((0, 3))), ValueError, "no reference"),
        (lambda: jx.expected_gradients(_f, baselines=jnp.array(1.0)), ValueError, "no reference"),
        (lambda: jx.expected_gradients(_f), TypeError, "baselines"),
    ],
)
def test_bad_options_fail_when_the_transform_is_built(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_bad_inputs_fail_when_called_and_leave_the_explainer_working():
    x = jnp.array([1.0, 2.0, 3.0])
    ig = jx.integrated_gradients(_f, baseline=jnp.zeros(4), steps=4)
    with pytest.raises(ValueError, match=r"baseline of shape \(4,\) does not fit x of shape \(3,\)"):
        ig(x)
    ig = jx.integrated_gradients(_f, steps=4)
    with pytest.raises(TypeError, match="real floating dtype, got int32"):
        ig(jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        ig(jnp.array([1.0, jnp.inf, 3.0]))
    np.testing.assert_allclose(ig(x), x**2, rtol=1e-5)  # still works, nothing corrupted
    with pytest.raises(TypeError, match="needs an explicit key"):
        jx.smoothgrad(jx.gradient(_f))(x)
    eg = jx.expected_gradients(_f, baselines=jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"baselines of shape \(2, 4\) do not fit x of shape \(3,\)"):
        eg(x, key=KEY)


@pytest.mark.parametrize("make", [jx.gradient, jx.saliency, jx.gradient_x_input, jx.integrated_gradients])
def test_non_scalar_f_names_the_shape_and_the_fix(make):
    params = init_cnn(KEY)
    with pytest.raises(TypeError, match=r"returned an output of shape \(3,\).*target"):
        make(lambda x: cnn(params, x))(jnp.ones((8, 8, 3)))
    with pytest.raises(TypeError, match=r"shape \(1, 3\).*jax.vmap"):
        make(lambda x: cnn(params, x)[None])(jnp.ones((8, 8, 3)))


def test_repr_names_method_and_options():
    r = repr(jx.integrated_gradients(_f, steps=7))
    assert r.startswith("jaxplain.integrated_gradients(_f") and "steps=7" in r


def test_smoothgrad_of_the_model_function_itself_raises():
    """smoothgrad wraps an explainer; given f (a scalar per example) it used to average f."""
    f = lambda v: jnp.sum(v ** 2)
    with pytest.raises(TypeError, match=r"returned a scalar for x of shape \(3,\).*smoothgrad\(jaxplain.gradient\(f\)\)"):
        jx.smoothgrad(f, samples=3)(jnp.ones(3), key=KEY)
    # attributions shaped otherwise (a map of x, or several outputs) are averaged as they are
    rows = lambda v: jnp.sum(jx.gradient(f)(v), axis=-1)
    out = jx.smoothgrad(rows, samples=4, sigma=0.0)(jnp.ones((2, 3)), key=KEY)
    np.testing.assert_allclose(out, [6.0, 6.0])


# ----------------------------------------------------------------------------- global attribution


def test_multiply_by_inputs_false_is_the_path_mean_gradient():
    """Ancona et al.'s global attribution: IG without (x - b) is the mean gradient along the path;
    for f = sum(x^2) from 0 that is mean_alpha 2 alpha x = x; expected gradients of a linear f give
    its weights."""
    x = jnp.array([1.0, -2.0, 3.0])
    ig = jx.integrated_gradients(_f, steps=8, multiply_by_inputs=False)
    np.testing.assert_allclose(ig(x), x, rtol=1e-6)
    np.testing.assert_allclose(ig(x) * x, jx.integrated_gradients(_f, steps=8)(x), rtol=1e-6)
    w = jnp.array([1.0, -2.0, 3.0])
    for make in (jx.expected_gradients, jx.gradient_shap):
        eg = make(lambda v: w @ v, baselines=jnp.ones((4, 3)), multiply_by_inputs=False)
        np.testing.assert_allclose(eg(2 * x, key=KEY), w, rtol=1e-6)
    # quadratic: the mean of 2 (b + alpha (x - b)) over the draws, not the attribution (x - b) * ...
    eg = jx.expected_gradients(_f, baselines=jnp.zeros((1, 3)), samples=64, multiply_by_inputs=False)
    mean = jnp.mean(jax.vmap(lambda k: 2 * jax.random.uniform(jax.random.split(k, 3)[1], ()))(
        jax.random.split(KEY, 64)))
    np.testing.assert_allclose(eg(x, key=KEY), mean * x, rtol=1e-5)
    assert "multiply_by_inputs=False" in repr(ig)


def test_multiply_by_inputs_is_checked_and_return_delta_needs_it():
    with pytest.raises(ValueError, match="return_delta=True needs multiply_by_inputs=True"):
        jx.integrated_gradients(_f, return_delta=True, multiply_by_inputs=False)
    with pytest.raises(TypeError, match="multiply_by_inputs must be True or False, got str"):
        jx.integrated_gradients(_f, multiply_by_inputs="no")
    with pytest.raises(TypeError, match="multiply_by_inputs must be True or False"):
        jx.gradient_shap(_f, baselines=jnp.zeros((2, 3)), multiply_by_inputs=None)
