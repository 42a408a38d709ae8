"""AttnLRP (``jx.composites.attn_lrp()``) against LXT 2.1's explicit rules on twin Transformers.

JAX side: small models of stock Flax Linen modules (``nn.MultiHeadDotProductAttention``,
``nn.LayerNorm``, ``nn.Dense``, ``nn.gelu``, learned class token and position embedding). Torch
side: the same weights in a twin written with ``lxt.explicit.functional`` (``linear_epsilon``,
``matmul``, ``softmax``, ``layer_norm``, ``add2``, ``mul2``) and ``lxt.explicit.rules.identity``
for GELU, explained the explicit way (``logit.backward(logit)``, relevance = ``x.grad``).
``pip install --no-deps lxt==2.1`` (its declared dependencies are not needed for these functions;
``.ci/run`` installs it so). Tolerance 1e-3 relative to the largest relevance: LXT's own explicit and
efficient modes differ by up to 4e-4 through stabilizer placement (peer-conventions.md).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
lf = pytest.importorskip("lxt.explicit.functional")
lrules = pytest.importorskip("lxt.explicit.rules")

import jaxplain as jx  # noqa: E402
import jaxplain.flax as jxf  # noqa: E402

pytestmark = pytest.mark.parity

D, H, M, P, SIZE, CLASSES = 16, 2, 32, 4, 8, 5
LN_EPS = 1e-6  # Flax's LayerNorm default


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm(name="ln1")(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=H, name="attn", deterministic=True)(h, h)
        h = nn.LayerNorm(name="ln2")(x)
        h = nn.Dense(D, name="fc2")(nn.gelu(nn.Dense(M, name="fc1")(h), approximate=False))
        return x + h


class ViT(nn.Module):
    @nn.compact
    def __call__(self, img):  # (N, SIZE, SIZE, 3)
        n = img.shape[0]
        patches = img.reshape(n, SIZE // P, P, SIZE // P, P, 3).transpose(0, 1, 3, 2, 4, 5)
        x = nn.Dense(D, name="patch")(patches.reshape(n, (SIZE // P) ** 2, P * P * 3))
        cls = self.param("cls", nn.initializers.normal(0.5), (1, 1, D))
        pos = self.param("pos", nn.initializers.normal(0.5), (1, x.shape[1] + 1, D))
        x = jnp.concatenate([jnp.broadcast_to(cls, (n, 1, D)), x], axis=1) + pos
        x = Block(name="block")(x)
        return nn.Dense(CLASSES, name="head")(nn.LayerNorm(name="ln")(x)[:, 0])


def _randomize(v, seed):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(
        (1.0 if a.ndim == 1 and False else 1.0) * rng.normal(size=a.shape) * (0.3 if a.ndim > 1 else 0.1)
        + 0.0, a.dtype), v)


def _torch_params(v):
    p = v["params"]
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)
    att = p["block"]["attn"]
    out = {
        "W_pe": t(p["patch"]["kernel"]).T, "b_pe": t(p["patch"]["bias"]),
        "cls": t(p["cls"]), "pos": t(p["pos"]),
        "Wo": t(att["out"]["kernel"]).reshape(D, D).T, "bo": t(att["out"]["bias"]),
        "W1": t(p["block"]["fc1"]["kernel"]).T, "b1": t(p["block"]["fc1"]["bias"]),
        "W2": t(p["block"]["fc2"]["kernel"]).T, "b2": t(p["block"]["fc2"]["bias"]),
        "Wh": t(p["head"]["kernel"]).T, "bh": t(p["head"]["bias"]),
    }
    for n in "qkv":
        out["W" + n] = t(att[{"q": "query", "k": "key", "v": "value"}[n]]["kernel"]).reshape(D, D).T
        out["b" + n] = t(att[{"q": "query", "k": "key", "v": "value"}[n]]["bias"]).reshape(D)
    for name, src in (("ln1", p["block"]["ln1"]), ("ln2", p["block"]["ln2"]), ("lnf", p["ln"])):
        out[name + "_w"], out[name + "_b"] = t(src["scale"]), t(src["bias"])
    return out


def _lxt_vit(img, p, cls, pos):
    def attn(h):
        b, n, _ = h.shape
        dh = D // H
        split = lambda z: z.view(b, n, H, dh).permute(0, 2, 1, 3)
        q, k, v = (split(lf.linear_epsilon(h, p["W" + c], p["b" + c])) for c in "qkv")
        s = lf.mul2(lf.matmul(q, k.transpose(-1, -2)), 1 / math.sqrt(dh))
        a = lf.softmax(s, -1)
        c = lf.matmul(a, v).permute(0, 2, 1, 3).reshape(b, n, D)
        return lf.linear_epsilon(c, p["Wo"], p["bo"])

    def mlp(h):
        m = lrules.identity(torch.nn.functional.gelu, lf.linear_epsilon(h, p["W1"], p["b1"]))
        return lf.linear_epsilon(m, p["W2"], p["b2"])

    ln = lambda z, name: lf.layer_norm(z, p[name + "_w"], p[name + "_b"], LN_EPS)
    b = img.shape[0]
    patches = img.reshape(b, SIZE // P, P, SIZE // P, P, 3).permute(0, 1, 3, 2, 4, 5)
    x = lf.linear_epsilon(patches.reshape(b, (SIZE // P) ** 2, P * P * 3), p["W_pe"], p["b_pe"])
    x = lf.add2(torch.cat([cls.expand(b, -1, -1), x], dim=1), pos)
    x = lf.add2(x, attn(ln(x, "ln1")))
    x = lf.add2(x, mlp(ln(x, "ln2")))
    return lf.linear_epsilon(ln(x, "lnf")[:, 0], p["Wh"], p["bh"])


@pytest.fixture(scope="module")
def vit():
    model = ViT()
    with jax.enable_x64(True):
        v = model.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3), jnp.float64))
        v = _randomize(v, 3)
        xs = jnp.asarray(np.random.default_rng(4).normal(size=(3, SIZE, SIZE, 3)))
    return model, v, xs


def test_vit_twins_agree(vit):
    model, v, xs = vit
    with jax.enable_x64(True):
        ours = np.asarray(model.apply(v, xs))
    p = _torch_params(v)
    theirs = _lxt_vit(torch.tensor(np.asarray(xs)), p, p["cls"], p["pos"]).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def test_attn_lrp_matches_lxt_on_a_vit(vit):
    model, v, xs = vit
    p = _torch_params(v)
    with jax.enable_x64(True):
        f = lambda x, t: model.apply(v, x[None])[0, t]
        ours = np.asarray(jax.vmap(jx.lrp(f, rules=jx.composites.attn_lrp()))(xs, jnp.arange(3)))
    for i in range(3):
        img = torch.tensor(np.asarray(xs[i : i + 1])).requires_grad_(True)
        logit = _lxt_vit(img, p, p["cls"], p["pos"])[0, i]
        logit.backward(logit)
        theirs = img.grad.numpy()[0]
        scale = np.abs(theirs).max()
        assert scale > 0
        np.testing.assert_allclose(ours[i], theirs, rtol=1e-3, atol=1e-3 * scale)


# --------------------------------------------------------------------------- a BERT-like encoder
# Token inputs (nn.Embed), a learned position embedding, post-LayerNorm blocks (BERT's order:
# LN(x + attention(x)), LN(x + MLP(x))), a padding mask on the keys, a tanh pooler on the first
# token. Explained at the embedding output (jx.token_attribution with jx.lrp), Linen and NNX.
VOCAB, LENGTH, PAD = 20, 7, 0


class BertBlock(nn.Module):
    @nn.compact
    def __call__(self, x, mask):
        x = nn.LayerNorm(name="ln1")(x + nn.MultiHeadDotProductAttention(
            num_heads=H, name="attn", deterministic=True)(x, x, mask=mask))
        h = nn.Dense(D, name="fc2")(nn.gelu(nn.Dense(M, name="fc1")(x), approximate=False))
        return nn.LayerNorm(name="ln2")(x + h)


class Bert(nn.Module):
    @nn.compact
    def __call__(self, tokens):  # (N, LENGTH) ints, PAD = padding
        e = nn.Embed(VOCAB, D, name="embed")(tokens)
        pos = self.param("pos", nn.initializers.normal(0.5), (1, LENGTH, D))
        x = nn.LayerNorm(name="ln_embed")(e + pos)
        mask = nn.make_attention_mask(tokens != PAD, tokens != PAD)
        x = BertBlock(name="block0")(x, mask)
        x = BertBlock(name="block1")(x, mask)
        return nn.Dense(CLASSES, name="head")(jnp.tanh(nn.Dense(D, name="pool")(x[:, 0])))


def _nnx_bert():
    from flax import nnx

    kw = dict(dtype=jnp.float64, param_dtype=jnp.float64)  # NNX computes in param_dtype otherwise

    class NBlock(nnx.Module):
        def __init__(self, rngs):
            self.attn = nnx.MultiHeadAttention(H, D, decode=False, rngs=rngs, **kw)
            self.ln1, self.ln2 = nnx.LayerNorm(D, rngs=rngs, **kw), nnx.LayerNorm(D, rngs=rngs, **kw)
            self.fc1, self.fc2 = nnx.Linear(D, M, rngs=rngs, **kw), nnx.Linear(M, D, rngs=rngs, **kw)

        def __call__(self, x, mask):
            x = self.ln1(x + self.attn(x, x, mask=mask, deterministic=True))
            return self.ln2(x + self.fc2(nnx.gelu(self.fc1(x), approximate=False)))

    class NBert(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(VOCAB, D, rngs=rngs, **kw)
            self.pos = nnx.Param(jnp.zeros((1, LENGTH, D)))
            self.ln_embed = nnx.LayerNorm(D, rngs=rngs, **kw)
            self.block0, self.block1 = NBlock(rngs), NBlock(rngs)
            self.pool, self.head = nnx.Linear(D, D, rngs=rngs, **kw), nnx.Linear(D, CLASSES, rngs=rngs, **kw)

        def __call__(self, tokens):
            mask = nnx.make_attention_mask(tokens != PAD, tokens != PAD)
            x = self.ln_embed(self.embed(tokens) + self.pos[...])
            x = self.block1(self.block0(x, mask), mask)
            return self.head(jnp.tanh(self.pool(x[:, 0])))

    return NBert(nnx.Rngs(0))


def _torch_attention(att, prefix, out):
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)
    for n, name in (("q", "query"), ("k", "key"), ("v", "value")):
        out[prefix + "W" + n] = t(att[name]["kernel"]).reshape(D, D).T
        out[prefix + "b" + n] = t(att[name]["bias"]).reshape(D)
    out[prefix + "Wo"], out[prefix + "bo"] = t(att["out"]["kernel"]).reshape(D, D).T, t(att["out"]["bias"])


def _torch_bert_params(v):
    p = v["params"]
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)
    out = {"E": t(p["embed"]["embedding"]), "pos": t(p["pos"])}
    for name in ("pool", "head"):
        out["W_" + name], out["b_" + name] = t(p[name]["kernel"]).T, t(p[name]["bias"])
    out["ln_embed_w"], out["ln_embed_b"] = t(p["ln_embed"]["scale"]), t(p["ln_embed"]["bias"])
    for i in range(2):
        b, pre = p[f"block{i}"], f"b{i}_"
        _torch_attention(b["attn"], pre, out)
        for name in ("fc1", "fc2"):
            out[pre + "W" + name], out[pre + "b" + name] = t(b[name]["kernel"]).T, t(b[name]["bias"])
        for name in ("ln1", "ln2"):
            out[pre + name + "_w"], out[pre + name + "_b"] = t(b[name]["scale"]), t(b[name]["bias"])
    return out


def _lxt_bert(e, keep, p):
    """The twin from the embedding output ``e`` (B, LENGTH, D) on, ``keep`` (B, LENGTH) bool."""
    ln = lambda z, name: lf.layer_norm(z, p[name + "_w"], p[name + "_b"], LN_EPS)
    mask = keep[:, None, :, None] & keep[:, None, None, :]

    def attn(h, pre):
        b, n, _ = h.shape
        dh = D // H
        split = lambda z: z.view(b, n, H, dh).permute(0, 2, 1, 3)
        q, k, v = (split(lf.linear_epsilon(h, p[pre + "W" + c], p[pre + "b" + c])) for c in "qkv")
        s = lf.mul2(lf.matmul(q, k.transpose(-1, -2)), 1 / math.sqrt(dh))
        s = torch.where(mask, s, torch.finfo(s.dtype).min)
        c = lf.matmul(lf.softmax(s, -1), v).permute(0, 2, 1, 3).reshape(b, n, D)
        return lf.linear_epsilon(c, p[pre + "Wo"], p[pre + "bo"])

    x = ln(lf.add2(e, p["pos"].expand(e.shape[0], -1, -1)), "ln_embed")
    for i in range(2):
        pre = f"b{i}_"
        x = ln(lf.add2(x, attn(x, pre)), pre + "ln1")
        m = lrules.identity(torch.nn.functional.gelu, lf.linear_epsilon(x, p[pre + "Wfc1"], p[pre + "bfc1"]))
        x = ln(lf.add2(x, lf.linear_epsilon(m, p[pre + "Wfc2"], p[pre + "bfc2"])), pre + "ln2")
    pooled = lrules.identity(torch.tanh, lf.linear_epsilon(x[:, 0], p["W_pool"], p["b_pool"]))
    return lf.linear_epsilon(pooled, p["W_head"], p["b_head"])


@pytest.fixture(scope="module")
def bert():
    from jaxplain import zoo

    model = Bert()
    with jax.enable_x64(True):
        v = model.init(jax.random.key(0), jnp.zeros((1, LENGTH), jnp.int32))
        v = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), _randomize(v, 5))  # tokens bring no float64
        rng = np.random.default_rng(6)
        tokens = rng.integers(1, VOCAB, size=(3, LENGTH))
        for i, n in enumerate((LENGTH, 5, 3)):  # padded sequences of three lengths
            tokens[i, n:] = PAD
        twin = zoo.linen_to_nnx(model, v, _nnx_bert())
    return model, v, twin, jnp.asarray(tokens, jnp.int32)


def test_bert_twins_agree(bert):
    model, v, twin, tokens = bert
    p = _torch_bert_params(v)
    with jax.enable_x64(True):
        ours, nnx_out = np.asarray(model.apply(v, tokens)), np.asarray(twin(tokens))
    e = p["E"][torch.tensor(np.asarray(tokens))]
    theirs = _lxt_bert(e, torch.tensor(np.asarray(tokens) != PAD), p).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
    # NNX's attention runs jax.nn.dot_product_attention, whose softmax is float32 even under x64
    np.testing.assert_allclose(nnx_out, ours, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_attn_lrp_matches_lxt_on_a_bert_like_encoder_with_padding(bert, api):
    model, v, twin, tokens = bert
    p = _torch_bert_params(v)
    ts = jnp.array([0, 1, 2])
    with jax.enable_x64(True):
        f = (lambda t, c: model.apply(v, t[None])[0, c]) if api == "linen" else jxf.from_nnx(twin)
        explain = jx.token_attribution(jx.lrp, f, layer="embed", reduce=None, rules=jx.composites.attn_lrp())
        ours = np.asarray(jax.jit(jax.vmap(explain))(tokens, ts)).reshape(3, LENGTH, D)  # the adapter drops N=1
    for i in range(3):
        e = p["E"][torch.tensor(np.asarray(tokens[i : i + 1]))].clone().requires_grad_(True)
        logit = _lxt_bert(e, torch.tensor(np.asarray(tokens[i : i + 1]) != PAD), p)[0, int(ts[i])]
        logit.backward(logit)
        theirs = e.grad.numpy()[0]
        scale = np.abs(theirs).max()
        assert scale > 0
        np.testing.assert_allclose(ours[i], theirs, rtol=1e-3, atol=1e-3 * scale)
        np.testing.assert_array_equal(ours[i][np.asarray(tokens[i]) == PAD], 0.0)  # padding gets none
