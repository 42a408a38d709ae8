"""Flax adapters: turn a Linen or NNX model into the ``f(x, *args) -> scalar`` jaxplain explains.

A jaxplain method explains a function that returns a scalar for ONE example. A Flax classifier
returns a vector of class scores for a BATCH, in a training or an inference mode. The two adapters
bridge the gap:

* :func:`from_linen` for a ``flax.linen.Module`` and its variables;
* :func:`from_nnx` for a ``flax.nnx.Module``.

The ``f`` they return runs the model in inference mode (BatchNorm on its running averages, dropout
off) on one example, picks one class score (the predicted class by default) and optionally
passes the scores through a softmax or log-softmax first. ``f`` is pure: it composes with
``jax.jit``, ``jax.vmap`` and ``jax.grad``, including ``jax.vmap`` over per-example targets and
``jax.grad`` with respect to the model's parameters (explanations inside a training loop).

Example:
  >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxplain as jx, jaxplain.flax as jxf
  >>> model = nn.Dense(3)
  >>> x = jnp.arange(4.0)
  >>> variables = model.init(jax.random.key(0), x[None])
  >>> f = jxf.from_linen(model, variables)  # f(x, target=None): one logit of one example
  >>> bool(jnp.allclose(f(x, 2), model.apply(variables, x[None])[0, 2]))
  True
  >>> jx.gradient(f)(x, 2).shape
  (4,)
  >>> w = variables["params"]["kernel"]  # a linear model's gradient is its weight column
  >>> bool(jnp.allclose(jx.gradient(f)(x, 2), w[:, 2]))
  True
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx

from jaxplain import _checks
from jaxplain import _taps

__all__ = ["from_linen", "from_nnx", "OUTPUTS"]

#: The ``output=`` choices: which scores ``f`` picks its target from.
OUTPUTS = ("logits", "softmax", "probability", "log_softmax")

_TRANSFORMS: dict[str, Callable | None] = {
    "logits": None,
    "softmax": jax.nn.softmax,
    "probability": jax.nn.softmax,
    "log_softmax": jax.nn.log_softmax,
}

# Keyword parameters of a Linen method that switch it to inference mode, and their values there.
_INFERENCE_FLAGS = {
    "train": False,
    "training": False,
    "deterministic": True,
    "use_running_average": True,
}


# --------------------------------------------------------------------------- shared pieces


def _check_options(name: str, output: Any, batched: Any, unpack: Any) -> str:
    output = _checks.check_choice(name, "output", output, OUTPUTS)
    _checks.check_bool(name, "batched", batched)
    _checks.check_bool(name, "unpack", unpack)
    return output


def _apply(name: str, model: Callable, x: Any, batched: bool, unpack: bool) -> Any:
    """``model`` on one example (``model(*x)`` when ``unpack``): on ``x[None]`` when ``batched``;
    layer taps then read and replace the model's layers without that axis (jaxplain._taps)."""
    if unpack and not isinstance(x, (tuple, list)):
        raise TypeError(
            f"jaxplain.{name}: with unpack=True, x must be a tuple of the model's positional "
            f"inputs (the model is called as model(*x)), got {_short(x)}. For a model with one "
            f"input, leave unpack=False."
        )
    call = (lambda xb: model(*xb)) if unpack else model
    if not batched:
        return call(x)
    with _taps.adds_batch_axis():
        return call(jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], x))


def _one_example(name: str, out: Any, batched: bool) -> jax.Array:
    """The model's output for the single example, with the batch axis (if any) removed."""
    if not isinstance(out, (jax.Array, np.ndarray)):
        raise TypeError(
            f"jaxplain.{name}: the model must return an array of scores, got "
            f"{type(out).__name__}. If it returns several outputs, wrap it in a module (or pass "
            f"method=) that returns only the scores to explain."
        )
    if not batched:
        return out
    if out.ndim == 0 or out.shape[0] != 1:
        raise ValueError(
            f"jaxplain.{name}: with batched=True the model should return a leading batch axis of "
            f"size 1 for the one example it was given, but it returned shape {out.shape}. If the "
            f"model takes a single example without a batch axis, pass batched=False."
        )
    return out[0]


def _select(name: str, scores: jax.Array, target: Any, output: str) -> jax.Array:
    """Picks ``target`` (``None``: the predicted class) from one example's scores."""
    if scores.ndim == 0:
        if target is not None:
            raise ValueError(
                f"jaxplain.{name}: the model returns a scalar per example (a regression), so there "
                f"is no class to pick; pass target=None, got target={target!r}."
            )
        if output != "logits":
            raise ValueError(
                f"jaxplain.{name}: output={output!r} needs a vector of class scores, but the model "
                f"returns a scalar per example; use output='logits'."
            )
        return scores
    if scores.ndim != 1:
        if scores.shape[0] == 1:
            hint = " It looks batched: pass batched=True."
        else:
            hint = (
                f" If x is a batch of {scores.shape[0]} examples: f explains ONE example (the "
                f"adapter adds the batch axis itself); map an explainer over a batch with "
                f"jax.vmap, e.g. jax.vmap(explainer)(xs, targets)."
            )
        raise ValueError(
            f"jaxplain.{name}: the model's output for one example has shape {scores.shape}; this "
            f"adapter handles a scalar or a vector of class scores. For other outputs write f by "
            f"hand, e.g. f = lambda x, t: model_output(x)[..., t].sum().{hint}"
        )
    n = scores.shape[0]
    if target is None:
        t = jnp.argmax(jax.lax.stop_gradient(scores))
        ok = None
    else:
        t, ok = _check_target(name, target, n)
    transform = _TRANSFORMS[output]
    if transform is not None:
        scores = transform(scores)
    picked = scores[t]
    if ok is None:
        return picked
    # A traced target cannot raise: an out-of-range one makes the output and its gradient NaN
    # (rather than JAX's default of silently clamping the index to a valid class).
    return picked * jnp.where(ok, 1.0, jnp.nan).astype(picked.dtype)


def _check_target(name: str, target: Any, n: int) -> tuple[Any, Any]:
    """Returns ``(index, in_range)``; ``in_range`` is None when ``target`` was checked here."""
    try:
        dtype = np.dtype(bool) if isinstance(target, bool) else jnp.result_type(target)
    except (TypeError, ValueError):  # not numeric at all, e.g. a class name
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.integer) or jnp.ndim(target) != 0:
        raise TypeError(
            f"jaxplain.{name}: target must be None or an integer class index (a Python int or an "
            f"integer scalar array), got {_short(target)}. Under jax.vmap pass one target per "
            f"example, e.g. jax.vmap(explainer)(xs, targets) with targets of shape (n,)."
        )
    if isinstance(target, jax.core.Tracer):
        return jnp.clip(target, 0, n - 1), (target >= 0) & (target < n)
    t = int(target)
    if not 0 <= t < n:
        raise ValueError(
            f"jaxplain.{name}: target {t} is out of range for a model with {n} classes; pass an "
            f"index in [0, {n})."
        )
    return t, None


def _short(value: Any) -> str:
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return f"an array of dtype {value.dtype} and shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"


# --------------------------------------------------------------------------- Linen


def _linen_inference_kwargs(name: str, module: linen.Module, method: Any) -> dict:
    """The inference-mode flags the module's method accepts as keyword arguments."""
    if method is None:
        fn = type(module).__call__
    elif isinstance(method, str):
        fn = getattr(type(module), method, None)
        if not callable(fn):
            raise ValueError(
                f"jaxplain.{name}: {type(module).__name__} has no method {method!r}; pass the name "
                f"of one of its methods, a function of the module, or method=None for __call__."
            )
    elif callable(method):
        fn = method
    else:
        raise TypeError(
            f"jaxplain.{name}: method must be None, a method name or a function, got {method!r}."
        )
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        k: v for k, v in _INFERENCE_FLAGS.items() if k in params and params[k].kind in keyword
    }


def _check_variables(name: str, variables: Any) -> None:
    if not isinstance(variables, Mapping):
        raise TypeError(
            f"jaxplain.{name}: variables must be the mapping module.init returns, e.g. "
            f"{{'params': ..., 'batch_stats': ...}}, got {type(variables).__name__}."
        )


def from_linen(
    module: linen.Module,
    variables: Mapping | None = None,
    *,
    output: str = "logits",
    batched: bool = True,
    unpack: bool = False,
    method: str | Callable | None = None,
    **call_kwargs: Any,
) -> Callable:
    """Turns a Flax Linen model into ``f(x, target)``: one score of one example, in inference mode.

    ``f`` runs ``module.apply(variables, x[None], **flags, **call_kwargs, mutable=False)[0]`` (or
    without the batch axis when ``batched=False``) and returns the ``target`` entry of the logits,
    softmax or log-softmax. ``target=None`` picks the predicted class (the argmax of the logits,
    under ``stop_gradient``); an integer, or a traced integer scalar, picks that class, so
    ``jax.vmap(explainer)(xs, targets)`` explains each example for its own target. A model whose
    output for one example is a scalar (a regression) needs ``target=None``.

    Inference mode: keyword parameters of ``module.__call__`` (or ``method``) named ``train`` or
    ``training`` are set to ``False``, and ``deterministic`` or ``use_running_average`` to
    ``True``, unless given in ``call_kwargs``. The model is applied with ``mutable=False``, so a
    BatchNorm that is still in training mode (e.g. ``use_running_average=False`` hard-coded, or a
    flag this function does not know) fails with Flax's ``ModifyScopeVariableError``, and an active
    Dropout with Flax's missing-``'dropout'``-rng error: pass the right flag in ``call_kwargs``.

    An out-of-range target raises ``ValueError`` when ``f`` sees a Python int; a traced one (under
    ``jax.jit``, ``jax.vmap`` or any jaxplain explainer, which compiles ``f``) cannot raise, so it
    makes the output and the attribution NaN instead of silently explaining another class.

    Args:
      module: a ``flax.linen.Module``.
      variables: the model's variables as ``module.init`` returns them (``{'params': ...,
        'batch_stats': ...}``, not ``variables['params']``). ``None`` makes them an argument of
        ``f``: ``f(x, target, variables)``, so that a loss of an explanation can be differentiated
        with respect to them.
      output: ``"logits"`` (the model's raw output), ``"softmax"`` (alias ``"probability"``) or
        ``"log_softmax"``.
      batched: whether the model expects a leading batch axis; ``f`` still takes one example.
      unpack: if True, ``x`` is a tuple of the model's positional inputs (e.g. ``(image, text)``
        or ``(tokens, mask)``) and the model is called as ``model(*x)``, each with its batch
        axis; an attribution of such an ``x`` is a tuple like it (integer inputs, e.g. tokens,
        are attributed at a layer inside ``f``, see :func:`jaxplain.token_attribution`).
      method: the module method to apply (a name or a function, as in ``module.apply``);
        ``None`` for ``__call__``.
      **call_kwargs: extra keyword arguments for the method; they override the inference flags.

    Returns:
      ``f(x, target=None)``, or ``f(x, target, variables)`` when ``variables`` is ``None``,
      returning a scalar.

    Raises:
      TypeError: ``module`` is not a Linen module, ``variables`` is not a mapping, or
        ``call_kwargs`` holds ``mutable``.
      ValueError: ``output`` is unknown, or ``method`` names no method of the module.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxplain as jx, jaxplain.flax as jxf
      >>> class Net(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x, train: bool):
      ...         x = nn.BatchNorm(use_running_average=not train)(nn.Dense(8)(x))
      ...         x = nn.Dropout(0.5, deterministic=not train)(nn.relu(x))
      ...         return nn.Dense(3)(x)
      >>> model, x = Net(), jnp.ones(4)
      >>> variables = model.init(jax.random.key(0), x[None], train=False)
      >>> f = jxf.from_linen(model, variables, output="log_softmax")  # train=False is detected
      >>> jx.integrated_gradients(f, steps=8)(x, 1).shape
      (4,)
      >>> f = jxf.from_linen(model)  # f(x, target, variables): differentiate w.r.t. the params
      >>> loss = lambda p: jnp.sum(jx.gradient(f)(x, 1, {**variables, "params": p}) ** 2)
      >>> jax.grad(loss)(variables["params"])["Dense_0"]["kernel"].shape
      (4, 8)

    References:
      Flax documentation, "Batch normalization" (the ``train`` flag and ``batch_stats``),
      https://flax.readthedocs.io/en/v0.6.10/guides/batch_norm.html.
    """
    name = "flax.from_linen"
    if not isinstance(module, linen.Module):
        if isinstance(module, nnx.Module):
            raise TypeError(
                f"jaxplain.{name}: {type(module).__name__} is a Flax NNX module; use "
                f"jaxplain.flax.from_nnx(model) for NNX models."
            )
        raise TypeError(
            f"jaxplain.{name}: module must be a flax.linen.Module, got {type(module).__name__}. "
            f"For an NNX model use jaxplain.flax.from_nnx; any other model is already a function: "
            f"pass f = lambda x, t: model(x)[t] to a jaxplain method directly."
        )
    output = _check_options(name, output, batched, unpack)
    if "mutable" in call_kwargs:
        raise TypeError(
            f"jaxplain.{name}: the model is always applied with mutable=False (an explanation "
            f"must not update batch statistics); remove mutable={call_kwargs['mutable']!r}."
        )
    if variables is not None:
        _check_variables(name, variables)
    kwargs = {**_linen_inference_kwargs(name, module, method), **call_kwargs}
    if method is not None:
        kwargs["method"] = method

    def score(x, target, variables):
        def model(*xb):
            return module.apply(variables, *xb, mutable=False, **kwargs)

        out = _apply(name, model, x, batched, unpack)
        return _select(name, _one_example(name, out, batched), target, output)

    if variables is None:

        def f(x, target, variables):
            _check_variables(name, variables)
            return score(x, target, variables)

    else:

        def f(x, target=None):
            return score(x, target, variables)

    f.__name__ = f.__qualname__ = type(module).__name__
    return f


# --------------------------------------------------------------------------- NNX


def from_nnx(
    model: nnx.Module,
    *,
    output: str = "logits",
    batched: bool = True,
    unpack: bool = False,
    params_arg: bool = False,
) -> Callable:
    """Turns a Flax NNX model into ``f(x, target)``: one score of one example, in inference mode.

    The same ``f`` as :func:`from_linen` (targets, ``output``, ``batched``), for an NNX model called
    as ``model(x)``. The model is never mutated: at build time this takes an inference-mode view,
    ``nnx.view(model, deterministic=True, use_running_average=True)``, and splits it into a graph
    definition and a state; ``f`` merges a fresh copy on every call, so it is pure.

    ``f`` therefore sees the model's variables as they were when ``from_nnx`` was called: after
    training steps update ``model`` in place, build ``f`` again (it is cheap), or use
    ``params_arg=True`` and pass the current state.

    Args:
      model: a ``flax.nnx.Module``, called as ``model(x)``.
      output: ``"logits"``, ``"softmax"`` (alias ``"probability"``) or ``"log_softmax"``.
      batched: whether the model expects a leading batch axis; ``f`` still takes one example.
      unpack: if True, ``x`` is a tuple of the model's positional inputs, called as ``model(*x)``
        (see :func:`from_linen`).
      params_arg: if True, ``f(x, target, state)`` takes an ``nnx.State`` holding some or all of
        the model's variables (e.g. ``nnx.state(model, nnx.Param)`` or ``nnx.state(model)``);
        variables it does not hold come from the model at build time. Differentiate with respect
        to ``nnx.state(model, nnx.Param)``: the full state also holds integer RNG counters and
        keys (of Dropout layers), which ``jax.grad`` rejects.

    Returns:
      ``f(x, target=None)``, or ``f(x, target, state)`` with ``params_arg=True``, returning a
      scalar.

    Raises:
      TypeError: ``model`` is not an NNX module, or a ``state`` passed to ``f`` is not a mapping.
      ValueError: ``output`` is unknown, or a ``state`` passed to ``f`` holds variables the model
        does not have.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx, jaxplain.flax as jxf
      >>> from flax import nnx
      >>> model = nnx.Sequential(
      ...     nnx.Linear(4, 8, rngs=nnx.Rngs(0)), nnx.Dropout(0.5, rngs=nnx.Rngs(1)),
      ...     nnx.Linear(8, 3, rngs=nnx.Rngs(2)))
      >>> f = jxf.from_nnx(model, output="softmax")  # dropout off; `model` itself is untouched
      >>> x = jnp.ones(4)
      >>> round(float(sum(f(x, t) for t in range(3))), 5)  # the three class probabilities
      1.0
      >>> jx.gradient(f)(x, 2).shape
      (4,)
      >>> f = jxf.from_nnx(model, params_arg=True)  # f(x, target, state)
      >>> loss = lambda p: jnp.sum(jx.gradient(f)(x, 2, p) ** 2)
      >>> jax.grad(loss)(nnx.state(model, nnx.Param))["layers"][0]["kernel"].shape
      (4, 8)

    References:
      Flax documentation, "Model Views" (``nnx.view``),
      https://flax.readthedocs.io/en/stable/guides/view.html.
    """
    name = "flax.from_nnx"
    if not isinstance(model, nnx.Module):
        if isinstance(model, linen.Module):
            raise TypeError(
                f"jaxplain.{name}: {type(model).__name__} is a Flax Linen module; use "
                f"jaxplain.flax.from_linen(module, variables) for Linen models."
            )
        raise TypeError(
            f"jaxplain.{name}: model must be a flax.nnx.Module, got {type(model).__name__}. For a "
            f"Linen model use jaxplain.flax.from_linen; any other model is already a function: "
            f"pass f = lambda x, t: model(x)[t] to a jaxplain method directly."
        )
    output = _check_options(name, output, batched, unpack)
    _checks.check_bool(name, "params_arg", params_arg)
    eval_view = nnx.view(
        model, deterministic=True, use_running_average=True, raise_if_not_found=False
    )
    graphdef, state = nnx.split(eval_view)
    # nnx.split's state holds the model's own Variable objects (nnx.view shares them): copy the
    # containers so that later in-place updates of `model` do not leak into f, and vice versa.
    state = jax.tree_util.tree_map(lambda a: a, state)
    known = {path for path, _ in nnx.to_flat_state(state)}

    def score(x, target, st):
        net = nnx.merge(graphdef, st, copy=True)  # a fresh copy: nothing f does reaches `state`
        _taps.install_nnx(net)  # layer taps (jaxplain.layers, layer=...), on this copy only
        out = _apply(name, net, x, batched, unpack)
        return _select(name, _one_example(name, out, batched), target, output)

    if params_arg:

        def f(x, target, state_in):
            if not isinstance(state_in, Mapping):
                raise TypeError(
                    f"jaxplain.{name}: state must be an nnx.State, e.g. nnx.state(model, "
                    f"nnx.Param), got {type(state_in).__name__}."
                )
            given = nnx.merge_state(state_in)
            unknown = sorted({path for path, _ in nnx.to_flat_state(given)} - known, key=str)
            if unknown:
                shown = ", ".join("/".join(map(str, p)) for p in unknown[:5])
                raise ValueError(
                    f"jaxplain.{name}: state holds {len(unknown)} variable(s) the model does not "
                    f"have ({shown}{', ...' if len(unknown) > 5 else ''}); pass nnx.state(model) "
                    f"or a part of it, e.g. nnx.state(model, nnx.Param)."
                )
            return score(x, target, nnx.merge_state(state, given))

    else:

        def f(x, target=None):
            return score(x, target, state)

    f.__name__ = f.__qualname__ = type(model).__name__
    return f
