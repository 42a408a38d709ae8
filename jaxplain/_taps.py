"""Layer taps: read, replace or perturb the output of any layer of ``f`` without editing the model.

A layer-based method takes ``f`` and ``layer=``, the path of a module called inside ``f``:

* Flax Linen: the module's path, e.g. ``"conv1"`` or ``"backbone/block2/conv"``, found while ``f``
  is traced through ``flax.linen.intercept_methods``; so a plain closure
  ``lambda x, t: model.apply(params, x[None])[0, t]`` works as it is.
* Flax NNX: the attribute path of the submodule, for an ``f`` built by
  :func:`jaxplain.flax.from_nnx` (it merges a fresh copy of the model on each call, and the tap
  wraps the submodule of that copy; the user's model is never touched).
* Any other function: pass ``features(x) -> A`` and ``head(A, *args) -> scalar`` instead of
  ``f`` and ``layer``.

The activation is the layer's output as the model sees it: for a model called on ``x[None]`` it
keeps that leading axis of size 1.
"""

from __future__ import annotations

import contextvars
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax

from jaxplain import _contract as C

__all__ = ["Split", "split", "layers"]

# The tap active while `f` runs, read by the NNX adapter (jaxplain.flax.from_nnx). Linen calls are
# reached through flax.linen.intercept_methods instead. Both are scoped to the call of `f`.
NNX_TAP: contextvars.ContextVar = contextvars.ContextVar("jaxplain_nnx_tap", default=None)


class _Tap:
    """What one run of ``f`` does at the tapped layer: record its output, then apply ``edit``."""

    def __init__(self, layer: str | None, edit: Callable | None):
        self.layer = layer
        self.edit = edit
        self.outputs: list = []
        self.seen: dict[str, Any] = {}  # every module path called, with its output shape

    def __call__(self, path: str, out: Any) -> Any:
        self.seen.setdefault(path, jax.tree_util.tree_map(lambda a: getattr(a, "shape", ()), out))
        if path != self.layer:
            return out
        self.outputs.append(out)
        return self.edit(out) if self.edit is not None else out


def _path(parts) -> str:
    return "/".join(str(p) for p in parts)


def _run(f: Callable, tap: _Tap, x, args, kwargs):
    def interceptor(next_fun, a, kw, context):
        out = next_fun(*a, **kw)
        if context.method_name != "__call__" or not context.module.path:
            return out
        return tap(_path(context.module.path), out)

    token = NNX_TAP.set(tap)
    try:
        with nn.intercept_methods(interceptor):
            return f(x, *args, **kwargs)
    finally:
        NNX_TAP.reset(token)


def layers(f: Callable, x, *args, **kwargs) -> dict[str, Any]:
    """Lists the layers called inside ``f(x, *args)``: ``{module path: output shape}`` in call order.

    Works for Flax Linen modules called inside ``f`` and for ``f`` built by
    :func:`jaxplain.flax.from_nnx`; nothing is computed (``f`` is traced with ``jax.eval_shape``).

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
    C.check_callable("layers", "f", f)
    tap = _Tap(None, None)
    jax.eval_shape(lambda x, a, kw: _run(f, tap, x, a, kw), x, args, kwargs)
    return dict(tap.seen)


class Split(NamedTuple):
    """``f`` split at a layer: ``activation(x, *args) -> A`` and ``rest(x, A, *args) -> scalar``,
    where ``rest`` runs ``f`` with the layer's output replaced by ``A``."""

    activation: Callable
    rest: Callable
    forward: Callable  # forward(x, edit, *args) -> (f's output, the layer's original output)


def split(
    method: str,
    f: Callable | None,
    layer: str | None,
    features: Callable | None,
    head: Callable | None,
) -> Split:
    """Resolves the ``f`` + ``layer`` or ``features`` + ``head`` forms into a :class:`Split`."""
    if f is not None:
        C.check_callable(method, "f", f)
        if features is not None or head is not None:
            raise TypeError(
                f"jaxplain.{method}: pass either f and layer=, or features= and head=, not both."
            )
        if not isinstance(layer, str) or not layer:
            raise TypeError(
                f"jaxplain.{method}: layer must be the path of a module called inside f, e.g. "
                f"layer='conv1' or 'backbone/block2/conv', got {layer!r}. jaxplain.layers(f, x, "
                f"*args) lists the paths."
            )
        layer = layer.strip("/")

        def forward(x, edit, *args, **kwargs):
            tap = _Tap(layer, edit)
            out = _run(f, tap, x, args, kwargs)
            if not tap.outputs:
                valid = ", ".join(repr(p) for p in tap.seen) or "none (no Flax module was called)"
                raise ValueError(
                    f"jaxplain.{method}: no layer {layer!r} was called inside f. Valid layer paths: "
                    f"{valid}. (NNX models are reached when f is built by jaxplain.flax.from_nnx; "
                    f"for other functions pass features= and head=.)"
                )
            if len(tap.outputs) > 1:
                raise ValueError(
                    f"jaxplain.{method}: layer {layer!r} was called {len(tap.outputs)} times inside "
                    f"f, so its output is ambiguous; tap a module that is called once."
                )
            return out, tap.outputs[0]

    else:
        if layer is not None:
            raise TypeError(f"jaxplain.{method}: layer= needs f; with features= and head= leave it out.")
        C.check_callable(method, "features", features)
        C.check_callable(method, "head", head)

        def forward(x, edit, *args, **kwargs):
            a = features(x)
            return head(edit(a) if edit is not None else a, *args, **kwargs), a

    def activation(x, *args, **kwargs):
        return forward(x, None, *args, **kwargs)[1]

    def rest(x, a, *args, **kwargs):
        out, original = forward(x, lambda _: a, *args, **kwargs)
        shapes = (jax.tree_util.tree_structure(original), jax.tree_util.tree_map(jax.numpy.shape, original))
        if shapes != (jax.tree_util.tree_structure(a), jax.tree_util.tree_map(jax.numpy.shape, a)):
            raise ValueError(
                f"jaxplain.{method}: the replacement activation has shape "
                f"{jax.tree_util.tree_map(jax.numpy.shape, a)} but the layer's output has "
                f"{shapes[1]}."
            )
        return out

    return Split(activation, rest, forward)
