"""Activation maximization: the image that most excites a unit, found by gradient ascent with Optax.

:func:`activation_maximization` is a transform like the others: it takes an objective and returns a
pure ``render(key, unit, *args)``. The units are an argument of the compiled run: an array of
them renders in one vmapped program (every channel of a layer at once), and a different unit does
not recompile. Each step is one compiled program for all units, in a Python loop with a progress bar (a
``lax.scan`` over the steps ran 7x slower on XLA:CPU, whose convolutions are slow inside loops).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxplain import _checks
from jaxplain._featurevis import param as P
from jaxplain._featurevis import transforms as T
from jaxplain._featurevis.objectives import Objective

__all__ = ["activation_maximization"]


def _check_objective(where: str, objective: Any) -> Objective:
    if not isinstance(objective, Objective):
        raise TypeError(
            f"jaxplain.{where}: objective must be a jaxplain objective, e.g. "
            f"jx.objectives.channel(f, layer='stage1') or jx.objectives.class_logit(f), got "
            f"{type(objective).__name__}."
        )
    return objective


def _check_optimizer(where: str, optimizer: Any):
    if optimizer is None:
        return optax.adam(0.05)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"jaxplain.{where}: optimizer must be an optax.GradientTransformation, e.g. "
            f"optax.adam(0.05) (the default) or optax.chain(optax.clip(1.0), optax.sgd(0.1)), got "
            f"{type(optimizer).__name__}."
        )
    return optimizer


def _check_shape(where: str, shape: Any) -> tuple:
    if (not isinstance(shape, (tuple, list)) or len(shape) != 3 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)):
        raise ValueError(f"jaxplain.{where}: shape must be (height, width, channels) of the model's "
                         f"input for one example, e.g. (32, 32, 3), got {shape!r}.")
    return tuple(shape)


def activation_maximization(
    objective: Objective,
    *,
    shape: tuple,
    param: P.Param | None = None,
    transforms: T.Transform | None | str = "standard",
    optimizer: optax.GradientTransformation | None = None,
    steps: int = 512,
    batch: int = 1,
    preprocess: Callable | None = None,
    init: Any = None,
    progress: bool = True,
) -> Callable:
    """Renders the input that maximizes ``objective``: gradient ascent with an Optax optimizer on a
    parametrized image, through random transformations.

    Each step draws a transformation of the image (``transforms``; Lucid's standard set by
    default), resizes it back to ``shape`` if it changed, applies ``preprocess`` (the model's own
    normalization), and takes an optimizer step up the objective's gradient.

    Args:
      objective: a :class:`jaxplain.objectives.Objective`, e.g.
        ``jx.objectives.channel(f, "stage1")`` (``+``, ``-``, scalar ``*`` combine them).
      shape: ``(H, W, C)`` of one model input.
      param: the parametrization (:func:`jaxplain.featurevis.fourier` by default, decorrelated
        colour, sigmoid to ``[0, 1]``; :func:`jaxplain.featurevis.pixel` for raw pixels).
      transforms: a :class:`jaxplain.featurevis.Transform` (``compose(...)``), ``"standard"``, or
        ``None`` for none.
      optimizer: any ``optax.GradientTransformation``; default ``optax.adam(0.05)`` (Lucid's).
      steps: optimizer steps (default 512, as Lucid).
      batch: images per unit (``> 1`` with :func:`jaxplain.objectives.diversity`).
      preprocess: ``image -> model input`` for one image, applied last (e.g. mean/std normalization).
      init: an image (``(H, W, C)``, in the parametrization's value range) to start from instead of
        noise, e.g. a dataset example; needs ``param=featurevis.pixel()``.
      progress: show a progress bar over the steps.

    Returns:
      ``render(key, unit=0, *args)``: the rendered images, ``(H, W, C)`` for an int ``unit``
      (``(batch, H, W, C)`` with ``batch > 1``), and one more leading axis for an array of units;
      ``*args`` go to the objective's ``f``. The same key gives the same image, whatever units are
      rendered beside it.

    A unit whose objective has no gradient at all at the last step (a ReLU unit that never fires,
    say) gets a warning naming it: its image shows nothing about it.

    Raises:
      TypeError: the objective, optimizer, param or transforms are of the wrong kind.
      ValueError: ``steps`` or ``batch`` < 1, a bad ``shape``; at call time a unit out of range
        for the layer or model.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(4,), classes=2)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> render = jx.activation_maximization(jx.objectives.channel(f, "stage0/conv1"),
      ...                                     shape=(16, 16, 3), steps=8, progress=False)
      >>> render(jax.random.key(0), jnp.arange(4), 0).shape   # all 4 channels in one run
      (4, 16, 16, 3)

    References:
      Erhan, Bengio, Courville & Vincent (2009), "Visualizing Higher-Layer Features of a Deep
      Network", Univ. Montreal TR 1341; Olah, Mordvintsev & Schubert (2017), "Feature
      Visualization", Distill; Mordvintsev et al. (2018), "Differentiable Image
      Parameterizations", Distill.
    """
    where = "activation_maximization"
    objective = _check_objective(where, objective)
    shape = _check_shape(where, shape)
    param = P.fourier(decorrelate=shape[-1] == 3) if param is None else param
    if not isinstance(param, P.Param):
        raise TypeError(f"jaxplain.{where}: param must be featurevis.fourier() or featurevis.pixel(), "
                        f"got {type(param).__name__}.")
    if isinstance(transforms, str):
        if transforms != "standard":
            raise ValueError(f"jaxplain.{where}: transforms must be a featurevis Transform, "
                             f"'standard' or None, got {transforms!r}.")
        transforms = T.standard()
    elif transforms is not None and not isinstance(transforms, T.Transform):
        raise TypeError(f"jaxplain.{where}: transforms must be a featurevis Transform (e.g. "
                        f"featurevis.compose(featurevis.pad(4), featurevis.jitter(2))), 'standard' "
                        f"or None, got {type(transforms).__name__}.")
    optimizer = _check_optimizer(where, optimizer)
    steps = _checks.check_int(where, "steps", steps, minimum=1)
    batch = _checks.check_int(where, "batch", batch, minimum=1)
    if preprocess is not None:
        _checks.check_callable(where, "preprocess", preprocess)
    progress = _checks.check_bool(where, "progress", progress)
    start = None
    if init is not None:
        if param.invert is None:
            raise ValueError(f"jaxplain.{where}: init= starts from an image, which needs "
                             f"param=featurevis.pixel(); the {param.name} parametrization has no "
                             f"inverse.")
        x0 = _checks.check_array(where, "init", init, expected="an image of shape " + str(shape))
        if x0.shape != shape:
            raise ValueError(f"jaxplain.{where}: init has shape {x0.shape}, expected {shape}.")
        start = param.invert(x0)

    def model_inputs(images, key):
        keys = jax.random.split(key, images.shape[0])
        x = images if transforms is None else jax.vmap(transforms)(keys, images)
        if x.shape[1:] != shape:
            x = jax.vmap(lambda im: jax.image.resize(im, shape, "linear"))(x)
        return x if preprocess is None else jax.vmap(preprocess)(x)

    def loss(params, key, unit, args):
        images = jax.vmap(lambda p: param.image(p, shape))(params)
        return -objective.fn(model_inputs(images, key), images, unit, args)

    def first(key):
        if start is not None:
            return jnp.broadcast_to(start, (batch,) + start.shape)
        return jax.vmap(lambda k: param.init(k, shape))(jax.random.split(key, batch))

    def one_step(carry, i, key, unit, args):
        params, state = carry
        g = jax.grad(loss)(params, jax.random.fold_in(key, i), unit, args)
        updates, state = optimizer.update(g, state, params)
        # no gradient at all: the objective is flat here (a dead unit)
        flat = jnp.all(jnp.stack([jnp.all(leaf == 0) for leaf in jax.tree_util.tree_leaves(g)]))
        return (optax.apply_updates(params, updates), state), flat

    @jax.jit
    def step(carry, key, units, i, args):  # one optimizer step for every unit at once
        return jax.vmap(lambda c, unit: one_step(c, i, key, unit, args))(carry, units)

    @jax.jit
    def begin(key, units):
        params = first(key)
        state = optimizer.init(params)
        return jax.vmap(lambda u: (params, state))(units)

    @jax.jit
    def finish(params):
        return jax.vmap(jax.vmap(lambda p: param.image(p, shape)))(params)

    def render(key, unit=0, *args):
        key = _checks.require_key(where, key)
        units = jnp.asarray(unit)
        if not jnp.issubdtype(units.dtype, jnp.integer) or units.ndim > 1:
            raise TypeError(f"jaxplain.{where}: unit must be an int or a 1-D integer array of units, "
                            f"got {units.dtype} of shape {units.shape}.")
        objective.check(jnp.zeros(shape, jnp.float32) if preprocess is None else
                        preprocess(jnp.zeros(shape, jnp.float32)), np.asarray(units), args)
        flat = units.reshape(-1)
        k_init, k_steps = jax.random.split(key)
        carry = begin(k_init, flat)
        from tqdm.auto import tqdm

        # A Python loop over compiled steps, not a lax.scan: XLA:CPU runs convolutions inside a
        # loop body several times slower (measured 33 vs 4.6 ms per step, benchmarks/featurevis.py)
        for i in tqdm(range(steps), desc=f"activation maximization ({objective.name})",
                      disable=not progress, leave=False):
            carry, stuck = step(carry, k_steps, flat, jnp.asarray(i), args)
        images = finish(carry[0])  # (units, batch, H, W, C); `stuck`: at the last step
        if bool(jnp.any(stuck)):
            dead = np.asarray(flat)[np.asarray(stuck)].tolist()
            warnings.warn(
                f"jaxplain.{where}: the objective {objective.name!r} has zero gradient for unit(s) "
                f"{dead[:10]}{' ...' if len(dead) > 10 else ''} at the last step: nothing "
                f"there moves it (e.g. a ReLU unit that is never active), so the image is not a "
                f"visualization of it. Check the unit on real inputs (featurevis.top_k), start from "
                f"an example (init=, with param=featurevis.pixel()), or render another layer.",
                stacklevel=2,
            )
        if batch == 1:
            images = images[:, 0]
        return images[0] if units.ndim == 0 else images

    render.__name__ = render.__qualname__ = f"activation_maximization({objective.name})"
    return render
