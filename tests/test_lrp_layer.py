"""jaxplain.layer_lrp: relevance at a layer is the relevance LRP passes through it."""

import doctest

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxplain as jx
import jaxplain.flax as jxf
from jaxplain._lrp import layer as layer_module


class CNN(nn.Module):
    bias: bool = True

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Conv(4, (3, 3), use_bias=self.bias, name="conv1")(x))
        h = nn.relu(nn.Conv(5, (3, 3), use_bias=self.bias, name="conv2")(h))
        h = nn.avg_pool(h, (2, 2), (2, 2)).reshape(h.shape[0], -1)
        h = nn.relu(nn.Dense(8, use_bias=self.bias, name="fc")(h))
        return nn.Dense(3, use_bias=self.bias, name="out")(h)


@pytest.fixture(scope="module")
def cnn():
    def make(bias):
        model = CNN(bias=bias)
        v = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 2)))
        if bias:  # biases of order one, so the epsilon rule's bias share shows
            v = jax.tree_util.tree_map_with_path(
                lambda p, a: a + 0.3 if "bias" in str(p) else a, v)
        return lambda x, t: model.apply(v, x[None])[0, t], v

    xs = jax.random.normal(jax.random.key(1), (3, 8, 8, 2))
    (f, v), (f0, _) = make(True), make(False)
    return f, f0, xs, v


def test_doctests_run():
    assert doctest.testmod(layer_module).failed == 0


@pytest.mark.parametrize("rules", ["epsilon_plus_flat", "epsilon_plus", "epsilon_alpha2_beta1"])
def test_relevance_at_the_first_layers_input_is_lrp_of_x(cnn, rules):
    """conv1's input is x: the propagation stops where lrp's does, each layer with the same rule
    (epsilon_plus_flat's flat first layer included)."""
    f, _, xs, _ = cnn
    composite = getattr(jx.composites, rules)()
    ex = jx.layer_lrp(f, layer="conv1", attribute_to_layer_input=True, rules=composite)
    got = jax.jit(jax.vmap(ex))(xs, jnp.arange(3))
    want = jax.vmap(jx.lrp(f, rules=composite))(xs, jnp.arange(3))
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-5, atol=1e-7)


def test_conservation_at_each_layer_of_a_bias_free_network(cnn):
    _, f, xs, _ = cnn
    for path in ("conv1", "conv2", "fc", "out"):
        ex = jx.layer_lrp(f, layer=path, rules=jx.rules.zero, return_delta=True)
        rel, gap = ex(xs[0], 1)
        assert abs(float(gap)) < 1e-5 * abs(float(f(xs[0], 1))) + 1e-6
        np.testing.assert_allclose(float(rel.sum()), float(f(xs[0], 1)), rtol=1e-5)
    # at the output layer, the relevance is f(x) at the target and nothing elsewhere
    rel = jx.layer_lrp(f, layer="out", rules=jx.rules.zero)(xs[0], 1)
    np.testing.assert_allclose(rel[0], jnp.zeros(3).at[1].set(f(xs[0], 1)), atol=1e-6)


def test_epsilon_moves_the_relevance_from_a_layers_output_to_its_input_by_its_formula(cnn):
    """At fc: R_in = x * (W @ (R_out / (z + eps sign z))), z = x @ W + b (Bach et al. eq. 58)."""
    f, _, xs, v = cnn
    rule = jx.rules.epsilon(epsilon=0.01)
    rel_in = jx.layer_lrp(f, layer="fc", attribute_to_layer_input=True, rules=rule)(xs[0], 2)
    rel_out = jx.layer_lrp(f, layer="fc", rules=rule)(xs[0], 2)
    x_in = jx.layer_activation(f, layer="fc", attribute_to_layer_input=True)(xs[0], 2)
    z = jx.layer_activation(f, layer="fc")(xs[0], 2)
    w = v["params"]["fc"]["kernel"]
    np.testing.assert_allclose(z, x_in @ w + v["params"]["fc"]["bias"], rtol=1e-5, atol=1e-6)
    want = x_in * ((rel_out / (z + 0.01 * jnp.where(z >= 0, 1.0, -1.0))) @ w.T)
    np.testing.assert_allclose(rel_in, want, rtol=1e-4, atol=1e-7)
    assert abs(float(rel_in.sum() - rel_out.sum())) > 1e-3 * abs(float(rel_out.sum()))  # the bias took a share


def test_linen_nnx_and_split_forms_agree():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc1 = nnx.Linear(4, 6, rngs=rngs)
            self.fc2 = nnx.Linear(6, 3, rngs=rngs)

        def __call__(self, x):
            return self.fc2(nnx.relu(self.fc1(x)))

    net = Net(nnx.Rngs(0))
    f = jxf.from_nnx(net)
    x = jax.random.normal(jax.random.key(2), (4,))
    k1, b1 = net.fc1.kernel[...], net.fc1.bias[...]
    k2, b2 = net.fc2.kernel[...], net.fc2.bias[...]
    split = jx.layer_lrp(features=lambda v: v @ k1 + b1, head=lambda a, t: (jax.nn.relu(a) @ k2 + b2)[t])
    np.testing.assert_allclose(jx.layer_lrp(f, layer="fc1")(x, 1), split(x, 1), rtol=1e-5, atol=1e-7)


def test_parallel_branches_share_the_relevance():
    class Two(nn.Module):
        @nn.compact
        def __call__(self, x):
            a = nn.relu(nn.Dense(4, use_bias=False, name="left")(x))
            b = nn.relu(nn.Dense(3, use_bias=False, name="right")(x))
            return nn.Dense(2, use_bias=False, name="out")(jnp.concatenate([a, b], -1))

    model = Two()
    v = model.init(jax.random.key(3), jnp.zeros((1, 5)))
    f = lambda x, t: model.apply(v, x[None])[0, t]
    x = jnp.abs(jax.random.normal(jax.random.key(4), (5,))) + 0.5
    t = int(jnp.argmax(model.apply(v, x[None])[0]))
    (left, right), gap = jx.layer_lrp(f, layer=("left", "right"), rules=jx.rules.zero,
                                      return_delta=True)(x, t)
    np.testing.assert_allclose(float(left.sum() + right.sum()), float(f(x, t)), rtol=1e-5)
    assert abs(float(gap)) < 1e-5
    with pytest.raises(ValueError, match="is computed from layer"):
        jx.layer_lrp(f, layer=("left", "out"))(x, t)


def test_errors(cnn):
    f, _, xs, _ = cnn
    with pytest.raises(TypeError, match="rules must be a composite"):
        jx.layer_lrp(f, layer="fc", rules="epsilon")
    with pytest.raises(TypeError, match="return_delta"):
        jx.layer_lrp(f, layer="fc", return_delta=1)
    with pytest.raises(TypeError, match="layer must be the path"):
        jx.layer_lrp(f)
    with pytest.raises(ValueError, match="no layer 'fc9' was called"):
        jx.layer_lrp(f, layer="fc9")(xs[0], 0)
