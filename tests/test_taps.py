"""Layer taps and module paths (jaxplain._taps): one naming for jx.layers, layer methods and LRP
composites, Linen and NNX alike; adapters' batch axis; taps leave the traced program alone."""

import doctest

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxplain as jx
import jaxplain.flax as jxf
from jaxplain import _taps
from jaxplain._interpret import interpret


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.softplus(nn.Dense(6, name="fc1")(x))
        return nn.Dense(3, name="out")(nn.tanh(nn.Dense(5, name="fc2")(h)))


class Block(nnx.Module):
    def __init__(self, d, rngs):
        self.lin0 = nnx.Linear(d, d, rngs=rngs)
        self.lin = nnx.Linear(d, d, rngs=rngs)

    def __call__(self, x):
        return x + nnx.relu(self.lin(nnx.relu(self.lin0(x))))


class Blocks(nnx.Module):
    """Submodules in a list: their paths are blocks/0/..., blocks/1/..."""

    def __init__(self, rngs):
        self.inp = nnx.Linear(4, 6, rngs=rngs)
        self.blocks = nnx.List([Block(6, rngs), Block(6, rngs)])
        self.head = nnx.Linear(6, 3, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.inp(x))
        for b in self.blocks:
            h = b(h)
        return self.head(h)


@pytest.fixture(scope="module")
def linen():
    model = MLP()
    v = model.init(jax.random.key(0), jnp.zeros((1, 4)))
    return model, v


@pytest.fixture(scope="module")
def blocks():
    return jxf.from_nnx(Blocks(nnx.Rngs(0)))


def test_doctests_run():
    assert doctest.testmod(_taps).failed == 0


def test_layers_lists_paths_and_shapes(linen, blocks):
    model, v = linen
    closure = lambda x, t: model.apply(v, x[None])[0, t]  # called on x[None] by hand: axis kept
    assert jx.layers(closure, jnp.ones(4), 1) == {"fc1": (1, 6), "fc2": (1, 5), "out": (1, 3)}
    # an f made by jaxplain.flax adds the batch axis itself: its layers are per example
    assert jx.layers(jxf.from_linen(model, v), jnp.ones(4), 1) == {"fc1": (6,), "fc2": (5,), "out": (3,)}
    assert list(jx.layers(blocks, jnp.ones(4), 0)) == [
        "inp", "blocks/0/lin0", "blocks/0/lin", "blocks/0", "blocks/1/lin0", "blocks/1/lin", "blocks/1", "head",
    ]


def test_module_path_reads_the_innermost_marked_call():
    mark = _taps.scope_name
    assert _taps.module_path(f"VGG/stage0/{mark('stage0')}/conv0/{mark('stage0/conv0')}") == "stage0/conv0"
    assert _taps.module_path(f"{mark('blocks/0')}/jit(relu)/{mark('blocks/0/lin')}/dot") == "blocks/0/lin"
    assert _taps.module_path("jit(f)/encoder/vmap(g)/dense") == "encoder/dense"  # no tap: the scopes
    assert _taps.module_path("") == ""


def test_program_paths_are_the_listed_layer_paths(linen, blocks):
    """The program transforms (LRP composites by path) see the names jx.layers lists."""
    x = jnp.ones(4)
    program = interpret(blocks, x, (0,), {})
    assert [p for _, p in program.layers()] == [
        "inp", "blocks/0/lin0", "blocks/0/lin", "blocks/1/lin0", "blocks/1/lin", "head",
    ]
    assert set(program.paths()) <= set(jx.layers(blocks, x, 0))
    model, v = linen
    closure = lambda x, t: model.apply(v, x[None])[0, t]
    assert [p for _, p in interpret(closure, x, (1,), {}).layers()] == ["fc1", "fc2", "out"]


def test_lrp_rules_by_nnx_list_path_reach_those_layers_only(blocks):
    x = jax.random.uniform(jax.random.key(1), (4,))
    eps, zero = jx.rules.epsilon(epsilon=0.3), jx.rules.zero
    C = jx.composites.custom
    by_path = jx.lrp(blocks, rules=C(default=eps, paths={"blocks/0/*": zero}))(x, 0)
    by_hand = jx.lrp(blocks, rules=C(default=eps, paths={"blocks/0/lin0": zero, "blocks/0/lin": zero}))(x, 0)
    np.testing.assert_allclose(by_path, by_hand, rtol=1e-6)
    assert not np.allclose(by_path, jx.lrp(blocks, rules=C(default=eps))(x, 0), rtol=1e-4)


def test_a_path_pattern_that_matches_nothing_raises_listing_the_paths(linen, blocks):
    C = jx.composites.custom
    with pytest.raises(ValueError, match=r"'block/0/\*' .* matches no dense or convolution layer.*'blocks/0/lin'"):
        jx.lrp(blocks, rules=C(default=jx.rules.epsilon, paths={"block/0/*": jx.rules.zero}))(jnp.ones(4), 0)
    model, v = linen
    f = jxf.from_linen(model, v)
    with pytest.raises(ValueError, match=r"'MLP/fc1' .* 'fc1', 'fc2', 'out'"):
        jx.lrp(f, rules=C(default=jx.rules.epsilon, paths={"MLP/fc1": jx.rules.zero}))(jnp.ones(4), 0)
    # pass_through / gradient patterns may name any operation, activations included
    jx.lrp(f, rules=C(default=jx.rules.epsilon, paths={"fc1": jx.rules.gradient}))(jnp.ones(4), 0)


def test_taps_add_no_operations_to_the_traced_program(linen, blocks):
    """A tap that only names modules (and records shapes) must not read their outputs: a reader
    would hide a layer's bias or BatchNorm from the program transforms."""
    model, v = linen
    for f in (jxf.from_linen(model, v), blocks, lambda x, t: model.apply(v, x[None])[0, t]):
        plain = jax.make_jaxpr(f)(jnp.ones(4), 1)
        named = jax.make_jaxpr(_taps.named(f))(jnp.ones(4), 1)
        count = lambda j: sum(1 for _ in _eqns(j.jaxpr))
        assert count(named) == count(plain)


def _eqns(jaxpr):
    for e in jaxpr.eqns:
        yield e
        for p in ("jaxpr", "call_jaxpr"):
            if p in e.params:
                yield from _eqns(getattr(e.params[p], "jaxpr", e.params[p]))


def test_replacing_a_layer_without_its_batch_axis(linen):
    """Layer IG through an adapter replaces the layer's per-example output and restores the axis."""
    model, v = linen
    f = jxf.from_linen(model, v)
    sp = _taps.split("t", f, "fc2", None, None)
    x = jax.random.normal(jax.random.key(2), (4,))
    a = sp.activation(x, 1)
    assert a.shape == (5,)
    p = v["params"]
    by_hand = lambda a: (jnp.tanh(a) @ p["out"]["kernel"] + p["out"]["bias"])[1]
    np.testing.assert_allclose(sp.rest(x, a * 2.0, 1), by_hand(a * 2.0), rtol=1e-6)
    with pytest.raises(ValueError, match=r"replacement activation has shape \(1, 5\)"):
        sp.rest(x, a[None], 1)


# --------------------------------------------------------------------------- Equinox


@pytest.fixture(scope="module")
def eqx_net():
    """An Equinox net with a nested MLP (its layers in a tuple) and a function field: non-array
    leaves, which jax.jit alone rejects."""
    eqx = pytest.importorskip("equinox")

    class Net(eqx.Module):
        inp: eqx.nn.Linear
        mlp: eqx.nn.MLP
        act: object

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.inp = eqx.nn.Linear(4, 6, key=k1)
            self.mlp = eqx.nn.MLP(6, 3, 5, 2, activation=jax.nn.softplus, key=k2)
            self.act = jnp.tanh

        def __call__(self, x):
            return self.mlp(self.act(self.inp(x)))

    net = Net(jax.random.key(0))
    f = lambda x, t, m: m(x)[t]
    x = jax.random.normal(jax.random.key(1), (4,))
    return eqx, net, f, x


def test_equinox_layers_by_attribute_path(eqx_net):
    eqx, net, f, x = eqx_net
    before = jax.tree_util.tree_leaves(net)
    assert jx.layers(f, x, 0, net) == {"inp": (6,), "mlp/layers/0": (5,), "mlp/layers/1": (5,),
                                       "mlp/layers/2": (3,), "mlp": (3,)}
    after = jax.tree_util.tree_leaves(net)
    assert len(before) == len(after) and all(a is b for a, b in zip(before, after))  # untouched
    with pytest.raises(ValueError, match=r"no layer 'mlp/layers/7'.*'mlp/layers/0'"):
        jx.layer_gradient_x_activation(f, layer="mlp/layers/7")(x, 0, net)


def test_equinox_module_as_an_argument_compiles_once_and_equals_the_closure(eqx_net):
    eqx, net, f, x = eqx_net
    traces = []

    def counted(x, t, m):
        traces.append(1)
        return f(x, t, m)

    ig = jx.integrated_gradients(counted, steps=16)
    closure = jx.integrated_gradients(lambda x, t: net(x)[t], steps=16)
    np.testing.assert_allclose(ig(x, 1, net), closure(x, 1), rtol=1e-6, atol=1e-7)
    n = len(traces)
    other = eqx.tree_at(lambda m: m.inp.bias, net, net.inp.bias + 1.0)  # same structure
    ig(x, 2, other)
    assert len(traces) == n  # arrays and targets are traced; the functions are compiled in
    np.testing.assert_allclose(jnp.sum(ig(x, 2, other)), f(x, 2, other) - f(0 * x, 2, other),
                               rtol=2e-3)
    loop = jnp.stack([jx.gradient(f)(x * k, k % 3, net) for k in range(4)])
    batch = eqx.filter_vmap(jx.gradient(f), in_axes=(0, 0, None))(
        x * jnp.arange(4.0)[:, None], jnp.arange(4) % 3, net)
    np.testing.assert_allclose(batch, loop, rtol=1e-6, atol=1e-7)


def test_equinox_layer_methods_equal_features_and_head(eqx_net):
    eqx, net, f, x = eqx_net
    by_path = jx.layer_integrated_gradients(f, layer="inp", steps=8)(x, 1, net)
    by_hand = jx.layer_integrated_gradients(
        features=net.inp, head=lambda a, t: net.mlp(net.act(a))[t], steps=8)(x, 1)
    np.testing.assert_allclose(by_path, by_hand, rtol=1e-6, atol=1e-7)


def test_equinox_lrp_rules_by_path_and_gradients_through_the_explanation(eqx_net):
    eqx, net, f, x = eqx_net
    eps = jx.composites.custom(default=jx.rules.epsilon)
    r = jx.lrp(f, rules=eps)(x, 0, net)
    np.testing.assert_allclose(r, jx.lrp(lambda x, t: net(x)[t], rules=eps)(x, 0), rtol=1e-6)
    assert float(jnp.abs(r).max()) > 0
    # a rule by attribute path reaches that submodule: the last dense layer, as `last=` does
    by_path = jx.composites.custom(default=jx.rules.epsilon, paths={"mlp/layers/2": jx.rules.flat})
    by_position = jx.composites.custom(default=jx.rules.epsilon, last=jx.rules.flat)
    r_path = jx.lrp(f, rules=by_path)(x, 0, net)
    np.testing.assert_allclose(r_path, jx.lrp(lambda x, t: net(x)[t], rules=by_position)(x, 0),
                               rtol=1e-6)
    assert float(jnp.max(jnp.abs(r_path - r))) > 1e-3
    # an explanation is differentiable with respect to the module's weights (eqx.filter_grad)
    loss = lambda m: jnp.sum(jx.gradient(f)(x, 0, m) ** 2)
    g = eqx.filter_grad(loss)(net)
    h = 1e-3
    bumped = eqx.tree_at(lambda m: m.inp.weight, net, net.inp.weight.at[0, 0].add(h))
    lowered = eqx.tree_at(lambda m: m.inp.weight, net, net.inp.weight.at[0, 0].add(-h))
    np.testing.assert_allclose(g.inp.weight[0, 0], (loss(bumped) - loss(lowered)) / (2 * h),
                               rtol=1e-2)
