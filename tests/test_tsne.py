"""t-SNE (jaxplain._tsne): affinities, exact and FFT gradients against float64 NumPy references,
the optax gains transformation against a hand-written delta-bar-delta, the run, bad input."""

import doctest

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

from jaxplain import _tsne  # noqa: E402
from jaxplain._tsne import TSNE, tsne  # noqa: E402
from jaxplain._tsne import affinities as A  # noqa: E402
from jaxplain._tsne import api, estimator, gradients as G, optimize, plot  # noqa: E402

KEY = jax.random.key(0)


def mixture(n, dim=5, classes=3, sep=8.0, seed=0):
    """``n`` points of ``classes`` well-separated Gaussian clusters, and their labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim)) * sep
    labels = np.arange(n) % classes
    return (centers[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_doctests_run():
    for module in (_tsne, A, G, optimize, api, estimator, plot):
        assert doctest.testmod(module).failed == 0, module.__name__


# ----------------------------------------------------------------------------- NumPy references


def np_dense_p(aff):
    """P = V + V^T from the neighbour table, in float64."""
    idx, v = np.asarray(aff.indices), np.asarray(aff.values, np.float64)
    n = idx.shape[0]
    vm = np.zeros((n, n))
    vm[np.repeat(np.arange(n), idx.shape[1]), idx.ravel()] = v.ravel()
    return vm + vm.T


def np_kl_and_grad(p, y, dof=1.0, exaggeration=1.0):
    """The KL divergence and its gradient, straight from the formulas, in float64."""
    y = np.asarray(y, np.float64)
    diff = y[:, None, :] - y[None, :, :]
    d2 = np.sum(diff**2, -1)
    u = 1.0 / (1.0 + d2 / dof)
    w = u**dof
    np.fill_diagonal(w, 0.0)
    q = w / w.sum()
    grad = 4.0 * np.einsum("ij,ijd->id", (exaggeration * p - q) * u, diff)
    nz = p > 0
    kl = np.sum(p[nz] * np.log(p[nz] / q[nz]))
    return kl, grad


# ----------------------------------------------------------------------------- affinities


def test_knn_matches_brute_force_and_blocks_do_not_matter():
    x, _ = mixture(97, dim=4)
    d2, idx = A.nearest_neighbors(x, 12)
    full = np.sum((x[:, None].astype(np.float64) - x[None]) ** 2, -1)
    np.fill_diagonal(full, np.inf)
    ref = np.argsort(full, axis=1, kind="stable")[:, :12]
    np.testing.assert_array_equal(np.asarray(idx), ref)
    np.testing.assert_allclose(np.asarray(d2), np.take_along_axis(full, ref, 1), rtol=1e-5)
    d2b, idxb = A.nearest_neighbors(x, 12, block_size=10)  # 10 blocks, the last one padded
    np.testing.assert_array_equal(np.asarray(idxb), np.asarray(idx))
    np.testing.assert_allclose(np.asarray(d2b), np.asarray(d2), rtol=1e-6)


@pytest.mark.parametrize("perplexity", [2.0, 5.0, 20.0])
def test_calibration_hits_the_target_entropy(perplexity):
    x, _ = mixture(200, dim=6)
    d2, _ = A.nearest_neighbors(x, int(3 * perplexity))
    p, beta = A.calibrate(d2, perplexity)
    p = np.asarray(p, np.float64)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    h = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    np.testing.assert_allclose(h, np.log(perplexity), atol=1e-4)
    # p is the Gaussian of the found precision: p_j ~ exp(-beta d_j^2).
    d2 = np.asarray(d2, np.float64)
    ref = np.exp(-np.asarray(beta, np.float64)[:, None] * (d2 - d2[:, :1]))
    np.testing.assert_allclose(p, ref / ref.sum(1, keepdims=True), rtol=1e-4, atol=1e-7)


def test_joint_probabilities_are_the_symmetrized_conditionals():
    x, _ = mixture(80)
    aff = A.joint_probabilities(x, perplexity=6.0)
    d2, idx = A.nearest_neighbors(x, 18)
    c, _ = A.calibrate(d2, 6.0)
    n = 80
    cm = np.zeros((n, n))
    cm[np.repeat(np.arange(n), 18), np.asarray(idx).ravel()] = np.asarray(c).ravel()
    ref = (cm + cm.T) / (2 * n)
    p = np.asarray(A.dense(aff), np.float64)
    np.testing.assert_allclose(p, ref, atol=1e-8)
    np.testing.assert_allclose(p, p.T)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)
    nz = ref > 0
    np.testing.assert_allclose(float(aff.p_log_p), np.sum(ref[nz] * np.log(ref[nz])), rtol=1e-5)


def test_duplicates_give_finite_affinities():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros((30, 3)), rng.normal(size=(20, 3))]).astype(np.float32)
    aff = A.joint_probabilities(x, perplexity=5.0)  # 15 neighbours: rows of only duplicates
    p = np.asarray(A.dense(aff))
    assert np.isfinite(p).all() and np.isfinite(float(aff.p_log_p))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-5)
    row = np.asarray(A.calibrate(jnp.zeros((1, 15)), 5.0)[0])
    np.testing.assert_allclose(row, 1.0 / 15, rtol=1e-6)  # all distances equal: uniform


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("dof", [1.0, 0.5, 3.0])
def test_exact_gradient_equals_float64_numpy_reference(dof):
    with jax.enable_x64(True):
        x, _ = mixture(70)
        aff = A.joint_probabilities(jnp.asarray(x, jnp.float64), perplexity=8.0)
        y = jax.random.normal(jax.random.key(3), (70, 2), jnp.float64) * 3.0
        out = G.kl_gradient(y, aff, method="exact", dof=dof, exaggeration=4.0)
        assert out.gradient.dtype == jnp.float64
        p = np_dense_p(aff)
        kl_ref, _ = np_kl_and_grad(p, y, dof)
        _, g_ref = np_kl_and_grad(p, y, dof, exaggeration=4.0)
        np.testing.assert_allclose(np.asarray(out.gradient), g_ref, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(float(out.kl), kl_ref, rtol=1e-10)
        # Blocked rows (lax.map) give the same.
        blocked = G.kl_gradient(y, aff, method="exact", dof=dof, exaggeration=4.0, block_size=16)
        np.testing.assert_allclose(np.asarray(blocked.gradient), g_ref, rtol=1e-10, atol=1e-14)


def test_exact_gradient_float32_and_is_the_derivative_of_the_kl():
    x, _ = mixture(70)
    aff = A.joint_probabilities(x, perplexity=8.0)
    y = jax.random.normal(jax.random.key(3), (70, 3)) * 3.0  # 3-D embeddings: exact only
    out = G.kl_gradient(y, aff, method="exact")
    _, g_ref = np_kl_and_grad(np_dense_p(aff), y)
    np.testing.assert_allclose(np.asarray(out.gradient), g_ref, rtol=2e-4, atol=1e-6)
    auto = jax.grad(lambda v: G.kl_gradient(v, aff, method="exact").kl)(y)
    np.testing.assert_allclose(np.asarray(auto), np.asarray(out.gradient), rtol=1e-3, atol=1e-6)


@pytest.fixture(scope="module")
def run_2000():
    """2,000 points of a 10-cluster mixture: affinities and the embedding after early
    exaggeration (250 FFT iterations) and after 50 more."""
    x, _ = mixture(2000, dim=20, classes=10, sep=2.0, seed=1)
    y_ee, info = tsne(x, key=KEY, method="fft", n_iter=0, progress=False, return_info=True)
    y_50 = tsne(x, key=KEY, method="fft", init=y_ee, early_exaggeration_iter=0, n_iter=50,
                progress=False)
    return info.affinities, y_ee, y_50


@pytest.mark.parametrize("exaggeration", [12.0, 1.0])
def test_fft_gradient_within_1e2_of_exact_on_2000_points(run_2000, exaggeration):
    aff, y, _ = run_2000
    nb = G.n_boxes_for(float(jnp.max(y) - jnp.min(y)))
    exact = G.kl_gradient(y, aff, method="exact", exaggeration=exaggeration)
    fft = G.kl_gradient(y, aff, method="fft", exaggeration=exaggeration, n_boxes=nb)
    rel = float(jnp.linalg.norm(fft.gradient - exact.gradient) / jnp.linalg.norm(exact.gradient))
    assert rel < 1e-2, rel
    assert abs(float(fft.kl) - float(exact.kl)) < 1e-3 * abs(float(exact.kl))


def test_fft_repulsion_within_1e2_of_exact_after_exaggeration(run_2000):
    # After early exaggeration attraction and repulsion nearly cancel, so the total gradient's
    # relative error grows (as openTSNE's does); the approximated part, repulsion, stays close.
    _, _, y = run_2000
    nb = G.n_boxes_for(float(jnp.max(y) - jnp.min(y)))
    fe, ze = G.repulsion_exact(y)
    ff, zf = G.repulsion_fft(y, n_boxes=nb)
    assert float(jnp.linalg.norm(ff - fe) / jnp.linalg.norm(fe)) < 1e-2
    assert abs(float(zf / ze) - 1.0) < 1e-3
    ff2, _ = G.repulsion_fft(y, n_boxes=2 * nb)  # finer boxes, smaller error
    assert jnp.linalg.norm(ff2 - fe) < 0.5 * jnp.linalg.norm(ff - fe)


def test_fft_gradient_in_one_dimension():
    y = jnp.linspace(-20.0, 20.0, 300)[:, None] + 0.1 * jax.random.normal(KEY, (300, 1))
    fe, ze = G.repulsion_exact(y)
    ff, zf = G.repulsion_fft(y, n_boxes=100)  # boxes 0.4 wide
    err = float(jnp.linalg.norm(ff - fe) / jnp.linalg.norm(fe))
    assert err < 1e-2 and abs(float(zf / ze) - 1.0) < 1e-4
    ff, zf = G.repulsion_fft(y, n_boxes=200)  # error ~ width^3 (quadratic interpolation)
    assert float(jnp.linalg.norm(ff - fe) / jnp.linalg.norm(fe)) < 0.25 * err


def test_gradient_of_duplicate_embedding_points_is_finite():
    x, _ = mixture(40)
    aff = A.joint_probabilities(x, perplexity=5.0)
    y = jnp.zeros((40, 2)).at[20:].set(1.0)  # two stacks of identical points
    for method in ("exact", "fft"):
        out = G.kl_gradient(y, aff, method=method)
        assert np.isfinite(np.asarray(out.gradient)).all() and np.isfinite(float(out.kl))


def test_kl_gradient_rejects_unknown_method_and_fft_in_3d():
    x, _ = mixture(40)
    aff = A.joint_probabilities(x, perplexity=5.0)
    with pytest.raises(ValueError, match="unknown method 'bh'"):
        G.kl_gradient(jnp.zeros((40, 2)), aff, method="bh")
    with pytest.raises(ValueError, match="1-D and 2-D .*method='exact'"):
        G.kl_gradient(jnp.zeros((40, 3)), aff, method="fft")
    with pytest.raises(ValueError, match="dof .* > 0"):
        G.kl_gradient(jnp.zeros((40, 2)), aff, dof=0.0)


# ----------------------------------------------------------------------------- the optimizer


def np_delta_bar_delta(grads, lrs, moms, min_gain=0.01, max_step_norm=None):
    """van der Maaten's bhtsne update, step by step in NumPy."""
    gains = np.ones_like(grads[0])
    v = np.zeros_like(grads[0])
    ups = []
    for g, lr, m in zip(grads, lrs, moms):
        gains = np.where(np.sign(g) != np.sign(v), gains + 0.2, gains * 0.8)
        gains = np.maximum(gains, min_gain)
        v = m * v - lr * gains * g
        if max_step_norm is not None:
            norm = np.linalg.norm(v, axis=-1, keepdims=True)
            v = np.where(norm > max_step_norm, v * max_step_norm / norm, v)
        ups.append(v.copy())
    return ups, gains


@pytest.mark.parametrize("max_step_norm", [None, 0.5])
def test_gains_rule_matches_hand_written_delta_bar_delta(max_step_norm):
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(6, 2)) for _ in range(12)]
    grads[3][0, 0] = 0.0  # sign(0) counts as a flip, as in bhtsne
    switch = 5
    lrs = [10.0 if t < switch else 40.0 for t in range(12)]
    moms = [0.5 if t < switch else 0.8 for t in range(12)]
    tx = optimize.delta_bar_delta(
        learning_rate=lambda c: jnp.where(c < switch, 10.0, 40.0),
        momentum=lambda c: jnp.where(c < switch, 0.5, 0.8),
        min_gain=0.01,
        max_step_norm=max_step_norm,
    )
    with jax.enable_x64(True):
        params = jnp.zeros((6, 2), jnp.float64)
        state = tx.init(params)
        ours = []
        for g in grads:
            up, state = tx.update(jnp.asarray(g), state, params)
            ours.append(np.asarray(up))
        ref, ref_gains = np_delta_bar_delta(grads, lrs, moms, max_step_norm=max_step_norm)
        for a, b in zip(ours, ref):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(state.gains), ref_gains, rtol=1e-12)
        assert int(state.count) == 12


def test_gains_floor_and_pytrees_and_optax_chain():
    tx = optax.chain(optax.scale(1.0), optimize.delta_bar_delta(1.0, 0.0, min_gain=0.3))
    params = {"a": jnp.zeros(3), "b": (jnp.zeros((2, 2)),)}
    state = tx.init(params)
    g = {"a": jnp.ones(3), "b": (jnp.ones((2, 2)),)}
    for _ in range(8):  # the gradient flips sign each step: gains shrink by 0.8 down to 0.3
        updates, state = tx.update(g, state, params)
        g = jax.tree_util.tree_map(lambda a: -a, g)
    gains = state[1].gains
    np.testing.assert_allclose(np.asarray(gains["a"]), 0.3)
    np.testing.assert_allclose(np.asarray(gains["b"][0]), 0.3)
    assert jax.tree_util.tree_structure(updates) == jax.tree_util.tree_structure(params)


def test_delta_bar_delta_rejects_bad_options():
    with pytest.raises(TypeError, match="learning_rate must be a number or an optax schedule"):
        optimize.delta_bar_delta("fast")
    with pytest.raises(ValueError, match="momentum must be >= 0"):
        optimize.delta_bar_delta(1.0, -0.5)
    with pytest.raises(ValueError, match="max_step_norm must be None or a number > 0"):
        optimize.delta_bar_delta(1.0, max_step_norm=0.0)


# ----------------------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def clusters():
    return mixture(150, dim=5, classes=3)


def _knn_accuracy(y, labels):
    y = np.asarray(y, np.float64)
    d = np.sum((y[:, None] - y[None]) ** 2, -1)
    np.fill_diagonal(d, np.inf)
    return np.mean(labels[np.argmin(d, 1)] == labels)


def test_tsne_separates_clusters_and_reports_kl(clusters):
    x, labels = clusters
    y, info = tsne(x, key=KEY, perplexity=15.0, n_iter=250, progress=False, return_info=True)
    assert y.shape == (150, 2) and y.dtype == jnp.float32
    assert info.method == "exact" and info.n_iter == 500
    assert info.learning_rate == (150 / 12, 150.0)
    assert _knn_accuracy(y, labels) == 1.0
    hist = info.kl_history
    assert hist.shape == (10, 2) and list(hist[:, 0]) == list(range(50, 501, 50))
    assert hist[-1, 1] < hist[0, 1]
    ref_kl, _ = np_kl_and_grad(np_dense_p(info.affinities), y)
    np.testing.assert_allclose(info.kl_divergence, ref_kl, rtol=1e-4)
    assert np.allclose(np.asarray(y).mean(0), 0.0, atol=1e-4)  # kept centred


def test_tsne_is_deterministic_given_the_key(clusters):
    x, _ = clusters
    run = lambda key, init: np.asarray(
        tsne(x, key=key, perplexity=15.0, n_iter=50, init=init, progress=False)
    )
    a, b = run(KEY, "pca"), run(KEY, "pca")
    np.testing.assert_array_equal(a, b)
    c, d = run(KEY, "random"), run(jax.random.key(1), "random")
    assert not np.allclose(c, d)


def test_tsne_fft_method_and_one_dimension(clusters):
    x, labels = clusters
    y, info = tsne(x, key=KEY, perplexity=15.0, n_iter=250, method="fft", progress=False,
                   return_info=True)
    assert info.method == "fft" and _knn_accuracy(y, labels) == 1.0
    y1 = tsne(x, key=KEY, perplexity=15.0, n_iter=100, n_components=1, method="fft",
              progress=False)
    assert y1.shape == (150, 1) and np.isfinite(np.asarray(y1)).all()


def test_tsne_with_duplicate_points_has_no_nans(clusters):
    x, _ = clusters
    x = x.copy()
    x[:60] = x[0]  # 60 copies of one point: more than its 45 neighbours
    y, info = tsne(x, key=KEY, perplexity=15.0, n_iter=50, progress=False, return_info=True)
    assert np.isfinite(np.asarray(y)).all() and np.isfinite(info.kl_divergence)
    same = np.ones_like(x)  # every point identical
    y, info = tsne(same, key=KEY, perplexity=15.0, n_iter=20, progress=False, return_info=True)
    assert np.isfinite(np.asarray(y)).all() and np.isfinite(info.kl_divergence)


def test_tsne_init_array_dof_and_exaggeration(clusters):
    x, labels = clusters
    init = np.asarray(jax.random.normal(KEY, (150, 2))) * 1e-4
    y = tsne(x, key=KEY, perplexity=15.0, n_iter=250, init=init, dof=0.7, exaggeration=2.0,
             progress=False)
    assert _knn_accuracy(y, labels) == 1.0


def test_progress_bar_can_be_shown_and_disabled(clusters, capsys):
    x, _ = clusters
    tsne(x, key=KEY, perplexity=15.0, n_iter=0, early_exaggeration_iter=20, progress=True)
    assert "t-SNE" in capsys.readouterr().err
    tsne(x, key=KEY, perplexity=15.0, n_iter=0, early_exaggeration_iter=20, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_chunk_boundaries():
    assert api._boundaries(35, 10, 50, 25) == [10, 20, 25, 30, 35]
    assert api._boundaries(100, 10, 25, 250) == [10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 100]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(x=np.zeros((10, 3)), perplexity=10.0), ValueError,
         r"perplexity must be less than N - 1 = 9 .* got perplexity=10"),
        (dict(x=np.zeros((10, 3)), perplexity=9.0), ValueError, "less than N - 1 = 9"),
        (dict(x=np.zeros((3, 3))), ValueError, "at least 4 points, got x of shape \\(3, 3\\)"),
        (dict(x=np.zeros(30)), ValueError, r"2-D \(n_points, n_features\), got shape \(30,\).*x\[:, None\]"),
        (dict(x=np.zeros((30, 2, 2))), ValueError, r"x.reshape\(len\(x\), -1\)"),
        (dict(x=np.zeros((30, 2), complex)), TypeError, "real numbers, got dtype complex128"),
        (dict(x="data"), TypeError, "must be an array"),
        (dict(perplexity=0.5), ValueError, "perplexity must be a finite number >= 1"),
        (dict(n_neighbors=5, perplexity=5.0), ValueError, r"n_neighbors must be in \(perplexity"),
        (dict(method="barnes_hut"), ValueError, "Barnes-Hut.* is not implemented"),
        (dict(method="fast"), ValueError, "unknown method 'fast'"),
        (dict(method="fft", n_components=3), ValueError, "method='fft' embeds in 1 or 2"),
        (dict(init=np.zeros((5, 2))), ValueError, r"shape \(N, n_components\) = \(30, 2\)"),
        (dict(init="spectral"), ValueError, "unknown init 'spectral'"),
        (dict(learning_rate=-1.0), ValueError, "learning_rate"),
        (dict(learning_rate="fast"), ValueError, "learning_rate must be 'auto' or a number"),
        (dict(dof=0.0), ValueError, "dof must be > 0"),
        (dict(n_iter=1.5), TypeError, "n_iter must be an int"),
        (dict(progress=1), TypeError, "progress must be True or False"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, error, match):
    x = kwargs.pop("x", mixture(30)[0])
    kwargs.setdefault("perplexity", 5.0)
    kwargs.setdefault("progress", False)
    with pytest.raises(error, match=match):
        tsne(x, key=KEY, **kwargs)


def test_nan_rows_are_named():
    x, _ = mixture(30)
    x[[3, 17]] = np.nan
    x[5, 1] = np.inf
    with pytest.raises(ValueError, match=r"3 row\(s\) with NaN or Inf \(rows 3, 5, 17\)"):
        tsne(x, key=KEY, perplexity=5.0, progress=False)


def test_missing_key_and_traced_input():
    x, _ = mixture(30)
    with pytest.raises(TypeError, match="needs an explicit key"):
        tsne(x, key=None)
    with pytest.raises(TypeError, match="traced value"):
        jax.jit(lambda v: tsne(v, key=KEY, perplexity=5.0))(x)


# ----------------------------------------------------------------------------- the TSNE class


def test_tsne_class_follows_scikit_learn(clusters):
    x, labels = clusters
    model = TSNE(perplexity=15, max_iter=300, random_state=0, verbose=False)
    out = model.fit_transform(x)
    assert isinstance(out, np.ndarray) and out.shape == (150, 2)
    assert model.n_iter_ == 300 and model.n_features_in_ == 5 and model.method_ == "exact"
    assert np.isfinite(model.kl_divergence_) and model.embedding_ is out
    ref = tsne(x, key=jax.random.key(0), perplexity=15.0, n_iter=50, progress=False)
    np.testing.assert_array_equal(out, np.asarray(ref))  # max_iter counts early exaggeration
    # openTSNE's names for the same options.
    other = TSNE(perplexity=15, n_iter=50, initialization="pca", negative_gradient_method="exact",
                 random_state=jax.random.key(0), progress=False)
    np.testing.assert_array_equal(other.fit_transform(x), out)
    assert model.get_params()["perplexity"] == 15
    assert model.set_params(perplexity=7).perplexity == 7
    assert "perplexity=7" in repr(model)


def test_tsne_class_rejects_conflicting_names(clusters):
    x, _ = clusters
    with pytest.raises(ValueError, match="give max_iter .* or n_iter .* not both"):
        TSNE(max_iter=300, n_iter=50).fit(x)
    with pytest.raises(ValueError, match="give init or initialization"):
        TSNE(init="pca", initialization="random").fit(x)
    with pytest.raises(ValueError, match="max_iter=100 counts all iterations"):
        TSNE(max_iter=100).fit(x)
    with pytest.raises(ValueError, match="min_grad_norm .* not supported"):
        TSNE(min_grad_norm=1e-7).fit(x)
    with pytest.raises(TypeError, match="random_state must be None, an int seed or a JAX key"):
        TSNE(random_state="seed").fit(x)
    with pytest.raises(ValueError, match="unknown parameter 'n_jobs'"):
        TSNE().set_params(n_jobs=2)


def test_tsne_class_clones_with_scikit_learn():
    base = pytest.importorskip("sklearn.base")
    model = TSNE(perplexity=12, max_iter=400)
    copy = base.clone(model)
    assert copy.get_params() == model.get_params() and copy is not model


# ----------------------------------------------------------------------------- scatter plot


def test_scatter_colours_classes_with_a_legend():
    y = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.repeat([2, 0, 1], 10)
    ax = plot.scatter(y, labels, class_names=["a", "b", "c"], title="t")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    assert len(ax.collections) == 3 and ax.get_title() == "t"
    colours = {tuple(c.get_facecolor()[0][:3]) for c in ax.collections}
    assert len(colours) == 3
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    np.testing.assert_allclose(np.sort(offsets, 0), np.sort(y, 0))


def test_scatter_real_labels_many_classes_and_no_labels():
    y = jnp.asarray(np.random.default_rng(0).normal(size=(60, 2)))
    fig, axes = plt.subplots(1, 3)
    plot.scatter(y, np.linspace(0, 1, 60), ax=axes[0])  # real values: one collection, colour bar
    plot.scatter(y, np.arange(60) % 30, ax=axes[1])  # 30 classes: colour map
    plot.scatter(y, ax=axes[2])
    assert [len(a.collections) for a in axes] == [1, 1, 1]
    assert len(fig.axes) == 5  # two colour bars
    assert axes[2].get_legend() is None


def test_scatter_bad_input():
    with pytest.raises(ValueError, match=r"shape \(N, 2\), got \(10, 3\)"):
        plot.scatter(np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"one entry per point, shape \(10,\), got \(9,\)"):
        plot.scatter(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="NaN or Inf"):
        plot.scatter(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="too few for label"):
        plot.scatter(np.zeros((4, 2)), ["x", "y", "z", "z"], class_names=["only"])
    with pytest.raises(TypeError, match="ax must be a Matplotlib Axes"):
        plot.scatter(np.zeros((4, 2)), ax="left")
