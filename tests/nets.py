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


def init_convnet(seed=0):
    """Parameters of Captum's ``BasicModel_ConvNet`` (its dense layers' weights are ones), the
    convolutions and biases drawn like torch's defaults."""
    import numpy as np

    rng = np.random.default_rng(seed)
    u = lambda shape, fan: jnp.asarray(rng.uniform(-1, 1, size=shape) / np.sqrt(fan), jnp.float32)
    return dict(w1=u((3, 3, 1, 2), 9), b1=u((2,), 9), w2=u((3, 3, 2, 4), 18), b2=u((4,), 18),
                w3=jnp.ones((4, 8), jnp.float32), b3=u((8,), 4),
                w4=jnp.ones((8, 10), jnp.float32), b4=u((10,), 8))


def convnet_features(p, x):
    """``BasicModel_ConvNet`` up to relu3 for one (10, 10, 1) image: (1, 8)."""
    dn = ("NHWC", "HWIO", "NHWC")
    pool = lambda h: lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = pool(jax.nn.relu(lax.conv_general_dilated(x[None], p["w1"], (1, 1), "VALID", dimension_numbers=dn) + p["b1"]))
    h = pool(jax.nn.relu(lax.conv_general_dilated(h, p["w2"], (1, 1), "VALID", dimension_numbers=dn) + p["b2"]))
    return jax.nn.relu(h.reshape(1, 4) @ p["w3"] + p["b3"])


def convnet_head(p, a, t):
    """fc2's logit ``t`` from relu3's output (Captum's model adds a softmax)."""
    return (a @ p["w4"] + p["b4"])[0, t]
