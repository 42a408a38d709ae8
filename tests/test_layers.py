"""Layer and neuron attribution: axioms at the layer, references, Linen = NNX, errors."""

import doctest

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxplain as jx
from jaxplain import _layers, _taps
from jaxplain import flax as jxf


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.softplus(nn.Dense(6, name="fc1")(x))
        h = nn.tanh(nn.Dense(5, name="fc2")(h))
        return nn.Dense(3, name="out")(h)


class MLPNNX(nnx.Module):
    def __init__(self, rngs):
        self.fc1 = nnx.Linear(4, 6, rngs=rngs)
        self.fc2 = nnx.Linear(6, 5, rngs=rngs)
        self.out = nnx.Linear(5, 3, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.tanh(self.fc2(nnx.softplus(self.fc1(x)))))


@pytest.fixture(scope="module")
def mlp():
    model = MLP()
    v = model.init(jax.random.key(0), jnp.zeros((1, 4)))
    f = lambda x, t: model.apply(v, x[None])[0, t]
    net = MLPNNX(nnx.Rngs(0))
    for name in ("fc1", "fc2", "out"):  # same weights in NNX
        getattr(net, name).kernel.set_value(v["params"][name]["kernel"])
        getattr(net, name).bias.set_value(v["params"][name]["bias"])
    xs = jax.random.normal(jax.random.key(1), (5, 4))
    return model, v, f, jxf.from_nnx(net), xs


def test_doctests_run():
    assert doctest.testmod(_layers).failed == 0


def test_activation_matches_capture_intermediates(mlp):
    model, v, f, f_nnx, xs = mlp
    _, state = model.apply(v, xs[:1], capture_intermediates=True, mutable=["intermediates"])
    ref = state["intermediates"]["fc2"]["__call__"][0]
    np.testing.assert_allclose(jx.layer_activation(f, layer="fc2")(xs[0], 0), ref, rtol=1e-6)
    np.testing.assert_allclose(jx.layer_activation(f_nnx, layer="fc2")(xs[0], 0), ref[0], rtol=1e-5)


def test_layer_gradient_x_activation_reference(mlp):
    model, v, f, _, xs = mlp
    x = xs[0]
    p = v["params"]
    dense = lambda h, name: h @ p[name]["kernel"] + p[name]["bias"]
    a = dense(jax.nn.softplus(dense(x[None], "fc1")), "fc2")
    head = lambda a: dense(jnp.tanh(a), "out")[0, 2]
    np.testing.assert_allclose(
        jx.layer_gradient_x_activation(f, layer="fc2")(x, 2), a * jax.grad(head)(a), rtol=1e-5
    )


@pytest.mark.parametrize("framework", ["linen", "nnx"])
def test_layer_ig_completeness_and_linen_equals_nnx(mlp, framework):
    _, _, f, f_nnx, xs = mlp
    g = f if framework == "linen" else f_nnx
    attr, delta = jx.layer_integrated_gradients(g, layer="fc1", steps=64, return_delta=True)(xs[0], 1)
    gap = f(xs[0], 1) - f(jnp.zeros(4), 1)
    assert attr.shape == ((1, 6) if framework == "linen" else (6,))  # the adapter's f: per example
    assert abs(float(delta)) <= 1e-3 * abs(float(gap))
    np.testing.assert_allclose(float(jnp.sum(attr)), float(gap), rtol=1e-3)
    other = jx.layer_integrated_gradients(f, layer="fc1", steps=64)(xs[0], 1)
    np.testing.assert_allclose(attr.reshape(other.shape), other, rtol=1e-4, atol=1e-6)


def test_layer_conductance_completeness_and_neuron_split(mlp):
    _, _, f, _, xs = mlp
    x = xs[1]
    gap = float(f(x, 0) - f(jnp.zeros(4), 0))
    cond = jx.layer_conductance(f, layer="fc2", steps=256, method="riemann_trapezoid")(x, 0)
    np.testing.assert_allclose(float(jnp.sum(cond)), gap, rtol=2e-3)
    # The conductance of one unit is the sum over the input of its neuron conductance.
    for j in range(5):
        nc = jx.neuron_conductance(f, layer="fc2", neuron=(0, j), steps=256, method="riemann_middle")(x, 0)
        assert nc.shape == x.shape
        np.testing.assert_allclose(float(jnp.sum(nc)), float(cond[0, j]), rtol=5e-3, atol=1e-4)


def test_internal_influence_is_path_mean_of_layer_gradient(mlp):
    _, _, f, _, xs = mlp
    x = xs[2]
    sp = _taps.split("t", f, "fc1", None, None)
    a_grad = lambda z: jax.grad(lambda a: sp.rest(z, a, 2))(sp.activation(z, 2))
    ref = sum(a_grad((k + 0.5) / 40 * x) for k in range(40)) / 40  # slow midpoint rule
    ours = jx.internal_influence(f, layer="fc1", steps=40, method="riemann_middle")(x, 2)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)
    # baseline = x and one step: the plain layer gradient at x.
    np.testing.assert_allclose(
        jx.internal_influence(f, layer="fc1", baseline=lambda z: z, steps=1)(x, 2), a_grad(x), rtol=1e-6
    )


def test_neuron_gradient_and_ig(mlp):
    _, _, f, _, xs = mlp
    x = xs[3]
    sp = _taps.split("t", f, "fc2", None, None)
    unit = lambda z: sp.activation(z, 0)[0, 3]
    np.testing.assert_allclose(jx.neuron_gradient(f, layer="fc2", neuron=(0, 3))(x, 0), jax.grad(unit)(x), rtol=1e-6)
    nig = jx.neuron_integrated_gradients(f, layer="fc2", neuron=(0, 3), steps=64)(x, 0)
    np.testing.assert_allclose(float(jnp.sum(nig)), float(unit(x) - unit(jnp.zeros(4))), rtol=1e-4)
    # A callable selector (a whole channel) is the same as summing index selectors.
    both = jx.neuron_gradient(f, layer="fc2", neuron=lambda a: a[0, 3] + a[0, 1])(x, 0)
    np.testing.assert_allclose(
        both,
        jx.neuron_gradient(f, layer="fc2", neuron=(0, 3))(x, 0) + jx.neuron_gradient(f, layer="fc2", neuron=(0, 1))(x, 0),
        rtol=1e-5,
    )


def test_plain_function_form():
    w1 = jnp.array([[1.0, -1.0], [2.0, 0.5]])
    features = lambda x: jnp.tanh(x @ w1)
    head = lambda a, t: a[t] * 3.0
    f = lambda x, t: head(features(x), t)
    x = jnp.array([0.3, -0.7])
    sp = _taps.split("t", None, None, features, head)
    np.testing.assert_allclose(sp.activation(x, 1), features(x))
    lig = jx.layer_integrated_gradients(features=features, head=head, steps=32)(x, 1)
    np.testing.assert_allclose(float(jnp.sum(lig)), float(f(x, 1) - f(jnp.zeros(2), 1)), rtol=1e-4)


def test_jit_vmap_per_example_targets(mlp):
    _, _, f, f_nnx, xs = mlp
    ts = jnp.array([0, 1, 2, 0, 1])
    for ex in (
        jx.layer_gradient_x_activation(f, layer="fc2"),
        jx.layer_integrated_gradients(f_nnx, layer="fc1", steps=8, batch_size=3),
        jx.layer_conductance(f, layer="fc1", steps=8),
        jx.internal_influence(f, layer="fc2", steps=8),
        jx.neuron_conductance(f, layer="fc1", neuron=(0, 2), steps=8),
    ):
        out = jax.jit(jax.vmap(ex))(xs, ts)
        loop = jnp.stack([ex(xs[i], ts[i]) for i in range(5)])
        np.testing.assert_allclose(out, loop, rtol=1e-5, atol=1e-6, err_msg=ex.method)


def test_errors(mlp):
    _, _, f, _, xs = mlp
    with pytest.raises(ValueError, match=r"no layer 'fc9' was called inside f. Valid layer paths: 'fc1', 'fc2', 'out'"):
        jx.layer_activation(f, layer="fc9")(xs[0], 0)
    with pytest.raises(TypeError, match="layer must be the path"):
        jx.layer_activation(f, layer=3)
    with pytest.raises(TypeError, match="not both"):
        jx.layer_activation(f, layer="fc1", features=lambda x: x, head=jnp.sum)
    with pytest.raises(TypeError, match="neuron must be an index tuple"):
        jx.neuron_gradient(f, layer="fc1", neuron=1.5)
    with pytest.raises(ValueError, match=r"neuron \(3,\) has 1 indices but the layer's output has shape \(1, 6\)"):
        jx.neuron_gradient(f, layer="fc1", neuron=(3,))(xs[0], 0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        jx.layer_conductance(f, layer="fc1", steps=0)


def test_an_out_of_range_neuron_raises_naming_the_layer_shape(mlp):
    """JAX clamps out-of-range indices to the edge; a neuron index never is: it raises."""
    _, _, f, f_nnx, xs = mlp
    for index in ((0, 6), (1, 0), (0, -7)):
        for make in (jx.neuron_gradient, jx.neuron_integrated_gradients, jx.neuron_conductance):
            with pytest.raises(ValueError, match=r"out of range for the layer's output of shape \(1, 6\)"):
                make(f, layer="fc1", neuron=index)(xs[0], 0)
    with pytest.raises(ValueError, match=r"out of range for the layer's output of shape \(6,\)"):
        jx.neuron_gradient(f_nnx, layer="fc1", neuron=(6,))(xs[0], 0)
    # the last unit and negative indices from the end are in range, and mean what they say
    np.testing.assert_allclose(
        jx.neuron_gradient(f, layer="fc1", neuron=(0, -1))(xs[0], 0),
        jx.neuron_gradient(f, layer="fc1", neuron=(0, 5))(xs[0], 0),
    )
    np.testing.assert_allclose(
        jx.neuron_gradient(f_nnx, layer="fc1", neuron=(5,))(xs[0], 0),
        jx.neuron_gradient(f, layer="fc1", neuron=(0, 5))(xs[0], 0), rtol=1e-5, atol=1e-7,
    )


def test_adapter_made_f_gives_per_example_layer_attributions(mlp):
    """from_linen / from_nnx add the batch axis themselves: their layers come without it, and
    every layer method's attribution equals the hand-written closure's with that axis dropped."""
    model, v, f, f_nnx, xs = mlp
    f_linen = jxf.from_linen(model, v)
    x = xs[0]
    for g in (f_linen, f_nnx):
        for ex in (
            lambda h: jx.layer_activation(h, layer="fc2"),
            lambda h: jx.layer_gradient_x_activation(h, layer="fc2"),
            lambda h: jx.layer_integrated_gradients(h, layer="fc1", steps=8),
            lambda h: jx.layer_conductance(h, layer="fc1", steps=8),
            lambda h: jx.internal_influence(h, layer="fc2", steps=8),
        ):
            ours, hand = ex(g)(x, 1), ex(f)(x, 1)
            assert ours.shape == hand.shape[1:]
            np.testing.assert_allclose(ours, hand[0], rtol=1e-5, atol=1e-6)
        got = jax.jit(jax.vmap(jx.layer_integrated_gradients(g, layer="fc1", steps=8)))(xs, jnp.ones(5, int))
        assert got.shape == (5, 6)


def test_a_callable_neuron_must_return_a_scalar(mlp):
    _, _, f, _, xs = mlp
    for make in (jx.neuron_gradient, jx.neuron_integrated_gradients, jx.neuron_conductance):
        with pytest.raises(TypeError, match=r"neuron must return a scalar, but neuron\(A\) returned shape \(1, 2\)"):
            make(f, layer="fc1", neuron=lambda a: a[:, :2])(xs[0], 0)


def test_multiply_by_inputs_false_at_a_layer_and_a_neuron():
    """Layer IG without (a_x - a_b): the mean of dF/dA along the path (head sum(a^2) on a = 2x:
    mean of 2 alpha a_x = a_x); neuron IG of x1^2: the mean gradient x1."""
    x = jnp.array([1.0, 3.0])
    lig = jx.layer_integrated_gradients(features=lambda v: 2 * v, head=lambda a: jnp.sum(a ** 2),
                                        multiply_by_inputs=False, steps=8)
    np.testing.assert_allclose(lig(x), 2 * x, rtol=1e-6)
    nig = jx.neuron_integrated_gradients(features=lambda v: v ** 2, head=jnp.sum, neuron=(1,),
                                         multiply_by_inputs=False, steps=8)
    np.testing.assert_allclose(nig(x), [0.0, 3.0], rtol=1e-6)
    with pytest.raises(ValueError, match="return_delta=True needs multiply_by_inputs=True"):
        jx.layer_integrated_gradients(features=jnp.sin, head=jnp.sum, return_delta=True,
                                      multiply_by_inputs=False)


def test_layer_conductance_return_delta_is_the_completeness_gap(mlp):
    """delta = sum(conductance) - (f(x) - f(b)); it shrinks as the steps grow."""
    _, _, f, _, xs = mlp
    x, b = xs[1], 0.3 * xs[2]
    gap = float(f(x, 0) - f(b, 0))
    deltas = []
    for steps in (4, 64):
        ex = jx.layer_conductance(f, layer="fc2", baseline=b, steps=steps, return_delta=True)
        attr, delta = ex(x, 0)
        np.testing.assert_allclose(float(delta), float(jnp.sum(attr)) - gap, rtol=1e-5, atol=1e-7)
        deltas.append(abs(float(delta)))
    assert deltas[1] < deltas[0]
    with pytest.raises(TypeError, match="return_delta must be True or False"):
        jx.layer_conductance(f, layer="fc2", return_delta="yes")


# --------------------------------------------------------------------------- several layers, inputs


def test_several_layers_equal_one_call_per_layer(mlp):
    _, _, f, f_nnx, xs = mlp
    makers = (jx.layer_activation, jx.layer_gradient_x_activation,
              lambda g, layer: jx.layer_conductance(g, layer=layer, steps=8),
              lambda g, layer: jx.internal_influence(g, layer=layer, steps=8))
    for i, make in enumerate(makers):
        for g in ((f, f_nnx)[i % 2],):  # Linen and NNX alternate over the methods
            both = jax.jit(jax.vmap(make(g, layer=["fc1", "fc2"])))(xs, jnp.arange(5) % 3)
            assert isinstance(both, tuple) and len(both) == 2
            for path, got in zip(("fc1", "fc2"), both):
                one = jax.vmap(make(g, layer=path))(xs, jnp.arange(5) % 3)
                np.testing.assert_allclose(got, one, rtol=1e-5, atol=1e-7)


def test_several_layers_gradients_are_total_derivatives(mlp):
    _, _, f, _, xs = mlp
    # d f / d fc1 through the whole network, by perturbing fc1's output directly
    _, g1 = _taps.layer_gradient(_taps.split("t", f, "fc1", None, None), xs[0], (1,), {})
    a, g = _taps.layer_gradient(_taps.split("t", f, ("fc1", "fc2"), None, None), xs[0], (1,), {})
    np.testing.assert_allclose(g[0], g1, rtol=1e-6)


def test_layer_input_is_the_previous_activation(mlp):
    model, v, f, f_nnx, xs = mlp
    fc1 = xs[0][None] @ v["params"]["fc1"]["kernel"] + v["params"]["fc1"]["bias"]
    for g, ref in ((f, jax.nn.softplus(fc1)), (f_nnx, jax.nn.softplus(fc1)[0])):
        got = jx.layer_activation(g, layer="fc2", attribute_to_layer_input=True)(xs[0], 0)
        np.testing.assert_allclose(got, ref, rtol=1e-5)
        # at the head's input, layer IG is complete: the rest of f is one dense layer of it
        ex = jx.layer_integrated_gradients(g, layer="out", attribute_to_layer_input=True,
                                           steps=4, return_delta=True)
        attr, gap = ex(xs[0], 2)
        assert attr.shape == ref.shape[:-1] + (5,)
        assert abs(float(gap)) < 1e-5
        h = jnp.tanh(jx.layer_activation(g, layer="fc2")(xs[0], 2))
        w = v["params"]["out"]["kernel"][:, 2]
        h0 = jnp.tanh(jx.layer_activation(g, layer="fc2")(jnp.zeros(4), 2))
        np.testing.assert_allclose(attr, (h - h0) * w, rtol=1e-4, atol=1e-6)  # linear head: closed form


def test_layer_input_neuron_methods(mlp):
    _, _, f, _, xs = mlp
    ex = jx.neuron_gradient(f, layer="fc2", neuron=(0, 3), attribute_to_layer_input=True)
    k, b = mlp[1]["params"]["fc1"]["kernel"], mlp[1]["params"]["fc1"]["bias"]
    ref = jax.grad(lambda x: jax.nn.softplus(x @ k + b)[3])(xs[0])
    np.testing.assert_allclose(ex(xs[0], 0), ref, rtol=1e-5)
    assert ex.options["attribute_to_layer_input"] is True


class TwoBranches(nn.Module):
    @nn.compact
    def __call__(self, x):
        a = nn.relu(nn.Dense(4, name="left")(x))
        b = nn.tanh(nn.Dense(3, name="right")(x))
        return nn.Dense(2, name="out")(jnp.concatenate([a, b], axis=-1))


def test_layer_ig_over_parallel_branches_is_complete_and_feeding_layers_raise(mlp):
    model = TwoBranches()
    v = model.init(jax.random.key(2), jnp.zeros((1, 5)))
    f = lambda x, t: model.apply(v, x[None])[0, t]
    x = jax.random.normal(jax.random.key(3), (5,))
    ex = jx.layer_integrated_gradients(f, layer=("left", "right"), steps=64, return_delta=True)
    (left, right), gap = ex(x, 1)
    assert left.shape == (1, 4) and right.shape == (1, 3)
    np.testing.assert_allclose(float(left.sum() + right.sum()), float(f(x, 1) - f(jnp.zeros(5), 1)),
                               rtol=1e-4, atol=1e-5)
    assert abs(float(gap)) < 1e-4
    _, _, g, _, xs = mlp
    with pytest.raises(ValueError, match=r"'fc2' is computed from layer 'fc1'"):
        jx.layer_integrated_gradients(g, layer=("fc1", "fc2"), steps=4)(xs[0], 0)


def test_several_layers_and_layer_input_errors(mlp):
    _, _, f, _, xs = mlp
    with pytest.raises(TypeError, match="attributes to one layer"):
        jx.neuron_gradient(f, layer=("fc1", "fc2"), neuron=(0, 1))
    with pytest.raises(TypeError, match="attributes to one layer"):
        jx.grad_cam(f, layer=["fc1"])
    with pytest.raises(ValueError, match="lists a path twice"):
        jx.layer_activation(f, layer=("fc1", "fc1/"))
    with pytest.raises(TypeError, match="or a tuple of such paths"):
        jx.layer_activation(f, layer=())
    with pytest.raises(TypeError, match="attribute_to_layer_input=True needs f and layer="):
        jx.layer_activation(features=jnp.tanh, head=jnp.sum, attribute_to_layer_input=True)
    with pytest.raises(TypeError, match="attribute_to_layer_input"):
        jx.layer_conductance(f, layer="fc1", attribute_to_layer_input="yes")
    with pytest.raises(ValueError, match="no layer 'nope' was called"):
        jx.layer_activation(f, layer=("fc1", "nope"))(xs[0], 0)


# --------------------------------------------------------------------------- gradient SHAP


def test_layer_gradient_shap_at_the_input_is_gradient_shap():
    """With the identity as the layer, the draws and the estimator are gradient_shap's."""
    w = jnp.array([[1.0, -2.0, 0.5], [0.3, 1.0, -1.0]])
    g = lambda x, t: jnp.tanh(x @ w.T)[t] + jnp.sum(x ** 2)
    refs = jax.random.normal(jax.random.key(0), (4, 3))
    x, key = jnp.array([0.5, -1.0, 2.0]), jax.random.key(3)
    for kw in (dict(sigma=0.2, samples=7, batch_size=3), dict(multiply_by_inputs=False)):
        ours = jx.layer_gradient_shap(features=lambda v: v, head=g, baselines=refs, **kw)(x, 1, key=key)
        ref = jx.gradient_shap(g, baselines=refs, **kw)(x, 1, key=key)
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7)


def test_layer_gradient_shap_expectation_is_internal_influence_times_the_change(mlp):
    """One baseline, no noise: E_alpha[dF/dA(b + alpha (x - b))] is internal influence."""
    _, _, f, _, xs = mlp
    b = 0.5 * xs[1]
    ex = jx.layer_gradient_shap(f, layer="fc2", baselines=b[None], samples=20000)
    got = ex(xs[0], 2, key=jax.random.key(1))
    infl = jx.internal_influence(f, layer="fc2", baseline=b, steps=64)(xs[0], 2)
    act = jx.layer_activation(f, layer="fc2")
    np.testing.assert_allclose(got, (act(xs[0], 2) - act(b, 2)) * infl, rtol=2e-2, atol=2e-3 * float(jnp.abs(got).max()))


def test_neuron_gradient_shap_is_gradient_shap_of_the_unit(mlp):
    _, _, f, _, xs = mlp
    refs, key = xs[2:6], jax.random.key(4)
    ex = jx.neuron_gradient_shap(f, layer="fc2", neuron=(0, 1), baselines=refs, sigma=0.1)
    unit = lambda x: jx.layer_activation(f, layer="fc2")(x, 0)[0, 1]
    ref = jx.gradient_shap(unit, baselines=refs, sigma=0.1)(xs[0], key=key)
    np.testing.assert_allclose(ex(xs[0], 0, key=key), ref, rtol=1e-6)
    assert ex.method == "neuron_gradient_shap" and ex.options["samples"] == 5
    with pytest.raises(ValueError, match="jaxplain.neuron_gradient_shap: baselines is empty"):
        jx.neuron_gradient_shap(f, layer="fc2", neuron=(0, 1), baselines=[])
    with pytest.raises(TypeError, match="key"):
        ex(xs[0], 0)
    with pytest.raises(ValueError, match="samples"):
        jx.layer_gradient_shap(f, layer="fc2", baselines=refs, samples=0)


def test_internal_influence_return_delta(mlp):
    """At an affine first layer, (A(x) - A(b)) * influence is layer IG, so the delta is IG's
    completeness gap (~0); deeper, it reports how far influence is from a share of f(x) - f(b)."""
    _, _, f, _, xs = mlp
    infl, delta = jx.internal_influence(f, layer="fc1", steps=64, return_delta=True)(xs[0], 2)
    np.testing.assert_allclose(infl, jx.internal_influence(f, layer="fc1", steps=64)(xs[0], 2))
    assert abs(float(delta)) < 1e-4
    x = 6.0 * xs[0]  # far along softplus's curve: fc2 moves non-linearly
    infl, delta = jx.internal_influence(f, layer="fc2", steps=64, return_delta=True)(x, 2)
    act = jx.layer_activation(f, layer="fc2")
    moved = float(jnp.sum((act(x, 2) - act(jnp.zeros(4), 2)) * infl))
    np.testing.assert_allclose(float(delta), moved - float(f(x, 2) - f(jnp.zeros(4), 2)), rtol=1e-4, atol=1e-6)
    assert abs(float(delta)) > 1e-3  # against ~1e-6 at fc1
