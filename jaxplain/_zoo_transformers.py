"""The zoo's Transformers: a small Vision Transformer and a small text Transformer encoder, in Flax
Linen and in Flax NNX, built from stock Flax modules only (re-exported by :mod:`jaxplain.zoo`).

========================  ============================  ==================================
Linen                     NNX                           submodules (Linen ``params``, NNX
                                                        attributes)
========================  ============================  ==================================
:class:`ViT`              :class:`ViTNNX`               ``patch_embed``, ``block{i}``,
                                                        ``ln``, ``head``
:class:`TextTransformer`  :class:`TextTransformerNNX`   ``embed``, ``block{i}``, ``ln``,
                                                        ``head``
========================  ============================  ==================================

Each encoder block ``block{i}`` is pre-LayerNorm: ``x + attn(ln0(x))``, then ``x + dense1(act(
dense0(ln1(x))))``, with ``attn`` an ``nn.MultiHeadDotProductAttention`` (Linen) or
``nnx.MultiHeadAttention`` (NNX), whose own submodules are ``query``, ``key``, ``value`` and
``out``. The attention softmax is no module: it runs inside ``block{i}/attn``, between
``query``/``key`` and ``out`` (in a traced program its operations carry the path
``block{i}/attn``). The learned class token ``cls_token`` (``(1, 1, width)``, with
``readout="cls"``) and position embedding ``pos_embed`` (``(1, tokens, width)``) are parameters
of the model itself, not modules. The NNX models mirror the Linen paths attribute by attribute,
so :func:`jaxplain.zoo.linen_to_nnx` copies the weights and :func:`jaxplain.layers` names a layer
the same way in both frameworks.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxplain import _checks

__all__ = ["ViT", "ViTNNX", "TextTransformer", "TextTransformerNNX", "READOUTS"]

#: The ``readout=`` choices: the class token's final state, or the mean over the (kept) tokens.
READOUTS = ("cls", "mean")

_POS_STD = 0.02  # the position embedding's initial standard deviation (as in ViT and BERT)


# --------------------------------------------------------------------------- options


def _check_encoder(name: str, width, depth, heads, mlp, classes, act, readout) -> None:
    where = f"zoo.{name}"
    width = _checks.check_int(where, "width", width, minimum=1)
    _checks.check_int(where, "depth", depth, minimum=1)
    heads = _checks.check_int(where, "heads", heads, minimum=1)
    _checks.check_int(where, "mlp", mlp, minimum=1)
    _checks.check_int(where, "classes", classes, minimum=1)
    _checks.check_callable(where, "act", act)
    _checks.check_choice(where, "readout", readout, READOUTS)
    if width % heads:
        raise ValueError(
            f"jaxplain.{where}: width must be a multiple of heads (each head gets width // heads "
            f"features), got width={width} and heads={heads}; e.g. "
            f"width={heads * max(1, width // heads)}."
        )


def _check_vit(name: str, image_size, patch, *rest) -> int:
    """Checks a ViT's options; returns the number of patches."""
    where = f"zoo.{name}"
    size = _checks.check_int(where, "image_size", image_size, minimum=1)
    patch = _checks.check_int(where, "patch", patch, minimum=1)
    if size % patch:
        raise ValueError(
            f"jaxplain.{where}: image_size must be a multiple of patch (the image is cut into "
            f"patch x patch squares), got image_size={size} and patch={patch}."
        )
    _check_encoder(name, *rest)
    return (size // patch) ** 2


def _check_text(name: str, vocab, length, pad_id, *rest) -> None:
    where = f"zoo.{name}"
    vocab = _checks.check_int(where, "vocab", vocab, minimum=1)
    _checks.check_int(where, "length", length, minimum=1)
    if pad_id is not None:
        pad_id = _checks.check_int(where, "pad_id", pad_id, minimum=0)
        if pad_id >= vocab:
            raise ValueError(
                f"jaxplain.{where}: pad_id must be a token id below vocab={vocab}, got {pad_id}; "
                f"pass pad_id=None for no padding."
            )
    _check_encoder(name, *rest)


def _check_images(name: str, x, image_size: int):
    x = x if hasattr(x, "shape") else np.asarray(x)
    shape = tuple(x.shape)
    if len(shape) != 4 or shape[1:3] != (image_size, image_size):
        raise ValueError(
            f"jaxplain.zoo.{name}: expected a batch of images (N, {image_size}, {image_size}, C), "
            f"got shape {shape}; build the model with image_size= the images' size, or add the "
            f"batch axis (x[None])."
        )
    return x


def _check_tokens(name: str, tokens, length: int):
    tokens = tokens if hasattr(tokens, "dtype") else np.asarray(tokens)
    dtype = tokens.dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(
            f"jaxplain.zoo.{name}: tokens must be integer token ids, got dtype {dtype}; pass e.g. "
            f"jnp.asarray(tokens, jnp.int32). (To explain the model, attribute to its embeddings: "
            f"the layer 'embed', or the method 'encode', which takes them as its input.)"
        )
    shape = tuple(tokens.shape)
    if len(shape) != 2 or not 1 <= shape[1] <= length:
        raise ValueError(
            f"jaxplain.zoo.{name}: expected a batch of token sequences (N, L) with 1 <= L <= "
            f"length={length}, got shape {shape}; add the batch axis (tokens[None]) or build the "
            f"model with a larger length."
        )
    return tokens


def _check_embeddings(name: str, embeddings, length: int, width: int):
    e = embeddings if hasattr(embeddings, "dtype") else np.asarray(embeddings)
    if not jnp.issubdtype(e.dtype, jnp.floating):
        raise TypeError(
            f"jaxplain.zoo.{name}: encode takes token embeddings (floats, what the layer 'embed' "
            f"returns), got dtype {e.dtype}; call the model itself on token ids."
        )
    if e.ndim != 3 or e.shape[2] != width or not 1 <= e.shape[1] <= length:
        raise ValueError(
            f"jaxplain.zoo.{name}: encode expects embeddings (N, L, width={width}) with 1 <= L <= "
            f"length={length}, got shape {tuple(e.shape)}."
        )
    return e


def _keep(name: str, tokens, mask, pad_id):
    """The (N, L) bool of the tokens attended to, or None (all)."""
    keep = None if pad_id is None else tokens != pad_id
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != tokens.shape:
            raise ValueError(
                f"jaxplain.zoo.{name}: mask must have the tokens' shape {tuple(tokens.shape)} "
                f"(True where a token is attended to), got shape {tuple(mask.shape)}."
            )
        mask = mask.astype(bool)
        keep = mask if keep is None else keep & mask
    return keep


def _with_cls(x, cls_token, keep):
    cls = jnp.broadcast_to(cls_token, (x.shape[0], 1, x.shape[-1])).astype(x.dtype)
    x = jnp.concatenate([cls, x], axis=1)
    if keep is not None:
        keep = jnp.concatenate([jnp.ones((x.shape[0], 1), bool), keep], 1)
    return x, keep


def _attention_mask(keep):
    """(N, 1, 1, T): every query attends to the kept keys only."""
    return None if keep is None else keep[:, None, None, :]


def _pool(x, keep, readout: str):
    if readout == "cls":
        return x[:, 0]
    if keep is None:
        return jnp.mean(x, axis=1)
    w = keep.astype(x.dtype)[..., None]
    return jnp.sum(x * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0)


# =========================================================================== Linen


class _Block(nn.Module):
    """A pre-LayerNorm encoder block: ``ln0``, ``attn``, ``ln1``, ``dense0``, ``dense1``."""

    width: int
    heads: int
    mlp: int
    act: Callable

    @nn.compact
    def __call__(self, x, mask=None):
        attn = nn.MultiHeadDotProductAttention(
            num_heads=self.heads, qkv_features=self.width, out_features=self.width, name="attn"
        )
        x = x + attn(nn.LayerNorm(name="ln0")(x), mask=mask)
        y = nn.Dense(self.mlp, name="dense0")(nn.LayerNorm(name="ln1")(x))
        return x + nn.Dense(self.width, name="dense1")(self.act(y))




class ViT(nn.Module):
    """A small Vision Transformer: patch embedding, a class token, learned position embeddings,
    pre-LayerNorm encoder blocks, a final LayerNorm and a dense ``head`` on the class token.

    The image is cut into ``patch x patch`` squares by a convolution with kernel = stride =
    ``patch`` (``patch_embed``, ``width`` channels), giving ``(image_size // patch) ** 2`` tokens;
    the learned ``cls_token`` is put in front and ``pos_embed`` added. Then ``depth`` blocks
    ``block{i}``, each ``x + attn(ln0(x))`` and ``x + dense1(act(dense0(ln1(x))))`` with
    ``attn`` an ``nn.MultiHeadDotProductAttention`` (submodules ``query``, ``key``, ``value``,
    ``out``; the softmax runs inside ``block{i}/attn``); the final ``ln`` and ``head``.

    Attributes:
      image_size: height and width of the (square) input images.
      patch: side of the square patches; must divide ``image_size``.
      width: the token width (``heads`` must divide it).
      depth: number of encoder blocks.
      heads: attention heads per block.
      mlp: hidden width of each block's MLP.
      classes: number of output logits.
      act: the MLP's activation (``nn.gelu``).
      readout: ``"cls"`` (the class token's final state, the default) or ``"mean"`` (the mean
        over the patch tokens; then there is no ``cls_token``).

    Input ``(N, image_size, image_size, C)``, output ``(N, classes)`` logits.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.zoo import ViT
      >>> model = ViT(image_size=8, patch=4, width=8, depth=2, heads=2, mlp=16, classes=3)
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
      >>> list(variables["params"])
      ['patch_embed', 'cls_token', 'pos_embed', 'block0', 'block1', 'ln', 'head']
      >>> list(variables["params"]["block0"]), variables["params"]["pos_embed"].shape
      (['ln0', 'attn', 'ln1', 'dense0', 'dense1'], (1, 5, 8))
      >>> model.apply(variables, jnp.ones((1, 8, 8, 3))).shape
      (1, 3)

    References:
      Dosovitskiy et al. (2021), "An Image is Worth 16x16 Words: Transformers for Image
      Recognition at Scale", ICLR; Vaswani et al. (2017), "Attention Is All You Need", NeurIPS;
      Xiong et al. (2020), "On Layer Normalization in the Transformer Architecture", ICML
      (pre-LayerNorm).
    """

    image_size: int = 16
    patch: int = 4
    width: int = 32
    depth: int = 2
    heads: int = 4
    mlp: int = 64
    classes: int = 10
    act: Callable = nn.gelu
    readout: str = "cls"

    @nn.compact
    def __call__(self, x):
        n = _check_vit("ViT", self.image_size, self.patch, self.width, self.depth, self.heads,
                       self.mlp, self.classes, self.act, self.readout)
        x = _check_images("ViT", x, self.image_size)
        p = (self.patch, self.patch)
        x = nn.Conv(self.width, p, p, padding="VALID", name="patch_embed")(x)
        x = jnp.reshape(x, (x.shape[0], n, self.width))
        cls = self.readout == "cls"
        if cls:
            token = self.param("cls_token", nn.initializers.zeros, (1, 1, self.width))
            x, _ = _with_cls(x, token, None)
        x = x + self.param("pos_embed", nn.initializers.normal(_POS_STD), (1, n + cls, self.width))
        for i in range(self.depth):
            x = _Block(self.width, self.heads, self.mlp, self.act, name=f"block{i}")(x)
        x = nn.LayerNorm(name="ln")(x)
        return nn.Dense(self.classes, name="head")(_pool(x, None, self.readout))


class TextTransformer(nn.Module):
    """A small Transformer encoder for token sequences: token and learned position embeddings,
    pre-LayerNorm encoder blocks, a final LayerNorm, a mean-pool or class-token readout and a
    dense ``head``.

    The tokens ``(N, L)`` (integer ids, ``L <= length``) are embedded by ``embed`` (an
    ``nn.Embed``), the learned ``cls_token`` is put in front (``readout="cls"``) and
    ``pos_embed[:, :L]`` added; then blocks and ``ln`` as in :class:`ViT`, and ``head`` on the
    class token or on the mean over the kept tokens.

    Padding: with ``pad_id`` set, tokens equal to it are masked out: no query attends to them (an
    attention mask on the keys) and the mean readout leaves them out, so the output does not
    depend on them (padding a sequence with ``pad_id`` up to ``length`` leaves its logits as they
    were). ``model.apply(v, tokens, mask)`` takes an ``(N, L)`` bool mask as well, True where a
    token is attended to; both together keep the tokens both keep.

    Token ids have no gradient, so the attribution methods explain the embeddings instead: the
    method ``encode(embeddings, mask=None)`` runs the model from the ``(N, L, width)`` output of
    ``embed`` (``model.apply(v, e, mask, method="encode")``; pass ``mask=tokens != pad_id``
    there, as it sees no ids). E.g. ``jx.integrated_gradients(jxf.from_linen(model, v,
    method="encode", mask=m))`` on one sequence's embeddings, summed over the last axis, gives
    one score per token (zero on padding).

    Attributes:
      vocab: number of token ids (``embed`` has ``vocab`` rows; ids must lie in ``[0, vocab)``).
      length: the longest sequence (rows of ``pos_embed``, plus one for the class token).
      width, depth, heads, mlp, classes, act: as in :class:`ViT`.
      readout: ``"mean"`` (the mean over the kept tokens, the default) or ``"cls"``.
      pad_id: the padding token id, or ``None`` (nothing masked).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.zoo import TextTransformer
      >>> model = TextTransformer(vocab=10, length=5, width=8, heads=2, mlp=16, classes=3,
      ...                         pad_id=0)
      >>> tokens = jnp.array([[3, 1, 4, 0, 0]])  # the two 0s are padding
      >>> v = model.init(jax.random.key(0), tokens)
      >>> sorted(v["params"]), v["params"]["embed"]["embedding"].shape
      (['block0', 'block1', 'embed', 'head', 'ln', 'pos_embed'], (10, 8))
      >>> logits = model.apply(v, tokens)  # the same as for tokens[:, :3]: padding is masked
      >>> logits.shape
      (1, 3)
      >>> e = model.apply(v, tokens, method=lambda m, t: m.embed(t))  # what the layer 'embed' gives
      >>> bool(jnp.allclose(model.apply(v, e, tokens != 0, method="encode"), logits, atol=1e-6))
      True

    References:
      Vaswani et al. (2017), "Attention Is All You Need", NeurIPS; Devlin, Chang, Lee &
      Toutanova (2019), "BERT: Pre-training of Deep Bidirectional Transformers for Language
      Understanding", NAACL (class token, learned positions, padding mask).
    """

    vocab: int
    length: int
    width: int = 32
    depth: int = 2
    heads: int = 4
    mlp: int = 64
    classes: int = 2
    act: Callable = nn.gelu
    readout: str = "mean"
    pad_id: int | None = None

    def setup(self):
        _check_text("TextTransformer", self.vocab, self.length, self.pad_id, self.width, self.depth,
                    self.heads, self.mlp, self.classes, self.act, self.readout)
        self.embed = nn.Embed(self.vocab, self.width)
        cls = self.readout == "cls"
        if cls:
            self.cls_token = self.param("cls_token", nn.initializers.zeros, (1, 1, self.width))
        self.pos_embed = self.param(
            "pos_embed", nn.initializers.normal(_POS_STD), (1, self.length + cls, self.width)
        )
        for i in range(self.depth):
            setattr(self, f"block{i}", _Block(self.width, self.heads, self.mlp, self.act))
        self.ln = nn.LayerNorm()
        self.head = nn.Dense(self.classes)

    def __call__(self, tokens, mask=None):
        tokens = _check_tokens("TextTransformer", tokens, self.length)
        keep = _keep("TextTransformer", tokens, mask, self.pad_id)
        return self._encoded(self.embed(tokens), keep)

    def encode(self, embeddings, mask=None):
        """The logits from the token embeddings ``(N, L, width)`` (what ``embed`` returns) and the
        optional ``(N, L)`` bool ``mask`` (True where a token is attended to; with padding pass
        ``tokens != pad_id``): ``model.apply(v, e, mask, method="encode")``."""
        e = _check_embeddings("TextTransformer", embeddings, self.length, self.width)
        return self._encoded(e, _keep("TextTransformer", e[..., 0], mask, None))

    def _encoded(self, x, keep):
        if self.readout == "cls":
            x, keep = _with_cls(x, self.cls_token, keep)
        x = x + self.pos_embed[:, : x.shape[1]].astype(x.dtype)
        mask = _attention_mask(keep)
        for i in range(self.depth):
            x = getattr(self, f"block{i}")(x, mask)
        return self.head(_pool(self.ln(x), keep, self.readout))


# =========================================================================== NNX


def _check_rngs(name: str, rngs: Any) -> None:
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(
            f"jaxplain.zoo.{name}: rngs must be an nnx.Rngs, e.g. rngs=nnx.Rngs(0), got "
            f"{type(rngs).__name__}."
        )


class _BlockNNX(nnx.Module):
    def __init__(self, width: int, heads: int, mlp: int, act: Callable, *, rngs: nnx.Rngs):
        self.act = act
        self.ln0 = nnx.LayerNorm(width, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            heads, width, width, width, decode=False, keep_rngs=False, rngs=rngs
        )
        self.ln1 = nnx.LayerNorm(width, rngs=rngs)
        self.dense0 = nnx.Linear(width, mlp, rngs=rngs)
        self.dense1 = nnx.Linear(mlp, width, rngs=rngs)

    def __call__(self, x, mask=None):
        x = x + self.attn(self.ln0(x), mask=mask)
        return x + self.dense1(self.act(self.dense0(self.ln1(x))))


class _EncoderNNX(nnx.Module):
    """What the NNX twins share: the embeddings' parameters, the blocks, ``ln`` and ``head``."""

    def _build(self, tokens, width, depth, heads, mlp, classes, act, readout, rngs: nnx.Rngs):
        self.width, self.depth, self.act, self.readout = width, depth, act, readout
        if readout == "cls":
            self.cls_token = nnx.Param(jnp.zeros((1, 1, width)))
        shape = (1, tokens + (readout == "cls"), width)
        self.pos_embed = nnx.Param(nnx.initializers.normal(_POS_STD)(rngs.params(), shape))
        for i in range(depth):
            setattr(self, f"block{i}", _BlockNNX(width, heads, mlp, act, rngs=rngs))
        self.ln = nnx.LayerNorm(width, rngs=rngs)
        self.head = nnx.Linear(width, classes, rngs=rngs)

    def _encode(self, x, keep):
        if self.readout == "cls":
            x, keep = _with_cls(x, self.cls_token[...], keep)
        x = x + self.pos_embed[...][:, : x.shape[1]].astype(x.dtype)
        mask = _attention_mask(keep)
        for i in range(self.depth):
            x = getattr(self, f"block{i}")(x, mask)
        return self.head(_pool(self.ln(x), keep, self.readout))


class ViTNNX(_EncoderNNX):
    """The NNX twin of :class:`ViT`: attributes ``patch_embed``, ``cls_token`` (an ``nnx.Param``,
    with ``readout="cls"``), ``pos_embed`` (an ``nnx.Param``), ``block{i}`` (holding ``ln0``,
    ``attn``, an ``nnx.MultiHeadAttention`` with ``query``, ``key``, ``value``, ``out``, then
    ``ln1``, ``dense0``, ``dense1``), ``ln`` and ``head``.

    Args:
      image_size, patch, width, depth, heads, mlp, classes, act, readout: as in :class:`ViT`.
      in_features: channels of the input images.
      rngs: the ``nnx.Rngs`` for the initializers.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxplain.zoo import ViTNNX
      >>> model = ViTNNX(8, 4, width=8, heads=2, mlp=16, classes=3, rngs=nnx.Rngs(0))
      >>> model.block1.attn.query.kernel.shape, model(jnp.zeros((1, 8, 8, 3))).shape
      ((8, 2, 4), (1, 3))

    References:
      Dosovitskiy et al. (2021), "An Image is Worth 16x16 Words: Transformers for Image
      Recognition at Scale", ICLR.
    """

    def __init__(
        self,
        image_size: int = 16,
        patch: int = 4,
        width: int = 32,
        depth: int = 2,
        heads: int = 4,
        mlp: int = 64,
        classes: int = 10,
        act: Callable = nn.gelu,
        readout: str = "cls",
        *,
        in_features: int = 3,
        rngs: nnx.Rngs,
    ):
        n = _check_vit("ViTNNX", image_size, patch, width, depth, heads, mlp, classes, act, readout)
        in_features = _checks.check_int("zoo.ViTNNX", "in_features", in_features, minimum=1)
        _check_rngs("ViTNNX", rngs)
        self.image_size, self.tokens = image_size, n
        p = (patch, patch)
        self.patch_embed = nnx.Conv(in_features, width, p, p, padding="VALID", rngs=rngs)
        self._build(n, width, depth, heads, mlp, classes, act, readout, rngs)

    def __call__(self, x):
        x = self.patch_embed(_check_images("ViTNNX", x, self.image_size))
        return self._encode(jnp.reshape(x, (x.shape[0], self.tokens, self.width)), None)


class TextTransformerNNX(_EncoderNNX):
    """The NNX twin of :class:`TextTransformer`: attributes ``embed`` (an ``nnx.Embed``),
    ``cls_token`` (with ``readout="cls"``), ``pos_embed``, ``block{i}`` (as in :class:`ViTNNX`),
    ``ln`` and ``head``. Called as ``model(tokens, mask=None)``; ``model.encode(embeddings,
    mask=None)`` runs it from the output of ``embed`` (as :meth:`TextTransformer.encode`).

    Args:
      vocab, length, width, depth, heads, mlp, classes, act, readout, pad_id: as in
        :class:`TextTransformer`.
      rngs: the ``nnx.Rngs`` for the initializers.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxplain.zoo import TextTransformerNNX
      >>> model = TextTransformerNNX(10, 4, width=8, heads=2, mlp=16, classes=3, readout="cls",
      ...                            pad_id=0, rngs=nnx.Rngs(0))
      >>> model.pos_embed.shape, model(jnp.array([[3, 1, 4, 0]])).shape
      ((1, 5, 8), (1, 3))

    References:
      Vaswani et al. (2017), "Attention Is All You Need", NeurIPS; Devlin et al. (2019), "BERT",
      NAACL.
    """

    def __init__(
        self,
        vocab: int,
        length: int,
        width: int = 32,
        depth: int = 2,
        heads: int = 4,
        mlp: int = 64,
        classes: int = 2,
        act: Callable = nn.gelu,
        readout: str = "mean",
        pad_id: int | None = None,
        *,
        rngs: nnx.Rngs,
    ):
        _check_text("TextTransformerNNX", vocab, length, pad_id, width, depth, heads, mlp, classes,
                    act, readout)
        _check_rngs("TextTransformerNNX", rngs)
        self.length, self.pad_id = length, pad_id
        self.embed = nnx.Embed(vocab, width, rngs=rngs)
        self._build(length, width, depth, heads, mlp, classes, act, readout, rngs)

    def __call__(self, tokens, mask=None):
        tokens = _check_tokens("TextTransformerNNX", tokens, self.length)
        keep = _keep("TextTransformerNNX", tokens, mask, self.pad_id)
        return self._encode(self.embed(tokens), keep)

    def encode(self, embeddings, mask=None):
        """The logits from token embeddings ``(N, L, width)``, as :meth:`TextTransformer.encode`."""
        e = _check_embeddings("TextTransformerNNX", embeddings, self.length, self.width)
        return self._encode(e, _keep("TextTransformerNNX", e[..., 0], mask, None))
