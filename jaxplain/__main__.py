"""The demo: ``python -m jaxplain``.

Trains a small Flax CNN on the generated shapes dataset (under a minute on a CPU, with a progress
bar), explains a handful of test images with every method in :data:`GALLERY` and writes the gallery
to a PNG. Each family adds its methods to :data:`GALLERY`.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxplain as jx
from jaxplain import data, models, plot, zoo
from jaxplain import flax as jxf


class Entry(NamedTuple):
    """One gallery column: a name, ``build(f, ctx) -> explainer`` (``ctx``: the demo's data) and an
    optional ``show(attribution, (H, W)) -> array`` that turns it into an image-sized map (e.g. a
    layer attribution summed over channels and resized)."""

    name: str
    build: Callable
    show: Callable | None = None


def _channel_sum(a, size):  # (h, w, C) layer attribution -> channel sum, resized to `size`
    return np.asarray(jax.image.resize(a.sum(-1), size, "bilinear"))


_LAYER = "stage1/conv1"  # the VGG's last convolution (its output before the ReLU)
_FEATURES = "stage1"  # the last stage's output: the ReLU feature maps that feed GAP + head
_NEURON = (8, 8, 0)  # one unit of _LAYER: channel 0 at the centre (per example, no batch axis)

#: The demo's galleries, one PNG each: {family: [Entry, ...]}. Each family adds its methods here.
GALLERY = {
    "gradients": [
        Entry("gradient", lambda f, ctx: jx.gradient(f)),
        Entry("saliency", lambda f, ctx: jx.saliency(f)),
        Entry("gradient x input", lambda f, ctx: jx.gradient_x_input(f)),
        Entry("integrated gradients", lambda f, ctx: jx.integrated_gradients(f, steps=32, batch_size=8)),
        Entry("smoothgrad", lambda f, ctx: jx.smoothgrad(jx.gradient(f), samples=16, sigma=0.15)),
        Entry("smoothgrad sq", lambda f, ctx: jx.smoothgrad(jx.gradient(f), samples=16, kind="smoothgrad_sq")),
        Entry("vargrad", lambda f, ctx: jx.smoothgrad(jx.gradient(f), samples=16, kind="vargrad")),
        Entry("expected gradients", lambda f, ctx: jx.expected_gradients(f, baselines=ctx["references"], samples=32)),
        Entry("gradient shap", lambda f, ctx: jx.gradient_shap(f, baselines=ctx["references"])),
    ],
    "layers": [
        Entry("layer activation", lambda f, ctx: jx.layer_activation(f, layer=_LAYER), _channel_sum),
        Entry("layer grad x act", lambda f, ctx: jx.layer_gradient_x_activation(f, layer=_LAYER), _channel_sum),
        Entry("layer IG", lambda f, ctx: jx.layer_integrated_gradients(f, layer=_LAYER, steps=16), _channel_sum),
        Entry("layer conductance", lambda f, ctx: jx.layer_conductance(f, layer=_LAYER, steps=16), _channel_sum),
        Entry("internal influence", lambda f, ctx: jx.internal_influence(f, layer=_LAYER, steps=16), _channel_sum),
        Entry("neuron gradient", lambda f, ctx: jx.neuron_gradient(f, layer=_LAYER, neuron=_NEURON)),
        Entry("neuron IG", lambda f, ctx: jx.neuron_integrated_gradients(f, layer=_LAYER, neuron=_NEURON, steps=16)),
        Entry("neuron conductance", lambda f, ctx: jx.neuron_conductance(f, layer=_LAYER, neuron=_NEURON, steps=16)),
        Entry("layer gradient shap", lambda f, ctx: jx.layer_gradient_shap(f, layer=_LAYER, baselines=ctx["references"]), _channel_sum),
        Entry("neuron gradient shap", lambda f, ctx: jx.neuron_gradient_shap(f, layer=_LAYER, neuron=_NEURON, baselines=ctx["references"])),
        Entry("neuron guided backprop", lambda f, ctx: jx.neuron_guided_backprop(f, layer=_LAYER, neuron=_NEURON)),
        Entry("neuron deconvnet", lambda f, ctx: jx.neuron_deconvnet(f, layer=_LAYER, neuron=_NEURON)),
    ],
    "cam": [
        Entry("CAM", lambda f, ctx: jx.cam(f, layer=_FEATURES)),
        Entry("Grad-CAM", lambda f, ctx: jx.grad_cam(f, layer=_FEATURES)),
        Entry("Grad-CAM++", lambda f, ctx: jx.grad_cam_plus_plus(f, layer=_FEATURES)),
        Entry("guided Grad-CAM", lambda f, ctx: jx.guided_grad_cam(f, layer=_FEATURES)),
        Entry("guided backprop", lambda f, ctx: jx.guided_backprop(f)),
        Entry("deconvnet", lambda f, ctx: jx.deconvnet(f)),
    ],
    "lrp": [
        Entry("LRP epsilon", lambda f, ctx: jx.lrp(f, rules=jx.rules.epsilon(epsilon=1e-3))),
        Entry("LRP zplus", lambda f, ctx: jx.lrp(f, rules=jx.composites.epsilon_plus())),
        Entry("LRP eps+ flat", lambda f, ctx: jx.lrp(f, rules=jx.composites.epsilon_plus_flat())),
        Entry("LRP eps gamma box", lambda f, ctx: jx.lrp(f, rules=jx.composites.epsilon_gamma_box(low=0.0, high=1.0))),
        Entry("LRP eps a2b1", lambda f, ctx: jx.lrp(f, rules=jx.composites.epsilon_alpha2_beta1())),
        Entry("LRP eps a2b1 flat", lambda f, ctx: jx.lrp(f, rules=jx.composites.epsilon_alpha2_beta1_flat())),
        Entry("LRP wsquare first", lambda f, ctx: jx.lrp(f, rules=jx.composites.custom(
            types={"conv": jx.rules.gamma, "dense": jx.rules.epsilon}, first=jx.rules.wsquare))),
        Entry("DeepLIFT", lambda f, ctx: jx.deeplift(f, baseline=0.0)),
        Entry("DeepLIFT-SHAP", lambda f, ctx: jx.deeplift_shap(f, baselines=ctx["references"][:16])),
        Entry("layer LRP", lambda f, ctx: jx.layer_lrp(f, layer=_LAYER), _channel_sum),
        Entry("layer DeepLIFT", lambda f, ctx: jx.layer_deeplift(f, layer=_LAYER), _channel_sum),
        Entry("layer DeepLIFT-SHAP", lambda f, ctx: jx.layer_deeplift_shap(f, layer=_LAYER, baselines=ctx["references"][:8]), _channel_sum),
        Entry("neuron DeepLIFT", lambda f, ctx: jx.neuron_deeplift(f, layer=_LAYER, neuron=_NEURON)),
        Entry("neuron DeepLIFT-SHAP", lambda f, ctx: jx.neuron_deeplift_shap(f, layer=_LAYER, neuron=_NEURON, baselines=ctx["references"][:8])),
    ],
    "perturbation": [
        Entry("occlusion 8x8", lambda f, ctx: jx.occlusion(f, window=(8, 8, 3), stride=(4, 4, 3))),
        Entry("feature ablation 4x4", lambda f, ctx: jx.feature_ablation(f, mask=_grid(8))),
        Entry("Shapley values 3x3", lambda f, ctx: jx.shapley_values(f, mask=_grid(11))),
        Entry("Shapley sampling 4x4", lambda f, ctx: jx.shapley_sampling(f, mask=_grid(8), samples=8)),
        Entry("KernelSHAP 4x4", lambda f, ctx: jx.kernel_shap(f, mask=_grid(8), samples=128)),
        Entry("LIME 4x4", lambda f, ctx: jx.lime(f, mask=_grid(8), samples=128)),
        Entry("RISE", lambda f, ctx: jx.rise(f, masks=256, cell=4)),
    ],
}


def _grid(cell: int, size: int = 32) -> np.ndarray:
    """Feature ids of square cells of ``cell`` pixels over a ``size x size`` image, ``(H, W, 1)``."""
    return jx.segmentation.grid((size, size), cell)


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m jaxplain", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="gallery", help="folder for the gallery PNGs (one per family)")
    p.add_argument("--train", type=int, default=3000, help="training images")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--images", type=int, default=6, help="test images in the gallery")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a tiny run (for tests)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Runs the demo; returns ``{"accuracy", "paths", "attributions": {method name: array}}``."""
    args = _parse(argv)
    if args.quick:
        args.train, args.epochs, args.images = 128, 1, min(args.images, 2)
    key = jax.random.key(args.seed)
    k_train, k_explain = jax.random.split(key)
    start = time.perf_counter()
    train = data.shapes(args.train, seed=args.seed)
    test = data.shapes(max(200, args.images), seed=args.seed + 1)
    model = zoo.VGG(features=(16, 32), classes=len(data.CLASSES))
    variables = models.train_classifier(
        model, train.images, train.labels, key=k_train, epochs=args.epochs
    )
    acc = models.accuracy(model, variables, test.images, test.labels)
    print(f"trained a VGG-style CNN on {args.train} shapes in {time.perf_counter() - start:.1f} s: "
          f"test accuracy {acc:.1%}")

    f = jxf.from_linen(model, variables)  # f(x, target) -> logit of target for one image
    xs = jnp.asarray(test.images[: args.images])
    targets = jnp.asarray(test.labels[: args.images])
    ctx = {"references": jnp.asarray(train.images[:64])}
    keys = jax.random.split(k_explain, args.images)
    attributions, paths = {}, []
    labels = [f"{data.CLASSES[int(t)]}" for t in targets]
    os.makedirs(args.out, exist_ok=True)
    for family, entries in GALLERY.items():
        shown = {}
        for entry in entries:
            explainer = entry.build(f, ctx)
            batched = jax.jit(jax.vmap(explainer))
            t0 = time.perf_counter()
            out = batched(xs, targets, key=keys) if explainer.needs_key else batched(xs, targets)
            out = np.asarray(out)
            attributions[entry.name] = out
            shown[entry.name] = np.stack([entry.show(a, xs.shape[1:3]) for a in out]) if entry.show else out
            print(f"  {family:<10s} {entry.name:<22s} {time.perf_counter() - t0:6.2f} s")
        path = os.path.join(args.out, f"{family}.png")
        plot.gallery(np.asarray(xs), shown, labels=labels, path=path)
        paths.append(path)
        print(f"wrote {path}")
    paths.append(_tsne_gallery(model, variables, args, k_explain))
    from jaxplain import _demo_featurevis

    fv_paths, fv_result = _demo_featurevis.gallery(model, variables, train, args, k_explain)
    paths += fv_paths
    from jaxplain import _demo_transformers as tr

    k_vit, k_text = jax.random.split(k_train)
    vit_path, vit_maps = tr.vit_gallery(args, k_vit)
    text_paths, text_scores = tr.text_gallery(args, k_text)
    paths += [vit_path, *text_paths]
    return {"accuracy": acc, "paths": paths, "attributions": attributions, "featurevis": fv_result,
            "transformers": {**vit_maps, **{f"text {k}": s for k, s in text_scores.items()}}}


def _tsne_gallery(model, variables, args, key) -> str:
    """t-SNE of the CNN's penultimate features (the GAP of the last stage) on held-out images."""
    import matplotlib.pyplot as plt

    n = 150 if args.quick else 1000
    held_out = data.shapes(n, seed=args.seed + 2)
    f = jxf.from_linen(model, variables)
    maps = jax.jit(jax.vmap(jx.layer_activation(f, layer=_FEATURES)))(
        jnp.asarray(held_out.images), jnp.zeros(n, jnp.int32)
    )
    features = jnp.mean(maps, axis=(1, 2))  # (n, channels): what the dense head sees
    t0 = time.perf_counter()
    quick = dict(n_iter=100, early_exaggeration_iter=50) if args.quick else {}
    y = jx.tsne(features, key=key, perplexity=30.0, **quick)
    print(f"  tsne       {n} points                {time.perf_counter() - t0:6.2f} s")
    fig, ax = plt.subplots(figsize=(5.5, 5))
    plot.scatter(np.asarray(y), held_out.labels, ax=ax, class_names=list(data.CLASSES),
                 title="t-SNE of the CNN's penultimate features")
    path = os.path.join(args.out, "tsne.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
