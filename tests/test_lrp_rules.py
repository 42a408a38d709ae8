"""LRP rules (jaxplain._lrp.rules, arithmetic): slow references per rule and conservation.

The references are written in NumPy float64 straight from each rule's formula over the individual
contributions ``z_ij = x_i w_ij`` of a layer, given as a list of connections ``(i, j, w_ij)``: all
pairs for a dense layer, the pairs a convolution's loops visit for a convolution (so the flat rule's
"ones" and the z^B bounds reach exactly the taps inside the input, never the padding). Rules follow
Zennit 0.5.1: ``stab(z) = z + eps * sign(z)`` with ``sign(0) = +1``; LRP-0 replaces zero
denominators by one.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxplain as jx

from tests.lrp_nets import PAD, batched_conv, dense_connections, reference, stab_fn


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

RULES = {
    "zero": (lambda lo, hi: jx.rules.zero, dict(rule="zero")),
    "epsilon": (lambda lo, hi: jx.rules.epsilon, dict(rule="epsilon", eps=1e-6)),
    "epsilon_0.25": (lambda lo, hi: jx.rules.epsilon(epsilon=0.25), dict(rule="epsilon", eps=0.25)),
    "epsilon_2": (lambda lo, hi: jx.rules.epsilon(epsilon=2.0), dict(rule="epsilon", eps=2.0)),
    "epsilon_fn": (lambda lo, hi: jx.rules.epsilon(epsilon=stab_fn), dict(rule="epsilon", fn=True)),
    "norm": (lambda lo, hi: jx.rules.norm, dict(rule="norm", eps=1e-6)),
    "zplus": (lambda lo, hi: jx.rules.zplus, dict(rule="zplus")),
    "zplus_0.1": (lambda lo, hi: jx.rules.zplus(stabilizer=0.1), dict(rule="zplus", eps=0.1)),
    "alpha1_beta0": (lambda lo, hi: jx.rules.alpha1_beta0, dict(rule="alpha_beta", alpha=1.0, beta=0.0)),
    "alpha2_beta1": (lambda lo, hi: jx.rules.alpha2_beta1, dict(rule="alpha_beta", alpha=2.0, beta=1.0)),
    "alpha3_beta2": (lambda lo, hi: jx.rules.alpha_beta(alpha=3, beta=2), dict(rule="alpha_beta", alpha=3.0, beta=2.0)),
    "gamma": (lambda lo, hi: jx.rules.gamma, dict(rule="gamma", gamma=0.25)),
    "gamma_1_fn": (
        lambda lo, hi: jx.rules.gamma(gamma=1.0, stabilizer=stab_fn),
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
    layer = lambda v: (batched_conv(v, Kj, strides, padding, dilation) + bj)[0]
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
    batched = lambda v: jnp.sum((batched_conv(v, K, (1, 1), pad) + b)[0] * c)
    squeezed = lambda v: jnp.sum((batched_conv(v, K, (1, 1), pad)[0] + b) * c)
    composite = jx.composites.custom(default=RULES[name][0](None, None), types={"sum": jx.rules.zero})
    expected = jx.lrp(batched, rules=composite)(x)
    np.testing.assert_allclose(jx.lrp(squeezed, rules=composite)(x), expected, rtol=1e-10, atol=1e-12)

def _mlp(seed=0, dtype=jnp.float64):
    """A bias-free ReLU MLP 6 -> 8 -> 7 -> 1 and its input, with f(x) > 0."""
    rng = np.random.default_rng(seed)
    W1, W2 = jnp.asarray(rng.normal(size=(6, 8)), dtype), jnp.asarray(rng.normal(size=(8, 7)) / 2, dtype)
    w3, x = jnp.asarray(rng.normal(size=7), dtype), jnp.asarray(rng.normal(size=6), dtype)
    if jax.nn.relu(jax.nn.relu(x @ W1) @ W2) @ w3 < 0:
        w3 = -w3
    parts = [lambda a: jax.nn.relu(a @ W1), lambda a: jax.nn.relu(a @ W2), lambda a: a @ w3]
    return parts, x, (W1, W2, w3)

def _cnn(seed=0, dtype=jnp.float64):
    """A bias-free ReLU CNN: conv 3x3 (3 -> 4) - relu - 2x2 average pool - flatten - dense -> 1."""
    rng = np.random.default_rng(seed)
    K = jnp.asarray(rng.normal(size=(3, 3, 3, 4)) / 2, dtype)
    w = jnp.asarray(rng.normal(size=3 * 3 * 4), dtype)
    x = jnp.asarray(rng.normal(size=(6, 6, 3)), dtype)
    pool = lambda a: lax.reduce_window(a, 0.0, lax.add, (2, 2, 1), (2, 2, 1), "VALID") / 4.0
    conv = lambda a: jax.nn.relu(batched_conv(a, K, (1, 1), PAD)[0])
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
            layers = [(acts[0], conv_connections(x.shape, np.asarray(K), (1, 1), PAD, (1, 1))[0], acts[1])]
            w3 = w
        layers.append((acts[-1].reshape(-1), dense_connections(np.asarray(w3)[:, None]), np.ones(1)))
        for a, (I, J, wv), out in layers:
            zij = np.asarray(a).ravel()[I] * wv
            n_neg = np.bincount(J, weights=zij < 0, minlength=np.size(out))
            assert np.all((np.asarray(out).ravel() <= 0) | (n_neg > 0)), "precondition"
    # totals[0] is the full explanation's total
    np.testing.assert_allclose(totals, [fx] * len(parts), rtol=1e-9)


# ----------------------------------------------------------------------------- Zennit's options


def test_stabilizer_variants_are_zennits_formulas():
    """shift: z + eps sign(z); clip: sign(z) max(|z|, eps); norm_scale: eps * rms(z); sign(0)=1."""
    z = jnp.array([-2.0, -0.05, 0.0, 0.1, 3.0])
    rms = float(jnp.sqrt(jnp.mean(z * z)))
    sign = np.where(np.asarray(z) >= 0, 1.0, -1.0)
    np.testing.assert_allclose(jx.rules.stabilizer(0.5)(z), z + 0.5 * sign, rtol=1e-6)
    np.testing.assert_allclose(jx.rules.stabilizer(0.5, clip=True)(z),
                               sign * np.maximum(np.abs(z), 0.5), rtol=1e-6)
    np.testing.assert_allclose(jx.rules.stabilizer(0.5, norm_scale=True)(z),
                               z + 0.5 * rms * sign, rtol=1e-6)
    np.testing.assert_allclose(jx.rules.stabilizer(0.5, clip=True, norm_scale=True)(z),
                               sign * np.maximum(np.abs(z), 0.5 * rms), rtol=1e-6)
    rule = jx.rules.epsilon(epsilon=jx.rules.stabilizer(0.1, clip=True))
    assert repr(rule) == "Rule('epsilon', epsilon=stabilizer(0.1, clip=True))"
    with pytest.raises(TypeError, match="clip must be True or False"):
        jx.rules.stabilizer(0.1, clip="yes")
    with pytest.raises(ValueError, match="epsilon must be"):
        jx.rules.stabilizer(-1.0)


def test_zero_params_drops_the_bias_from_every_branch():
    """zero_params='bias' is the rule on the bias-free layer (Zennit's zero_params)."""
    k = jax.random.split(jax.random.key(2), 3)
    w, b = jax.random.normal(k[0], (4, 3)), jax.random.normal(k[1], (3,))
    x = jax.random.normal(k[2], (4,))
    for rule in (jx.rules.epsilon, jx.rules.zplus, jx.rules.gamma, jx.rules.alpha_beta):
        plain = rule(zero_params="bias")
        assert all(br.bias is None for g in plain.groups for br in g.branches)
        assert ("zero_params", "bias") in plain.options
        with_b = jx.lrp(lambda v: jnp.sum(jax.nn.relu(v @ w + b)),
                        rules=jx.composites.custom(default=plain))(x)
        without = jx.lrp(lambda v: jnp.sum(jax.nn.relu(v @ w + b)),
                         rules=jx.composites.custom(default=rule))(x)
        assert not np.allclose(with_b, without)
        # the bias-free rule only changes the denominators: relevance of the bias-free layer at
        # the same z would be the same numerators; check against the formula for epsilon
        if rule is jx.rules.epsilon:
            z = x @ w + b
            r = jnp.where(z > 0, z, 0.0)
            ref = x * (w @ (r / (x @ w + 1e-6 * jnp.where(x @ w >= 0, 1.0, -1.0))))
            np.testing.assert_allclose(with_b, ref, rtol=1e-5)
    with pytest.raises(ValueError, match="zero_params must be 'bias'"):
        jx.rules.epsilon(zero_params="weight")


def test_relu_beta_smooth_is_the_softplus_backward():
    """Each ReLU's backward becomes sigmoid(beta z) g: relevance = f(x) * grad of the net with
    softplus_beta activations (the other operations by their gradient)."""
    k = jax.random.split(jax.random.key(4), 3)
    w1, w2 = jax.random.normal(k[0], (5, 6)), jax.random.normal(k[1], (6,))
    x = jax.random.normal(k[2], (5,))
    f = lambda v: jax.nn.relu(v @ w1) @ w2
    beta = 3.0
    smooth = lambda v: (jnp.logaddexp(0.0, beta * (v @ w1)) / beta) @ w2
    rules = jx.composites.custom(types={"activation": jx.rules.relu_beta_smooth(beta_smooth=beta)},
                                 default=jx.rules.gradient)
    ours = jx.lrp(f, rules=rules)(x)
    np.testing.assert_allclose(ours, f(x) * jax.grad(smooth)(x), rtol=1e-5)
    with pytest.raises(ValueError, match="replaces an activation's backward pass"):
        jx.lrp(f, rules=jx.composites.custom(default=jx.rules.relu_beta_smooth))(x)
    # a tanh (or any activation but a ReLU) gets an error, not a ReLU's smoothed backward pass
    g = lambda v: jnp.tanh(v @ w1) @ w2
    with pytest.raises(ValueError, match="is not a ReLU"):
        jx.lrp(g, rules=rules)(x)
    # jax.nn.relu, an inline maximum and flax.linen.relu are all ReLUs
    for relu in (jax.nn.relu, lambda h: jnp.maximum(h, 0.0), __import__("flax").linen.relu):
        h = lambda v, relu=relu: relu(v @ w1) @ w2
        np.testing.assert_allclose(jx.lrp(h, rules=rules)(x), ours, rtol=1e-6)
