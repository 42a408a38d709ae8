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
