"""The demo's feature visualization panels (``python -m jaxplain``): rendered channels and classes
of the CNN, the dataset examples that excite those channels most, and the first layer's filters."""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxplain as jx
from jaxplain import data, featurevis, plot
from jaxplain import flax as jxf

LAYER = "stage1"  # the last stage's ReLU feature maps


def gallery(model, variables, train, args, key) -> tuple[list[str], dict]:
    """Writes ``featurevis.png``, ``dataset_examples.png`` and ``filters.png``; returns the paths and
    ``{"channel_vs_noise": per-channel ratio, "class_probability": per-class probability}``."""
    import matplotlib.pyplot as plt

    f = jxf.from_linen(model, variables)
    steps, n_channels = (4, 4) if args.quick else (256, 16)
    obj = jx.objectives.channel(f, LAYER)
    t0 = time.perf_counter()
    render = jx.activation_maximization(obj, shape=(32, 32, 3), steps=steps, progress=not args.quick)
    channels = jnp.arange(n_channels)
    rendered = render(key, channels)
    noise = jax.random.uniform(jax.random.fold_in(key, 1), (32, 32, 3))
    got = np.asarray(jax.vmap(obj)(rendered, channels))
    base = np.asarray(jax.vmap(lambda c: obj(noise, c))(channels))
    ratio = np.where(base > 0, got / np.where(base > 0, base, 1.0), np.nan)
    classes = jx.activation_maximization(
        jx.objectives.class_logit(jxf.from_linen(model, variables, output="log_softmax")),
        shape=(32, 32, 3), steps=steps, progress=not args.quick)(key, jnp.arange(len(data.CLASSES)))
    probs = np.asarray(jax.vmap(jxf.from_linen(model, variables, output="softmax"))(
        classes, jnp.arange(len(data.CLASSES))))
    print(f"  featurevis {n_channels} channels + {len(data.CLASSES)} classes, {steps} steps "
          f"{time.perf_counter() - t0:6.2f} s: channel mean / noise's, median "
          f"{np.nanmedian(ratio):.1f}x; class probabilities {np.round(probs, 3).tolist()}")
    paths = []
    titles = [f"ch {c}: {r:.0f}x" if np.isfinite(r) else f"ch {c}: dead" for c, r in enumerate(ratio)]
    titles += [f"{name} p={p:.2f}" for name, p in zip(data.CLASSES, probs)]
    fig = plot.grid(np.concatenate([np.asarray(rendered), np.asarray(classes)]), titles=titles,
                    cols=max(4, n_channels // 2), path=os.path.join(args.out, "featurevis.png"))
    plt.close(fig)
    paths.append(os.path.join(args.out, "featurevis.png"))
    shown, names = [], []
    for c in range(min(4, n_channels)):
        top = featurevis.top_k(lambda x, c=c: obj(x, c), train.images[:512], 4, batch_size=128)
        crops = featurevis.activation_crops(f, LAYER, top.examples, c, size=16)
        for i, (idx, crop) in enumerate(zip(top.indices, crops)):
            shown.append(np.asarray(jax.image.resize(crop, (32, 32, 3), "nearest")))
            names.append(f"ch {c} #{i + 1} ({idx})")
    fig = plot.grid(np.stack(shown), titles=names, cols=4, path=os.path.join(args.out, "dataset_examples.png"))
    plt.close(fig)
    paths.append(os.path.join(args.out, "dataset_examples.png"))
    kernel = variables["params"]["stage0"]["conv0"]["kernel"]
    fig = plot.grid(featurevis.filters(kernel), titles=range(kernel.shape[-1]), cols=8,
                    path=os.path.join(args.out, "filters.png"))
    plt.close(fig)
    paths.append(os.path.join(args.out, "filters.png"))
    for p in paths:
        print(f"wrote {p}")
    return paths, {"channel_vs_noise": ratio, "class_probability": probs}
