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
    assert cpu.items() <= _compile.CPU_OPTIONS.items()  # less only on a jaxlib lacking options
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


def test_an_unknown_option_is_left_out_not_raised(monkeypatch):
    known = jx.compiler_options("cpu")
    bad = {"xla_cpu_no_such_option_exists": "1", "xla_cpu_scheduler_type": "NO_SUCH_SCHEDULER"}
    monkeypatch.setattr(_compile, "CPU_OPTIONS", {**_compile.CPU_OPTIONS, **bad})
    try:
        got = jx.compiler_options("cpu")
    finally:
        monkeypatch.undo()
    assert "xla_cpu_no_such_option_exists" not in got
    assert got.get("xla_cpu_scheduler_type") != "NO_SUCH_SCHEDULER"
    assert {k: v for k, v in known.items() if k != "xla_cpu_scheduler_type"}.items() <= got.items()
    assert jx.compiler_options("cpu") == known
