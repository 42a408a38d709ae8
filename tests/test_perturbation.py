"""Perturbation methods (jaxplain._perturbation): occlusion, feature ablation and exact Shapley
values against closed forms and slow references written from their definitions; jit == eager,
vmap == a loop; batch_size changes nothing; bad input gets clear errors."""

import doctest
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain._perturbation import ablation, lime, occlusion, rise, sampling, segments, shapley


def test_doctests_run():
    for m in (ablation, lime, occlusion, rise, sampling, shapley):
        assert doctest.testmod(m).failed == 0


W = jnp.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 1.0, 0.5], [0.1, 0.2, 0.3]])
linear = lambda x: jnp.sum(W * x) + 0.7


def test_on_a_linear_model_every_method_gives_w_times_x_minus_baseline():
    x = jax.random.normal(jax.random.key(0), (4, 3))
    b = 0.3
    want = W * (x - b)
    np.testing.assert_allclose(jx.occlusion(linear, window=1, baseline=b)(x), want, rtol=1e-5, atol=1e-6)
    ids = jnp.arange(12).reshape(4, 3)
    np.testing.assert_allclose(jx.feature_ablation(linear, baseline=b)(x), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jx.feature_ablation(linear, mask=ids, baseline=b)(x), want, rtol=1e-5, atol=1e-6)
    k = jax.random.key(3)
    for ex in (jx.shapley_sampling(linear, mask=ids, baseline=b, samples=3),
               jx.kernel_shap(linear, mask=ids, baseline=b, samples=40),
               jx.lime(linear, mask=ids, baseline=b, samples=64, alpha=0.0),
               jx.lime(linear, mask=ids, baseline=b, samples=64, alpha=0.0, distance="euclidean")):
        np.testing.assert_allclose(ex(x, key=k), want, rtol=1e-3, atol=1e-4)
    rows = jnp.arange(4)[:, None]  # a feature per row, broadcast over the columns
    np.testing.assert_allclose(jx.shapley_values(linear, mask=rows, baseline=b)(x),
                               jnp.broadcast_to(want.sum(1, keepdims=True), (4, 3)), rtol=1e-5, atol=1e-6)


def _occlusion_by_hand(f, x, window, stride, b):
    """Captum's Occlusion, window by window, in NumPy."""
    x = np.asarray(x, np.float64)
    total, count = np.zeros_like(x), np.zeros_like(x)
    starts = [[k * s for k in range(math.ceil((n - w) / s) + 1)] for n, w, s in zip(x.shape, window, stride)]
    for start in itertools.product(*starts):
        m = np.zeros_like(x)
        m[tuple(slice(s, s + w) for s, w in zip(start, window))] = 1
        drop = float(f(x)) - float(f(x * (1 - m) + b * m))
        total += drop * m
        count += m
    return total / count


@pytest.mark.parametrize("window, stride", [((2, 2, 3), (1, 1, 3)), ((3, 2, 1), (2, 2, 1)), ((5, 7, 3), (1, 1, 1))])
def test_occlusion_equals_the_window_by_window_reference(window, stride):
    x = jax.random.normal(jax.random.key(1), (5, 7, 3))
    f = lambda v: jnp.sum(jnp.tanh(v) * jnp.cos(jnp.arange(v.size).reshape(v.shape)))
    got = jx.occlusion(f, window=window, stride=stride, baseline=0.2)(x)
    np.testing.assert_allclose(got, _occlusion_by_hand(f, x, window, stride, 0.2), rtol=1e-4, atol=1e-5)


def test_shapley_values_of_a_three_player_game_and_efficiency():
    # v(S) for players {0, 1, 2}: the seeds' house-price style game, written as f on 0/1 inputs
    v = {(): 0.0, (0,): 10.0, (1,): 20.0, (2,): 30.0, (0, 1): 40.0, (0, 2): 50.0, (1, 2): 60.0, (0, 1, 2): 90.0}
    f = lambda x: sum(val * jnp.prod(jnp.array([x[i] if i in s else 1 - x[i] for i in range(3)]))
                      for s, val in v.items())
    phi = jx.shapley_values(f, mask=jnp.arange(3), baseline=0.0)(jnp.ones(3))
    by_hand = []
    for i in range(3):  # the mean marginal contribution over the six orders
        total = 0.0
        for order in itertools.permutations(range(3)):
            before = tuple(sorted(order[: order.index(i)]))
            total += v[tuple(sorted(before + (i,)))] - v[before]
        by_hand.append(total / 6)
    np.testing.assert_allclose(phi, by_hand, rtol=1e-6)  # [20, 30, 40]
    np.testing.assert_allclose(jnp.sum(phi), 90.0, rtol=1e-6)
    g = lambda x: jnp.sin(x[0] * x[1]) + x[2] ** 2 * x[3]
    x = jnp.array([0.3, -1.2, 0.8, 2.0])
    phi = jx.shapley_values(g, mask=jnp.arange(4), baseline=0.5)(x)
    np.testing.assert_allclose(jnp.sum(phi), g(x) - g(jnp.full(4, 0.5)), rtol=1e-6)


def test_sampled_shapley_values_converge_to_the_exact_ones_and_keep_efficiency():
    g = lambda x: jnp.sin(x[0] * x[1]) + x[2] ** 2 * x[3] + x[4] * x[0]
    x = jnp.array([0.3, -1.2, 0.8, 2.0, 1.5])
    exact = jx.shapley_values(g, mask=jnp.arange(5), baseline=0.5)(x)
    d = g(x) - g(jnp.full(5, 0.5))
    k = jax.random.key(0)
    for ex, tol in ((jx.shapley_sampling(g, mask=jnp.arange(5), baseline=0.5, samples=2000), 0.03),
                    (jx.shapley_sampling(g, mask=jnp.arange(5), baseline=0.5, samples=1000, antithetic=True), 0.03),
                    (jx.kernel_shap(g, mask=jnp.arange(5), baseline=0.5, samples=2000), 0.03)):
        phi = ex(x, key=k)
        np.testing.assert_allclose(phi, exact, atol=tol)  # measured errors <= 0.011
        np.testing.assert_allclose(jnp.sum(phi), d, rtol=1e-5)  # efficiency for every draw
        np.testing.assert_array_equal(ex(x, key=k), phi)  # a fixed key, the same values
        few = jx.shapley_sampling(g, mask=jnp.arange(5), baseline=0.5, samples=2)
        np.testing.assert_allclose(jnp.sum(few(x, key=k)), d, rtol=1e-5)
    with pytest.raises(ValueError, match="samples must be"):
        jx.kernel_shap(g, mask=jnp.arange(5), samples=0)
    with pytest.raises(TypeError, match="needs an explicit key"):
        jx.shapley_sampling(g, mask=jnp.arange(5))(x)


def test_jit_vmap_batch_size_and_targets():
    xs = jax.random.normal(jax.random.key(2), (5, 6, 6, 2))
    ts = jnp.arange(5) % 3
    f = lambda x, t: jnp.sum(jnp.tanh(x) * (t + 1.0)) + x[0, 0, t % 2]
    mask = (jnp.arange(36).reshape(6, 6, 1) // 12)  # 3 features, shared by both channels
    for ex in (jx.occlusion(f, window=(3, 3, 2), stride=(3, 3, 2)),
               jx.feature_ablation(f, mask=mask), jx.shapley_values(f, mask=mask)):
        loop = jnp.stack([ex(x, t) for x, t in zip(xs, ts)])
        np.testing.assert_allclose(jax.jit(jax.vmap(ex))(xs, ts), loop, rtol=1e-5, atol=1e-6)
    ss = jx.shapley_sampling(f, mask=mask, samples=3)
    keys = jax.random.split(jax.random.key(0), 5)
    loop = jnp.stack([ss(x, t, key=k) for x, t, k in zip(xs, ts, keys)])
    np.testing.assert_allclose(jax.jit(jax.vmap(ss))(xs, ts, key=keys), loop, rtol=1e-5, atol=1e-6)
    small = jx.occlusion(f, window=(2, 2, 1), batch_size=5)(xs[0], 1)
    np.testing.assert_allclose(small, jx.occlusion(f, window=(2, 2, 1))(xs[0], 1), rtol=1e-5, atol=1e-6)


def test_bad_input():
    x = jnp.ones((4, 4, 3))
    f = lambda v: jnp.sum(v)
    with pytest.raises(ValueError, match=r"window \(5, 4, 3\) is larger than x"):
        jx.occlusion(f, window=(5, 4, 3))(x)
    with pytest.raises(ValueError, match="window must be an int >= 1 or a tuple of 3"):
        jx.occlusion(f, window=(2, 2))(x)
    with pytest.raises(ValueError, match="stride .* larger than the window"):
        jx.occlusion(f, window=(2, 2, 3), stride=(3, 3, 3))(x)
    with pytest.raises(ValueError, match="does not broadcast to x"):
        jx.feature_ablation(f, mask=jnp.zeros((3, 4), int))(x)
    with pytest.raises(ValueError, match=r"ids must be 0 .. n-1 .* missing \[1\]"):
        jx.feature_ablation(f, mask=jnp.array([0, 2, 2]))
    with pytest.raises(TypeError, match="integer array"):
        jx.shapley_values(f, mask=jnp.zeros(3))
    with pytest.raises(ValueError, match="2\\*\\*17 evaluations"):
        jx.shapley_values(f, mask=jnp.arange(17))
    with pytest.raises(TypeError, match="mask is required"):
        jx.shapley_values(f, mask=None)
    with pytest.raises(TypeError, match="must return a scalar"):
        jx.occlusion(lambda v: v, window=2)(jnp.ones(4))
    with pytest.raises(TypeError, match="one array for now"):
        jx.occlusion(lambda v: v["a"].sum(), window=1)({"a": jnp.ones(2)})


@pytest.mark.parity
def test_lime_surrogates_equal_scikit_learns_weighted_fits():
    sk = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, (80, 6)).astype(np.float64)
    y = a @ rng.normal(size=6) + 0.3 * rng.normal(size=80) + 1.0
    w = rng.uniform(0.1, 1.0, 80)
    for alpha in (0.0, 0.5):
        coef, c0 = lime._ridge(jnp.asarray(a), jnp.asarray(y), jnp.asarray(w), alpha)
        ref = sk.Ridge(alpha=alpha).fit(a, y, sample_weight=w) if alpha else sk.LinearRegression().fit(a, y, sample_weight=w)
        np.testing.assert_allclose(coef, ref.coef_, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(c0, ref.intercept_, rtol=1e-3, atol=1e-4)
    coef, c0 = lime._lasso(jnp.asarray(a), jnp.asarray(y), jnp.asarray(w), 0.05)
    ref = sk.Lasso(alpha=0.05, tol=1e-10, max_iter=100000).fit(a, y, sample_weight=w)
    np.testing.assert_allclose(coef, ref.coef_, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(c0, ref.intercept_, rtol=1e-3, atol=1e-4)
    assert np.sum(np.asarray(coef) == 0) == np.sum(ref.coef_ == 0)  # the same features dropped


def test_lime_options_are_checked():
    f = lambda v: jnp.sum(v)
    with pytest.raises(ValueError, match="distance"):
        jx.lime(f, mask=jnp.arange(3), distance="manhattan")
    with pytest.raises(ValueError, match="surrogate"):
        jx.lime(f, mask=jnp.arange(3), surrogate="tree")
    with pytest.raises(ValueError, match="kernel_width must be > 0"):
        jx.lime(f, mask=jnp.arange(3), kernel_width=0.0)
    with pytest.raises(ValueError, match="samples must be"):
        jx.lime(f, mask=jnp.arange(3), samples=0)
    with pytest.raises(ValueError, match="needs more than 3 samples, got 3"):
        jx.lime(f, mask=jnp.arange(3), samples=3, alpha=0.0)
    with pytest.raises(ValueError, match="cannot determine 5 Shapley values"):
        jx.kernel_shap(f, mask=jnp.arange(5), samples=3)


def test_rise_is_its_monte_carlo_sum_over_its_masks_and_finds_the_pixel():
    f = lambda x: jnp.sum(x[..., 0] * jnp.arange(36.0).reshape(6, 6)) / 36 + 0.1
    x = jax.random.uniform(jax.random.key(0), (6, 6, 2))
    key = jax.random.key(1)
    s = jx.rise(f, masks=64, cell=3, p=0.4, baseline=0.2)(x, key=key)
    ms = np.asarray(rise.rise_masks(key, (6, 6), 64, 3, 0.4))
    by_hand = sum(float(f(0.2 + m[..., None] * (x - 0.2))) * m for m in ms) / (64 * 0.4)
    np.testing.assert_allclose(s, by_hand, rtol=1e-4, atol=1e-6)
    # masks are smooth, in [0, 1], and keep a cell with probability p on average
    big = np.asarray(rise.rise_masks(jax.random.key(2), (12, 12), 4000, 4, 0.3))
    assert big.min() >= 0 and big.max() <= 1 and abs(big.mean() - 0.3) < 0.02
    with pytest.raises(ValueError, match=r"p must lie in \(0, 1\]"):
        jx.rise(f, p=0.0)
    with pytest.raises(ValueError, match="must be an image"):
        jx.rise(lambda v: v.sum(), masks=2)(jnp.ones(5), key=key)


def test_grid_and_superpixel_masks():
    g = jx.segmentation.grid((5, 7, 3), (2, 3))
    assert g.shape == (5, 7, 1) and g.max() == 8 and g[4, 6, 0] == 8 and g[1, 2, 0] == 0
    assert doctest.testmod(jx.segmentation).failed == 0
    pytest.importorskip("skimage")
    assert doctest.testmod(segments).failed == 0
    img = np.random.default_rng(0).uniform(size=(16, 16, 3))
    for method, kw in (("slic", {"n_segments": 8}), ("felzenszwalb", {}), ("quickshift", {})):
        m = jx.segmentation.superpixels(img, method, **kw)
        ids = np.unique(m)
        assert m.shape == (16, 16, 1) and ids[0] == 0 and ids[-1] == len(ids) - 1  # usable as a mask
    with pytest.raises(ValueError, match="method"):
        jx.segmentation.superpixels(img, "watershed")
