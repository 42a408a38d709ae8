"""A scatter plot of a 2-D embedding (t-SNE, PCA) coloured by labels.

Like ``jaxplain.plot``: accepts NumPy or JAX arrays, returns Matplotlib objects, never calls
``plt.show()``, works with the ``Agg`` backend.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from jaxplain import _checks

__all__ = ["scatter"]

# Up to this many classes get distinct qualitative colours and a legend; more get a colour map.
MAX_LEGEND_CLASSES = 20


def _embedding(value: Any) -> np.ndarray:
    where = "plot.scatter"
    a = _checks.check_array(where, "embedding", value, expected="an (N, 2) array of real numbers", concrete=True)
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] < 1:
        raise ValueError(
            f"jaxplain.plot.scatter: embedding must have shape (N, 2), got {a.shape}. Embed in "
            f"two dimensions (n_components=2) or pick two columns, e.g. y[:, :2]."
        )
    _checks.check_finite(where, "embedding", a)
    return a


def _labels(value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    lab = np.asarray(value)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(
            f"jaxplain.plot.scatter: labels must have one entry per point, shape ({n},), got "
            f"{lab.shape}."
        )
    return lab


def scatter(
    embedding: Any,
    labels: Any = None,
    *,
    ax: Axes | None = None,
    class_names: Sequence[str] | None = None,
    size: float | None = None,
    alpha: float = 0.8,
    cmap: Any = None,
    legend: bool = True,
    title: str | None = None,
) -> Axes:
    """Draws a 2-D embedding as a scatter plot, one colour per class.

    Categorical labels (integers, strings or booleans) get one qualitative colour each and a
    legend (up to 20 classes; more are coloured along ``cmap`` with a colour bar); real-valued
    labels are coloured along ``cmap`` (default ``"viridis"``) with a colour bar. The axes are
    drawn equal and without ticks: t-SNE coordinates have no units, and only neighbourhoods mean
    something (distances between clusters do not).

    Args:
      embedding: ``(N, 2)`` coordinates, NumPy or JAX, finite.
      labels: ``(N,)`` class of each point (or a real value), or ``None`` for one colour.
      ax: the Axes to draw on (default: the current Axes).
      class_names: names for the classes, indexed by the integer label (``class_names[c]``) or in
        the sorted order of the distinct labels.
      size: marker area in points^2 (default: from 12 for small ``N`` down to 1 for 10^5 points).
      alpha: marker opacity.
      cmap: colour map for many classes or real labels.
      legend: draw the legend (categorical labels).
      title: the Axes title.

    Returns:
      The Axes drawn on.

    Example:
      >>> import matplotlib.pyplot as plt, numpy as np
      >>> from jaxplain._tsne.plot import scatter
      >>> y = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0], [6.0, 5.0]])
      >>> ax = scatter(y, [0, 0, 1, 1], class_names=["cat", "dog"])
      >>> [t.get_text() for t in ax.get_legend().get_texts()], len(ax.collections)
      (['cat', 'dog'], 2)
      >>> plt.close("all")

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
      Wattenberg, Viégas & Johnson (2016), "How to Use t-SNE Effectively", Distill (what a t-SNE
      plot does and does not show).
    """
    y = _embedding(embedding)
    n = y.shape[0]
    lab = _labels(labels, n)
    if ax is None:
        ax = plt.gca()
    elif not isinstance(ax, Axes):
        raise TypeError(
            f"jaxplain.plot.scatter: ax must be a Matplotlib Axes or None, got "
            f"{type(ax).__name__}."
        )
    _checks.check_bool("plot.scatter", "legend", legend)
    if size is None:
        size = float(np.clip(12.0 * (1000.0 / max(n, 1)) ** 0.5, 1.0, 12.0))
    common = dict(s=size, alpha=alpha, linewidths=0, rasterized=n > 5000)

    categorical = lab is not None and (
        lab.dtype.kind in "iubUSO" or (lab.dtype.kind == "f" and np.all(lab == np.round(lab)))
    )
    if lab is None:
        ax.scatter(y[:, 0], y[:, 1], **common)
    elif categorical:
        classes = np.unique(lab)
        if len(classes) <= MAX_LEGEND_CLASSES:
            colors = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20").colors
            for i, c in enumerate(classes):
                mask = lab == c
                ax.scatter(y[mask, 0], y[mask, 1], color=colors[i % len(colors)],
                           label=_class_name(c, i, class_names), **common)
            if legend:
                ax.legend(markerscale=max(1.0, 6.0 / size**0.5), frameon=False, fontsize="small",
                          loc="best")
        else:
            codes = np.searchsorted(classes, lab)
            sc = ax.scatter(y[:, 0], y[:, 1], c=codes, cmap=cmap or "turbo", **common)
            ax.figure.colorbar(sc, ax=ax, fraction=0.046, pad=0.04, label="class index")
    else:
        sc = ax.scatter(y[:, 0], y[:, 1], c=lab.astype(np.float64), cmap=cmap or "viridis",
                        **common)
        ax.figure.colorbar(sc, ax=ax, fraction=0.046, pad=0.04)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)
    return ax


def _class_name(c: Any, i: int, class_names: Sequence[str] | None) -> str:
    if class_names is None:
        return str(c.item() if hasattr(c, "item") else c)
    if isinstance(c, (int, np.integer)) or (isinstance(c, (float, np.floating)) and c == int(c)):
        j = int(c)
        if 0 <= j < len(class_names):
            return str(class_names[j])
    if i < len(class_names):
        return str(class_names[i])
    raise ValueError(
        f"jaxplain.plot.scatter: class_names has {len(class_names)} names, too few for label "
        f"{c!r}; give one name per class."
    )
