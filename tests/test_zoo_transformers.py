"""jaxplain.zoo's Transformers: the ViT and the text encoder, their Linen and NNX twins, padding."""

import doctest

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx, traverse_util

import jaxplain as jx
import jaxplain.flax as jxf
import jaxplain.zoo as zoo
from jaxplain import _zoo_transformers

CLASSES = 3
SIZE, PATCH, CHANNELS = 8, 4, 3
VOCAB, LENGTH, PAD = 11, 7, 0
SMALL = dict(width=8, depth=2, heads=2, mlp=12, classes=CLASSES)

# name -> (Linen module, builder of its NNX twin given rngs, a batch of inputs)
_rng = np.random.default_rng(0)
_IMAGES = jnp.asarray(_rng.standard_normal((3, SIZE, SIZE, CHANNELS)), jnp.float32)
_TOKENS = jnp.asarray(_rng.integers(1, VOCAB, (3, LENGTH)), jnp.int32).at[1, 4:].set(PAD)
ARCHS = {
    "vit": (
        zoo.ViT(SIZE, PATCH, **SMALL),
        lambda rngs: zoo.ViTNNX(SIZE, PATCH, **SMALL, in_features=CHANNELS, rngs=rngs),
        _IMAGES,
    ),
    "vit_mean": (
        zoo.ViT(SIZE, PATCH, **SMALL, readout="mean"),
        lambda rngs: zoo.ViTNNX(SIZE, PATCH, **SMALL, readout="mean", rngs=rngs),
        _IMAGES,
    ),
    "text_mean": (
        zoo.TextTransformer(VOCAB, LENGTH, **SMALL, pad_id=PAD),
        lambda rngs: zoo.TextTransformerNNX(VOCAB, LENGTH, **SMALL, pad_id=PAD, rngs=rngs),
        _TOKENS,
    ),
    "text_cls": (
        zoo.TextTransformer(VOCAB, LENGTH, **SMALL, readout="cls", pad_id=PAD),
        lambda rngs: zoo.TextTransformerNNX(VOCAB, LENGTH, **SMALL, readout="cls", pad_id=PAD,
                                            rngs=rngs),
        _TOKENS,
    ),
    "text_nopad": (
        zoo.TextTransformer(VOCAB, LENGTH, **SMALL),
        lambda rngs: zoo.TextTransformerNNX(VOCAB, LENGTH, **SMALL, rngs=rngs),
        _TOKENS,
    ),
}

BLOCK = ["ln0", "attn/query", "attn/key", "attn/value", "attn/out", "attn", "ln1", "dense0",
         "dense1"]


def _random_like(shapes, seed=0):
    """Random values shaped like ``shapes`` (numpy, all nonzero: the class token and biases too)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda sd: jnp.asarray(rng.normal(0.0, 0.5, sd.shape), sd.dtype), shapes
    )


def _variables(module, xs, seed=0):
    return _random_like(jax.eval_shape(lambda: module.init(jax.random.key(0), xs[:1])), seed)


def _twin(name, variables):
    module, build, _ = ARCHS[name]
    return zoo.linen_to_nnx(module, variables, nnx.eval_shape(lambda: build(nnx.Rngs(0))))


@pytest.fixture(scope="module", params=list(ARCHS))
def pair(request):
    """(name, Linen module, random variables, inputs, NNX twin holding the same variables)."""
    name = request.param
    module, _, xs = ARCHS[name]
    variables = _variables(module, xs)
    return name, module, variables, xs, _twin(name, variables)


# ----------------------------------------------------------------------------- shapes and paths


def test_output_shapes_and_parameters(pair):
    name, module, variables, xs, twin = pair
    assert jax.eval_shape(module.apply, variables, xs).shape == (len(xs), CLASSES)
    params = variables["params"]
    tokens = (SIZE // PATCH) ** 2 if name.startswith("vit") else LENGTH
    cls = name in ("vit", "text_cls")
    assert params["pos_embed"].shape == (1, tokens + cls, SMALL["width"])
    assert ("cls_token" in params) == cls and hasattr(twin, "cls_token") == cls
    assert ("patch_embed" in params) == name.startswith("vit")
    assert params["block1"]["attn"]["query"]["kernel"].shape == (8, 2, 4)
    assert "block2" not in params and not hasattr(twin, "block2")
    # The NNX Param paths are exactly the Linen params paths.
    linen_paths = set(traverse_util.flatten_dict(params))
    nnx_paths = {tuple(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(twin, nnx.Param))}
    assert linen_paths == nnx_paths


def test_layers_named_alike_in_both_frameworks(pair):
    name, module, variables, xs, twin = pair
    target = 1
    linen = jx.layers(lambda x, t: module.apply(variables, x[None])[0, t], xs[0], target)
    first = "patch_embed" if name.startswith("vit") else "embed"
    expected = [first, *(f"block{i}/{p}" if p else f"block{i}" for i in range(2)
                         for p in BLOCK + [""]), "ln", "head"]
    assert list(linen) == expected
    via_adapter = jx.layers(jxf.from_linen(module, variables), xs[0], target)
    assert jx.layers(jxf.from_nnx(twin), xs[0], target) == via_adapter
    assert list(via_adapter) == expected
    t = (SIZE // PATCH) ** 2 + 1 if name == "vit" else (SIZE // PATCH) ** 2 if name == "vit_mean" \
        else LENGTH + (name == "text_cls")
    assert via_adapter["block0/attn"] == (t, SMALL["width"])
    assert via_adapter["block0/attn/query"] == (t, SMALL["heads"], 4)


# ----------------------------------------------------------------------------- Linen == NNX


def test_same_logits_after_linen_to_nnx(pair):
    _, module, variables, xs, twin = pair
    ref, out = jax.jit(lambda x: (module.apply(variables, x), twin(x)))(xs)  # one compile
    assert float(jnp.std(ref)) > 0.1  # random weights: far from a constant output
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        twin.block0.attn.out.kernel[...], variables["params"]["block0"]["attn"]["out"]["kernel"]
    )


@pytest.mark.parametrize("pair", ["vit"], indirect=True)
def test_adapters_and_input_gradients_agree(pair):
    _, module, variables, xs, twin = pair
    f, g = jxf.from_linen(module, variables), jxf.from_nnx(twin)
    targets = jnp.array([0, 2, 1])
    both = jax.jit(lambda x, t: (jax.vmap(jx.gradient(f))(x, t), jax.vmap(jx.gradient(g))(x, t)))
    df, dg = both(xs, targets)  # one compile
    assert df.shape == xs.shape and float(jnp.max(jnp.abs(df))) > 0
    np.testing.assert_allclose(dg, df, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pair", ["text_cls"], indirect=True)
def test_jit_vmap_of_a_per_example_closure(pair):
    _, module, variables, xs, _ = pair
    f = lambda x, t: module.apply(variables, x[None])[0, t]
    targets = jnp.array([2, 0, 1])
    out = jax.jit(jax.vmap(f))(xs, targets)
    np.testing.assert_allclose(out, module.apply(variables, xs)[jnp.arange(3), targets],
                               rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- padding


@pytest.mark.parametrize("pair", ["text_mean", "text_cls"], indirect=True)
def test_padding_is_invisible(pair):
    _, module, variables, xs, twin = pair
    short = xs[:, :4]
    padded = jnp.concatenate([short, jnp.full((3, LENGTH - 4), PAD, jnp.int32)], axis=1)
    mask = jnp.arange(LENGTH)[None, :] < jnp.array([[3], [5], [7]])
    other = jnp.where(mask, xs, jnp.asarray(_rng.integers(1, VOCAB, xs.shape), jnp.int32))
    assert not bool(jnp.all(other == xs))

    def total(embedding):  # the logits' sum as a function of the embedding table
        params = {**variables["params"], "embed": {"embedding": embedding}}
        return jnp.sum(module.apply({"params": params}, padded))

    # Token embeddings (what the layer 'embed' returns), and the per-example logit of `encode`.
    emb = variables["params"]["embed"]["embedding"][padded]
    keep = padded != PAD
    f = lambda e, m, t: module.apply(variables, e[None], m[None], method="encode")[0, t]

    @jax.jit  # one compile for everything
    def run():
        apply = lambda x, m=None: module.apply(variables, x, m)
        return dict(
            encoded=module.apply(variables, emb, keep, method="encode"),
            nnx_encoded=twin.encode(emb, keep),
            emb_grad=jax.vmap(jx.gradient(f))(emb, keep, jnp.array([0, 1, 2])),
            padded=apply(padded), short=apply(short), nnx_padded=twin(padded),
            masked=apply(xs, mask), other=apply(other, mask), nnx_other=twin(other, mask),
            unmasked=apply(xs), grad=jax.grad(total)(variables["params"]["embed"]["embedding"]),
            all_pad=apply(jnp.zeros((3, LENGTH), jnp.int32)),
        )

    r = run()
    close = lambda a, b: np.testing.assert_allclose(r[a], r[b], rtol=1e-5, atol=1e-5)
    # Padding a sequence with pad_id leaves its logits as they were without it.
    close("padded", "short")
    close("nnx_padded", "short")
    # `encode` runs the model from the embeddings: the same logits, no gradient on padding.
    close("encoded", "padded")
    close("nnx_encoded", "padded")
    assert r["emb_grad"].shape == emb.shape
    assert float(jnp.max(jnp.abs(r["emb_grad"][:, 4:]))) == 0.0
    assert float(jnp.min(jnp.max(jnp.abs(r["emb_grad"][:, :4]), axis=-1))) > 0
    # With an explicit mask, what sits in the masked positions does not matter.
    close("other", "masked")
    close("nnx_other", "masked")
    assert float(jnp.max(jnp.abs(r["unmasked"] - r["masked"]))) > 1e-3  # the mask acts
    # The PAD embedding gets no gradient: the output does not depend on it.
    assert float(jnp.max(jnp.abs(r["grad"][PAD]))) == 0.0 and float(jnp.max(jnp.abs(r["grad"]))) > 0
    # All padding: finite logits (the mean readout divides by at least one).
    assert bool(jnp.all(jnp.isfinite(r["all_pad"])))


@pytest.mark.parametrize("pair", ["text_nopad"], indirect=True)
def test_without_pad_id_token_zero_is_an_ordinary_token(pair):
    _, module, variables, xs, _ = pair
    padded = xs.at[:, 5:].set(0)
    diff = jax.jit(lambda: module.apply(variables, padded) - module.apply(variables, padded[:, :5]))
    assert float(jnp.max(jnp.abs(diff()))) > 1e-3


# ----------------------------------------------------------------------------- option errors


@pytest.mark.parametrize("build, error, match", [
    (lambda: zoo.ViTNNX(SIZE, 3, rngs=nnx.Rngs(0)), ValueError, "image_size must be a multiple of patch"),
    (lambda: zoo.ViTNNX(width=30, heads=4, rngs=nnx.Rngs(0)), ValueError, "width must be a multiple of heads"),
    (lambda: zoo.ViTNNX(readout="max", rngs=nnx.Rngs(0)), ValueError, "unknown readout 'max'"),
    (lambda: zoo.ViTNNX(depth=0, rngs=nnx.Rngs(0)), ValueError, "depth must be >= 1"),
    (lambda: zoo.ViTNNX(rngs=0), TypeError, "rngs must be an nnx.Rngs"),
    (lambda: zoo.TextTransformerNNX(VOCAB, LENGTH, pad_id=VOCAB, rngs=nnx.Rngs(0)), ValueError,
     "pad_id must be a token id below vocab=11"),
    (lambda: zoo.TextTransformerNNX(VOCAB, 2.5, rngs=nnx.Rngs(0)), TypeError, "length must be an int"),
    (lambda: zoo.TextTransformerNNX(VOCAB, LENGTH, act=3, rngs=nnx.Rngs(0)), TypeError, "act must be a callable"),
])
def test_nnx_option_errors(build, error, match):
    with pytest.raises(error, match=match):
        nnx.eval_shape(build)


@pytest.mark.parametrize("module, x, error, match", [
    (zoo.ViT(SIZE, 3), _IMAGES, ValueError, "image_size must be a multiple of patch"),
    (zoo.ViT(SIZE, PATCH, width=6, heads=4), _IMAGES, ValueError, "width=6 and heads=4"),
    (zoo.ViT(16, PATCH), _IMAGES, ValueError, r"\(N, 16, 16, C\), got shape \(3, 8, 8, 3\)"),
    (zoo.ViT(SIZE, PATCH), _IMAGES[0], ValueError, r"add the batch axis"),
    (zoo.TextTransformer(VOCAB, LENGTH, readout="first"), _TOKENS, ValueError, "unknown readout"),
    (zoo.TextTransformer(VOCAB, LENGTH, pad_id=-1), _TOKENS, ValueError, "pad_id must be >= 0"),
    (zoo.TextTransformer(VOCAB, LENGTH), _TOKENS.astype(jnp.float32), TypeError,
     "tokens must be integer token ids, got dtype float32"),
    (zoo.TextTransformer(VOCAB, 4), _TOKENS, ValueError, r"1 <= L <= length=4, got shape \(3, 7\)"),
])
def test_linen_option_and_input_errors(module, x, error, match):
    with pytest.raises(error, match=match):
        jax.eval_shape(lambda: module.init(jax.random.key(0), x))


def test_mask_shape_error_and_twin_mismatches():
    module, _, xs = ARCHS["text_mean"]
    variables = _variables(module, xs)
    with pytest.raises(ValueError, match=r"mask must have the tokens' shape \(3, 7\)"):
        module.apply(variables, xs, jnp.ones((3, 6), bool))
    cls = nnx.eval_shape(lambda: ARCHS["text_cls"][1](nnx.Rngs(0)))
    with pytest.raises(ValueError, match="readout options differ .* with readout='mean'"):
        zoo.linen_to_nnx(module, variables, cls)
    wide = nnx.eval_shape(lambda: zoo.TextTransformerNNX(VOCAB, LENGTH + 1, **SMALL, pad_id=PAD,
                                                         rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"'params/pos_embed': shape \(1, 7, 8\) in the Linen"):
        zoo.linen_to_nnx(module, variables, wide)
    nopad = nnx.eval_shape(lambda: ARCHS["text_nopad"][1](nnx.Rngs(0)))
    with pytest.raises(ValueError, match="pad_id options differ .* build the NNX model with pad_id=0"):
        zoo.linen_to_nnx(module, variables, nopad)
    relu = zoo.TextTransformer(VOCAB, LENGTH, **SMALL, pad_id=PAD, act=nn.relu)
    with pytest.raises(ValueError, match="act=relu"):
        zoo.linen_to_nnx(relu, variables, _twin("text_mean", variables))
    vit = nnx.eval_shape(lambda: ARCHS["vit"][1](nnx.Rngs(0)))
    with pytest.raises(TypeError, match="different architectures; pass TextTransformerNNX"):
        zoo.linen_to_nnx(module, variables, vit)


def test_encode_input_errors():
    module, _, xs = ARCHS["text_mean"]
    variables = _variables(module, xs)
    emb = jnp.zeros((3, LENGTH, SMALL["width"]))
    with pytest.raises(TypeError, match="encode takes token embeddings .* got dtype int32"):
        module.apply(variables, xs, method="encode")
    with pytest.raises(ValueError, match=r"\(N, L, width=8\) with 1 <= L <= length=7, got shape \(3, 7, 4\)"):
        module.apply(variables, emb[..., :4], method="encode")
    twin = nnx.eval_shape(lambda: ARCHS["text_mean"][1](nnx.Rngs(0)))
    with pytest.raises(ValueError, match="mask must have the tokens' shape"):
        twin.encode(emb, jnp.ones((3, 2), bool))


def test_make_knows_the_transformers():
    assert zoo.make("vit", patch=2) == zoo.ViT(patch=2)
    assert zoo.make("text_transformer", vocab=5, length=3) == zoo.TextTransformer(5, 3)
    made = nnx.eval_shape(lambda: zoo.make("vit", "nnx", image_size=8, rngs=nnx.Rngs(0)))
    assert isinstance(made, zoo.ViTNNX) and made.pos_embed.shape == (1, 5, 32)


def test_doctests_run():
    assert doctest.testmod(_zoo_transformers).failed == 0
