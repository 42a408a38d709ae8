"""What depends on x and what each operation is (jaxplain._interpret.analysis)."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from jaxplain._interpret import analysis as A
from jaxplain._interpret import program as P
from tests.nets import cnn, init_cnn


def _jaxpr(f, *args):
    return jax.make_jaxpr(f)(*args).jaxpr


def _scope(f, *args):
    jaxpr = _jaxpr(f, *args)
    return jaxpr, A.analyze(jaxpr, [True] + [False] * (len(jaxpr.invars) - 1), None, {})


def test_dependents_follow_the_data_flow_from_x():
    jaxpr = _jaxpr(lambda x, w: (jnp.sum(x * w) + jnp.sum(w), (x > 0).astype(jnp.int32)), jnp.ones(3), jnp.ones(3))
    dep = A.dependents(jaxpr, [True, False])
    names = {e.primitive.name for e in jaxpr.eqns if e.outvars[0] in dep}
    assert {"mul", "gt", "convert_element_type", "add"} <= names
    assert not any(e.outvars[0] in dep for e in jaxpr.eqns if e.invars == [jaxpr.invars[1]])  # sum(w)
    floats = A.dependents(jaxpr, [True, False], floats=True)
    assert all(P.is_float(v) for v in floats) and len(floats) < len(dep)


@pytest.mark.parametrize(
    "relu, is_relu",
    [
        (jax.nn.relu, True),
        (lambda v: jnp.maximum(v, 0.0), True),
        (lambda v: jnp.maximum(0.0, v), True),
        (jax.jit(jax.nn.relu), True),
        (lambda v: jnp.maximum(v, 1.0), False),
        (jax.nn.relu6, False),
        (lambda v: jnp.where(v > 0, v, 0.0), False),  # other spellings are not ReLUs
    ],
)
def test_relu_operand(relu, is_relu):
    jaxpr = _jaxpr(relu, jnp.ones(3))
    found = [A.relu_operand(e) is not None for e in jaxpr.eqns]
    assert any(found) == is_relu
    ints = _jaxpr(lambda v: jnp.maximum(v, 0), jnp.ones(3, jnp.int32))
    assert all(A.relu_operand(e) is None for e in ints.eqns)


def test_a_cnn_is_layers_with_biases_relu_regions_a_mean_and_a_dense_layer():
    params = init_cnn(jax.random.key(0))
    jaxpr, scope = _scope(lambda x: cnn(params, x)[1], jnp.ones((8, 8, 3)))
    layers = [op.detail for op in scope.ops if op.cls == "layer"]
    assert [l.kind for l in layers] == ["conv", "conv", "dense"]
    assert all(l.add is not None for l in layers)  # each with its bias (conv: after the squeeze)
    assert layers[0].chain  # the convolution's output passes reshapes before its bias
    assert [op.cls for op in scope.ops].count("mean") == 1  # reduce_window sum / 4
    relus = {r.root: r for r in scope.regions.values()}.values()  # one region per ReLU
    assert len(relus) == 2 and all(r.relu and not r.affine for r in relus)
    # non-negative: the ReLUs' outputs and their average pooling; not the layers' outputs
    pooled = next(e.outvars[0] for e, op in zip(jaxpr.eqns, scope.ops) if op.cls == "mean")
    assert pooled in scope.nonneg
    assert all(e.outvars[0] not in scope.nonneg for e, op in zip(jaxpr.eqns, scope.ops) if op.cls == "layer")


def test_elementwise_regions_gelu_is_one_batchnorm_is_affine():
    w = jnp.ones((3, 3))
    gelu_scope = _scope(lambda x: jnp.sum(jax.nn.gelu(x @ w, approximate=True)), jnp.ones(3))[1]
    region = max(gelu_scope.regions.values(), key=lambda r: len(r.eqns))  # the output's region
    assert len(region.eqns) > 5 and not region.affine and not region.relu
    mean, var, scale = jnp.ones(3) * 0.1, jnp.ones(3) * 2.0, jnp.ones(3) * 0.5
    bn_scope = _scope(lambda x: jnp.sum((x @ w - mean) / jnp.sqrt(var) * scale + 1.0), jnp.ones(3))[1]
    assert all(r.affine for r in bn_scope.regions.values())


def test_products_of_two_x_dependent_values_are_products_and_control_flow_is_other():
    _, scope = _scope(lambda x: jnp.sum((x @ jnp.ones((3, 3))) * jnp.sin(x)), jnp.ones(3))
    (product,) = [op for op in scope.ops if op.cls == "product"]
    assert "product of two x-dependent values" in product.what
    _, scope = _scope(lambda x: jnp.sum((x @ jnp.ones((3, 3))) @ jnp.outer(x, x)), jnp.ones(3))
    assert [op.cls for op in scope.ops].count("product") == 2  # outer(x, x) and the matrix product
    _, scope = _scope(lambda x: jnp.sum(jnp.sin(x) / jnp.cos(x @ jnp.ones((3, 3)))), jnp.ones(3))
    (other,) = [op for op in scope.ops if op.cls == "other"]
    assert "2 of its inputs depend on x" in other.what
    _, scope = _scope(lambda x: lax.cond(True, jnp.sin, jnp.cos, x).sum(), jnp.ones(3))
    assert any(op.cls == "other" and "control flow" in op.what for op in scope.ops)


def test_a_softmax_is_one_operation_when_asked_for():
    w = jnp.ones((3, 4))
    f = lambda x: jnp.sum(jax.nn.softmax((x @ w).reshape(2, 2), axis=-1) * jnp.arange(4.0).reshape(2, 2))
    jaxpr = _jaxpr(f, jnp.ones(3))
    plain = A.analyze(jaxpr, [True], None, {})
    assert not any(op.cls == "softmax" for op in plain.ops)  # DeepLIFT and the others: the parts
    scope = A.analyze(jaxpr, [True], None, {}, softmax=True)
    (group,) = [op.detail for op in scope.ops if op.cls == "softmax"]
    names = [jaxpr.eqns[i].primitive.name for i in group.members]
    assert sorted(names) == sorted(["reduce_max", "max", "broadcast_in_dim", "stop_gradient", "sub",
                                    "exp", "reduce_sum", "broadcast_in_dim", "div"])
    assert group.axes == (1,) and group.input is jaxpr.eqns[group.members[0]].invars[0]
    assert all(scope.ops[i].cls == "deferred" for i in group.members[:-1])
    # written by hand without the shift: also a softmax
    hand = lambda x: (lambda e: jnp.sum(e / jnp.sum(e) * jnp.arange(4.0)))(jnp.exp(x @ w))
    assert any(op.cls == "softmax" for op in _scope_softmax(hand, jnp.ones(3)).ops)
    # exp(c) read outside the division: not a softmax (its parts keep their classes)
    leak = lambda x: (lambda e: jnp.sum(e / jnp.sum(e)) + jnp.sum(e))(jnp.exp(x @ w))
    assert not any(op.cls == "softmax" for op in _scope_softmax(leak, jnp.ones(3)).ops)


def _scope_softmax(f, *args):
    jaxpr = _jaxpr(f, *args)
    return A.analyze(jaxpr, [True] + [False] * (len(jaxpr.invars) - 1), None, {}, softmax=True)
