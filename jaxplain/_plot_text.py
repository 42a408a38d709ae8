"""Token attribution plots: words on coloured backgrounds, drawn with Matplotlib or as HTML.

The public functions are re-exported by :mod:`jaxplain.plot`: :func:`text_heatmap`,
:func:`text_html` and :func:`save_text_html`. One colour mapping serves all three: signed scores
use a diverging colour map (``"bwr"``) with limits ``(-m, m)``, ``m = max|score|``, so zero is
white; unsigned scores a sequential one (``"Reds"``) from the smallest to the largest score. A NaN
score (a token without attribution, e.g. padding) is drawn light gray.

Example:
  >>> import numpy as np
  >>> from jaxplain import plot
  >>> snippet = plot.text_html(["a", "<b>"], np.array([1.0, -1.0]))
  >>> snippet.count("<span"), "&lt;b&gt;" in snippet
  (2, True)
"""

from __future__ import annotations

import html
import os
import pathlib
from typing import Any, Sequence

import matplotlib
import matplotlib.pyplot as plt
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.patches import Rectangle
import numpy as np

from jaxplain import _checks

__all__ = ["TEXT_REDUCTIONS", "text_heatmap", "text_html", "save_text_html"]

TEXT_REDUCTIONS = ("sum", "norm")
"""How ``(L, D)`` token scores are reduced over the embedding axis; only ``"sum"`` keeps the sign."""

_SIGNED_CMAP = "bwr"
_UNSIGNED_CMAP = "Reds"  # white at the low end, like bwr at zero: text stays readable
_NAN_COLOR = (0.85, 0.85, 0.85, 1.0)
_CHAR_WIDTH = 0.62  # a monospace character's advance, in ems (DejaVu Sans Mono: 0.602)
_LINE_HEIGHT = 2.0  # in ems


# --------------------------------------------------------------------------- input checks


def _tokens(fn: str, tokens: Any) -> list[str]:
    if isinstance(tokens, (str, bytes)) or not hasattr(tokens, "__len__") or not hasattr(tokens, "__iter__"):
        raise TypeError(
            f"jaxplain.plot.{fn}: tokens must be a list of strings, got {type(tokens).__name__} "
            f"{tokens!r:.80}; split a sentence first, e.g. tokens=text.split()."
        )
    out = list(tokens)
    for i, t in enumerate(out):
        if isinstance(t, np.str_):
            out[i] = str(t)
        elif not isinstance(t, str):
            raise TypeError(
                f"jaxplain.plot.{fn}: tokens[{i}] must be a string, got {type(t).__name__} {t!r:.80}; "
                f"decode token ids first (e.g. tokenizer.convert_ids_to_tokens(ids))."
            )
    if not out:
        raise ValueError(f"jaxplain.plot.{fn}: tokens is empty; pass at least one token.")
    return out


def _scores(fn: str, tokens: list[str], scores: Any, reduce: Any, name: str = "scores") -> np.ndarray:
    """One float64 score per token, ``(L,)``: ``(L, D)`` reduced over ``D``; NaN kept, Inf refused."""
    reduce = _checks.check_choice(f"plot.{fn}", "reduce", reduce, TEXT_REDUCTIONS)
    s = _checks.check_array(f"plot.{fn}", name, scores, expected="an array (L,) or (L, D) of real numbers",
                            concrete=True)
    s = np.asarray(s).astype(np.float64)
    if s.ndim not in (1, 2):
        raise ValueError(
            f"jaxplain.plot.{fn}: {name} must be (L,) (one score per token) or (L, D) (one vector "
            f"per token, reduced with reduce='sum' or 'norm'), got shape {s.shape}; for a batch "
            f"pass one row at a time, or use save_text_html."
        )
    if s.shape[0] != len(tokens):
        raise ValueError(
            f"jaxplain.plot.{fn}: got {len(tokens)} tokens but {s.shape[0]} {name} (shape "
            f"{s.shape}); pass one score per token."
        )
    if np.any(np.isinf(s)):
        raise ValueError(
            f"jaxplain.plot.{fn}: {name} contains Inf ({int(np.isinf(s).sum())} value(s)); NaN marks "
            f"a token without a score, Inf has no colour. Replace it, e.g. np.nan_to_num({name})."
        )
    if s.ndim == 2:
        s = np.sum(s, axis=1) if reduce == "sum" else np.sqrt(np.sum(s * s, axis=1))
    elif reduce == "norm":
        s = np.abs(s)  # the norm of a one-dimensional vector
    return s


def _check_signed(fn: str, value: Any) -> bool | None:
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise TypeError(
        f"jaxplain.plot.{fn}: signed must be None (decide from the scores), True or False, got "
        f"{type(value).__name__} {value!r}."
    )


def _check_clip(fn: str, clip: Any) -> tuple[float, float] | None:
    if clip is None:
        return None
    if isinstance(clip, (str, bytes)) or not hasattr(clip, "__len__") or len(clip) != 2:
        raise TypeError(
            f"jaxplain.plot.{fn}: clip must be None or a pair of quantiles (low, high), got "
            f"{type(clip).__name__} {clip!r}; e.g. clip=(0.01, 0.99)."
        )
    low = _checks.check_float(f"plot.{fn}", "clip[0]", clip[0], minimum=0.0)
    high = _checks.check_float(f"plot.{fn}", "clip[1]", clip[1], minimum=0.0)
    if not low < high <= 1.0:
        raise ValueError(
            f"jaxplain.plot.{fn}: clip needs quantiles 0 <= low < high <= 1, got {clip!r}; e.g. "
            f"clip=(0.01, 0.99)."
        )
    return low, high


def _cmap(fn: str, cmap: Any, signed: bool) -> mcolors.Colormap:
    if cmap is None:
        cmap = _SIGNED_CMAP if signed else _UNSIGNED_CMAP
    if isinstance(cmap, mcolors.Colormap):
        return cmap
    if isinstance(cmap, str) and cmap in matplotlib.colormaps:
        return matplotlib.colormaps[cmap]
    raise ValueError(
        f"jaxplain.plot.{fn}: cmap must be a Matplotlib colour map or the name of one, got "
        f"{cmap!r}; e.g. cmap='RdBu_r' (signed) or cmap='Greens' (unsigned)."
    )


# --------------------------------------------------------------------------- the colour mapping


def _scale(fn: str, values: np.ndarray, signed: Any, clip: Any, keeps_sign: bool):
    """Clips the scores and picks the colour limits: ``(clipped, signed, vmin, vmax)``."""
    signed, clip = _check_signed(fn, signed), _check_clip(fn, clip)
    finite = values[np.isfinite(values)]
    if signed is None:
        signed = keeps_sign and finite.size > 0 and bool(finite.min() < 0 < finite.max())
    if clip is not None and finite.size:
        if signed:
            m = float(np.quantile(np.abs(finite), clip[1]))
            lo, hi = -m, m
        else:
            lo, hi = (float(q) for q in np.quantile(finite, clip))
        values = np.where(np.isfinite(values), np.clip(values, lo, hi), np.nan)
        finite = values[np.isfinite(values)]
    if signed:
        m = float(np.max(np.abs(finite))) if finite.size else 0.0
        m = m if m > 0 else 1.0  # all zero: any symmetric range shows them as zero
        return values, True, -m, m
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return values, False, lo, (hi if hi > lo else lo + 1.0)  # constant scores: the low end


def _rgba(values: np.ndarray, cmap: mcolors.Colormap, vmin: float, vmax: float) -> np.ndarray:
    """One RGBA row per score; NaN is light gray."""
    rgba = np.asarray(cmap(mcolors.Normalize(vmin, vmax)(np.nan_to_num(values))), dtype=np.float64)
    rgba[np.isnan(values)] = _NAN_COLOR
    return rgba


def _ink(rgba) -> str:
    """Black or white text, whichever reads better on the background."""
    return "black" if 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.5 else "white"


def _layout(tokens: list[str], max_width: int) -> list[tuple[int, int, int]]:
    """``(line, column, width)`` per token, in characters: words one space apart, wrapped before a
    token that would pass ``max_width``; a longer token gets a line of its own."""
    out, line, col = [], 0, 0
    for t in tokens:
        w = max(len(t), 1)
        if col > 0 and col + 1 + w > max_width:
            line, col = line + 1, 0
        start = col + 1 if col > 0 else 0
        out.append((line, start, w))
        col = start + w
    return out


# --------------------------------------------------------------------------- Matplotlib


def text_heatmap(
    tokens: Sequence[str],
    scores: Any,
    *,
    ax: Axes | None = None,
    reduce: str = "sum",
    signed: bool | None = None,
    cmap: Any = None,
    clip: tuple[float, float] | None = None,
    colorbar: bool = True,
    title: str | None = None,
    max_width: int = 80,
    fontsize: float = 10.0,
) -> Axes:
    """Draws tokens as wrapped lines of words, each on a background coloured by its score.

    Each token is a rectangle (``ax.patches``, in token order) with the token's text centred on it
    (``ax.texts``). The layout is in monospace characters: tokens one space apart, a new line
    before a token that would pass ``max_width`` characters. Signed scores use a diverging colour
    map with limits ``(-m, m)``, ``m = max|score|`` (zero is the centre colour, white for
    ``"bwr"``); unsigned scores a sequential colour map from the smallest to the largest score.
    NaN scores (tokens without attribution) are light gray and do not set the limits. The text
    is black or white, whichever reads better on its background.

    Args:
      tokens: the ``L`` tokens, a list of strings.
      scores: their attributions, ``(L,)``, or ``(L, D)`` (e.g. one vector per token embedding)
        reduced over ``D`` by ``reduce``; NumPy or JAX, NaN allowed, Inf not.
      ax: the Axes to draw on; ``None`` makes a new figure sized to the text (about
        ``0.62 * fontsize / 72`` inches per character). An Axes of another width still shows
        the layout, but the text may overflow its boxes.
      reduce: ``"sum"`` (signed, e.g. gradient x input, whose sum over the embedding adds up to
        the token's contribution) or ``"norm"`` (L2 norm, unsigned), see :data:`TEXT_REDUCTIONS`.
        ``(L,)`` scores are read as ``(L, 1)``: unchanged by ``"sum"``, ``|score|`` by ``"norm"``.
      signed: draw signed (diverging) or unsigned (sequential); ``None``: signed when the
        reduction keeps the sign and the scores have both signs.
      cmap: a Matplotlib colour map or its name (default ``"bwr"`` signed, ``"Reds"`` unsigned).
      clip: the quantiles ``(low, high)`` to clamp the scores to before colouring (symmetric,
        ``|score|`` to its ``high`` quantile, when signed), or ``None``.
      colorbar: add a horizontal colour bar below the text.
      title: the Axes title.
      max_width: the line width in characters, ``>= 1``.
      fontsize: the font size in points.

    Returns:
      The Axes; ``ax.patches[i].get_facecolor()`` is the colour of token ``i``.

    Example:
      >>> import matplotlib.pyplot as plt, numpy as np
      >>> from jaxplain.plot import text_heatmap
      >>> tokens = "the movie was not good".split()
      >>> ax = text_heatmap(tokens, np.array([0.0, 0.1, 0.2, -1.0, 0.5]), max_width=12)
      >>> len(ax.patches), [t.get_text() for t in ax.texts][:2]
      (5, ['the', 'movie'])
      >>> ax.patches[3].get_facecolor() == plt.get_cmap("bwr")(0.0)  # the most negative: blue end
      True
      >>> sorted({p.get_y() for p in ax.patches})  # two lines of at most 12 characters
      [0.1, 1.1]
      >>> plt.close(ax.figure)

    References:
      Arras, Horn, Montavon, Mueller & Samek (2017), "What is relevant in a text document? An
      interpretable machine learning approach", PLOS ONE 12(8) (word relevance heat maps).
      Kokhlikyan et al. (2020), "Captum: A unified and generic model interpretability library for
      PyTorch", arXiv:2009.07896 (``visualization.visualize_text``).
    """
    fn = "text_heatmap"
    colorbar = _checks.check_bool(f"plot.{fn}", "colorbar", colorbar)
    max_width = _checks.check_int(f"plot.{fn}", "max_width", max_width, minimum=1)
    fontsize = _checks.check_float(f"plot.{fn}", "fontsize", fontsize, minimum=0.0)
    tokens = _tokens(fn, tokens)
    s = _scores(fn, tokens, scores, reduce)
    s, signed, vmin, vmax = _scale(fn, s, signed, clip, keeps_sign=reduce == "sum")
    cm = _cmap(fn, cmap, signed)
    rgba = _rgba(s, cm, vmin, vmax)
    place = _layout(tokens, max_width)
    lines = place[-1][0] + 1
    cols = max(max_width, max(c + w for _, c, w in place))
    if ax is None:
        em = fontsize / 72.0
        height = lines * _LINE_HEIGHT * em + 0.2 + 0.6 * colorbar + 0.3 * (title is not None)
        fig = plt.figure(figsize=(cols * _CHAR_WIDTH * em + 0.3, height), layout="constrained")
        ax = fig.add_subplot()
    elif not isinstance(ax, Axes):
        raise TypeError(
            f"jaxplain.plot.{fn}: ax must be a matplotlib Axes or None, got {type(ax).__name__} "
            f"{ax!r:.80}."
        )
    for tok, (line, col, w), c in zip(tokens, place, rgba):
        ax.add_patch(Rectangle((col, line + 0.1), w, 0.8, facecolor=tuple(c), edgecolor="none"))
        ax.text(col + w / 2, line + 0.5, tok, ha="center", va="center", family="monospace", parse_math=False,
                fontsize=fontsize, color=_ink(c))
    ax.set_xlim(-0.2, cols + 0.2)
    ax.set_ylim(lines, 0)
    ax.axis("off")
    if colorbar:
        sm = ScalarMappable(norm=mcolors.Normalize(vmin, vmax), cmap=cm)
        ax.figure.colorbar(sm, ax=ax, orientation="horizontal", fraction=0.15, aspect=40, pad=0.02)
    if title is not None:
        ax.set_title(str(title))
    return ax


# --------------------------------------------------------------------------- HTML


def _spans(tokens: list[str], raw: np.ndarray, rgba: np.ndarray) -> str:
    out = []
    for tok, v, c in zip(tokens, raw, rgba):
        style = (f"background-color:{mcolors.to_hex(c)};color:{_ink(c)};padding:1px 3px;"
                 f"margin:1px 0;border-radius:3px;white-space:pre-wrap")
        out.append(f'<span title="{v:.4g}" style="{style}">{html.escape(tok, quote=True)}</span>')
    return ('<div class="jaxplain-text" style="font-family:monospace;line-height:2;'
            'overflow-wrap:anywhere">' + " ".join(out) + "</div>")


def text_html(
    tokens: Sequence[str],
    scores: Any,
    *,
    reduce: str = "sum",
    signed: bool | None = None,
    cmap: Any = None,
    clip: tuple[float, float] | None = None,
) -> str:
    """A self-contained HTML snippet of tokens on backgrounds coloured by their scores.

    One ``<span>`` per token, in order, inside a ``<div>``; each span has an inline background
    colour from the same mapping as :func:`text_heatmap` (its colour rounded to ``#rrggbb``), a
    ``title`` attribute with the score (shown on hover; ``nan`` for a token without one, after
    the reduction, before clipping) and the HTML-escaped token text. No scripts, no style sheet:
    the snippet can be pasted into a page, written with :func:`save_text_html`, or shown in a
    notebook with ``IPython.display.HTML(snippet)``.

    Args:
      tokens: the ``L`` tokens, a list of strings.
      scores: ``(L,)`` or ``(L, D)``; NumPy or JAX, NaN allowed, Inf not.
      reduce, signed, cmap, clip: as in :func:`text_heatmap`.

    Returns:
      The HTML snippet, a string.

    Example:
      >>> import numpy as np
      >>> from jaxplain.plot import text_html
      >>> snippet = text_html(["good", "<b>", "bad"], np.array([2.0, 0.0, -2.0]))
      >>> snippet.count("<span"), "&lt;b&gt;" in snippet, "<b>" in snippet
      (3, True, False)
      >>> 'title="2" style="background-color:#ff0000' in snippet  # the most positive: the red end
      True

    References:
      Kokhlikyan et al. (2020), "Captum: A unified and generic model interpretability library for
      PyTorch", arXiv:2009.07896 (``visualization.visualize_text``, an HTML token view).
      Sarti, Feldhus, Sickert, van der Wal, Nissim & Bisazza (2023), "Inseq: An Interpretability
      Toolkit for Sequence Generation Models", ACL (System Demonstrations), arXiv:2302.13942.
    """
    fn = "text_html"
    tokens = _tokens(fn, tokens)
    raw = _scores(fn, tokens, scores, reduce)
    s, signed, vmin, vmax = _scale(fn, raw, signed, clip, keeps_sign=reduce == "sum")
    return _spans(tokens, raw, _rgba(s, _cmap(fn, cmap, signed), vmin, vmax))


def _rows(fn: str, rows: Any) -> list[tuple[str | None, Any, Any]]:
    if isinstance(rows, (str, bytes, dict)) or not hasattr(rows, "__len__"):
        raise TypeError(
            f"jaxplain.plot.{fn}: rows must be a list of (label, tokens, scores) or (tokens, scores) "
            f"tuples, got {type(rows).__name__} {rows!r:.80}."
        )
    if len(rows) == 0:
        raise ValueError(f"jaxplain.plot.{fn}: rows is empty; pass at least one (label, tokens, scores).")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, (tuple, list)) or len(row) not in (2, 3):
            raise TypeError(
                f"jaxplain.plot.{fn}: rows[{i}] must be a tuple (label, tokens, scores) or (tokens, "
                f"scores), got {type(row).__name__} {row!r:.80}."
            )
        out.append(tuple(row) if len(row) == 3 else (None, *row))
    return out


def save_text_html(
    path: str | os.PathLike,
    rows: Sequence[tuple],
    *,
    reduce: str = "sum",
    signed: bool | None = None,
    cmap: Any = None,
    clip: tuple[float, float] | None = None,
    shared_scale: bool = False,
    title: str | None = None,
) -> pathlib.Path:
    """Writes several token attribution rows (one per example or method) into one HTML file.

    Each row is ``(label, tokens, scores)`` or ``(tokens, scores)``; it becomes the escaped label
    (if any) and the snippet of :func:`text_html`, with its colour limits. By default every row
    has its own colour scale (magnitudes differ between examples and methods); with
    ``shared_scale=True`` all rows share one (limits, clipping and the signed/unsigned decision
    taken over all scores), so colours compare across rows. For a batch ``(N, L)`` or
    ``(N, L, D)`` pass ``[(label_i, tokens_i, scores[i]) for ...]``. The file is UTF-8 and
    self-contained.

    Args:
      path: where to write the ``.html`` file (its folder must exist).
      rows: the rows, a list of tuples.
      reduce, signed, cmap, clip: as in :func:`text_heatmap`, for every row.
      shared_scale: one colour scale for all rows.
      title: the page's title and heading.

    Returns:
      The path written, a ``pathlib.Path``.

    Example:
      >>> import os, tempfile, numpy as np
      >>> from jaxplain.plot import save_text_html
      >>> path = os.path.join(tempfile.mkdtemp(), "tokens.html")
      >>> rows = [("positive", ["great", "film"], np.array([1.0, 0.2])),
      ...         ("negative", ["dull", "film"], np.array([-1.0, 0.1]))]
      >>> page = save_text_html(path, rows, shared_scale=True).read_text(encoding="utf-8")
      >>> page.count("<span"), page.count('class="jaxplain-row"')
      (4, 2)

    References:
      Kokhlikyan et al. (2020), "Captum: A unified and generic model interpretability library for
      PyTorch", arXiv:2009.07896 (``visualization.visualize_text``, one table row per example).
      Sarti, Feldhus, Sickert, van der Wal, Nissim & Bisazza (2023), "Inseq: An Interpretability
      Toolkit for Sequence Generation Models", ACL (System Demonstrations), arXiv:2302.13942.
    """
    fn = "save_text_html"
    shared = _checks.check_bool(f"plot.{fn}", "shared_scale", shared_scale)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"jaxplain.plot.{fn}: path must be a str or os.PathLike, got {type(path).__name__} "
            f"{path!r:.80}."
        )
    parsed = []
    for i, (label, tokens, scores) in enumerate(_rows(fn, rows)):
        tokens = _tokens(fn, tokens)
        parsed.append((label, tokens, _scores(fn, tokens, scores, reduce, name=f"rows[{i}] scores")))
    keeps_sign = reduce == "sum"
    if shared:
        every = np.concatenate([s for *_, s in parsed])
        allv, signed, vmin, vmax = _scale(fn, every, signed, clip, keeps_sign)
        scaled, start = [], 0
        for *_, s in parsed:
            scaled.append((allv[start:start + s.size], signed, vmin, vmax))
            start += s.size
    else:
        scaled = [_scale(fn, s, signed, clip, keeps_sign) for *_, s in parsed]
    body = []
    for (label, tokens, raw), (s, sgn, vmin, vmax) in zip(parsed, scaled):
        head = f"<b>{html.escape(str(label))}</b> " if label is not None else ""
        body.append(f'<div class="jaxplain-row" style="margin:0.8em 0">{head}'
                    f'<small style="color:#666">[{vmin:.3g}, {vmax:.3g}]</small>'
                    f"{_spans(tokens, raw, _rgba(s, _cmap(fn, cmap, sgn), vmin, vmax))}</div>")
    name = html.escape(str(title)) if title is not None else "Token attributions"
    heading = f"<h3>{name}</h3>\n" if title is not None else ""
    page = (f'<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>{name}</title></head>\n'
            f'<body style="font-family:sans-serif;max-width:60em">\n{heading}' + "\n".join(body)
            + "\n</body>\n</html>\n")
    out = pathlib.Path(path)
    out.write_text(page, encoding="utf-8")
    return out
