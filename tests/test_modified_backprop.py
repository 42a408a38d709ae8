"""Guided backpropagation and deconvnet: the ReLU backward rules, found in f by tracing."""

import doctest
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxplain as jx
from jaxplain import _modified_backprop


def test_doctests_run():
    assert doctest.testmod(_modified_backprop).failed == 0


def _net(relu):
    w1 = jax.random.normal(jax.random.key(0), (5, 7))
    w2 = jax.random.normal(jax.random.key(1), (7, 3))
    return w1, w2, lambda x, t: (relu(x @ w1) @ w2)[t]


def test_rules_against_a_hand_written_backward_pass():
    for relu in (jax.nn.relu, nn.relu, lambda z: jnp.maximum(z, 0.0), lambda z: jnp.maximum(0.0, z)):
        w1, w2, f = _net(relu)
        x = jax.random.normal(jax.random.key(2), (5,))
        z = x @ w1
        g = w2[:, 1]
        guided = w1 @ jnp.where((z > 0) & (g > 0), g, 0.0)
        deconv = w1 @ jnp.maximum(g, 0.0)
        np.testing.assert_allclose(jx.guided_backprop(f)(x, 1), guided, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(jx.deconvnet(f)(x, 1), deconv, rtol=1e-5, atol=1e-6)


def test_without_relu_it_is_the_gradient_and_other_activations_are_untouched():
    w = jnp.array([[1.0, -2.0], [0.5, 3.0]])
    f = lambda x: jnp.sum(jnp.tanh(x @ w) * jnp.array([1.0, -1.0]))
    x = jnp.array([0.3, -0.4])
    np.testing.assert_allclose(jx.guided_backprop(f)(x), jax.grad(f)(x), rtol=1e-6)


def test_jit_vmap_equals_loop():
    _, _, f = _net(jax.nn.relu)
    xs = jax.random.normal(jax.random.key(3), (4, 5))
    ts = jnp.array([0, 1, 2, 0])
    for ex in (jx.guided_backprop(f), jx.deconvnet(f)):
        out = jax.jit(jax.vmap(ex))(xs, ts)
        np.testing.assert_allclose(out, jnp.stack([ex(xs[i], ts[i]) for i in range(4)]), rtol=1e-5, atol=1e-6)


def test_a_relu_out_of_reach_warns_and_keeps_its_gradient():
    # A ReLU inside a while loop (a higher-order primitive the rule does not enter; here the loop
    # computes a weight, so f stays differentiable in x) is evaluated as written, with a warning.
    def f(x):
        w = jax.lax.while_loop(lambda c: c[1] < 2, lambda c: (jax.nn.relu(c[0]) - 0.5, c[1] + 1),
                               (jnp.array([1.0, -1.0, 2.0]), 0))[0]
        return jnp.sum(jax.nn.relu(x) * w)

    x = jnp.array([1.0, -1.0, 2.0])
    with pytest.warns(UserWarning, match="higher-order primitive 'while'"):
        out = jx.guided_backprop(f)(x)
    # Guided backprop at the outer ReLU: w = (0, -0.5, 1) is the incoming gradient; negative
    # gradients are zeroed and x < 0 is masked, the loop's ReLUs are untouched.
    np.testing.assert_allclose(out, [0.0, 0.0, 1.0])


# --------------------------------------------------------------------------- the ReLU substitution


def _guided_reference(w1, w2, x):
    z = x @ w1
    return w1 @ jnp.where((z > 0) & (w2 > 0), w2, 0.0)


def test_relus_inside_jit_checkpoint_cond_and_scan_are_replaced():
    w1 = jax.random.normal(jax.random.key(0), (5, 7))
    w2 = jax.random.normal(jax.random.key(1), (7,))
    x = jax.random.normal(jax.random.key(2), (5,))
    ref = _guided_reference(w1, w2, x)
    wrappers = {
        "jit": lambda h: jax.jit(jax.nn.relu)(h),
        "checkpoint": lambda h: jax.checkpoint(lambda u: jnp.maximum(u, 0.0))(h),
        "cond": lambda h: lax.cond(h.sum() > -1e9, jax.nn.relu, jnp.sin, h),
        "scan": lambda h: lax.scan(lambda c, _: (jax.nn.relu(c), None), h, None, length=2)[0],
        "linen": lambda h: nn.relu(h),
    }
    for name, relu in wrappers.items():
        out = jx.guided_backprop(lambda v: relu(v @ w1) @ w2)(x)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6, err_msg=name)
    deconv = jx.deconvnet(lambda v: wrappers["scan"](v @ w1) @ w2)(x)
    np.testing.assert_allclose(deconv, w1 @ jnp.maximum(w2, 0.0), rtol=1e-5, atol=1e-6)


def test_own_derivative_rules_are_kept_and_loops_warn():
    x = jnp.array([-1.0, 2.0, 7.0])
    f = lambda v: jnp.sum(-jax.nn.relu6(v))  # a custom_jvp of its own: not a ReLU, rule kept
    np.testing.assert_allclose(jx.guided_backprop(f)(x), jax.grad(f)(x))
    g = lambda v: jnp.sum(-jax.nn.softplus(v)) + jnp.sum(-jnp.maximum(v, 1.0))
    np.testing.assert_allclose(jx.guided_backprop(g)(x), jax.grad(g)(x))
    loop = lambda v: lax.while_loop(lambda c: c[0] < 5, lambda c: jax.nn.relu(c) + 1, v)
    closed = jax.make_jaxpr(loop)(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        guided = _modified_backprop.RULES["guided"]
        (out,) = _modified_backprop._eval(closed.jaxpr, closed.consts, [x], guided, {})
    np.testing.assert_allclose(out, loop(x))
    assert any("'while'" in str(w.message) for w in caught)


def test_guided_backprop_is_differentiable_in_the_parameters():
    x = jnp.array([0.5, -1.0, 2.0])
    w2 = jnp.array([1.0, -1.0, 2.0, 0.5])

    def loss(w1, explain):
        return jnp.sum(explain(lambda v: jax.nn.relu(v @ w1) @ w2)(x) ** 2)

    w1 = jax.random.normal(jax.random.key(0), (3, 4))
    ours = jax.grad(loss)(w1, jx.guided_backprop)
    ref = jax.grad(lambda w: jnp.sum(_guided_reference(w, w2, x) ** 2))(w1)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_neuron_variants_are_the_rule_gradient_of_the_unit():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(6, name="fc1")(x))
            h = nn.relu(nn.Dense(5, name="fc2")(h))
            return nn.Dense(3, name="out")(h)

    model = Net()
    v = model.init(jax.random.key(0), jnp.zeros((1, 4)))
    f = lambda x, t: model.apply(v, x[None])[0, t]
    p = v["params"]
    pre = lambda x: (jax.nn.relu(x @ p["fc1"]["kernel"] + p["fc1"]["bias"]) @ p["fc2"]["kernel"]
                     + p["fc2"]["bias"])[2]
    xs = jax.random.normal(jax.random.key(1), (6, 4))
    for ours, whole in ((jx.neuron_guided_backprop, jx.guided_backprop), (jx.neuron_deconvnet, jx.deconvnet)):
        got = jax.vmap(ours(f, layer="fc2", neuron=(0, 2)))(xs, jnp.zeros(6, int))
        np.testing.assert_allclose(got, jax.vmap(whole(pre))(xs), rtol=1e-5, atol=1e-7)
        with pytest.raises(ValueError, match="out of range"):
            ours(f, layer="fc2", neuron=(0, 5))(xs[0], 0)
        with pytest.raises(TypeError, match="attributes to one layer"):
            ours(f, layer=("fc1", "fc2"), neuron=(0, 1))
    assert not np.allclose(jax.vmap(jx.guided_backprop(pre))(xs), jax.vmap(jax.grad(pre))(xs))


def test_a_layernorm_variance_clamp_is_not_a_relu():
    """Flax's LayerNorm clamps its variance with max(0, var) before rsqrt: on a network without a
    ReLU, guided backprop and deconvnet are the plain gradient."""
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.LayerNorm(name="ln")(nn.Dense(6, name="fc1")(x))
            return nn.Dense(3, name="out")(jnp.tanh(h))

    model = Net()
    v = model.init(jax.random.key(0), jnp.zeros((1, 4)))
    f = lambda x: model.apply(v, x[None])[0, 1]
    xs = jax.random.normal(jax.random.key(1), (5, 4))
    jaxpr = jax.make_jaxpr(f)(xs[0])
    assert "max" in str(jaxpr)  # the clamp is there
    for method in (jx.guided_backprop, jx.deconvnet):
        np.testing.assert_allclose(jax.vmap(method(f))(xs), jax.vmap(jax.grad(f))(xs), rtol=1e-6, atol=1e-7)
    # a ReLU after the LayerNorm is still one
    g = lambda x: model.apply(v, x[None], method=lambda m, x: m.__call__(x))[0, 1] + jnp.sum(jax.nn.relu(x) * -1.0)
    assert not np.allclose(jx.guided_backprop(g)(xs[0]), jax.grad(g)(xs[0]))


def test_a_relu_before_a_square_root_of_an_activation_is_still_a_relu():
    w = jnp.array([[1.0, -1.0], [1.0, 1.0]])
    f = lambda x: jnp.sum(-jnp.sqrt(jnp.maximum(x @ w, 0.0) + 1e-3))
    x = jnp.array([1.0, 2.0])
    assert not np.allclose(jx.guided_backprop(f)(x), jax.grad(f)(x))  # guided blocks the negative signal
    np.testing.assert_allclose(jx.guided_backprop(f)(x), 0.0)
