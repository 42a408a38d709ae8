"""Many points at once (jaxplain._paths): quadrature rules, straight paths, the chunking engine and
the path integrals every path method is written with."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain import _paths
from tests.nets import cnn_f, init_cnn


def test_doctests_run():
    assert doctest.testmod(_paths).failed == 0


# ----------------------------------------------------------------------------- quadrature


@pytest.mark.parametrize("method", _paths.IG_METHODS)
@pytest.mark.parametrize("n", [2, 7, 50])
def test_quadrature_weights_sum_to_one_and_lie_in_unit_interval(method, n):
    a, w = jx.quadrature(method, n)
    assert a.shape == w.shape == (n,)
    assert np.all((a >= 0) & (a <= 1))
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-12)


def test_quadrature_exactness():
    a, w = jx.quadrature("gausslegendre", 5)  # exact up to degree 9
    for d in range(10):
        np.testing.assert_allclose(np.sum(w * a**d), 1.0 / (d + 1), rtol=1e-12)
    a, w = jx.quadrature("riemann_trapezoid", 5)
    np.testing.assert_allclose(a, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(w, [0.125, 0.25, 0.25, 0.25, 0.125])
    a, w = jx.quadrature("riemann_middle", 4)
    np.testing.assert_allclose(a, [0.125, 0.375, 0.625, 0.875])


def test_path_options_check_like_every_path_method():
    opts = _paths.path_options("m", baseline=0.0, steps=4, method="riemann_trapezoid", batch_size=2,
                               extra_points=1)
    assert (opts.steps, opts.method, opts.batch_size, len(opts.alphas)) == (4, "riemann_trapezoid", 2, 5)
    with pytest.raises(ValueError, match=r"^jaxplain.m: steps must be >= 2, got 1"):
        _paths.path_options("m", baseline=0.0, steps=1, method="riemann_trapezoid", batch_size=None)
    with pytest.raises(ValueError, match="unknown method 'simpson'"):
        _paths.path_options("m", baseline=0.0, steps=4, method="simpson", batch_size=None)
    with pytest.raises(TypeError, match="baseline must be numeric"):
        _paths.path_options("m", baseline="black", steps=4, method="gausslegendre", batch_size=None)


# ----------------------------------------------------------------------------- paths


def test_straight_path_resolves_every_baseline_form():
    x = {"a": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(2)}
    for baseline, start_a in (
        (0.5, np.full((2, 3), 0.5)),
        ({"a": jnp.array([1.0, 2.0, 3.0]), "b": 0.0}, np.tile([1.0, 2.0, 3.0], (2, 1))),
        (lambda v: jax.tree_util.tree_map(jnp.zeros_like, v), np.zeros((2, 3))),
    ):
        path = _paths.straight_path("m", baseline, x)
        np.testing.assert_allclose(path.start["a"], start_a)
        np.testing.assert_allclose(path.delta["a"], x["a"] - start_a)
        point = _paths.path_point(path.start, path.delta, jnp.float32(1.0))
        np.testing.assert_allclose(point["a"], x["a"])
    with pytest.raises(ValueError, match=r"baseline of shape \(4,\) does not fit x of shape \(2, 3\)"):
        _paths.straight_path("m", {"a": jnp.ones(4), "b": 0.0}, x)
    with pytest.raises(ValueError, match="single array but x is a pytree"):
        _paths.straight_path("m", jnp.ones(3), x)


# ----------------------------------------------------------------------------- the chunking engine


@pytest.mark.parametrize("n, batch_size", [(10, None), (10, 3), (10, 10), (10, 64), (131, 2)])
def test_chunked_sum_and_map_equal_the_loop(n, batch_size):
    """Unrolled chunks with a remainder, one chunk, and (131 points in chunks of 2: 65 chunks) a
    lax.scan with a remainder, all equal the plain loop."""
    xs = (jnp.arange(n, dtype=jnp.float32), jnp.arange(2.0 * n).reshape(n, 2))
    fn = lambda p: {"s": jnp.sin(p[0]) * p[1], "c": jnp.cos(p[0])}
    loop = [fn((xs[0][i], xs[1][i])) for i in range(n)]
    total = _paths.chunked_sum(fn, xs, batch_size=batch_size)
    np.testing.assert_allclose(total["s"], sum(l["s"] for l in loop), rtol=1e-5)
    np.testing.assert_allclose(total["c"], sum(l["c"] for l in loop), rtol=1e-5)
    mapped = _paths.chunked_map(fn, xs, batch_size=batch_size)
    np.testing.assert_allclose(mapped["s"], np.stack([l["s"] for l in loop]), rtol=1e-6)
    if batch_size == 2:
        assert -(-n // batch_size) > _paths.MAX_UNROLLED_CHUNKS  # the lax.scan branch ran


def test_auto_batch_size_counts_the_vmapped_examples():
    """None: about CHUNK_VALUES input values per chunk (32 images of 32x32x3) counting the vmapped
    examples, equal chunks, at most AUTO_MAX_CHUNKS of them; a given batch_size is kept."""
    def chosen(batch, n, batch_size=None, like=jnp.zeros((32, 32, 3))):
        out = []

        def f(x):
            out.append(_paths.auto_batch_size(n, batch_size, like))
            return x

        if batch == 1:
            f(jnp.ones(()))
        else:
            jax.vmap(f)(jnp.ones(batch))
        return out[0]

    assert _paths.CHUNK_VALUES == 32 * 32 * 32 * 3 and _paths.AUTO_MAX_CHUNKS == 25
    assert chosen(1, 50) == 25  # 2 chunks of 25 (32 would leave a chunk of 18)
    assert chosen(1, 20) == 20  # one chunk
    assert chosen(4, 50) == 8  # 32 / 4 = 8 points a chunk: 7 chunks
    assert chosen(16, 50) == 2
    assert chosen(64, 50) == 2  # 1 point would be 50 chunks: capped at 25 chunks of 2
    assert chosen(64, 300) == 12  # 25 chunks, never the lax.scan past MAX_UNROLLED_CHUNKS
    assert chosen(256, 10) == 1
    assert chosen(64, 50, batch_size=50) == 50 and chosen(1, 50, batch_size=3) == 3
    # small inputs stay in one chunk: a 3-vector function on 20000 samples
    assert chosen(1, 20000, like=jnp.zeros(3)) == 20000
    # a pytree counts all its leaves: two 32x32x3 images per input = 16 inputs a chunk
    assert chosen(1, 50, like=(jnp.zeros((32, 32, 3)), jnp.zeros((32, 32, 3)))) == 13
    assert chosen(64, 50, like=jnp.zeros((8, 8, 3))) == 8  # 16x fewer values: 8 points a chunk
    for batch, n in [(1, 50), (4, 50), (64, 300), (3, 1000)]:
        assert -(-n // chosen(batch, n)) <= _paths.AUTO_MAX_CHUNKS


def test_the_default_chunking_is_the_chosen_batch_size_in_the_program():
    """jit(vmap(IG)) over 64 images of 32x32x3 traces the same program as batch_size=2, one
    example the same as batch_size=25; on 8x8x3 images 64 examples get chunks of 8 points: the
    default really chunks, and equals all at once."""
    program = lambda e, *a: str(jax.make_jaxpr(e)(*a))
    ts = jnp.arange(64) % 3
    for size, vmapped, single in ((32, 2, 25), (8, 8, 50)):
        f = cnn_f(init_cnn(jax.random.key(0), size=size))
        xs = jax.random.normal(jax.random.key(1), (64, size, size, 3))
        ig = lambda **kw: jx.integrated_gradients(f, steps=50, **kw)
        assert program(jax.vmap(ig()), xs, ts) == program(jax.vmap(ig(batch_size=vmapped)), xs, ts)
        assert program(jax.vmap(ig()), xs, ts) != program(jax.vmap(ig(batch_size=50)), xs, ts)
        assert program(ig(), xs[0], ts[0]) == program(ig(batch_size=single), xs[0], ts[0])
    np.testing.assert_allclose(jax.jit(jax.vmap(ig()))(xs, ts),
                               jax.jit(jax.vmap(ig(batch_size=50)))(xs, ts), rtol=2e-4, atol=1e-6)


def test_path_integral_and_gradient_integral_equal_the_quadrature_sum(x64):
    f = cnn_f(init_cnn(jax.random.key(3), dtype=jnp.float64), "softplus")
    x = jax.random.normal(jax.random.key(4), (8, 8, 3), jnp.float64)
    path = _paths.straight_path("m", 0.1, x)
    opts = _paths.path_options("m", baseline=0.1, steps=6, method="gausslegendre", batch_size=4)
    grad = jax.jit(jax.grad(f), static_argnums=1)
    by_hand = sum(w * grad(path.start + a * path.delta, 2) for a, w in zip(opts.alphas, opts.weights))
    ours = jax.jit(lambda: _paths.path_integral(lambda p: grad(p, 2), path, opts.alphas, opts.weights,
                                                batch_size=4))()
    np.testing.assert_allclose(ours, by_hand, rtol=1e-12, atol=1e-14)
    # through the affine split (the first convolution is evaluated twice, not six times)
    split = jax.jit(lambda: _paths.gradient_integral(f, path, opts, (2,)))()
    np.testing.assert_allclose(split, by_hand, rtol=1e-10, atol=1e-13)
    points = jax.jit(lambda: _paths.path_map(jnp.sum, path, opts.alphas, batch_size=4))()
    np.testing.assert_allclose(points, [jnp.sum(path.start + a * path.delta) for a in opts.alphas])
