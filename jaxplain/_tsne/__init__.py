"""t-SNE on JAX with Optax (issue #5): affinities, exact and FFT gradients, the gains optimizer,
the functional :func:`tsne` and the scikit-learn style :class:`TSNE`, and a scatter plot.

Modules: ``affinities.py`` (k-NN, perplexity calibration, symmetrized ``P``), ``gradients.py``
(KL divergence and gradient, exact and FIt-SNE), ``optimize.py`` (the momentum + gains optax
transformation), ``api.py`` (``tsne``), ``estimator.py`` (``TSNE``), ``plot.py`` (``scatter``).
"""

from jaxplain._tsne.affinities import Affinities as Affinities
from jaxplain._tsne.affinities import joint_probabilities as joint_probabilities
from jaxplain._tsne.api import TSNEInfo as TSNEInfo
from jaxplain._tsne.api import tsne as tsne
from jaxplain._tsne.estimator import TSNE as TSNE
from jaxplain._tsne.gradients import Forces as Forces
from jaxplain._tsne.gradients import kl_gradient as kl_gradient
from jaxplain._tsne.optimize import DeltaBarDeltaState as DeltaBarDeltaState
from jaxplain._tsne.optimize import delta_bar_delta as delta_bar_delta

__all__ = [
    "Affinities",
    "DeltaBarDeltaState",
    "Forces",
    "TSNE",
    "TSNEInfo",
    "delta_bar_delta",
    "joint_probabilities",
    "kl_gradient",
    "tsne",
]
