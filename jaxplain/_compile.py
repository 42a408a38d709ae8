"""XLA options for compiling explanations: :func:`compiler_options`, per backend.

On CPU, jaxplain recommends running convolutions with XLA's own (Eigen) kernels instead of the
experimental YNNPACK fusions the jaxlib default routes them to (matrix products keep YNNPACK): on
the CNNs of ``benchmarks/`` the batched input gradient took 0.61-0.92x the time that way
(``python benchmarks/compile_options.py``). The options are per executable
(``jax.jit(..., compiler_options=)``): nothing global is changed. JAX accepts compiler options only
on a top-level ``jit`` (not on one nested in ``jit`` or ``vmap``), so explainers cannot carry them
into the user's program, and explainers compile with XLA's defaults: users pass
:func:`compiler_options` to their own ``jax.jit``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["compiler_options"]

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.lru_cache(maxsize=None)
def _cpu_options_supported() -> bool:
    """Whether this jaxlib knows the options (they are experimental): one tiny compile, once."""
    conv = lambda x: jax.lax.conv(x, jnp.ones((1, 1, 1, 1), x.dtype), (1, 1), "SAME")
    try:
        jax.jit(conv, compiler_options=CPU_OPTIONS).lower(jnp.ones((1, 1, 2, 2))).compile()
    except Exception:  # an unknown option or value is an XLA error (INVALID_ARGUMENT)
        return False
    return True


def compiler_options(backend: str | None = None) -> dict:
    """The XLA options jaxplain compiles its explainers with on ``backend`` (default: JAX's).

    Pass them to your own ``jax.jit`` around explainers to get the same kernels there; an empty
    dict where jaxplain keeps XLA's defaults (every backend but CPU, or a jaxlib without the
    options).

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
    if backend != "cpu" or not _cpu_options_supported():
        return {}
    return dict(CPU_OPTIONS)
