"""Parity of jaxplain's t-SNE with openTSNE 1.0 (and scikit-learn's trustworthiness).

* Affinities: on 1,000 points with exact neighbours on both sides (openTSNE's
  ``method="exact"``), our ``P`` equals openTSNE's ``P`` (same 90 neighbours, bandwidths by
  perplexity 30, ``(p_j|i + p_i|j) / 2N``) to float32 precision.
* Objective: on the same embedding and ``P``, our exact KL divergence equals openTSNE's (its
  Barnes-Hut objective with ``theta=0``, i.e. all pairs), and our gradient equals 4 times
  openTSNE's (openTSNE drops the constant 4; its learning rates are scaled for that, and so are
  ours).
* Quality: on 10,000 points of the benchmark's 10-cluster mixture (``benchmarks/tsne.py``), both at
  their defaults (250 early-exaggeration + 500 iterations, perplexity 30, PCA initialization, FFT
  gradient, openTSNE with ``n_jobs`` = cores), our KL divergence is within 5% of openTSNE's and
  our trustworthiness at 10 neighbours within 0.01 of openTSNE's. Both KL values are evaluated
  exactly under our ``P``, so that they measure the embeddings and not the two approximations.
"""

import os

import jax
import numpy as np
import pytest

openTSNE = pytest.importorskip("openTSNE")
pytest.importorskip("sklearn")

from openTSNE import affinity as ot_affinity  # noqa: E402
from openTSNE import tsne as ot_tsne  # noqa: E402
from sklearn.manifold import trustworthiness  # noqa: E402

from jaxplain._tsne import affinities as A  # noqa: E402
from jaxplain._tsne import gradients as G  # noqa: E402
from jaxplain._tsne import tsne  # noqa: E402
from tests.mixtures import mixture  # noqa: E402

pytestmark = pytest.mark.parity


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@pytest.fixture(scope="module")
def small():
    x, labels = mixture(1000, 20, 10, seed=3)
    ours = A.joint_probabilities(x, perplexity=30.0)
    theirs = ot_affinity.PerplexityBasedNN(
        x, perplexity=30, method="exact", n_jobs=1, random_state=0
    ).P
    return x, ours, theirs


def test_affinities_equal_opentsne(small):
    _, ours, theirs = small
    p = np.asarray(A.dense(ours), np.float64)
    q = theirs.toarray()
    np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-9)
    np.testing.assert_array_equal(p > 0, q > 0)


def test_kl_and_gradient_equal_opentsne_on_the_same_embedding(small):
    _, ours, theirs = small
    y = np.asarray(jax.random.normal(jax.random.key(0), (1000, 2))) * 5.0
    out = G.kl_gradient(y.astype(np.float32), ours, method="exact")
    kl, grad = ot_tsne.kl_divergence_bh(
        y.astype(np.float64).copy(), theirs, dof=1, bh_params={"theta": 0.0},
        should_eval_error=True,
    )
    np.testing.assert_allclose(float(out.kl), kl, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(out.gradient), 4.0 * grad, rtol=2e-3, atol=1e-6)


def test_quality_within_5_percent_kl_and_0_01_trustworthiness_on_10000_points():
    x, _ = mixture(10_000, 50, 10, seed=0)
    y_ours, info = tsne(x, key=jax.random.key(0), progress=False, return_info=True)
    y_ours = np.asarray(y_ours)
    emb = openTSNE.TSNE(n_jobs=_cores(), random_state=0).fit(x)
    y_theirs = np.asarray(emb)
    aff = info.affinities
    kl_ours = float(G.kl_gradient(y_ours, aff, method="exact").kl)
    kl_theirs = float(G.kl_gradient(y_theirs.astype(np.float32), aff, method="exact").kl)
    assert abs(kl_ours - kl_theirs) <= 0.05 * kl_theirs, (kl_ours, kl_theirs)
    # Each library's own report agrees too.
    assert abs(info.kl_divergence - emb.kl_divergence) <= 0.05 * emb.kl_divergence
    t_ours = trustworthiness(x, y_ours, n_neighbors=10)
    t_theirs = trustworthiness(x, y_theirs, n_neighbors=10)
    assert abs(t_ours - t_theirs) <= 0.01, (t_ours, t_theirs)
