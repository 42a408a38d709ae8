"""The transform contract every jaxplain method is built on.

A method is a factory ``jx.METHOD(f, *, options) -> Explainer``. ``f(x, *args)`` returns a scalar for
ONE example; ``explainer(x, *args)`` returns an attribution with the structure, shape and dtype of
``x``. This module holds the pieces every factory shares:

* option checks, run when the transform is built (``check_*``);
* input checks, run when the explainer is called (dtype, finiteness, scalar output of ``f``);
* :func:`chunked_sum`, the engine that evaluates a function at many points (path points, noise
  samples, baselines) in chunks of ``batch_size`` so memory stays bounded;
* :class:`Explainer`, the callable every factory returns.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Explainer", "chunked_sum"]

# Chunks up to this many are unrolled in the traced program; more chunks run in a `lax.scan`.
# Measured on XLA:CPU (benchmarks/gradients.py: 4-conv CNN, 32x32x3, 64 images, 50 IG steps, 2
# cores): 50 unrolled chunks of 64 images ran at 0.93x the floor of 50 batched gradients, a
# `lax.scan` over the same chunks at 10x (XLA:CPU runs convolutions inside loops far slower), and
# all 3200 points at once at 2.1x (past ~64 images XLA:CPU's per-image cost grows 1.4x). Unrolling
# costs compile time, about 0.07 s a chunk on that CNN, so past this count the loop is the trade.
MAX_UNROLLED_CHUNKS = 64


class Explainer:
    """The function a jaxplain transform returns: ``explainer(x, *args, **kwargs) -> attribution``.

    It behaves like the function ``jax.grad(f)`` returns: pure, and composable with ``jax.jit``,
    ``jax.vmap``, ``jax.grad`` and sharded inputs. Its attribution has the structure, shape and
    dtype of ``x``. The explainer's options are read-only attributes of ``options``.

    Attributes:
      method: the public name of the method, e.g. ``"integrated_gradients"``.
      f: the explained function (or, for wrappers such as ``smoothgrad``, the wrapped explainer).
      options: the keyword options the transform was built with.
      needs_key: whether calls must pass ``key=`` (the method is random).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.integrated_gradients(lambda v: jnp.sum(v ** 2), steps=4)
      >>> ex.method, ex.options["steps"], ex.needs_key
      ('integrated_gradients', 4, False)
      >>> jax.jit(jax.vmap(ex))(jnp.ones((3, 2))).shape
      (3, 2)

    References:
      The function-transform design follows ``jax.grad``: Bradbury et al. (2018), "JAX: composable
      transformations of Python+NumPy programs", http://github.com/jax-ml/jax.
    """

    __slots__ = ("_fn", "method", "f", "options", "needs_key", "__weakref__")  # jax.jit keeps weak references

    def __init__(self, fn: Callable, *, method: str, f: Callable, options: dict, needs_key: bool):
        self._fn = fn
        self.method = method
        self.f = f
        self.options = dict(options)
        self.needs_key = needs_key

    @property
    def __name__(self) -> str:  # jax.jit and tracebacks read it
        return self.method

    def __call__(self, x, *args, **kwargs):
        return self._fn(x, *args, **kwargs)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={_short(v)}" for k, v in self.options.items())
        fname = getattr(self.f, "__name__", type(self.f).__name__)
        return f"jaxplain.{self.method}({fname}{', ' if opts else ''}{opts})"


def _short(v: Any) -> str:
    if isinstance(v, (jax.Array, np.ndarray)):
        return f"<array {v.dtype}{list(v.shape)}>"
    if callable(v):
        return getattr(v, "__name__", type(v).__name__)
    return repr(v)


# --------------------------------------------------------------------------- option checks (build)


def check_callable(method: str, name: str, value: Any) -> None:
    if not callable(value):
        raise TypeError(
            f"jaxplain.{method}: {name} must be a callable, got {type(value).__name__} {value!r}. "
            f"Pass a function f(x, *args) that returns a scalar for one example."
        )


def check_int(method: str, name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"jaxplain.{method}: {name} must be an int >= {minimum}, got "
            f"{type(value).__name__} {value!r}."
        )
    if value < minimum:
        raise ValueError(f"jaxplain.{method}: {name} must be >= {minimum}, got {value}.")
    return int(value)


def check_float(method: str, name: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"jaxplain.{method}: {name} must be a real number >= {minimum}, got "
            f"{type(value).__name__} {value!r}."
        )
    value = float(value)
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"jaxplain.{method}: {name} must be a finite number >= {minimum}, got {value}.")
    return value


def check_choice(method: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(
            f"jaxplain.{method}: unknown {name} {value!r}; choose one of "
            + ", ".join(repr(c) for c in choices)
            + "."
        )
    return value


def check_batch_size(method: str, value: Any) -> int | None:
    if value is None:
        return None
    return check_int(method, "batch_size", value, minimum=1)


def accepts_key(fn: Callable) -> bool:
    """Whether an explainer must be called with ``key=``: our explainers say so, others by signature."""
    flag = getattr(fn, "needs_key", None)
    if flag is not None:
        return bool(flag)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "key" in params


# --------------------------------------------------------------------------- input checks (call)


def check_input(method: str, x: Any) -> Any:
    """Checks that ``x`` is a pytree of real floating arrays and returns it with leaves as arrays.

    Under a trace only the dtype can be checked; outside one, NaN and Inf are rejected too.
    """
    leaves, treedef = jax.tree_util.tree_flatten(x)
    if not leaves:
        raise ValueError(f"jaxplain.{method}: x is empty ({x!r}); pass an array or a pytree of arrays.")
    out = []
    for path_leaf in leaves:
        leaf = path_leaf if isinstance(path_leaf, jax.Array) else jnp.asarray(path_leaf)
        dtype = leaf.dtype
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"jaxplain.{method}: x must have a real floating dtype, got {dtype}"
                f"{' (shape ' + str(leaf.shape) + ')' if leaf.ndim else ''}. Attributions are "
                f"derivatives, which integer and boolean inputs do not have: cast first, e.g. "
                f"x.astype(jnp.float32)."
            )
        out.append(leaf)
    bad = [i for i, leaf in enumerate(out) if not all_finite(leaf)]
    if bad:
        where = "x" if len(out) == 1 else f"x (leaves {bad})"
        raise ValueError(
            f"jaxplain.{method}: {where} contains NaN or Inf; attributions of non-finite inputs "
            f"are meaningless. Replace them first, e.g. jnp.nan_to_num(x)."
        )
    return jax.tree_util.tree_unflatten(treedef, out)


def all_finite(value: Any) -> bool:
    """True unless a concrete (not traced) array holds NaN or Inf; traced values pass unchecked."""
    if isinstance(value, jax.core.Tracer):
        return True
    with jax.ensure_compile_time_eval():  # evaluate on the value's device, also inside a trace
        return bool(jnp.all(jnp.isfinite(jnp.asarray(value))))


def require_key(method: str, key: Any) -> Any:
    if key is None:
        raise TypeError(
            f"jaxplain.{method} is random and needs an explicit key: call "
            f"explainer(x, *args, key=jax.random.key(0)); under jax.vmap pass one key per example, "
            f"e.g. key=jax.random.split(key, n)."
        )
    return key


def scalar_output(method: str, f: Callable) -> Callable:
    """Wraps ``f`` so that a non-scalar output fails with an error saying how to pick a target."""

    def f_checked(x, *args, **kwargs):
        out = f(x, *args, **kwargs)
        shape = jnp.shape(out)
        if shape != ():
            hint = (
                " It looks batched: explain one example and map over the batch with jax.vmap, "
                "e.g. f = lambda x, t: model(x[None])[0, t]."
                if len(shape) >= 1 and shape[0] == 1
                else ""
            )
            raise TypeError(
                f"jaxplain.{method}: f must return a scalar for one example, but f(x, *args) "
                f"returned an output of shape {shape}. Pick one output as the target, e.g. "
                f"f = lambda x, t: model(x)[t] and pass the class index t as an argument.{hint}"
            )
        dtype = jnp.result_type(out)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"jaxplain.{method}: f must return a real floating scalar, got dtype {dtype}."
            )
        return out

    return f_checked


def broadcast_like(method: str, name: str, value: Any, x: Any) -> Any:
    """Resolves a baseline-like option (scalar, array, pytree like x, or callable) against ``x``."""
    if callable(value):
        value = value(x)
    x_leaves, x_def = jax.tree_util.tree_flatten(x)
    if isinstance(value, (int, float)) or (hasattr(value, "ndim") and jnp.ndim(value) == 0):
        return jax.tree_util.tree_map(lambda leaf: jnp.full_like(leaf, value), x)
    v_leaves, v_def = jax.tree_util.tree_flatten(value)
    if v_def != x_def:
        if len(v_leaves) == 1 and len(x_leaves) > 1:
            raise ValueError(
                f"jaxplain.{method}: {name} is a single array but x is a pytree {x_def}; pass a "
                f"scalar, a pytree of the same structure as x, or a callable x -> {name}."
            )
        raise ValueError(
            f"jaxplain.{method}: {name} has structure {v_def} but x has {x_def}; they must match."
        )
    out = []
    for v, leaf in zip(v_leaves, x_leaves):
        v = jnp.asarray(v)
        try:
            ok = jnp.broadcast_shapes(v.shape, leaf.shape) == leaf.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"jaxplain.{method}: {name} of shape {v.shape} does not fit x of shape {leaf.shape}; "
                f"pass a scalar, an array of x's shape (or one that broadcasts to it), or a callable "
                f"x -> {name}."
            )
        out.append(jnp.broadcast_to(v, leaf.shape).astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(x_def, out)


def straight_path(method: str, baseline: Any, x: Any):
    """The straight path from a baseline to ``x``: ``(b, x - b, dtype)`` with ``b`` resolved
    against ``x`` (see :func:`broadcast_like`); points are ``path_point(b, x - b, alpha)``."""
    b = broadcast_like(method, "baseline", baseline, x)
    diff = jax.tree_util.tree_map(jnp.subtract, x, b)
    return b, diff, jnp.result_type(*jax.tree_util.tree_leaves(x))


def path_point(start: Any, delta: Any, alpha: jax.Array) -> Any:
    """``start + alpha * delta`` leaf by leaf, in each leaf's dtype."""
    return jax.tree_util.tree_map(lambda s, d: s + alpha.astype(d.dtype) * d, start, delta)


# --------------------------------------------------------------------------- engine


def _tree_sum0(tree):
    return jax.tree_util.tree_map(lambda a: jnp.sum(a, axis=0), tree)


def _tree_add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


def chunked_sum(fn: Callable, xs: Any, *, batch_size: int | None) -> Any:
    """Returns ``sum_i fn(xs[i])`` over the leading axis of the pytree ``xs``.

    ``fn`` is vmapped over chunks of at most ``batch_size`` points, so at most that many
    evaluations are alive at once (``None``: all at once). Up to :data:`MAX_UNROLLED_CHUNKS` chunks
    are unrolled into the traced program, more run in a ``lax.scan`` (see the constant's note).
    """
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    vfn = jax.vmap(fn)
    if batch_size is None or batch_size >= n:
        return _tree_sum0(vfn(xs))
    n_chunks = -(-n // batch_size)
    take = lambda lo, hi: jax.tree_util.tree_map(lambda a: a[lo:hi], xs)
    if n_chunks <= MAX_UNROLLED_CHUNKS:
        total = None
        for lo in range(0, n, batch_size):
            part = _tree_sum0(vfn(take(lo, min(lo + batch_size, n))))
            total = part if total is None else _tree_add(total, part)
        return total
    n_full = n // batch_size
    full = jax.tree_util.tree_map(
        lambda a: a[: n_full * batch_size].reshape((n_full, batch_size) + a.shape[1:]), xs
    )

    def body(carry, chunk):
        return _tree_add(carry, _tree_sum0(vfn(chunk))), None

    first = _tree_sum0(vfn(jax.tree_util.tree_map(lambda a: a[0], full)))
    rest = jax.tree_util.tree_map(lambda a: a[1:], full)
    total, _ = jax.lax.scan(body, first, rest)
    if n_full * batch_size < n:
        total = _tree_add(total, _tree_sum0(vfn(take(n_full * batch_size, n))))
    return total


def chunked_map(fn: Callable, xs: Any, *, batch_size: int | None) -> Any:
    """Returns ``vmap(fn)(xs)``, evaluated in unrolled chunks of at most ``batch_size`` points."""
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    vfn = jax.vmap(fn)
    if batch_size is None or batch_size >= n:
        return vfn(xs)
    parts = [
        vfn(jax.tree_util.tree_map(lambda a: a[lo : lo + batch_size], xs))
        for lo in range(0, n, batch_size)
    ]
    return jax.tree_util.tree_map(lambda *p: jnp.concatenate(p, axis=0), *parts)


def cast_like(tree: Any, like: Any) -> Any:
    return jax.tree_util.tree_map(lambda a, b: a.astype(b.dtype), tree, like)


def make_explainer(
    method: str,
    f: Callable,
    core: Callable,
    options: dict,
    *,
    needs_key: bool = False,
    check: Callable | None = None,
) -> Explainer:
    """Builds the public explainer around ``core(x, *args, **kwargs)``.

    The core is jit-compiled once per explainer (so eager calls run compiled and a second call with
    the same shapes does not recompile; under an outer ``jit`` it is inlined). Inputs are checked
    outside the compiled function, where NaN/Inf can still be seen; ``check(x)``, if given, runs
    there too (a method's own input checks).
    """
    jitted = jax.jit(core)

    def explain(x, *args, key=None, **kwargs):
        x = check_input(method, x)
        if check is not None:
            check(x)
        if needs_key:
            kwargs["key"] = require_key(method, key)
        elif key is not None:
            kwargs["key"] = key  # passed through to f
        return jitted(x, *args, **kwargs)

    return Explainer(explain, method=method, f=f, options=options, needs_key=needs_key)
