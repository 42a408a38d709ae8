"""A plain Optax training loop for the classifiers of :mod:`jaxplain.zoo`, and their accuracy.

The inputs may be images (the CNNs, :class:`jaxplain.zoo.ViT`) or integer token ids
(:class:`jaxplain.zoo.TextTransformer`, e.g. on :func:`jaxplain.data.token_order`): they are fed
to the model as they are, dtype included.
"""

from __future__ import annotations

import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

__all__ = ["train_classifier", "accuracy"]


def accuracy(model: nn.Module, variables: Any, images, labels, *, batch_size: int = 512) -> float:
    """Fraction of ``images`` (or token sequences) whose argmax logit equals ``labels``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.models import accuracy
      >>> from jaxplain.zoo import VGG
      >>> m = VGG(features=(4,), classes=2)
      >>> v = m.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> 0.0 <= accuracy(m, v, jnp.zeros((4, 16, 16, 3)), jnp.zeros(4, int)) <= 1.0
      True

    References:
      The standard top-1 accuracy of image classification, e.g. Krizhevsky, Sutskever & Hinton (2012), NeurIPS.
    """
    predict = jax.jit(lambda x: jnp.argmax(model.apply(variables, x), -1))  # train defaults off
    hits = 0
    for lo in range(0, len(images), batch_size):
        hits += int(jnp.sum(predict(images[lo : lo + batch_size]) == labels[lo : lo + batch_size]))
    return hits / len(images)


def train_classifier(
    model: nn.Module,
    images,
    labels,
    *,
    key,
    epochs: int = 5,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    progress: bool = True,
    steps: int | None = None,
    warmup: int = 0,
) -> Any:
    """Trains ``model`` with softmax cross-entropy and Adam; returns its variables.

    Each epoch visits the data in a new random order, in ``len(images) // batch_size`` batches
    (one batch of all the data if there are fewer). With ``steps`` the run stops after that many
    batches instead, going on into as many epochs as it takes, so runs of different data sizes
    cost the same. ``warmup`` ramps the learning rate up linearly over its first steps (as
    Transformers are usually trained); then it stays at ``learning_rate``.

    Args:
      model: a Linen module mapping (N, ...) inputs to (N, classes) logits.
      images, labels: training data: (N, ...) inputs (floats, e.g. images, or integer token ids
        for :class:`jaxplain.zoo.TextTransformer`, passed as they are) and (N,) int class indices.
      key: PRNG key for initialization and shuffling.
      epochs, batch_size, learning_rate: the usual.
      progress: show a tqdm progress bar with the running loss.
      steps: the number of optimizer steps (batches) to take; ``None``: ``epochs`` epochs.
      warmup: number of steps of the linear learning-rate warmup (``0``: none).

    Raises:
      ValueError: the inputs and labels differ in number or are empty, or an option is out of
        range.

    Example:
      >>> import jax
      >>> from jaxplain.data import shapes
      >>> from jaxplain.models import train_classifier
      >>> from jaxplain.zoo import VGG
      >>> d = shapes(64, size=16)
      >>> v = train_classifier(VGG(features=(4,), classes=4), d.images, d.labels,
      ...                      key=jax.random.key(0), epochs=1, progress=False)
      >>> sorted(v["params"])
      ['head', 'stage0']

      On token sequences, a fixed number of steps:

      >>> from jaxplain.data import token_order
      >>> from jaxplain.zoo import TextTransformer
      >>> t = token_order(64, length=6, vocab=8)
      >>> model = TextTransformer(vocab=8, length=6, width=8, depth=1, heads=2, mlp=8, pad_id=0)
      >>> v = train_classifier(model, t.tokens, t.labels, key=jax.random.key(0), steps=3,
      ...                      warmup=2, progress=False)
      >>> v["params"]["embed"]["embedding"].shape
      (8, 8)

    References:
      Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", ICLR; Goyal et al.
      (2017), "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour" (linear warmup).
    """
    where = "jaxplain.models.train_classifier"
    images, labels = jnp.asarray(images), jnp.asarray(labels)
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(
            f"{where}: need as many labels as images (>= 1), got "
            f"{len(images)} images and {len(labels)} labels."
        )
    for name, value, low in (("epochs", epochs, 0), ("batch_size", batch_size, 1),
                             ("steps", 1 if steps is None else steps, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{where}: {name} must be an int >= {low}, got {value!r}.")
    k_init, k_shuffle = jax.random.split(key)
    # Models with BatchNorm take `train` (jaxplain.zoo.ResNet): train mode updates batch_stats.
    has_train = "train" in inspect.signature(type(model).__call__).parameters
    # One compiled program: eager initializers compile op by op (seconds for a Transformer).
    variables = jax.jit(model.init)(k_init, images[:1])
    params = variables["params"]
    state = {k: v for k, v in variables.items() if k != "params"}
    rate = optax.linear_schedule(0.0, learning_rate, warmup) if warmup else learning_rate
    tx = optax.adam(rate)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, state, opt_state, x, y):
        def loss_fn(p):
            if has_train:
                logits, new_state = model.apply(
                    {"params": p, **state}, x, train=True, mutable=list(state)
                )
            else:
                logits, new_state = model.apply({"params": p, **state}, x), state
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, new_state

        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), dict(state), opt_state, loss

    n_batches = len(images) // batch_size or 1
    total = epochs * n_batches if steps is None else steps
    bar = tqdm(total=total, desc="training", unit="batch", disable=not progress)
    for i in range(total):
        epoch, b = divmod(i, n_batches)
        if b == 0:
            order = np.asarray(
                jax.random.permutation(jax.random.fold_in(k_shuffle, epoch), len(images))
            )
        idx = order[b * batch_size : (b + 1) * batch_size]
        params, state, opt_state, loss = step(params, state, opt_state, images[idx], labels[idx])
        bar.update(1)
        if b % 10 == 0:
            bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss):.3f}")
    bar.close()
    return {"params": params, **state}
