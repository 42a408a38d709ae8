"""XLA options for compiling explanations: :func:`compiler_options`, per backend.

On CPU, jaxplain recommends two XLA options (``python benchmarks/compile_options.py`` measures
them on the models of this project):

* convolutions in XLA's own (Eigen) kernels instead of the experimental YNNPACK fusions the jaxlib
  default routes them to (matrix products keep YNNPACK): the batched input gradient of the CNNs of
  ``benchmarks/`` took 0.56-0.92x the time that way;
* XLA's memory-optimized scheduler. Explainers that evaluate ``f`` at many points (integrated
  gradients, SmoothGrad, ...) unroll their chunks of points into one program; XLA's default CPU
  schedule keeps the chunks' activations alive side by side (812 MiB of temporaries for 50 chunks
  of 64 images of the benchmark CNN), and every run pays the page faults of that fresh allocation
  (210,000 per call). The memory-optimized schedule runs chunk after chunk (226 MiB), and
  integrated gradients took 0.82-0.91x, SmoothGrad 0.70-0.95x the time of the kernel option alone.

They are also right where XLA's default is wrong: jaxlib 0.10.2's CPU backend (not 0.10.1 or
earlier) miscompiles a reduction fused with a matrix product whose other operand is a uniform
constant (a ones-initialized dense layer, a mean written as ``x @ jnp.ones(...)``) once the
reduction covers 1,024 values or more: ``jnp.max(h, axis=1) @ jnp.ones((4, 8))`` on ``h`` of shape
(256, 4, 4) is off by 29, layer conductance on Captum's ``BasicModel_ConvNet`` comes out all zeros
(``python benchmarks/xla_cpu_miscompile.py``). With the kernel option every value is right.

So jaxplain makes them the CPU defaults, in two places:

* at ``import jaxplain``, before JAX's CPU backend starts, :func:`set_cpu_defaults` appends them
  to ``XLA_FLAGS`` (for every program of the process, the user's own ``jax.jit`` included; a
  plain training step of the project's models ran at 0.92-1.00x the time with them,
  ``benchmarks/compile_options.py``). It leaves alone a flag the user set, a jaxlib whose XLA
  has not been checked to know the flags (an unknown flag in ``XLA_FLAGS`` aborts the process),
  and everything when ``JAXPLAIN_XLA_DEFAULTS=1`` (keep XLA's defaults). If the backend already
  started, it cannot act; on an affected jaxlib it warns.
* explainers called directly (not inside the user's ``jit``/``vmap``/``grad``) compile with
  :func:`compiler_options` (per executable).

Inside the user's ``jax.jit`` the user's compile decides: JAX accepts compiler options only on a
top-level ``jit``, so pass :func:`compiler_options` there if the import-time defaults are off.
"""

from __future__ import annotations

import functools
import os
import warnings

import jax
import jax.numpy as jnp

__all__ = ["compiler_options", "set_cpu_defaults", "at_top_level", "vmapped_size"]

#: Set to "1" to keep XLA's defaults (jaxplain then changes no XLA flag at import).
OPT_OUT = "JAXPLAIN_XLA_DEFAULTS"
# jaxlib releases whose XLA:CPU was checked to know both flags (0.8.3 aborts on the scheduler's).
VERIFIED_JAXLIB = ("0.9.2", "0.10.0", "0.10.1", "0.10.2")
# jaxlib releases known to miscompile without the kernel option (benchmarks/xla_cpu_miscompile.py:
# 0.8.3, 0.9.0, 0.9.2, 0.10.0 and 0.10.1 are right).
AFFECTED_JAXLIB = ("0.10.2",)

CPU_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
}


@functools.lru_cache(maxsize=None)
def _cpu_option_supported(name: str, value: str) -> bool:
    """Whether this jaxlib knows one option (they are experimental): one tiny compile, once."""
    conv = lambda x: jax.lax.conv(x, jnp.ones((1, 1, 1, 1), x.dtype), (1, 1), "SAME")
    try:
        jax.jit(conv, compiler_options={name: value}).lower(jnp.ones((1, 1, 2, 2))).compile()
    except Exception:  # an unknown option or value is an XLA error (INVALID_ARGUMENT)
        return False
    return True


def _jaxlib_version() -> str:
    try:
        import jaxlib.version

        return jaxlib.version.__version__
    except Exception:  # pragma: no cover - jaxlib always has it
        return "unknown"


def _backends_started() -> bool | None:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # pragma: no cover - private API moved: cannot tell
        return None


def set_cpu_defaults() -> str:
    """Puts jaxplain's CPU options into ``XLA_FLAGS`` before JAX's CPU backend starts.

    Called once by ``import jaxplain``. Returns what it did: ``"set"``, ``"kept"`` (every flag
    was already in ``XLA_FLAGS``), ``"opted out"`` (``JAXPLAIN_XLA_DEFAULTS=1``), ``"unverified
    jaxlib X"``, or ``"too late"`` (the backend had started; on an affected jaxlib this warns).

    Example:
      >>> import os, jaxplain  # importing jaxplain called it, before JAX's CPU backend started
      >>> from jaxplain import _compile
      >>> _compile.set_cpu_defaults()  # now the flags are in XLA_FLAGS (or were opted out of)
      'kept'

    References:
      XLA's flags (``XLA_FLAGS``, ``xla/debug_options_flags.cc``), https://openxla.org/xla.
    """
    if os.environ.get(OPT_OUT, "") not in ("", "0"):
        return "opted out"
    version = _jaxlib_version()
    if version not in VERIFIED_JAXLIB:
        return f"unverified jaxlib {version}"
    flags = os.environ.get("XLA_FLAGS", "")
    missing = [f"--{k}={v}" for k, v in CPU_OPTIONS.items() if f"--{k}=" not in flags]
    if not missing:
        return "kept"
    if _backends_started():
        if version in AFFECTED_JAXLIB and jax.default_backend() == "cpu":
            warnings.warn(
                f"jaxplain: JAX's CPU backend started before jaxplain was imported, so jaxplain "
                f"could not make its XLA:CPU options the default. jaxlib {version} miscompiles a "
                f"reduction next to a matrix product with a uniform constant operand (e.g. layer "
                f"conductance of a model with a ones-initialized dense layer; see "
                f"benchmarks/xla_cpu_miscompile.py). Import jaxplain before running JAX code, or "
                f"compile with jax.jit(..., compiler_options=jaxplain.compiler_options()). "
                f"Explainers called directly are not affected.",
                stacklevel=3,
            )
        return "too late"
    os.environ["XLA_FLAGS"] = " ".join([flags, *missing]).strip()
    return "set"


def at_top_level() -> bool:
    """Whether no JAX transformation is being traced (so a ``jit`` may carry compiler options)."""
    try:
        from jax._src import core

        return bool(core.trace_ctx.is_top_level())
    except Exception:  # pragma: no cover - private API moved: stay on the safe side
        return False


def vmapped_size() -> int:
    """The number of examples traced at once: the product of the enclosing ``vmap`` axis sizes.

    1 outside any ``vmap``. It reads JAX's trace stack (every ``vmap`` around the call, including
    one outside a ``jit`` that traces here; not one applied to an already traced ``jit``), so it
    only tunes speed: a wrong guess costs time, never a value.
    """
    try:
        from jax._src import core

        trace = core.trace_ctx.trace
    except Exception:  # pragma: no cover - private API moved: assume one example
        return 1
    size, seen = 1, 0
    while trace is not None and seen < 1000:
        n = getattr(getattr(trace, "axis_data", None), "size", None)
        if isinstance(n, int) and n > 0:
            size *= n
        trace, seen = getattr(trace, "parent_trace", None), seen + 1
    return size


def compiler_options(backend: str | None = None) -> dict:
    """The XLA options jaxplain recommends for compiling explainers on ``backend`` (default: JAX's).

On CPU: XLA's own convolution kernels and its memory-optimized scheduler (see
    ``jaxplain/_compile.py`` for what each gains, and the miscompile the first avoids); an option
    this jaxlib does not know is left out. Elsewhere an empty dict (XLA's defaults). ``import
    jaxplain`` makes them the process's CPU defaults when it can (:func:`set_cpu_defaults`); pass
    them to your own ``jax.jit`` where it could not (JAX ran first, ``JAXPLAIN_XLA_DEFAULTS=1``).

    Args:
      backend: ``"cpu"``, ``"gpu"``, ``"tpu"``; ``None`` for ``jax.default_backend()``.

    Returns:
      A dict of XLA debug options, for ``jax.jit(fn, compiler_options=...)``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> explain = jx.integrated_gradients(lambda v: jnp.sum(jnp.tanh(v)), steps=8)
      >>> fast = jax.jit(jax.vmap(explain), compiler_options=jx.compiler_options())
      >>> fast(jnp.ones((4, 3))).shape
      (4, 3)

    References:
      XLA's CPU backend options (``DebugOptions`` in ``xla/xla.proto``), https://openxla.org/xla.
    """
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu":
        return {}
    return {k: v for k, v in CPU_OPTIONS.items() if _cpu_option_supported(k, v)}
