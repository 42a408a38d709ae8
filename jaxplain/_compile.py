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

The options are per executable (``jax.jit(..., compiler_options=)``): nothing global is changed.
JAX accepts compiler options only on a top-level ``jit`` (not on one nested in ``jit`` or
``vmap``), so explainers cannot carry them into the user's program, and explainers compile with
XLA's defaults: users pass :func:`compiler_options` to their own ``jax.jit``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["compiler_options"]

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


def compiler_options(backend: str | None = None) -> dict:
    """The XLA options jaxplain recommends for compiling explainers on ``backend`` (default: JAX's).

    Pass them to your own ``jax.jit`` around explainers; an empty dict where jaxplain keeps XLA's
    defaults (every backend but CPU). On CPU: XLA's own convolution kernels and its
    memory-optimized scheduler (see ``jaxplain/_compile.py`` for what each gains); an option this
    jaxlib does not know is left out.

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
