"""Tiny pure-JAX networks shared by the tests (the package's model zoo is for the demo)."""

import jax
import jax.numpy as jnp
from jax import lax

ACTS = {"relu": jax.nn.relu, "softplus": jax.nn.softplus, "tanh": jnp.tanh}


def init_cnn(key, *, size=8, channels=(4, 6), classes=3, dtype=jnp.float32):
    """Parameters of conv3x3 - act - conv3x3 - act - avgpool2 - dense, for (size, size, 3) inputs."""
    k = jax.random.split(key, 6)
    c1, c2 = channels
    return {
        "w1": jax.random.normal(k[0], (3, 3, 3, c1), dtype) * 0.4,
        "b1": jax.random.normal(k[1], (c1,), dtype) * 0.1,
        "w2": jax.random.normal(k[2], (3, 3, c1, c2), dtype) * 0.3,
        "b2": jax.random.normal(k[3], (c2,), dtype) * 0.1,
        "wd": jax.random.normal(k[4], ((size // 2) ** 2 * c2, classes), dtype) * 0.2,
        "bd": jax.random.normal(k[5], (classes,), dtype) * 0.1,
    }


def cnn(params, x, act="relu"):
    """Logits of one image x of shape (H, W, 3)."""
    a = ACTS[act]
    conv = lambda h, w: lax.conv_general_dilated(
        h[None], w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )[0]
    h = a(conv(x, params["w1"]) + params["b1"])
    h = a(conv(h, params["w2"]) + params["b2"])
    h = lax.reduce_window(h, 0.0, lax.add, (2, 2, 1), (2, 2, 1), "VALID") / 4.0
    return h.reshape(-1) @ params["wd"] + params["bd"]


def cnn_f(params, act="relu"):
    """f(x, t): the logit of class t for one image."""
    return lambda x, t: cnn(params, x, act)[t]
