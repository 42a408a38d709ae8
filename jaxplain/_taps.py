"""Layer taps: read, replace or perturb the output of any layer of ``f`` without editing the model,
and the one naming of module paths every family uses.

A layer-based method takes ``f`` and ``layer=``, the path of a module called inside ``f``:

* Flax Linen: the module's path, e.g. ``"conv1"`` or ``"backbone/block2/conv"``, found while ``f``
  is traced through ``flax.linen.intercept_methods``; so a plain closure
  ``lambda x, t: model.apply(params, x[None])[0, t]`` works as it is.
* Flax NNX: the attribute path of the submodule (``"blocks/0/ln1"``), for an ``f`` built by
  :func:`jaxplain.flax.from_nnx` (it merges a fresh copy of the model on each call, and the tap
  wraps the submodules of that copy; the user's model is never touched).
* Equinox: the attribute path of a submodule (``"layers/0"``) of an Equinox module passed to ``f``
  as an argument, ``f(x, target, model)``; the tap calls ``f`` with a copy of it whose
  submodules report their outputs (the user's module is never touched).
* Any other function: pass ``features(x) -> A`` and ``head(A, *args) -> scalar`` instead of
  ``f`` and ``layer``.

The activation is the layer's output for one example. A model called by hand on ``x[None]`` keeps
that leading axis of size 1; an ``f`` made by :mod:`jaxplain.flax`, which adds the batch axis
itself, does not: its layers are read and replaced without it.

While a tap runs, every module call is also put into the traced program as a named scope holding
its path (:func:`module_path` reads it back), so the program transforms (LRP composites by path)
name modules exactly as :func:`layers` lists them. Flax is imported only when ``f`` uses it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import re
import sys
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxplain import _checks

__all__ = ["Split", "layer_gradient", "layers", "module_path", "neuron_selector", "neuron_unit", "split"]

_tmap = jax.tree_util.tree_map

# The tap active while `f` runs: read by the NNX wrappers and by adapters that add a batch axis.
# Scoped to one call of `f` (a context variable, reset when the call returns).
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("jaxplain_tap", default=None)

# A module call's named scope: the marker, then the path's parts joined by ":".
_MARK = "@"
_TRANSFORM = re.compile(r"^[A-Za-z_]+\(.*\)$")


def scope_name(path: str) -> str:
    """The named scope that marks a call of the module at ``path`` in a traced program."""
    return _MARK + path.replace("/", ":")


def module_path(name_stack: str) -> str:
    """The module path of an operation from its name stack: the innermost module call marked by a
    tap, else the name stack itself without transform names (``jit(f)``, ``vmap(g)``)."""
    parts = [p for p in name_stack.split("/") if p]
    marks = [i for i, p in enumerate(parts) if p.startswith(_MARK)]
    if marks:
        return parts[marks[-1]][len(_MARK):].replace(":", "/")
    return "/".join(p for p in parts if not _TRANSFORM.match(p))


class _Tap:
    """What one run of ``f`` does at module calls: record every path called and, at each path of
    ``layers``, the module's output (``where="output"``) or its first positional input
    (``where="input"``), then apply ``edit(i, view)`` for the ``i``-th of ``layers``."""

    def __init__(self, layers: tuple = (), edit: Callable | None = None, where: str = "output"):
        self.layers = tuple(layers)
        self.edit = edit
        self.where = where
        self.outputs: dict[str, list] = {p: [] for p in self.layers}
        self.seen: dict[str, Any] = {}  # every module path called, with its output shape
        self.batched = 0  # > 0 while an adapter runs the model on x[None]

    def _at(self, path: str, value: Any) -> Any:
        view = _tmap(_drop_batch_axis, value) if self.batched else value
        self.outputs[path].append(view)
        if self.edit is None:
            return value
        new = self.edit(self.layers.index(path), view)
        return _tmap(_restore_batch_axis, new, value) if self.batched else new

    def inputs(self, path: str, args: tuple) -> tuple:
        """The positional arguments a module at ``path`` is called with, edited at a tapped input."""
        if self.where != "input" or path not in self.outputs:
            return args
        if not args:
            raise ValueError(
                f"jaxplain: attribute_to_layer_input=True reads the first positional argument of "
                f"the module {path!r}, but it was called with none; tap its output instead, or "
                f"the module that computes its input."
            )
        return (self._at(path, args[0]),) + tuple(args[1:])

    def __call__(self, path: str, out: Any) -> Any:
        # shapes only: an operation on `out` here would add a reader of every module's output to
        # the traced program (and hide a layer's bias or BatchNorm from the program transforms)
        self.seen.setdefault(path, _tmap(lambda a: _shape(a, self.batched), out))
        if self.where != "output" or path not in self.outputs:
            return out
        return self._at(path, out)


def _shape(a, batched: bool) -> tuple:
    shape = tuple(getattr(a, "shape", ()))
    return shape[1:] if batched and shape and shape[0] == 1 else shape


def _drop_batch_axis(a):
    shape = jnp.shape(a)
    return a[0] if shape and shape[0] == 1 else a


def _restore_batch_axis(new, original):
    return new[None] if jnp.ndim(original) == jnp.ndim(new) + 1 else new


@contextlib.contextmanager
def adds_batch_axis():
    """Used by adapters around ``model(x[None])``: layers read while it runs lose that axis."""
    tap = _ACTIVE.get()
    if tap is not None:
        tap.batched += 1
    try:
        yield
    finally:
        if tap is not None:
            tap.batched -= 1


def _linen_interceptor(tap: _Tap):
    def interceptor(next_fun, a, kw, context):
        if context.method_name != "__call__" or not context.module.path:
            return next_fun(*a, **kw)
        path = "/".join(str(p) for p in context.module.path)
        a = tap.inputs(path, a)
        with jax.named_scope(scope_name(path)):
            out = next_fun(*a, **kw)
        return tap(path, out)

    return interceptor


def run(f: Callable, tap: _Tap, x, args, kwargs):
    """``f(x, *args, **kwargs)`` with ``tap`` seeing every Linen and NNX module call, and every
    submodule call of the Equinox modules among ``args`` and ``kwargs``."""
    token = _ACTIVE.set(tap)
    try:
        args, kwargs = _tap_equinox(tap, args, kwargs)
        linen = sys.modules.get("flax.linen")  # f can call Linen modules only if Flax is loaded
        if linen is None:
            return f(x, *args, **kwargs)
        with linen.intercept_methods(_linen_interceptor(tap)):
            return f(x, *args, **kwargs)
    finally:
        _ACTIVE.reset(token)


def named(f: Callable) -> Callable:
    """``f`` run under a tap that only names module calls (for the program transforms)."""

    def g(x, *args, **kwargs):
        return run(f, _Tap(), x, args, kwargs)

    return g


# --------------------------------------------------------------------------- NNX


class _TappedCall:
    """Stands in for a submodule of a merged NNX copy: calls it, then hands the output to the tap."""

    def __init__(self, module, path: str, tap: _Tap):
        self.module, self.path, self.tap = module, path, tap

    def __call__(self, *args, **kwargs):
        args = self.tap.inputs(self.path, args)
        with jax.named_scope(scope_name(self.path)):  # the path in the program (LRP by path)
            out = self.module(*args, **kwargs)
        return self.tap(self.path, out)

    def __getattr__(self, name):  # other methods and attributes pass through
        return getattr(self.module, name)

    def __len__(self):
        return len(self.module)

    def __getitem__(self, key):
        return self.module[key]

    def __iter__(self):
        return iter(self.module)


def install_nnx(net) -> None:
    """If a tap is active, wraps every submodule of ``net`` (a fresh NNX copy) so the tap sees it.

    Called by :func:`jaxplain.flax.from_nnx` on the copy it merges for each call."""
    tap = _ACTIVE.get()
    if tap is None:
        return
    from flax import nnx

    targets = [(tuple(p), m) for p, m in nnx.iter_modules(net) if p and callable(m)]
    for path, m in sorted(targets, key=lambda pm: -len(pm[0])):
        parent = net
        for part in path[:-1]:
            parent = parent[part] if isinstance(part, int) else getattr(parent, part)
        wrapped = _TappedCall(m, "/".join(str(p) for p in path), tap)
        if isinstance(path[-1], int):
            parent[path[-1]] = wrapped
        else:
            object.__setattr__(parent, path[-1], wrapped)


# --------------------------------------------------------------------------- Equinox


def _tap_equinox(tap: _Tap, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``args`` and ``kwargs`` with each Equinox module among them replaced by a copy whose
    submodules, at attribute paths (``"layers/0"``, ``"blocks/1/attn"``), report to ``tap``."""
    eqx = sys.modules.get("equinox")  # f can be given Equinox modules only if Equinox is loaded
    if eqx is None:
        return args, kwargs

    def tapped(value, path: tuple):
        if isinstance(value, eqx.Module):
            copy = object.__new__(type(value))  # how Equinox itself unflattens a module
            for field in dataclasses.fields(value):
                if hasattr(value, field.name):
                    object.__setattr__(copy, field.name,
                                       tapped(getattr(value, field.name), path + (field.name,)))
            if path and callable(copy):
                return _TappedCall(copy, "/".join(map(str, path)), tap)
            return copy
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(tapped(v, path + (i,)) for i, v in enumerate(value))
        if isinstance(value, dict):
            return {k: tapped(v, path + (k,)) for k, v in value.items()}
        return value

    root = lambda v: tapped(v, ()) if isinstance(v, eqx.Module) else v
    return tuple(map(root, args)), {k: root(v) for k, v in kwargs.items()}


# --------------------------------------------------------------------------- listing and splitting


def layers(f: Callable, x, *args, **kwargs) -> dict[str, Any]:
    """Lists the layers called inside ``f(x, *args)``: ``{module path: output shape}`` in call order.

    Works for Flax Linen modules called inside ``f``, for ``f`` built by
    :func:`jaxplain.flax.from_nnx`, and for the submodules of Equinox modules passed to ``f`` as
    arguments (``f(x, target, model)``; paths are attribute paths, ``"layers/0"``); nothing is computed (``f`` is traced with ``jax.eval_shape``).
    For an ``f`` made by :mod:`jaxplain.flax` the shapes are per example (no batch axis).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(8,), classes=4)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> jx.layers(lambda x, t: model.apply(v, x[None])[0, t], jnp.zeros((16, 16, 3)), 0)
      {'stage0/conv0': (1, 16, 16, 8), 'stage0/conv1': (1, 16, 16, 8), 'stage0': (1, 16, 16, 8), 'head': (1, 4)}

    References:
      Flax Linen ``intercept_methods``; Captum's layer attribution API (Kokhlikyan et al. 2020,
      "Captum: A unified and generic model interpretability library for PyTorch").
    """
    _checks.check_callable("layers", "f", f)
    tap = _Tap()
    # args closed over, not traced: they may hold non-array leaves (an Equinox module's functions)
    jax.eval_shape(lambda x: run(f, tap, x, args, kwargs), x)
    return dict(tap.seen)


class Split(NamedTuple):
    """``f`` split at one layer or several: ``activation(x, *args) -> A`` and
    ``rest(x, A, *args) -> scalar``, where ``rest`` runs ``f`` with the layer's output (or input)
    replaced by ``A``. With several layers (``many``), ``A`` is a tuple with one entry per path."""

    method: str
    activation: Callable
    rest: Callable
    # forward(x, edit, *args) -> (f's output, A as f computed it); edit(i, a_i) -> new a_i
    forward: Callable
    many: bool = False
    paths: tuple = ()

    def check_independent(self, x, args, kwargs) -> None:
        """Raises unless each tapped layer's value is computed without the others' (for methods
        that replace all of them at once: a layer fed by another would hide its influence)."""
        if self.many:
            _check_independent(self, x, args, kwargs)


def _layer_paths(method: str, layer: Any, *, many: bool) -> tuple[tuple, bool]:
    hint = (f"jaxplain.{method}: layer must be the path of a module called inside f, e.g. "
            f"layer='conv1' or 'backbone/block2/conv'")
    if isinstance(layer, str) and layer.strip("/"):
        return (layer.strip("/"),), False
    if isinstance(layer, (tuple, list)):
        if not many:
            raise TypeError(f"{hint}; {method} attributes to one layer, so a {type(layer).__name__} "
                            f"of paths is not accepted, got {layer!r}.")
        if layer and all(isinstance(p, str) and p.strip("/") for p in layer):
            paths = tuple(p.strip("/") for p in layer)
            if len(set(paths)) != len(paths):
                raise ValueError(f"jaxplain.{method}: layer lists a path twice: {layer!r}.")
            return paths, True
    raise TypeError(f"{hint}, or a tuple of such paths, got {layer!r}. jaxplain.layers(f, x, "
                    f"*args) lists the paths.")


def split(
    method: str,
    f: Callable | None,
    layer: Any,
    features: Callable | None,
    head: Callable | None,
    *,
    layer_input: bool = False,
    many: bool = True,
) -> Split:
    """Resolves the ``f`` + ``layer`` or ``features`` + ``head`` forms into a :class:`Split`.

    ``layer`` is a path, or (where ``many``) a tuple/list of paths; with ``layer_input`` the
    modules' first positional inputs are tapped instead of their outputs."""
    layer_input = _checks.check_bool(method, "attribute_to_layer_input", layer_input)
    if f is not None:
        _checks.check_callable(method, "f", f)
        if features is not None or head is not None:
            raise TypeError(
                f"jaxplain.{method}: pass either f and layer=, or features= and head=, not both."
            )
        paths, several = _layer_paths(method, layer, many=many)
        where = "input" if layer_input else "output"

        def forward(x, edit, *args, **kwargs):
            tap = _Tap(paths, edit, where)
            out = run(f, tap, x, args, kwargs)
            for path in paths:
                found = tap.outputs[path]
                if not found:
                    valid = ", ".join(repr(p) for p in tap.seen) or "none (no Flax module was called)"
                    raise ValueError(
                        f"jaxplain.{method}: no layer {path!r} was called inside f. Valid layer "
                        f"paths: {valid}. (NNX models are reached when f is built by "
                        f"jaxplain.flax.from_nnx, Equinox models when passed to f as an argument; "
                        f"for other functions pass features= and head=.)"
                    )
                if len(found) > 1:
                    raise ValueError(
                        f"jaxplain.{method}: layer {path!r} was called {len(found)} times inside "
                        f"f, so its {where} is ambiguous; tap a module that is called once."
                    )
            views = tuple(tap.outputs[p][0] for p in paths)
            return out, views if several else views[0]

    else:
        if layer is not None:
            raise TypeError(f"jaxplain.{method}: layer= needs f; with features= and head= leave it out.")
        if layer_input:
            raise TypeError(
                f"jaxplain.{method}: attribute_to_layer_input=True needs f and layer= (with "
                f"features= and head=, the layer's input is x itself: attribute to x instead)."
            )
        _checks.check_callable(method, "features", features)
        _checks.check_callable(method, "head", head)
        paths, several = (), False

        def forward(x, edit, *args, **kwargs):
            a = features(x)
            return head(edit(0, a) if edit is not None else a, *args, **kwargs), a

    def activation(x, *args, **kwargs):
        return forward(x, None, *args, **kwargs)[1]

    def rest(x, a, *args, **kwargs):
        parts = a if several else (a,)
        if several and (not isinstance(a, tuple) or len(a) != len(paths)):
            raise ValueError(
                f"jaxplain.{method}: the replacement activations must be a tuple of {len(paths)} "
                f"(one per layer), got {type(a).__name__}."
            )
        out, original = forward(x, lambda i, _: parts[i], *args, **kwargs)
        shapes = (jax.tree_util.tree_structure(original), _tmap(jnp.shape, original))
        if shapes != (jax.tree_util.tree_structure(a), _tmap(jnp.shape, a)):
            raise ValueError(
                f"jaxplain.{method}: the replacement activation has shape "
                f"{_tmap(jnp.shape, a)} but the layer's output has {shapes[1]}."
            )
        return out

    return Split(method, activation, rest, forward, several, paths)


def _check_independent(sp: Split, x, args, kwargs) -> None:
    from jaxplain._interpret.analysis import dependents  # the interpreter imports this module

    shapes = jax.eval_shape(lambda: sp.activation(x, *args, **kwargs))
    zeros = _tmap(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    # each layer's value as f computes it while every layer is replaced by an input of this program
    closed = jax.make_jaxpr(lambda a: sp.forward(x, lambda i, _: a[i], *args, **kwargs)[1])(zeros)
    jaxpr = closed.jaxpr
    sizes = [len(jax.tree_util.tree_leaves(s)) for s in shapes]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    for i, (start, size) in enumerate(zip(starts, sizes)):
        active = [start <= k < start + size for k in range(len(jaxpr.invars))]
        hit = dependents(jaxpr, active)
        for j, (s2, n2) in enumerate(zip(starts, sizes)):
            if j != i and any(v in hit for v in jaxpr.outvars[s2:s2 + n2]):
                raise ValueError(
                    f"jaxplain.{sp.method}: layer {sp.paths[j]!r} is computed from layer "
                    f"{sp.paths[i]!r}; replacing both at once would hide {sp.paths[i]!r}'s "
                    f"influence (its attribution would be zero). Give layers that do not feed "
                    f"each other (e.g. parallel branches), or attribute to each in its own call."
                )


def neuron_selector(name: str, neuron: Any) -> Callable:
    """``select(A) -> scalar`` for ``neuron=``: an index tuple into the layer's output for one
    example (checked against its shape when called: out of range raises, never clamps), or a
    callable ``A -> scalar`` (checked to return a scalar)."""
    if callable(neuron):

        def unit(a):
            out = neuron(a)
            if jnp.shape(out) != ():
                raise TypeError(
                    f"jaxplain.{name}: neuron must return a scalar, but neuron(A) returned shape "
                    f"{jnp.shape(out)} for the layer's output of shape {jnp.shape(a)}; reduce it, "
                    f"e.g. neuron=lambda a: a[..., 7].mean() for a whole channel."
                )
            return out

        return unit
    idx = (neuron,) if isinstance(neuron, int) else neuron
    if (
        not isinstance(idx, tuple)
        or not idx
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in idx)
    ):
        raise TypeError(
            f"jaxplain.{name}: neuron must be an index tuple into the layer's output (e.g. "
            f"(3, 4, 7) for an (H, W, C) activation) or a callable A -> scalar, got {neuron!r}."
        )

    def select(a):
        shape = jnp.shape(a)
        if len(idx) != len(shape):
            raise ValueError(
                f"jaxplain.{name}: neuron {idx} has {len(idx)} indices but the layer's output has "
                f"shape {shape}; give one index per axis."
            )
        bad = [(i, n) for i, n in zip(idx, shape) if not -n <= i < n]
        if bad:
            raise ValueError(
                f"jaxplain.{name}: neuron {idx} is out of range for the layer's output of shape "
                f"{shape} (index {bad[0][0]} on an axis of size {bad[0][1]}); each index must lie in "
                f"[-size, size)."
            )
        return a[idx]

    return select


def neuron_unit(method: str, f, layer, features, head, neuron, *, layer_input: bool = False):
    """``(split, unit)``: ``f`` split at one layer, and ``unit(x, *args)``, the value of the neuron
    ``neuron`` of that layer (see :func:`neuron_selector`)."""
    sp = split(method, f, layer, features, head, layer_input=layer_input, many=False)
    select = neuron_selector(method, neuron)
    return sp, lambda x, *args, **kwargs: select(sp.activation(x, *args, **kwargs))


def layer_gradient(sp: Split, x, args, kwargs):
    """The layer's output ``A`` at ``x`` and ``dF/dA`` there, from one forward and one backward
    (tuples of them for several layers: each gradient is the total derivative at that layer)."""
    # Only the activation's shape is needed for the zero perturbation: eval_shape computes nothing,
    # so the forward pass runs once (inside the vjp) rather than twice.
    shape = jax.eval_shape(lambda: sp.activation(x, *args, **kwargs))

    def out_of(delta):
        parts = delta if sp.many else (delta,)
        return sp.forward(x, lambda i, a: _tmap(jnp.add, a, parts[i]), *args, **kwargs)

    zero = _tmap(lambda s: jnp.zeros(s.shape, s.dtype), shape)
    (out, a), vjp = jax.vjp(out_of, zero)
    if jnp.shape(out) != ():
        raise TypeError(
            f"jaxplain.{sp.method}: f must return a scalar for one example, but it returned shape "
            f"{jnp.shape(out)}; pick a target, e.g. f = lambda x, t: model(x)[t]."
            f"{_checks.batch_hint(x, jnp.shape(out))}"
        )
    (g,) = vjp((jnp.ones_like(out), _tmap(jnp.zeros_like, a)))
    return a, g
