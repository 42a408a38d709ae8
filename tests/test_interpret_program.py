"""Programs (jaxplain._interpret.program): tracing f, binding equations again, and re-evaluating
higher-order primitives with a recursive evaluator."""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxplain._interpret import program as P


def _plain(closed, args):
    """Evaluates a program again, entering every higher-order primitive it can."""

    def step(eqn, invals):
        outs = P.rebuild(eqn, invals, lambda sub, a: _plain(sub, a))
        return P.bind(eqn, invals) if outs is None else outs

    return P.evaluate(P.open_jaxpr(closed), P.consts_of(closed), args, step)


def test_trace_marks_x_and_keeps_static_arguments_constant():
    f = lambda x, w, mode, *, scale: (jnp.sum(x["a"] @ w) * scale if mode == "sum" else 0.0)
    x = {"a": jnp.ones((2, 3))}
    traced = P.trace(f, x, (jnp.ones(3), "sum"), {"scale": 2.0})
    assert traced.x_mask == [True, False, False]  # x's leaf, w, scale; the string is static
    assert len(traced.dyn) == 3
    (out,) = jax.core.eval_jaxpr(traced.closed.jaxpr, traced.closed.consts, *traced.inputs([3 * jnp.ones((2, 3))]))
    assert float(out) == 36.0


def test_rebuild_reaches_into_jit_checkpoint_cond_and_scan():
    w = jax.random.normal(jax.random.key(0), (4, 4))

    def f(x):
        h = jax.jit(jnp.tanh)(x @ w)
        h = jax.checkpoint(lambda u: jnp.sin(u) * u)(h)
        h = lax.cond(jnp.sum(h) > 0, lambda u: u * 2.0, lambda u: u - 1.0, h)
        h, ys = lax.scan(lambda c, y: (jnp.cos(c) + y, c), h, jnp.ones((3, 4)))
        return jnp.sum(h) + jnp.sum(ys)

    x = jax.random.normal(jax.random.key(1), (4,))
    closed = jax.make_jaxpr(f)(x)
    again = lambda v: _plain(closed, [v])[0]
    np.testing.assert_allclose(again(x), f(x), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(again)(x), jax.grad(f)(x), rtol=1e-5, atol=1e-6)
    names = {e.primitive.name for e in jax.make_jaxpr(again)(x).jaxpr.eqns}
    assert {"cond", "scan"} <= names  # rebuilt as control flow, not unrolled


def test_rebuild_leaves_while_loops_to_the_caller():
    loop = lambda v: lax.while_loop(lambda c: c[0] < 3.0, lambda c: c + 1.0, v)
    eqn = next(e for e in jax.make_jaxpr(loop)(jnp.zeros(2)).jaxpr.eqns if e.primitive.name == "while")
    assert P.rebuild(eqn, [jnp.zeros(2)], lambda sub, a: a) is None


def test_bind_at_source_keeps_the_module_path_and_line():
    def f(x):
        with jax.named_scope("block"):
            return jnp.sin(x) * 2.0

    closed = jax.make_jaxpr(f)(jnp.ones(2))

    def step(eqn, invals):
        return P.bind_at_source(eqn, invals)

    again = jax.make_jaxpr(lambda v: P.evaluate(closed.jaxpr, closed.consts, [v], step)[0])(jnp.ones(2))
    for e in again.jaxpr.eqns:
        assert P.module_path("", e) == "block"
        assert P.source(e) == P.source(closed.jaxpr.eqns[0]) or "test_interpret_program" in P.source(e)
