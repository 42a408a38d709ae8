"""A small model zoo for the tests and the demo: an MLP, a VGG-style CNN, a ResNet-style CNN, a
Vision Transformer and a text Transformer encoder, in Flax Linen and in Flax NNX, with
:func:`linen_to_nnx` to run the same weights in both.

========================  ============================  ==========================================
Linen                     NNX                           submodules (the Linen ``params`` tree, NNX
                                                        attributes)
========================  ============================  ==========================================
:class:`MLP`              :class:`MLPNNX`               ``dense0 .. dense{k-1}``, ``head``
:class:`VGG`              :class:`VGGNNX`               ``stage{i}/conv0``, ``stage{i}/conv1``,
                                                        ``head``
:class:`ResNet`           :class:`ResNetNNX`            ``stem_conv``, ``stem_bn``,
                                                        ``stage{i}/block{j}/conv0 bn0 conv1 bn1``
                                                        (+ ``proj``, ``proj_bn`` when the shape
                                                        changes), ``head``
:class:`ViT`              :class:`ViTNNX`               ``patch_embed``, ``block{i}/ln0 attn ln1
                                                        dense0 dense1``, ``ln``, ``head`` (and the
                                                        parameters ``cls_token``, ``pos_embed``)
:class:`TextTransformer`  :class:`TextTransformerNNX`   ``embed``, ``block{i}/...`` as in the ViT,
                                                        ``ln``, ``head`` (and ``pos_embed``,
                                                        ``cls_token`` with ``readout="cls"``)
========================  ============================  ==========================================

The NNX models mirror the Linen paths attribute by attribute (``vgg.stage1.conv1`` holds what
``variables["params"]["stage1"]["conv1"]`` holds), so a layer is named the same way in both
frameworks. The CNNs end in global average pooling and one dense layer named ``head``, so CAM
applies. Inputs are batches, ``(N, H, W, C)`` for the CNNs and ``(N, ...)`` for the MLP (which
flattens all but the batch axis); outputs are ``(N, classes)`` logits. The Transformers
(:mod:`jaxplain._zoo_transformers`, built from stock Flax modules: ``nn.Conv`` patches,
``nn.Embed``, ``nn.LayerNorm``, ``nn.MultiHeadDotProductAttention`` / ``nnx.MultiHeadAttention``)
take ``(N, H, W, C)`` images (:class:`ViT`) or ``(N, L)`` integer tokens with an optional padding
token (:class:`TextTransformer`); the attention softmax runs inside the module ``block{i}/attn``.

Modes: :class:`ResNet` (BatchNorm) takes ``train`` (``model.apply(v, x, train=True,
mutable=["batch_stats"])`` to train; ``train=False``, the default, for inference). An NNX model
is in training mode when built, as NNX modules are: calling :class:`ResNetNNX` updates its running
statistics in place. For inference use ``nnx.view(model, use_running_average=True)`` or
``model.eval()``; :func:`jaxplain.flax.from_nnx` does so itself.

Example:
  >>> import jax, jax.numpy as jnp, jaxplain.flax as jxf
  >>> from flax import nnx
  >>> from jaxplain.zoo import VGG, VGGNNX, linen_to_nnx
  >>> x = jnp.ones((1, 8, 8, 3))
  >>> vgg = VGG(features=(4, 8), classes=3)
  >>> variables = vgg.init(jax.random.key(0), x)
  >>> twin = linen_to_nnx(vgg, variables, VGGNNX(features=(4, 8), classes=3, rngs=nnx.Rngs(0)))
  >>> bool(jnp.allclose(vgg.apply(variables, x), twin(x), atol=1e-6))
  True
  >>> f, g = jxf.from_linen(vgg, variables), jxf.from_nnx(twin)
  >>> bool(jnp.allclose(f(x[0], 2), g(x[0], 2), atol=1e-6))
  True
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax import nnx, traverse_util

from jaxplain import _checks
from jaxplain._zoo_transformers import READOUTS, TextTransformer, TextTransformerNNX, ViT, ViTNNX

__all__ = [
    "MLP",
    "VGG",
    "ResNet",
    "ViT",
    "TextTransformer",
    "MLPNNX",
    "VGGNNX",
    "ResNetNNX",
    "ViTNNX",
    "TextTransformerNNX",
    "READOUTS",
    "linen_to_nnx",
    "make",
    "NAMES",
]

#: The architectures :func:`make` knows.
NAMES = ("mlp", "vgg", "resnet", "vit", "text_transformer")

# BatchNorm settings of the ResNets, the same in both frameworks.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _check_widths(name: str, features: Any, *, allow_empty: bool) -> tuple[int, ...]:
    if isinstance(features, (int, np.integer)) or not isinstance(features, Sequence):
        raise TypeError(
            f"jaxplain.zoo.{name}: features must be a sequence of ints (one width per layer or "
            f"stage), e.g. (16, 32), got {type(features).__name__} {features!r}."
        )
    widths = tuple(_checks.check_int(f"zoo.{name}", "each width in features", w, minimum=1)
                   for w in features)
    if not widths and not allow_empty:
        raise ValueError(
            f"jaxplain.zoo.{name}: features must hold at least one stage width, e.g. (16, 32), "
            f"got {features!r}."
        )
    return widths


def _gap(x):
    """Global average pooling over the spatial axes of (N, H, W, C)."""
    return jnp.mean(x, axis=(1, 2))


def _pool(x):
    return nn.avg_pool(x, (2, 2), (2, 2))


# =========================================================================== Linen


class MLP(nn.Module):
    """A multilayer perceptron: flatten, dense layers with an activation, a dense head.

    Attributes:
      features: the widths of the hidden layers ``dense0``, ``dense1``, ... (may be empty: a
        linear model).
      classes: number of output logits (the layer ``head``).
      act: the activation (``nn.relu``; a smooth one such as ``nn.softplus`` for IG tests).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.zoo import MLP
      >>> model = MLP(features=(8,), classes=3)
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))
      >>> list(variables["params"]), variables["params"]["dense0"]["kernel"].shape
      (['dense0', 'head'], (48, 8))
      >>> model.apply(variables, jnp.zeros((2, 4, 4, 3))).shape
      (2, 3)

    References:
      Rumelhart, Hinton & Williams (1986), "Learning representations by back-propagating errors",
      Nature 323.
    """

    features: Sequence[int] = (32, 32)
    classes: int = 10
    act: Callable = nn.relu

    @nn.compact
    def __call__(self, x):
        widths = _check_widths("MLP", self.features, allow_empty=True)
        x = jnp.reshape(x, (x.shape[0], -1))
        for i, width in enumerate(widths):
            x = self.act(nn.Dense(width, name=f"dense{i}")(x))
        return nn.Dense(self.classes, name="head")(x)


class _VGGStage(nn.Module):
    """Two 3x3 convolutions with an activation: ``conv0``, ``conv1``."""

    features: int
    act: Callable

    @nn.compact
    def __call__(self, x):
        x = self.act(nn.Conv(self.features, (3, 3), name="conv0")(x))
        return self.act(nn.Conv(self.features, (3, 3), name="conv1")(x))


class VGG(nn.Module):
    """A VGG-style CNN: stages of two 3x3 convolutions, 2x2 average pooling between the stages,
    global average pooling and one dense layer ``head`` (so CAM applies).

    Submodules: ``stage{i}`` (one per entry of ``features``) holding ``conv0`` and ``conv1``, and
    ``head``; e.g. the layer path ``"stage1/conv1"`` is the last convolution of two stages.

    Attributes:
      features: channels of each stage.
      classes: number of output logits.
      act: the activation (``nn.relu``; a smooth one such as ``nn.softplus`` for IG tests).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(4, 8), classes=3)
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
      >>> list(variables["params"]), list(variables["params"]["stage1"])
      (['stage0', 'stage1', 'head'], ['conv0', 'conv1'])
      >>> model.apply(variables, jnp.zeros((2, 8, 8, 3))).shape
      (2, 3)

    References:
      Simonyan & Zisserman (2015), "Very Deep Convolutional Networks for Large-Scale Image
      Recognition", ICLR; Lin, Chen & Yan (2014), "Network In Network", ICLR (global average
      pooling); Zhou, Khosla, Lapedriza, Oliva & Torralba (2016), "Learning Deep Features for
      Discriminative Localization", CVPR (CAM).
    """

    features: Sequence[int] = (16, 32)
    classes: int = 10
    act: Callable = nn.relu

    @nn.compact
    def __call__(self, x):
        widths = _check_widths("VGG", self.features, allow_empty=False)
        for i, width in enumerate(widths):
            if i:
                x = _pool(x)
            x = _VGGStage(width, self.act, name=f"stage{i}")(x)
        return nn.Dense(self.classes, name="head")(_gap(x))


class _ResidualBlock(nn.Module):
    """conv-BN-act-conv-BN plus the skip (projected by a 1x1 conv + BN when the shape changes)."""

    features: int
    strides: int
    act: Callable

    @nn.compact
    def __call__(self, x, train: bool = False):
        def norm(name):
            return nn.BatchNorm(
                use_running_average=not train, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON,
                name=name,
            )

        s = (self.strides, self.strides)
        y = nn.Conv(self.features, (3, 3), s, use_bias=False, name="conv0")(x)
        y = self.act(norm("bn0")(y))
        y = nn.Conv(self.features, (3, 3), use_bias=False, name="conv1")(y)
        y = norm("bn1")(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), s, use_bias=False, name="proj")(x)
            x = norm("proj_bn")(x)
        return self.act(y + x)


class _ResNetStage(nn.Module):
    """``blocks`` residual blocks ``block0``, ``block1``, ...; the first one has ``strides``."""

    features: int
    blocks: int
    strides: int
    act: Callable

    @nn.compact
    def __call__(self, x, train: bool = False):
        for j in range(self.blocks):
            block = _ResidualBlock(
                self.features, self.strides if j == 0 else 1, self.act, name=f"block{j}"
            )
            x = block(x, train)
        return x


class ResNet(nn.Module):
    """A ResNet-style CNN with BatchNorm: a 3x3 stem convolution + BatchNorm + activation, stages
    of residual blocks (each stage after the first halves the resolution with a stride-2 first
    block), global average pooling and one dense layer ``head`` (so CAM applies).

    A block is conv3x3-BN-act-conv3x3-BN, plus the skip connection, then the activation; the skip
    is a 1x1 convolution + BN (``proj``, ``proj_bn``) where the width or the stride changes.
    Convolutions have no bias (BatchNorm follows each). BatchNorm: momentum 0.9, epsilon 1e-5.

    Submodules: ``stem_conv``, ``stem_bn``; ``stage{i}`` holding ``block{j}`` holding ``conv0``,
    ``bn0``, ``conv1``, ``bn1`` (and ``proj``, ``proj_bn``); ``head``. The variables are
    ``params`` and ``batch_stats``.

    Attributes:
      features: channels of each stage (the stem has ``features[0]``).
      blocks: residual blocks per stage.
      classes: number of output logits.
      act: the activation (``nn.relu``).

    Call as ``model.apply(variables, x, train=False)`` for inference (BatchNorm on its running
    averages), and ``model.apply(variables, x, train=True, mutable=["batch_stats"])`` to train,
    which returns ``(logits, {"batch_stats": ...})``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.zoo import ResNet
      >>> model = ResNet(features=(4, 8), classes=3)
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
      >>> sorted(variables), list(variables["params"]["stage1"]["block0"])
      (['batch_stats', 'params'], ['conv0', 'bn0', 'conv1', 'bn1', 'proj', 'proj_bn'])
      >>> logits, updates = model.apply(variables, jnp.ones((2, 8, 8, 3)), train=True,
      ...                               mutable=["batch_stats"])
      >>> logits.shape, list(updates)
      ((2, 3), ['batch_stats'])

    References:
      He, Zhang, Ren & Sun (2016), "Deep Residual Learning for Image Recognition", CVPR;
      Ioffe & Szegedy (2015), "Batch Normalization: Accelerating Deep Network Training by
      Reducing Internal Covariate Shift", ICML.
    """

    features: Sequence[int] = (16, 32)
    blocks: int = 1
    classes: int = 10
    act: Callable = nn.relu

    @nn.compact
    def __call__(self, x, train: bool = False):
        widths = _check_widths("ResNet", self.features, allow_empty=False)
        blocks = _checks.check_int("zoo.ResNet", "blocks", self.blocks, minimum=1)
        x = nn.Conv(widths[0], (3, 3), use_bias=False, name="stem_conv")(x)
        x = nn.BatchNorm(
            use_running_average=not train, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON,
            name="stem_bn",
        )(x)
        x = self.act(x)
        for i, width in enumerate(widths):
            x = _ResNetStage(width, blocks, 2 if i else 1, self.act, name=f"stage{i}")(x, train)
        return nn.Dense(self.classes, name="head")(_gap(x))


# =========================================================================== NNX


def _check_rngs(name: str, rngs: Any) -> None:
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(
            f"jaxplain.zoo.{name}: rngs must be an nnx.Rngs, e.g. rngs=nnx.Rngs(0), got "
            f"{type(rngs).__name__}."
        )


class MLPNNX(nnx.Module):
    """The NNX twin of :class:`MLP`: attributes ``dense0``, ``dense1``, ..., ``head``.

    Args:
      features, classes, act: as in :class:`MLP`.
      in_shape: the shape of one example (without the batch axis), e.g. ``(8, 8, 3)``, or its
        number of entries.
      rngs: the ``nnx.Rngs`` for the initializers.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxplain.zoo import MLPNNX
      >>> model = MLPNNX(features=(8,), classes=3, in_shape=(4, 4, 3), rngs=nnx.Rngs(0))
      >>> model.dense0.kernel.shape, model(jnp.zeros((2, 4, 4, 3))).shape
      ((48, 8), (2, 3))

    References:
      Rumelhart, Hinton & Williams (1986), "Learning representations by back-propagating errors", Nature 323.
    """

    def __init__(
        self,
        features: Sequence[int] = (32, 32),
        classes: int = 10,
        act: Callable = nn.relu,
        *,
        in_shape: int | Sequence[int],
        rngs: nnx.Rngs,
    ):
        widths = _check_widths("MLPNNX", features, allow_empty=True)
        classes = _checks.check_int("zoo.MLPNNX", "classes", classes, minimum=1)
        _checks.check_callable("zoo.MLPNNX", "act", act)
        _check_rngs("MLPNNX", rngs)
        shape = (in_shape,) if isinstance(in_shape, (int, np.integer)) else in_shape
        if not isinstance(shape, Sequence) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape
        ):
            raise TypeError(
                f"jaxplain.zoo.MLPNNX: in_shape must be the shape of one example (positive ints, "
                f"without the batch axis), e.g. in_shape=(8, 8, 3), got {in_shape!r}."
            )
        self.act = act
        self.depth = len(widths)
        width_in = int(prod(shape))
        for i, width in enumerate(widths):
            setattr(self, f"dense{i}", nnx.Linear(width_in, width, rngs=rngs))
            width_in = width
        self.head = nnx.Linear(width_in, classes, rngs=rngs)

    def __call__(self, x):
        x = jnp.reshape(x, (x.shape[0], -1))
        for i in range(self.depth):
            x = self.act(getattr(self, f"dense{i}")(x))
        return self.head(x)


class _VGGStageNNX(nnx.Module):
    def __init__(self, in_features: int, features: int, act: Callable, *, rngs: nnx.Rngs):
        self.act = act
        self.conv0 = nnx.Conv(in_features, features, (3, 3), rngs=rngs)
        self.conv1 = nnx.Conv(features, features, (3, 3), rngs=rngs)

    def __call__(self, x):
        return self.act(self.conv1(self.act(self.conv0(x))))


class VGGNNX(nnx.Module):
    """The NNX twin of :class:`VGG`: attributes ``stage{i}`` (holding ``conv0``, ``conv1``) and
    ``head``.

    Args:
      features, classes, act: as in :class:`VGG`.
      in_features: channels of the input images.
      rngs: the ``nnx.Rngs`` for the initializers.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxplain.zoo import VGGNNX
      >>> model = VGGNNX(features=(4, 8), classes=3, rngs=nnx.Rngs(0))
      >>> model.stage1.conv1.kernel.shape, model(jnp.zeros((2, 8, 8, 3))).shape
      ((3, 3, 8, 8), (2, 3))

    References:
      Simonyan & Zisserman (2015), "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR; Lin, Chen & Yan (2014), "Network In Network" (global average pooling).
    """

    def __init__(
        self,
        features: Sequence[int] = (16, 32),
        classes: int = 10,
        act: Callable = nn.relu,
        *,
        in_features: int = 3,
        rngs: nnx.Rngs,
    ):
        widths = _check_widths("VGGNNX", features, allow_empty=False)
        classes = _checks.check_int("zoo.VGGNNX", "classes", classes, minimum=1)
        width_in = _checks.check_int("zoo.VGGNNX", "in_features", in_features, minimum=1)
        _checks.check_callable("zoo.VGGNNX", "act", act)
        _check_rngs("VGGNNX", rngs)
        self.act = act
        self.depth = len(widths)
        for i, width in enumerate(widths):
            setattr(self, f"stage{i}", _VGGStageNNX(width_in, width, act, rngs=rngs))
            width_in = width
        self.head = nnx.Linear(width_in, classes, rngs=rngs)

    def __call__(self, x):
        for i in range(self.depth):
            if i:
                x = _pool(x)
            x = getattr(self, f"stage{i}")(x)
        return self.head(_gap(x))


def _batch_norm(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(features, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, rngs=rngs)


class _ResidualBlockNNX(nnx.Module):
    def __init__(self, in_features, features, strides, act, *, rngs: nnx.Rngs):
        s = (strides, strides)
        self.act = act
        self.conv0 = nnx.Conv(in_features, features, (3, 3), s, use_bias=False, rngs=rngs)
        self.bn0 = _batch_norm(features, rngs)
        self.conv1 = nnx.Conv(features, features, (3, 3), use_bias=False, rngs=rngs)
        self.bn1 = _batch_norm(features, rngs)
        self.projected = strides != 1 or in_features != features
        if self.projected:
            self.proj = nnx.Conv(in_features, features, (1, 1), s, use_bias=False, rngs=rngs)
            self.proj_bn = _batch_norm(features, rngs)

    def __call__(self, x):
        y = self.bn1(self.conv1(self.act(self.bn0(self.conv0(x)))))
        if self.projected:
            x = self.proj_bn(self.proj(x))
        return self.act(y + x)


class _ResNetStageNNX(nnx.Module):
    def __init__(self, in_features, features, blocks, strides, act, *, rngs: nnx.Rngs):
        self.blocks = blocks
        for j in range(blocks):
            block = _ResidualBlockNNX(
                in_features if j == 0 else features, features, strides if j == 0 else 1, act,
                rngs=rngs,
            )
            setattr(self, f"block{j}", block)

    def __call__(self, x):
        for j in range(self.blocks):
            x = getattr(self, f"block{j}")(x)
        return x


class ResNetNNX(nnx.Module):
    """The NNX twin of :class:`ResNet`: attributes ``stem_conv``, ``stem_bn``, ``stage{i}``
    (holding ``block{j}``, holding ``conv0``, ``bn0``, ``conv1``, ``bn1`` and, where the shape
    changes, ``proj``, ``proj_bn``) and ``head``.

    Built in training mode (NNX's default): a call normalizes with the batch's statistics and
    updates the running averages in place. For inference take ``nnx.view(model,
    use_running_average=True)`` or call ``model.eval()``; :func:`jaxplain.flax.from_nnx` does it
    for you.

    Args:
      features, blocks, classes, act: as in :class:`ResNet`.
      in_features: channels of the input images.
      rngs: the ``nnx.Rngs`` for the initializers.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxplain.zoo import ResNetNNX
      >>> model = ResNetNNX(features=(4, 8), classes=3, rngs=nnx.Rngs(0))
      >>> model.stage1.block0.proj.kernel.shape
      (1, 1, 4, 8)
      >>> infer = nnx.view(model, use_running_average=True)  # `model` stays in training mode
      >>> infer(jnp.zeros((2, 8, 8, 3))).shape
      (2, 3)

    References:
      He, Zhang, Ren & Sun (2016), "Deep Residual Learning for Image Recognition", CVPR.
    """

    def __init__(
        self,
        features: Sequence[int] = (16, 32),
        blocks: int = 1,
        classes: int = 10,
        act: Callable = nn.relu,
        *,
        in_features: int = 3,
        rngs: nnx.Rngs,
    ):
        widths = _check_widths("ResNetNNX", features, allow_empty=False)
        blocks = _checks.check_int("zoo.ResNetNNX", "blocks", blocks, minimum=1)
        classes = _checks.check_int("zoo.ResNetNNX", "classes", classes, minimum=1)
        in_features = _checks.check_int("zoo.ResNetNNX", "in_features", in_features, minimum=1)
        _checks.check_callable("zoo.ResNetNNX", "act", act)
        _check_rngs("ResNetNNX", rngs)
        self.act = act
        self.depth = len(widths)
        self.stem_conv = nnx.Conv(in_features, widths[0], (3, 3), use_bias=False, rngs=rngs)
        self.stem_bn = _batch_norm(widths[0], rngs)
        width_in = widths[0]
        for i, width in enumerate(widths):
            stage = _ResNetStageNNX(width_in, width, blocks, 2 if i else 1, act, rngs=rngs)
            setattr(self, f"stage{i}", stage)
            width_in = width
        self.head = nnx.Linear(width_in, classes, rngs=rngs)

    def __call__(self, x):
        x = self.act(self.stem_bn(self.stem_conv(x)))
        for i in range(self.depth):
            x = getattr(self, f"stage{i}")(x)
        return self.head(_gap(x))


# =========================================================================== Linen -> NNX

# Linen collection -> the NNX variable type that holds it.
_COLLECTIONS = {"params": nnx.Param, "batch_stats": nnx.BatchStat}
_TWINS = {MLP: MLPNNX, VGG: VGGNNX, ResNet: ResNetNNX, ViT: ViTNNX,
          TextTransformer: TextTransformerNNX}
# Options of the zoo's models that change the function but no variable's shape: checked to agree.
_SAME_OPTIONS = ("act", "readout", "pad_id")


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def linen_to_nnx(linen_module: nn.Module, variables: Mapping, nnx_model: nnx.Module) -> nnx.Module:
    """A copy of ``nnx_model`` holding the Linen ``variables``: the same weights in both frameworks.

    The Linen ``params`` go to the model's ``nnx.Param`` variables and ``batch_stats`` to its
    ``nnx.BatchStat`` variables, matched by path: ``params/stage1/conv1/kernel`` goes to
    ``model.stage1.conv1.kernel``, ``batch_stats/stem_bn/mean`` to ``model.stem_bn.mean``. The
    values are copied as they are (dtype included). ``nnx_model`` is not modified; its other
    state (e.g. RNG counters) and its mode (training or inference) carry over to the copy. It
    may be an abstract model from ``nnx.eval_shape``, which skips the initializers.

    This works for any Linen / NNX pair whose NNX attribute paths mirror the Linen module names
    and whose variables are named alike (``nn.Dense`` / ``nnx.Linear`` and ``nn.Conv`` /
    ``nnx.Conv``: ``kernel``, ``bias``; ``nn.BatchNorm`` / ``nnx.BatchNorm``: ``scale``,
    ``bias``, ``mean``, ``var``; ``nn.LayerNorm`` / ``nnx.LayerNorm``: ``scale``, ``bias``;
    ``nn.Embed`` / ``nnx.Embed``: ``embedding``; ``nn.MultiHeadDotProductAttention`` /
    ``nnx.MultiHeadAttention``: ``query``, ``key``, ``value``, ``out``, each ``kernel`` and
    ``bias``; a parameter of the module itself, e.g. ``params/pos_embed``, goes to the
    ``nnx.Param`` attribute ``pos_embed``), in particular for the zoo's pairs (:class:`MLP` and
    :class:`MLPNNX`, :class:`VGG` and :class:`VGGNNX`, :class:`ResNet` and :class:`ResNetNNX`,
    :class:`ViT` and :class:`ViTNNX`, :class:`TextTransformer` and
    :class:`TextTransformerNNX`). It checks names and shapes only, so the two models must also
    compute the same function of their variables; for the zoo's pairs it checks that the
    activations (and the Transformers' ``readout`` and ``pad_id``) agree.

    Args:
      linen_module: the Linen module ``variables`` belong to.
      variables: its variables, ``{"params": ..., "batch_stats": ...}`` as ``init`` returns.
      nnx_model: an NNX model of the same architecture (e.g. built with the same ``features``,
        ``classes`` and ``blocks``), whose values are ignored.

    Returns:
      A new NNX model, of ``nnx_model``'s type, holding the Linen values.

    Raises:
      TypeError: an argument has the wrong type, or the modules are zoo models of different
        architectures.
      ValueError: ``variables`` holds a collection other than ``params`` and ``batch_stats``,
        the two models' variables differ in a path or a shape (the first mismatch is named), or
        zoo models differ in their activation, ``readout`` or ``pad_id``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxplain.zoo import ResNet, ResNetNNX, linen_to_nnx
      >>> x = jnp.ones((2, 8, 8, 3))
      >>> resnet = ResNet(features=(4,), classes=3)
      >>> v = resnet.init(jax.random.key(0), x)
      >>> _, upd = resnet.apply(v, x + 1.0, train=True, mutable=["batch_stats"])
      >>> v = {**v, **upd}  # non-trivial running statistics
      >>> abstract = nnx.eval_shape(lambda: ResNetNNX(features=(4,), classes=3, rngs=nnx.Rngs(0)))
      >>> twin = linen_to_nnx(resnet, v, abstract)
      >>> float(twin.stem_bn.mean[0]) == float(v["batch_stats"]["stem_bn"]["mean"][0])
      True
      >>> twin.eval()
      >>> bool(jnp.allclose(resnet.apply(v, x), twin(x), atol=1e-5))
      True
      >>> wider = nnx.eval_shape(lambda: ResNetNNX(features=(6,), classes=3, rngs=nnx.Rngs(0)))
      >>> linen_to_nnx(resnet, v, wider)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
        ...
      ValueError: jaxplain.zoo.linen_to_nnx: ... at 'params/head/kernel': shape (4, 3) ...

    References:
      Flax documentation, "Migrating from Haiku/Linen to NNX" (variable collections params and batch_stats map to nnx.Param and nnx.BatchStat).
    """
    name = "zoo.linen_to_nnx"
    if not isinstance(linen_module, nn.Module):
        raise TypeError(
            f"jaxplain.{name}: linen_module must be a flax.linen.Module, got "
            f"{type(linen_module).__name__}."
        )
    if not isinstance(variables, Mapping):
        raise TypeError(
            f"jaxplain.{name}: variables must be the mapping linen_module.init returns, e.g. "
            f"{{'params': ..., 'batch_stats': ...}}, got {type(variables).__name__}."
        )
    if not isinstance(nnx_model, nnx.Module):
        raise TypeError(
            f"jaxplain.{name}: nnx_model must be a flax.nnx.Module of the same architecture as "
            f"the Linen module, e.g. {_TWINS.get(type(linen_module), nnx.Module).__name__}(...), "
            f"got {type(nnx_model).__name__}."
        )
    _check_twins(name, linen_module, nnx_model)
    unknown = sorted(set(variables) - set(_COLLECTIONS))
    if unknown:
        raise ValueError(
            f"jaxplain.{name}: variables holds the collection(s) {unknown}, which have no NNX "
            f"counterpart here; pass only 'params' and 'batch_stats', e.g. "
            f"{{k: variables[k] for k in ('params', 'batch_stats') if k in variables}}."
        )

    linen_flat = {}
    for collection, tree in variables.items():
        if not isinstance(tree, Mapping):
            raise TypeError(
                f"jaxplain.{name}: variables[{collection!r}] must be a mapping of module names, "
                f"got {type(tree).__name__}."
            )
        for path, value in traverse_util.flatten_dict(tree).items():
            linen_flat[(collection, *map(str, path))] = value

    graphdef, state = nnx.split(nnx_model)
    nnx_flat = {}  # "collection/path" key -> index into the flat state
    flat = list(nnx.to_flat_state(state))
    for index, (path, var) in enumerate(flat):
        for collection, kind in _COLLECTIONS.items():
            if isinstance(var, kind):
                nnx_flat[(collection, *map(str, path))] = index
                break

    problems = []
    order = list(_COLLECTIONS)  # params first, then batch_stats
    for key in sorted(set(linen_flat) | set(nnx_flat), key=lambda k: (order.index(k[0]), k[1:])):
        where = "/".join(key)
        if key not in nnx_flat:
            problems.append(f"{where!r} is in the Linen variables but not in the NNX model")
        elif key not in linen_flat:
            problems.append(f"{where!r} is in the NNX model but not in the Linen variables")
        else:
            a, b = _shape(linen_flat[key]), _shape(flat[nnx_flat[key]][1].get_raw_value())
            if a != b:
                problems.append(
                    f"at {where!r}: shape {a} in the Linen variables but {b} in the NNX model"
                )
    if problems:
        more = f" (and {len(problems) - 1} more mismatches)" if len(problems) > 1 else ""
        raise ValueError(
            f"jaxplain.{name}: the Linen variables of {type(linen_module).__name__} do not fit the "
            f"NNX model {type(nnx_model).__name__}: {problems[0]}{more}. Build the NNX model "
            f"with the same architecture (the same features, classes, blocks and input size) as "
            f"the Linen module."
        )

    for key, index in nnx_flat.items():
        path, var = flat[index]
        flat[index] = (path, var.copy(jnp.asarray(linen_flat[key])))
    new_state = nnx.from_flat_state(flat)
    return nnx.merge(graphdef, new_state, copy=True)


def _check_twins(name: str, linen_module: nn.Module, nnx_model: nnx.Module) -> None:
    """For the zoo's own models: the NNX type is the Linen type's twin and the activations agree."""
    linen_type = type(linen_module)
    twin = _TWINS.get(linen_type)
    if twin is None and type(nnx_model) not in _TWINS.values():
        return
    if twin is None or not isinstance(nnx_model, twin):
        expected = twin.__name__ if twin is not None else "the matching Linen model"
        raise TypeError(
            f"jaxplain.{name}: {linen_type.__name__} and {type(nnx_model).__name__} are different "
            f"architectures; pass {expected} (zoo pairs: MLP/MLPNNX, VGG/VGGNNX, ResNet/ResNetNNX, "
            f"ViT/ViTNNX, TextTransformer/TextTransformerNNX)."
        )
    for option in _SAME_OPTIONS:
        if not hasattr(linen_module, option):
            continue
        a, b = getattr(linen_module, option), getattr(nnx_model, option)
        if not (a is b if option == "act" else a == b):
            what = "activations" if option == "act" else f"{option} options"
            raise ValueError(
                f"jaxplain.{name}: the models' {what} differ ({_fn_name(a)} in the Linen module, "
                f"{_fn_name(b)} in the NNX model); build the NNX model with {option}={_fn_name(a)}."
            )


def _fn_name(fn: Any) -> str:
    return fn.__name__ if callable(fn) and hasattr(fn, "__name__") else repr(fn)


# =========================================================================== make


def make(name: str, framework: str = "linen", **kwargs: Any) -> nn.Module | nnx.Module:
    """A zoo model by name: ``"mlp"``, ``"vgg"``, ``"resnet"``, ``"vit"`` or
    ``"text_transformer"``, in ``"linen"`` or ``"nnx"``.

    Args:
      name: one of :data:`NAMES`.
      framework: ``"linen"`` (an unbound module; ``init`` it) or ``"nnx"`` (a built model;
        ``kwargs`` must then hold ``rngs=``, and ``in_shape=`` for the MLP).
        ``"text_transformer"`` needs ``vocab=`` and ``length=``.
      **kwargs: the model's arguments, e.g. ``features=(8, 16)``, ``classes=4``.

    Example:
      >>> from flax import nnx
      >>> from jaxplain.zoo import make
      >>> make("vgg", features=(4,), classes=3)
      VGG(
          # attributes
          features = (4,)
          classes = 3
          act = relu
      )
      >>> type(make("resnet", "nnx", features=(4,), rngs=nnx.Rngs(0))).__name__
      'ResNetNNX'

    References:
      Simonyan & Zisserman (2015), ICLR (VGG); He, Zhang, Ren & Sun (2016), "Deep Residual Learning for Image Recognition", CVPR (ResNet).
    """
    name = _checks.check_choice("zoo.make", "name", name, NAMES)
    framework = _checks.check_choice("zoo.make", "framework", framework, ("linen", "nnx"))
    linen_type = {"mlp": MLP, "vgg": VGG, "resnet": ResNet, "vit": ViT,
                  "text_transformer": TextTransformer}[name]
    if framework == "linen":
        return linen_type(**kwargs)
    if "rngs" not in kwargs:
        raise TypeError(
            f"jaxplain.zoo.make: an NNX model is built at once and needs rngs=, e.g. "
            f"make({name!r}, 'nnx', rngs=nnx.Rngs(0)"
            + (", in_shape=(32, 32, 3))." if name == "mlp" else ").")
        )
    return _TWINS[linen_type](**kwargs)
