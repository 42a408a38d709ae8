"""t-SNE: the functional :func:`tsne` and the scikit-learn style :class:`TSNE`.

The run, as in openTSNE and scikit-learn: affinities (exact k-NN on ``3 * perplexity``
neighbours, bandwidths by bisection, symmetrized), a PCA initialization scaled to standard
deviation 1e-4, ``early_exaggeration_iter`` steps with ``P`` multiplied by ``early_exaggeration``
and momentum ``initial_momentum``, then ``n_iter`` steps without exaggeration and momentum
``final_momentum``, both with the gains optimizer of ``optimize.py`` and the exact or FFT gradient
of ``gradients.py``.

How the loop runs: the steps are compiled in chunks of :data:`CHUNK` iterations, each a
``lax.fori_loop`` whose trip count is traced (one compilation serves every chunk length), called
from a Python loop that re-sizes the FFT grid to the embedding between chunks and moves the progress
bar. Measured on the 2-core CPU (best of 5 runs of 100 iterations, ms per iteration; the same jitted
step called once per iteration from Python, against chunks of 10 and 50):

==========================  ===========  ========  ========
case                        Python loop  fori 10   fori 50
==========================  ===========  ========  ========
10,000 points, FFT, 64 box  9.52         9.46      9.19
10,000 points, FFT, 100 box 14.87        15.03     14.44
2,000 points, FFT, 100 box  11.27        10.78     10.64
1,000 points, exact         1.56         1.36      1.29
==========================  ===========  ========  ========

Unlike convolutions (``jaxplain._paths``), these steps ran no slower inside a loop; the chunks
save the per-call dispatch and host synchronization, which matter most for small problems.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxplain import _checks
from jaxplain._tsne import affinities as _aff
from jaxplain._tsne import gradients as _grad
from jaxplain._tsne.optimize import delta_bar_delta

__all__ = ["tsne", "TSNEInfo", "METHODS", "EXACT_MAX_POINTS"]

METHODS = ("auto", "exact", "fft")

# method="auto" uses the exact gradient up to this many points and the FFT gradient above. Whole
# default runs (750 iterations, 50-D mixture, 2-core CPU, warm): 1,500 points exact 2.9 s / FFT
# 3.7 s; 2,000 points 5.3 s / 4.2 s; 3,000 points 12.7 s / 5.1 s. Exact has no interpolation error.
EXACT_MAX_POINTS = 1500

# Iterations per compiled chunk (a lax.fori_loop). Between chunks the FFT grid is re-sized to the
# embedding's extent (a host read; within a chunk the boxes widen with the embedding, which costs
# accuracy, not correctness) and the progress bar moves.
CHUNK = 10


class TSNEInfo(NamedTuple):
    """What a t-SNE run reports besides the embedding (``tsne(..., return_info=True)``).

    Attributes:
      kl_divergence: ``KL(P || Q)`` of the final embedding (FFT-approximated ``Z`` when
        ``method == "fft"``).
      kl_history: ``(m, 2)`` float64 array of ``(iteration, KL)`` pairs recorded every ``kl_every``
        iterations (KL of the un-exaggerated ``P`` during early exaggeration too).
      method: the gradient used, ``"exact"`` or ``"fft"``.
      learning_rate: ``(early exaggeration phase, later phase)`` learning rates.
      n_iter: iterations run in all.
      affinities: the :class:`~jaxplain._tsne.affinities.Affinities` ``P`` of the data.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain import tsne
      >>> x = jax.random.normal(jax.random.key(0), (60, 3))
      >>> _, info = tsne(x, key=jax.random.key(0), perplexity=10.0, n_iter=50, kl_every=100,
      ...                progress=False, return_info=True)
      >>> info.method, info.n_iter, info.kl_history[:, 0].tolist()
      ('exact', 300, [100.0, 200.0, 300.0])

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
    """

    kl_divergence: float
    kl_history: np.ndarray
    method: str
    learning_rate: tuple[float, float]
    n_iter: int
    affinities: _aff.Affinities


# --------------------------------------------------------------------------- checks


def _check_x(name: str, x: Any) -> jax.Array:
    arr = _checks.check_array(name, "x", x, expected="an array of shape (n_points, n_features)", concrete=True)
    dtype = arr.dtype
    if arr.ndim != 2:
        hint = (
            " For one feature per point use x[:, None]."
            if arr.ndim == 1
            else " Flatten each example first, e.g. x.reshape(len(x), -1)."
            if arr.ndim > 2
            else ""
        )
        raise ValueError(
            f"jaxplain.{name}: x must be 2-D (n_points, n_features), got shape {arr.shape}.{hint}"
        )
    n = arr.shape[0]
    if n < 4:
        raise ValueError(
            f"jaxplain.{name}: t-SNE needs at least 4 points, got x of shape {arr.shape}; with so "
            f"few points there is nothing to embed."
        )
    if arr.shape[1] < 1:
        raise ValueError(f"jaxplain.{name}: x has no features (shape {arr.shape}).")
    if not jnp.issubdtype(dtype, jnp.floating):
        arr = np.asarray(arr, dtype=np.float32)
    xj = jnp.asarray(arr)
    finite_rows = np.asarray(jnp.all(jnp.isfinite(xj), axis=1))
    if not finite_rows.all():
        bad = np.flatnonzero(~finite_rows)
        shown = ", ".join(str(i) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise ValueError(
            f"jaxplain.{name}: x has {len(bad)} row(s) with NaN or Inf (rows {shown}); t-SNE "
            f"needs finite distances. Drop or impute them first, e.g. x[np.isfinite(x).all(1)]."
        )
    return xj


def _check_perplexity(name: str, perplexity: Any, n: int) -> float:
    perplexity = _checks.check_float(name, "perplexity", perplexity, minimum=1.0)
    if not perplexity < n - 1:
        raise ValueError(
            f"jaxplain.{name}: perplexity must be less than N - 1 = {n - 1} (each of the N = {n} "
            f"points has N - 1 possible neighbours), got perplexity={perplexity:g}. Lower it, "
            f"e.g. perplexity={max(1.0, min(30.0, (n - 1) / 3)):g}."
        )
    return perplexity


def _check_neighbors(name: str, n_neighbors: Any, perplexity: float, n: int) -> int:
    if n_neighbors is None:
        return max(min(n - 1, int(3 * perplexity)), min(n - 1, math.ceil(perplexity) + 1))
    k = _checks.check_int(name, "n_neighbors", n_neighbors, minimum=1)
    if not perplexity < k <= n - 1:
        raise ValueError(
            f"jaxplain.{name}: n_neighbors must be in (perplexity, N - 1] = ({perplexity:g}, "
            f"{n - 1}], got {k}: a row of k neighbours reaches at most perplexity k. The usual "
            f"choice is 3 * perplexity (the default)."
        )
    return k


def _resolve_method(name: str, method: Any, n: int, d: int) -> str:
    if method in ("barnes_hut", "bh", "BH", "barnes-hut"):
        raise ValueError(
            f"jaxplain.{name}: method={method!r} (Barnes-Hut) is not implemented; jaxplain's O(N) "
            f"gradient is the FFT interpolation, method='fft' (or 'auto', which picks 'exact' up "
            f"to {EXACT_MAX_POINTS} points)."
        )
    method = _checks.check_choice(name, "method", method, METHODS)
    if method == "fft" and d > 2:
        raise ValueError(
            f"jaxplain.{name}: method='fft' embeds in 1 or 2 dimensions, got n_components={d}; "
            f"use method='exact' (O(N^2)) for more."
        )
    if method == "auto":
        return "exact" if (n <= EXACT_MAX_POINTS or d > 2) else "fft"
    return method


def _check_learning_rate(name: str, value: Any) -> Any:
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(
                f"jaxplain.{name}: learning_rate must be 'auto' or a number > 0, got {value!r}."
            )
        return value
    value = _checks.check_float(name, "learning_rate", value, minimum=0.0)
    if value <= 0:
        raise ValueError(f"jaxplain.{name}: learning_rate must be > 0, got {value}.")
    return value


def _check_init(name: str, init: Any, n: int, d: int):
    if isinstance(init, str):
        return _checks.check_choice(name, "init", init, ("pca", "random"))
    try:
        arr = np.asarray(init, dtype=np.float64)
    except Exception:
        raise TypeError(
            f"jaxplain.{name}: init must be 'pca', 'random' or an array of shape (N, "
            f"n_components) = ({n}, {d}), got {type(init).__name__}."
        ) from None
    if arr.shape != (n, d):
        raise ValueError(
            f"jaxplain.{name}: an init array must have shape (N, n_components) = ({n}, {d}), got "
            f"{arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"jaxplain.{name}: the init array contains NaN or Inf.")
    return arr


# --------------------------------------------------------------------------- initialization


@functools.partial(jax.jit, static_argnames=("d",))
def _pca_init(x: jax.Array, d: int, key) -> jax.Array:
    """The top ``d`` principal components, scaled so the first has standard deviation 1e-4, plus
    jitter of 1% of that (openTSNE's recipe; the jitter separates duplicate points)."""
    xc = x - jnp.mean(x, axis=0)
    cov = xc.T @ xc
    _, vecs = jnp.linalg.eigh(cov)  # ascending eigenvalues
    vecs = vecs[:, ::-1][:, : min(d, x.shape[1])]
    # Deterministic signs: the largest |loading| of each component is positive.
    pick = jnp.argmax(jnp.abs(vecs), axis=0)
    vecs = vecs * jnp.sign(vecs[pick, jnp.arange(vecs.shape[1])])
    y = xc @ vecs
    if y.shape[1] < d:
        y = jnp.concatenate([y, jnp.zeros((x.shape[0], d - y.shape[1]), y.dtype)], axis=1)
    std = jnp.std(y[:, 0])
    y = jnp.where(std > 0, y * (1e-4 / jnp.where(std > 0, std, 1.0)), y)
    return y + 1e-6 * jax.random.normal(key, y.shape, y.dtype)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _random_init(key, n: int, d: int, dtype) -> jax.Array:
    return 1e-4 * jax.random.normal(key, (n, d), dtype)


def _initial(init, x, d, key) -> jax.Array:
    if isinstance(init, str) and init == "pca":
        return _pca_init(x, d, key)
    if isinstance(init, str):  # random
        return _random_init(key, x.shape[0], d, x.dtype)
    return jnp.asarray(init, x.dtype)


# --------------------------------------------------------------------------- the steps


def _one_step(y, state, aff, hyper, *, method, dof, n_boxes, n_interp, min_gain, max_step_norm):
    """One optimizer step; ``hyper`` = (ee_iter, early_exaggeration, exaggeration, lr_ee, lr,
    initial_momentum, final_momentum), traced so that new values do not recompile. Returns the new
    ``(y, state)`` and the KL divergence of the input ``y``."""
    ee_iter, exag0, exag1, lr0, lr1, m0, m1 = hyper
    # The learning rate is in openTSNE / FIt-SNE / bhtsne units: it multiplies gradient / 4.
    tx = delta_bar_delta(
        learning_rate=lambda c: jnp.where(c < ee_iter, lr0, lr1) / 4.0,
        momentum=lambda c: jnp.where(c < ee_iter, m0, m1),
        min_gain=min_gain,
        max_step_norm=max_step_norm,
    )
    forces = _grad.kl_gradient(
        y, aff, method=method, dof=dof, exaggeration=jnp.where(state.count < ee_iter, exag0, exag1),
        n_boxes=n_boxes, n_interpolation_points=n_interp,
    )
    updates, state = tx.update(forces.gradient, state)
    y = optax.apply_updates(y, updates)
    return y - jnp.mean(y, axis=0), state, forces.kl


@functools.partial(
    jax.jit,
    static_argnames=("method", "dof", "n_boxes", "n_interp", "min_gain", "max_step_norm"),
    donate_argnums=(0, 1),
)
def _run(y, state, aff, hyper, n_steps, **static):
    """``n_steps`` (traced: any count, one compilation) optimizer steps in a ``lax.fori_loop``;
    returns ``(y, state, KL before the last step, extent of y)``."""

    def body(_, carry):
        y, state, _ = carry
        return _one_step(y, state, aff, hyper, **static)

    kl0 = jnp.full((), jnp.nan, y.dtype)
    y, state, kl = jax.lax.fori_loop(0, n_steps, body, (y, state, kl0))
    return y, state, kl, jnp.max(y) - jnp.min(y)


def _boundaries(total: int, every: int, kl_every: int, ee_iter: int) -> list[int]:
    """Ends of the compiled chunks: every ``every`` iterations, at the KL records and at the end
    of early exaggeration."""
    if total <= 0:
        return []
    ends = set(range(every, total, every)) | set(range(kl_every, total, kl_every))
    ends |= {total} | ({ee_iter} if 0 < ee_iter < total else set())
    return sorted(ends)


def _progress_bar(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, unit="it")


# --------------------------------------------------------------------------- functional API


def tsne(
    x: Any,
    *,
    key: Any,
    perplexity: float = 30.0,
    n_components: int = 2,
    n_iter: int = 500,
    early_exaggeration_iter: int = 250,
    early_exaggeration: float = 12.0,
    exaggeration: float = 1.0,
    learning_rate: float | str = "auto",
    initial_momentum: float = 0.5,
    final_momentum: float = 0.8,
    dof: float = 1.0,
    init: Any = "pca",
    method: str = "auto",
    n_neighbors: int | None = None,
    min_gain: float = 0.01,
    max_step_norm: float | None = 5.0,
    n_interpolation_points: int = 3,
    ints_in_interval: float = 1.0,
    min_num_intervals: int = 50,
    knn_block_size: int | None = None,
    kl_every: int = 50,
    progress: bool = True,
    return_info: bool = False,
):
    """t-distributed stochastic neighbour embedding of the rows of ``x``.

    Affinities ``P`` from Gaussian neighbourhoods whose bandwidths give each point the same
    ``perplexity`` (effective number of neighbours), on its ``3 * perplexity`` exact nearest
    neighbours; an embedding ``y`` whose Student-t similarities ``q_ij ~ (1 + |y_i - y_j|^2)^-1``
    match them, by minimizing ``KL(P || Q)`` with momentum and gains. The schedule: 250 iterations
    of early exaggeration 12 with momentum 0.5, then 500 with momentum 0.8 (bhtsne's and
    scikit-learn's momenta; openTSNE uses 0.8 throughout); learning rate ``N / 12`` (Belkina et al.)
    during early exaggeration and ``N / exaggeration`` after it (openTSNE's ``"auto"``); steps
    clipped to norm 5 per point (openTSNE); PCA initialization with standard deviation 1e-4.

    The repulsive forces are exact (all ``N^2`` pairs) up to :data:`EXACT_MAX_POINTS` points and
    FFT-interpolated above (FIt-SNE, Linderman et al. 2019): ``method="exact" | "fft"`` forces
    one. Randomness: only the initialization (``init="random"``, or the 1e-6 jitter that
    separates duplicate points after PCA) draws from ``key``; the same key gives the same
    embedding, bitwise with the exact gradient. With the FFT gradient, XLA:CPU's multithreaded FFT
    of grids above about 64 boxes a side can round differently from run to run (by about 1e-7 of
    the values), and the optimization amplifies such differences: runs agree in quality (KL to
    about 1e-4), not bit for bit.

    Args:
      x: ``(N, D)`` data, ``N >= 4``, finite. Integer data are cast to float.
      key: a JAX PRNG key, e.g. ``jax.random.key(0)``.
      perplexity: effective number of neighbours, ``1 <= perplexity < N - 1``; 5 to 50 is usual.
      n_components: dimensions of the embedding (the FFT gradient supports 1 and 2).
      n_iter: iterations after early exaggeration (openTSNE's ``n_iter``; scikit-learn's
        ``max_iter`` is ``early_exaggeration_iter + n_iter``).
      early_exaggeration_iter: iterations with ``P`` multiplied by ``early_exaggeration``.
      early_exaggeration: the early exaggeration factor (12).
      exaggeration: exaggeration after the early phase (1: none; > 1 gives more compact clusters).
      learning_rate: ``"auto"`` or a number, in openTSNE / FIt-SNE units (the step is
        ``learning_rate * gains * gradient / 4``; scikit-learn's rate is a quarter of this:
        its ``"auto"``, ``N / 48``, is our ``N / 12``). ``"auto"``: ``N / early_exaggeration`` in the
        early phase and ``N / exaggeration`` after, as openTSNE; a number is used in both phases.
      initial_momentum: momentum in the early exaggeration phase.
      final_momentum: momentum after it.
      dof: degrees of freedom of the kernel ``(1 + d^2 / dof)^-dof``; 1 is the Student-t kernel,
        smaller values have heavier tails and separate finer clusters (Kobak et al. 2019).
      init: ``"pca"``, ``"random"`` (normal with standard deviation 1e-4) or an ``(N,
        n_components)`` array (used as is; small values, std about 1e-4, work best).
      method: ``"auto"``, ``"exact"`` or ``"fft"``.
      n_neighbors: neighbours per point for ``P`` (default ``min(N - 1, 3 * perplexity)``).
      min_gain: the floor of the optimizer's gains.
      max_step_norm: each point moves at most this far per step (``None``: no limit).
      n_interpolation_points: interpolation nodes per box and side of the FFT grid.
      ints_in_interval: FFT grid boxes are at most this wide (in embedding units).
      min_num_intervals: the FFT grid has at least this many boxes per side.
      knn_block_size: rows per block of the exact k-NN search (default: bounded at 2^24
        distances a block).
      kl_every: the KL divergence is computed and recorded every this many iterations (and shown
        on the progress bar).
      progress: show a tqdm progress bar.
      return_info: also return a :class:`TSNEInfo`.

    Returns:
      The ``(N, n_components)`` embedding (a JAX array), or ``(embedding, info)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain import tsne
      >>> centers = jnp.repeat(jnp.eye(3) * 10.0, 20, axis=0)      # 3 clusters of 20 points
      >>> x = centers + jax.random.normal(jax.random.key(0), (60, 3))
      >>> y, info = tsne(x, key=jax.random.key(1), perplexity=10.0, n_iter=200,
      ...                progress=False, return_info=True)
      >>> y.shape, info.method, info.kl_divergence < 1.0
      ((60, 2), 'exact', True)

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
      van der Maaten (2014), "Accelerating t-SNE using Tree-Based Algorithms", JMLR 15.
      Linderman, Rachh, Hoskins, Steinerberger & Kluger (2019), "Fast interpolation-based t-SNE for
      improved visualization of single-cell RNA-seq data", Nature Methods 16.
      Belkina et al. (2019), "Automated optimized parameters for T-distributed stochastic
      neighbor embedding improve visualization and analysis of large datasets", Nature
      Communications 10.
      Kobak & Berens (2019), "The art of using t-SNE for single-cell transcriptomics", Nature
      Communications 10 (PCA initialization).
    """
    name = "tsne"
    if key is None:
        raise TypeError(
            f"jaxplain.{name} needs an explicit key, e.g. key=jax.random.key(0); it seeds the "
            f"initialization (the same key gives the same embedding)."
        )
    x = _check_x(name, x)
    n = x.shape[0]
    d = _checks.check_int(name, "n_components", n_components, minimum=1)
    perplexity = _check_perplexity(name, perplexity, n)
    k = _check_neighbors(name, n_neighbors, perplexity, n)
    n_iter = _checks.check_int(name, "n_iter", n_iter, minimum=0)
    ee_iter = _checks.check_int(name, "early_exaggeration_iter", early_exaggeration_iter, minimum=0)
    ee = _checks.check_float(name, "early_exaggeration", early_exaggeration, minimum=0.0)
    exag = _checks.check_float(name, "exaggeration", exaggeration, minimum=0.0)
    if ee <= 0 or exag <= 0:
        raise ValueError(
            f"jaxplain.{name}: early_exaggeration and exaggeration must be > 0, got {ee} and "
            f"{exag} (1 means no exaggeration)."
        )
    learning_rate = _check_learning_rate(name, learning_rate)
    m0 = _checks.check_float(name, "initial_momentum", initial_momentum, minimum=0.0)
    m1 = _checks.check_float(name, "final_momentum", final_momentum, minimum=0.0)
    dof = _checks.check_float(name, "dof", dof, minimum=0.0)
    if dof <= 0:
        raise ValueError(f"jaxplain.{name}: dof must be > 0 (1 is the Student-t kernel), got {dof}.")
    method = _resolve_method(name, method, n, d)
    min_gain = _checks.check_float(name, "min_gain", min_gain, minimum=0.0)
    if max_step_norm is not None:
        max_step_norm = _checks.check_float(name, "max_step_norm", max_step_norm, minimum=0.0)
        if max_step_norm <= 0:
            raise ValueError(f"jaxplain.{name}: max_step_norm must be > 0 or None, got 0.")
    n_interp = _checks.check_int(name, "n_interpolation_points", n_interpolation_points, minimum=1)
    ints = _checks.check_float(name, "ints_in_interval", ints_in_interval, minimum=0.0)
    if ints <= 0:
        raise ValueError(f"jaxplain.{name}: ints_in_interval must be > 0, got {ints}.")
    min_boxes = _checks.check_int(name, "min_num_intervals", min_num_intervals, minimum=1)
    if knn_block_size is not None:
        knn_block_size = _checks.check_int(name, "knn_block_size", knn_block_size, minimum=1)
    kl_every = _checks.check_int(name, "kl_every", kl_every, minimum=1)
    init = _check_init(name, init, n, d)
    progress = _checks.check_bool(name, "progress", progress)
    return_info = _checks.check_bool(name, "return_info", return_info)

    if learning_rate == "auto":
        lr = (n / ee, n / exag)
    else:
        lr = (learning_rate, learning_rate)

    aff = _aff.joint_probabilities(x, perplexity, n_neighbors=k, block_size=knn_block_size)
    y = _initial(init, x, d, key)
    dtype = y.dtype
    state = delta_bar_delta(0.0).init(y)
    hyper = (jnp.asarray(ee_iter, jnp.int32),) + tuple(
        jnp.asarray(v, dtype) for v in (ee, exag, lr[0], lr[1], m0, m1)
    )
    static = dict(method=method, dof=dof, n_interp=n_interp, min_gain=min_gain,
                  max_step_norm=max_step_norm)

    def grid(span) -> int:
        if method != "fft":
            return 0
        return _grad.n_boxes_for(float(span), min_num_intervals=min_boxes, ints_in_interval=ints)

    total = ee_iter + n_iter
    span = jnp.max(y) - jnp.min(y)
    history = []
    done = 0
    with _progress_bar(total, progress, "t-SNE") as bar:
        for end in _boundaries(total, CHUNK, kl_every, ee_iter):
            y, state, kl, span = _run(y, state, aff, hyper, jnp.int32(end - done),
                                      n_boxes=grid(span), **static)
            bar.update(end - done)
            done = end
            if end % kl_every == 0:
                # The KL of the embedding before step `end` (openTSNE reports the same).
                history.append((end, float(kl)))
                bar.set_postfix(kl=f"{history[-1][1]:.4f}", refresh=False)
    # The KL of the final embedding: one more step on copies, whose KL is that of its input.
    _, _, final_kl, _ = _run(y + 0, jax.tree_util.tree_map(lambda a: a + 0, state), aff, hyper,
                             jnp.int32(1), n_boxes=grid(span), **static)
    final_kl = float(final_kl)
    if not return_info:
        return y
    info = TSNEInfo(
        kl_divergence=final_kl,
        kl_history=np.asarray(history, dtype=np.float64).reshape(-1, 2),
        method=method,
        learning_rate=(float(lr[0]), float(lr[1])),
        n_iter=total,
        affinities=aff,
    )
    return y, info
