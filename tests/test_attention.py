"""Attention weights, rollout and flow, read from stock Flax attention modules without editing them."""

import doctest

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxplain
import jaxplain.flax as jxf
from jaxplain import _attention
from jaxplain._attention import attention_flow, attention_rollout, attention_weights

D, HEADS, PATCHES = 8, 2, 4  # 5 tokens with the class token


# --------------------------------------------------------------------------- tiny Transformers


class LinenBlock(nn.Module):
    @nn.compact
    def __call__(self, x, sow=False):
        h = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=HEADS, name="attn")(h, h, sow_weights=sow)
        return x + nn.Dense(D)(nn.gelu(nn.Dense(2 * D)(nn.LayerNorm()(x))))


class LinenViT(nn.Module):
    @nn.compact
    def __call__(self, x, sow=False):  # (batch, patches, D)
        cls = self.param("cls", nn.initializers.normal(1.0), (1, 1, D))
        x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, D)), x], axis=1)
        for i in range(2):
            x = LinenBlock(name=f"blocks_{i}")(x, sow)
        return nn.Dense(3)(x[:, 0])


class NNXBlock(nnx.Module):
    def __init__(self, heads, kv_heads, rngs):
        self.ln = nnx.LayerNorm(D, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=heads, in_features=D, num_kv_heads=kv_heads,
                                           decode=False, rngs=rngs)
        self.mlp = nnx.Linear(D, D, rngs=rngs)

    def __call__(self, x, sow=False):
        x = x + self.attn(self.ln(x), sow_weights=sow)
        return x + self.mlp(nnx.gelu(x))


class NNXViT(nnx.Module):
    def __init__(self, heads=HEADS, kv_heads=None, depth=2, *, rngs):
        self.cls = nnx.Param(jax.random.normal(rngs.params(), (1, 1, D)))
        self.blocks = nnx.List([NNXBlock(heads, kv_heads, rngs) for _ in range(depth)])
        self.head = nnx.Linear(D, 3, rngs=rngs)

    def __call__(self, x, sow=False):
        x = jnp.concatenate([jnp.broadcast_to(self.cls[...], (x.shape[0], 1, D)), x], axis=1)
        for b in self.blocks:
            x = b(x, sow)
        return self.head(x[:, 0])


@pytest.fixture(scope="module")
def xs():
    return jax.random.normal(jax.random.key(0), (3, PATCHES, D))


@pytest.fixture(scope="module")
def linen():
    model = LinenViT()
    v = jax.jit(model.init)(jax.random.key(1), jnp.zeros((1, PATCHES, D)))

    @jax.jit
    def sown(x):
        _, st = model.apply(v, x[None], sow=True, mutable=["intermediates"])
        return [st["intermediates"][f"blocks_{i}"]["attn"]["attention_weights"][0][0] for i in range(2)]

    return (lambda x, t: model.apply(v, x[None])[0, t]), sown


def _nnx(heads=HEADS, kv_heads=None):
    model = NNXViT(heads, kv_heads, rngs=nnx.Rngs(2))
    f = jxf.from_nnx(model)  # takes its own copy of the model
    forward = nnx.capture(model, nnx.Intermediate)

    def sown(x):  # Flax's own weights: the sown path computes them with dot_product_attention_weights
        _, st = forward(x[None], sow=True)
        return [st["blocks"][i]["attn"]["attention_weights"][0][0] for i in range(len(model.blocks))]

    return f, sown


@pytest.fixture(scope="module")
def nnx_mha():
    return _nnx()


def weights_jit(f, *args, **kwargs):
    return jax.jit(lambda *a: attention_weights(f, *a, **kwargs))(*args)


@pytest.fixture(scope="module")
def linen_weights(linen, xs):
    return weights_jit(linen[0], xs[0], 1)


# --------------------------------------------------------------------------- references


def reference_rollout(weights, fusion="mean", residual=True):
    """Abnar & Zuidema (2020), straight from the formula: fuse heads, 0.5 A + 0.5 I, rows
    renormalized, multiplied over the layers in order."""
    t = weights[0].shape[-1]
    rollout = np.eye(t)
    for w in weights:
        a = getattr(np, fusion)(np.asarray(w, np.float64), axis=0)
        if residual:
            a = 0.5 * a + 0.5 * np.eye(t)
        a = a / a.sum(axis=-1, keepdims=True)
        rollout = a @ rollout
    return rollout


def vit_explain_discard(a, ratio):
    """vit-explain's discard, ported line by line: the lowest int(n * ratio) of the flattened fused
    attention set to zero, flat index 0 (the class token's) never."""
    flat = np.array(a, np.float64).reshape(-1)
    indices = np.argsort(flat, kind="stable")[: int(flat.size * ratio)]
    indices = indices[indices != 0]
    flat[indices] = 0
    return flat.reshape(a.shape)


# --------------------------------------------------------------------------- attention_weights


def test_linen_weights_equal_the_ones_flax_sows(linen, linen_weights, xs):
    assert list(linen_weights) == ["blocks_0/attn", "blocks_1/attn"]
    for got, want in zip(linen_weights.values(), linen[1](xs[0])):
        assert got.shape == (HEADS, PATCHES + 1, PATCHES + 1)
        np.testing.assert_allclose(got, want, atol=1e-6)
        np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("heads, kv_heads", [(HEADS, None), (4, 2)], ids=["mha", "grouped-query"])
def test_nnx_weights_equal_the_ones_flax_sows(heads, kv_heads, xs, nnx_mha):
    """nnx.MultiHeadAttention runs jax.nn.dot_product_attention, whose softmax has the grouped
    (groups, 1, kv_heads, q, k) layout; the head order must be Flax's own."""
    f, sown = nnx_mha if kv_heads is None else _nnx(heads, kv_heads)
    w = weights_jit(f, xs[0], 0)
    assert list(w) == ["blocks/0/attn", "blocks/1/attn"]
    for got, want in zip(w.values(), sown(xs[0])):
        assert got.shape == want.shape == (heads, PATCHES + 1, PATCHES + 1)
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_plain_function_and_repeated_calls_are_named_in_program_order():
    wq = jax.random.normal(jax.random.key(3), (2, 4, 4))

    def attend(x):  # (tokens, 4) -> (2 heads, tokens, tokens) logits, one example, no batch axis
        q = jnp.einsum("td,hde->hte", x, wq)
        return jax.nn.softmax(jnp.einsum("hte,hse->hts", q, q), axis=-1)

    def f(x):
        a1 = attend(x)
        x2 = jnp.einsum("hts,sd->td", a1, x)
        return jnp.sum(attend(x2)) + jnp.sum(jax.nn.softmax(x2[0]))  # the last: 1-D, not attention

    x = jax.random.normal(jax.random.key(4), (3, 4))
    w = attention_weights(f, x)
    assert list(w) == ["softmax", "softmax#1"]
    np.testing.assert_allclose(w["softmax"], attend(x), atol=1e-6)
    assert attention_weights(f, x, layer="softmax#1").keys() == {"softmax#1"}


def test_layer_selects_by_module_path(linen, xs):
    f, x = linen[0], xs[0]
    assert list(weights_jit(f, x, 0, layer="blocks_1")) == ["blocks_1/attn"]
    both = ["blocks_0/attn", "blocks_1/attn"]
    assert list(weights_jit(f, x, 0, layer=("blocks_1", "blocks_0"))) == both  # program order
    att = _attention._Attention("encoder/blocks_0/attn#1", "encoder/blocks_0/attn", None)
    for pattern in ("encoder/blocks_0/attn", "blocks_0", "attn", "blocks_*", "encoder/*/attn", "attn#1"):
        assert _attention._matches(pattern, att), pattern
    for pattern in ("blocks_1", "att", "blocks", "attn#2"):
        assert not _attention._matches(pattern, att), pattern


def test_weights_compose_with_vmap(linen, linen_weights, xs):
    f = linen[0]  # linen_weights are read under jit; the plain function's test reads them eagerly
    batched = jax.vmap(lambda x: attention_weights(f, x, 1)["blocks_1/attn"])(xs)
    assert batched.shape == (3, HEADS, PATCHES + 1, PATCHES + 1)
    np.testing.assert_allclose(batched[0], linen_weights["blocks_1/attn"], atol=1e-6)


def test_no_attention_is_a_clear_error():
    mlp = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(3)])
    v = jax.jit(mlp.init)(jax.random.key(0), jnp.ones((1, 5)))
    with pytest.raises(ValueError, match=r"no attention weights.*module paths of f: .*'layers_0'"):
        attention_weights(lambda x: mlp.apply(v, x[None])[0, 0], jnp.ones(5))
    probs = lambda x: jax.nn.softmax(mlp.apply(v, x[None]))[0, 0]  # (1, classes): 2-D, not attention
    with pytest.raises(ValueError, match=r"not attention: .*shape \(1, 3\): 2-D"):
        attention_rollout(probs)(jnp.ones(5))
    over_queries = lambda x: jnp.sum(jax.nn.softmax(jnp.ones((2, 3, 3)) * x[0], axis=1))
    with pytest.raises(ValueError, match=r"normalizes axes \(1,\), not the last"):
        attention_weights(over_queries, jnp.ones(3))
    batch_of_two = lambda x: jnp.sum(jax.nn.softmax(jnp.ones((2, 2, 3, 3)) * x[0]))
    with pytest.raises(ValueError, match="a batch of 2"):
        attention_weights(batch_of_two, jnp.ones(3))


def test_a_layer_matching_nothing_names_the_paths(linen, xs):
    with pytest.raises(ValueError, match=r"layer='blocks_7' matches none.*'blocks_0/attn', 'blocks_1/attn'"):
        attention_weights(linen[0], xs[0], 0, layer="blocks_7")
    with pytest.raises(ValueError, match=r"layers='decoder' matches none"):
        attention_rollout(linen[0], layers="decoder")(xs[0], 0)
    with pytest.raises(TypeError, match="must be None .* or a tuple of paths, got 3"):
        attention_weights(linen[0], xs[0], 0, layer=3)


# --------------------------------------------------------------------------- rollout


@pytest.mark.parametrize("fusion, residual", [("mean", True), ("max", True), ("min", True), ("mean", False)])
def test_rollout_equals_the_paper_formula(linen, linen_weights, xs, fusion, residual):
    want = reference_rollout(list(linen_weights.values()), fusion, residual)
    matrix = attention_rollout(linen[0], head_fusion=fusion, residual=residual, readout=None)(xs[0], 1)
    assert matrix.shape == (PATCHES + 1, PATCHES + 1)
    np.testing.assert_allclose(matrix, want, atol=1e-5)
    np.testing.assert_allclose(matrix.sum(-1), 1.0, atol=1e-5)


def test_rollout_readout_is_the_class_token_row(linen, linen_weights, xs):
    row = attention_rollout(linen[0])(xs[0], 1)
    assert row.shape == (PATCHES + 1,)
    np.testing.assert_allclose(row, reference_rollout(list(linen_weights.values()))[0], atol=1e-5)


def test_rollout_layers_start_and_readout(linen, linen_weights, xs):
    last = reference_rollout([linen_weights["blocks_1/attn"]])
    got = attention_rollout(linen[0], start=-1, readout=-1)(xs[0], 1)
    np.testing.assert_allclose(got, last[-1], atol=1e-5)
    np.testing.assert_allclose(attention_rollout(linen[0], layers="blocks_1")(xs[0], 1), last[0], atol=1e-5)


def test_rollout_of_nnx(xs, nnx_mha):
    f, sown = nnx_mha
    np.testing.assert_allclose(attention_rollout(f, head_fusion="max")(xs[1], 2),
                               reference_rollout(sown(xs[1]), "max")[0], atol=1e-5)


def test_discard_follows_vit_explain():
    a = jnp.asarray(np.random.default_rng(0).uniform(size=(4, 4)))
    a = a.at[0, 0].set(-1.0)  # the lowest, but the class token's: kept
    got = _attention._discard(a, 0.5, 0)
    np.testing.assert_allclose(got, vit_explain_discard(a, 0.5))
    assert got[0, 0] == -1.0 and int(jnp.sum(got == 0)) == 7


def test_rollout_with_discard_matches_reference(linen, linen_weights, xs):
    t = PATCHES + 1
    rollout = np.eye(t)
    for w in linen_weights.values():
        a = vit_explain_discard(np.max(np.asarray(w), axis=0), 0.3)
        a = 0.5 * a + 0.5 * np.eye(t)
        rollout = (a / a.sum(-1, keepdims=True)) @ rollout
    got = attention_rollout(linen[0], head_fusion="max", discard_ratio=0.3, readout=None)(xs[0], 1)
    np.testing.assert_allclose(got, rollout, atol=1e-5)


def test_rollout_composes_with_jit_and_vmap(linen, xs):
    ex = attention_rollout(linen[0], discard_ratio=0.2)
    targets = jnp.array([0, 1, 2])
    eager = ex(xs[0], 0)
    np.testing.assert_allclose(jax.jit(ex)(xs[0], 0), eager, atol=1e-6)
    batched = jax.jit(jax.vmap(ex))(xs, targets)
    assert batched.shape == (3, PATCHES + 1)
    for i in range(3):
        np.testing.assert_allclose(batched[i], ex(xs[i], int(targets[i])), atol=1e-6)
    assert ex.method == "attention_rollout" and ex.options["discard_ratio"] == 0.2


def test_rollout_option_errors(linen, xs):
    f = linen[0]
    with pytest.raises(ValueError, match="unknown head_fusion 'median'"):
        attention_rollout(f, head_fusion="median")
    with pytest.raises(ValueError, match=r"discard_ratio must be in \[0, 1\)"):
        attention_rollout(f, discard_ratio=1.0)
    with pytest.raises(TypeError, match="residual must be True or False"):
        attention_rollout(f, residual="yes")
    with pytest.raises(TypeError, match="readout must be an int .* or None"):
        attention_rollout(f, readout="cls")
    with pytest.raises(TypeError, match="start must be an int"):
        attention_rollout(f, start=0.5)
    with pytest.raises(ValueError, match=r"readout=5 is out of range for 5 tokens"):
        attention_rollout(f, readout=5)(xs[0], 0)
    with pytest.raises(ValueError, match=r"start=2 is out of range for the 2 attention layers"):
        attention_rollout(f, start=2)(xs[0], 0)


def test_rollout_needs_square_self_attention():
    cross = nn.MultiHeadDotProductAttention(num_heads=2)
    v = jax.jit(cross.init)(jax.random.key(0), jnp.ones((1, 2, 8)), jnp.ones((1, 5, 8)))
    f = lambda x: cross.apply(v, x[None, :2], x[None]).sum()
    assert attention_weights(f, jnp.ones((5, 8)))["MultiHeadDotProductAttention"].shape == (2, 2, 5)
    with pytest.raises(ValueError, match=r"self-attention over the same tokens.*\(2, 2, 5\)"):
        attention_rollout(f)(jnp.ones((5, 8)))


# --------------------------------------------------------------------------- flow


def test_max_flows_of_a_hand_computed_graph():
    a1 = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    a2 = np.array([[0.4, 0.4, 0.2], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]])
    # two layers: each middle token i carries min(a1[i, j], a2[0, i]) from input j to output 0
    want = [0.4 + 0.1 + 0.2, 0.3 + 0.4 + 0.2, 0.2 + 0.3 + 0.2]
    np.testing.assert_allclose(_attention._max_flows(np.stack([a1, a2]), 0, 10**6), want, atol=1e-6)
    # one layer: the flow is the single edge, the rollout's row
    np.testing.assert_allclose(_attention._max_flows(a2[None], 2, 10**6), a2[2], atol=1e-6)
    # the resolution rounds the capacities: 1/10 keeps one decimal
    np.testing.assert_allclose(_attention._max_flows(np.stack([a1, a2]) + 0.04, 0, 10), want, atol=1e-9)


def test_attention_flow_of_linen(linen, linen_weights, xs):
    nx = pytest.importorskip("networkx")
    t = PATCHES + 1
    mats = [0.5 * np.mean(np.asarray(w, np.float64), 0) + 0.5 * np.eye(t) for w in linen_weights.values()]
    mats = [m / m.sum(-1, keepdims=True) for m in mats]
    g = nx.DiGraph()
    for layer, m in enumerate(mats):
        for i in range(t):
            for j in range(t):
                g.add_edge((layer, j), (layer + 1, i), capacity=m[i, j])
    want = np.array([nx.maximum_flow_value(g, (0, j), (len(mats), 0)) for j in range(t)])
    got = attention_flow(linen[0])(xs[0], 1)
    assert got.shape == (t,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    normalized = attention_flow(linen[0], normalize=True)(xs[0], 1)
    np.testing.assert_allclose(normalized, want / want.sum(), atol=1e-5)


def test_attention_flow_is_not_jittable(linen, xs):
    ex = attention_flow(linen[0])
    with pytest.raises(TypeError, match="cannot run under jax.jit, jax.vmap or jax.grad"):
        jax.jit(ex)(xs[0], 0)
    with pytest.raises(TypeError, match="cannot run under jax.jit"):
        jax.vmap(ex)(xs, jnp.zeros(3, int))
    with pytest.raises(ValueError, match="resolution must be at most"):
        attention_flow(linen[0], resolution=10**10)
    with pytest.raises(TypeError, match="readout must be an int"):
        attention_flow(linen[0], readout=None)


def test_doctests_run(monkeypatch):
    for name in _attention.__all__:  # the examples use the public names the package exports
        monkeypatch.setattr(jaxplain, name, getattr(_attention, name), raising=False)
    assert doctest.testmod(_attention).failed == 0


def test_control_flow_hiding_softmaxes_is_an_error():
    def layer(c):
        heads = jnp.einsum("qd,kd->qk", c, c)[None] * jnp.ones((2, 1, 1))
        return jnp.einsum("hqk,kd->qd", jax.nn.softmax(heads), c)

    def f(x):
        y, _ = jax.lax.scan(lambda c, _: (layer(c), None), layer(x), None, length=2)
        return y.sum()

    x = jnp.ones((3, 4))
    assert list(attention_weights(f, x)) == ["softmax"]  # the one outside the scan
    with pytest.raises(ValueError, match=r"control flow holding x \(scan at 'the top level'\)"):
        attention_rollout(f)(x)
    assert attention_rollout(f, layers="softmax")(x).shape == (3,)
    with pytest.raises(ValueError, match=r"no softmax that depends on x.*control flow holding x \(scan"):
        attention_weights(lambda v: jax.lax.scan(lambda c, _: (layer(c), None), v, None, length=2)[0].sum(),
                          x)
