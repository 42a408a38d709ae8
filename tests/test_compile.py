"""XLA options (jaxplain._compile): jx.compiler_options(), per executable, for CPU only, changing
kernels, not results; the CPU defaults set at import, and what they keep right."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain import _compile
from tests.nets import cnn_f, convnet_features, convnet_head, init_cnn, init_convnet


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


# ----------------------------------------------------------------------------- XLA:CPU defaults


def test_import_makes_the_options_xla_cpu_defaults():
    """In this process (tests/conftest.py imports jaxplain before any JAX computation) the CPU
    options are in XLA_FLAGS, next to the flags that were there."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _compile._jaxlib_version() not in _compile.VERIFIED_JAXLIB:
        pytest.skip("jaxlib not verified: jaxplain leaves XLA_FLAGS alone")
    for k, v in _compile.CPU_OPTIONS.items():
        assert f"--{k}={v}" in flags
    assert "--xla_force_host_platform_device_count=8" in flags


def _fresh(code, **env):
    full = {**{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", _compile.OPT_OUT)}, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full)


@pytest.mark.skipif(_compile._jaxlib_version() not in _compile.VERIFIED_JAXLIB, reason="jaxlib not verified")
def test_the_user_keeps_the_last_word():
    show = "import os, jaxplain; print(os.environ.get('XLA_FLAGS', ''))"
    own = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
    out = _fresh(show, XLA_FLAGS=own).stdout.strip()
    assert out.count("xla_cpu_experimental_ynn_fusion_type") == 1 and "scheduler" in out
    assert _fresh(show, **{_compile.OPT_OUT: "1"}).stdout.strip() == ""
    late = _fresh("import warnings, jax.numpy as jnp; jnp.ones(2).sum()\n"
                  "with warnings.catch_warnings(record=True) as w:\n"
                  "    warnings.simplefilter('always'); import jaxplain\n"
                  "print(len([x for x in w if 'could not make its XLA:CPU options' in str(x.message)]))")
    assert late.stdout.strip() == ("1" if _compile._jaxlib_version() in _compile.AFFECTED_JAXLIB else "0")


def _conductance_case():
    p = init_convnet(0)
    features = lambda v: convnet_features(p, v)
    head = lambda a, t: convnet_head(p, a, t)
    x = jnp.arange(100, dtype=jnp.float32).reshape(10, 10, 1) / 10
    # the head is linear in relu3 with weights one: conductance is the change of each unit, exactly
    want = np.asarray(features(x) - features(jnp.zeros_like(x)))
    return features, head, x, want


def test_layer_conductance_at_300_steps_is_right_by_default():
    """jaxlib 0.10.2's XLA:CPU made this all zeros (301 points of a max pooling next to a dense
    layer of ones); benchmarks/xla_cpu_miscompile.py has the reduced case."""
    features, head, x, want = _conductance_case()
    cond = jx.layer_conductance(features=features, head=head, steps=300)
    np.testing.assert_allclose(cond(x, 1), want, rtol=1e-3, atol=1e-4)
    batched = jax.jit(jax.vmap(cond))(jnp.stack([x, 2 * x]), jnp.array([1, 3]))
    np.testing.assert_allclose(batched[0], want, rtol=1e-3, atol=1e-4)
    assert float(jnp.abs(batched).max()) > 1.0


def test_explainers_called_directly_are_right_even_with_xla_defaults():
    code = (
        "import jax.numpy as jnp, numpy as np, jaxplain as jx\n"
        "from tests.test_compile import _conductance_case\n"
        "features, head, x, want = _conductance_case()\n"
        "got = jx.layer_conductance(features=features, head=head, steps=300)(x, 1)\n"
        "print(float(np.max(np.abs(np.asarray(got) - want))))\n"
    )
    out = _fresh(code, **{_compile.OPT_OUT: "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip()) < 1e-3


@pytest.mark.skipif(_compile._jaxlib_version() not in _compile.VERIFIED_JAXLIB or os.environ.get(_compile.OPT_OUT) == "1",
                    reason="the examples show the defaults being set")
def test_doctests_run():
    import doctest

    assert doctest.testmod(_compile).failed == 0


def test_vmapped_size_counts_every_enclosing_vmap():
    """The product of the vmap axis sizes around the call, through jit, grad and nested vmaps;
    1 outside any vmap."""
    seen = []

    def f(x):
        seen.append(_compile.vmapped_size())
        return jnp.sin(x).sum()

    f(jnp.ones(3))
    jax.jit(jax.vmap(f))(jnp.ones((64, 3)))
    jax.vmap(jax.vmap(f))(jnp.ones((2, 8, 3)))
    jax.vmap(jax.grad(f))(jnp.ones((4, 3)))
    jax.grad(lambda x: jax.vmap(f)(x).sum())(jnp.ones((5, 3)))
    jax.vmap(lambda t, x: f(x) * t, in_axes=(0, None))(jnp.ones(7), jnp.ones(3))  # x unbatched
    assert seen == [1, 64, 16, 4, 5, 7]
