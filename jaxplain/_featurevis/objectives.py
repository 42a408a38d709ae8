"""Objectives of activation maximization: what a rendered image should make the model do.

An :class:`Objective` scores a batch of images for one unit; objectives add, subtract and scale
(``channel(f, "stage1") - 1e-3 * total_variation()``). Layer objectives read the layer by its
module path through the layer taps (``jx.layers(f, x)`` lists the paths), for Linen, NNX (an
``f`` from ``jaxplain.flax.from_nnx``), Equinox modules passed as arguments and closures alike.
The unit (a channel, a class) is an argument of the rendered run, so every channel of a layer
renders in one compiled, vmapped call, and another unit does not recompile.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _checks, _taps

__all__ = ["Objective", "channel", "neuron", "class_logit", "deepdream", "direction", "diversity",
           "l1", "l2", "total_variation", "blur"]


class Objective:
    """A differentiable score of rendered images, maximized by :func:`jaxplain.activation_maximization`.

    ``fn(inputs, images, unit, args) -> scalar``: ``inputs`` are the ``(B, H, W, C)`` images as the
    model sees them (after the robustness transforms and ``preprocess``), ``images`` the rendered
    images themselves (what regularizers measure), ``unit`` a traced integer (the channel or class
    of objectives built without one), ``args`` the extra arguments of ``f``. Objectives combine
    with ``+``, ``-``, unary ``-`` and multiplication or division by a number.

    Called as ``objective(x, unit=0, *args)`` it scores ONE input ``x`` (what
    :func:`jaxplain.featurevis.top_k` ranks a dataset by).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> f = lambda x, t: jnp.sum(x * (t + 1))
      >>> obj = jx.objectives.class_logit(f) - 0.5 * jx.objectives.l2(constant=0.0)
      >>> obj.name
      'class_logit - 0.5 * l2'
      >>> round(float(obj(jnp.ones((2, 2, 3)), 1)), 3)  # 2 * 12 - 0.5 * sqrt(12)
      22.268

    References:
      Olah, Mordvintsev & Schubert (2017), "Feature Visualization", Distill (objectives as a small
      algebra, as in Lucid's ``objectives`` module).
    """

    __slots__ = ("fn", "name", "checks")

    def __init__(self, fn: Callable, name: str, checks: tuple = ()):
        self.fn, self.name, self.checks = fn, name, tuple(checks)

    def __call__(self, x, unit=0, *args):
        x = jnp.asarray(x)[None]
        return self.fn(x, x, jnp.asarray(unit), args)

    def check(self, x, units, args) -> None:
        """Raises if a concrete unit is out of range for this objective (``x``: one input)."""
        for c in self.checks:
            c(x, units, args)

    def _combine(self, other, sign: float, symbol: str) -> "Objective":
        if not isinstance(other, Objective):
            return NotImplemented
        a, b = self.fn, other.fn
        return Objective(lambda i, m, u, r: a(i, m, u, r) + sign * b(i, m, u, r),
                         f"{self.name} {symbol} {other.name}", self.checks + other.checks)

    def __add__(self, other):
        return self._combine(other, 1.0, "+")

    def __sub__(self, other):
        return self._combine(other, -1.0, "-")

    def __neg__(self):
        return self * -1.0

    def __mul__(self, scale):
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            return NotImplemented
        fn, s = self.fn, float(scale)
        return Objective(lambda i, m, u, r: s * fn(i, m, u, r), f"{s:g} * {self.name}", self.checks)

    __rmul__ = __mul__

    def __truediv__(self, scale):
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or scale == 0:
            return NotImplemented
        return self * (1.0 / float(scale))

    def __repr__(self) -> str:
        return f"Objective({self.name})"


# --------------------------------------------------------------------------- layers


def _layer(name: str, f: Callable, layer: str):
    """The layer's activation of each input, ``acts(inputs, args) -> (B, *A)``, and its shape."""
    where = f"objectives.{name}"
    sp = _taps.split(where, f, layer, None, None, many=False)

    def acts(inputs, args):
        return jax.vmap(lambda x: sp.activation(x, *args))(inputs)

    seen: dict = {}  # the layer's shape per input signature: a check does not retrace f

    def shape(x, args):
        key = _signature(x, args)
        if key not in seen:
            seen[key] = jax.eval_shape(lambda: sp.activation(x, *args)).shape
        return seen[key]

    return acts, shape


def _signature(*values) -> tuple:
    leaves, tree = jax.tree_util.tree_flatten(values)
    return (tree,) + tuple((jnp.shape(v), str(jnp.result_type(v))) for v in leaves)


def _index(where: str, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise TypeError(f"jaxplain.{where}: {name} must be None (the rendered unit) or an int >= 0, "
                        f"got {value!r}.")
    return int(value)


def _unit_check(where: str, shape: Callable, fixed: int | None, what: str = "channel"):
    """A check that the channel (fixed, or each rendered unit) indexes the layer's last axis."""

    def check(x, units, args):
        s = shape(x, args)
        n = s[-1] if s else 1
        wanted = [fixed] if fixed is not None else [int(u) for u in np.ravel(units)]
        bad = [u for u in wanted if not 0 <= u < n]
        if not s or bad:
            raise ValueError(
                f"jaxplain.{where}: {what} {bad[0] if bad else wanted[0]} is out of range for the "
                f"layer's output of shape {s} (channels on the last axis); valid {what}s are "
                f"0 .. {n - 1}."
            )

    return check


def channel(f: Callable, layer: str, channel: int | None = None) -> Objective:
    """The mean activation of one channel of ``layer`` over its positions (Lucid's ``channel``).

    Args:
      f: ``f(x, *args)`` for one example, calling the model (a closure, or an adapter's ``f``).
      layer: the module path of the layer (``jaxplain.layers(f, x)`` lists them).
      channel: the channel (last axis); ``None``: the unit of the rendered run.

    Returns:
      An :class:`Objective`.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(4,), classes=2)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> obj = jx.objectives.channel(f, "stage0/conv1")
      >>> a = jx.layers(f, jnp.zeros((8, 8, 3)), 0)["stage0/conv1"]; a
      (1, 8, 8, 4)
      >>> obj(jnp.ones((8, 8, 3)), 2, 0).shape  # the channel-2 mean of one input
      ()

    References:
      Olah, Mordvintsev & Schubert (2017), "Feature Visualization", Distill.
    """
    where = "objectives.channel"
    fixed = _index(where, "channel", channel)
    acts, shape = _layer("channel", f, layer)

    def fn(inputs, images, unit, args):
        a = acts(inputs, args)
        c = fixed if fixed is not None else unit
        return jnp.mean(jnp.take(a, c, axis=-1))

    return Objective(fn, "channel", (_unit_check(where, shape, fixed),))


def neuron(f: Callable, layer: str, channel: int | None = None, position: tuple | None = None) -> Objective:
    """One unit at one position of ``layer``: ``A[*position, channel]`` (Lucid's ``neuron``).

    Args:
      f: ``f(x, *args)`` for one example.
      layer: the module path of the layer.
      channel: the channel (last axis); ``None``: the unit of the rendered run.
      position: the index of the position axes (all but the last); ``None``: the centre,
        ``size // 2`` on each.

    Returns:
      An :class:`Objective`.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import MLP
      >>> import jax
      >>> model = MLP(features=(5,), classes=2)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> sorted(jx.layers(f, jnp.zeros(3), 0))[:1]
      ['dense0']
      >>> float(jx.objectives.neuron(f, "dense0", position=(0,))(jnp.ones(3), 4, 0)) == float(
      ...     model.apply(v, jnp.ones((1, 3)), capture_intermediates=True)[1]["intermediates"]["dense0"]["__call__"][0][0, 4])
      True

    References:
      Olah, Mordvintsev & Schubert (2017), "Feature Visualization", Distill.
    """
    where = "objectives.neuron"
    fixed = _index(where, "channel", channel)
    if position is not None and (not isinstance(position, tuple) or not all(
            isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in position)):
        raise TypeError(f"jaxplain.{where}: position must be None (the centre) or a tuple of ints "
                        f">= 0, one per position axis, got {position!r}.")
    acts, shape = _layer("neuron", f, layer)
    unit_check = _unit_check(where, shape, fixed)

    def check(x, units, args):
        unit_check(x, units, args)
        s = shape(x, args)
        if position is not None and (len(position) != len(s) - 1 or any(
                p >= n for p, n in zip(position, s[:-1]))):
            raise ValueError(f"jaxplain.{where}: position {position} does not index the position "
                             f"axes {tuple(s[:-1])} of the layer's output of shape {s}.")

    def fn(inputs, images, unit, args):
        a = acts(inputs, args)  # (B, *positions, C)
        pos = position if position is not None else tuple(n // 2 for n in a.shape[1:-1])
        c = fixed if fixed is not None else unit
        return jnp.mean(jnp.take(a[(slice(None),) + tuple(pos)], c, axis=-1))

    return Objective(fn, "neuron", (check,))


def class_logit(f: Callable, target: int | None = None) -> Objective:
    """``f(x, target, *args)`` itself: a class logit, or probability with an ``f`` made with
    ``output="softmax"`` (``target=None``: the unit of the rendered run).

    Args:
      f: ``f(x, target, *args) -> scalar``, e.g. ``jaxplain.flax.from_linen(model, variables)``.
      target: the class; ``None``: the unit of the rendered run.

    Returns:
      An :class:`Objective`.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> f = lambda x, t: jnp.sum(x) * (t + 1)
      >>> float(jx.objectives.class_logit(f)(jnp.ones(3), 2))
      9.0

    References:
      Simonyan, Vedaldi & Zisserman (2014), "Deep Inside Convolutional Networks: Visualising Image
      Classification Models and Saliency Maps", ICLR workshop (class model visualization).
    """
    where = "objectives.class_logit"
    _checks.check_callable(where, "f", f)
    fixed = _index(where, "target", target)

    checked: set = set()

    def check(x, units, args):
        for u in ([fixed] if fixed is not None else [int(u) for u in np.ravel(units)]):
            key = (u,) + _signature(x, args)
            if key not in checked:  # an adapter's f raises for a class out of range
                jax.eval_shape(lambda: f(x, u, *args))
                checked.add(key)

    def fn(inputs, images, unit, args):
        t = fixed if fixed is not None else unit
        return jnp.mean(jax.vmap(lambda x: f(x, t, *args))(inputs))

    return Objective(fn, "class_logit", (check,))


def deepdream(f: Callable, layer: str) -> Objective:
    """The mean square of ``layer``'s activation (DeepDream; Lucid's ``deepdream``).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import MLP
      >>> model = MLP(features=(5,), classes=2)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> float(jx.objectives.deepdream(f, "dense0")(jnp.ones(3), 0, 0)) >= 0
      True

    References:
      Mordvintsev, Olah & Tyka (2015), "Inceptionism: Going Deeper into Neural Networks", Google
      Research blog.
    """
    acts, _ = _layer("deepdream", f, layer)
    return Objective(lambda i, m, u, r: jnp.mean(acts(i, r) ** 2), "deepdream")


def direction(f: Callable, layer: str, vector: Any, *, cosine_power: float = 0.0) -> Objective:
    """The activation along ``vector`` at every position, ``<A, v>``, times
    ``max(cos(A, v), 0.1) ** cosine_power`` (Lucid's ``direction`` / ``direction_cossim``).

    Args:
      f: ``f(x, *args)`` for one example.
      layer: the module path of the layer.
      vector: a direction in the layer's channel space, shape ``(C,)``.
      cosine_power: the power of the cosine factor (``0``: the plain dot product).

    Returns:
      An :class:`Objective`.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import MLP
      >>> model = MLP(features=(5,), classes=2)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 3)))
      >>> g = lambda x, t: model.apply(v, x[None])[0, t]
      >>> obj = jx.objectives.direction(g, "dense0", jnp.eye(5)[1])
      >>> bool(jnp.allclose(obj(jnp.ones(3), 0, 0), jx.objectives.neuron(g, "dense0", 1)(jnp.ones(3), 0, 0)))
      True

    References:
      Olah et al. (2018), "The Building Blocks of Interpretability", Distill (directions in
      activation space); Lucid's ``direction_cossim``.
    """
    where = "objectives.direction"
    vec = _checks.check_array(where, "vector", vector, expected="a vector of the layer's channels")
    if vec.ndim != 1:
        raise ValueError(f"jaxplain.{where}: vector must have shape (C,), got {vec.shape}.")
    power = _checks.check_float(where, "cosine_power", cosine_power)
    acts, shape = _layer("direction", f, layer)

    def check(x, units, args):
        s = shape(x, args)
        if not s or s[-1] != vec.shape[0]:
            raise ValueError(f"jaxplain.{where}: vector has {vec.shape[0]} entries but the layer's "
                             f"output of shape {s} has {s[-1] if s else 0} channels.")

    def fn(inputs, images, unit, args):
        a = acts(inputs, args)
        dot = a @ vec.astype(a.dtype)
        if power == 0:
            return jnp.mean(dot)
        cos = dot / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(vec) + 1e-8)
        return jnp.mean(dot * jnp.maximum(cos, 0.1) ** power)

    return Objective(fn, "direction", (check,))


def diversity(f: Callable, layer: str) -> Objective:
    """Minus the mean cosine similarity between the Gram matrices of ``layer`` for different images
    of the batch (Lucid's ``diversity``): rendered with ``batch > 1``, it pushes them apart.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(4,), classes=2)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> obj = jx.objectives.diversity(f, "stage0/conv1")
      >>> same = jnp.ones((2, 8, 8, 3))
      >>> round(float(obj.fn(same, same, 0, (0,))), 4)  # two equal images: cosine 1
      -1.0

    References:
      Olah, Mordvintsev & Schubert (2017), "Feature Visualization", Distill (diversity).
    """
    acts, _ = _layer("diversity", f, layer)

    def fn(inputs, images, unit, args):
        a = acts(inputs, args)
        b, c = a.shape[0], a.shape[-1]
        flat = a.reshape(b, -1, c)
        grams = jnp.einsum("bpi,bpj->bij", flat, flat).reshape(b, -1)
        grams = grams / jnp.maximum(jnp.linalg.norm(grams, axis=-1, keepdims=True), 1e-10)
        sims = grams @ grams.T
        return -(jnp.sum(sims) - jnp.trace(sims)) / b

    return Objective(fn, "diversity")


# --------------------------------------------------------------------------- regularizers


def l1(*, constant: float = 0.5) -> Objective:
    """``sum |image - constant|`` of the rendered images (subtract it to regularize).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> float(jx.objectives.l1()(jnp.ones(4)))
      2.0

    References:
      Lucid's ``objectives.L1``; Olah, Mordvintsev & Schubert (2017), "Feature Visualization".
    """
    c = float(constant)
    return Objective(lambda i, m, u, r: jnp.sum(jnp.abs(m - c)), "l1")


def l2(*, constant: float = 0.5) -> Objective:
    """``sqrt(sum (image - constant)^2)`` of the rendered images (Lucid's ``L2``).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> float(jx.objectives.l2(constant=0.0)(jnp.ones(4)))
      2.0

    References:
      Lucid's ``objectives.L2``; Olah, Mordvintsev & Schubert (2017), "Feature Visualization".
    """
    c = float(constant)
    return Objective(lambda i, m, u, r: jnp.sqrt(jnp.sum((m - c) ** 2)), "l2")


def total_variation() -> Objective:
    """The total variation of the rendered images, ``sum |x[i+1, j] - x[i, j]| + |x[i, j+1] -
    x[i, j]|`` (``tf.image.total_variation``, Lucid's ``total_variation``).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> float(jx.objectives.total_variation()(jnp.eye(3)[..., None]))  # 4 vertical + 4 horizontal steps
      8.0

    References:
      Mahendran & Vedaldi (2015), "Understanding Deep Image Representations by Inverting Them",
      CVPR.
    """

    def fn(inputs, images, unit, args):
        dh = jnp.abs(images[:, 1:] - images[:, :-1])
        dw = jnp.abs(images[:, :, 1:] - images[:, :, :-1])
        return jnp.sum(dh) + jnp.sum(dw)

    return Objective(fn, "total_variation")


def blur() -> Objective:
    """``0.5 * sum (image - stop_gradient(blur(image)))^2`` with a 3x3 box blur (Lucid's
    ``blur_input_each_step``): subtracted, it pulls each image towards its blurred self.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> round(float(jx.objectives.blur()(jnp.full((4, 4, 3), 0.3))), 6)  # a flat image is its own blur
      0.0

    References:
      Lucid's ``objectives.blur_input_each_step``; Nguyen, Yosinski & Clune (2016), "Multifaceted
      Feature Visualization", ICML workshop (blurring as a regularizer).
    """

    def fn(inputs, images, unit, args):
        pad = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        h, w = images.shape[1:3]
        box = sum(pad[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
        return 0.5 * jnp.sum((images - jax.lax.stop_gradient(box)) ** 2)

    return Objective(fn, "blur")
