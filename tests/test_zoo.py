"""jaxplain.zoo: the Linen and NNX twins compute the same function from the same weights."""

import doctest
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx, traverse_util

import jaxplain as jx
import jaxplain.flax as jxf
import jaxplain.zoo as zoo

CLASSES = 5
SHAPE = (8, 8, 3)

# name -> (Linen module, a builder of its NNX twin given rngs). The MLP uses a smooth activation
# (checks that `act` reaches both), the ResNet two blocks per stage (a block with and without the
# projection in stage1).
ARCHS = {
    "mlp": (
        zoo.MLP(features=(8, 6), classes=CLASSES, act=nn.softplus),
        lambda rngs: zoo.MLPNNX((8, 6), CLASSES, nn.softplus, in_shape=SHAPE, rngs=rngs),
    ),
    "vgg": (
        zoo.VGG(features=(4, 8), classes=CLASSES),
        lambda rngs: zoo.VGGNNX((4, 8), CLASSES, rngs=rngs),
    ),
    "resnet": (
        zoo.ResNet(features=(4, 8), blocks=2, classes=CLASSES),
        lambda rngs: zoo.ResNetNNX((4, 8), blocks=2, classes=CLASSES, rngs=rngs),
    ),
}

# Submodule paths each model must have (Linen params tree and NNX attributes), and must not have.
PATHS = {
    "mlp": (["dense0", "dense1", "head"], ["dense2"]),
    "vgg": (
        ["stage0/conv0", "stage0/conv1", "stage1/conv0", "stage1/conv1", "head"],
        ["stage2"],
    ),
    "resnet": (
        [
            "stem_conv", "stem_bn", "head",
            *(f"stage{i}/block{j}/{layer}" for i in range(2) for j in range(2)
              for layer in ("conv0", "bn0", "conv1", "bn1")),
            "stage1/block0/proj", "stage1/block0/proj_bn",
        ],
        ["stage0/block0/proj", "stage0/block1/proj", "stage1/block1/proj", "stage2"],
    ),
}


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


def _abstract_twin(name):
    """The NNX twin without running its initializers (linen_to_nnx fills in every value)."""
    return nnx.eval_shape(lambda: ARCHS[name][1](nnx.Rngs(0)))


def _variables(module):
    """The shapes of ``module``'s variables for SHAPE inputs."""
    return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.ones((1,) + SHAPE)))


def _infer(model):
    return nnx.view(model, use_running_average=True, raise_if_not_found=False)


@pytest.fixture(scope="module", params=list(ARCHS))
def pair(request):
    """(name, Linen module, variables, inputs, NNX twin); the ResNet after 3 train-mode updates."""
    name = request.param
    module = ARCHS[name][0]
    rng = np.random.default_rng(1)
    xs = jnp.asarray(rng.standard_normal((4,) + SHAPE), jnp.float32)
    variables = _init_like(jax.eval_shape(lambda v: module.init(jax.random.key(0), v), xs))
    if "batch_stats" in variables:

        @jax.jit
        def update(variables, batch):
            _, upd = module.apply(variables, batch, train=True, mutable=["batch_stats"])
            return {**variables, **upd}

        for _ in range(3):
            batch = jnp.asarray(1.0 + 2.0 * rng.standard_normal((8,) + SHAPE), jnp.float32)
            variables = update(variables, batch)
        stats = variables["batch_stats"]["stem_bn"]
        assert float(jnp.max(jnp.abs(stats["mean"]))) > 0.1
        assert float(jnp.max(jnp.abs(stats["var"] - 1.0))) > 0.1
    twin = zoo.linen_to_nnx(module, variables, _abstract_twin(name))
    return name, module, variables, xs, twin


# ----------------------------------------------------------------------------- equivalence


def test_same_logits_in_inference_mode(pair):
    name, module, variables, xs, twin = pair
    ref = module.apply(variables, xs)  # ResNet: train=False by default
    np.testing.assert_allclose(_infer(twin)(xs), ref, rtol=1e-5, atol=1e-5)
    if name != "resnet":  # no mode: the twin itself is the inference model
        np.testing.assert_allclose(twin(xs), ref, rtol=1e-5, atol=1e-5)
    assert all(isinstance(a, jax.Array) for a in jax.tree_util.tree_leaves(nnx.state(twin)))


def test_adapters_and_gradients_agree(pair):
    _, module, variables, xs, twin = pair
    f, g = jxf.from_linen(module, variables), jxf.from_nnx(twin)
    targets = jnp.array([0, 2, 4, 1])
    fx, gx = jax.vmap(f)(xs, targets), jax.vmap(g)(xs, targets)
    np.testing.assert_allclose(gx, fx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        fx, module.apply(variables, xs)[jnp.arange(4), targets], rtol=1e-5, atol=1e-5
    )
    df = jax.vmap(jx.gradient(f))(xs, targets)
    dg = jax.vmap(jx.gradient(g))(xs, targets)
    assert df.shape == xs.shape and float(jnp.max(jnp.abs(df))) > 0
    np.testing.assert_allclose(dg, df, rtol=1e-4, atol=1e-5)


def test_module_paths_exist_in_both_frameworks(pair):
    name, _, variables, _, twin = pair
    present, absent = PATHS[name]
    for path in present:
        parts = path.split("/")
        assert functools.reduce(lambda t, k: t[k], parts, variables["params"])
        assert isinstance(functools.reduce(getattr, parts, twin), nnx.Module), path
    for path in absent:
        parts = path.split("/")
        assert parts[-1] not in functools.reduce(lambda t, k: t[k], parts[:-1], variables["params"])
        assert not hasattr(functools.reduce(getattr, parts[:-1], twin), parts[-1]), path
    # The NNX Param and BatchStat paths are exactly the Linen params and batch_stats paths.
    for collection, kind in [("params", nnx.Param), ("batch_stats", nnx.BatchStat)]:
        linen_paths = set(traverse_util.flatten_dict(variables.get(collection, {})))
        nnx_paths = {tuple(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(twin, kind))}
        assert linen_paths == nnx_paths


@pytest.mark.parametrize("pair", ["resnet"], indirect=True)
def test_resnet_batchnorm_really_used_and_train_modes_agree(pair):
    _, module, variables, xs, twin = pair
    infer = module.apply(variables, xs, train=False)
    train, upd = module.apply(variables, xs, train=True, mutable=["batch_stats"])
    assert float(jnp.max(jnp.abs(train - infer))) > 1e-3
    # NNX in training mode (its default): batch statistics, running averages updated in place,
    # the same numbers as Linen's.
    clone = nnx.clone(twin)
    np.testing.assert_allclose(clone(xs), train, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        clone.stage1.block0.proj_bn.mean[...],
        upd["batch_stats"]["stage1"]["block0"]["proj_bn"]["mean"], rtol=1e-4, atol=1e-5,
    )
    # ... and `twin` itself (which the clone was taken from) still holds the old statistics.
    np.testing.assert_array_equal(
        twin.stem_bn.mean[...], variables["batch_stats"]["stem_bn"]["mean"]
    )


# ----------------------------------------------------------------------------- linen_to_nnx


def test_linen_to_nnx_leaves_its_argument_alone():
    module = ARCHS["resnet"][0]
    variables = _init_like(_variables(module))
    # A concrete model, built without NNX's eager initializers (they compile per shape: slow).
    original = zoo.linen_to_nnx(module, _init_like(_variables(module), 5), _abstract_twin("resnet"))
    original.eval()  # the mode carries over to the copy
    before = jax.tree_util.tree_map(np.asarray, nnx.state(original))
    twin = zoo.linen_to_nnx(module, variables, original)
    assert type(twin) is zoo.ResNetNNX and twin is not original
    assert twin.stage1.block0.bn0.use_running_average is True
    after = jax.tree_util.tree_map(np.asarray, nnx.state(original))
    jax.tree_util.tree_map(np.testing.assert_array_equal, after, before)
    np.testing.assert_array_equal(
        twin.stage1.block1.conv1.kernel[...],
        variables["params"]["stage1"]["block1"]["conv1"]["kernel"],
    )
    np.testing.assert_array_equal(
        twin.stem_bn.var[...], variables["batch_stats"]["stem_bn"]["var"]
    )
    # No Variable is shared: updating the copy leaves the original alone.
    twin.head.bias[...] = jnp.full(CLASSES, 7.0)
    np.testing.assert_array_equal(original.head.bias[...], before["head"]["bias"][...])


def test_linen_to_nnx_on_a_plain_flax_pair():
    dense = nn.Dense(3)
    v = dense.init(jax.random.key(0), jnp.ones((1, 4)))
    lin = zoo.linen_to_nnx(dense, v, nnx.Linear(4, 3, rngs=nnx.Rngs(1)))
    np.testing.assert_array_equal(lin(jnp.ones((2, 4))), dense.apply(v, jnp.ones((2, 4))))


def test_linen_to_nnx_names_the_first_mismatch():
    vgg = zoo.VGG(features=(4, 8), classes=CLASSES)
    v = _variables(vgg)
    narrow = nnx.eval_shape(lambda: zoo.VGGNNX((4, 6), CLASSES, rngs=nnx.Rngs(0)))
    message = r"'params/head/kernel': shape \(8, 5\) in the Linen variables but \(6, 5\) in the NNX"
    with pytest.raises(ValueError, match=message):
        zoo.linen_to_nnx(vgg, v, narrow)
    resnet = zoo.ResNet(features=(4,), blocks=2, classes=CLASSES)
    shallow = nnx.eval_shape(lambda: zoo.ResNetNNX((4,), 1, CLASSES, rngs=nnx.Rngs(0)))
    message = r"'params/stage0/block1/bn0/bias' is in the Linen variables but not in the NNX model"
    with pytest.raises(ValueError, match=message):
        zoo.linen_to_nnx(resnet, _variables(resnet), shallow)
    with pytest.raises(ValueError, match="collection"):
        zoo.linen_to_nnx(vgg, {**v, "intermediates": {}}, _abstract_twin("vgg"))
    with pytest.raises(ValueError, match="act=softplus"):
        soft = zoo.VGG(features=(4, 8), classes=CLASSES, act=nn.softplus)
        zoo.linen_to_nnx(soft, v, _abstract_twin("vgg"))
    with pytest.raises(TypeError, match="different architectures; pass VGGNNX"):
        zoo.linen_to_nnx(vgg, v, _abstract_twin("resnet"))
    with pytest.raises(TypeError, match="nnx_model must be a flax.nnx.Module"):
        zoo.linen_to_nnx(vgg, v, vgg)
    with pytest.raises(TypeError, match="variables must be the mapping"):
        zoo.linen_to_nnx(vgg, [v], _abstract_twin("vgg"))


# ----------------------------------------------------------------------------- the rest


def test_make_and_argument_checks():
    assert zoo.make("mlp", features=(4,)) == zoo.MLP(features=(4,))
    made = nnx.eval_shape(lambda: zoo.make("vgg", "nnx", features=(4,), rngs=nnx.Rngs(0)))
    assert isinstance(made, zoo.VGGNNX) and made.stage0.conv1.kernel.shape == (3, 3, 4, 4)
    with pytest.raises(ValueError, match="unknown name 'cnn'"):
        zoo.make("cnn")
    with pytest.raises(TypeError, match="in_shape="):
        zoo.make("mlp", "nnx")
    with pytest.raises(TypeError, match="features must be a sequence of ints"):
        zoo.VGGNNX(features=16, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="rngs must be an nnx.Rngs"):
        zoo.ResNetNNX((4,), rngs=0)
    with pytest.raises(TypeError, match="in_shape must be the shape of one example"):
        zoo.MLPNNX((4,), in_shape=(8, 0), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="at least one stage width"):
        zoo.VGG(features=()).init(jax.random.key(0), jnp.ones((1,) + SHAPE))


def test_doctests_run():
    assert doctest.testmod(zoo).failed == 0
