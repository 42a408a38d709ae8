"""Activation maximization (jaxplain._featurevis.render): on the demo CNN, rendered channels beat
noise and a class objective wins its class; one compiled run for many units; same key, same
image; bad options and units get clear errors."""

import doctest
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxplain as jx
import jaxplain.flax as jxf
from jaxplain import data, featurevis as fv, models, zoo
from jaxplain._featurevis import render as render_module


def test_doctests_run():
    assert doctest.testmod(render_module).failed == 0


@pytest.fixture(scope="module")
def cnn():
    """The demo's CNN (zoo.VGG(features=(16, 32)), 4 shape classes), trained briefly."""
    train = data.shapes(768, seed=0)
    model = zoo.VGG(features=(16, 32), classes=4)
    v = models.train_classifier(model, train.images, train.labels, key=jax.random.key(0), epochs=6,
                                batch_size=32, progress=False)
    test = data.shapes(200, seed=1)
    assert models.accuracy(model, v, test.images, test.labels) > 0.6  # models.train_classifier works
    return model, v, train


def test_every_channel_of_a_layer_in_one_call_beats_noise_and_a_class_objective_wins(cnn):
    model, v, train = cnn
    f = jxf.from_linen(model, v)
    obj = jx.objectives.channel(f, "stage1")  # after the ReLU: 32 channels
    render = jx.activation_maximization(obj, shape=(32, 32, 3), steps=128, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = render(jax.random.key(0), jnp.arange(32))
    assert images.shape == (32, 32, 32, 3)
    assert float(images.min()) >= 0 and float(images.max()) <= 1  # the sigmoid's range
    got = np.asarray(jax.vmap(obj)(images, jnp.arange(32)))
    noise = jax.random.uniform(jax.random.key(5), (32, 32, 3))
    base = np.asarray(jax.vmap(lambda c: obj(noise, c))(jnp.arange(32)))
    # channels that never fire on the training data: the renderer says so instead of pretending
    from jaxplain import _taps
    sp = _taps.split("t", f, "stage1", None, None, many=False)
    on_data = np.asarray(jax.jit(jax.vmap(sp.activation))(jnp.asarray(train.images[:256])).max(axis=(0, 1, 2)))
    dead = set(np.flatnonzero(on_data == 0).tolist())
    assert dead and all(c in str(caught[0].message) for c in map(str, sorted(dead)[:3])), caught
    live = base > 0
    ratio = got[live] / base[live]
    # measured at 128 steps: median 12x noise's activation; 256 steps: median 15x, lowest 3.2x
    # (the channels that noise already drives hardest, at 4-5)
    assert np.median(ratio) >= 8, np.sort(ratio)
    # a class objective makes the model predict that class (one test: the fixture trains once per
    # xdist worker)
    obj = jx.objectives.class_logit(jxf.from_linen(model, v, output="log_softmax"))
    images = jx.activation_maximization(obj, shape=(32, 32, 3), steps=96, progress=False)(
        jax.random.key(1), jnp.arange(4))
    p = jax.nn.softmax(model.apply(v, images), axis=-1)
    np.testing.assert_array_less(0.9, np.diag(np.asarray(p)))  # measured: >= 0.998 at 128 steps


def _tiny():
    model = zoo.VGG(features=(4,), classes=3)
    v = model.init(jax.random.key(0), jnp.zeros((1, 12, 12, 3)))
    return model, v, (lambda x, t=0: model.apply(v, x[None])[0, t])


def test_same_key_same_image_and_another_unit_does_not_recompile():
    model, v, g = _tiny()
    traces = []

    def f(x, t=0):
        traces.append(1)
        return g(x, t)

    render = jx.activation_maximization(jx.objectives.channel(f, "stage0/conv1"), shape=(12, 12, 3),
                                        steps=34, transforms=fv.compose(fv.pad(2), fv.jitter(2)),
                                        progress=False)  # a full chunk of steps and a remainder
    a = render(jax.random.key(3), 1)
    n = len(traces)
    b = render(jax.random.key(3), 2)
    assert len(traces) == n  # the unit is an argument of the compiled run
    np.testing.assert_array_equal(render(jax.random.key(3), 1), a)
    assert not np.allclose(a, b) and not np.allclose(render(jax.random.key(4), 1), a)
    together = render(jax.random.key(3), jnp.array([2, 1]))
    np.testing.assert_allclose(together[1], a, rtol=1e-5, atol=1e-6)  # units do not interact
    np.testing.assert_allclose(together[0], b, rtol=1e-5, atol=1e-6)


def test_steps_are_ascent_with_any_optax_optimizer_and_a_batch_with_diversity():
    model, v, f = _tiny()
    obj = jx.objectives.channel(f, "stage0/conv1")
    x0 = jnp.full((12, 12, 3), 0.5)
    for opt in (optax.chain(optax.clip(1.0), optax.adam(0.05)),):  # any optax transformation
        after = jx.activation_maximization(obj, shape=(12, 12, 3), steps=30, optimizer=opt, param=fv.pixel(),
                                           transforms=None, init=x0, progress=False)
        assert float(obj(after(jax.random.key(0), 0), 0)) > float(obj(x0, 0)) + 0.01  # up, not down
    two = jx.activation_maximization(obj - 0.1 * jx.objectives.diversity(f, "stage0/conv1"),
                                     shape=(12, 12, 3), steps=8, batch=2, transforms=None, progress=False)
    assert two(jax.random.key(0), 0).shape == (2, 12, 12, 3)
    assert two(jax.random.key(0), jnp.arange(3)).shape == (3, 2, 12, 12, 3)


def test_bad_options_and_units_are_clear_errors():
    model, v, f = _tiny()
    obj = jx.objectives.channel(f, "stage0/conv1")
    am = lambda **kw: jx.activation_maximization(obj, **{"shape": (12, 12, 3), "progress": False, **kw})
    with pytest.raises(ValueError, match="steps must be >= 1"):
        am(steps=0)
    with pytest.raises(TypeError, match=r"optax.GradientTransformation, e.g. optax.adam\(0.05\)"):
        am(optimizer=lambda g: g)
    with pytest.raises(TypeError, match="objective must be a jaxplain objective"):
        jx.activation_maximization(lambda x: x.sum(), shape=(12, 12, 3))
    with pytest.raises(ValueError, match=r"shape must be \(height, width, channels\)"):
        am(shape=(12, 12))
    with pytest.raises(ValueError, match="needs param=featurevis.pixel"):
        am(init=jnp.zeros((12, 12, 3)))
    with pytest.raises(ValueError, match="transforms must be"):
        am(transforms="lucid")
    with pytest.raises(ValueError, match=r"channel 4 is out of range .* valid channels are 0 .. 3"):
        am(steps=1)(jax.random.key(0), jnp.array([1, 4]))
    with pytest.raises(ValueError, match=r"no layer 'stage9' was called inside f\. Valid layer paths: 'stage0/conv0'"):
        jx.objectives.channel(f, "stage9")(jnp.zeros((12, 12, 3)), 0, 0)
    with pytest.raises(ValueError, match="out of range for a model with 3 classes"):
        jx.activation_maximization(jx.objectives.class_logit(jxf.from_linen(model, v)), shape=(12, 12, 3),
                                   steps=1, progress=False)(jax.random.key(0), 3)
    with pytest.raises(TypeError, match="key"):
        am(steps=1)(None, 0)
