"""The hook interpreter (jaxplain._interpret.evaluate): plain hooks change nothing, every class of
operation reaches its hook in order, and with_backward changes the backward pass only."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain._interpret import Plain, interpret, with_backward
from tests.nets import cnn, init_cnn


def test_plain_hooks_reproduce_f_and_its_gradient():
    params = init_cnn(jax.random.key(0))
    f = lambda x, t: cnn(params, x)[t]
    x = jax.random.normal(jax.random.key(1), (8, 8, 3))
    program = interpret(f, x, (2,), {})
    run = lambda v: program.run(Plain())([v])
    np.testing.assert_allclose(run(x), f(x, 2), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(run)(x), jax.grad(f)(x, 2), rtol=1e-5, atol=1e-7)


class Recorder(Plain):
    def __init__(self):
        self.sites = []

    def region(self, site, g, root, consts):
        self.sites.append(("region", site.kind, site.index))
        return super().region(site, g, root, consts)

    def layer(self, site, lin, x, w, b):
        self.sites.append(("layer", site.kind, site.index, site.path, site.nonneg, b is not None))
        return super().layer(site, lin, x, w, b)

    def op(self, site, fn, invals, active):
        self.sites.append(("op", site.kind, site.index))
        return super().op(site, fn, invals, active)


def test_every_class_reaches_its_hook_in_evaluation_order():
    params = init_cnn(jax.random.key(0))

    def f(x):
        with jax.named_scope("body"):
            h = jax.jit(lambda v: cnn(params, v))(x)  # calls are entered
        return h[0] + h[1]  # a sum of two x-dependent values

    x = jnp.ones((8, 8, 3))
    program = interpret(f, x)
    rec = Recorder()
    program.run(rec)([x])
    layers = [s for s in rec.sites if s[0] == "layer"]
    assert [(k, i, b) for _, k, i, _, _, b in layers] == [("conv", 0, True), ("conv", 1, True), ("dense", 2, True)]
    assert [nonneg for *_, nonneg, _ in layers] == [False, True, True]  # after ReLUs / their pooling
    assert all(path == "body" for _, _, _, path, _, _ in layers)
    assert [s[1:] for s in rec.sites if s[0] == "region"] == [("activation", 0), ("activation", 1)]
    assert [s[1:] for s in rec.sites if s[0] == "op"] == [("avg_pool", 0), ("sum", 1)]
    assert program.layers() == [("conv", "body"), ("conv", "body"), ("dense", "body")]


def test_with_backward_changes_only_the_backward_pass_and_keeps_parameters_differentiable():
    def f(x, w):
        def backward(args, out, r):
            a, ww = args
            return [2.0 * r * ww, None]  # twice the true derivative in x, nothing for w

        return with_backward(lambda a, ww: a * ww, backward, [x, w])

    x, w = jnp.array([1.0, -2.0]), jnp.array([3.0, 0.5])
    np.testing.assert_allclose(f(x, w), x * w)
    np.testing.assert_allclose(jax.grad(lambda v: jnp.sum(f(v, w)))(x), 2.0 * w)
    # the rule's own arithmetic is differentiable in the weights it is given (second order)
    g = jax.grad(lambda ww: jnp.sum(jax.grad(lambda v: jnp.sum(f(v, ww)))(x)))(w)
    np.testing.assert_allclose(g, [2.0, 2.0])
