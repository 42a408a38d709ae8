"""jaxplain.similarity: CKA invariances and the HSIC formula, CCA / SVCCA / PWCCA against SciPy and
NumPy references in float64, PCA, and bad input."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxplain import similarity as S

RNG = np.random.default_rng(0)


def test_doctests_run():
    assert doctest.testmod(S).failed == 0


def layers(n=120, p=10, q=8, shared=4, noise=0.3, seed=0):
    """Two 'layers' sharing a ``shared``-dimensional signal, plus noise of their own."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, shared))
    x = z @ rng.normal(size=(shared, p)) + noise * rng.normal(size=(n, p))
    y = np.tanh(z @ rng.normal(size=(shared, q))) + noise * rng.normal(size=(n, q))
    return x.astype(np.float32), y.astype(np.float32)


def orthogonal(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q.astype(np.float32)


# ----------------------------------------------------------------------------- references


def ref_cca(x, y):
    """Canonical correlations by SciPy: singular values of Sxx^-1/2 Sxy Syy^-1/2, in float64."""
    x = np.asarray(x, np.float64) - np.mean(x, 0)
    y = np.asarray(y, np.float64) - np.mean(y, 0)
    sxx, syy, sxy = x.T @ x, y.T @ y, x.T @ y
    wx = np.real(scipy.linalg.inv(scipy.linalg.sqrtm(sxx)))
    wy = np.real(scipy.linalg.inv(scipy.linalg.sqrtm(syy)))
    return np.linalg.svd(wx @ sxy @ wy, compute_uv=False)


def ref_svcca(x, y, keep):
    """Raghu et al.'s recipe in NumPy: top singular directions explaining `keep` of the variance,
    projected data, CCA (by QR and SVD), mean correlation."""

    def reduce(a):
        a = np.asarray(a, np.float64) - np.mean(a, 0)
        u, s, vt = np.linalg.svd(a, full_matrices=False)
        frac = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.searchsorted(frac, keep - 1e-9) + 1)
        return a @ vt[:k].T

    xr, yr = reduce(x), reduce(y)
    qx, _ = np.linalg.qr(xr - xr.mean(0))
    qy, _ = np.linalg.qr(yr - yr.mean(0))
    rho = np.linalg.svd(qx.T @ qy, compute_uv=False)
    return rho.mean(), rho


def ref_hsic(k, l):
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def ref_cka(x, y, kernel):
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)

    def gram(a):
        if kernel == "linear":
            return a @ a.T
        d2 = np.sum((a[:, None] - a[None]) ** 2, -1)
        return np.exp(-d2 / (2 * np.median(d2)))

    k, l = gram(x), gram(y)
    return ref_hsic(k, l) / np.sqrt(ref_hsic(k, k) * ref_hsic(l, l))


# ----------------------------------------------------------------------------- CKA


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_cka_is_one_for_identical_inputs_and_matches_the_hsic_formula(kernel):
    x, y = layers()
    np.testing.assert_allclose(float(S.cka(x, x, kernel=kernel)), 1.0, rtol=1e-5)
    ours = float(S.cka(x, y, kernel=kernel))
    np.testing.assert_allclose(ours, ref_cka(x, y, kernel), rtol=1e-4)
    assert 0.0 < ours < 1.0
    np.testing.assert_allclose(float(S.cka(y, x, kernel=kernel)), ours, rtol=1e-5)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling(kernel):
    x, y = layers()
    base = float(S.cka(x, y, kernel=kernel))
    x2 = 7.5 * x @ orthogonal(10, 1) + 3.0  # rotate, scale, shift
    y2 = 0.01 * y @ orthogonal(8, 2)
    np.testing.assert_allclose(float(S.cka(x2, y2, kernel=kernel)), base, rtol=1e-4)
    # Not invariant to arbitrary invertible maps (CCA is; CKA is not, by design).
    a = np.diag(np.linspace(0.1, 10.0, 10)).astype(np.float32)
    assert abs(float(S.cka(x @ a, y, kernel=kernel)) - base) > 1e-3


def test_linear_cka_gram_and_feature_forms_agree():
    x, y = layers(n=20, p=40, q=30)  # n^2 < p q: the Gram form
    x2, y2 = layers(n=200, p=5, q=4)  # the feature form
    for a, b in ((x, y), (x2, y2)):
        np.testing.assert_allclose(float(S.cka(a, b)), ref_cka(a, b, "linear"), rtol=1e-4)


def test_cka_is_jittable_and_differentiable():
    x, y = layers()
    f = jax.jit(lambda a, b: S.cka(a, b, kernel="rbf"))
    np.testing.assert_allclose(float(f(x, y)), float(S.cka(x, y, kernel="rbf")), rtol=1e-5)
    g = jax.grad(lambda a: S.cka(a, y))(jnp.asarray(x))
    assert g.shape == x.shape and np.isfinite(np.asarray(g)).all()
    eps = 1e-2  # the gradient points uphill
    assert float(S.cka(x + eps * g / jnp.linalg.norm(g), y)) > float(S.cka(x, y))


def test_conv_activations_are_flattened_per_input():
    x = RNG.normal(size=(30, 4, 4, 3)).astype(np.float32)
    y = RNG.normal(size=(30, 6)).astype(np.float32)
    np.testing.assert_allclose(float(S.cka(x, y)), float(S.cka(x.reshape(30, -1), y)), rtol=1e-6)


# ----------------------------------------------------------------------------- CCA and SVCCA


def test_cca_matches_scipy_reference():
    x, y = layers()
    res = S.cca(x, y)
    ref = ref_cca(x, y)
    np.testing.assert_allclose(np.asarray(res.correlations), ref, atol=2e-5)
    with jax.enable_x64(True):
        res64 = S.cca(jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64))
        np.testing.assert_allclose(np.asarray(res64.correlations), ref, rtol=1e-9, atol=1e-12)
        # The variates are the centred data times the weights, orthonormal, paired by rho.
        xc = np.asarray(x, np.float64) - np.mean(np.asarray(x, np.float64), 0)
        u = np.asarray(res64.x_variates)
        np.testing.assert_allclose(xc @ np.asarray(res64.x_weights), u, atol=1e-10)
        np.testing.assert_allclose(u.T @ u, np.eye(8), atol=1e-10)
        cross = u.T @ np.asarray(res64.y_variates)
        np.testing.assert_allclose(cross, np.diag(ref), atol=1e-10)


def test_cca_is_invariant_to_invertible_maps_and_handles_rank_deficiency():
    x, y = layers()
    a = RNG.normal(size=(10, 10)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(S.cca(x @ a, y).correlations), np.asarray(S.cca(x, y).correlations), atol=1e-4
    )
    xd = np.concatenate([x[:, :3], x[:, :3] @ RNG.normal(size=(3, 4)).astype(np.float32)], 1)
    res = S.cca(xd, y)  # 7 columns of rank 3
    assert int(res.rank_x) == 3 and int(res.rank_y) == 8
    np.testing.assert_allclose(np.asarray(res.correlations[:3]), ref_cca(x[:, :3], y), atol=2e-5)
    np.testing.assert_array_equal(np.asarray(res.correlations[3:]), 0.0)
    np.testing.assert_array_equal(np.asarray(res.x_weights[:, 3:]), 0.0)


@pytest.mark.parametrize("keep", [0.99, 0.6])
def test_svcca_matches_numpy_reference(keep):
    x, y = layers(p=12, q=9, noise=0.1)
    ref, _ = ref_svcca(x, y, keep)
    np.testing.assert_allclose(float(S.svcca(x, y, keep=keep)), ref, rtol=1e-4)
    with jax.enable_x64(True):
        ours = S.svcca(jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64), keep=keep)
        np.testing.assert_allclose(float(ours), ref, rtol=1e-10)


def test_svcca_with_a_number_of_directions_and_under_jit():
    x, y = layers()
    px, py = S.pca(x, 5).projected, S.pca(y, 5).projected
    expected = float(jnp.mean(S.cca(px, py).correlations))
    np.testing.assert_allclose(float(S.svcca(x, y, keep=5)), expected, rtol=1e-5)
    jitted = jax.jit(lambda a, b: S.svcca(a, b, keep=0.99))
    np.testing.assert_allclose(float(jitted(x, y)), float(S.svcca(x, y)), rtol=1e-6)
    assert float(S.svcca(x, 2.0 * x @ orthogonal(10, 3))) == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------------- PWCCA


def ref_pwcca(x, y):
    """Morcos et al.'s weighting in NumPy (centred activations), on the side with fewer neurons."""
    if x.shape[1] > y.shape[1]:
        x, y = y, x
    xc = np.asarray(x, np.float64) - np.mean(x, 0)
    yc = np.asarray(y, np.float64) - np.mean(y, 0)
    qx, _ = np.linalg.qr(xc)
    qy, _ = np.linalg.qr(yc)
    a, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    h = qx @ a  # canonical variates of x, orthonormal
    alpha = np.sum(np.abs(h.T @ xc), axis=1)
    alpha = alpha / alpha.sum()
    return np.sum(alpha * rho)


def test_pwcca_matches_numpy_reference_and_is_one_for_identical_inputs():
    x, y = layers()
    np.testing.assert_allclose(float(S.pwcca(x, y)), ref_pwcca(x, y), rtol=1e-4)
    np.testing.assert_allclose(float(S.pwcca(y, x)), ref_pwcca(y, x), rtol=1e-4)
    np.testing.assert_allclose(float(S.pwcca(x, x)), 1.0, rtol=1e-5)
    # Between the plain mean CCA and the top correlation: weights favour strong directions here.
    rho = np.asarray(S.cca(x, y).correlations)
    assert rho.mean() < float(S.pwcca(x, y)) <= rho.max() + 1e-6


# ----------------------------------------------------------------------------- PCA


def test_pca_matches_numpy():
    x, _ = layers()
    res = S.pca(x)
    xc = np.asarray(x, np.float64) - np.mean(x, 0)
    evals = np.sort(np.linalg.eigvalsh(np.cov(xc.T)))[::-1]
    np.testing.assert_allclose(np.asarray(res.explained_variance), evals, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(jnp.sum(res.explained_variance_ratio)), 1.0, rtol=1e-5)
    comps = np.asarray(res.components)
    np.testing.assert_allclose(comps @ comps.T, np.eye(10), atol=1e-5)
    np.testing.assert_allclose(np.asarray(res.projected), xc @ comps.T, atol=1e-4)
    assert (np.abs(comps).argmax(1) == np.argmax(comps, 1)).all()  # largest entry positive
    k = S.pca(x, 0.9)
    frac = np.cumsum(evals) / evals.sum()
    assert k.projected.shape == (120, int(np.searchsorted(frac, 0.9) + 1))
    assert S.pca(x, 3).components.shape == (3, 10)


def test_pca_fraction_cannot_be_traced():
    x, _ = layers()
    with pytest.raises(TypeError, match="cannot trace; pass an int"):
        jax.jit(lambda a: S.pca(a, 0.9).projected)(x)
    assert jax.jit(lambda a: S.pca(a, 2).projected)(x).shape == (120, 2)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x, y: S.cka(x, y[:50]), ValueError, "same number of rows\\), got 120 and 50"),
        (lambda x, y: S.cka(x[:, 0], y), ValueError, r"got shape \(120,\). .*x\[:, None\]"),
        (lambda x, y: S.cca(x[:1], y[:1]), ValueError, "at least 2 inputs"),
        (lambda x, y: S.cka(x, y, kernel="cosine"), ValueError, "unknown kernel 'cosine'"),
        (lambda x, y: S.cka(x, y, threshold=0.0), ValueError, "threshold must be > 0"),
        (lambda x, y: S.svcca(x, y, keep=1.5), ValueError, r"fraction of variance to keep, in \(0, 1\]"),
        (lambda x, y: S.svcca(x, y, keep=0), ValueError, "keep must be >= 1"),
        (lambda x, y: S.svcca(x, y, keep="all"), TypeError, "keep must be a variance fraction"),
        (lambda x, y: S.pca(x, 11), ValueError, "n_components must be <= min"),
        (lambda x, y: S.pca(x, 1.5), ValueError, "share of variance to keep"),
        (lambda x, y: S.cka("x", y), TypeError, "array of activations"),
        (lambda x, y: S.cka(x.astype(complex), y), TypeError, "real numbers, got dtype complex"),
    ],
)
def test_bad_input(call, error, match):
    x, y = layers()
    with pytest.raises(error, match=match):
        call(x, y)


def test_nan_input_is_rejected():
    x, y = layers()
    x[4, 2] = np.nan
    for fn in (S.cka, S.cca, S.svcca, S.pwcca):
        with pytest.raises(ValueError, match="x contains NaN or Inf"):
            fn(x, y)
