"""LRP on a ResNet with BatchNorm: canonize, pick rules by module path, compare composites.

    python examples/lrp_resnet.py [--out lrp_resnet.png]

Trains the zoo's ResNet (BatchNorm, residual blocks) briefly on the generated shapes, merges each
BatchNorm into the convolution before it (``jx.canonizers.merge_batchnorm``, a function
transform: the model and its variables are untouched), and explains 4 test images with three
composites, one of them built by module path. Relevance sums are printed beside the logits (the
merged biases absorb part of the relevance).
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
    p.add_argument("--out", default="lrp_resnet.png")
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args(argv)

    train, test = data.shapes(args.train, seed=0), data.shapes(4, seed=1)
    model = zoo.ResNet(features=(8, 16), classes=len(data.CLASSES))
    variables = models.train_classifier(model, train.images, train.labels, key=jax.random.key(0),
                                        epochs=args.epochs)
    f = jx.canonizers.merge_batchnorm(jxf.from_linen(model, variables))   # BatchNorm folded away
    xs, ts = jnp.asarray(test.images), jnp.asarray(test.labels)

    composites = {
        "eps+ flat": jx.composites.epsilon_plus_flat(),
        "eps gamma box": jx.composites.epsilon_gamma_box(low=0.0, high=1.0),   # images in [0, 1]
        "by path": jx.composites.custom(
            paths={"stem_conv": jx.rules.flat, "stage0/*": jx.rules.gamma(gamma=0.5),
                   "stage1/*": jx.rules.zplus, "head": jx.rules.epsilon(epsilon=0.01)},
        ),
    }
    relevance = {name: jax.jit(jax.vmap(jx.lrp(f, rules=c)))(xs, ts) for name, c in composites.items()}
    logits = jax.vmap(f)(xs, ts)
    for name, r in relevance.items():
        sums = r.reshape(len(ts), -1).sum(axis=1)
        print(f"{name:14s} relevance sums {sums.round(3)}  logits {logits.round(3)}")

    fig, axes = plt.subplots(len(ts), len(composites), figsize=(3 * len(composites), 3 * len(ts)))
    for j, (name, r) in enumerate(relevance.items()):
        for i in range(len(ts)):
            plot.overlay(xs[i], r[i], ax=axes[i, j], title=f"{name}: {data.CLASSES[int(ts[i])]}")
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return relevance, logits


if __name__ == "__main__":
    main()
