"""The CAM family: class activation maps from a convolutional layer's channels.

Each map is a weighted sum of the layer's channels ``A_k`` (channels last: an activation of shape
``(h, w, K)``, or ``(1, h, w, K)`` for a model called on ``x[None]``), optionally through a ReLU and
resized (bilinear) to the input's spatial size ``x.shape[:2]``. The methods differ in the weights.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _contract as C
from jaxplain import _taps
from jaxplain._layers import _layer_grad
from jaxplain._modified_backprop import relu_rule_gradient

__all__ = ["cam", "grad_cam", "grad_cam_plus_plus", "guided_grad_cam"]


def _check_flags(name, upsample, relu):
    for flag, value in (("upsample", upsample), ("relu", relu)):
        if not isinstance(value, bool):
            raise TypeError(f"jaxplain.{name}: {flag} must be a bool, got {value!r}.")


def _spatial(name, a):
    """The activation as ``(h, w, K)``: leading axes of size 1 (the batch the model saw) dropped."""
    if jnp.ndim(a) < 3 or math.prod(jnp.shape(a)[:-3]) != 1:
        raise ValueError(
            f"jaxplain.{name}: the layer's output has shape {jnp.shape(a)}; a class activation map "
            f"needs a convolutional layer with output (h, w, channels) for one example (or "
            f"(1, h, w, channels)). Pick a convolution's path with jaxplain.layers(f, x, *args)."
        )
    return a.reshape(jnp.shape(a)[-3:])


def _finish(m, x, upsample, relu, interpolation="bilinear"):
    if relu:
        m = jax.nn.relu(m)
    if upsample:
        size = jnp.shape(x)[:2]
        m = jax.image.resize(m, size, interpolation).astype(m.dtype)
    return m


def _make(name, f, layer, features, head, upsample, relu, weights_of):
    _check_flags(name, upsample, relu)
    sp = _taps.split(name, f, layer, features, head)

    def core(x, *args, **kwargs):
        a, g = _layer_grad(sp, x, args, kwargs)
        a, g = _spatial(name, a), _spatial(name, g)
        m = jnp.einsum("hwk,k->hw", a, weights_of(a, g))
        return _finish(m, x, upsample, relu)

    return sp, core


def grad_cam(f=None, *, layer=None, features=None, head=None, upsample=True, relu=True) -> C.Explainer:
    """Grad-CAM: channels weighted by the spatial mean of ``dF/dA``.

    ``map = relu(sum_k alpha_k A_k)`` with ``alpha_k = mean_ij dF/dA_kij``, resized to the input.
    With ``relu=False, upsample=False`` it equals Captum's ``LayerGradCam`` (whose
    ``relu_attributions`` is off by default).

    Args:
      f, layer: the function and the path of a convolutional layer called inside it (or
        ``features``/``head``, see :func:`jaxplain.layers`).
      upsample: resize the (h, w) map bilinearly to ``x.shape[:2]``.
      relu: keep only the positive evidence, as in the paper.

    Returns:
      ``explain(x, *args)`` returning the map, ``(H, W)`` (or ``(h, w)`` without ``upsample``).

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
    _, core = _make(name, f, layer, features, head, upsample, relu, lambda a, g: g.mean(axis=(0, 1)))
    return C.make_explainer(name, f or features, core, dict(layer=layer, upsample=upsample, relu=relu))


def grad_cam_plus_plus(
    f=None, *, layer=None, features=None, head=None, upsample=True, relu=True
) -> C.Explainer:
    """Grad-CAM++: channels weighted by positive gradients with pixel-wise coefficients.

    ``w_k = sum_ij alpha_kij relu(g_kij)`` with
    ``alpha_kij = g^2 / (2 g^2 + sum_ab A_kab * g^3)`` (0 where the gradient is 0), the closed
    form of Chattopadhyay et al. eq. (19) for an exponential output, as in the reference
    implementations. Options and return value as in :func:`grad_cam`.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(8,), classes=4)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> jx.grad_cam_plus_plus(f, layer="stage0", upsample=False)(jnp.ones((16, 16, 3)), 1).shape
      (16, 16)

    References:
      Chattopadhyay, Sarkar, Howlader & Balasubramanian (2018), "Grad-CAM++: Improved Visual
      Explanations for Deep Convolutional Networks", WACV.
    """
    name = "grad_cam_plus_plus"

    def weights(a, g):
        g2, g3 = g * g, g * g * g
        denom = 2 * g2 + jnp.sum(a, axis=(0, 1)) * g3
        safe = jnp.where(denom != 0, denom, 1)
        alpha = jnp.where((g != 0) & (denom != 0), g2 / safe, 0)
        return jnp.sum(alpha * jax.nn.relu(g), axis=(0, 1))

    _, core = _make(name, f, layer, features, head, upsample, relu, weights)
    return C.make_explainer(name, f or features, core, dict(layer=layer, upsample=upsample, relu=relu))


def cam(f=None, *, layer=None, features=None, head=None, upsample=True, relu=True) -> C.Explainer:
    """CAM: for a model whose ``layer`` is followed by global average pooling and a dense layer,
    ``map = sum_k w_k A_k`` with ``w_k`` the dense weight of channel ``k`` for the explained class.

    The weights are read off the gradient: after GAP + dense, ``dF/dA_kij = w_k / (h w)`` at every
    position, so ``w_k = h w * dF/dA_kij``. Called eagerly (outside ``jit``/``vmap``), the explainer
    first checks that structure (the gradient constant over positions, and ``F`` affine in ``A``)
    and raises a ``ValueError`` explaining the requirement when the model lacks it; under a
    transform the check cannot run and the map is ``h w`` times Grad-CAM's pre-ReLU map. Grad-CAM
    generalizes CAM: on such a model ``grad_cam * h * w == cam``.

    Options and return value as in :func:`grad_cam`.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(8,), classes=4)   # convolutions, GAP, Dense "head"
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> x = jnp.ones((16, 16, 3))
      >>> m = jx.cam(f, layer="stage0", relu=False, upsample=False)(x, 1)
      >>> g = jx.grad_cam(f, layer="stage0", relu=False, upsample=False)(x, 1)
      >>> bool(jnp.allclose(m, g * 16 * 16, rtol=1e-5, atol=1e-6))
      True

    References:
      Zhou, Khosla, Lapedriza, Oliva & Torralba (2016), "Learning Deep Features for
      Discriminative Localization", CVPR.
    """
    name = "cam"

    def weights(a, g):
        h, w = a.shape[:2]
        return h * w * g.mean(axis=(0, 1))

    sp, core = _make(name, f, layer, features, head, upsample, relu, weights)
    jitted = C.make_explainer(name, f or features, core, dict(layer=layer, upsample=upsample, relu=relu))

    def explain(x, *args, **kwargs):
        leaves = jax.tree_util.tree_leaves((x, args, kwargs))
        if not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
            _check_gap_dense(name, sp, x, args, kwargs, layer)
        return jitted(x, *args, **kwargs)

    return C.Explainer(explain, method=name, f=jitted.f, options=jitted.options, needs_key=False)


def _check_gap_dense(name, sp, x, args, kwargs, layer):
    x = C.check_input(name, x)
    a, g = _layer_grad(sp, x, args, kwargs)
    a, g = np.asarray(_spatial(name, a), np.float64), np.asarray(_spatial(name, g), np.float64)
    scale = max(np.abs(g).max(), 1e-30)
    varies = np.abs(g - g.mean(axis=(0, 1))).max() / scale
    # Affine in A: the gradient at a different activation is the same.
    other = sp.forward(x, lambda act: act * 0.5 + 1.0, *args, **kwargs)[1]
    g2 = jax.grad(lambda z: sp.rest(x, z, *args, **kwargs))(other * 0.5 + 1.0)
    changes = np.abs(np.asarray(_spatial(name, g2), np.float64) - g).max() / scale
    if varies > 1e-4 or changes > 1e-4:
        raise ValueError(
            f"jaxplain.{name}: CAM needs layer {layer!r} to be followed by global average pooling "
            f"and a dense layer only, but the model's gradient at that layer "
            + ("varies over positions" if varies > 1e-4 else "depends on the activation")
            + " (so something else follows it). Use jaxplain.grad_cam, which needs no such head, "
            "or tap the last convolution before the GAP + dense head."
        )


def guided_grad_cam(
    f=None, *, layer=None, features=None, head=None, interpolation: str = "nearest"
) -> C.Explainer:
    """Guided Grad-CAM: guided backpropagation times the Grad-CAM map resized to the input.

    ``attribution = guided_backprop(x) * resize(relu(grad_cam(x)))``, the map broadcast over the
    input's channels; shaped like ``x`` (``(H, W, C)``). Captum's ``GuidedGradCam`` resizes with
    nearest-neighbour interpolation, the default here; ``interpolation="bilinear"`` smooths it.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(8,), classes=4)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> jx.guided_grad_cam(f, layer="stage0")(jnp.ones((16, 16, 3)), 2).shape
      (16, 16, 3)

    References:
      Selvaraju et al. (2017), "Grad-CAM", ICCV (section 3.1, Guided Grad-CAM); Springenberg et
      al. (2015), "Striving for Simplicity: The All Convolutional Net", ICLR workshop.
    """
    name = "guided_grad_cam"
    C.check_choice(name, "interpolation", interpolation, ("nearest", "bilinear"))
    sp = _taps.split(name, f, layer, features, head)
    full = f if f is not None else (lambda x, *a, **k: head(features(x), *a, **k))
    guided = relu_rule_gradient(full, "guided")

    def core(x, *args, **kwargs):
        a, g = _layer_grad(sp, x, args, kwargs)
        a, g = _spatial(name, a), _spatial(name, g)
        m = _finish(jnp.einsum("hwk,k->hw", a, g.mean(axis=(0, 1))), x, True, True, interpolation)
        gb = guided(x, *args, **kwargs)
        return gb * m.reshape(m.shape + (1,) * (gb.ndim - 2)).astype(gb.dtype)

    return C.make_explainer(name, f or features, core, dict(layer=layer, interpolation=interpolation))
