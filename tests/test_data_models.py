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


def test_training_learns_the_shapes():
    d = data.shapes(768, seed=0)
    model = zoo.VGG(features=(16, 32), classes=4)
    v = models.train_classifier(model, d.images, d.labels, key=jax.random.key(0), epochs=6,
                                batch_size=32, progress=False)
    test = data.shapes(200, seed=1)
    assert models.accuracy(model, v, test.images, test.labels) > 0.6  # chance is 0.25


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
