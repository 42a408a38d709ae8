"""A small CNN defined twice, in pure JAX and in torch, with identical weights.

Used by the Captum parity tests (tests/parity) and the benchmarks: the same numbers go into both
frameworks, so attributions can be compared element by element and timings like with like.

Architecture (``size=32, channels=(16, 32, 32, 32)`` is the benchmark CNN)::

    input (size, size, 3)
    conv3x3(c1) act  conv3x3(c2) act  avgpool2
    conv3x3(c3) act  conv3x3(c4) act  avgpool2
    flatten  [dense(hidden) act]  dense(classes)

``hidden=256, channels=(32, 32, 64, 64)`` is the second benchmark CNN (``hidden=None``, the
default, has no hidden dense layer). Convolutions use 'SAME' padding and stride 1 (torch: ``padding=1``); pooling is 2x2 average
pooling with stride 2. The JAX model takes NHWC batches, the torch model NCHW batches. Kernels
are stored HWIO (JAX) and become OIHW in torch; the torch model permutes its last activation to
NHWC before flattening, so the dense layer sees the features in the same order in both.

Example:
  >>> import torch
  >>> apply, params, module = make_twins(0, size=8, channels=(4, 4, 4, 4))
  >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
  >>> ours = np.asarray(apply(params, x))
  >>> theirs = module(torch.from_numpy(nhwc_to_nchw(x))).detach().numpy()
  >>> bool(np.allclose(ours, theirs, atol=1e-5))
  True
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "ACTS",
    "init_params",
    "make_jax_apply",
    "make_torch_module",
    "make_twins",
    "logit_fn",
    "nhwc_to_nchw",
    "nchw_to_nhwc",
]

# "linear" (alias "none") makes the network affine in x: its gradient is the same everywhere.
ACTS: dict[str, Callable] = {
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "tanh": jnp.tanh,
    "linear": lambda h: h,
    "none": lambda h: h,
}


def _seed_of(key_or_seed: Any) -> int:
    if isinstance(key_or_seed, (int, np.integer)) and not isinstance(key_or_seed, bool):
        return int(key_or_seed)
    key = key_or_seed
    if not jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


def init_params(
    key_or_seed: Any,
    *,
    size: int = 32,
    channels: tuple[int, int, int, int] = (16, 32, 32, 32),
    classes: int = 10,
    hidden: int | None = None,
    dtype: Any = np.float32,
) -> dict[str, np.ndarray]:
    """NumPy parameters: ``w1..w4`` (HWIO), ``b1..b4``, ``wd`` (features, classes), ``bd``;
    with ``hidden``, also ``wh`` (features, hidden) and ``bh``, and ``wd`` is (hidden, classes).

    Weights are He-scaled normals (``std = sqrt(2 / fan_in)``); biases are small nonzero normals,
    so a zero input is not a trivial point of the network.
    """
    if size % 4:
        raise ValueError(f"size must be a multiple of 4 (two 2x2 poolings), got {size}")
    if len(channels) != 4:
        raise ValueError(f"channels must have 4 entries, got {channels}")
    rng = np.random.default_rng(_seed_of(key_or_seed))
    params: dict[str, np.ndarray] = {}
    c_in = 3
    for i, c_out in enumerate(channels, start=1):
        fan_in = 9 * c_in
        w = rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2.0 / fan_in)
        params[f"w{i}"] = w.astype(dtype)
        params[f"b{i}"] = (rng.standard_normal(c_out) * 0.1).astype(dtype)
        c_in = c_out
    features = (size // 4) ** 2 * c_in
    if hidden is not None:
        wh = rng.standard_normal((features, hidden)) * np.sqrt(2.0 / features)
        params["wh"] = wh.astype(dtype)
        params["bh"] = (rng.standard_normal(hidden) * 0.1).astype(dtype)
        features = hidden
    wd = rng.standard_normal((features, classes)) * np.sqrt(1.0 / features)
    params["wd"] = wd.astype(dtype)
    params["bd"] = (rng.standard_normal(classes) * 0.1).astype(dtype)
    return params


def _conv(h, w, b):
    out = lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out + b


def _avgpool2(h):
    # The init value must be a concrete constant for reduce_window to be differentiable.
    window = (1, 2, 2, 1)
    return lax.reduce_window(h, np.zeros((), h.dtype), lax.add, window, window, "VALID") / 4


def make_jax_apply(act: str = "relu") -> Callable:
    """``apply(params, x) -> logits`` for an NHWC batch ``x`` of shape ``(N, H, W, 3)``."""
    if act not in ACTS:
        raise ValueError(f"unknown act {act!r}; choose one of {sorted(ACTS)}")
    a = ACTS[act]

    def apply(params, x):
        h = a(_conv(x, params["w1"], params["b1"]))
        h = a(_conv(h, params["w2"], params["b2"]))
        h = _avgpool2(h)
        h = a(_conv(h, params["w3"], params["b3"]))
        h = a(_conv(h, params["w4"], params["b4"]))
        h = _avgpool2(h)
        h = h.reshape(h.shape[0], -1)
        if "wh" in params:
            h = a(h @ params["wh"] + params["bh"])
        return h @ params["wd"] + params["bd"]

    return apply


def logit_fn(apply: Callable, params: Any) -> Callable:
    """``f(x, t)``: the logit of class ``t`` for ONE image ``x`` of shape ``(H, W, 3)``."""
    return lambda x, t: apply(params, x[None])[0, t]


def make_torch_module(params: dict[str, np.ndarray], act: str = "relu"):
    """The torch ``nn.Module`` (NCHW input) with the weights of ``params`` (:func:`init_params`)."""
    import torch
    from torch import nn

    acts = {
        "relu": nn.ReLU,
        "softplus": nn.Softplus,
        "tanh": nn.Tanh,
        "linear": nn.Identity,
        "none": nn.Identity,
    }
    if act not in acts:
        raise ValueError(f"unknown act {act!r}; choose one of {sorted(acts)}")

    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        np.dtype(params["w1"].dtype)
    ]

    def conv(i):
        w = params[f"w{i}"]  # HWIO
        m = nn.Conv2d(w.shape[2], w.shape[3], 3, padding=1, dtype=dtype)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))))  # OIHW
            m.bias.copy_(torch.from_numpy(np.asarray(params[f"b{i}"])))
        return m

    class TwinCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.act1 = conv(1), acts[act]()
            self.conv2, self.act2 = conv(2), acts[act]()
            self.pool1 = nn.AvgPool2d(2)
            self.conv3, self.act3 = conv(3), acts[act]()
            self.conv4, self.act4 = conv(4), acts[act]()
            self.pool2 = nn.AvgPool2d(2)
            self.hidden = None
            if "wh" in params:
                wh = params["wh"]
                self.hidden, self.act5 = nn.Linear(wh.shape[0], wh.shape[1], dtype=dtype), acts[act]()
                with torch.no_grad():
                    self.hidden.weight.copy_(torch.from_numpy(np.ascontiguousarray(wh.T)))
                    self.hidden.bias.copy_(torch.from_numpy(np.asarray(params["bh"])))
            wd = params["wd"]
            self.dense = nn.Linear(wd.shape[0], wd.shape[1], dtype=dtype)
            with torch.no_grad():
                self.dense.weight.copy_(torch.from_numpy(np.ascontiguousarray(wd.T)))
                self.dense.bias.copy_(torch.from_numpy(np.asarray(params["bd"])))

        def forward(self, x):  # x: (N, 3, H, W)
            h = self.act1(self.conv1(x))
            h = self.act2(self.conv2(h))
            h = self.pool1(h)
            h = self.act3(self.conv3(h))
            h = self.act4(self.conv4(h))
            h = self.pool2(h)
            h = h.permute(0, 2, 3, 1).flatten(1)  # NHWC order, as the JAX model flattens
            if self.hidden is not None:
                h = self.act5(self.hidden(h))
            return self.dense(h)

    return TwinCNN().eval()


def make_twins(
    key_or_seed: Any = 0,
    *,
    act: str = "relu",
    size: int = 32,
    channels: tuple[int, int, int, int] = (16, 32, 32, 32),
    classes: int = 10,
    hidden: int | None = None,
    dtype: Any = np.float32,
):
    """``(jax_apply, params, torch_module)`` with identical weights.

    ``jax_apply(params, x_nhwc) -> logits`` takes an ``(N, size, size, 3)`` batch; ``params`` is a
    dict of ``jnp`` arrays; ``torch_module`` takes ``(N, 3, size, size)``. ``torch_module`` is
    ``None`` when torch is not installed. For float64 enable ``jax_enable_x64`` first.
    """
    np_params = init_params(
        key_or_seed, size=size, channels=channels, classes=classes, hidden=hidden, dtype=dtype
    )
    params = {k: jnp.asarray(v) for k, v in np_params.items()}
    try:
        module = make_torch_module(np_params, act)
    except ImportError:
        module = None
    return make_jax_apply(act), params, module


def nhwc_to_nchw(x):
    """(N, H, W, C) -> (N, C, H, W) as a contiguous NumPy array."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1))


def nchw_to_nhwc(x):
    """(N, C, H, W) -> (N, H, W, C) as a contiguous NumPy array (accepts torch tensors)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.moveaxis(np.asarray(x), 1, -1))
