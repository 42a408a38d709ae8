"""Explain a batch of images with integrated gradients and SmoothGrad, and save an overlay.

    python examples/explain_batch.py [--out overlay.png]

Trains the zoo's VGG-style CNN briefly on the generated shapes, then explains 8 test images with
per-example targets in one jitted, vmapped call.
"""

import argparse

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import jaxplain as jx  # noqa: E402
from jaxplain import data, models, plot, zoo  # noqa: E402
from jaxplain import flax as jxf  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="overlay.png")
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args(argv)

    train, test = data.shapes(args.train, seed=0), data.shapes(8, seed=1)
    model = zoo.VGG(features=(16, 32), classes=len(data.CLASSES))
    variables = models.train_classifier(model, train.images, train.labels, key=jax.random.key(0),
                                        epochs=args.epochs)
    f = jxf.from_linen(model, variables)                    # f(x, target) -> logit, one image
    xs, ts = jnp.asarray(test.images), jnp.asarray(test.labels)

    ig = jax.jit(jax.vmap(jx.integrated_gradients(f, steps=32, batch_size=8)))
    sg = jax.jit(jax.vmap(jx.smoothgrad(jx.gradient(f), samples=16)))
    attr_ig = ig(xs, ts)
    attr_sg = sg(xs, ts, key=jax.random.split(jax.random.key(1), len(ts)))

    fig, axes = plt.subplots(2, 4, figsize=(10, 5))
    for i, ax in enumerate(axes.flat):
        source = attr_ig if i < 4 else attr_sg
        plot.overlay(xs[i % 4], source[i % 4], ax=ax, title=("IG " if i < 4 else "SmoothGrad ")
                     + data.CLASSES[int(ts[i % 4])])
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return attr_ig, attr_sg


if __name__ == "__main__":
    main()
