"""Shared pieces of the LRP tests: NumPy references of the rules' arithmetic, layers written by
hand, and random variables for Linen models."""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxplain import zoo


def np_stab(z, eps):
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def stab_fn(z, xp=jnp):
    """A stabilizer given as a function (not of the form z + eps sign z)."""
    return 1.25 * z + xp.where(z >= 0, 0.1, -0.1)


def reference(rule, x, conn, bias, r_out, *, eps=1e-6, fn=False, alpha=2.0, beta=1.0, gamma=0.25, low=None, high=None):
    """Relevance at the input of one layer with connections ``conn = (I, J, w)`` (input index,
    output index, weight), per-output bias ``bias`` and output relevance ``r_out`` (all flat)."""
    I, J, w = conn
    n, m = x.size, bias.size
    b = bias
    pos, neg = (lambda a: np.maximum(a, 0.0)), (lambda a: np.minimum(a, 0.0))
    stab = (lambda z: stab_fn(z, np)) if fn else (lambda z: np_stab(z, eps))

    def colsum(c):  # sum over the inputs of each output
        return np.bincount(J, weights=c, minlength=m)

    def spread(c, denom, r):  # R_i = sum_j c_ij r_j / denom_j
        return np.bincount(I, weights=c * (r / denom)[J], minlength=n)

    zij = x[I] * w
    z = colsum(zij) + b
    if rule in ("epsilon", "norm"):
        return spread(zij, stab(z), r_out)
    if rule == "zero":
        return spread(zij, np.where(z == 0, 1.0, z), r_out)
    if rule == "zplus":  # positive contributions x+ w+ and x- w-, bias b+
        p = pos(zij)
        return spread(p, stab(colsum(p) + pos(b)), r_out)
    if rule == "alpha_beta":
        p, q = pos(zij), neg(zij)
        return alpha * spread(p, stab(colsum(p) + pos(b)), r_out) - beta * spread(q, stab(colsum(q) + neg(b)), r_out)
    if rule == "gamma":  # generalized: positive outputs favour positive contributions, and vice versa
        cp, cn = zij + gamma * pos(zij), zij + gamma * neg(zij)
        up = spread(cp, stab(colsum(cp) + b + gamma * pos(b)), r_out * (z > 0))
        down = spread(cn, stab(colsum(cn) + b + gamma * neg(b)), r_out * (z < 0))
        return up + down
    if rule == "flat":
        one = np.ones_like(w)
        return spread(one, stab(colsum(one)), r_out)
    if rule == "wsquare":
        return spread(w**2, stab(colsum(w**2) + b**2), r_out)
    if rule == "zbox":
        c = zij - low[I] * pos(w) - high[I] * neg(w)
        return spread(c, stab(colsum(c) + b - pos(b) - neg(b)), r_out)
    raise AssertionError(rule)


def dense_connections(W):
    n, m = W.shape
    I, J = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
    return I.ravel(), J.ravel(), W.ravel()


DN = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


def batched_conv(v, K, strides, padding, dilation=None):
    """A batched convolution of one example (the batch axis kept, for the bias to follow it)."""
    nd = v.ndim - 1
    return lax.conv_general_dilated(
        v[None], K, strides, padding, rhs_dilation=dilation or (1,) * nd, dimension_numbers=DN[nd]
    )


PAD = ((1, 1), (1, 1))


def random_variables(model, x_shape, seed, dtype=jnp.float32):
    """Variables of a Linen model drawn with NumPy (fast: no initializer runs): kernels
    N(0, 1/fan_in); biases mostly positive (units stay alive) and non-zero (rules that treat the
    bias differently differ); BatchNorm statistics and parameters random."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(x_shape, jnp.float32))

    def draw(path, leaf):
        name, shape = str(path[-1]), leaf.shape
        if "kernel" in name:
            v = rng.normal(size=shape) / np.sqrt(np.prod(shape[:-1]))
        elif "bias" in name:
            v = 0.1 + 0.1 * rng.normal(size=shape)
        elif "mean" in name:
            v = 0.3 * rng.normal(size=shape)
        elif "var" in name:
            v = rng.uniform(0.5, 2.0, shape)
        elif "scale" in name:
            v = rng.uniform(0.5, 1.5, shape)
        else:
            raise AssertionError(name)
        return jnp.asarray(v, dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def vgg(seed=0):
    model = zoo.VGG(features=(2, 3), classes=3)
    return model, random_variables(model, (1, 4, 4, 3), seed)
