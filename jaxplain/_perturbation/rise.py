"""RISE (Petsiuk, Das & Saenko 2018): the saliency of a pixel is the expected output over random
smooth masks that keep it, ``S = E[f(x * M + b * (1 - M)) M] / p``."""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxplain import _checks, _paths
from jaxplain._contract import Explainer, make_explainer
from jaxplain._perturbation import features as F

__all__ = ["rise", "rise_masks"]


def rise_masks(key, shape: tuple, n: int, cell: int, p: float) -> jax.Array:
    """``n`` RISE masks for an ``(H, W)`` image: a ``cell x cell`` grid of Bernoulli(``p``) cells,
    upsampled bilinearly to ``(cell + 1) * ceil(H / cell)`` square, then cropped at a random
    shift in ``[0, ceil(H / cell))`` along each axis (Petsiuk et al.'s ``generate_masks``).

    Example:
      >>> import jax
      >>> from jaxplain._perturbation.rise import rise_masks
      >>> m = rise_masks(jax.random.key(0), (12, 12), 5, 4, 0.5)
      >>> m.shape, bool((m >= 0).all() & (m <= 1).all())
      ((5, 12, 12), True)

    References:
      Petsiuk, Das & Saenko (2018), "RISE: Randomized Input Sampling for Explanation of Black-box
      Models", BMVC.
    """
    h, w = shape
    ch, cw = math.ceil(h / cell), math.ceil(w / cell)
    k_grid, k_shift = jax.random.split(key)
    grids = jax.random.bernoulli(k_grid, p, (n, cell, cell)).astype(jnp.float32)
    big = jax.vmap(lambda g: jax.image.resize(g, ((cell + 1) * ch, (cell + 1) * cw), "linear"))(grids)
    shifts = jax.random.randint(k_shift, (n, 2), 0, jnp.asarray([ch, cw]))
    return jax.vmap(lambda m, s: jax.lax.dynamic_slice(m, (s[0], s[1]), (h, w)))(big, shifts)


def rise(f: Callable, *, masks: int = 2000, cell: int = 7, p: float = 0.5, baseline: Any = 0.0,
         batch_size: int | None = None) -> Explainer:
    """RISE: ``S = sum_i f(x * M_i + b * (1 - M_i)) M_i / (masks * p)`` over random smooth masks
    (:func:`rise_masks`) of the spatial axes of an ``(H, W, C)`` (or ``(H, W)``) input, shared by
    its channels.

    Args:
      f: ``f(x, *args) -> scalar`` for one example (a class probability, as in the paper, or a
        logit).
      masks: random masks drawn (``>= 1``).
      cell: the grid of ``cell x cell`` random cells each mask is made from (``>= 1``).
      p: the probability that a cell is kept (``0 < p <= 1``).
      baseline: what masked pixels hold: a number, an array broadcastable to x, or ``x -> b``.
      batch_size: masked inputs evaluated at once.

    Returns:
      ``explain(x, *args, key)``: the saliency, shaped ``(H, W)`` (one value per pixel).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> f = lambda x: x[1, 2, 0]  # only one pixel matters
      >>> s = jx.rise(f, masks=1000, cell=8)(jnp.ones((8, 8, 1)), key=jax.random.key(0))
      >>> s.shape, tuple(int(i) for i in jnp.unravel_index(jnp.argmax(s), s.shape))
      ((8, 8), (1, 2))

    References:
      Petsiuk, Das & Saenko (2018), "RISE: Randomized Input Sampling for Explanation of Black-box
      Models", BMVC.
    """
    where = "rise"
    _checks.check_callable(where, "f", f)
    masks = _checks.check_int(where, "masks", masks, minimum=1)
    cell = _checks.check_int(where, "cell", cell, minimum=1)
    p = _checks.check_float(where, "p", p)
    if not 0 < p <= 1:
        raise ValueError(f"jaxplain.{where}: p must lie in (0, 1], got {p!r}.")
    batch_size = _checks.check_batch_size(where, batch_size)
    _checks.check_baseline(where, baseline)
    g = _checks.scalar_output(where, f)

    def core(x, *args, key, **kwargs):
        F.single_array(where, x)
        if x.ndim not in (2, 3):
            raise ValueError(f"jaxplain.{where}: x must be an image, (H, W, C) or (H, W), got shape "
                             f"{x.shape}.")
        b = _paths.broadcast_like(where, "baseline", baseline, x)
        ms = rise_masks(key, x.shape[:2], masks, cell, p).astype(x.dtype)
        spread = (lambda m: m[..., None]) if x.ndim == 3 else (lambda m: m)
        y = F.evaluate(g, lambda m: b + spread(m) * (x - b), ms, x, args, kwargs, batch_size)
        return jnp.tensordot(y.astype(x.dtype), ms, axes=1) / (masks * p)

    return make_explainer(where, f, core, dict(masks=masks, cell=cell, p=p, baseline=baseline,
                                               batch_size=batch_size), needs_key=True)
