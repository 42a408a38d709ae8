"""``jx.lrp_budget``: the books of LRP close (input + what each rule keeps = f(x)), and what it
says each part keeps is what that part receives when it is an input; CP-LRP (``cp_lrp``) is
AttnLRP with the attention weights detached and conserves on bias-free blocks."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx

D, H, SIZE, P, CLASSES = 8, 2, 8, 4, 3


def _detached_attention(query, key, value, **kw):
    """Flax's dot-product attention with the attention weights as constants."""
    weights = jax.lax.stop_gradient(nn.dot_product_attention_weights(query, key, **kw))
    return jnp.einsum("...hqk,...khd->...qhd", weights, value)


class ViT(nn.Module):
    bias: bool = True
    tokens: bool = True  # a learned class token (read out) and position embedding
    detach: bool = False

    @nn.compact
    def __call__(self, img, cls=None, pos=None):
        n, b = img.shape[0], self.bias
        patches = img.reshape(n, SIZE // P, P, SIZE // P, P, 3).transpose(0, 1, 3, 2, 4, 5)
        x = nn.Dense(D, use_bias=b, name="patch")(patches.reshape(n, (SIZE // P) ** 2, P * P * 3))
        if self.tokens:
            cls = self.param("cls", nn.initializers.normal(0.5), (1, 1, D)) if cls is None else cls
            pos = self.param("pos", nn.initializers.normal(0.5), (1, x.shape[1] + 1, D)) if pos is None else pos
            x = jnp.concatenate([jnp.broadcast_to(cls, (n, 1, D)), x], axis=1) + pos
        attention = _detached_attention if self.detach else nn.dot_product_attention
        h = nn.LayerNorm(use_bias=b, name="ln1")(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=H, use_bias=b, deterministic=True,
                                                attention_fn=attention, name="attn")(h, h)
        h = nn.LayerNorm(use_bias=b, name="ln2")(x)
        x = x + nn.Dense(D, use_bias=b, name="fc2")(nn.gelu(nn.Dense(2 * D, use_bias=b, name="fc1")(h)))
        x = nn.LayerNorm(use_bias=b, name="ln")(x)
        return nn.Dense(CLASSES, use_bias=b, name="head")(x[:, 0] if self.tokens else x.mean(axis=1))


@functools.lru_cache(maxsize=None)
def _setup(bias=True, tokens=True):
    with jax.enable_x64(True):
        model = ViT(bias=bias, tokens=tokens)
        v = model.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))
        rng = np.random.default_rng(1)
        v = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape) * (0.4 if a.ndim > 1 else 0.2)), v)
        xs = jnp.asarray(np.random.default_rng(2).normal(size=(3, SIZE, SIZE, 3)))
    return model, v, xs


def _f(model, v):
    return lambda x, t: model.apply(v, x[None])[0, t]


def test_the_books_close_and_the_relevance_is_lrps(x64):
    model, v, xs = _setup()
    f, rules, ts = _f(model, v), jx.composites.attn_lrp(), jnp.arange(3)
    out = jax.jit(jax.vmap(jx.lrp_budget(f, rules=rules)))(xs, ts)
    np.testing.assert_allclose(out.relevance[1], jx.lrp(f, rules=rules)(xs[1], 1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out.output, jax.vmap(f)(xs, ts), rtol=1e-12)
    total = out.relevance.sum(axis=(1, 2, 3)) + sum(out.absorbed.values())
    np.testing.assert_allclose(total, out.output, rtol=1e-6, atol=1e-9)
    share = out.relevance.sum(axis=(1, 2, 3)) / out.output
    print("AttnLRP: the input's share of f(x):", np.round(share, 3),
          {k: np.round(np.asarray(a), 3) for k, a in out.absorbed.items() if np.any(a)})
    assert np.all(np.abs(out.absorbed["dense"]) > 0)  # biases keep their share
    assert np.all(np.abs(out.absorbed["structural"]) > 0)  # the class token keeps its share
    assert np.all(np.abs(out.absorbed["softmax"]) > 1e-6)  # the softmax rule's bias term


def test_what_the_class_token_and_position_embedding_keep_is_their_relevance_as_inputs(x64):
    model, v, xs = _setup()
    rules, x, t = jx.composites.attn_lrp(), xs[0], 2
    cls, pos = v["params"]["cls"], v["params"]["pos"]
    inside = jx.lrp_budget(_f(model, v), rules=rules)(x, t)
    # the same model with the class token and the position embedding as inputs of f
    g = lambda parts, t: model.apply(v, parts[0][None], parts[1], parts[2])[0, t]
    outside = jx.lrp_budget(g, rules=rules)((x, cls, pos), t)
    r_img, r_cls, r_pos = outside.relevance
    np.testing.assert_allclose(inside.relevance, r_img, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(inside.absorbed["structural"], r_cls.sum(), rtol=1e-9)
    np.testing.assert_allclose(inside.absorbed["affine"] - outside.absorbed["affine"], r_pos.sum(), rtol=1e-9)
    assert abs(float(r_cls.sum())) > 1e-3 and abs(float(r_pos.sum())) > 1e-3


def test_cp_lrp_is_attn_lrp_with_the_attention_weights_detached(x64):
    model, v, xs = _setup()
    detached = ViT(detach=True)
    eps = dict(epsilon=1e-8, sum_epsilon=1e-8)  # one stabilizer for A.v as a product or a layer
    ts = jnp.arange(3)
    ours = jax.vmap(jx.lrp_budget(_f(model, v), rules=jx.composites.cp_lrp(**eps)))(xs, ts)
    ref = jax.vmap(jx.lrp(_f(detached, v), rules=jx.composites.attn_lrp(**eps)))(xs, ts)
    np.testing.assert_allclose(ours.relevance, ref, rtol=1e-9, atol=1e-12 * float(np.abs(ref).max()))
    np.testing.assert_array_equal(ours.absorbed["softmax"], 0.0)  # no relevance reaches a softmax
    total = ours.relevance.sum(axis=(1, 2, 3)) + sum(ours.absorbed.values())
    np.testing.assert_allclose(total, ours.output, rtol=1e-6, atol=1e-9)


def test_cp_lrp_conserves_on_bias_free_blocks(x64):
    model, v, xs = _setup(bias=False, tokens=False)
    f = _f(model, v)
    ts = jnp.argmax(model.apply(v, xs), axis=-1)  # the predicted classes
    fx = jax.vmap(f)(xs, ts)
    cp = jax.vmap(jx.lrp(f, rules=jx.composites.cp_lrp(epsilon=1e-6)))(xs, ts).sum(axis=(1, 2, 3))
    print("bias-free blocks: CP-LRP's share of f(x)", np.round(cp / fx, 6))
    np.testing.assert_allclose(cp, fx, rtol=1e-3)


def test_the_rule_for_attention_weights_is_for_products_only():
    f = lambda x: jnp.sum(jnp.tanh(x @ jnp.ones((3, 2))))
    with pytest.raises(ValueError, match="attention_head.*product"):
        jx.lrp(f, rules=jx.composites.custom(types={"activation": jx.rules.attention_head},
                                                    default=jx.rules.epsilon))(jnp.ones(3))
    with pytest.raises(TypeError, match="takes epsilon"):
        jx.rules.attention_head(gamma=0.1)


def test_budget_checks_like_lrp():
    with pytest.raises(TypeError, match="lrp_budget"):
        jx.lrp_budget(3.0)
    with pytest.raises(TypeError, match="composite factory"):
        jx.lrp_budget(lambda x: x.sum(), rules=jx.composites.attn_lrp)
