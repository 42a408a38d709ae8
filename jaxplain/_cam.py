"""The CAM family: class activation maps from a convolutional layer's channels.

Each map is a weighted sum of the layer's channels ``A_k``, ``M = sum_k w_k A_k``, optionally
through a ReLU and resized to the input's spatial size; the methods differ in the weights:

* :func:`cam` (Zhou et al. 2016): ``w_k`` the dense weight of channel ``k`` for the explained
  class, for models ending in global average pooling and one dense layer;
* :func:`grad_cam` (Selvaraju et al. 2017): ``w_k`` the spatial mean of ``dF/dA_k``, for any layer;
* :func:`grad_cam_plus_plus` (Chattopadhyay et al. 2018): positive gradients weighted per position;
* :func:`guided_grad_cam`: guided backpropagation times the Grad-CAM map.

Layout: activations are channels last. The layer's output ``A`` is ``(h, w, K)`` for one example,
or ``(1, h, w, K)`` for a closure that calls the model on ``x[None]`` (leading axes of size 1
are dropped; an ``f`` made by :mod:`jaxplain.flax` gives ``(h, w, K)`` already); the map
is ``(h, w)``. ``x`` is one image ``(H, W, C)`` (or ``(H, W)``); upsampling resizes the map to
``x.shape[:2]``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _checks, _taps
from jaxplain._contract import Explainer, make_explainer

__all__ = ["cam", "grad_cam", "grad_cam_plus_plus", "guided_grad_cam"]

INTERPOLATIONS = ("nearest", "bilinear")

# cam's structure check: relative deviations above this mean the layer is not followed by GAP +
# dense alone. Exact GAP + dense heads give deviations at float rounding level (~1e-7 in float32).
_CAM_TOLERANCE = 1e-3


def _spatial(name: str, a: Any) -> jax.Array:
    """The activation as ``(h, w, K)``: leading axes of size 1 (the batch the model saw) dropped."""
    if not isinstance(a, jax.Array) and not hasattr(a, "shape"):
        raise ValueError(
            f"jaxplain.{name}: the layer's output is a {type(a).__name__}, not one array; a class "
            f"activation map needs a convolutional layer whose output is (h, w, channels)."
        )
    shape = jnp.shape(a)
    if len(shape) < 3 or math.prod(shape[:-3]) != 1:
        raise ValueError(
            f"jaxplain.{name}: the layer's output has shape {shape}; a class activation map needs "
            f"a convolutional layer with output (h, w, channels) for one example (or (1, h, w, "
            f"channels) for a model called on x[None]), channels last. Pick a convolution's path "
            f"with jaxplain.layers(f, x, *args)."
        )
    return jnp.reshape(a, shape[-3:])


def _image_size(name: str, x: Any, fix: str = "Pass upsample=False to get the layer-sized map.") -> tuple[int, int]:
    if not isinstance(x, jax.Array) or jnp.ndim(x) < 2:
        what = f"shape {jnp.shape(x)}" if isinstance(x, jax.Array) else type(x).__name__
        raise ValueError(
            f"jaxplain.{name}: resizing the map to the input needs x to be one image of shape "
            f"(H, W, C) or (H, W), got {what}. {fix}"
        )
    return tuple(jnp.shape(x)[:2])


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    # torch.nn.functional.interpolate(mode="nearest"), which Captum uses: floor(d * n_in / n_out)
    # with a float32 scale, clamped to the last row (not the half-pixel rule of jax.image.resize).
    scale = np.float32(n_in) / np.float32(n_out)
    idx = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(idx, n_in - 1)


def _resize(m: jax.Array, size: tuple[int, int], interpolation: str) -> jax.Array:
    """Resizes an (h, w) map to ``size`` like ``torch.nn.functional.interpolate``.

    ``"bilinear"``: half-pixel centres, ``align_corners=False``, no antialiasing (also when
    shrinking); ``"nearest"``: torch's (and Captum's) ``floor(d * h / H)`` rule.
    """
    if tuple(m.shape) == tuple(size):
        return m
    if interpolation == "nearest":
        rows, cols = _nearest_index(m.shape[0], size[0]), _nearest_index(m.shape[1], size[1])
        return m[rows][:, cols]
    return jax.image.resize(m, size, "bilinear", antialias=False).astype(m.dtype)


def _tokens_to_grid(name, a, reshape):
    """A token layer ``(L, K)`` as a patch grid ``(h, w, K)``: the leading ``L - h w`` tokens
    (class tokens) dropped, as pytorch-grad-cam's ``reshape_transform`` for ViTs."""
    if callable(reshape):
        out = reshape(a)
        if jnp.ndim(out) != 3:
            raise ValueError(f"jaxplain.{name}: reshape(A) must return an (h, w, channels) array, got "
                             f"shape {jnp.shape(out)} from A of shape {jnp.shape(a)}.")
        return out
    h, w = reshape
    if jnp.ndim(a) != 2 or a.shape[0] < h * w:
        raise ValueError(f"jaxplain.{name}: reshape={reshape} needs a token layer (L, K) with L >= "
                         f"{h * w}, got shape {jnp.shape(a)}.")
    return jnp.reshape(a[a.shape[0] - h * w:], (h, w, a.shape[1]))


def _check_reshape(name, reshape):
    if reshape is None or callable(reshape):
        return reshape
    if (isinstance(reshape, tuple) and len(reshape) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in reshape)):
        return reshape
    raise TypeError(f"jaxplain.{name}: reshape must be None, a grid (h, w) of positive ints (tokens to "
                    f"patches, leading class tokens dropped) or a callable A -> (h, w, channels), got "
                    f"{reshape!r}.")


def _grad_cam_map(name, sp, x, args, kwargs, upsample, relu, summed, reshape=None):
    """Grad-CAM on a layer of any layout, as Captum's ``LayerGradCam``: ``(h, w, K)`` (a
    convolution), ``(L, K)`` (a sequence: the mean over ``L``) or ``(K,)`` (a dense layer: the
    gradient itself weights each unit); leading axes of size 1 are the batch the model saw (down
    to two axes, and ``(1, K)`` is one dense output)."""
    a, g = _taps.layer_gradient(sp, x, args, kwargs)
    if not hasattr(a, "shape"):
        _spatial(name, a)  # raises: one array is needed
    shape = jnp.shape(a)
    lead = 0
    while len(shape) - lead > 2 and shape[lead] == 1:
        lead += 1
    core_shape = shape[lead:]
    if len(core_shape) > 3 or not core_shape:
        _spatial(name, a)  # raises with the layout it needs (a scalar has no units to weight)
    if len(core_shape) == 2 and core_shape[0] == 1:
        core_shape = core_shape[1:]
    a, g = jnp.reshape(a, core_shape), jnp.reshape(g, core_shape)
    if reshape is not None:
        a, g = _tokens_to_grid(name, a, reshape), _tokens_to_grid(name, g, reshape)
        core_shape = a.shape
    elif len(core_shape) == 2 and upsample and isinstance(x, jax.Array) and jnp.ndim(x) == 3:
        raise ValueError(
            f"jaxplain.{name}: the layer's output {shape} is a sequence of {core_shape[0]} tokens, "
            f"but x is an image {jnp.shape(x)}: a (tokens,) map stretched over it would be "
            f"meaningless. For a ViT pass reshape=(h, w), the patch grid (leading class tokens "
            f"dropped), or a callable A -> (h, w, channels); or upsample=False for the map per token."
        )
    space = tuple(range(len(core_shape) - 1))
    w = jnp.mean(g, axis=space) if space else g
    m = a * w.astype(a.dtype)
    if summed:
        m = jnp.sum(m, axis=-1)
    if relu:
        m = jax.nn.relu(m)
    if not upsample:
        return m
    if not space:
        raise ValueError(
            f"jaxplain.{name}: the layer's output has shape {shape}, one value per unit with no "
            f"spatial axis, so the map cannot be resized to the input; pass upsample=False."
        )
    if len(space) == 1:
        if not isinstance(x, jax.Array) or jnp.ndim(x) < 1:
            raise ValueError(f"jaxplain.{name}: resizing a sequence map needs x to be one array "
                             f"whose first axis is the sequence, got {type(x).__name__}; pass "
                             f"upsample=False.")
        size = (jnp.shape(x)[0],) + (() if summed else (m.shape[-1],))
        return m if m.shape == size else jax.image.resize(m, size, "linear", antialias=False)
    size = _image_size(name, x)
    if summed:
        return _resize(m, size, "bilinear")
    return jax.vmap(lambda c: _resize(c, size, "bilinear"), in_axes=2, out_axes=2)(m)


def _finish(name, m, x, upsample, relu, interpolation="bilinear"):
    if relu:
        m = jax.nn.relu(m)
    if upsample:
        m = _resize(m, _image_size(name, x), interpolation)
    return m


def _weighted_map(name, sp, x, args, kwargs, weights_of):
    """``(sum_k w_k A_k, A, dF/dA)`` with ``w = weights_of(A, dF/dA)``, all spatial (h, w, K)."""
    a, g = _taps.layer_gradient(sp, x, args, kwargs)
    a, g = _spatial(name, a), _spatial(name, g)
    w = weights_of(a, g)
    return jnp.einsum("hwk,k->hw", a, w.astype(a.dtype)), a, g


def _grad_cam_weights(a, g):
    # Selvaraju et al. eq. (1): alpha_k = (1/Z) sum_ij dy/dA_kij.
    return jnp.mean(g, axis=(0, 1))


def _grad_cam_pp_weights(a, g):
    # Chattopadhyay et al. eq. (19) with Y = exp(S): alpha_kij = g^2 / (2 g^2 + sum_ab A_kab g^3),
    # and eq. (10): w_k = sum_ij alpha_kij relu(g_kij). Where g == 0 the numerator vanishes and
    # alpha is set to 0 (pytorch-grad-cam adds 1e-6 to the denominator instead, which shifts the
    # weights when |g| is near 1e-3).
    g2 = g * g
    denom = 2 * g2 + jnp.sum(a, axis=(0, 1)) * g2 * g
    ok = (g != 0) & (denom != 0)
    alpha = jnp.where(ok, g2 / jnp.where(ok, denom, 1), 0)
    return jnp.sum(alpha * jax.nn.relu(g), axis=(0, 1))


def _options(name, f, layer, features, head, upsample, relu, layer_input=False):
    upsample = _checks.check_bool(name, "upsample", upsample)
    relu = _checks.check_bool(name, "relu", relu)
    sp = _taps.split(name, f, layer, features, head, layer_input=layer_input, many=False)
    options = dict(layer=layer) if f is not None else dict(features=features, head=head)
    options.update(upsample=upsample, relu=relu)
    if layer_input:
        options["attribute_to_layer_input"] = True
    return sp, upsample, relu, options


def _weighted_explainer(name, f, layer, features, head, upsample, relu, weights_of):
    sp, upsample, relu, options = _options(name, f, layer, features, head, upsample, relu)

    def core(x, *args, **kwargs):
        m, _, _ = _weighted_map(name, sp, x, args, kwargs, weights_of)
        return _finish(name, m, x, upsample, relu)

    return make_explainer(name, f if f is not None else features, core, options, integers=True)


def grad_cam(
    f: Callable | None = None,
    *,
    layer: str | None = None,
    features: Callable | None = None,
    head: Callable | None = None,
    upsample: bool = True,
    relu: bool = True,
    attr_dim_summation: bool = True,
    attribute_to_layer_input: bool = False,
    reshape: Any = None,
) -> Explainer:
    """Grad-CAM: the layer's channels weighted by the spatial mean of ``dF/dA``.

    ``map = relu(sum_k alpha_k A_k)`` with ``alpha_k = mean_ij dF/dA_kij`` (Selvaraju et al. eqs.
    1-2), resized bilinearly to the input. With ``relu=False, upsample=False`` it equals Captum's
    ``LayerGradCam`` (whose ``relu_attributions`` is off by default; Captum returns
    ``(N, 1, h, w)``); with ``upsample=True`` it equals Captum's map passed through
    ``LayerAttribution.interpolate(..., interpolate_mode="bilinear")``. On a model whose ``layer``
    is followed by global average pooling and a dense layer, ``grad_cam * h * w == cam``.

    Like Captum's, it takes any layer: a sequence layer ``(L, K)`` gives an ``(L,)`` map (the
    mean over ``L``; upsampling resizes it linearly to ``x.shape[0]``), a dense layer ``(K,)``
    weights each unit by its own gradient and gives one value (``upsample=False`` is needed).

    Args:
      f: ``f(x, *args) -> scalar`` for one example, with ``layer`` the path of a convolutional
        layer called inside it (``jaxplain.layers(f, x, *args)`` lists them). Or leave ``f`` out
        and pass ``features(x) -> A`` and ``head(A, *args) -> scalar``.
      layer: the module path, e.g. ``"stage1"`` or ``"backbone/block2/conv"``.
      features: ``features(x) -> A``, the layer's output (with ``head``, instead of ``f``).
      head: ``head(A, *args) -> scalar``, the rest of the model.
      upsample: resize the ``(h, w)`` map to ``x.shape[:2]`` (bilinear, half-pixel centres, like
        ``torch.nn.functional.interpolate(..., align_corners=False)``).
      relu: keep only the positive evidence, as in the paper.
      attr_dim_summation: sum the weighted channels into one map (the paper); if false, keep one
        map per channel, ``alpha_k A_k`` with the channel axis last (Captum's option).
      attribute_to_layer_input: weight the channels of the module's first positional input
        instead of its output (Captum's option).
      reshape: for a token layer ``(L, K)`` of a Vision Transformer: the patch grid ``(h, w)``
        (the leading ``L - h w`` class tokens dropped) or a callable ``A -> (h, w, K)``, as
        pytorch-grad-cam's ``reshape_transform``. A token layer on an image input without it
        raises (its map would be a strip stretched over the image).

    Returns:
      ``explain(x, *args)`` returning the map, ``(H, W)`` (or ``(h, w)`` without ``upsample``;
      ``(..., K)`` with ``attr_dim_summation=False``).

    Raises:
      TypeError: ``upsample``/``relu`` is not a bool, or ``f``/``layer``/``features``/``head``
        are missing or mixed (at build time).
      ValueError: no layer ``layer`` is called inside ``f`` (the message lists the valid paths),
        or its output is not ``(h, w, channels)`` (when called).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(8,), classes=4)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> jx.grad_cam(f, layer="stage0")(jnp.ones((16, 16, 3)), 2).shape
      (16, 16)

    References:
      Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra (2017), "Grad-CAM: Visual Explanations
      from Deep Networks via Gradient-based Localization", ICCV.
    """
    name = "grad_cam"
    sp, upsample, relu, options = _options(name, f, layer, features, head, upsample, relu,
                                           attribute_to_layer_input)
    summed = _checks.check_bool(name, "attr_dim_summation", attr_dim_summation)
    if not summed:
        options["attr_dim_summation"] = False
    reshape = _check_reshape(name, reshape)
    if reshape is not None:
        options["reshape"] = reshape

    def core(x, *args, **kwargs):
        return _grad_cam_map(name, sp, x, args, kwargs, upsample, relu, summed, reshape)

    return make_explainer(name, f if f is not None else features, core, options, integers=True)


def grad_cam_plus_plus(
    f: Callable | None = None,
    *,
    layer: str | None = None,
    features: Callable | None = None,
    head: Callable | None = None,
    upsample: bool = True,
    relu: bool = True,
) -> Explainer:
    """Grad-CAM++: channels weighted by their positive gradients, with per-position coefficients.

    ``w_k = sum_ij alpha_kij relu(g_kij)`` with ``g = dF/dA`` and
    ``alpha_kij = g_kij^2 / (2 g_kij^2 + sum_ab A_kab g_kij^3)`` (0 where ``g_kij = 0``): the closed
    form of Chattopadhyay et al. eq. (19), derived for an exponential output ``Y = exp(S)`` of the
    explained score ``S = f(x)``, as in the common implementations (pytorch-grad-cam). Then
    ``map = relu(sum_k w_k A_k)``, resized to the input. Options as in :func:`grad_cam`.

    Args:
      f: ``f(x, *args) -> scalar`` for one example (a logit), with ``layer`` a convolutional layer
        called inside it; or ``features`` and ``head`` instead.
      layer: the module path.
      features: ``features(x) -> A`` (with ``head``, instead of ``f``).
      head: ``head(A, *args) -> scalar``.
      upsample: resize the map bilinearly to ``x.shape[:2]``.
      relu: apply a ReLU to the map.

    Returns:
      ``explain(x, *args)`` returning the map, ``(H, W)`` (or ``(h, w)`` without ``upsample``).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(8,), classes=4)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> m = jx.grad_cam_plus_plus(f, layer="stage0", upsample=False)(jnp.ones((16, 16, 3)), 1)
      >>> m.shape, bool(m.min() >= 0)
      ((16, 16), True)

    References:
      Chattopadhyay, Sarkar, Howlader & Balasubramanian (2018), "Grad-CAM++: Improved Visual
      Explanations for Deep Convolutional Networks", WACV.
    """
    return _weighted_explainer(
        "grad_cam_plus_plus", f, layer, features, head, upsample, relu, _grad_cam_pp_weights
    )


def cam(
    f: Callable | None = None,
    *,
    layer: str | None = None,
    features: Callable | None = None,
    head: Callable | None = None,
    upsample: bool = True,
    relu: bool = True,
) -> Explainer:
    """CAM: ``map = sum_k w_k A_k`` with ``w_k`` the dense weight of channel ``k`` for the class,
    for a model whose ``layer`` is followed by global average pooling (GAP) and one dense layer.

    The weights are read off the gradient, so no parameter needs to be named: if
    ``F(A) = b + sum_k w_k mean_ij A_kij``, then ``dF/dA_kij = w_k / (h w)`` at every position and
    ``w_k = h w * mean_ij dF/dA_kij``. The class bias ``b`` is not part of the map (as in Zhou et
    al.). Hence ``cam == h * w * grad_cam`` on such a model, with the same ``relu`` and
    ``upsample``: Grad-CAM generalizes CAM up to the constant ``1/(h w)``, which normalizing the map
    for display removes (Selvaraju et al., sec. 3.1).

    The structure is checked numerically with every call: ``dF/dA`` must be the same at every
    position, the same at ``A = 0`` as at the actual activation, and
    ``F(A) - F(0) = sum(dF/dA * A)`` (``F`` affine along that segment). These are necessary
    conditions for GAP + dense (a passing check does not prove the structure; a failing one proves
    it absent). Called directly, the explainer raises a ``ValueError`` when they fail; under
    ``jax.jit`` or ``jax.vmap`` an error cannot be raised from traced values, so the check is
    skipped (and compiled away): call it once directly on one example to validate a model.
    Explain logits: a softmax output is not affine in ``A``.

    Args:
      f: ``f(x, *args) -> scalar`` for one example (a logit), with ``layer`` the last
        convolutional layer, the one whose output is pooled; or ``features`` and ``head``
        instead.
      layer: the module path, e.g. ``"stage1"``.
      features: ``features(x) -> A`` (with ``head``, instead of ``f``).
      head: ``head(A, *args) -> scalar``, GAP + dense.
      upsample: resize the map bilinearly to ``x.shape[:2]``.
      relu: apply a ReLU to the map (as displayed in the papers; Zhou et al.'s map itself has
        none).

    Returns:
      ``explain(x, *args)`` returning the map, ``(H, W)`` (or ``(h, w)`` without ``upsample``).

    Raises:
      ValueError: (when called directly) the layer is not followed by GAP + dense alone.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(8,), classes=4)   # convolutions, GAP, Dense "head"
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> x = jnp.ones((16, 16, 3))
      >>> m = jx.cam(f, layer="stage0", upsample=False)(x, 1)
      >>> g = jx.grad_cam(f, layer="stage0", upsample=False)(x, 1)
      >>> bool(jnp.allclose(m, g * 16 * 16, rtol=1e-5, atol=1e-6))
      True

    References:
      Zhou, Khosla, Lapedriza, Oliva & Torralba (2016), "Learning Deep Features for
      Discriminative Localization", CVPR.
    """
    name = "cam"
    sp, upsample, relu, options = _options(name, f, layer, features, head, upsample, relu)

    def core(x, *args, **kwargs):
        m, a, g = _weighted_map(
            name, sp, x, args, kwargs, lambda a, g: a.shape[0] * a.shape[1] * jnp.mean(g, (0, 1))
        )
        return _finish(name, m, x, upsample, relu), _structure_stats(sp, x, args, kwargs, a, g)

    where = f"layer {layer!r}" if f is not None else "the output of features"

    def finish(out):
        m, stats = out
        if not isinstance(stats, jax.core.Tracer):
            _raise_unless_gap_dense(name, where, np.asarray(stats))
        return m

    return make_explainer(name, f if f is not None else features, core, options, finish=finish)


def _structure_stats(sp, x, args, kwargs, a, g):
    """Relative deviations from GAP + dense: [gradient varies over positions, gradient at A = 0
    differs, F(A) - F(0) != sum(g * A)]."""
    act = sp.activation(x, *args, **kwargs)
    rest = lambda z: sp.rest(x, z, *args, **kwargs)
    f_a = rest(act)
    f_0, g_0 = jax.value_and_grad(rest)(jax.tree_util.tree_map(jnp.zeros_like, act))
    g_0 = jnp.reshape(g_0, g.shape)
    tiny = jnp.finfo(g.dtype).tiny
    scale = jnp.max(jnp.abs(g)) + tiny
    varies = jnp.max(jnp.abs(g - jnp.mean(g, axis=(0, 1)))) / scale
    moves = jnp.max(jnp.abs(g_0 - g)) / scale
    linear = jnp.sum(g * a)
    size = jnp.abs(f_a) + jnp.abs(f_0) + jnp.sum(jnp.abs(g * a)) + tiny
    bends = jnp.abs(f_a - f_0 - linear) / size
    return jnp.stack([varies, moves, bends]).astype(jnp.float32)


def _raise_unless_gap_dense(name, where, stats):
    varies, moves, bends = (float(s) for s in stats)
    if max(varies, moves, bends) <= _CAM_TOLERANCE and np.all(np.isfinite(stats)):
        return
    if varies > _CAM_TOLERANCE:
        why = f"the gradient dF/dA varies over positions (by {varies:.2g} of its largest value)"
    elif moves > _CAM_TOLERANCE:
        why = f"the gradient dF/dA changes when A is set to 0 (by {moves:.2g} of its largest value)"
    else:
        why = f"F is not affine in A (F(A) - F(0) - sum(dF/dA * A) is {bends:.2g} of its scale)"
    raise ValueError(
        f"jaxplain.{name}: CAM needs {where} to be followed by global average pooling and one "
        f"dense layer only (A -> GAP -> dense -> the explained logit), but {why}. Tap the last "
        f"convolutional output, the one that is pooled; explain a logit, not a softmax "
        f"probability; or use jaxplain.grad_cam, which needs no such head."
    )


def guided_grad_cam(
    f: Callable | None = None,
    *,
    layer: str | None = None,
    features: Callable | None = None,
    head: Callable | None = None,
    interpolation: str = "nearest",
) -> Explainer:
    """Guided Grad-CAM: guided backpropagation times the Grad-CAM map resized to the input.

    ``attribution = guided_backprop(x) * resize(relu(grad_cam(x)))``, the map broadcast over the
    input's channels; shaped like ``x`` (``(H, W, C)``). As Captum's ``GuidedGradCam``: the
    Grad-CAM map with its ReLU, resized by nearest neighbour (torch's ``floor(d * h / H)`` rule,
    the default here) or ``interpolation="bilinear"``. The guided backpropagation part changes
    every ReLU of ``f`` (or of ``head(features(x))``), see :func:`jaxplain.guided_backprop`.

    Args:
      f: ``f(x, *args) -> scalar`` for one example, with ``layer`` a convolutional layer called
        inside it; or ``features`` and ``head`` instead.
      layer: the module path.
      features: ``features(x) -> A`` (with ``head``, instead of ``f``).
      head: ``head(A, *args) -> scalar``.
      interpolation: ``"nearest"`` (Captum's default) or ``"bilinear"``.

    Returns:
      ``explain(x, *args)`` returning the attribution shaped like ``x``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(8,), classes=4)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> jx.guided_grad_cam(f, layer="stage0")(jnp.ones((16, 16, 3)), 2).shape
      (16, 16, 3)

    References:
      Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra (2017), "Grad-CAM: Visual Explanations
      from Deep Networks via Gradient-based Localization", ICCV (Guided Grad-CAM); Springenberg,
      Dosovitskiy, Brox & Riedmiller (2015), "Striving for Simplicity: The All Convolutional Net",
      ICLR workshop.
    """
    name = "guided_grad_cam"
    from jaxplain import guided_backprop  # another family, by its public name

    interpolation = _checks.check_choice(name, "interpolation", interpolation, INTERPOLATIONS)
    sp = _taps.split(name, f, layer, features, head, many=False)
    if f is not None:
        full, options = f, dict(layer=layer)
    else:
        full = lambda x, *a, **k: head(features(x), *a, **k)
        options = dict(features=features, head=head)
    options["interpolation"] = interpolation
    guided = guided_backprop(full)

    def core(x, *args, **kwargs):
        size = _image_size(name, x, "Guided Grad-CAM multiplies the map with the input's gradient, "
                           "so it needs one image; for other inputs use jaxplain.grad_cam(..., upsample=False).")
        m, _, _ = _weighted_map(name, sp, x, args, kwargs, _grad_cam_weights)
        m = _resize(jax.nn.relu(m), size, interpolation)
        gb = guided(x, *args, **kwargs)
        return gb * m.reshape(m.shape + (1,) * (gb.ndim - 2)).astype(gb.dtype)

    return make_explainer(name, f if f is not None else features, core, options)
