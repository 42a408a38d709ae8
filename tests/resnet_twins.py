"""``jaxplain.zoo.ResNet`` defined again in torch, with the same weights and BatchNorm statistics.

Used by the Zennit LRP parity tests (tests/parity/test_zennit_lrp.py) and the LRP benchmark: the
Flax Linen model and its torch twin compute the same logits, so relevances can be compared
element by element.

The torch twin follows the Flax module tree name for name (``stem_conv``, ``stem_bn``,
``stage{i}.block{j}.conv0`` / ``bn0`` / ``conv1`` / ``bn1`` / ``proj`` / ``proj_bn``, ``head``)
and is built so that Zennit sees every operation as a module it has a rule for:

* activations are ``nn.ReLU`` modules (one per use), Zennit's ``Pass``;
* the residual addition is ``zennit.layer.Sum`` over ``torch.stack([identity, out], dim=-1)``,
  as Zennit's own torchvision ResNet canonizer rewrites it, so it gets ``Norm`` (``Sum`` is a plain
  ``torch.sum`` module, so the twin also runs without zennit, with a local stand-in);
* global average pooling is ``nn.AdaptiveAvgPool2d(1)`` (Zennit's ``AvgPool``, ``Norm``) followed
  by a flatten;
* BatchNorm is ``nn.BatchNorm2d`` (eps 1e-5) in eval mode, merged by Zennit's
  ``NamedMergeBatchNorm(merge_map(module))``.

Padding: Flax's ``'SAME'`` pads ``total = max((ceil(n/s) - 1) * s + k - n, 0)`` pixels,
``total // 2`` before and the rest after. For a 3x3 stride-2 convolution on an even size that is
(0, 1), which ``nn.Conv2d`` cannot express, so the stride-2 convolutions pad explicitly
(``F.pad``) and use ``padding=0``; stride-1 3x3 convolutions pad (1, 1) inside the module (so the
first layer's Flat / z^B rule sees the unpadded input, as jaxplain's does).

Example:
  >>> import torch
  >>> model, variables, module = make_resnet_twins(0, features=(4, 8), size=8, classes=3)
  >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
  >>> ours = np.asarray(model.apply(variables, x))
  >>> theirs = module(torch.from_numpy(np.moveaxis(x, -1, 1).copy())).detach().numpy()
  >>> bool(np.allclose(ours, theirs, atol=1e-5))
  True
"""

from __future__ import annotations

import math
import sys
import types
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "make_resnet_twins",
    "init_variables",
    "make_torch_resnet",
    "logit_fn",
    "merge_map",
    "import_zennit",
    "same_padding",
]

BN_EPSILON = 1e-5  # jaxplain.zoo's BatchNorm epsilon


def same_padding(n: int, k: int, s: int) -> tuple[int, int]:
    """(before, after) padding of JAX/Flax ``'SAME'`` for size ``n``, kernel ``k``, stride ``s``."""
    out = math.ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def import_zennit():
    """Imports zennit where the installed torchvision does not load.

    zennit imports ``torchvision.models.resnet`` (``Bottleneck``, ``BasicBlock``) for its
    torchvision canonizers only. If the real torchvision fails to import (a wheel built for another
    torch: ``operator torchvision::nms does not exist``), a stand-in module with those two names
    takes its place. Raises ImportError when torch or zennit is missing.
    """
    import torch  # noqa: F401  (ImportError if missing)

    if "zennit" not in sys.modules:
        try:
            import torchvision.models.resnet  # noqa: F401
        except Exception:  # noqa: BLE001  (any failure of the real package: use the stand-in)
            stale = [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]
            for name in stale:
                del sys.modules[name]
            tv = types.ModuleType("torchvision")
            models = types.ModuleType("torchvision.models")
            resnet = types.ModuleType("torchvision.models.resnet")

            class Bottleneck:  # never instantiated: zennit only tests isinstance against it
                pass

            class BasicBlock:
                pass

            resnet.Bottleneck, resnet.BasicBlock = Bottleneck, BasicBlock
            tv.models, models.resnet = models, resnet
            sys.modules["torchvision"] = tv
            sys.modules["torchvision.models"] = models
            sys.modules["torchvision.models.resnet"] = resnet
    import zennit

    return zennit


def init_variables(model, size: int, seed: int = 0, dtype=np.float32):
    """Linen variables (``params``, ``batch_stats``) for ``model`` on ``(1, size, size, 3)`` inputs,
    drawn with NumPy (``model.init`` would compile Flax's random initializers, several seconds on
    CPU): kernels ~ N(0, 2 / fan_in) (the dense head: 1 / fan_in), the head's bias ~ N(0, 0.1), and
    BatchNorm far from the identity: mean ~ N(0, 0.3), var ~ U(0.5, 2), scale ~ U(0.5, 1.5) with
    about one in five negated, bias ~ N(0, 0.2)."""
    rng = np.random.default_rng(seed)
    x = jax.ShapeDtypeStruct((1, size, size, 3), dtype)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)

    def fill(path, leaf):
        names = [getattr(k, "key", str(k)) for k in path]
        collection, name, shape = names[0], names[-1], leaf.shape
        module = names[-2]
        if collection == "batch_stats":
            if name == "mean":
                return rng.normal(size=shape) * 0.3
            return rng.uniform(0.5, 2.0, size=shape)
        if name == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            gain = 1.0 if module == "head" else 2.0
            return rng.standard_normal(shape) * np.sqrt(gain / fan_in)
        if name == "scale":
            sign = np.where(rng.uniform(size=shape) < 0.2, -1.0, 1.0)
            return rng.uniform(0.5, 1.5, size=shape) * sign
        if name == "bias":
            return rng.normal(size=shape) * (0.1 if module == "head" else 0.2)
        raise ValueError(f"unexpected variable {'/'.join(names)}")

    filled = jax.tree_util.tree_map_with_path(fill, shapes)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), filled)


def make_torch_resnet(variables, *, features: Sequence[int], blocks: int = 1):
    """The torch ``nn.Module`` (NCHW input, eval mode) with the weights of a
    ``jaxplain.zoo.ResNet(features=features, blocks=blocks)``'s Linen ``variables``."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    try:
        import_zennit()
        from zennit.layer import Sum
    except ImportError:  # the twin also runs without zennit

        class Sum(nn.Module):
            def __init__(self, dim=-1):
                super().__init__()
                self.dim = dim

            def forward(self, input):
                return torch.sum(input, dim=self.dim)

    P = jax.tree_util.tree_map(np.asarray, variables["params"])
    S = jax.tree_util.tree_map(np.asarray, variables["batch_stats"])

    def t(a):
        return torch.from_numpy(np.array(a, dtype=np.float32, order="C"))  # a writable copy

    def conv(p, stride):
        k = p["kernel"]  # HWIO
        kh, kw, cin, cout = k.shape
        pad = kh // 2 if stride == 1 else 0  # stride 1, odd kernel: SAME is symmetric
        m = nn.Conv2d(cin, cout, (kh, kw), stride, padding=pad, bias=False)
        with torch.no_grad():
            m.weight.copy_(t(k.transpose(3, 2, 0, 1)))  # OIHW
        return m

    def bn(p, s):
        c = p["scale"].shape[0]
        m = nn.BatchNorm2d(c, eps=BN_EPSILON)
        with torch.no_grad():
            m.weight.copy_(t(p["scale"]))
            m.bias.copy_(t(p["bias"]))
            m.running_mean.copy_(t(s["mean"]))
            m.running_var.copy_(t(s["var"]))
        return m

    class Block(nn.Module):
        def __init__(self, p, s, stride):
            super().__init__()
            self.stride = stride
            self.conv0, self.bn0 = conv(p["conv0"], stride), bn(p["bn0"], s["bn0"])
            self.relu0 = nn.ReLU()
            self.conv1, self.bn1 = conv(p["conv1"], 1), bn(p["bn1"], s["bn1"])
            if "proj" in p:
                self.proj, self.proj_bn = conv(p["proj"], stride), bn(p["proj_bn"], s["proj_bn"])
            else:
                self.proj = self.proj_bn = None
            self.sum = Sum()
            self.relu1 = nn.ReLU()

        def forward(self, x):
            h = x
            if self.stride != 1:  # Flax 'SAME' for a strided 3x3 convolution: explicit padding
                k = self.conv0.kernel_size
                (top, bottom), (left, right) = (
                    same_padding(x.shape[2], k[0], self.stride),
                    same_padding(x.shape[3], k[1], self.stride),
                )
                h = F.pad(h, (left, right, top, bottom))
            out = self.relu0(self.bn0(self.conv0(h)))
            out = self.bn1(self.conv1(out))
            identity = x if self.proj is None else self.proj_bn(self.proj(x))
            out = self.sum(torch.stack([identity, out], dim=-1))
            return self.relu1(out)

    class TwinResNet(nn.Module):
        def __init__(self):
            super().__init__()
            # registration order = forward order: Zennit's first layer and SequentialMergeBatchNorm
            # go by it
            self.stem_conv = conv(P["stem_conv"], 1)
            self.stem_bn = bn(P["stem_bn"], S["stem_bn"])
            self.stem_relu = nn.ReLU()
            for i, _ in enumerate(features):
                stage = nn.Sequential()
                for j in range(blocks):
                    stride = 2 if i and j == 0 else 1
                    stage.add_module(
                        f"block{j}",
                        Block(P[f"stage{i}"][f"block{j}"], S[f"stage{i}"][f"block{j}"], stride),
                    )
                self.add_module(f"stage{i}", stage)
            self.n_stages = len(features)
            self.gap = nn.AdaptiveAvgPool2d(1)
            kd = P["head"]["kernel"]
            self.head = nn.Linear(kd.shape[0], kd.shape[1])
            with torch.no_grad():
                self.head.weight.copy_(t(kd.T))
                self.head.bias.copy_(t(P["head"]["bias"]))

        def forward(self, x):  # x: (N, 3, H, W)
            h = self.stem_relu(self.stem_bn(self.stem_conv(x)))
            for i in range(self.n_stages):
                h = getattr(self, f"stage{i}")(h)
            h = self.gap(h).flatten(1)
            return self.head(h)

    return TwinResNet().eval()


def merge_map(module) -> list[tuple[list[str], str]]:
    """The ``name_map`` of ``zennit.canonizers.NamedMergeBatchNorm`` for :func:`make_torch_resnet`'s
    module: every convolution with the BatchNorm right after it."""
    names = [n for n, _ in module.named_modules()]
    pairs = [(["stem_conv"], "stem_bn")]
    for n in names:
        for c, b in (("conv0", "bn0"), ("conv1", "bn1"), ("proj", "proj_bn")):
            if n.endswith("." + c) and n[: -len(c)] + b in names:
                pairs.append(([n], n[: -len(c)] + b))
    return pairs


def make_resnet_twins(
    seed: int = 0,
    *,
    features: Sequence[int] = (4, 8),
    blocks: int = 1,
    classes: int = 5,
    size: int = 16,
):
    """``(model, variables, torch_module)``: a ``jaxplain.zoo.ResNet`` with random weights and
    BatchNorm statistics (:func:`init_variables`) and its torch twin (``None`` without torch)."""
    from jaxplain.zoo import ResNet

    model = ResNet(features=tuple(features), blocks=blocks, classes=classes)
    variables = init_variables(model, size, seed)
    try:
        module = make_torch_resnet(variables, features=features, blocks=blocks)
    except ImportError:
        module = None
    return model, variables, module


def logit_fn(model, variables) -> Callable:
    """``f(x, t)``: the logit of class ``t`` for ONE NHWC image ``x`` (BatchNorm in inference)."""
    return lambda x, t: model.apply(variables, x[None], train=False)[0, t]
