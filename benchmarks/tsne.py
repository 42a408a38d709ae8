"""Speed and quality of t-SNE: jaxplain vs openTSNE vs scikit-learn on a Gaussian mixture.

Data (:func:`mixture`): ``--n`` points (10,000) in ``--dim`` dimensions (50) from ``--classes``
Gaussian clusters (10): centres drawn from N(0, 2^2 I), unit within-cluster noise, seed ``--seed``.

Rows (``time s``: wall time of one fit, raw data to embedding, k-NN and affinities included):

* ``jaxplain tsne (cold)``: the first call in the process, XLA compilation included (what a
  script that embeds once pays); ``jaxplain tsne (warm)``: a second call with the same shapes (the
  compiled steps are cached), best of ``--repeats``;
* ``jaxplain affinities``: the k-NN search and ``P`` alone (warm);
* ``openTSNE``: ``openTSNE.TSNE(n_jobs=<cores>, random_state=seed)``, its defaults (FFT gradient,
  Annoy k-NN, 250 + 500 iterations), best of ``--repeats``;
* ``scikit-learn``: ``sklearn.manifold.TSNE(n_jobs=<cores>, random_state=seed)``, its defaults
  (Barnes-Hut, exact-tree k-NN, ``max_iter=1000``), best of ``--repeats``.

Quality, in each row's config: ``KL`` as the library reports it; ``KLx``, the KL divergence of
the embedding under jaxplain's ``P`` computed exactly (all pairs), one yardstick for all three;
``T10``, scikit-learn's ``trustworthiness(x, y, n_neighbors=10)``. ``ratio`` is the row's time over
jaxplain's cold time.

Usage::

    python benchmarks/tsne.py                  # 10,000 x 50, all peers that import
    python benchmarks/tsne.py --quick          # 2,000 x 20, a smoke run
    python benchmarks/tsne.py --n 70000 --no-sklearn
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):  # benchmarks/ (this folder's helpers), the repo (tests/mixtures.py)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxplain._tsne import affinities as _aff  # noqa: E402
from jaxplain._tsne import gradients as _grad  # noqa: E402
from jaxplain._tsne import tsne  # noqa: E402
from tests.mixtures import mixture  # noqa: E402

FAMILY = "tsne"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=None, help="points (default 10,000)")
    p.add_argument("--dim", type=int, default=None, help="dimensions (default 50)")
    p.add_argument("--classes", type=int, default=10, help="clusters (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="runs per warm row, best kept (1)")
    p.add_argument("--no-opentsne", action="store_true", help="skip openTSNE")
    p.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    p.add_argument("--no-trust", action="store_true", help="skip trustworthiness (slow at 10^5)")
    p.add_argument("--quick", action="store_true", help="2,000 x 20 points")
    a = p.parse_args(argv)
    if a.n is None:
        a.n = 2000 if a.quick else 10_000
    if a.dim is None:
        a.dim = 20 if a.quick else 50
    return a


def _log(msg: str) -> None:
    print(f"  [{FAMILY}] {msg}", file=sys.stderr, flush=True)


def _cores() -> int:
    from run import cores

    return cores()


def main(argv=None) -> list[dict]:
    """Runs the benchmark; returns one dict per row (see benchmarks/run.py for the columns; the
    quality numbers are also under the keys ``kl``, ``kl_exact``, ``trust``)."""
    a = parse_args(argv)
    x, _ = mixture(a.n, a.dim, a.classes, a.seed)
    config = f"{a.n} x {a.dim}, {a.classes} clusters"
    rows: list[dict] = []
    key = jax.random.key(a.seed)

    def fit_ours():
        y, info = tsne(x, key=key, progress=False, return_info=True)
        return np.asarray(y), info.kl_divergence

    _log(f"jaxplain tsne on {config} (cold) ...")
    t0 = time.perf_counter()
    y_ours, kl_ours = fit_ours()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(max(1, a.repeats)):
        t0 = time.perf_counter()
        fit_ours()
        warm.append(time.perf_counter() - t0)
    t_aff = []
    for _ in range(max(1, a.repeats)):
        t0 = time.perf_counter()
        aff = jax.block_until_ready(_aff.joint_probabilities(x, 30.0))
        t_aff.append(time.perf_counter() - t0)

    def kl_exact(y):
        return float(_grad.kl_gradient(np.asarray(y, np.float32), aff, method="exact").kl)

    def trust(y):
        if a.no_trust:
            return None
        try:
            from sklearn.manifold import trustworthiness
        except ImportError:
            return None
        return float(trustworthiness(x, y, n_neighbors=10))

    def quality(kl, y):
        klx, t = kl_exact(y), trust(y)
        text = f"KL {kl:.4f}, KLx {klx:.4f}" + (f", T10 {t:.4f}" if t is not None else "")
        return dict(kl=kl, kl_exact=klx, trust=t), text

    q, text = quality(kl_ours, y_ours)
    rows.append(dict(family=FAMILY, benchmark="jaxplain tsne (cold)", config=f"{config}; {text}",
                     time_s=cold, n=1, ratio=1.0, ratio_of="x jaxplain cold", **q))
    rows.append(dict(family=FAMILY, benchmark="jaxplain tsne (warm)", config=f"{config}; {text}",
                     time_s=min(warm), n=len(warm), ratio=min(warm) / cold,
                     ratio_of="x jaxplain cold", **q))
    rows.append(dict(family=FAMILY, benchmark="jaxplain affinities", config=f"{config}, k = 90",
                     time_s=min(t_aff), n=len(t_aff), ratio=min(t_aff) / cold,
                     ratio_of="x jaxplain cold"))

    jobs = _cores()
    if not a.no_opentsne:
        try:
            import openTSNE
        except ImportError as e:
            _log(f"skipping openTSNE: {e}")
        else:
            _log(f"openTSNE {openTSNE.__version__} (n_jobs={jobs}) ...")
            times, out = [], None
            for _ in range(max(1, a.repeats)):
                t0 = time.perf_counter()
                emb = openTSNE.TSNE(n_jobs=jobs, random_state=a.seed).fit(x)
                times.append(time.perf_counter() - t0)
                out = emb
            q, text = quality(float(out.kl_divergence), np.asarray(out))
            rows.append(dict(family=FAMILY, benchmark=f"openTSNE {openTSNE.__version__}",
                             config=f"n_jobs={jobs}; {text}", time_s=min(times), n=len(times),
                             ratio=min(times) / cold, ratio_of="x jaxplain cold", **q))
    if not a.no_sklearn:
        try:
            import sklearn
            from sklearn.manifold import TSNE as SKTSNE
        except ImportError as e:
            _log(f"skipping scikit-learn: {e}")
        else:
            _log(f"scikit-learn {sklearn.__version__} (n_jobs={jobs}) ...")
            times, model = [], None
            for _ in range(max(1, a.repeats)):
                model = SKTSNE(n_jobs=jobs, random_state=a.seed)
                t0 = time.perf_counter()
                y = model.fit_transform(x)
                times.append(time.perf_counter() - t0)
            q, text = quality(float(model.kl_divergence_), y)
            rows.append(dict(family=FAMILY, benchmark=f"scikit-learn {sklearn.__version__}",
                             config=f"n_jobs={jobs}, max_iter={model.max_iter}; {text}",
                             time_s=min(times), n=len(times), ratio=min(times) / cold,
                             ratio_of="x jaxplain cold", **q))
    return rows


if __name__ == "__main__":
    from run import environment, format_table

    rows = main()
    print(f"# {environment()}")
    print(format_table(rows))
