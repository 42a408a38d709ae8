"""DeepLIFT (rescale rule) and DeepLIFT-SHAP: closed forms, summation-to-delta, the contract."""

import doctest

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain import _deeplift


def test_doctests_run():
    assert doctest.testmod(_deeplift).failed == 0


def _relu_cnn(seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    w1 = 0.5 * jax.random.normal(k[0], (3, 3, 2, 4))
    b1 = 0.1 * jax.random.normal(k[1], (4,))
    w2 = 0.5 * jax.random.normal(k[2], (4 * 4 * 4, 3))
    b2 = 0.1 * jax.random.normal(k[3], (3,))

    def f(x, t):
        h = jax.lax.conv_general_dilated(x[None], w1, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = nn.relu(h + b1)
        h = nn.avg_pool(h, (2, 2), (2, 2))
        return (h.reshape(1, -1) @ w2 + b2)[0, t]

    return f


def test_closed_form_single_relu():
    # f = relu(x0 - 1) + 2 x1 from baseline 0: the ReLU's multiplier is (relu(2) - relu(-1)) / 3 = 2/3.
    f = lambda x: jnp.maximum(x[0] - 1.0, 0.0) + 2.0 * x[1]
    np.testing.assert_allclose(jx.deeplift(f)(jnp.array([3.0, 1.0])), [2.0, 2.0], rtol=1e-6)
    # gradient x input would give 3 for x0: DeepLIFT differs where the ReLU crosses its kink
    np.testing.assert_allclose(jx.gradient_x_input(f)(jnp.array([3.0, 1.0])), [3.0, 2.0])


def test_summation_to_delta_on_a_relu_cnn():
    f = _relu_cnn()
    keys = jax.random.split(jax.random.key(5), 3)
    for t in range(3):
        x = jax.random.normal(keys[0], (8, 8, 2))
        b = 0.3 * jax.random.normal(keys[1], (8, 8, 2))
        attr = jx.deeplift(f, baseline=b)(x, t)
        np.testing.assert_allclose(attr.sum(), f(x, t) - f(b, t), rtol=1e-4, atol=1e-6)


def test_deeplift_shap_sums_to_mean_delta_and_equals_mean_of_deeplift():
    f = _relu_cnn(1)
    x = jax.random.normal(jax.random.key(0), (8, 8, 2))
    bs = jax.random.normal(jax.random.key(1), (4, 8, 8, 2))
    attr = jx.deeplift_shap(f, baselines=bs)(x, 1)
    mean_delta = f(x, 1) - jnp.mean(jax.vmap(lambda b: f(b, 1))(bs))
    np.testing.assert_allclose(attr.sum(), mean_delta, rtol=1e-4, atol=1e-6)
    one_by_one = jnp.mean(jnp.stack([jx.deeplift(f, baseline=b)(x, 1) for b in bs]), axis=0)
    np.testing.assert_allclose(attr, one_by_one, rtol=1e-5, atol=1e-7)
    chunked = jx.deeplift_shap(f, baselines=bs, batch_size=3)(x, 1)
    np.testing.assert_allclose(chunked, attr, rtol=1e-5, atol=1e-7)


def test_rescale_reaches_inline_activations():
    # jax.nn.gelu is traced as nine elementwise operations; the rescale rule sees one region.
    w = jnp.array([[1.0, -2.0], [0.5, 1.5]])
    f = lambda x: jnp.sum(jax.nn.gelu(x @ w) * jnp.array([1.0, -1.0]))
    x, b = jnp.array([0.7, -0.3]), jnp.array([-0.2, 0.4])
    attr = jx.deeplift(f, baseline=b)(x)
    z, zb = x @ w, b @ w
    m = (jax.nn.gelu(z) - jax.nn.gelu(zb)) / (z - zb) * jnp.array([1.0, -1.0])
    np.testing.assert_allclose(attr, (x - b) * (w @ m), rtol=1e-5)
    np.testing.assert_allclose(attr.sum(), f(x) - f(b), rtol=1e-5)


def test_equal_input_and_baseline_falls_back_to_the_gradient():
    f = lambda x: jnp.sum(jnp.tanh(x) * jnp.array([2.0, 3.0]))
    x = jnp.array([0.5, -1.0])
    # baseline equals x in the first coordinate: its multiplier is the derivative, attribution 0
    attr = jx.deeplift(f, baseline=jnp.array([0.5, 0.0]))(x)
    assert attr[0] == 0.0 and np.isfinite(attr).all()
    np.testing.assert_allclose(attr[1], 3.0 * (jnp.tanh(-1.0) - 0.0), rtol=1e-6)


def test_jit_vmap_equals_loop_and_no_retrace():
    traces = []
    g = _relu_cnn(2)

    def f(x, t):
        traces.append(1)
        return g(x, t)

    xs = jax.random.normal(jax.random.key(3), (3, 8, 8, 2))
    ts = jnp.array([0, 2, 1])
    bs = jax.random.normal(jax.random.key(4), (2, 8, 8, 2))
    for ex in (jx.deeplift(f, baseline=0.1), jx.deeplift_shap(f, baselines=bs)):
        batched = jax.jit(jax.vmap(ex))
        out = batched(xs, ts)
        loop = jnp.stack([ex(xs[i], ts[i]) for i in range(3)])
        np.testing.assert_allclose(out, loop, rtol=1e-5, atol=1e-6)
        n = len(traces)
        batched(xs + 1.0, ts)
        assert len(traces) == n


def test_bad_input():
    f = lambda x: jnp.sum(jnp.maximum(x, 0))
    with pytest.raises(TypeError, match="positional"):
        jx.deeplift(f, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        jx.deeplift(f, baseline=jnp.array([jnp.nan, 0.0]))
    with pytest.raises(ValueError, match="does not fit"):
        jx.deeplift(f, baseline=jnp.zeros(3))(jnp.ones(2))
    with pytest.raises(TypeError, match="floating"):
        jx.deeplift(f)(jnp.ones(2, jnp.int32))
    with pytest.raises(TypeError, match="scalar"):
        jx.deeplift(lambda x: jnp.maximum(x, 0))(jnp.ones(2))
    with pytest.raises(ValueError, match="hold no reference inputs"):
        jx.deeplift_shap(f, baselines=jnp.float32(0.0))
    with pytest.raises(ValueError, match=r"do not fit x of shape \(2,\)"):
        jx.deeplift_shap(f, baselines=jnp.zeros((2, 3)))(jnp.ones(2))
    with pytest.raises(ValueError, match="batch_size"):
        jx.deeplift_shap(f, baselines=jnp.zeros((2, 2)), batch_size=0)
    ex = jx.deeplift(f)
    with pytest.raises(ValueError):
        ex(jnp.array([jnp.inf, 1.0]))
    np.testing.assert_allclose(ex(jnp.array([1.0, -1.0])), [1.0, 0.0])


@pytest.mark.parametrize(
    "name",
    ["leaky_relu", "where_leaky", "elu", "z_times_step", "square_by_product", "relu6", "gelu", "silu"],
)
def test_rescale_on_every_spelling_of_an_activation(name):
    """The rescale multiplier of an activation a is (a(z) - a(z')) / (z - z') whatever a's spelling:
    predicates of jnp.where / leaky_relu / elu are recomputed at the baseline (not reused from x),
    and products of x-dependent values (z * z, z * (z > 0)) are activations, not affine maps."""
    act = {
        "leaky_relu": lambda z: jax.nn.leaky_relu(z, 0.1),
        "where_leaky": lambda z: jnp.where(z > 0, z, 0.1 * z),
        "elu": jax.nn.elu,
        "z_times_step": lambda z: z * (z > 0),
        "square_by_product": lambda z: z * z,
        "relu6": jax.nn.relu6,
        "gelu": jax.nn.gelu,
        "silu": jax.nn.silu,
    }[name]
    rng = np.random.default_rng(4)
    W, v = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), jnp.asarray(rng.normal(size=4), jnp.float32)
    x, b = jnp.asarray(rng.normal(size=3), jnp.float32), jnp.asarray(rng.normal(size=3), jnp.float32)
    f = lambda u: act(u @ W) @ v
    z, z0 = x @ W, b @ W
    m = (act(z) - act(z0)) / (z - z0)
    np.testing.assert_allclose(jx.deeplift(f, baseline=b)(x), (x - b) * (W @ (m * v)), rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(jx.deeplift(f, baseline=b)(x).sum(), f(x) - f(b), rtol=2e-4, atol=1e-6)


def test_max_pooling_rescale_matches_its_formula_and_sums_to_delta():
    """Max pooling gets the max-pooling rescale (Captum's rule): per window, with y = max at x, y' =
    max at the baseline and m = max(y, y'), the winner at x receives g (m - y') and the winner at
    the baseline g (y - m); together g (y - y'), so summation-to-delta holds through the pooling."""
    rng = np.random.default_rng(16)
    v = jnp.asarray(rng.normal(size=4), jnp.float32)
    f = lambda x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (2,), (2,), "VALID") @ v
    x, b = jnp.asarray(rng.normal(size=8), jnp.float32), jnp.asarray(rng.normal(size=8), jnp.float32)
    expected = np.zeros(8)
    xw, bw = np.asarray(x).reshape(4, 2), np.asarray(b).reshape(4, 2)
    for k in range(4):
        y, y_ref = xw[k].max(), bw[k].max()
        m = max(y, y_ref)
        expected[2 * k + xw[k].argmax()] += float(v[k]) * (m - y_ref)
        expected[2 * k + bw[k].argmax()] += float(v[k]) * (y - m)
    got = jx.deeplift(f, baseline=b)(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(), f(x) - f(b), rtol=1e-5, atol=1e-6)
    # in a CNN: conv, ReLU, 2x2 max pooling, dense
    k = jax.random.split(jax.random.key(3), 2)
    w1, w2 = jax.random.normal(k[0], (3, 3, 2, 4)), jax.random.normal(k[1], (4 * 4 * 4, 3))

    def cnn(x, t):
        h = jax.lax.conv_general_dilated(x[None], w1, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = nn.max_pool(jax.nn.relu(h), (2, 2), (2, 2))
        return (h.reshape(1, -1) @ w2)[0, t]

    xs = jax.random.normal(jax.random.key(4), (2, 8, 8, 2))
    for t in range(3):
        a = jx.deeplift(cnn, baseline=xs[1])(xs[0], t)
        np.testing.assert_allclose(a.sum(), cnn(xs[0], t) - cnn(xs[1], t), rtol=1e-4, atol=1e-5)


def test_a_callable_baseline_is_resolved_against_x():
    f = lambda x: jnp.sum(jnp.maximum(x - 1.0, 0.0) * jnp.arange(1.0, 4.0))
    x = jnp.array([3.0, 0.5, 2.0])
    np.testing.assert_allclose(
        jx.deeplift(f, baseline=lambda v: jnp.full_like(v, 0.5))(x), jx.deeplift(f, baseline=0.5)(x)
    )


def test_multiply_by_inputs_false_gives_the_multipliers():
    """f = relu(x0 - 1) + 2 x1 from 0 at (3, 1): multipliers (2/3, 2); DeepLIFT-SHAP: their mean
    over the baselines (from (2, 0): relu(2) - relu(1) over 1 = 1)."""
    f = lambda x: jnp.maximum(x[0] - 1.0, 0.0) + 2.0 * x[1]
    x = jnp.array([3.0, 1.0])
    np.testing.assert_allclose(jx.deeplift(f, multiply_by_inputs=False)(x), [2 / 3, 2.0], rtol=1e-6)
    bs = jnp.array([[0.0, 0.0], [2.0, 0.0]])
    np.testing.assert_allclose(jx.deeplift_shap(f, baselines=bs, multiply_by_inputs=False)(x),
                               [(2 / 3 + 1.0) / 2, 2.0], rtol=1e-6)
    with pytest.raises(TypeError, match="multiply_by_inputs must be True or False"):
        jx.deeplift(f, multiply_by_inputs=1)


def test_deeplift_shap_takes_a_callable_background():
    """baselines=callable x -> (n, *x.shape): the same as passing its value; bad shapes raise."""
    f = _relu_cnn()
    x = jax.random.normal(jax.random.key(3), (8, 8, 2))
    make_bs = lambda v: jnp.stack([0.5 * v, -v, jnp.zeros_like(v)])
    ours = jax.jit(jx.deeplift_shap(f, baselines=make_bs))(x, 1)
    np.testing.assert_allclose(ours, jx.deeplift_shap(f, baselines=make_bs(x))(x, 1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="do not fit x"):
        jx.deeplift_shap(f, baselines=lambda v: jnp.zeros((2, 3, 3, 2)))(x, 1)


# --------------------------------------------------------------------------- at a layer, of a neuron


class _MLP(nn.Module):
    skip: bool = False

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(6, name="fc1")(x))
        h = nn.relu(nn.Dense(5, name="fc2")(h))
        out = nn.Dense(3, name="out")(h)
        return out + jnp.sum(x, -1, keepdims=True) if self.skip else out


@pytest.fixture(scope="module")
def mlp():
    def make(skip):
        model = _MLP(skip=skip)
        v = model.init(jax.random.key(0), jnp.zeros((1, 4)))
        return lambda x, t: model.apply(v, x[None])[0, t], v

    (f, v), (g, _) = make(False), make(True)
    xs = jax.random.normal(jax.random.key(1), (8, 4))
    bs = 0.3 * jax.random.normal(jax.random.key(2), (8, 4))
    return f, g, v, xs, bs


def test_layer_deeplift_sums_to_delta_at_a_cut_and_reports_a_bypass(mlp):
    f, g, _, xs, bs = mlp
    for path in ("fc1", "fc2", "out"):
        ex = jax.jit(jax.vmap(lambda x, b, t: jx.layer_deeplift(f, layer=path, baseline=b,
                                                                return_delta=True)(x, t)))
        attr, gap = ex(xs, bs, jnp.arange(8) % 3)
        want = jax.vmap(f)(xs, jnp.arange(8) % 3) - jax.vmap(f)(bs, jnp.arange(8) % 3)
        np.testing.assert_allclose(attr.sum(axis=(1, 2)), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gap, 0.0, atol=1e-5)
    # g adds sum(x) past the layers: the gap is exactly that part of f(x) - f(b)
    _, gap = jx.layer_deeplift(g, layer="fc2", baseline=bs[0], return_delta=True)(xs[0], 1)
    np.testing.assert_allclose(gap, -(xs[0].sum() - bs[0].sum()), rtol=1e-4)


def test_layer_deeplift_at_a_layer_input_is_the_split_below_it(mlp):
    f, _, v, xs, bs = mlp
    p = v["params"]
    below = lambda x: jax.nn.relu(x @ p["fc1"]["kernel"] + p["fc1"]["bias"])
    above = lambda h, t: (jax.nn.relu(h @ p["fc2"]["kernel"] + p["fc2"]["bias"]) @ p["out"]["kernel"]
                          + p["out"]["bias"])[t]
    ours = jx.layer_deeplift(f, layer="fc2", baseline=bs[0], attribute_to_layer_input=True)(xs[0], 2)
    ref = jx.layer_deeplift(features=below, head=above, baseline=bs[0])(xs[0], 2)
    np.testing.assert_allclose(ours[0], ref, rtol=1e-5, atol=1e-7)
    # the rescale rule, by hand: fc2's ReLU multipliers are secants between x and the baseline
    h_x, h_b = below(xs[0]), below(bs[0])
    z_x, z_b = h_x @ p["fc2"]["kernel"] + p["fc2"]["bias"], h_b @ p["fc2"]["kernel"] + p["fc2"]["bias"]
    dz = z_x - z_b
    m = jnp.where(jnp.abs(dz) < 1e-10, (z_x > 0).astype(dz.dtype), (jax.nn.relu(z_x) - jax.nn.relu(z_b)) / dz)
    by_hand = (h_x - h_b) * (p["fc2"]["kernel"] @ (m * p["out"]["kernel"][:, 2]))
    np.testing.assert_allclose(ref, by_hand, rtol=1e-4, atol=1e-6)


def test_layer_deeplift_shap_is_the_mean_over_baselines(mlp):
    f, _, _, xs, bs = mlp
    ex = jx.layer_deeplift_shap(f, layer="fc2", baselines=bs[:5], batch_size=2)
    loop = jnp.mean(jnp.stack([jx.layer_deeplift(f, layer="fc2", baseline=b)(xs[0], 1) for b in bs[:5]]), 0)
    np.testing.assert_allclose(ex(xs[0], 1), loop, rtol=1e-5, atol=1e-7)
    glob = jx.layer_deeplift_shap(f, layer="fc2", baselines=bs[:5], multiply_by_inputs=False)(xs[0], 1)
    loop = jnp.mean(jnp.stack([jx.layer_deeplift(f, layer="fc2", baseline=b, multiply_by_inputs=False)(
        xs[0], 1) for b in bs[:5]]), 0)
    np.testing.assert_allclose(glob, loop, rtol=1e-5, atol=1e-7)


def test_neuron_deeplift_sums_to_the_units_change(mlp):
    f, _, v, xs, bs = mlp
    unit = lambda x: jx.layer_activation(f, layer="fc2")(x, 0)[0, 3]
    attr = jax.vmap(lambda x, b: jx.neuron_deeplift(f, layer="fc2", neuron=(0, 3), baseline=b)(x, 0))(xs, bs)
    np.testing.assert_allclose(attr.sum(-1), jax.vmap(unit)(xs) - jax.vmap(unit)(bs), rtol=1e-5, atol=1e-6)
    shap = jx.neuron_deeplift_shap(f, layer="fc2", neuron=(0, 3), baselines=bs[:4])(xs[0], 0)
    loop = jnp.mean(jnp.stack([jx.neuron_deeplift(f, layer="fc2", neuron=(0, 3), baseline=b)(xs[0], 0)
                               for b in bs[:4]]), 0)
    np.testing.assert_allclose(shap, loop, rtol=1e-5, atol=1e-7)


def test_layer_and_neuron_deeplift_errors(mlp):
    f, _, _, xs, _ = mlp
    with pytest.raises(ValueError, match="return_delta=True needs multiply_by_inputs=True"):
        jx.layer_deeplift(f, layer="fc2", return_delta=True, multiply_by_inputs=False)
    with pytest.raises(TypeError, match="attributes to one layer"):
        jx.neuron_deeplift(f, layer=("fc1", "fc2"), neuron=(0, 1))
    with pytest.raises(ValueError, match="out of range"):
        jx.neuron_deeplift(f, layer="fc2", neuron=(0, 5))(xs[0], 0)
    with pytest.raises(ValueError, match="baselines is empty"):
        jx.layer_deeplift_shap(f, layer="fc2", baselines=[])
    with pytest.raises(ValueError, match="is computed from layer"):
        jx.layer_deeplift(f, layer=("fc1", "fc2"))(xs[0], 0)


def test_deeplift_refuses_operations_its_rule_cannot_answer():
    """A product of two x-dependent values (attention's q.k), a softmax's division, LayerNorm:
    the ordinary gradient there breaks summation-to-delta, so DeepLIFT raises naming it;
    other='gradient' accepts it (Captum's behaviour) and the gap shows."""
    w = jnp.array([[1.0, -0.5, 0.3], [0.2, 0.8, -1.0]])
    f = lambda x: jnp.sum((x @ w[0]) * jnp.maximum(x @ w[1], 0)) + jnp.sum(jax.nn.softmax(x @ w.T))
    x, b = jnp.array([1.0, 2.0, -0.5]), jnp.zeros(3)
    with pytest.raises(ValueError, match=r"no answer for the operation 'mul'.*other='gradient'"):
        jx.deeplift(f)(x)
    for make in (lambda **k: jx.deeplift_shap(f, baselines=b[None], **k),
                 lambda **k: jx.layer_deeplift(features=lambda v: v @ w.T, head=lambda a: a[0] * a[1], **k)):
        with pytest.raises(ValueError, match="rescale rule has no answer"):
            make()(x)
        make(other="gradient")(x)  # runs
    attr = jx.deeplift(f, other="gradient")(x)
    assert jx.deeplift(f, other="gradient").options["other"] == "gradient"
    assert abs(float(attr.sum() - (f(x) - f(b)))) > 1e-3  # what the refusal protects from
    with pytest.raises(ValueError, match="other"):
        jx.deeplift(f, other="ignore")


def test_deeplift_refuses_layernorm():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(nn.LayerNorm()(nn.Dense(4)(x)))

    model = Net()
    v = model.init(jax.random.key(0), jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="rescale rule has no answer"):
        jx.deeplift(lambda x: model.apply(v, x[None])[0, 0])(jnp.ones(3))
