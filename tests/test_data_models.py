"""The generated dataset and the demo model."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplain import data, models, zoo


def test_doctests_run():
    assert doctest.testmod(data).failed == 0
    assert doctest.testmod(models).failed == 0


def test_shapes_facts():
    d = data.shapes(40, size=20, seed=3)
    assert d.images.shape == (40, 20, 20, 3) and d.images.dtype == np.float32
    assert d.images.min() >= 0.0 and d.images.max() <= 1.0
    assert np.bincount(d.labels).tolist() == [10, 10, 10, 10]
    area = d.masks.mean(axis=(1, 2))
    assert np.all(area > 0.02) and np.all(area < 0.5)
    # The shape is brighter than the background on average (colour >= 0.45, background <= 0.35 + noise).
    inside = np.array([d.images[i][d.masks[i]].mean() for i in range(40)])
    outside = np.array([d.images[i][~d.masks[i]].mean() for i in range(40)])
    assert np.all(inside > outside)
    again = data.shapes(40, size=20, seed=3)
    np.testing.assert_array_equal(again.images, d.images)
    assert not np.array_equal(data.shapes(40, size=20, seed=4).images, d.images)


@pytest.mark.parametrize("kwargs, match", [({"n": 0}, "n must be"), ({"n": 4, "size": 8}, "size must be"),
                                           ({"n": 4, "noise": -1.0}, "noise must be")])
def test_shapes_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.shapes(**kwargs)


# Training the demo CNN on the shapes to > 60 % held-out accuracy (chance 25 %) is checked by the
# fixture of tests/test_featurevis_render.py, which trains that model anyway; a ViT's, by
# tests/test_transformer_answers.py::test_attn_lrp_on_a_trained_vit_puts_its_mass_on_the_shape.


def test_training_bad_input():
    with pytest.raises(ValueError, match="as many labels as images"):
        models.train_classifier(zoo.VGG(), jnp.zeros((3, 16, 16, 3)), jnp.zeros(2, int),
                                key=jax.random.key(0))


def test_training_updates_batchnorm_statistics():

    d = data.shapes(64, size=16, seed=0)
    model = zoo.ResNet(features=(4,), classes=4)
    v = models.train_classifier(model, d.images, d.labels, key=jax.random.key(0), epochs=1,
                                batch_size=32, progress=False)
    init = model.init(jax.random.key(0), d.images[:1])
    moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), v["batch_stats"], init["batch_stats"])
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-3


# ----------------------------------------------------------------------------- token_order


def test_token_order_facts():
    d = data.token_order(300, length=10, vocab=9, min_length=4, seed=2)
    assert d.tokens.shape == (300, 10) and d.tokens.dtype == np.int32
    assert d.labels.dtype == d.positions.dtype == d.lengths.dtype == np.int32
    assert np.bincount(d.labels).tolist() == [150, 150]
    assert d.lengths.min() >= 4 and d.lengths.max() <= 10 and len(set(d.lengths.tolist())) == 7
    rows = np.arange(300)
    a, b = d.positions.T
    # A and B appear exactly once each, at the positions given, before the padding.
    assert np.all(d.tokens[rows, a] == data.TOKEN_A) and np.all(d.tokens[rows, b] == data.TOKEN_B)
    assert np.all((d.tokens == data.TOKEN_A).sum(1) == 1) and np.all((d.tokens == data.TOKEN_B).sum(1) == 1)
    assert np.all(a < d.lengths) and np.all(b < d.lengths) and np.all(a != b)
    # The label is the order; padding exactly from lengths on; fillers are the other ids.
    np.testing.assert_array_equal(d.labels, (a < b).astype(np.int32))
    padding = np.arange(10)[None, :] >= d.lengths[:, None]
    np.testing.assert_array_equal(d.tokens == data.PAD, padding)
    filler = ~padding & (d.tokens != data.TOKEN_A) & (d.tokens != data.TOKEN_B)
    assert d.tokens[filler].min() >= 3 and d.tokens[filler].max() == 8
    # Both decisive positions spread over the sequence (neither is always first).
    assert len(set(a.tolist())) == 10 and len(set(b.tolist())) == 10
    again = data.token_order(300, length=10, vocab=9, min_length=4, seed=2)
    for x, y in zip(again, d):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(data.token_order(300, length=10, vocab=9, min_length=4, seed=3).tokens,
                              d.tokens)
    full = data.token_order(8, length=5)
    assert np.all(full.lengths == 5) and not np.any(full.tokens == data.PAD)


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "n must be an int >= 1"), ({"n": 4, "length": 1}, "length must be"),
    ({"n": 4, "vocab": 3}, "vocab must be an int >= 4"),
    ({"n": 4, "length": 6, "min_length": 7}, r"min_length must be an int with 2 <= min_length <= length=6"),
    ({"n": 4, "min_length": 1}, "min_length must be"),
])
def test_token_order_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.token_order(**kwargs)


# ----------------------------------------------------------------------------- Transformers


# A text Transformer learning data.token_order is checked where its attributions are
# (tests/test_transformer_answers.py: held-out accuracy > 0.9 after 300 steps).


@pytest.mark.parametrize("kwargs, match", [({"steps": 0}, "steps must be an int >= 1"),
                                           ({"warmup": -1}, "warmup must be"),
                                           ({"batch_size": 0}, "batch_size must be")])
def test_training_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.train_classifier(zoo.VGG(), jnp.zeros((3, 16, 16, 3)), jnp.zeros(3, int),
                                key=jax.random.key(0), **kwargs)
