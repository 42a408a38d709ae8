"""jaxplain.flax: Linen and NNX models as f(x, target), checked against hand-written closures."""

import doctest

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxplain as jx
import jaxplain.flax as jxf

CLASSES = 5
SHAPE = (8, 8, 3)


class LinenCNN(nn.Module):
    """conv - BatchNorm - swish - conv - swish - avgpool - Dropout - dense (smooth everywhere)."""

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(4, (3, 3), name="conv1")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.5, name="bn1")(x)
        x = nn.swish(x)
        x = nn.swish(nn.Conv(6, (3, 3), name="conv2")(x))
        x = nn.avg_pool(x, (2, 2), (2, 2)).reshape(x.shape[0], -1)
        x = nn.Dropout(0.5, deterministic=not train)(x)
        return nn.Dense(CLASSES, name="dense")(x)


class NNXCNN(nnx.Module):
    """The same architecture in NNX."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(3, 4, (3, 3), rngs=rngs)
        self.bn1 = nnx.BatchNorm(4, momentum=0.5, rngs=rngs)
        self.conv2 = nnx.Conv(4, 6, (3, 3), rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.dense = nnx.Linear(16 * 6, CLASSES, rngs=rngs)

    def __call__(self, x):
        x = nn.swish(self.bn1(self.conv1(x)))
        x = nn.swish(self.conv2(x))
        x = nn.avg_pool(x, (2, 2), (2, 2)).reshape(x.shape[0], -1)
        return self.dense(self.drop(x))


def _init_like(shapes, seed=0):
    """Random variables shaped like ``shapes`` (numpy: compiling Flax's initializers is slow)."""
    rng = np.random.default_rng(seed)

    def draw(path, sd):
        name, shape = path[-1].key, sd.shape
        if name == "kernel":
            return rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
        if name in ("mean", "var"):
            return np.full(shape, 0.0 if name == "mean" else 1.0)
        return (1.0 if name == "scale" else 0.0) + 0.1 * rng.standard_normal(shape)

    draws = jax.tree_util.tree_map_with_path(draw, shapes)
    return jax.tree_util.tree_map(lambda a, sd: jnp.asarray(a, sd.dtype), draws, shapes)


def _init(model, x, **kwargs):
    """``model.init``'s variables, drawn by :func:`_init_like`."""
    return _init_like(jax.eval_shape(lambda v: model.init(jax.random.key(0), v, **kwargs), x))


@pytest.fixture(scope="module")
def linen_model():
    """A Linen CNN after three training-mode batch-stat updates (non-trivial running stats)."""
    model = LinenCNN()
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.standard_normal((4,) + SHAPE), jnp.float32)
    variables = _init(model, xs, train=False)

    @jax.jit
    def warm_up(variables, batch, key):
        _, upd = model.apply(
            variables, batch, train=True, mutable=["batch_stats"], rngs={"dropout": key}
        )
        return {**variables, "batch_stats": upd["batch_stats"]}

    for i in range(3):
        batch = jnp.asarray(2.0 + 1.5 * rng.standard_normal((16,) + SHAPE), jnp.float32)
        variables = warm_up(variables, batch, jax.random.key(i))
    stats = variables["batch_stats"]["bn1"]
    assert float(jnp.max(jnp.abs(stats["mean"]))) > 0.1
    assert float(jnp.max(jnp.abs(stats["var"] - 1.0))) > 0.1
    return model, variables, xs


def _nnx_copy(variables):
    """An NNXCNN holding the Linen variables (built abstractly: eager initializers are slow)."""
    m = nnx.eval_shape(lambda: NNXCNN(nnx.Rngs(1)))
    p, s = variables["params"], variables["batch_stats"]
    for layer in ("conv1", "conv2", "dense"):
        getattr(m, layer).kernel.set_value(jnp.asarray(p[layer]["kernel"]))
        getattr(m, layer).bias.set_value(jnp.asarray(p[layer]["bias"]))
    for name, value in [*p["bn1"].items(), *s["bn1"].items()]:
        getattr(m.bn1, name).set_value(jnp.asarray(value))
    m.drop.rngs.key.set_value(jax.random.key(7))
    m.drop.rngs.count.set_value(jnp.zeros((), jnp.uint32))
    assert all(isinstance(a, jax.Array) for a in jax.tree_util.tree_leaves(nnx.state(m)))
    return m


def _logits(model, variables, x):
    return model.apply(variables, x[None], train=False)[0]


def test_doctests_run():
    assert doctest.testmod(jxf).failed == 0


# ----------------------------------------------------------------------------- Linen


def test_linen_f_is_the_inference_mode_logit(linen_model):
    model, variables, xs = linen_model
    f = jxf.from_linen(model, variables)
    x = xs[0]
    ref = _logits(model, variables, x)
    for t in range(CLASSES):
        np.testing.assert_allclose(f(x, t), ref[t], rtol=1e-6, atol=1e-6)
    # Training mode would give other numbers: the flag really was set.
    train_out, _ = model.apply(
        variables, x[None], train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(3)}
    )
    assert not np.allclose(train_out[0], ref, atol=1e-3)


def test_linen_outputs_and_default_target(linen_model):
    model, variables, xs = linen_model
    x = xs[1]
    logits = _logits(model, variables, x)
    pred = int(jnp.argmax(logits))
    for output, ref in [
        ("logits", logits),
        ("softmax", jax.nn.softmax(logits)),
        ("probability", jax.nn.softmax(logits)),
        ("log_softmax", jax.nn.log_softmax(logits)),
    ]:
        f = jxf.from_linen(model, variables, output=output)
        for t in range(CLASSES):
            np.testing.assert_allclose(f(x, t), ref[t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f(x), ref[pred], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f(x, None), ref[pred], rtol=1e-5, atol=1e-6)


def test_linen_gradient_matches_hand_written_closure(linen_model):
    model, variables, xs = linen_model
    f = jxf.from_linen(model, variables)
    x = xs[2]
    by_hand = jax.jit(jax.grad(lambda v, t: _logits(model, variables, v)[t]))
    for t in (0, 3):
        np.testing.assert_allclose(jx.gradient(f)(x, t), by_hand(x, t), rtol=1e-5, atol=1e-6)
    # target=None: the gradient of the predicted class, with no gradient through the argmax.
    pred = int(jnp.argmax(_logits(model, variables, x)))
    ref = by_hand(x, pred)
    np.testing.assert_allclose(jx.gradient(f)(x), ref, rtol=1e-5, atol=1e-6)


def test_jit_vmap_integrated_gradients_with_per_example_targets(linen_model):
    model, variables, xs = linen_model
    f = jxf.from_linen(model, variables)
    ig = jx.integrated_gradients(f, steps=8)
    ts = jnp.array([0, 3, 1, 4])
    batched = jax.jit(jax.vmap(ig))(xs, ts)
    loop = jnp.stack([ig(xs[i], int(ts[i])) for i in range(len(xs))])
    np.testing.assert_allclose(batched, loop, rtol=1e-5, atol=1e-6)
    # Per-example predicted classes under vmap.
    grads = jax.vmap(jx.gradient(f))(xs)
    preds = [int(jnp.argmax(_logits(model, variables, x))) for x in xs]
    loop = jnp.stack([jx.gradient(f)(x, p) for x, p in zip(xs, preds)])
    np.testing.assert_allclose(grads, loop, rtol=1e-5, atol=1e-6)


def test_linen_unbatched_model_and_method():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):  # one example, no batch axis
            return nn.Dense(3)(x.reshape(-1))

        def scores(self, x, training: bool):
            return self(x) + (100.0 if training else 0.0)

    model, x = Net(), jnp.arange(4.0)
    variables = _init(model, x)
    kernel = variables["params"]["Dense_0"]["kernel"]
    f = jxf.from_linen(model, variables, batched=False)
    np.testing.assert_allclose(f(x, 1), model.apply(variables, x)[1], rtol=1e-6)
    np.testing.assert_allclose(jx.gradient(f)(x, 1), kernel[:, 1], rtol=1e-6)
    # method= is applied, and its `training` flag is detected and set to False.
    g = jxf.from_linen(model, variables, batched=False, method="scores")
    np.testing.assert_allclose(g(x, 2), model.apply(variables, x)[2], rtol=1e-6)
    with pytest.raises(ValueError, match="batched=False"):
        jxf.from_linen(model, variables)(x, 1)  # batched=True but the model keeps no batch axis


def test_linen_detects_deterministic_and_use_running_average():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, *, deterministic: bool = False, use_running_average: bool = False):
            x = nn.BatchNorm(use_running_average=use_running_average)(nn.Dense(6)(x))
            return nn.Dense(2)(nn.Dropout(0.5, deterministic=deterministic)(x))

    model, x = Net(), jnp.ones(3)
    variables = _init(model, x[None], deterministic=True, use_running_average=True)
    f = jxf.from_linen(model, variables)
    ref = model.apply(variables, x[None], deterministic=True, use_running_average=True)[0]
    np.testing.assert_allclose([f(x, 0), f(x, 1)], ref, rtol=1e-6)
    # A user's call_kwargs win over the detected flags: training-mode BatchNorm is refused by Flax.
    g = jxf.from_linen(model, variables, use_running_average=False)
    with pytest.raises(flax.errors.ModifyScopeVariableError):
        g(x, 0)


def test_linen_batchnorm_left_in_training_mode_fails_with_flax_error():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):  # no flag to find
            return nn.BatchNorm(use_running_average=False)(x)

    model, x = Net(), jnp.ones(3)
    variables = _init(model, x[None])
    with pytest.raises(flax.errors.ModifyScopeVariableError):
        jxf.from_linen(model, variables)(x, 0)


# ----------------------------------------------------------------------------- NNX


def test_nnx_matches_linen(linen_model):
    model, variables, xs = linen_model
    nmodel = _nnx_copy(variables)
    for output in ("logits", "log_softmax"):
        fl = jxf.from_linen(model, variables, output=output)
        fn = jxf.from_nnx(nmodel, output=output)
        for x in xs[:2]:
            for t in (*range(CLASSES), None):
                np.testing.assert_allclose(fn(x, t), fl(x, t), rtol=1e-5, atol=1e-5)
    fl, fn = jxf.from_linen(model, variables), jxf.from_nnx(nmodel)
    ts = jnp.array([4, 0, 2, 1])
    np.testing.assert_allclose(
        jax.vmap(jx.gradient(fn))(xs, ts), jax.vmap(jx.gradient(fl))(xs, ts), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(jx.gradient(fn)(xs[3]), jx.gradient(fl)(xs[3]), rtol=1e-5, atol=1e-5)


def test_from_nnx_does_not_mutate_the_model(linen_model):
    _, variables, xs = linen_model
    model = _nnx_copy(variables)
    twin = nnx.clone(model)  # same parameters, batch stats and dropout RNG counters
    before = jax.tree_util.tree_map(np.asarray, nnx.state(model, nnx.Param, nnx.BatchStat))
    f = jxf.from_nnx(model, output="softmax")
    f(xs[0], 1)
    jax.jit(jax.vmap(jx.integrated_gradients(f, steps=4)))(xs, jnp.arange(4))
    jx.gradient(jxf.from_nnx(model, params_arg=True))(xs[0], 2, nnx.state(model, nnx.Param))
    assert model.drop.deterministic is False and model.bn1.use_running_average is False
    after = jax.tree_util.tree_map(np.asarray, nnx.state(model, nnx.Param, nnx.BatchStat))
    jax.tree_util.tree_map(np.testing.assert_array_equal, after, before)
    # Still in training mode, with the twin's dropout RNG counters and batch statistics.
    first = model(xs)
    np.testing.assert_array_equal(first, twin(xs))
    second = model(xs)  # a new dropout mask and new batch statistics ...
    assert not np.allclose(second, first)
    np.testing.assert_array_equal(second, twin(xs))  # ... the same as the twin's
    np.testing.assert_array_equal(model.bn1.mean[...], twin.bn1.mean[...])


def test_from_nnx_is_a_snapshot_at_build_time(linen_model):
    _, variables, xs = linen_model
    model = _nnx_copy(variables)
    f = jxf.from_nnx(model)
    old = float(f(xs[0], 2))
    model.dense.bias[...] = model.dense.bias[...] + 1.0  # an in-place update, as an optimizer does
    assert float(f(xs[0], 2)) == old
    np.testing.assert_allclose(jxf.from_nnx(model)(xs[0], 2), old + 1.0, rtol=1e-5)
    g = jxf.from_nnx(model, params_arg=False)
    h = jxf.from_nnx(model, params_arg=True)
    full, params = nnx.state(model), nnx.state(model, nnx.Param)
    np.testing.assert_allclose(h(xs[0], 2, full), g(xs[0], 2), rtol=1e-6)
    np.testing.assert_allclose(h(xs[0], 2, params), g(xs[0], 2), rtol=1e-6)


# ----------------------------------------------------------------------------- params as arguments


def _directional_fd(loss, params, seed, eps=1e-5):
    """(d/ds loss(params + s v) by autodiff, by a central difference) for a random direction v."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(seed)
    v = [rng.standard_normal(np.shape(a)) for a in leaves]
    shift = lambda s: jax.tree_util.tree_unflatten(
        treedef, [np.asarray(a) + s * d for a, d in zip(leaves, v)]
    )
    fd = (float(loss(shift(eps))) - float(loss(shift(-eps)))) / (2 * eps)
    g = jax.grad(loss)(params)
    ad = sum(float(np.vdot(np.asarray(a), d)) for a, d in zip(jax.tree_util.tree_leaves(g), v))
    return ad, fd, g


def test_grad_of_explanation_wrt_variables_linen_and_nnx(linen_model):
    model, variables32, xs = linen_model
    with jax.enable_x64(True):
        variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables32)
        x, t = jnp.asarray(xs[0], jnp.float64), 3
        stats = variables["batch_stats"]

        f = jxf.from_linen(model)  # f(x, target, variables)
        explain = jx.gradient_x_input(f)
        loss = lambda p: jnp.sum(explain(x, t, {"params": p, "batch_stats": stats}) ** 2)
        assert loss(variables["params"]).dtype == jnp.float64
        ad, fd, g_linen = _directional_fd(loss, variables["params"], 5)
        np.testing.assert_allclose(ad, fd, rtol=1e-6)

        # The same gradient through a hand-written closure.
        def by_hand(p):
            pv = {"params": p, "batch_stats": stats}
            logit = lambda v: model.apply(pv, v[None], train=False)[0, t]
            return jnp.sum((x * jax.grad(logit)(x)) ** 2)

        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
            g_linen, jax.jit(jax.grad(by_hand))(variables["params"]),
        )

        # NNX: f(x, target, state), differentiated w.r.t. nnx.state(model, nnx.Param).
        nmodel = _nnx_copy(variables32)  # float32 batch stats, cast exactly when promoted
        h = jxf.from_nnx(nmodel, params_arg=True)
        params = jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, jnp.float64), nnx.state(nmodel, nnx.Param)
        )
        nexplain = jx.gradient_x_input(h)
        nloss = lambda p: jnp.sum(nexplain(x, t, p) ** 2)
        np.testing.assert_allclose(nloss(params), loss(variables["params"]), rtol=1e-10)
        ad, fd, g_nnx = _directional_fd(nloss, params, 6)
        np.testing.assert_allclose(ad, fd, rtol=1e-6)
        for layer in ("conv1", "conv2", "dense", "bn1"):
            for name in ("kernel", "bias") if layer != "bn1" else ("scale", "bias"):
                np.testing.assert_allclose(
                    g_nnx[layer][name][...], g_linen[layer][name], rtol=1e-8, atol=1e-12
                )


# ----------------------------------------------------------------------------- errors


def test_unknown_output_names_it_and_the_choices(linen_model):
    model, variables, _ = linen_model
    choices = "'probs'; choose one of 'logits', 'softmax', 'probability', 'log_softmax'"
    with pytest.raises(ValueError, match=choices):
        jxf.from_linen(model, variables, output="probs")
    with pytest.raises(ValueError, match=choices):
        jxf.from_nnx(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), output="probs")


def test_wrong_model_kinds_are_type_errors(linen_model):
    model, variables, _ = linen_model
    lin = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="from_nnx"):
        jxf.from_linen(lin, variables)
    with pytest.raises(TypeError, match="plain|directly"):
        jxf.from_linen(lambda x: x, variables)
    with pytest.raises(TypeError, match="from_linen"):
        jxf.from_nnx(model)
    with pytest.raises(TypeError, match="directly"):
        jxf.from_nnx(lambda x: x)
    with pytest.raises(TypeError, match="mapping"):
        jxf.from_linen(model, [variables])
    with pytest.raises(TypeError, match="mutable"):
        jxf.from_linen(model, variables, mutable=["batch_stats"])
    with pytest.raises(TypeError, match="batched"):
        jxf.from_linen(model, variables, batched=1)
    with pytest.raises(ValueError, match="no method 'predict'"):
        jxf.from_linen(model, variables, method="predict")


def test_regression_model_rejects_a_target():
    model, x = nn.Dense(1), jnp.ones(3)
    variables = _init(model, x)
    squeeze = lambda m, v: m(v)[..., 0]  # a scalar per example
    f = jxf.from_linen(model, variables, method=squeeze)
    np.testing.assert_allclose(f(x), model.apply(variables, x[None])[0, 0], rtol=1e-6)
    np.testing.assert_allclose(jx.gradient(f)(x), variables["params"]["kernel"][:, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="scalar per example.*target=None"):
        f(x, 0)
    with pytest.raises(ValueError, match="scalar per example.*target=None"):
        jx.gradient(f)(x, 0)
    with pytest.raises(ValueError, match="output='logits'"):
        jxf.from_linen(model, variables, method=squeeze, output="softmax")(x)


def test_bad_targets():
    lin = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
    f, x = jxf.from_nnx(lin), jnp.ones(3)
    with pytest.raises(ValueError, match=r"target 4 is out of range.*\[0, 4\)"):
        f(x, 4)
    with pytest.raises(ValueError, match="out of range"):
        f(x, -1)
    with pytest.raises(TypeError, match="integer class index"):
        f(x, 1.0)
    with pytest.raises(TypeError, match="integer class index"):
        f(x, jnp.array([1]))
    # A traced target cannot raise; out of range it gives NaN, never another class's attribution.
    assert np.all(np.isnan(jx.gradient(f)(x, 4)))
    assert np.all(np.isfinite(jx.gradient(f)(x, 3)))
    vals = jax.vmap(f, in_axes=(None, 0))(x, jnp.array([0, 3, 4, -1]))
    assert np.isfinite(vals[:2]).all() and np.isnan(vals[2:]).all()


def test_nnx_params_arg_rejects_foreign_state():
    lin = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
    h = jxf.from_nnx(lin, params_arg=True)
    other = nnx.state(nnx.Linear(3, 4, use_bias=False, rngs=nnx.Rngs(0)))
    h(jnp.ones(3), 0, other)  # a part of the state is fine
    with pytest.raises(ValueError, match="does not have.*extra"):
        h(jnp.ones(3), 0, nnx.State({"extra": nnx.Param(jnp.ones(2)), **other}))
    with pytest.raises(TypeError, match="nnx.State"):
        h(jnp.ones(3), 0, [other])


class TwoInputs(nn.Module):
    """A model with two positional inputs: an image-like vector and a side vector."""

    @nn.compact
    def __call__(self, a, b):
        return nn.Dense(3)(jnp.tanh(nn.Dense(5)(a)) * nn.Dense(5)(b))


def test_unpack_calls_the_model_with_several_inputs_and_attributes_each():
    model = TwoInputs()
    a, b = jnp.linspace(-1, 1, 4), jnp.linspace(0.5, -0.5, 2)
    v = model.init(jax.random.key(0), a[None], b[None])
    f = jxf.from_linen(model, v, unpack=True)
    by_hand = jax.grad(lambda a, b: model.apply(v, a[None], b[None])[0, 2], argnums=(0, 1))(a, b)
    g = jx.gradient(f)((a, b), 2)
    assert isinstance(g, tuple) and [t.shape for t in g] == [(4,), (2,)]
    for got, want in zip(g, by_hand):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)
    ig = jx.integrated_gradients(f, steps=64)((a, b), 2)
    total = sum(float(jnp.sum(t)) for t in ig)
    np.testing.assert_allclose(total, f((a, b), 2) - f((0 * a, 0 * b), 2), rtol=1e-3)
    with pytest.raises(TypeError, match=r"unpack=True, x must be a tuple"):
        f(a, 2)
    with pytest.raises(TypeError, match="unpack"):
        jxf.from_linen(model, v, unpack="yes")


def test_unpack_tokens_and_mask_linen_and_nnx():
    from jaxplain import zoo

    kw = dict(vocab=8, length=6, width=8, depth=1, heads=2, mlp=16, classes=2, pad_id=0)
    model = zoo.TextTransformer(**kw)
    tokens = jnp.array([3, 1, 4, 2, 0, 0])
    mask = tokens != 0
    v = model.init(jax.random.key(0), tokens[None], mask[None])
    twin = zoo.linen_to_nnx(model, v, zoo.TextTransformerNNX(**kw, rngs=nnx.Rngs(0)))
    for f in (jxf.from_linen(model, v, unpack=True), jxf.from_nnx(twin, unpack=True)):
        np.testing.assert_allclose(f((tokens, mask), 1), model.apply(v, tokens[None], mask[None])[0, 1],
                                   rtol=1e-5)
        ig = jx.token_attribution(jx.integrated_gradients, f, layer="embed", steps=64)
        scores = ig((tokens, mask), 1)
        pad = f((tokens, mask), 1) - jxf.from_linen(model, v, method="encode", unpack=True)(
            (jnp.zeros((6, 8)), mask), 1)
        assert jnp.shape(scores) == (6,)  # one score per token: the mask is not attributed
        np.testing.assert_allclose(jnp.sum(scores), pad, rtol=2e-3, atol=1e-5)
