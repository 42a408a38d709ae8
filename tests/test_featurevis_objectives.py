"""Objectives (jaxplain._featurevis.objectives): each equals its definition on the layer read by
hand, Linen and NNX alike; the algebra; the regularizers' closed forms; and the checks."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxplain as jx
import jaxplain.flax as jxf
from jaxplain import zoo
from jaxplain._featurevis import objectives

O = jx.objectives


def test_doctests_run():
    assert doctest.testmod(objectives).failed == 0
    assert doctest.testmod(jx.objectives).failed == 0


@pytest.fixture(scope="module")
def vgg():
    model = zoo.VGG(features=(4, 6), classes=3)
    v = model.init(jax.random.key(0), jnp.zeros((1, 12, 12, 3)))
    xs = jax.random.uniform(jax.random.key(1), (2, 12, 12, 3))
    acts = model.apply(v, xs, capture_intermediates=True)[1]["intermediates"]
    a = acts["stage1"]["conv1"]["__call__"][0]  # (2, 6, 6, 6)
    return model, v, xs, a


def test_layer_objectives_equal_their_definitions(vgg):
    model, v, xs, a = vgg
    f = jxf.from_linen(model, v)
    twin = zoo.linen_to_nnx(model, v, zoo.VGGNNX(features=(4, 6), classes=3, rngs=nnx.Rngs(0)))
    for g in (f, jxf.from_nnx(twin)):
        np.testing.assert_allclose(O.channel(g, "stage1/conv1").fn(xs, xs, 2, ()), a[..., 2].mean(), rtol=1e-5)
        np.testing.assert_allclose(O.channel(g, "stage1/conv1", 4).fn(xs, xs, 2, ()), a[..., 4].mean(), rtol=1e-5)
        np.testing.assert_allclose(O.neuron(g, "stage1/conv1").fn(xs, xs, 1, ()), a[:, 3, 3, 1].mean(), rtol=1e-5)
        np.testing.assert_allclose(O.neuron(g, "stage1/conv1", 5, (0, 2)).fn(xs, xs, 1, ()), a[:, 0, 2, 5].mean(),
                                   rtol=1e-5)
        np.testing.assert_allclose(O.deepdream(g, "stage1/conv1").fn(xs, xs, 0, ()), jnp.mean(a ** 2), rtol=1e-5)
    vec = jnp.arange(6.0) - 2
    dot = a @ vec
    cos = dot / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(vec) + 1e-8)
    np.testing.assert_allclose(O.direction(f, "stage1/conv1", vec).fn(xs, xs, 0, ()), dot.mean(), rtol=1e-5)
    np.testing.assert_allclose(O.direction(f, "stage1/conv1", vec, cosine_power=2).fn(xs, xs, 0, ()),
                               jnp.mean(dot * jnp.maximum(cos, 0.1) ** 2), rtol=1e-5)
    logits = model.apply(v, xs)
    np.testing.assert_allclose(O.class_logit(f).fn(xs, xs, 2, ()), logits[:, 2].mean(), rtol=1e-5)


def test_diversity_is_minus_the_mean_gram_cosine(vgg):
    model, v, xs, a = vgg
    f = jxf.from_linen(model, v)
    g = jnp.einsum("bhwi,bhwj->bij", a, a).reshape(2, -1)
    g = g / jnp.linalg.norm(g, axis=-1, keepdims=True)
    np.testing.assert_allclose(O.diversity(f, "stage1/conv1").fn(xs, xs, 0, ()), -2 * (g[0] @ g[1]) / 2, rtol=1e-5)


def test_algebra_and_regularizers():
    f = lambda x, t: jnp.sum(x) * (t + 1)
    x = jnp.linspace(0, 1, 12).reshape(2, 2, 3)
    a, b = O.class_logit(f), O.total_variation()
    np.testing.assert_allclose((a - 2 * b)(x, 1), a(x, 1) - 2 * b(x, 1), rtol=1e-6)
    np.testing.assert_allclose((-a / 4 + b)(x, 1), -a(x, 1) / 4 + b(x, 1), rtol=1e-6)
    np.testing.assert_allclose(O.l1()(x), jnp.sum(jnp.abs(x - 0.5)), rtol=1e-6)
    np.testing.assert_allclose(O.l2(constant=0.2)(x), jnp.sqrt(jnp.sum((x - 0.2) ** 2)), rtol=1e-6)
    tv = jnp.sum(jnp.abs(x[1:] - x[:-1])) + jnp.sum(jnp.abs(x[:, 1:] - x[:, :-1]))
    np.testing.assert_allclose(b(x), tv, rtol=1e-6)
    g = jax.grad(lambda im: O.blur().fn(im[None], im[None], 0, ()))(x)
    pad = jnp.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    box = sum(pad[i:i + 2, j:j + 2] for i in range(3) for j in range(3)) / 9
    np.testing.assert_allclose(g, x - box, rtol=1e-5, atol=1e-7)  # the blur target is constant
    with pytest.raises(TypeError):
        a + 1.0
    with pytest.raises(TypeError):
        a * "2"


def test_objective_checks(vgg):
    model, v, xs, a = vgg
    f = jxf.from_linen(model, v)
    with pytest.raises(ValueError, match=r"vector has 3 entries but the layer's output of shape \(6, 6, 6\) has 6"):
        O.direction(f, "stage1/conv1", jnp.ones(3)).check(xs[0], np.asarray(0), ())
    with pytest.raises(ValueError, match=r"position \(7, 0\) does not index"):
        O.neuron(f, "stage1/conv1", 0, (7, 0)).check(xs[0], np.asarray(0), ())
    with pytest.raises(ValueError, match=r"channel 6 is out of range .* 0 .. 5"):
        O.channel(f, "stage1/conv1").check(xs[0], np.arange(7), ())
    with pytest.raises(TypeError, match="channel must be None"):
        O.channel(f, "stage1/conv1", -1)
    with pytest.raises(TypeError, match="position must be"):
        O.neuron(f, "stage1/conv1", 0, [1, 2])
