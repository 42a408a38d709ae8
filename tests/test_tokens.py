"""Token attribution at an embedding layer: completeness, equality with an embeddings-in model,
integer inputs, batches of padded sequences, errors."""

import doctest

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain import _tokens

VOCAB, D, L, PAD = 12, 8, 6, 0


class Encoder(nn.Module):
    """Embed -> one attention block (stock Flax) -> mean over unpadded tokens -> Dense."""

    def setup(self):
        self.embed = nn.Embed(VOCAB, D)
        self.pos = self.param("pos", nn.initializers.normal(0.3), (L, D))
        self.ln = nn.LayerNorm()
        self.attn = nn.MultiHeadDotProductAttention(num_heads=2, deterministic=True)
        self.out = nn.Dense(3)

    def __call__(self, tokens):
        return self.from_embeddings(self.embed(tokens), tokens != PAD)

    def from_embeddings(self, e, keep):
        h = e + self.pos
        mask = nn.make_attention_mask(keep, keep)
        h = h + self.attn(self.ln(h), self.ln(h), mask=mask)
        w = keep[..., None].astype(h.dtype)
        return self.out(jnp.sum(h * w, axis=-2) / jnp.sum(w, axis=-2))


@pytest.fixture(scope="module")
def encoder():
    model = Encoder()
    tokens = jnp.array([[3, 5, 7, 2, 0, 0], [1, 4, 4, 9, 11, 6], [8, 2, 0, 0, 0, 0]])
    v = model.init(jax.random.key(0), tokens)
    f = lambda t, c: model.apply(v, t[None])[0, c]
    return model, v, f, tokens


def test_doctests_run():
    assert doctest.testmod(_tokens).failed == 0


def test_ig_at_the_embedding_is_complete_and_is_ig_of_the_embeddings_in_model(encoder):
    model, v, f, tokens = encoder
    ig = jx.token_attribution(jx.integrated_gradients, f, layer="embed", baseline_token=PAD, steps=128)
    scores = jax.vmap(ig)(tokens, jnp.array([0, 1, 2]))
    assert scores.shape == (3, 1, L)
    pad = jnp.zeros_like(tokens)
    embed = lambda t: model.apply(v, t, method=lambda m, t: m.embed(t))
    for i in range(3):  # completeness: the head keeps the sequence's own mask, at both ends
        t = tokens[i]
        g = lambda e: model.apply(v, e[None], (t != PAD)[None], method=Encoder.from_embeddings)[0, i]
        np.testing.assert_allclose(scores[i].sum(), g(embed(t)) - g(embed(pad[i])), rtol=1e-3, atol=1e-4)
    # the same as IG of a hand-written embeddings-in model (mask from the tokens, as f computes it)
    t = tokens[0]
    g = lambda e: model.apply(v, e[None], (t != PAD)[None], method=Encoder.from_embeddings)[0, 0]
    emb = embed(t)
    ref = jx.integrated_gradients(g, baseline=embed(pad[0]), steps=128)(emb)
    np.testing.assert_allclose(scores[0, 0], ref.sum(-1), rtol=1e-5, atol=1e-7)
    # reduce=None keeps the embedding axis; "norm" is its L2 norm
    full = jx.token_attribution(jx.integrated_gradients, f, layer="embed", baseline_token=PAD, steps=128,
                                reduce=None)(t, 0)
    np.testing.assert_allclose(full[0], ref, rtol=1e-5, atol=1e-7)
    norm = jx.token_attribution(jx.integrated_gradients, f, layer="embed", baseline_token=PAD, steps=128,
                                reduce="norm")(t, 0)
    np.testing.assert_allclose(norm[0], jnp.linalg.norm(ref, axis=-1), rtol=1e-5, atol=1e-7)


def test_every_family_at_the_embedding_and_a_batch_of_padded_sequences(encoder):
    _, _, f, tokens = encoder
    targets = jnp.array([2, 0, 1])
    makers = {
        "saliency": lambda: jx.token_attribution(jx.gradient_x_input, f, layer="embed"),
        "lrp": lambda: jx.token_attribution(jx.lrp, f, layer="embed", rules=jx.composites.attn_lrp()),
        "smoothgrad": lambda: jx.token_attribution(
            lambda g: jx.smoothgrad(jx.gradient(g), samples=2, sigma=0.1), f, layer="embed"),
    }
    for name, make in makers.items():
        ex = make()
        kw = {"key": jax.random.split(jax.random.key(1), 3)} if ex.needs_key else {}
        batched = jax.jit(jax.vmap(ex))(tokens, targets, **kw)
        for i in range(3 if name == "lrp" else 1):
            one = ex(tokens[i], targets[i], **({"key": kw["key"][i]} if kw else {}))
            np.testing.assert_allclose(batched[i], one, rtol=1e-5, atol=1e-6, err_msg=name)
        # padded positions are masked out of attention and the mean: no attribution there
        assert float(jnp.abs(batched[0, 0, 4:]).max()) < 1e-6, name
    # AttnLRP at the embedding is layer_lrp at the embedding, summed over the embedding axis
    lrp = jx.token_attribution(jx.lrp, f, layer="embed", rules=jx.composites.attn_lrp())(tokens[1], 0)
    layer = jx.layer_lrp(f, layer="embed", rules=jx.composites.attn_lrp())(tokens[1], 0)
    np.testing.assert_allclose(lrp, layer.sum(-1), rtol=1e-5, atol=1e-7)


def test_integer_inputs_get_the_way_to_tokens_in_their_error(encoder):
    _, _, f, tokens = encoder
    with pytest.raises(TypeError, match=r"usually tokens.*token_attribution"):
        jx.integrated_gradients(f)(tokens[0], 0)
    with pytest.raises(TypeError, match="Cast it first"):
        jx.gradient(lambda x: jnp.sum(x))(jnp.array([True, False]))
    # the layer methods take the tokens as they are
    lig = jx.layer_integrated_gradients(f, layer="embed", baseline=1, steps=64, return_delta=True)
    attr, gap = lig(tokens[1], 1)  # no padding: f depends on the tokens through the embedding only
    assert attr.shape == (1, L, D) and abs(float(gap)) < 1e-3
    assert jx.layer_activation(f, layer="embed")(tokens[0], 1).shape == (1, L, D)


def test_token_attribution_errors(encoder):
    _, _, f, _ = encoder
    with pytest.raises(ValueError, match="reduce"):
        jx.token_attribution(jx.gradient, f, layer="embed", reduce="mean")
    with pytest.raises(TypeError, match="baseline_token= or baseline="):
        jx.token_attribution(jx.integrated_gradients, f, layer="embed", baseline_token=0, baseline=0.0)
    with pytest.raises(TypeError, match="must build a jaxplain explainer"):
        jx.token_attribution(lambda g: jax.grad(g), f, layer="embed")
    with pytest.raises(TypeError, match="steps"):
        jx.token_attribution(jx.integrated_gradients, f, layer="embed", steps="many")
    with pytest.raises(TypeError, match="layer must be the path"):
        jx.token_attribution(jx.gradient, f, layer=None)
