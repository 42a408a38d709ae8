"""jx.compiler_options(): per-executable XLA options, for CPU only, that change kernels, not results."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxplain as jx
from jaxplain import _compile
from tests.nets import cnn_f, init_cnn


def test_options_are_for_cpu_only():
    assert jx.compiler_options("gpu") == {}
    assert jx.compiler_options("tpu") == {}
    cpu = jx.compiler_options("cpu")
    assert cpu in ({}, _compile.CPU_OPTIONS)  # {} only on a jaxlib that lacks the option
    if jax.default_backend() == "cpu":
        assert jx.compiler_options() == cpu
    cpu["mutated"] = 1  # a copy: the caller cannot change what jaxplain uses
    assert "mutated" not in jx.compiler_options("cpu")


def test_options_change_kernels_not_results():
    f = cnn_f(init_cnn(jax.random.key(0)))
    ex = jax.vmap(jx.integrated_gradients(f, steps=8))
    xs = jax.random.normal(jax.random.key(1), (3, 8, 8, 3))
    ts = jnp.array([0, 1, 2])
    tuned = jax.jit(ex, compiler_options=jx.compiler_options())(xs, ts)
    plain = jax.jit(ex)(xs, ts)
    np.testing.assert_allclose(tuned, plain, rtol=1e-4, atol=1e-6 * float(jnp.abs(plain).max()))


def test_an_unknown_option_is_detected_not_raised(monkeypatch):
    monkeypatch.setattr(_compile, "CPU_OPTIONS", {"xla_cpu_no_such_option_exists": "1"})
    _compile._cpu_options_supported.cache_clear()
    try:
        assert jx.compiler_options("cpu") == {}
    finally:
        monkeypatch.undo()
        _compile._cpu_options_supported.cache_clear()
    assert jx.compiler_options("cpu") in ({}, _compile.CPU_OPTIONS)
