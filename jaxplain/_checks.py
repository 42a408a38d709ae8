"""Checks of options and inputs, with one wording for every family.

Options are checked when a transform is built (``check_*``), inputs when an explainer is called
(:func:`check_input`, :func:`scalar_output`). Every error is a ``TypeError`` (wrong kind of value)
or a ``ValueError`` (right kind, wrong value) that starts with ``jaxplain.<where>:``, names what was
received and says how to fix it, as ``jax.grad`` does.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "accepts_key",
    "all_finite",
    "check_array",
    "check_baseline",
    "check_batch_size",
    "check_bool",
    "check_callable",
    "check_multiply_by_inputs",
    "check_choice",
    "check_float",
    "check_input",
    "check_int",
    "check_reference_set",
    "require_key",
    "scalar_output",
]


# --------------------------------------------------------------------------- options (build time)


def check_callable(where: str, name: str, value: Any) -> None:
    if not callable(value):
        raise TypeError(
            f"jaxplain.{where}: {name} must be a callable, got {type(value).__name__} {value!r}. "
            f"Pass a function f(x, *args) that returns a scalar for one example."
        )


def check_bool(where: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"jaxplain.{where}: {name} must be True or False, got {type(value).__name__} {value!r}."
        )
    return bool(value)


def check_multiply_by_inputs(where: str, value: Any, *, return_delta: bool = False) -> bool:
    """Checks ``multiply_by_inputs`` (Captum's option): False asks for the "global" attribution,
    the multipliers without the factor ``(x - baseline)``, which has no completeness gap."""
    value = check_bool(where, "multiply_by_inputs", value)
    if return_delta and not value:
        raise ValueError(
            f"jaxplain.{where}: return_delta=True needs multiply_by_inputs=True. With "
            f"multiply_by_inputs=False the attribution is the multipliers alone (the global "
            f"attribution), which does not sum to f(x) - f(baseline), so a completeness gap would "
            f"mean nothing; multiply by (x - baseline) yourself to check it."
        )
    return value


def check_int(where: str, name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"jaxplain.{where}: {name} must be an int >= {minimum}, got "
            f"{type(value).__name__} {value!r}."
        )
    if value < minimum:
        raise ValueError(f"jaxplain.{where}: {name} must be >= {minimum}, got {value}.")
    return int(value)


def check_float(where: str, name: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"jaxplain.{where}: {name} must be a real number >= {minimum}, got "
            f"{type(value).__name__} {value!r}."
        )
    value = float(value)
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"jaxplain.{where}: {name} must be a finite number >= {minimum}, got {value}.")
    return value


def check_choice(where: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(
            f"jaxplain.{where}: unknown {name} {value!r}; choose one of "
            + ", ".join(repr(c) for c in choices)
            + "."
        )
    return value


def check_batch_size(where: str, value: Any) -> int | None:
    if value is None:
        return None
    return check_int(where, "batch_size", value, minimum=1)


def _numeric(where: str, name: str, leaf: Any):
    arr = leaf if isinstance(leaf, jax.Array) else np.asarray(leaf)
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise TypeError(f"jaxplain.{where}: {name} must be numeric, got dtype {arr.dtype}.")
    return arr


def check_baseline(where: str, value: Any) -> None:
    """A baseline option: a callable ``x -> baseline`` (checked when called), or numbers."""
    if callable(value):
        return
    for leaf in jax.tree_util.tree_leaves(value):
        _numeric(where, "baseline", leaf)
        if not all_finite(leaf):
            raise ValueError(f"jaxplain.{where}: baseline contains NaN or Inf.")


def check_reference_set(where: str, baselines: Any) -> Any:
    """A reference set: an array ``(M,) + x.shape`` or a pytree of such leaves, ``M >= 1``; returns
    it with leaves as arrays."""
    leaves, treedef = jax.tree_util.tree_flatten(baselines)
    if not leaves:
        raise ValueError(
            f"jaxplain.{where}: baselines is empty; pass a reference set of shape (M,) + x.shape "
            f"with M >= 1, e.g. a sample of training inputs."
        )
    out = []
    for leaf in leaves:
        arr = _numeric(where, "baselines", leaf)
        if arr.ndim < 1 or arr.shape[0] == 0:
            raise ValueError(
                f"jaxplain.{where}: baselines of shape {arr.shape} hold no reference inputs; pass "
                f"an array of shape (M,) + x.shape with M >= 1."
            )
        if not all_finite(arr):
            raise ValueError(f"jaxplain.{where}: baselines contain NaN or Inf.")
        out.append(arr)
    sizes = {a.shape[0] for a in out}
    if len(sizes) != 1:
        raise ValueError(
            f"jaxplain.{where}: every leaf of baselines needs the same number of reference inputs "
            f"along axis 0, got {sorted(sizes)}."
        )
    return jax.tree_util.tree_unflatten(treedef, out)


def check_reference_shapes(where: str, refs: Any, x: Any) -> list:
    """The leaves of a reference set checked against ``x``'s (``(M,) + leaf.shape`` each, in
    order; the containers may differ, e.g. a list for a tuple), in x's dtypes."""
    leaves = jax.tree_util.tree_leaves(x)
    ref_leaves = jax.tree_util.tree_leaves(refs)
    if len(ref_leaves) != len(leaves):
        raise ValueError(
            f"jaxplain.{where}: baselines has {len(ref_leaves)} leaves but x has {len(leaves)}; "
            f"pass a pytree like x whose leaves have a leading reference axis."
        )
    for r, leaf in zip(ref_leaves, leaves):
        if r.shape[1:] != leaf.shape:
            raise ValueError(
                f"jaxplain.{where}: baselines of shape {r.shape} do not fit x of shape "
                f"{leaf.shape}; expected (M,) + {leaf.shape}, a reference set of M inputs."
            )
    return [jnp.asarray(r, leaf.dtype) for r, leaf in zip(ref_leaves, leaves)]


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


# --------------------------------------------------------------------------- arrays (plots, t-SNE, similarity)


def check_array(where: str, name: str, value: Any, *, expected: str, concrete: bool = False):
    """``value`` as an array of real numbers (integer, floating or boolean), or an error naming it.

    Returns a ``jax.Array`` as given, anything else as a NumPy array; shapes are the caller's to
    check. With ``concrete=True`` a traced value is refused (plots and t-SNE need values).
    """
    if isinstance(value, jax.core.Tracer):
        if concrete:
            raise TypeError(
                f"jaxplain.{where}: {name} is a traced value; this function needs concrete arrays. "
                f"Call it outside jax.jit / jax.vmap, on the values a compiled function returned."
            )
        arr = value
    elif value is None or isinstance(value, (str, bytes, Mapping)):
        raise TypeError(
            f"jaxplain.{where}: {name} must be {expected}, got {type(value).__name__} {value!r:.80}."
        )
    else:
        try:
            arr = value if isinstance(value, jax.Array) else np.asarray(value)
        except Exception as e:  # ragged lists and the like
            raise TypeError(
                f"jaxplain.{where}: {name} could not be read as an array ({type(value).__name__}: "
                f"{e}); pass {expected}."
            ) from None
    dtype = arr.dtype
    if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating) or dtype == np.bool_):
        raise TypeError(
            f"jaxplain.{where}: {name} must hold real numbers, got dtype {dtype} (shape "
            f"{arr.shape}). Convert it first, e.g. np.asarray({name}, dtype=np.float32)."
        )
    return arr


def check_finite(where: str, name: str, arr: Any) -> None:
    """Refuses NaN and Inf in a concrete array (a traced one passes unchecked)."""
    if all_finite(arr):
        return
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(np.asarray(arr))))
    raise ValueError(
        f"jaxplain.{where}: {name} contains NaN or Inf ({bad} value(s), shape "
        f"{tuple(np.shape(arr))}); replace them first, e.g. jnp.nan_to_num({name})."
    )


# --------------------------------------------------------------------------- inputs (call time)


def check_input(where: str, x: Any, *, integers: bool = False) -> Any:
    """Checks that ``x`` is a pytree of real floating arrays and returns it with leaves as arrays.

    Under a trace only the dtype can be checked; outside one, NaN and Inf are rejected too. With
    ``integers``, integer and boolean leaves (tokens, masks) pass too: for methods that
    differentiate at a layer inside ``f``, never at ``x``.
    """
    leaves, treedef = jax.tree_util.tree_flatten(x)
    if not leaves:
        raise ValueError(f"jaxplain.{where}: x is empty ({x!r}); pass an array or a pytree of arrays.")
    out = []
    for path_leaf in leaves:
        leaf = path_leaf if isinstance(path_leaf, jax.Array) else jnp.asarray(path_leaf)
        dtype = leaf.dtype
        if integers and (jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_):
            out.append(leaf)
            continue
        if not jnp.issubdtype(dtype, jnp.floating):
            hint = (
                "Integer inputs are usually tokens: attribute at the embedding layer's output "
                "instead, e.g. jaxplain.token_attribution(jaxplain.integrated_gradients, f, "
                "layer='embed'), jaxplain.layer_integrated_gradients(f, layer='embed') or "
                "jaxplain.layer_lrp(f, layer='embed'), which take the tokens as they are."
                if jnp.issubdtype(dtype, jnp.integer)
                else "Cast it first, e.g. x.astype(jnp.float32)."
            )
            raise TypeError(
                f"jaxplain.{where}: x must have a real floating dtype, got {dtype}"
                f"{' (shape ' + str(leaf.shape) + ')' if leaf.ndim else ''}: attributions are "
                f"derivatives, which integer and boolean inputs do not have. {hint}"
            )
        out.append(leaf)
    bad = [i for i, leaf in enumerate(out) if jnp.issubdtype(leaf.dtype, jnp.floating) and not all_finite(leaf)]
    if bad:
        where_x = "x" if len(out) == 1 else f"x (leaves {bad})"
        raise ValueError(
            f"jaxplain.{where}: {where_x} contains NaN or Inf; attributions of non-finite inputs "
            f"are meaningless. Replace them first, e.g. jnp.nan_to_num(x)."
        )
    return jax.tree_util.tree_unflatten(treedef, out)


def all_finite(value: Any) -> bool:
    """True unless a concrete (not traced) array holds NaN or Inf; traced values pass unchecked."""
    if isinstance(value, jax.core.Tracer):
        return True
    with jax.ensure_compile_time_eval():  # evaluate on the value's device, also inside a trace
        return bool(jnp.all(jnp.isfinite(jnp.asarray(value))))


def require_key(where: str, key: Any) -> Any:
    if key is None:
        raise TypeError(
            f"jaxplain.{where} is random and needs an explicit key: call "
            f"explainer(x, *args, key=jax.random.key(0)); under jax.vmap pass one key per example, "
            f"e.g. key=jax.random.split(key, n)."
        )
    return key


def batch_hint(x: Any, shape: tuple) -> str:
    """A hint for an output of ``shape`` that looks like a batch (of ``x``, or of one)."""
    if not shape:
        return ""
    leaves = jax.tree_util.tree_leaves(x)
    lead = jnp.shape(leaves[0])[:1] if leaves else ()
    if lead and lead[0] == shape[0] and lead[0] > 1:
        return (
            f" x looks like a batch of {lead[0]} examples (its leading axis matches the output's): "
            f"explainers take ONE example; map them over a batch with jax.vmap, e.g. "
            f"jax.vmap(explainer)(xs, targets)."
        )
    if shape[0] == 1:
        return (
            " It looks batched: explain one example and map over the batch with jax.vmap, "
            "e.g. f = lambda x, t: model(x[None])[0, t]."
        )
    return ""


def scalar_output(where: str, f: Callable) -> Callable:
    """Wraps ``f`` so that a non-scalar output fails with an error saying how to pick a target."""

    def f_checked(x, *args, **kwargs):
        out = f(x, *args, **kwargs)
        shape = jnp.shape(out)
        if shape != ():
            raise TypeError(
                f"jaxplain.{where}: f must return a scalar for one example, but f(x, *args) "
                f"returned an output of shape {shape}. Pick one output as the target, e.g. "
                f"f = lambda x, t: model(x)[t] and pass the class index t as an argument."
                f"{batch_hint(x, shape)}"
            )
        dtype = jnp.result_type(out)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"jaxplain.{where}: f must return a real floating scalar, got dtype {dtype}."
            )
        return out

    return f_checked
