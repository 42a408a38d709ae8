"""How LRP's rules reach the operations of f (jaxplain._lrp.propagate): residual additions,
activations, pooling, means, reshapes, upsampling, embeddings, products of x-dependent values and
what non-negativity may be assumed; and the interpreter's economies, which change how much is
computed, never the relevance:

* Branches whose weight modifiers are linear in (W, W+) share convolutions (``share_linear``).
* Inputs known to be non-negative (after a ReLU, average pooling of ReLU outputs) drop the
  ``min(x, 0)`` branches, which are zero there.

The counts of convolutions in the compiled programs are the facts the speed of LRP rests on
(benchmarks/lrp.py has the timings).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain._lrp import api

from tests import twins
from tests.lrp_nets import np_stab


COMPOSITES = {
    "epsilon_plus_flat": jx.composites.epsilon_plus_flat(),
    "epsilon_gamma_box": jx.composites.epsilon_gamma_box(low=0.0, high=1.0),
    "epsilon_alpha2_beta1": jx.composites.epsilon_alpha2_beta1(),
    "gamma": jx.rules.gamma(gamma=0.5),
    "alpha2_beta1": jx.rules.alpha2_beta1,
    "zplus": jx.rules.zplus,
}


@pytest.fixture(scope="module")
def cnn():
    apply, params, _ = twins.make_twins(0, size=8, channels=(4, 4, 4, 4))
    x = jax.random.uniform(jax.random.key(0), (8, 8, 3))
    return twins.logit_fn(apply, params), x


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_shared_convolutions_give_the_same_relevance(cnn, name):
    f, x = cnn
    shared = jx.lrp(f, rules=COMPOSITES[name])(x, 1)
    composite = api.resolve_rules("lrp", COMPOSITES[name])
    separate = jax.jit(api.relevance("lrp", f, composite, share_linear=False))(x, 1)
    np.testing.assert_allclose(shared, separate, rtol=1e-5, atol=2e-6 * float(jnp.abs(separate).max()))


def _convolutions(fn, x):
    return jax.jit(fn).lower(x, 1).compile().as_text().count(" convolution(")


def test_compiled_programs_hold_few_convolutions(cnn):
    f, x = cnn
    grad = _convolutions(jax.grad(f), x)  # 4 forward + 4 transposed
    assert grad == 8
    # epsilon: the layer's own output is the denominator; one transpose per layer, as the gradient
    assert _convolutions(jx.lrp(f, rules=jx.rules.epsilon), x) == grad
    # z+ after ReLUs: x W+ and its transpose per layer (no min(x, 0) branch); flat's forward on
    # constants is folded away by the compiler
    assert _convolutions(jx.lrp(f, rules=COMPOSITES["epsilon_plus_flat"]), x) <= 12
    # gamma after ReLUs: x W+ once and two transposes per layer (not two of each per group)
    assert _convolutions(jx.lrp(f, rules=COMPOSITES["epsilon_gamma_box"]), x) <= 16


def test_an_explainer_can_be_jitted_directly(cnn):
    f, x = cnn
    for ex in (jx.lrp(f), jx.gradient(f), jx.deeplift(f)):
        np.testing.assert_allclose(jax.jit(ex)(x, 1), ex(x, 1), rtol=1e-6, atol=1e-7)


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
    share = r_y / np_stab(y, 1e-6)
    r_u, r_skip = u * share, x * share
    r_a1 = a1 * (W2 @ (r_u / z2))  # relu passes relevance through: R(z2) = R(u)
    r_x = r_skip + x * (W1 @ (r_a1 / z1))
    np.testing.assert_allclose(r, r_x, rtol=1e-10, atol=1e-12)
    fx = float(f(jnp.asarray(x)))
    np.testing.assert_allclose(r.sum(), fx, rtol=1e-5)
    assert abs(r.sum() - 2 * fx) > 0.5 * abs(fx)

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
    expected = x * np.repeat(np.repeat(r_m / (4 * np_stab(m, eps)), 2, 0), 2, 1)
    np.testing.assert_allclose(r, expected, rtol=1e-10, atol=1e-12)

def test_global_mean_splits_in_proportion(x64):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 3, 2))
    w = rng.normal(size=2)
    f = lambda v: jnp.mean(v, axis=(0, 1)) @ jnp.asarray(w)
    r = np.asarray(jx.lrp(f, rules=jx.rules.zero)(jnp.asarray(x)))
    m = x.sum(axis=(0, 1)) / 9
    expected = x * (m * w) / (9 * np_stab(m, 1e-6))
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
    with pytest.raises(ValueError, match=r"product of two x-dependent values \('mul'") as err:
        jx.lrp(f, rules=jx.rules.zero)(jnp.asarray(x))
    assert "types={'product'" in str(err.value) and "jaxplain.rules.uniform" in str(err.value)
    # With the gradient rule for mul: R(p) = p (LRP-0 on the sum), then the product's backward pass
    # sends R(p) * z to x and R(p) * x to z = x W, which LRP-0 takes back to x.
    composite = jx.composites.custom(default=jx.rules.zero, types={"mul": jx.rules.gradient, "sum": jx.rules.zero})
    r = np.asarray(jx.lrp(f, rules=composite)(jnp.asarray(x)))
    z = x @ W
    p = x * z
    expected = p * z + x * (W @ (p * x / z))
    np.testing.assert_allclose(r, expected, rtol=1e-10, atol=1e-12)
    # AttnLRP's uniform rule: half of R(p) to each factor (LXT's mul2), the z half back by LRP-0
    composite = jx.composites.custom(default=jx.rules.zero, types={"product": jx.rules.uniform, "sum": jx.rules.zero})
    r = np.asarray(jx.lrp(f, rules=composite)(jnp.asarray(x)))
    np.testing.assert_allclose(r, p / 2 + x * (W @ (p / (2 * z))), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.sum(), p.sum(), rtol=1e-10)  # conserved
    # a matrix product of two x-dependent values: epsilon on 2z, a * J_a^T (R / 2z) to each factor
    g = lambda v: jnp.sum(jnp.outer(v, v @ Wj) @ jnp.ones(4))
    r = np.asarray(jx.lrp(g, rules=composite)(jnp.asarray(x)))
    np.testing.assert_allclose(r.sum(), float(g(jnp.asarray(x))), rtol=1e-6)
    with pytest.raises(ValueError, match="the rule 'uniform' splits a product"):
        jx.lrp(f, rules=jx.composites.custom(default=jx.rules.zero, types={"product": jx.rules.uniform,
                                                                           "sum": jx.rules.uniform}))(jnp.asarray(x))

def _np_zplus_dense(x, W, r, eps=1e-6):
    """z+ (Zennit's ZPlus, no bias) for one dense layer, straight from the formula."""
    xp, xn, Wp, Wn = np.maximum(x, 0), np.minimum(x, 0), np.maximum(W, 0), np.minimum(W, 0)
    g = r / np_stab(xp @ Wp + xn @ Wn, eps)
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


def test_a_softmax_needs_a_rule_and_pass_through_hands_relevance_on_unchanged(x64):
    rng = np.random.default_rng(0)
    w1, w2 = jnp.asarray(rng.normal(size=(4, 5))), jnp.asarray(rng.normal(size=5))
    f = lambda x: jax.nn.softmax(x @ w1) @ w2
    x = jnp.asarray(rng.normal(size=4))
    with pytest.raises(jx._lrp.propagate.LRPError, match=r"no LRP rule for the softmax.*pass_through"):
        jx.lrp(f, rules=jx.rules.zero)(x)
    ours = jx.lrp(f, rules=jx.composites.custom(types={"softmax": jx.rules.pass_through},
                                                 default=jx.rules.zero))(x)
    z = x @ w1
    r_out = jax.nn.softmax(z) * w2  # LRP-0 at the bias-free head: s_j w2_j
    want = x[:, None] * w1 * (r_out / z)[None, :]  # LRP-0 at the first layer, from R_z = R_out
    np.testing.assert_allclose(ours, want.sum(1), rtol=1e-10)
    grad = jx.lrp(f, rules=jx.composites.custom(types={"softmax": jx.rules.gradient},
                                                 default=jx.rules.zero))(x)
    assert not np.allclose(grad, ours)


def test_a_softmax_rule_by_module_path():
    class Probs(nn.Module):
        @nn.compact
        def __call__(self, h):
            return jax.nn.softmax(h, axis=-1)

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            a = Probs(name="probs")(nn.Dense(5, name="fc")(x))
            b = jax.nn.softmax(nn.Dense(5, name="fc2")(x), axis=-1)
            return nn.Dense(2, name="out")(a * 2.0 + b)

    model = Net()
    v = model.init(jax.random.key(0), jnp.zeros((1, 3)))
    f = lambda x, t: model.apply(v, x[None])[0, t]
    x = jnp.array([0.3, -1.0, 2.0])
    by_path = jx.composites.custom(paths={"probs": jx.rules.pass_through}, types={"softmax": jx.rules.gradient},
                                   default=jx.rules.epsilon)
    by_type = jx.composites.custom(types={"softmax": jx.rules.gradient}, default=jx.rules.epsilon)
    r_path, r_type = jx.lrp(f, rules=by_path)(x, 1), jx.lrp(f, rules=by_type)(x, 1)
    assert not np.allclose(r_path, r_type)  # the path's rule reached the softmax in "probs" only
    with pytest.raises(jx._lrp.propagate.LRPError, match="softmax"):
        jx.lrp(f, rules=jx.composites.custom(paths={"probs": jx.rules.pass_through},
                                             default=jx.rules.epsilon))(x, 1)  # fc2's softmax has none
