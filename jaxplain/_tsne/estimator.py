"""The scikit-learn style :class:`TSNE` (with openTSNE's parameter names) around
:func:`jaxplain.tsne`."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxplain import _checks
from jaxplain._tsne.api import tsne

__all__ = ["TSNE"]


_ALIASES = (
    # (ours, scikit-learn or openTSNE alias)
    ("init", "initialization"),
    ("method", "negative_gradient_method"),
    ("progress", "verbose"),
)


class TSNE:
    """t-SNE with the interface of scikit-learn's ``sklearn.manifold.TSNE`` (and openTSNE's names).

    ``TSNE(...).fit_transform(x)`` returns the embedding as a NumPy array and sets ``embedding_``,
    ``kl_divergence_``, ``n_iter_``, ``learning_rate_``, ``n_features_in_`` and ``affinities_``.
    Every parameter means what it means for :func:`jaxplain.tsne`; the names users know are
    accepted:

    * ``max_iter`` (scikit-learn: all iterations, early exaggeration included) or ``n_iter``
      (openTSNE: iterations after early exaggeration); give at most one (default 250 + 500);
    * ``init`` (scikit-learn) or ``initialization`` (openTSNE): ``"pca"``, ``"random"`` or an array;
    * ``method`` (scikit-learn) or ``negative_gradient_method`` (openTSNE): ``"auto"``,
      ``"exact"``, ``"fft"`` (Barnes-Hut is not implemented: ``"barnes_hut"`` raises);
    * ``random_state``: an int seed or a JAX key; ``None`` means seed 0 (no global random state, so
      runs are reproducible by default, unlike scikit-learn's);
    * ``verbose`` (alias of ``progress``): show the progress bar.

    The learning rate is in openTSNE units (see :func:`jaxplain.tsne`): scikit-learn's
    ``learning_rate=200`` is ``learning_rate=800`` here.

    Example:
      >>> import numpy as np
      >>> from jaxplain import TSNE
      >>> x = np.random.default_rng(0).normal(size=(60, 3)) + np.repeat(np.eye(3) * 10, 20, 0)
      >>> model = TSNE(perplexity=10, max_iter=300, random_state=0, verbose=False)
      >>> y = model.fit_transform(x)
      >>> y.shape, model.n_iter_, model.kl_divergence_ < 1.0
      ((60, 2), 300, True)

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
      Poličar, Stražar & Zupan (2024), "openTSNE: A Modular Python Library for t-SNE
      Dimensionality Reduction and Embedding", Journal of Statistical Software 109.
    """

    def __init__(
        self,
        n_components: int = 2,
        *,
        perplexity: float = 30.0,
        early_exaggeration: float = 12.0,
        learning_rate: float | str = "auto",
        max_iter: int | None = None,
        n_iter: int | None = None,
        early_exaggeration_iter: int = 250,
        exaggeration: float = 1.0,
        initial_momentum: float = 0.5,
        final_momentum: float = 0.8,
        dof: float = 1.0,
        init: Any = None,
        initialization: Any = None,
        method: str | None = None,
        negative_gradient_method: str | None = None,
        n_neighbors: int | None = None,
        min_grad_norm: None = None,
        max_step_norm: float | None = 5.0,
        n_interpolation_points: int = 3,
        ints_in_interval: float = 1.0,
        min_num_intervals: int = 50,
        random_state: Any = None,
        progress: bool | None = None,
        verbose: Any = None,
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.early_exaggeration = early_exaggeration
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.n_iter = n_iter
        self.early_exaggeration_iter = early_exaggeration_iter
        self.exaggeration = exaggeration
        self.initial_momentum = initial_momentum
        self.final_momentum = final_momentum
        self.dof = dof
        self.init = init
        self.initialization = initialization
        self.method = method
        self.negative_gradient_method = negative_gradient_method
        self.n_neighbors = n_neighbors
        self.min_grad_norm = min_grad_norm
        self.max_step_norm = max_step_norm
        self.n_interpolation_points = n_interpolation_points
        self.ints_in_interval = ints_in_interval
        self.min_num_intervals = min_num_intervals
        self.random_state = random_state
        self.progress = progress
        self.verbose = verbose

    # scikit-learn's clone() and grid searches read and write the constructor parameters.
    _PARAMS = (
        "n_components", "perplexity", "early_exaggeration", "learning_rate", "max_iter", "n_iter",
        "early_exaggeration_iter", "exaggeration", "initial_momentum", "final_momentum", "dof",
        "init", "initialization", "method", "negative_gradient_method", "n_neighbors",
        "min_grad_norm", "max_step_norm", "n_interpolation_points", "ints_in_interval",
        "min_num_intervals", "random_state", "progress", "verbose",
    )

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters, as scikit-learn's ``BaseEstimator.get_params``."""
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params) -> "TSNE":
        """Sets constructor parameters, as scikit-learn's ``BaseEstimator.set_params``."""
        for p, v in params.items():
            if p not in self._PARAMS:
                raise ValueError(
                    f"jaxplain.TSNE: unknown parameter {p!r}; valid parameters: "
                    + ", ".join(self._PARAMS)
                    + "."
                )
            setattr(self, p, v)
        return self

    def __repr__(self) -> str:
        sig = TSNE.__init__.__defaults__, TSNE.__init__.__kwdefaults__
        defaults = dict(sig[1] or {})
        defaults["n_components"] = 2
        changed = [
            f"{p}={getattr(self, p)!r}" for p in self._PARAMS
            if not _same(getattr(self, p), defaults.get(p))
        ]
        return f"TSNE({', '.join(changed)})"

    def _options(self) -> dict:
        def pick(ours, theirs, default):
            a, b = getattr(self, ours), getattr(self, theirs)
            if a is not None and b is not None:
                raise ValueError(
                    f"jaxplain.TSNE: give {ours} or {theirs} (the same option under the "
                    f"scikit-learn and openTSNE names), not both; got {ours}={a!r}, "
                    f"{theirs}={b!r}."
                )
            return a if a is not None else b if b is not None else default

        if self.min_grad_norm is not None:
            raise ValueError(
                "jaxplain.TSNE: min_grad_norm (scikit-learn's early stop) is not supported; the "
                "run always takes max_iter iterations. Leave it None."
            )
        ee_iter = self.early_exaggeration_iter
        if self.max_iter is not None and self.n_iter is not None:
            raise ValueError(
                f"jaxplain.TSNE: give max_iter (scikit-learn: all iterations) or n_iter "
                f"(openTSNE: iterations after early exaggeration), not both; got "
                f"max_iter={self.max_iter!r}, n_iter={self.n_iter!r}."
            )
        if self.max_iter is not None:
            total = _checks.check_int("TSNE", "max_iter", self.max_iter, minimum=0)
            ee_iter = _checks.check_int("TSNE", "early_exaggeration_iter", ee_iter, minimum=0)
            if total < ee_iter:
                raise ValueError(
                    f"jaxplain.TSNE: max_iter={total} counts all iterations and must be >= "
                    f"early_exaggeration_iter={ee_iter}."
                )
            n_iter = total - ee_iter
        else:
            n_iter = 500 if self.n_iter is None else self.n_iter
        progress = pick("progress", "verbose", True)
        key = self.random_state
        if key is None:
            key = jax.random.key(0)
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            key = jax.random.key(int(key))
        elif not isinstance(key, jax.Array):
            raise TypeError(
                f"jaxplain.TSNE: random_state must be None, an int seed or a JAX key, got "
                f"{type(key).__name__} {key!r}."
            )
        return dict(
            key=key,
            perplexity=self.perplexity,
            n_components=self.n_components,
            n_iter=n_iter,
            early_exaggeration_iter=ee_iter,
            early_exaggeration=self.early_exaggeration,
            exaggeration=self.exaggeration,
            learning_rate=self.learning_rate,
            initial_momentum=self.initial_momentum,
            final_momentum=self.final_momentum,
            dof=self.dof,
            init=pick("init", "initialization", "pca"),
            method=pick("method", "negative_gradient_method", "auto"),
            n_neighbors=self.n_neighbors,
            max_step_norm=self.max_step_norm,
            n_interpolation_points=self.n_interpolation_points,
            ints_in_interval=self.ints_in_interval,
            min_num_intervals=self.min_num_intervals,
            progress=bool(progress),
        )

    def fit(self, X: Any, y: Any = None) -> "TSNE":
        """Embeds ``X`` (``(N, D)``); ``y`` is ignored (scikit-learn's signature). Returns self."""
        del y
        emb, info = tsne(X, return_info=True, **self._options())
        self.embedding_ = np.asarray(emb)
        self.kl_divergence_ = info.kl_divergence
        self.n_iter_ = info.n_iter
        self.learning_rate_ = info.learning_rate
        self.n_features_in_ = int(np.shape(X)[1])
        self.affinities_ = info.affinities
        self.kl_history_ = info.kl_history
        self.method_ = info.method
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Embeds ``X`` and returns the ``(N, n_components)`` embedding as a NumPy array."""
        return self.fit(X, y).embedding_


def _same(a, b) -> bool:
    try:
        return bool(a == b) if not isinstance(a, (np.ndarray, jax.Array)) else False
    except Exception:
        return False
