"""Layer-wise relevance propagation: slow references per rule, conservation, kinds of operations,
composites, bad input, the transform contract and the BatchNorm canonizer.

The references are written in NumPy float64 straight from each rule's formula over the individual
contributions ``z_ij = x_i w_ij`` of a layer, given as a list of connections ``(i, j, w_ij)``: all
pairs for a dense layer, the pairs a convolution's loops visit for a convolution (so the flat rule's
"ones" and the z^B bounds reach exactly the taps inside the input, never the padding). Rules follow
Zennit 0.5.1: ``stab(z) = z + eps * sign(z)`` with ``sign(0) = +1``; LRP-0 replaces zero
denominators by one.
"""

import doctest
import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

import jaxplain as jx
import jaxplain.flax as jxf
from jaxplain import zoo
from tests.nets import cnn_f, init_cnn


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


# ============================================================================ slow references


def _np_stab(z, eps):
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def _stab_fn(z, xp=jnp):
    """A stabilizer given as a function (not of the form z + eps sign z)."""
    return 1.25 * z + xp.where(z >= 0, 0.1, -0.1)


def reference(rule, x, conn, bias, r_out, *, eps=1e-6, fn=False, alpha=2.0, beta=1.0, gamma=0.25, low=None, high=None):
    """Relevance at the input of one layer with connections ``conn = (I, J, w)`` (input index,
    output index, weight), per-output bias ``bias`` and output relevance ``r_out`` (all flat)."""
    I, J, w = conn
    n, m = x.size, bias.size
    b = bias
    pos, neg = (lambda a: np.maximum(a, 0.0)), (lambda a: np.minimum(a, 0.0))
    stab = (lambda z: _stab_fn(z, np)) if fn else (lambda z: _np_stab(z, eps))

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


def conv_connections(in_shape, K, strides, padding, dilation):
    """Connections of ``lax.conv_general_dilated`` (channels last, kernel ``(*k, C_in, C_out)``),
    from its loops: output position o and tap k read input position o * s - pad_lo + k * d."""
    spatial, nd = in_shape[:-1], len(in_shape) - 1
    ksp, (ci_n, co_n) = K.shape[:nd], K.shape[nd:]
    out_sp = tuple(
        (spatial[a] + padding[a][0] + padding[a][1] - dilation[a] * (ksp[a] - 1) - 1) // strides[a] + 1
        for a in range(nd)
    )
    out_shape = (*out_sp, co_n)
    I, J, w = [], [], []
    for o in np.ndindex(*out_sp):
        for k in np.ndindex(*ksp):
            p = tuple(o[a] * strides[a] - padding[a][0] + k[a] * dilation[a] for a in range(nd))
            if not all(0 <= p[a] < spatial[a] for a in range(nd)):
                continue
            for ci in range(ci_n):
                for co in range(co_n):
                    I.append(np.ravel_multi_index((*p, ci), in_shape))
                    J.append(np.ravel_multi_index((*o, co), out_shape))
                    w.append(K[(*k, ci, co)])
    return (np.array(I), np.array(J), np.array(w)), out_shape


_DN = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


def _conv(v, K, strides, padding, dilation=None):
    """A batched convolution of one example (the batch axis kept, for the bias to follow it)."""
    nd = v.ndim - 1
    return lax.conv_general_dilated(
        v[None], K, strides, padding, rhs_dilation=dilation or (1,) * nd, dimension_numbers=_DN[nd]
    )


# Rule cases: (builder(low, high) -> jaxplain rule, reference options).
RULES = {
    "zero": (lambda lo, hi: jx.rules.zero, dict(rule="zero")),
    "epsilon": (lambda lo, hi: jx.rules.epsilon, dict(rule="epsilon", eps=1e-6)),
    "epsilon_0.25": (lambda lo, hi: jx.rules.epsilon(epsilon=0.25), dict(rule="epsilon", eps=0.25)),
    "epsilon_2": (lambda lo, hi: jx.rules.epsilon(epsilon=2.0), dict(rule="epsilon", eps=2.0)),
    "epsilon_fn": (lambda lo, hi: jx.rules.epsilon(epsilon=_stab_fn), dict(rule="epsilon", fn=True)),
    "norm": (lambda lo, hi: jx.rules.norm, dict(rule="norm", eps=1e-6)),
    "zplus": (lambda lo, hi: jx.rules.zplus, dict(rule="zplus")),
    "zplus_0.1": (lambda lo, hi: jx.rules.zplus(stabilizer=0.1), dict(rule="zplus", eps=0.1)),
    "alpha1_beta0": (lambda lo, hi: jx.rules.alpha1_beta0, dict(rule="alpha_beta", alpha=1.0, beta=0.0)),
    "alpha2_beta1": (lambda lo, hi: jx.rules.alpha2_beta1, dict(rule="alpha_beta", alpha=2.0, beta=1.0)),
    "alpha3_beta2": (lambda lo, hi: jx.rules.alpha_beta(alpha=3, beta=2), dict(rule="alpha_beta", alpha=3.0, beta=2.0)),
    "gamma": (lambda lo, hi: jx.rules.gamma, dict(rule="gamma", gamma=0.25)),
    "gamma_1_fn": (
        lambda lo, hi: jx.rules.gamma(gamma=1.0, stabilizer=_stab_fn),
        dict(rule="gamma", gamma=1.0, fn=True),
    ),
    "flat": (lambda lo, hi: jx.rules.flat, dict(rule="flat")),
    "wsquare": (lambda lo, hi: jx.rules.wsquare, dict(rule="wsquare")),
    "zbox": (lambda lo, hi: jx.rules.zbox(low=lo, high=hi), dict(rule="zbox")),
}


def _check_against_reference(name, layer, conn, bias_out, x0, c, lo, hi, *, relu_first=False):
    """``f(x) = sum(layer(x) * c)`` explained with the rule on the layer and LRP-0 on the final sum
    (so the layer's output relevance is exactly ``z * c``), against the reference."""
    build, opts = RULES[name]
    rule = build(jnp.asarray(lo), jnp.asarray(hi))
    x = np.maximum(x0, 0.0) if relu_first else x0
    pre = jax.nn.relu if relu_first else (lambda v: v)
    f = lambda v: jnp.sum(layer(pre(v)) * c)
    z = np.asarray(layer(jnp.asarray(x))).ravel()
    I, J, w = conn
    z_ref = np.bincount(J, weights=x.ravel()[I] * w, minlength=z.size) + bias_out
    np.testing.assert_allclose(z, z_ref, rtol=1e-12, atol=1e-12)  # the connections are the layer
    opts = dict(opts)
    if opts["rule"] == "zbox":
        opts["low"] = np.broadcast_to(lo, x.shape).ravel()
        opts["high"] = np.broadcast_to(hi, x.shape).ravel()
    ref = reference(opts.pop("rule"), x.ravel(), conn, bias_out, z * np.asarray(c).ravel(), **opts).reshape(x.shape)
    composite = jx.composites.custom(default=rule, types={"sum": jx.rules.zero})
    got = jx.lrp(f, rules=composite)(jnp.asarray(x0))
    assert got.dtype == jnp.float64 and got.shape == x0.shape
    scale = np.abs(ref).max()
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10, atol=1e-12 * scale)


# relu_x: the layer's input is known non-negative (it comes from a ReLU), a case the propagation
# simplifies (the x- branches vanish)
DENSE_CASES = [(name, False) for name in RULES] + [
    (name, True) for name in ("epsilon_0.25", "zplus", "alpha2_beta1", "gamma", "gamma_1_fn", "wsquare", "zbox")
]


@pytest.mark.parametrize("name,relu_first", DENSE_CASES)
def test_dense_layer_rules_match_reference(x64, name, relu_first):
    rng = np.random.default_rng(0)
    n, m = 7, 5
    x0 = rng.uniform(-2.0, 2.0, n)
    W = rng.normal(size=(n, m))
    b = 0.7 * rng.normal(size=m)
    c = rng.normal(size=m)
    lo, hi = -2.0 - rng.uniform(0, 1, n), 2.0 + rng.uniform(0, 1, n)  # per-feature z^B bounds
    Wj, bj, cj = jnp.asarray(W), jnp.asarray(b), jnp.asarray(c)
    layer = lambda v: v @ Wj + bj
    _check_against_reference(name, layer, dense_connections(W), b, x0, cj, lo, hi, relu_first=relu_first)


def test_zero_denominators_drop_relevance_instead_of_nan(x64):
    """An output with z = 0 (a zero weight column and no bias) holds no relevance: LRP-0 replaces its
    zero denominator by one (0 / 1 instead of 0 / 0), and epsilon stabilizes it to +eps."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=4)
    W = rng.normal(size=(4, 3))
    W[:, 1] = 0.0
    Wj = jnp.asarray(W)
    f = lambda v: jnp.sum(v @ Wj)
    z = x @ W
    ref = reference("zero", x, dense_connections(W), np.zeros(3), z)
    assert np.all(np.isfinite(ref))
    for rule in (jx.rules.zero, jx.rules.epsilon, jx.rules.zplus):
        composite = jx.composites.custom(default=rule, types={"sum": jx.rules.zero})
        r = np.asarray(jx.lrp(f, rules=composite)(jnp.asarray(x)))
        assert np.all(np.isfinite(r)), rule
        if rule.name == "zero":
            np.testing.assert_allclose(r, ref, rtol=1e-10)


# (input shape, kernel shape, strides, padding, dilation)
CONVS = {
    "conv1d": ((7, 2), (3, 2, 3), (1,), ((1, 1),), (1,)),
    "conv2d": ((5, 6, 2), (3, 3, 2, 3), (2, 1), ((1, 1), (0, 1)), (1, 2)),
    "conv3d": ((3, 4, 3, 2), (2, 2, 2, 2, 3), (1, 1, 1), ((0, 1), (1, 0), (0, 0)), (1, 1, 1)),
}
CONV_CASES = [("conv2d", name) for name in RULES] + [
    (conv, name)
    for conv in ("conv1d", "conv3d")
    for name in ("epsilon_0.25", "zplus", "alpha2_beta1", "gamma", "flat", "zbox")
]


@pytest.mark.parametrize("conv,name", CONV_CASES)
def test_conv_layer_rules_match_reference(x64, conv, name):
    in_shape, k_shape, strides, padding, dilation = CONVS[conv]
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-2.0, 2.0, in_shape)
    K = rng.normal(size=k_shape)
    b = 0.7 * rng.normal(size=k_shape[-1])
    lo = -2.0 - rng.uniform(0, 1, in_shape[-1])  # per-channel z^B bounds
    hi = 2.0 + rng.uniform(0, 1, in_shape[-1])
    conn, out_shape = conv_connections(in_shape, K, strides, padding, dilation)
    c = jnp.asarray(rng.normal(size=out_shape))
    Kj, bj = jnp.asarray(K), jnp.asarray(b)
    layer = lambda v: (_conv(v, Kj, strides, padding, dilation) + bj)[0]
    bias_out = np.broadcast_to(b, out_shape).ravel()
    _check_against_reference(name, layer, conn, bias_out, x0, c, lo, hi)


@pytest.mark.parametrize("name", ["epsilon", "zplus", "gamma"])
def test_bias_added_after_dropping_the_batch_axis_is_still_the_layer_bias(x64, name):
    """``conv(x[None])[0] + b`` (as in tests/nets.py) and ``(conv(x[None]) + b)[0]`` are the same
    layer: a squeeze between the convolution and its bias must not turn the bias into a separate
    pass-through operation."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(5, 5, 2)))
    K = jnp.asarray(rng.normal(size=(3, 3, 2, 3)))
    b = jnp.asarray(rng.normal(size=3))
    c = jnp.asarray(rng.normal(size=(5, 5, 3)))
    pad = ((1, 1), (1, 1))
    batched = lambda v: jnp.sum((_conv(v, K, (1, 1), pad) + b)[0] * c)
    squeezed = lambda v: jnp.sum((_conv(v, K, (1, 1), pad)[0] + b) * c)
    composite = jx.composites.custom(default=RULES[name][0](None, None), types={"sum": jx.rules.zero})
    expected = jx.lrp(batched, rules=composite)(x)
    np.testing.assert_allclose(jx.lrp(squeezed, rules=composite)(x), expected, rtol=1e-10, atol=1e-12)


# ============================================================================ conservation


def _mlp(seed=0, dtype=jnp.float64):
    """A bias-free ReLU MLP 6 -> 8 -> 7 -> 1 and its input, with f(x) > 0."""
    rng = np.random.default_rng(seed)
    W1, W2 = jnp.asarray(rng.normal(size=(6, 8)), dtype), jnp.asarray(rng.normal(size=(8, 7)) / 2, dtype)
    w3, x = jnp.asarray(rng.normal(size=7), dtype), jnp.asarray(rng.normal(size=6), dtype)
    if jax.nn.relu(jax.nn.relu(x @ W1) @ W2) @ w3 < 0:
        w3 = -w3
    parts = [lambda a: jax.nn.relu(a @ W1), lambda a: jax.nn.relu(a @ W2), lambda a: a @ w3]
    return parts, x, (W1, W2, w3)


_PAD = ((1, 1), (1, 1))


def _cnn(seed=0, dtype=jnp.float64):
    """A bias-free ReLU CNN: conv 3x3 (3 -> 4) - relu - 2x2 average pool - flatten - dense -> 1."""
    rng = np.random.default_rng(seed)
    K = jnp.asarray(rng.normal(size=(3, 3, 3, 4)) / 2, dtype)
    w = jnp.asarray(rng.normal(size=3 * 3 * 4), dtype)
    x = jnp.asarray(rng.normal(size=(6, 6, 3)), dtype)
    pool = lambda a: lax.reduce_window(a, 0.0, lax.add, (2, 2, 1), (2, 2, 1), "VALID") / 4.0
    conv = lambda a: jax.nn.relu(_conv(a, K, (1, 1), _PAD)[0])
    if pool(conv(x)).reshape(-1) @ w < 0:
        w = -w
    parts = [conv, pool, lambda a: a.reshape(-1) @ w]
    return parts, x, (K, w)


def _chain(parts, start=0):
    def f(a):
        for p in parts[start:]:
            a = p(a)
        return a

    return f


@pytest.mark.parametrize("net", ["mlp", "cnn"])
@pytest.mark.parametrize("rule", ["zero", "epsilon_1e-9"])
def test_conservation_on_bias_free_relu_nets(net, rule):
    """LRP-0 and epsilon -> 0 on a bias-free ReLU network: the relevances sum to f(x)."""
    parts, x, _ = (_mlp if net == "mlp" else _cnn)(seed=3, dtype=jnp.float32)
    f = _chain(parts)
    r = jx.lrp(f, rules=jx.rules.zero if rule == "zero" else jx.rules.epsilon(epsilon=1e-9))(x)
    assert r.shape == x.shape and r.dtype == jnp.float32
    assert float(jnp.sum(jnp.abs(r))) > 0
    np.testing.assert_allclose(float(jnp.sum(r)), float(f(x)), rtol=1e-4)


def test_large_epsilon_absorbs_relevance(x64):
    """With a large epsilon the magnitude of the total relevance drops below |f(x)|."""
    parts, x, _ = _mlp(seed=4)
    f = _chain(parts)
    total = float(jnp.sum(jx.lrp(f, rules=jx.rules.epsilon(epsilon=1.0))(x)))
    assert abs(total) < 0.99 * abs(float(f(x)))


@pytest.mark.parametrize("net", ["mlp", "cnn"])
@pytest.mark.parametrize("name", ["zplus", "alpha2_beta1"])
def test_layerwise_conservation_zplus_and_alpha_beta(x64, net, name):
    """z+ and alpha2-beta1 conserve relevance layer by layer on a bias-free net with f(x) > 0.

    The relevance arriving at the input ``a_k`` of part k is obtained by splitting the network:
    explaining ``f_k(a) = (rest of the net from part k on)(a)`` at ``a_k`` runs exactly the backward
    pass of the full explanation from the top down to ``a_k`` (the rules only see the forward values
    of the layers above). The total at each split point must equal the next one's and, at the top,
    f(x). Preconditions (asserted): every output of a layer that receives relevance has a positive
    contribution (it is an active ReLU or the positive output), and, for alpha-beta, a negative one
    too (else the beta term has nothing to take relevance from and alpha * R is passed down).
    """
    parts, x, _ = (_mlp if net == "mlp" else _cnn)(seed=5)
    # a tiny stabilizer (and LRP-0 on the average pooling), so that only the rule's own
    # redistribution is measured, not what stabilizers absorb
    layer_rule = jx.rules.zplus(stabilizer=1e-12) if name == "zplus" else jx.rules.alpha2_beta1(stabilizer=1e-12)
    rule = jx.composites.custom(default=layer_rule, types={"avg_pool": jx.rules.zero})
    acts = [x]
    for p in parts[:-1]:
        acts.append(p(acts[-1]))
    fx = float(_chain(parts)(x))
    assert fx > 0
    totals = [float(jnp.sum(jx.lrp(_chain(parts, k), rules=rule)(acts[k]))) for k in range(len(parts))]
    if name == "alpha2_beta1":  # precondition: mixed-sign contributions wherever relevance flows
        if net == "mlp":
            W1, W2, w3 = _mlp(seed=5)[2]
            layers = [
                (acts[0], dense_connections(np.asarray(W1)), acts[1]),
                (acts[1], dense_connections(np.asarray(W2)), acts[2]),
            ]
        else:
            K, w = _cnn(seed=5)[2]
            layers = [(acts[0], conv_connections(x.shape, np.asarray(K), (1, 1), _PAD, (1, 1))[0], acts[1])]
            w3 = w
        layers.append((acts[-1].reshape(-1), dense_connections(np.asarray(w3)[:, None]), np.ones(1)))
        for a, (I, J, wv), out in layers:
            zij = np.asarray(a).ravel()[I] * wv
            n_neg = np.bincount(J, weights=zij < 0, minlength=np.size(out))
            assert np.all((np.asarray(out).ravel() <= 0) | (n_neg > 0)), "precondition"
    # totals[0] is the full explanation's total
    np.testing.assert_allclose(totals, [fx] * len(parts), rtol=1e-9)


# ============================================================================ residual


def test_residual_addition_conserves_and_splits_in_proportion(x64):
    """y = relu(relu(x W1) W2) + x; f = y . w3. LRP-0: the add hands y's relevance to its two
    terms in proportion to them (norm rule, stabilizer 1e-6), nothing is counted twice."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=5)
    W1, W2, w3 = rng.normal(size=(5, 7)), rng.normal(size=(7, 5)) / 2, rng.normal(size=5)
    W1j, W2j, w3j = map(jnp.asarray, (W1, W2, w3))
    f = lambda v: (jax.nn.relu(jax.nn.relu(v @ W1j) @ W2j) + v) @ w3j
    r = np.asarray(jx.lrp(f, rules=jx.rules.zero)(jnp.asarray(x)))
    # by hand
    z1 = x @ W1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ W2
    u = np.maximum(z2, 0)
    y = u + x
    r_y = y * w3  # LRP-0 of the last layer: R_j = y_j w3_j f / f
    share = r_y / _np_stab(y, 1e-6)
    r_u, r_skip = u * share, x * share
    r_a1 = a1 * (W2 @ (r_u / z2))  # relu passes relevance through: R(z2) = R(u)
    r_x = r_skip + x * (W1 @ (r_a1 / z1))
    np.testing.assert_allclose(r, r_x, rtol=1e-10, atol=1e-12)
    fx = float(f(jnp.asarray(x)))
    np.testing.assert_allclose(r.sum(), fx, rtol=1e-5)
    assert abs(r.sum() - 2 * fx) > 0.5 * abs(fx)


# ============================================================================ kinds of operations


ACTIVATIONS = {
    "gelu_tanh": lambda v: jax.nn.gelu(v, approximate=True),
    "gelu_erf": lambda v: jax.nn.gelu(v, approximate=False),
    "elu": jax.nn.elu,
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "silu": jax.nn.silu,
    "leaky_where": lambda v: jnp.where(v > 0, v, 0.1 * v),
    "flax_gelu": nn.gelu,
}


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_activations_pass_relevance_through(x64, act):
    """f = act(x W1) . w2 with LRP-0: the relevance at z1 is the relevance at act(z1), unchanged."""
    rng = np.random.default_rng(7)
    x, W1, w2 = rng.normal(size=4), rng.normal(size=(4, 6)), rng.normal(size=6)
    g = ACTIVATIONS[act]
    f = lambda v: g(v @ jnp.asarray(W1)) @ jnp.asarray(w2)
    z1 = x @ W1
    a = np.asarray(g(jnp.asarray(z1)))
    expected = x * (W1 @ (a * w2 / z1))
    np.testing.assert_allclose(jx.lrp(f, rules=jx.rules.zero)(jnp.asarray(x)), expected, rtol=1e-10, atol=1e-12)


def test_max_pooling_routes_relevance_to_the_winner(x64):
    rng = np.random.default_rng(8)
    x = rng.permutation(np.linspace(-3, 3, 32)).reshape(4, 4, 2)  # distinct values: no ties
    w = rng.normal(size=8)
    wj = jnp.asarray(w)
    f = lambda v: nn.max_pool(v[None], (2, 2), strides=(2, 2))[0].reshape(-1) @ wj
    r = np.asarray(jx.lrp(f, rules=jx.rules.zero)(jnp.asarray(x)))
    expected = np.zeros_like(x)
    pooled_r = (x.reshape(2, 2, 2, 2, 2).max(axis=(1, 3)).reshape(-1) * w).reshape(2, 2, 2)
    for i, j, ch in np.ndindex(2, 2, 2):
        win = x[2 * i : 2 * i + 2, 2 * j : 2 * j + 2, ch]
        a, b = np.unravel_index(np.argmax(win), (2, 2))
        expected[2 * i + a, 2 * j + b, ch] = pooled_r[i, j, ch]
    np.testing.assert_allclose(r, expected, rtol=1e-12, atol=1e-12)
    # a global maximum (reduce_max) too
    g = lambda v: jnp.max(v, axis=(0, 1)) @ wj[:2]
    r = np.asarray(jx.lrp(g, rules=jx.rules.zero)(jnp.asarray(x)))
    expected = np.zeros_like(x)
    for ch in range(2):
        a, b = np.unravel_index(np.argmax(x[..., ch]), (4, 4))
        expected[a, b, ch] = x[a, b, ch] * w[ch]
    np.testing.assert_allclose(r, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stabilizer", [None, 0.5])
def test_average_pooling_splits_in_proportion(x64, stabilizer):
    """avg_pool = window mean m = s / 4, one operation for the norm rule:
    R_i = x_i R_m / (4 stab(m)), the stabilizer on the mean as Zennit's Norm on an AvgPool."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(4, 4, 2))
    w = rng.normal(size=8)
    wj = jnp.asarray(w)
    f = lambda v: nn.avg_pool(v[None], (2, 2), strides=(2, 2))[0].reshape(-1) @ wj
    eps = 1e-6 if stabilizer is None else stabilizer
    types = {} if stabilizer is None else {"avg_pool": jx.rules.norm(stabilizer=stabilizer)}
    r = np.asarray(jx.lrp(f, rules=jx.composites.custom(default=jx.rules.zero, types=types))(jnp.asarray(x)))
    m = x.reshape(2, 2, 2, 2, 2).sum(axis=(1, 3)) / 4  # (2, 2, 2) window means
    r_m = m * w.reshape(2, 2, 2)
    expected = x * np.repeat(np.repeat(r_m / (4 * _np_stab(m, eps)), 2, 0), 2, 1)
    np.testing.assert_allclose(r, expected, rtol=1e-10, atol=1e-12)


def test_global_mean_splits_in_proportion(x64):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 3, 2))
    w = rng.normal(size=2)
    f = lambda v: jnp.mean(v, axis=(0, 1)) @ jnp.asarray(w)
    r = np.asarray(jx.lrp(f, rules=jx.rules.zero)(jnp.asarray(x)))
    m = x.sum(axis=(0, 1)) / 9
    expected = x * (m * w) / (9 * _np_stab(m, 1e-6))
    np.testing.assert_allclose(r, expected, rtol=1e-10, atol=1e-12)


def test_reshape_and_transpose_move_relevance(x64):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 3, 4))
    w = rng.normal(size=24)
    wj = jnp.asarray(w)
    f = lambda v: v.reshape(-1) @ wj
    np.testing.assert_allclose(jx.lrp(f, rules=jx.rules.zero)(jnp.asarray(x)), x * w.reshape(2, 3, 4), rtol=1e-12)
    g = lambda v: jnp.transpose(v, (2, 0, 1)).reshape(-1) @ wj
    expected = x * np.transpose(w.reshape(4, 2, 3), (1, 2, 0))
    np.testing.assert_allclose(jx.lrp(g, rules=jx.rules.zero)(jnp.asarray(x)), expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_upsampling_is_a_linear_layer_that_conserves(x64, method):
    """jax.image.resize (which Captum's LRP rejects as a module without a rule) traces to linear
    operations with constant weights: with LRP-0 relevance is conserved through it, and each
    upsampled value's relevance goes back to the input values it was interpolated from."""
    rng = np.random.default_rng(12)
    x = jnp.asarray(rng.uniform(0.1, 1.0, size=(4, 4, 2)))
    w = jnp.asarray(rng.uniform(0.1, 1.0, size=8 * 8 * 2))
    f = lambda v: jax.image.resize(v, (8, 8, 2), method).reshape(-1) @ w
    r = jx.lrp(f, rules=jx.rules.zero)(x)
    np.testing.assert_allclose(r.sum(), f(x), rtol=1e-10)
    assert bool(jnp.all(r > 0))  # positive inputs, weights and interpolation: positive relevance
    if method == "nearest":  # each input value owns a 2x2 block of the output
        blocks = (x[:, None, :, None, :] * w.reshape(4, 2, 4, 2, 2)).sum(axis=(1, 3))
        np.testing.assert_allclose(r, blocks, rtol=1e-10)


def test_embedding_lookup_moves_relevance_to_the_table_rows(x64):
    """x is an embedding table (V, D); f(x, ids) = x[ids] flattened, then a dense layer. The
    relevance of each looked-up row goes back to that row (summed over repeats); other rows get 0."""
    rng = np.random.default_rng(12)
    table = rng.normal(size=(6, 3))
    ids = np.array([4, 1, 4, 0])
    w = rng.normal(size=12)
    f = lambda t, i: t[i].reshape(-1) @ jnp.asarray(w)
    r = np.asarray(jx.lrp(f, rules=jx.rules.zero)(jnp.asarray(table), jnp.asarray(ids)))
    r_rows = table[ids] * w.reshape(4, 3)
    expected = np.zeros_like(table)
    np.add.at(expected, ids, r_rows)
    np.testing.assert_allclose(r, expected, rtol=1e-12, atol=1e-12)
    assert np.all(r[[2, 3, 5]] == 0)


def test_product_of_two_x_dependent_values_needs_a_rule(x64):
    rng = np.random.default_rng(13)
    x, W = rng.normal(size=4), rng.normal(size=(4, 4))
    Wj = jnp.asarray(W)
    f = lambda v: jnp.sum(v * (v @ Wj))
    with pytest.raises(ValueError, match=r"'mul'") as err:
        jx.lrp(f, rules=jx.rules.zero)(jnp.asarray(x))
    assert "types={'mul'" in str(err.value) and "jaxplain.rules.gradient" in str(err.value)
    # With the gradient rule for mul: R(p) = p (LRP-0 on the sum), then the product's backward pass
    # sends R(p) * z to x and R(p) * x to z = x W, which LRP-0 takes back to x.
    composite = jx.composites.custom(default=jx.rules.zero, types={"mul": jx.rules.gradient, "sum": jx.rules.zero})
    r = np.asarray(jx.lrp(f, rules=composite)(jnp.asarray(x)))
    z = x @ W
    p = x * z
    expected = p * z + x * (W @ (p * x / z))
    np.testing.assert_allclose(r, expected, rtol=1e-10, atol=1e-12)


# ============================================================================ composites


def _scoped_net(seed=14):
    """dense d0 -> reshape -> conv c -> relu -> conv c2 -> relu -> flatten -> dense d1 -> relu ->
    dense d2, with biases, every layer under a jax.named_scope so that paths name it."""
    rng = np.random.default_rng(seed)
    p = {
        "W0": rng.normal(size=(5, 32)), "b0": rng.normal(size=32) * 0.3,
        "K": rng.normal(size=(3, 3, 2, 3)) / 2, "bK": rng.normal(size=3) * 0.3,
        "K2": rng.normal(size=(3, 3, 3, 2)) / 2, "bK2": rng.normal(size=2) * 0.3,
        "W1": rng.normal(size=(32, 6)) / 4, "b1": rng.normal(size=6) * 0.3,
        "w2": rng.normal(size=6), "b2": 0.2,
    }
    p = {k: jnp.asarray(v) for k, v in p.items()}

    def f(x):
        with jax.named_scope("d0"):
            h = x @ p["W0"] + p["b0"]
        h = jax.nn.relu(h).reshape(4, 4, 2)
        with jax.named_scope("c"):
            h = (_conv(h, p["K"], (1, 1), _PAD) + p["bK"])[0]
        h = jax.nn.relu(h)
        with jax.named_scope("c2"):
            h = (_conv(h, p["K2"], (1, 1), _PAD) + p["bK2"])[0]
        h = jax.nn.relu(h).reshape(-1)
        with jax.named_scope("d1"):
            h = h @ p["W1"] + p["b1"]
        h = jax.nn.relu(h)
        with jax.named_scope("d2"):
            return h @ p["w2"] + p["b2"]

    return f, jnp.asarray(rng.uniform(-1, 1, 5))


def test_position_rules_pick_the_intended_layers(x64):
    f, x = _scoped_net()
    eps, zp, zero, flat = jx.rules.epsilon(epsilon=0.1), jx.rules.zplus, jx.rules.zero, jx.rules.flat
    C = jx.composites.custom
    cache = {}

    def lrp(comp):
        if comp not in cache:
            cache[comp] = np.asarray(jx.lrp(f, rules=comp)(x))
        return cache[comp]

    base = lrp(C(default=eps))
    cases = [
        (C(default=eps, first=flat), C(default=eps, paths={"d0": flat})),
        (C(default=eps, first={"conv": flat}), C(default=eps, paths={"c": flat})),
        (C(default=eps, first={"dense": flat}), C(default=eps, paths={"d0": flat})),
        (C(default=eps, last=zp), C(default=eps, paths={"d2": zp})),
        (C(default=eps, head=zp), C(default=eps, paths={"d1": zp, "d2": zp})),
        # paths beat position rules, position rules beat types
        (C(default=eps, first=flat, paths={"d0": zp}), C(default=eps, paths={"d0": zp})),
        (C(types={"dense": zero}, last=zp, default=eps), C(default=eps, paths={"d0": zero, "d1": zero, "d2": zp})),
    ]
    for k, (positional, by_path) in enumerate(cases):
        got, want = lrp(positional), lrp(by_path)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"case {k}")
        assert not np.allclose(got, base, rtol=1e-6), f"case {k}: the rule had no effect"


def _random_variables(model, x_shape, seed, dtype=jnp.float32):
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


def _vgg(seed=0):
    model = zoo.VGG(features=(2, 3), classes=3)
    return model, _random_variables(model, (1, 4, 4, 3), seed)


def test_path_rules_on_a_linen_model():
    model, variables = _vgg()
    f = jxf.from_linen(model, variables)
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (4, 4, 3)), jnp.float32)
    C = jx.composites.custom
    eps, zp, zero = jx.rules.epsilon(epsilon=0.01), jx.rules.zplus, jx.rules.zero
    lrp = lambda comp: np.asarray(jx.lrp(f, rules=comp)(x, 1))
    # each path composite equals a composite by type that differs from every rule having matched
    # nothing (all-epsilon) and from the other pair
    head = lrp(C(default=eps, paths={"head": zero}))
    assert np.abs(head).sum() > 0.1 * abs(float(f(x, 1)))
    np.testing.assert_allclose(head, lrp(C(types={"conv": eps, "dense": zero})), rtol=1e-5, atol=1e-7)
    convs = lrp(C(default=eps, paths={"stage*/*": zp}))
    np.testing.assert_allclose(convs, lrp(C(types={"conv": zp, "dense": eps})), rtol=1e-5, atol=1e-7)
    assert not np.allclose(convs, head, rtol=1e-3)


def test_epsilon_gamma_box_puts_zbox_on_the_first_convolution_only(x64):
    C = jx.composites.custom
    gamma, eps, norm = jx.rules.gamma(gamma=0.25), jx.rules.epsilon, jx.rules.norm
    box = jx.rules.zbox(low=-1.5, high=2.0)
    manual_types = {"conv": gamma, "dense": eps, "sum": norm, "avg_pool": norm}
    # d0 (dense) -> c -> c2 (convolutions) -> d1 -> d2: z^B goes to c only; the dense layer before
    # it keeps its epsilon rule and c2 gets gamma
    g, x = _scoped_net()
    got = np.asarray(jx.lrp(g, rules=jx.composites.epsilon_gamma_box(low=-1.5, high=2.0))(x))
    np.testing.assert_allclose(got, jx.lrp(g, rules=C(types=manual_types, paths={"c": box}))(x), rtol=1e-10, atol=1e-12)
    assert not np.allclose(got, jx.lrp(g, rules=C(types=manual_types))(x), rtol=1e-4)


def test_presets_are_their_rules_by_type(x64):
    f, x = _scoped_net()
    C = jx.composites.custom
    eps, norm = jx.rules.epsilon, jx.rules.norm
    pairs = {
        "epsilon_plus": (
            jx.composites.epsilon_plus(),
            C(types={"conv": jx.rules.zplus, "dense": eps, "sum": norm, "avg_pool": norm}),
        ),
        "epsilon_alpha2_beta1_flat": (
            jx.composites.epsilon_alpha2_beta1_flat(),
            C(types={"conv": jx.rules.alpha2_beta1, "dense": eps}, paths={"d0": jx.rules.flat}),
        ),
        # the default composite is epsilon_plus_flat
        "default": (None, C(types={"conv": jx.rules.zplus, "dense": eps}, paths={"d0": jx.rules.flat})),
    }
    for name, (preset, manual) in pairs.items():
        got = jx.lrp(f)(x) if preset is None else jx.lrp(f, rules=preset)(x)
        np.testing.assert_allclose(got, jx.lrp(f, rules=manual)(x), rtol=1e-10, atol=1e-12, err_msg=name)


# ============================================================================ bad input


def test_bad_rules_and_composites_raise():
    with pytest.raises(ValueError, match="alpha - beta"):
        jx.rules.alpha_beta(alpha=2.0, beta=0.5)
    with pytest.raises(ValueError, match="alpha - beta"):
        jx.rules.alpha_beta(alpha=3.0)  # beta stays 1
    with pytest.raises(TypeError, match="bounds"):
        jx.rules.zbox()
    with pytest.raises(TypeError, match="bounds"):
        jx.rules.zbox(low=0.0)
    with pytest.raises(ValueError, match="low must be <= high"):
        jx.rules.zbox(low=1.0, high=0.0)
    with pytest.raises(ValueError, match="low must be <= high"):
        jx.rules.zbox(low=jnp.array([0.0, 2.0]), high=jnp.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="zbox"):
        jx.composites.custom(first=jx.rules.zbox)
    f = lambda v: jnp.sum(v @ jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="zbox"):
        jx.lrp(f, rules=jx.rules.zbox)
    with pytest.raises(TypeError, match="must be a rule"):
        jx.composites.custom(types={"dense": "epsilon"})
    with pytest.raises(TypeError, match="must be a rule"):
        jx.composites.custom(default=0.1)
    with pytest.raises(TypeError, match="must be a rule"):
        jx.composites.custom(paths={"head": jx.composites.epsilon_plus()})
    with pytest.raises(TypeError, match=r"composite factory; call it"):
        jx.lrp(f, rules=jx.composites.epsilon_plus)
    with pytest.raises(TypeError, match="rules must be a composite"):
        jx.lrp(f, rules="epsilon")
    with pytest.raises(ValueError, match="pass_through"):
        jx.lrp(f, rules=jx.rules.pass_through)
    with pytest.raises(ValueError, match="needs a dense or convolution layer"):  # z+ on a sum
        jx.lrp(f, rules=jx.composites.custom(default=jx.rules.epsilon, types={"sum": jx.rules.zplus}))(jnp.ones(3))
    with pytest.raises(TypeError):
        jx.lrp("not a function")


def test_bad_inputs_raise_and_leave_the_explainer_usable():
    W = jnp.array([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.3]])
    x = jnp.array([0.2, 0.9, 0.4])
    f = lambda v: jnp.sum(jax.nn.relu(v @ W))
    expected = jx.lrp(f, rules=jx.rules.zero)(x)
    with pytest.raises(TypeError, match="scalar"):
        jx.lrp(lambda v: v @ W, rules=jx.rules.zero)(x)
    ex = jx.lrp(f, rules=jx.rules.zero)
    with pytest.raises(TypeError, match="floating"):
        ex(jnp.arange(3))
    np.testing.assert_allclose(ex(x), expected)
    box = jx.lrp(f, rules=jx.rules.zbox(low=0.0, high=1.0))
    with pytest.raises(ValueError, match="outside"):
        box(jnp.array([0.2, 1.5, 0.4]))
    with pytest.raises(ValueError, match="outside"):
        box(jnp.array([-0.1, 0.5, 0.4]))
    r = box(x)
    # z^B on the only layer, then the sum's norm rule: check against the reference
    conn = dense_connections(np.asarray(W, np.float64))
    z = np.asarray(x, np.float64) @ np.asarray(W, np.float64)
    r_out = np.maximum(z, 0) * (z > 0)  # relu passes relevance; the sum's share is a_j / stab(f)
    r_out = r_out * float(np.sum(np.maximum(z, 0))) / _np_stab(np.sum(np.maximum(z, 0)), 1e-6)
    ref = reference("zbox", np.asarray(x, np.float64), conn, np.zeros(2), r_out, low=np.zeros(3), high=np.ones(3))
    np.testing.assert_allclose(r, ref, rtol=1e-5, atol=1e-7)


# ============================================================================ the transform contract


def test_jit_vmap_equals_loop():
    rng = np.random.default_rng(20)
    shapes = jax.eval_shape(lambda: init_cnn(jax.random.key(0), size=4, channels=(2, 3)))
    f = cnn_f({k: jnp.asarray(rng.normal(size=v.shape) * 0.4, jnp.float32) for k, v in shapes.items()})
    xs = jnp.asarray(rng.normal(size=(3, 4, 4, 3)), jnp.float32)
    ts = jnp.array([0, 2, 1])
    ex = jx.lrp(f)
    out = jax.jit(jax.vmap(ex))(xs, ts)
    loop = jnp.stack([ex(xs[i], ts[i]) for i in range(3)])
    assert out.shape == xs.shape and out.dtype == xs.dtype
    np.testing.assert_allclose(out, loop, rtol=1e-5, atol=1e-6)


def test_second_call_does_not_retrace():
    count = [0]
    W = jnp.asarray(np.random.default_rng(22).normal(size=(4, 3)), jnp.float32)

    def f(x, t):
        count[0] += 1
        return jax.nn.relu(x @ W)[t]

    ex = jx.lrp(f, rules=jx.rules.epsilon)
    ex(jnp.ones(4), jnp.asarray(0))
    n = count[0]
    assert n >= 1
    r = ex(jnp.array([1.0, -2.0, 3.0, 0.5]), jnp.asarray(2))
    assert count[0] == n
    np.testing.assert_allclose(r, jx.lrp(f, rules=jx.rules.epsilon)(jnp.array([1.0, -2.0, 3.0, 0.5]), 2), rtol=1e-6)


def test_nnx_and_linen_twins_agree():
    model, variables = _vgg(seed=3)
    abstract = nnx.eval_shape(lambda: zoo.VGGNNX(features=(2, 3), classes=3, rngs=nnx.Rngs(0)))
    twin = zoo.linen_to_nnx(model, variables, abstract)
    f, g = jxf.from_linen(model, variables), jxf.from_nnx(twin)
    x = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (4, 4, 3)), jnp.float32)
    paths = {"head": jx.rules.zero, "stage0/conv0": jx.rules.flat}
    by_path = jx.composites.custom(default=jx.rules.epsilon, paths=paths)
    for comp in (None, by_path):
        a = jx.lrp(f, rules=comp)(x, 2) if comp is not None else jx.lrp(f)(x, 2)
        b = jx.lrp(g, rules=comp)(x, 2) if comp is not None else jx.lrp(g)(x, 2)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # the path composite really changed something on both
    plain = jx.lrp(g, rules=jx.composites.custom(default=jx.rules.epsilon))(x, 2)
    assert not np.allclose(b, plain, rtol=1e-3)


def test_grad_of_the_explanation_matches_finite_differences(x64):
    rng = np.random.default_rng(23)
    W1, b1, w2 = map(jnp.asarray, (rng.normal(size=(4, 5)), rng.normal(size=5), rng.normal(size=5)))
    f = lambda v: jax.nn.softplus(v @ W1 + b1) @ w2
    v = jnp.asarray(rng.normal(size=4))
    ex = jx.lrp(f, rules=jx.rules.epsilon(epsilon=0.1))
    loss = lambda x: jnp.sum(ex(x) * v)
    x = jnp.asarray(rng.normal(size=4))
    g = np.asarray(jax.grad(loss)(x))
    h = 1e-6
    fd = np.array([(loss(x + h * e) - loss(x - h * e)) / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


# ============================================================================ BatchNorm canonizer


def test_merge_batchnorm_equals_hand_merged_layers(x64):
    """conv - BN - relu - flatten - dense - BN - relu - dense: the canonized f computes f, and LRP of
    it equals LRP of the same network with the BatchNorms merged by hand."""
    rng = np.random.default_rng(24)
    K = jnp.asarray(rng.normal(size=(3, 3, 2, 3)) / 2)
    def draw_bn(n):  # mean, var, scale, beta
        mean, var = rng.normal(size=n), rng.uniform(0.5, 2, n)
        return [jnp.asarray(a) for a in (mean, var, rng.normal(size=n), 0.3 * rng.normal(size=n))]

    bn1 = draw_bn(3)
    W, b = jnp.asarray(rng.normal(size=(48, 5)) / 4), jnp.asarray(rng.normal(size=5) * 0.3)
    bn2 = draw_bn(5)
    w_out = jnp.asarray(rng.normal(size=5))
    pad = ((1, 1), (1, 1))

    def bn(h, p):
        mean, var, scale, beta = p
        return (h - mean) / jnp.sqrt(var + 1e-5) * scale + beta

    def f(x):
        h = jax.nn.relu(bn(_conv(x, K, (1, 1), pad), bn1))[0].reshape(-1)
        return jax.nn.relu(bn(h @ W + b, bn2)) @ w_out

    s1 = bn1[2] / jnp.sqrt(bn1[1] + 1e-5)
    s2 = bn2[2] / jnp.sqrt(bn2[1] + 1e-5)

    def hand(x):
        h = jax.nn.relu(_conv(x, K * s1, (1, 1), pad) + (bn1[3] - bn1[0] * s1))[0].reshape(-1)
        return jax.nn.relu(h @ (W * s2) + ((b - bn2[0]) * s2 + bn2[3])) @ w_out

    g = jx.canonizers.merge_batchnorm(f)
    x = jnp.asarray(rng.normal(size=(4, 4, 2)))
    np.testing.assert_allclose(g(x), f(x), rtol=1e-12)
    np.testing.assert_allclose(hand(x), f(x), rtol=1e-12)
    for rules in (jx.rules.gamma, jx.composites.epsilon_plus()):
        merged = np.asarray(jx.lrp(g, rules=rules)(x))
        np.testing.assert_allclose(merged, jx.lrp(hand, rules=rules)(x), rtol=1e-9, atol=1e-12, err_msg=repr(rules))
    # without the canonizer the rules see the unnormalized layers
    assert not np.allclose(jx.lrp(f, rules=jx.rules.zplus)(x), jx.lrp(g, rules=jx.rules.zplus)(x), rtol=1e-3)


def test_merge_batchnorm_on_the_zoo_resnet(x64):
    model = zoo.ResNet(features=(3, 4), blocks=1, classes=3)
    variables = _random_variables(model, (1, 6, 6, 3), 26, jnp.float64)  # random batch statistics
    p, st = variables["params"], variables["batch_stats"]
    f = jxf.from_linen(model, variables)
    g = jx.canonizers.merge_batchnorm(f)

    def cbn(h, conv, bn, stride, block=None):
        pp, ss = (p, st) if block is None else (block[0], block[1])
        s = pp[bn]["scale"] / jnp.sqrt(ss[bn]["var"] + 1e-5)
        k = pp[conv]["kernel"] * s
        return (_conv(h, k, (stride, stride), "SAME") + (pp[bn]["bias"] - ss[bn]["mean"] * s))[0]

    def hand(x, t):  # the same ResNet with every BatchNorm merged into its convolution
        h = jax.nn.relu(cbn(x, "stem_conv", "stem_bn", 1))
        for i, stride in ((0, 1), (1, 2)):
            blk = (p[f"stage{i}"]["block0"], st[f"stage{i}"]["block0"])
            y = jax.nn.relu(cbn(h, "conv0", "bn0", stride, blk))
            y = cbn(y, "conv1", "bn1", 1, blk)
            skip = cbn(h, "proj", "proj_bn", stride, blk) if "proj" in blk[0] else h
            h = jax.nn.relu(y + skip)
        return (jnp.mean(h, axis=(0, 1)) @ p["head"]["kernel"] + p["head"]["bias"])[t]

    x = jnp.asarray(np.random.default_rng(27).normal(size=(6, 6, 3)))
    outs = jax.jit(lambda v: jnp.stack([f(v, 1), g(v, 1), hand(v, 1)]))(x)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-10, atol=1e-12)  # merge_batchnorm(f) == f
    np.testing.assert_allclose(outs[2], outs[0], rtol=1e-10, atol=1e-12)  # the hand-merged net too
    rules = jx.composites.epsilon_plus()  # z+ on the convolutions: their merged biases matter
    np.testing.assert_allclose(jx.lrp(g, rules=rules)(x, 1), jx.lrp(hand, rules=rules)(x, 1), rtol=1e-8, atol=1e-12)


# ============================================================================ doctests


@pytest.mark.parametrize("module", ["rules", "composites", "canonizers", "api"])
def test_doctests_run(module):
    mod = importlib.import_module(f"jaxplain._lrp.{module}")
    result = doctest.testmod(mod)
    assert result.failed == 0
    assert result.attempted > 0


def test_merge_batchnorm_reaches_nnx_models_like_linen():
    """The canonizer works on the traced program, so an NNX ResNet (jaxplain.flax.from_nnx) and its
    Linen twin give the same canonized relevance."""
    from flax import nnx

    import jaxplain.flax as jxf
    from jaxplain.zoo import ResNet, ResNetNNX, linen_to_nnx

    model = ResNet(features=(4, 8), classes=3)
    v = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    stats = jax.tree_util.tree_map(lambda a: a + 0.5 * jax.random.uniform(jax.random.key(2), a.shape), v["batch_stats"])
    v = {"params": v["params"], "batch_stats": stats}
    twin = linen_to_nnx(model, v, ResNetNNX(features=(4, 8), classes=3, rngs=nnx.Rngs(0)))
    f_linen, f_nnx = jxf.from_linen(model, v), jxf.from_nnx(twin)
    x = jax.random.uniform(jax.random.key(1), (8, 8, 3))
    np.testing.assert_allclose(jx.canonizers.merge_batchnorm(f_nnx)(x, 1), f_nnx(x, 1), rtol=1e-5, atol=1e-7)
    for rules in (jx.composites.epsilon_plus_flat(), jx.composites.epsilon_gamma_box(low=0.0, high=1.0)):
        a = jx.lrp(jx.canonizers.merge_batchnorm(f_linen), rules=rules)(x, 1)
        b = jx.lrp(jx.canonizers.merge_batchnorm(f_nnx), rules=rules)(x, 1)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6 * float(jnp.abs(a).max()))


def test_a_layer_rule_by_path_reaches_only_the_layers_there():
    """paths={"block": zplus} means the block's convolutions: its ReLU and residual sum keep their
    kinds' rules (no error for giving zplus to an activation); gradient by path reaches everything."""
    rng = np.random.default_rng(13)
    k1 = jnp.asarray(rng.normal(size=(3, 3, 2, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=4 * 4 * 2), jnp.float32)

    def f(x):
        with jax.named_scope("block"):
            y = jax.nn.relu(_conv(x, k1, (1, 1), ((1, 1), (1, 1)))) + x[None]
        return y.reshape(-1) @ w

    x = jnp.asarray(rng.uniform(size=(4, 4, 2)), jnp.float32)
    by_path = jx.lrp(f, rules=jx.composites.custom(default=jx.rules.epsilon, paths={"block": jx.rules.zplus}))(x)
    by_type = jx.lrp(f, rules=jx.composites.custom(types={"conv": jx.rules.zplus, "dense": jx.rules.epsilon}))(x)
    np.testing.assert_allclose(by_path, by_type, rtol=1e-6)
    grad_path = jx.lrp(f, rules=jx.composites.custom(default=jx.rules.epsilon, paths={"block": jx.rules.gradient}))(x)
    # the dense layer's epsilon relevance, then the block's ordinary backward pass
    block = lambda v: (jax.nn.relu(_conv(v, k1, (1, 1), ((1, 1), (1, 1)))) + v[None]).reshape(-1)
    y, vjp = jax.vjp(block, x)
    z = y @ w
    (expected,) = vjp(y * w * z / (z + 1e-6 * jnp.sign(z)))
    np.testing.assert_allclose(grad_path, expected, rtol=1e-5, atol=1e-6)


def _np_zplus_dense(x, W, r, eps=1e-6):
    """z+ (Zennit's ZPlus, no bias) for one dense layer, straight from the formula."""
    xp, xn, Wp, Wn = np.maximum(x, 0), np.minimum(x, 0), np.maximum(W, 0), np.minimum(W, 0)
    g = r / _np_stab(xp @ Wp + xn @ Wn, eps)
    return xp * (Wp @ g) + xn * (Wn @ g)


@pytest.mark.parametrize("construct", ["times negative array", "concat negative array", "pad -1"])
def test_nonnegativity_is_not_assumed_through_unknown_constants(x64, construct):
    """The interpreter drops z+'s min(x, 0) branch when it knows a layer's input is >= 0 (after a
    ReLU); a ReLU output scaled by or joined with a constant array of unknown sign must not count."""
    rng = np.random.default_rng(14)
    W1, W2, w3 = rng.normal(size=(4, 6)), rng.normal(size=(6 if construct == "times negative array" else 9, 5)), rng.normal(size=5)
    c = -rng.uniform(0.5, 2.0, size=6)
    x = rng.normal(size=4)
    mid = {
        "times negative array": lambda h, xp: h * xp.asarray(c),
        "concat negative array": lambda h, xp: xp.concatenate([h, xp.asarray(c[:3])]),
        "pad -1": lambda h, xp: xp.pad(h, (0, 3), constant_values=-1.0),
    }[construct]
    f = lambda v: (mid(jnp.maximum(v @ W1, 0), jnp) @ W2) @ w3
    got = jx.lrp(f, rules=jx.composites.custom(types={"dense": jx.rules.zplus}))(jnp.asarray(x))
    h = np.maximum(x @ W1, 0)
    a = mid(h, np)
    r3 = _np_zplus_dense(a @ W2, w3[:, None], np.array([f(jnp.asarray(x))]))
    r2 = _np_zplus_dense(a, W2, r3)
    r_h = r2[:6]  # back to the ReLU: scaling passes relevance through; constants take their share
    r1 = _np_zplus_dense(x, W1, r_h)
    np.testing.assert_allclose(got, r1, rtol=1e-8, atol=1e-12)


def test_rules_by_primitive_name_do_not_reach_activation_regions():
    """types={"mul": ...} is for products of two x-dependent values outside any activation; an
    inline swish (z * sigmoid(z)) is an activation region and keeps the activation rule."""
    rng = np.random.default_rng(15)
    W, v = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), jnp.asarray(rng.normal(size=4), jnp.float32)
    f = lambda x: (lambda z: z * jax.nn.sigmoid(z))(x @ W) @ v
    x = jnp.asarray(rng.normal(size=3), jnp.float32)
    plain = jx.lrp(f, rules=jx.rules.epsilon)(x)
    named = jx.lrp(f, rules=jx.composites.custom(default=jx.rules.epsilon, types={"mul": jx.rules.gradient}))(x)
    np.testing.assert_allclose(named, plain, rtol=1e-6)
