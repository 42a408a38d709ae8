"""The demo's Transformer panels (``python -m jaxplain``): a ViT on the shapes images and a text
Transformer on the token-order task, each trained briefly, explained with AttnLRP (and its
relevance budget), CP-LRP, attention
rollout and flow, Grad-CAM on tokens and token attribution; written as ``vit.png``, ``text.png``
and ``text.html``."""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxplain as jx
from jaxplain import data, models, plot, zoo
from jaxplain import flax as jxf

__all__ = ["vit_gallery", "text_gallery"]


def _timed(label, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"  {'transformers':<12s} {label:<22s} {time.perf_counter() - t0:6.2f} s")
    return out


def vit_gallery(args, key) -> tuple[str, dict]:
    size, patch, grid = 16, 4, 4
    train = data.shapes(256 if args.quick else 3000, size=size, seed=args.seed)
    test = data.shapes(max(200, args.images), size=size, seed=args.seed + 1)
    model = zoo.ViT(image_size=size, patch=patch, width=32, depth=2, heads=4, mlp=64, classes=len(data.CLASSES))
    v = models.train_classifier(model, train.images, train.labels, key=key, steps=40 if args.quick else 1500,
                                warmup=40 if not args.quick else 4)
    acc = models.accuracy(model, v, test.images, test.labels)
    print(f"trained a ViT on {len(train.images)} 16x16 shapes: test accuracy {acc:.1%}")
    f = jxf.from_linen(model, v)
    xs, ts = jnp.asarray(test.images[: args.images]), jnp.asarray(test.labels[: args.images])
    up = lambda m: np.asarray(jax.vmap(lambda a: jax.image.resize(a, (size, size), "bilinear"))(m))
    shown = {}
    books = _timed("AttnLRP (with budget)", lambda: jax.jit(jax.vmap(
        jx.lrp_budget(f, rules=jx.composites.attn_lrp())))(xs, ts))
    shown["AttnLRP"] = np.asarray(books.relevance)
    share = lambda a: float(np.mean(np.asarray(a) / np.asarray(books.output)))
    kept = ", ".join(f"{k} {share(a):+.0%}" for k, a in books.absorbed.items() if np.any(np.asarray(a)))
    print(f"  AttnLRP's budget, mean share of f(x): input {share(books.relevance.sum(axis=(1, 2, 3))):+.0%}; "
          f"kept by {kept}")
    shown["CP-LRP"] = _timed("CP-LRP", lambda: np.asarray(
        jax.jit(jax.vmap(jx.lrp(f, rules=jx.composites.cp_lrp())))(xs, ts)))
    roll = _timed("attention rollout", lambda: jax.jit(jax.vmap(jx.attention_rollout(f)))(xs, ts))
    shown["rollout"] = up(np.asarray(roll)[:, 1:].reshape(-1, grid, grid))
    flow = _timed("attention flow", lambda: np.stack([jx.attention_flow(f)(x, t) for x, t in zip(xs, ts)]))
    shown["attention flow"] = up(flow[:, 1:].reshape(-1, grid, grid))
    shown["Grad-CAM (tokens)"] = _timed("Grad-CAM tokens", lambda: np.asarray(jax.jit(jax.vmap(
        jx.grad_cam(f, layer="block1/ln0", reshape=(grid, grid))))(xs, ts)))  # (pytorch-grad-cam's choice)
    path = os.path.join(args.out, "vit.png")
    plot.gallery(np.asarray(xs), shown, labels=[data.CLASSES[int(t)] for t in ts], path=path)
    print(f"wrote {path}")
    return path, shown


def text_gallery(args, key) -> tuple[list[str], dict]:
    import matplotlib.pyplot as plt

    train = data.token_order(256 if args.quick else 2000, length=12, vocab=16, min_length=6, seed=args.seed)
    test = data.token_order(max(100, args.images), length=12, vocab=16, min_length=6, seed=args.seed + 1)
    model = zoo.TextTransformer(vocab=16, length=12, width=32, depth=1, heads=4, mlp=64, classes=2,
                                pad_id=data.PAD)
    v = models.train_classifier(model, train.tokens, train.labels, key=key, steps=40 if args.quick else 300,
                                warmup=4 if args.quick else 30)
    acc = models.accuracy(model, v, test.tokens, test.labels)
    print(f"trained a text Transformer on 'does A come before B?': test accuracy {acc:.1%}")
    f = lambda t, c: model.apply(v, t[None])[0, c]
    toks, ts = jnp.asarray(test.tokens[: args.images]), jnp.asarray(test.labels[: args.images])
    methods = {
        "IG (embedding)": jx.token_attribution(jx.integrated_gradients, f, layer="embed", baseline_token=3,
                                               steps=32),
        "AttnLRP": jx.token_attribution(jx.lrp, f, layer="embed", rules=jx.composites.attn_lrp()),
        "gradient x input": jx.token_attribution(jx.gradient_x_input, f, layer="embed"),
    }
    scores = {name: _timed(name, lambda ex=ex: np.asarray(jax.jit(jax.vmap(ex))(toks, ts))[:, 0])
              for name, ex in methods.items()}
    words = lambda t: ["·" if int(i) == data.PAD else {1: "A", 2: "B"}.get(int(i), str(int(i))) for i in t]
    rows = [(f"{name}, sequence {i} (label {int(ts[i])})", words(toks[i]), s[i])
            for i in range(len(toks)) for name, s in scores.items()]
    html = plot.save_text_html(os.path.join(args.out, "text.html"), rows,
                               title="Token attributions: does token A come before token B?")
    fig, axes = plt.subplots(len(scores), 1, figsize=(6, 0.9 * len(scores) + 0.5))
    for ax, (name, s) in zip(np.atleast_1d(axes), scores.items()):
        plot.text_heatmap(words(toks[0]), s[0], ax=ax, title=name, colorbar=False)
    png = os.path.join(args.out, "text.png")
    fig.savefig(png, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {png} and {html}")
    return [png, str(html)], scores
