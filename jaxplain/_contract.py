"""The transform contract every jaxplain method is built on.

A method is a factory ``jx.METHOD(f, *, options) -> Explainer``. ``f(x, *args)`` returns a scalar for
ONE example; ``explainer(x, *args)`` returns an attribution with the structure, shape and dtype of
``x``. :func:`make_explainer` wraps a method's core in the :class:`Explainer` every factory
returns: inputs checked where NaN can still be seen, the core compiled once, randomness through an
explicit ``key``. Option and input checks live in :mod:`jaxplain._checks`, the chunked evaluation
of many points in :mod:`jaxplain._paths`.
"""

from __future__ import annotations

import inspect
import types
from typing import Any, Callable, Mapping

import jax
import numpy as np

from jaxplain import _checks, _compile

__all__ = ["Explainer", "make_explainer"]


class Explainer:
    """The function a jaxplain transform returns: ``explainer(x, *args, **kwargs) -> attribution``.

    It behaves like the function ``jax.grad(f)`` returns: pure, and composable with ``jax.jit``,
    ``jax.vmap``, ``jax.grad`` and sharded inputs. Its attribution has the structure, shape and
    dtype of ``x``. Like a function made by ``functools.wraps``, it has ``__wrapped__`` (the
    explained ``f``) and a ``__doc__`` naming the method and ``f``. Its attributes are read-only;
    ``options`` is a read-only mapping.

    Attributes:
      method: the public name of the method, e.g. ``"integrated_gradients"``.
      f: the explained function (or, for wrappers such as ``smoothgrad``, the wrapped explainer).
      options: the keyword options the transform was built with (read-only).
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

    # Slots, not a __dict__: wrappers made with functools.wraps or jax.jit copy a __dict__, and an
    # explainer's options and key flag must not travel to functions that are not it.
    __slots__ = ("_fn", "_doc", "method", "f", "options", "needs_key", "__wrapped__", "__signature__",
                 "__weakref__")

    def __init__(self, fn: Callable, *, method: str, f: Callable, options: Mapping, needs_key: bool):
        fname = getattr(f, "__name__", type(f).__name__)
        doc = f"jaxplain.{method} of {fname}: explainer(x, *args) -> attribution shaped like x."
        if getattr(f, "__doc__", None) and not isinstance(f, Explainer):
            doc += f"\n\nThe explained function's docstring:\n\n{f.__doc__}"
        state = dict(
            _fn=fn,
            _doc=doc,
            method=method,
            f=f,
            options=types.MappingProxyType(dict(options)),
            needs_key=bool(needs_key),
            __wrapped__=f,
            # what the explainer takes (jax.jit's static_argnums / donate_argnames read it), not f's
            __signature__=_RANDOM if needs_key else _PLAIN,
        )
        for k, v in state.items():
            object.__setattr__(self, k, v)

    @property
    def __name__(self) -> str:  # jax.jit and tracebacks read it
        return self.method

    def __setattr__(self, name, value):
        raise AttributeError(
            f"jaxplain.{self.method}: an explainer is immutable ({name!r} cannot be set); build a "
            f"new one with other options instead."
        )

    def __copy__(self):
        return self  # immutable: a copy is the explainer itself

    def __deepcopy__(self, memo):
        return self

    def __call__(self, x, *args, **kwargs):
        return self._fn(x, *args, **kwargs)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={_short(v)}" for k, v in self.options.items())
        fname = getattr(self.f, "__name__", type(self.f).__name__)
        return f"jaxplain.{self.method}({fname}{', ' if opts else ''}{opts})"


class _InstanceDoc:
    """``__doc__`` for the class (its docstring) and for each explainer (the method and ``f``)."""

    def __init__(self, class_doc: str):
        self.class_doc = class_doc

    def __get__(self, obj, cls=None):
        return self.class_doc if obj is None else obj._doc


Explainer.__doc__ = _InstanceDoc(Explainer.__doc__)
_X, _ARGS, _KW = (
    inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
    inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
)
_PLAIN = inspect.Signature([_X, _ARGS, _KW])  # explainer(x, *args, **kwargs)
_RANDOM = inspect.Signature([_X, _ARGS, inspect.Parameter("key", inspect.Parameter.KEYWORD_ONLY), _KW])


def _short(v: Any) -> str:
    if isinstance(v, (jax.Array, np.ndarray)):
        return f"<array {v.dtype}{list(v.shape)}>"
    if callable(v):
        return getattr(v, "__name__", type(v).__name__)
    return repr(v)


def make_explainer(
    method: str,
    f: Callable,
    core: Callable,
    options: Mapping,
    *,
    needs_key: bool = False,
    check: Callable | None = None,
    finish: Callable | None = None,
    integers: bool = False,
) -> Explainer:
    """Builds the public explainer around ``core(x, *args, **kwargs)``.

    The core is jit-compiled once per explainer (so eager calls run compiled and a second call with
    the same shapes does not recompile; under an outer ``jit`` it is inlined); called directly it
    is compiled with :func:`jaxplain.compiler_options` (see ``jaxplain/_compile.py``). Inputs are checked
    outside the compiled function, where NaN/Inf can still be seen; ``check(x)``, if given, runs
    there too (a method's own input checks). ``finish(out)``, if given, maps the core's output to
    the attribution outside the compiled function, where concrete values can still raise.
    ``integers``: ``x`` may hold integer leaves (tokens), for methods that differentiate only at a
    layer inside ``f``.
    """
    jitted = jax.jit(core)
    tuned: list = []  # the core compiled with jaxplain's options, made on the first direct call
    filtered = _filtered(core)

    def explain(x, *args, key=None, **kwargs):
        x = _checks.check_input(method, x, integers=integers)
        if check is not None:
            check(x)
        if needs_key:
            kwargs["key"] = _checks.require_key(method, key)
        elif key is not None:
            kwargs["key"] = key  # passed through to f
        leaves, tree = jax.tree_util.tree_flatten((args, kwargs))
        if not all(map(_traced, leaves)):  # e.g. an Equinox module's functions: static
            out = filtered(_compile.at_top_level(), x, tree, leaves)
        elif _compile.at_top_level():  # called directly: compiled with jaxplain's options
            if not tuned:
                options = _compile.compiler_options()
                tuned.append(jax.jit(core, compiler_options=options) if options else jitted)
            out = tuned[0](x, *args, **kwargs)
        else:  # inside the user's jit / vmap / grad: their compile decides
            out = jitted(x, *args, **kwargs)
        return out if finish is None else finish(out)

    return Explainer(explain, method=method, f=f, options=options, needs_key=needs_key)


def _traced(leaf: Any) -> bool:
    """Whether an argument's leaf is traced by the compiled core (arrays and numbers are; other
    leaves, such as the functions and flags an Equinox module holds, are compiled in)."""
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, bool, int, float, complex))


class _Static:
    """The untraced leaves of the arguments and their tree: a static argument of ``jax.jit``,
    equal by value when the leaves are hashable (as ``equinox.filter_jit`` does), else by id."""

    __slots__ = ("tree", "leaves", "_key")

    def __init__(self, tree, leaves: tuple):
        self.tree, self.leaves = tree, leaves
        try:
            hash(leaves)
            self._key = (tree, leaves)
        except TypeError:
            self._key = (tree, tuple(map(id, leaves)))

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, _Static) and self._key == other._key


def _filtered(core: Callable) -> Callable:
    """``run(top_level, x, tree, leaves)``: ``core(x, *args, **kwargs)`` compiled with the array
    leaves of the arguments traced and the others static (equinox.filter_jit's filtering)."""

    def inner(x, dynamic, static):
        leaves = [d if s is _DYNAMIC else s for d, s in zip(dynamic, static.leaves)]
        args, kwargs = jax.tree_util.tree_unflatten(static.tree, leaves)
        return core(x, *args, **kwargs)

    compiled: dict = {}

    def run(top_level: bool, x, tree, leaves):
        if top_level not in compiled:
            options = _compile.compiler_options() if top_level else None
            compiled[top_level] = jax.jit(inner, static_argnums=2,
                                          **({"compiler_options": options} if options else {}))
        dynamic = [leaf if _traced(leaf) else None for leaf in leaves]
        static = _Static(tree, tuple(_DYNAMIC if _traced(leaf) else leaf for leaf in leaves))
        return compiled[top_level](x, dynamic, static)

    return run


_DYNAMIC = object()  # marks a traced leaf's slot among the static leaves
