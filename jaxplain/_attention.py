"""Attention maps of Transformers, read without editing the model: the attention weights of every
softmax in ``f``, attention rollout and attention flow (Abnar & Zuidema 2020).

The weights are found by the interpreter (:mod:`jaxplain._interpret`): ``f`` is traced, each
softmax in its program (as ``jax.nn.softmax`` spells it, or ``exp / sum(exp)`` by hand) becomes one
operation, and a hook records its output with its module path (as :func:`jaxplain.layers` names
modules). A softmax counts as attention when it normalizes the LAST axis of a value, for one
example, of one of these shapes (anything else, e.g. the ``(1, classes)`` softmax of a
classifier's output, is ignored):

* ``(heads, query, key)``: attention computed for one example without a batch axis (a model
  written for one example, e.g. in plain JAX);
* ``(1, heads, query, key)``: a model called on ``x[None]``, e.g. Flax Linen's
  ``nn.MultiHeadDotProductAttention``; the batch axis is dropped;
* ``(groups, 1, kv_heads, query, key)``: the layout of ``jax.nn.dot_product_attention``'s XLA
  implementation, which ``nnx.MultiHeadAttention`` calls (query head ``k * groups + g`` reads
  key/value head ``k``; ``groups`` is 1 without grouped-query attention); put back to
  ``(kv_heads * groups, query, key)``.

Attention computed by a fused kernel (cuDNN, a Pallas flash attention) has no softmax in the
program and cannot be read; nor can softmaxes inside control flow (``lax.scan``, e.g. Linen's
``nn.scan`` over blocks, ``while``, ``cond``), which the interpreter runs whole: rollout and flow
then raise unless ``layers=`` names the layers to use. ``x`` must hold real floating values
(embeddings or images, not token ids) and the attention must depend on it.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _checks
from jaxplain._contract import Explainer, make_explainer
from jaxplain._interpret import Plain, first, interpret

__all__ = ["attention_flow", "attention_rollout", "attention_weights"]

_FUSIONS = ("mean", "max", "min")
_CONTROL = ("scan", "while", "cond")


class _Found(NamedTuple):
    """One softmax of ``f``'s program: its module path, its value and the axes it normalizes."""

    path: str
    value: Any
    axes: tuple


class _Attention(NamedTuple):
    key: str  # the name in attention_weights' dict: the path, "#n" added from its second call on
    path: str
    weights: Any  # (heads, query, key)


class _Recorder(Plain):
    """Hooks that evaluate ``f`` unchanged and record the output of every softmax."""

    def __init__(self):
        self.found: list[_Found] = []
        self.control: list[str] = []  # control flow holding x (run whole: its softmaxes unseen)

    def op(self, site, fn, invals, active):
        out = fn(*invals)
        if site.kind == "softmax":
            nd = max(jnp.ndim(invals[0]), 1)
            given = getattr(site, "axes", ())  # interpreters without Site.axes: read the program
            axes = tuple(sorted(int(a) % nd for a in given)) if given else _softmax_axes(fn, invals[0])
            self.found.append(_Found(site.path, first(out), axes))
        elif site.kind == "other" and site.eqn.primitive.name in _CONTROL:
            self.control.append(f"{site.eqn.primitive.name} at {site.path or 'the top level'!r}")
        return out


def _softmax_axes(fn: Callable, c: Any) -> tuple:
    """The axes the softmax ``fn`` sums over (its ``reduce_sum``), as non-negative ints."""
    shape = jax.ShapeDtypeStruct(jnp.shape(c), jnp.result_type(c))
    for eqn in jax.make_jaxpr(fn)(shape).jaxpr.eqns:
        if eqn.primitive.name == "reduce_sum":
            return tuple(sorted(int(a) % max(len(shape.shape), 1) for a in eqn.params["axes"]))
    return ()


def _as_heads(found: _Found) -> tuple[Any, str]:
    """``(weights (heads, query, key), "")`` for an attention softmax, else ``(None, why not)``."""
    w = found.value
    shape, nd = jnp.shape(w), jnp.ndim(w)
    if nd not in (3, 4, 5):
        return None, f"{nd}-D"
    if found.axes != (nd - 1,):
        return None, f"normalizes axes {found.axes}, not the last"
    if nd == 3:
        return w, ""
    if nd == 4:
        if shape[0] != 1:
            return None, f"a batch of {shape[0]} (f must run the model on ONE example, x[None])"
        return w[0], ""
    if shape[1] != 1:
        return None, f"a batch of {shape[1]} (f must run the model on ONE example, x[None])"
    groups, _, kv_heads, q, k = shape  # jax.nn.dot_product_attention: query head = kv * G + g
    return jnp.transpose(w[:, 0], (1, 0, 2, 3)).reshape(kv_heads * groups, q, k), ""


def _patterns(method: str, name: str, layer: Any) -> tuple | None:
    if layer is None:
        return None
    if isinstance(layer, str) and layer.strip("/"):
        return (layer.strip("/"),)
    if isinstance(layer, (tuple, list)) and layer and all(isinstance(p, str) and p.strip("/") for p in layer):
        return tuple(p.strip("/") for p in layer)
    raise TypeError(
        f"jaxplain.{method}: {name} must be None (every attention softmax), a module path such as "
        f"'blocks_0/attn' or 'blocks_0', or a tuple of paths, got {layer!r}. "
        f"jaxplain.attention_weights(f, x, *args) lists the paths."
    )


def _matches(pattern: str, att: _Attention) -> bool:
    """``pattern`` names the softmax: a run of whole components of its path or its key (a module
    it is under, or a trailing part: ``"attn#1"`` for the second call), ``*`` globs allowed."""
    for name in {att.path, att.key}:
        parts = name.split("/")
        runs = ("/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1))
        if any(fnmatch.fnmatchcase(run, pattern) for run in runs):
            return True
    return False


def _attentions(method: str, f: Callable, x, args, kwargs, layer: Any, name: str = "layer", *,
                every: bool = False) -> list:
    """The attention softmaxes of ``f(x, *args, **kwargs)`` in program order (those ``layer``
    selects), as :class:`_Attention`; raises when there are none, or (``every``, with
    ``layer=None``) when control flow may hide some."""
    patterns = _patterns(method, name, layer)
    program = interpret(f, x, args, kwargs, softmax=True)
    recorder = _Recorder()
    program.run(recorder)(jax.tree_util.tree_leaves(x))
    found, rejected, counts = [], [], {}
    for item in recorder.found:
        w, why = _as_heads(item)
        path = item.path or "softmax"
        if w is None:
            rejected.append(f"{path!r} (shape {tuple(jnp.shape(item.value))}: {why})")
            continue
        n = counts.get(path, 0)
        counts[path] = n + 1
        found.append(_Attention(path if n == 0 else f"{path}#{n}", path, w))
    if not found:
        if rejected:
            seen = "softmaxes that are not attention: " + ", ".join(rejected)
        else:
            paths = ", ".join(repr(p) for p in program.paths()) or "none"
            seen = f"no softmax that depends on x at all; module paths of f: {paths}"
        if recorder.control:
            seen += f"; control flow holding x ({', '.join(recorder.control)}) is not entered"
        raise ValueError(
            f"jaxplain.{method}: found no attention weights in f. An attention softmax normalizes "
            f"the last axis of a (heads, query, key) or (1, heads, query, key) value; f has "
            f"{seen}. Attention computed by a fused kernel (cuDNN, flash attention) shows no "
            f"softmax: use the XLA implementation; the attention must depend on x."
        )
    if patterns is None and every and recorder.control:
        raise ValueError(
            f"jaxplain.{method}: f runs control flow holding x ({', '.join(recorder.control)}), "
            f"whose softmaxes are not seen, so some attention layers may be missing from "
            f"{[a.key for a in found]}. Unroll the layers (e.g. a Python loop instead of nn.scan "
            f"or lax.scan), or name the layers to use with layers=."
        )
    if patterns is None:
        return found
    chosen = [a for a in found if any(_matches(p, a) for p in patterns)]
    missing = [p for p in patterns if not any(_matches(p, a) for a in found)]
    if missing:
        valid = ", ".join(repr(a.key) for a in found)
        raise ValueError(
            f"jaxplain.{method}: {name}={missing[0]!r} matches none of the attention softmaxes of "
            f"f. Their paths: {valid}. A path selects the softmaxes under that module (e.g. "
            f"'blocks_0'), or a trailing part of their path (e.g. 'attn'); '*' globs."
        )
    return chosen


def attention_weights(f: Callable, x: Any, *args: Any, layer: Any = None, **kwargs: Any) -> dict:
    """The attention probabilities of every attention softmax in ``f(x, *args)``, for one example.

    Returns ``{module path: weights}`` in program order, each of shape ``(heads, query, key)``
    (rows sum to 1). Which softmaxes count as attention, and the shapes read, are in
    :mod:`jaxplain._attention`: the last axis of a ``(heads, q, k)``, ``(1, heads, q, k)`` or
    ``jax.nn.dot_product_attention``-shaped value. A module called several times (shared
    weights) gives ``path``, ``path#1``, ``path#2``, ...; a softmax outside any module is named
    ``"softmax"``. Works under ``jax.jit`` and ``jax.vmap`` (of a function calling it).

    Args:
      f: ``f(x, *args, **kwargs)`` for one example, e.g. ``lambda x, t: model.apply(v, x[None])[0,
        t]`` (Linen modules are named by their paths; NNX models when ``f`` is built by
        :func:`jaxplain.flax.from_nnx`).
      x: the example (real floating values, e.g. token embeddings or an image).
      *args: further arguments of ``f`` (e.g. the target).
      layer: None (all), a module path (the softmaxes under it, e.g. ``"blocks_0"``, or with a
        trailing part of their path, e.g. ``"attn"``; ``*`` globs), or a tuple of paths; the
        selected softmaxes stay in program order.
      **kwargs: keyword arguments of ``f``.

    Raises:
      ValueError: ``f`` has no attention softmax (the message lists the softmaxes and module
        paths it saw), or ``layer`` matches none of them (it lists their paths).
      TypeError: ``layer`` is not a path or a tuple of paths.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> import flax.linen as nn
      >>> attn = nn.MultiHeadDotProductAttention(num_heads=2)
      >>> v = attn.init(jax.random.key(0), jnp.ones((1, 5, 8)))
      >>> f = lambda x: attn.apply(v, x[None]).sum()
      >>> w = jx.attention_weights(f, jnp.ones((5, 8)))
      >>> {k: a.shape for k, a in w.items()}  # (heads, query, key), named by the module
      {'MultiHeadDotProductAttention': (2, 5, 5)}

    References:
      Vaswani et al. (2017), "Attention Is All You Need", NeurIPS; Abnar & Zuidema (2020),
      "Quantifying Attention Flow in Transformers", ACL, arXiv:2005.00928.
    """
    _checks.check_callable("attention_weights", "f", f)
    return {a.key: a.weights for a in _attentions("attention_weights", f, x, args, kwargs, layer)}


def _check_readout(method: str, readout: Any, *, allow_none: bool) -> int | None:
    if readout is None and allow_none:
        return None
    if isinstance(readout, bool) or not isinstance(readout, (int, np.integer)):
        what = "an int (the output token, e.g. 0 for a class token) or None (the whole matrix)"
        raise TypeError(f"jaxplain.{method}: readout must be {what if allow_none else 'an int'}, "
                        f"got {type(readout).__name__} {readout!r}.")
    return int(readout)


def _check_ratio(method: str, value: Any) -> float:
    value = _checks.check_float(method, "discard_ratio", value, minimum=0.0)
    if value >= 1.0:
        raise ValueError(f"jaxplain.{method}: discard_ratio must be in [0, 1) (the fraction of the "
                         f"lowest attentions set to zero), got {value}.")
    return value


def _token_index(method: str, name: str, i: int, n: int) -> int:
    if not -n <= i < n:
        raise ValueError(f"jaxplain.{method}: {name}={i} is out of range for {n} tokens; it must lie "
                         f"in [-{n}, {n}).")
    return i % n


def _square(method: str, atts: list) -> int:
    """The token count of self-attention layers that all have the same one."""
    n = None
    for a in atts:
        _, q, k = jnp.shape(a.weights)
        if q != k or (n is not None and q != n):
            shapes = ", ".join(f"{b.key!r} {tuple(jnp.shape(b.weights))}" for b in atts)
            raise ValueError(
                f"jaxplain.{method}: a rollout needs self-attention over the same tokens in every "
                f"layer (square (heads, tokens, tokens) weights of one size), got {shapes}. Select "
                f"the self-attention layers with layers=, e.g. layers='encoder'."
            )
        n = q
    return n


def _fuse(w, head_fusion: str):
    w = w.astype(jnp.promote_types(w.dtype, jnp.float32))
    return {"mean": jnp.mean, "max": jnp.max, "min": jnp.min}[head_fusion](w, axis=0)


def _discard(a, ratio: float, keep: int):
    """vit-explain's discard: the lowest ``int(ratio * tokens**2)`` fused attentions set to zero,
    except entry ``(keep, keep)`` (its flat index 0, the class token's, for ``keep=0``)."""
    n = a.size
    k = int(n * ratio)
    if k == 0:
        return a
    flat = a.reshape(-1)
    lowest = jnp.argsort(flat, stable=True)[:k]
    drop = jnp.zeros(n, bool).at[lowest].set(True).at[keep * a.shape[-1] + keep].set(False)
    return jnp.where(drop, jnp.zeros_like(flat), flat).reshape(a.shape)


def _residual(a, residual: bool):
    """``0.5 A + 0.5 I`` (if ``residual``), each row renormalized to sum to 1 (an all-zero row
    stays zero)."""
    if residual:
        a = 0.5 * a + 0.5 * jnp.eye(a.shape[-1], dtype=a.dtype)
    total = jnp.sum(a, axis=-1, keepdims=True)
    return jnp.where(total > 0, a / jnp.where(total > 0, total, 1), 0)


def _layer_matrices(atts, head_fusion, discard_ratio, residual, keep) -> list:
    return [_residual(_discard(_fuse(a.weights, head_fusion), discard_ratio, keep), residual)
            for a in atts]


def attention_rollout(
    f: Callable,
    *,
    layers: Any = None,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    residual: bool = True,
    readout: int | None = 0,
    start: int = 0,
) -> Explainer:
    """Attention rollout: how much each input token reaches the output tokens through the layers'
    attention (Abnar & Zuidema 2020), read from ``f`` without editing the model.

    Per attention layer ``l`` (the softmaxes :func:`attention_weights` finds, in program order),
    the heads are fused (``head_fusion``: their mean, maximum or minimum), the lowest
    ``discard_ratio`` of the ``tokens**2`` fused weights are set to zero (as the vit-explain code
    does; entry ``(readout, readout)``, its "class token", is kept: ``(0, 0)`` with
    ``readout=None``), the residual connection is
    added, ``A_l = 0.5 A + 0.5 I`` (``residual=True``), and each row is renormalized to sum to 1.
    The rollout multiplies the layers in order, ``R = A_L ... A_{start+1} A_start``; ``R[i, j]``
    is the share of output token ``i`` that comes from input token ``j`` (each row sums to 1).
    Unlike vit-explain, rows are renormalized as the paper says (its code divides entry ``(i, j)``
    by the sum of row ``j``) and the map is not divided by its maximum. A row left all zero (by
    ``discard_ratio`` with ``residual=False``) stays zero.

    The explainer ``explain(x, *args)`` returns ``R[readout]``, shape ``(tokens,)`` (for a ViT
    with a class token at 0: that token's row, class token included; ``[1:]`` are the patches),
    or with ``readout=None`` the ``(tokens, tokens)`` matrix ``R``: not shaped like ``x``. It
    composes with ``jax.jit`` and ``jax.vmap`` like every jaxplain explainer.

    Args:
      f: ``f(x, *args)`` for one example, calling the Transformer (see :func:`attention_weights`).
      layers: which attention softmaxes to roll out (None: all); as ``layer`` of
        :func:`attention_weights`. They must be self-attention over the same tokens.
      head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over the heads.
      discard_ratio: in ``[0, 1)``: the fraction of the lowest fused attentions of each layer set
        to zero before the residual is added.
      residual: add the identity for the residual connection (``0.5 A + 0.5 I``); with False,
        the fused weights alone (rows still renormalized).
      readout: the output token whose row is returned (e.g. 0, the class token), or None for the
        whole matrix.
      start: the first of the selected layers the rollout starts at (the paper's layer ``j``; a
        negative index counts from the last): 0 rolls out to the input tokens.

    Returns:
      An :class:`~jaxplain.Explainer` ``explain(x, *args) -> (tokens,)`` (or ``(tokens, tokens)``).

    Raises:
      ValueError: on a bad option (at build time), or when ``f`` has no attention softmax,
        ``layers`` matches none, the layers are not square self-attention over one token count,
        or ``readout`` / ``start`` is out of range (when explaining).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> import flax.linen as nn
      >>> attn = nn.MultiHeadDotProductAttention(num_heads=2)
      >>> v = attn.init(jax.random.key(0), jnp.ones((1, 5, 8)))
      >>> f = lambda x: attn.apply(v, x[None]).sum()
      >>> r = jx.attention_rollout(f)(jax.random.normal(jax.random.key(1), (5, 8)))
      >>> r.shape, round(float(r.sum()), 5)
      ((5,), 1.0)
      >>> jax.vmap(jx.attention_rollout(f, readout=None))(jnp.ones((3, 5, 8))).shape
      (3, 5, 5)

    References:
      Abnar & Zuidema (2020), "Quantifying Attention Flow in Transformers", ACL,
      arXiv:2005.00928; Gildenblat, "Exploring Explainability for Vision Transformers"
      (vit-explain), https://github.com/jacobgil/vit-explain.
    """
    name = "attention_rollout"
    _checks.check_callable(name, "f", f)
    _patterns(name, "layers", layers)
    _checks.check_choice(name, "head_fusion", head_fusion, _FUSIONS)
    discard_ratio = _check_ratio(name, discard_ratio)
    residual = _checks.check_bool(name, "residual", residual)
    readout = _check_readout(name, readout, allow_none=True)
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise TypeError(f"jaxplain.{name}: start must be an int (an index into the selected "
                        f"layers), got {type(start).__name__} {start!r}.")
    start = int(start)

    def core(x, *args, **kwargs):
        atts = _attentions(name, f, x, args, kwargs, layers, "layers", every=True)
        n = _square(name, atts)
        if not -len(atts) <= start < len(atts):
            raise ValueError(f"jaxplain.{name}: start={start} is out of range for the "
                             f"{len(atts)} attention layers {[a.key for a in atts]}.")
        row = None if readout is None else _token_index(name, "readout", readout, n)
        mats = _layer_matrices(atts[start:], head_fusion, discard_ratio, residual,
                               0 if row is None else row)
        rollout = mats[0]
        for a in mats[1:]:
            rollout = a @ rollout
        return rollout if row is None else rollout[row]

    options = dict(layers=layers, head_fusion=head_fusion, discard_ratio=discard_ratio,
                   residual=residual, readout=readout, start=start)
    return make_explainer(name, f, core, options)


def _max_flows(mats: np.ndarray, sink_token: int, resolution: int) -> np.ndarray:
    """Max-flow from each input token (layer 0) to ``sink_token`` of the top layer through the
    layered graph: node ``l * T + i`` is token ``i`` after ``l`` layers, the edge from token ``j``
    of layer ``l - 1`` to token ``i`` of layer ``l`` has capacity ``mats[l - 1][i, j]``
    (rounded to multiples of ``1 / resolution``)."""
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import maximum_flow

    depth, t, _ = mats.shape
    caps = np.rint(np.asarray(mats, np.float64) * resolution).astype(np.int64)
    layer, i, j = np.nonzero(caps > 0)
    src, dst = layer * t + j, (layer + 1) * t + i
    size = (depth + 1) * t
    graph = csr_array((caps[layer, i, j].astype(np.int32), (src, dst)), shape=(size, size))
    graph.sum_duplicates()
    sink = depth * t + sink_token
    return np.array([maximum_flow(graph, s, sink).flow_value for s in range(t)], np.float64) / resolution


def attention_flow(
    f: Callable,
    *,
    layers: Any = None,
    head_fusion: str = "mean",
    residual: bool = True,
    readout: int = 0,
    normalize: bool = False,
    resolution: int = 1_000_000,
) -> Explainer:
    """Attention flow: the maximum flow from each input token to the output token ``readout``
    through the layers' attention (Abnar & Zuidema 2020), read from ``f`` without editing it.

    The graph has one node per token and layer (the input tokens, then each attention layer's
    outputs); the edge from token ``j`` below layer ``l`` to token ``i`` above it has capacity
    ``A_l[i, j]``, the heads fused (``head_fusion``) and residual-averaged, ``0.5 A + 0.5 I``,
    rows renormalized (as in :func:`attention_rollout`). ``explain(x, *args)`` returns the value
    of the maximum flow from each input token to token ``readout`` of the top layer, shape
    ``(tokens,)``; ``normalize=True`` divides it by its sum, as the authors' code does.

    The max-flows are computed with ``scipy.sparse.csgraph.maximum_flow`` (Dinic's algorithm) on
    integer capacities: each capacity is rounded to a multiple of ``1 / resolution``, so a flow is
    exact for the rounded graph and within ``(number of edges of a minimum cut) / (2 *
    resolution)`` of the exact one. This runs on concrete arrays, one max-flow per token: the
    explainer works eagerly (its attention weights are computed by a compiled program) but not
    under ``jax.jit``, ``jax.vmap`` or ``jax.grad``, where it raises; loop over examples instead.

    Args:
      f: ``f(x, *args)`` for one example, calling the Transformer (see :func:`attention_weights`).
      layers: which attention softmaxes make the graph (None: all), as in
        :func:`attention_rollout`.
      head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over the heads.
      residual: add the identity for the residual connection (``0.5 A + 0.5 I``).
      readout: the output token the flow goes to (e.g. 0, a class token).
      normalize: divide the flows by their sum.
      resolution: capacities are rounded to multiples of ``1 / resolution`` (an int in ``[1,
        10**9]``).

    Returns:
      An :class:`~jaxplain.Explainer` ``explain(x, *args) -> (tokens,)`` (float32).

    Raises:
      TypeError: when called under a JAX transformation (``jit``, ``vmap``, ``grad``).
      ValueError: as :func:`attention_rollout`.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> import flax.linen as nn
      >>> attn = nn.MultiHeadDotProductAttention(num_heads=2)
      >>> v = attn.init(jax.random.key(0), jnp.ones((1, 5, 8)))
      >>> f = lambda x: attn.apply(v, x[None]).sum()
      >>> x = jax.random.normal(jax.random.key(1), (5, 8))
      >>> flow = jx.attention_flow(f)(x)
      >>> flow.shape, bool(jnp.allclose(flow, jx.attention_rollout(f)(x), atol=1e-5))  # one layer
      ((5,), True)

    References:
      Abnar & Zuidema (2020), "Quantifying Attention Flow in Transformers", ACL,
      arXiv:2005.00928, https://github.com/samiraabnar/attention_flow; Dinic (1970), "Algorithm
      for solution of a problem of maximum flow in networks with power estimation".
    """
    name = "attention_flow"
    _checks.check_callable(name, "f", f)
    _patterns(name, "layers", layers)
    _checks.check_choice(name, "head_fusion", head_fusion, _FUSIONS)
    residual = _checks.check_bool(name, "residual", residual)
    readout = _check_readout(name, readout, allow_none=False)
    normalize = _checks.check_bool(name, "normalize", normalize)
    resolution = _checks.check_int(name, "resolution", resolution, minimum=1)
    if resolution > 10**9:
        raise ValueError(f"jaxplain.{name}: resolution must be at most 10**9 (capacities are int32), "
                         f"got {resolution}.")

    def core(x, *args, **kwargs):
        atts = _attentions(name, f, x, args, kwargs, layers, "layers", every=True)
        n = _square(name, atts)
        _token_index(name, "readout", readout, n)
        return jnp.stack(_layer_matrices(atts, head_fusion, 0.0, residual, 0))

    def finish(mats):
        if isinstance(mats, jax.core.Tracer):
            raise TypeError(
                f"jaxplain.{name}: attention flow solves max-flow problems on concrete arrays, so it "
                f"cannot run under jax.jit, jax.vmap or jax.grad (got a {type(mats).__name__}). Call "
                f"it outside them, e.g. [explain(x) for x in xs]; jaxplain.attention_rollout is "
                f"jittable."
            )
        mats = np.asarray(mats)
        flows = _max_flows(mats, readout % mats.shape[-1], resolution)
        if normalize:
            total = flows.sum()
            flows = flows / total if total > 0 else flows
        return jnp.asarray(flows, jnp.float32)

    options = dict(layers=layers, head_fusion=head_fusion, residual=residual, readout=readout,
                   normalize=normalize, resolution=resolution)
    return make_explainer(name, f, core, options, finish=finish)
