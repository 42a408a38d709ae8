"""A miscompile of XLA:CPU (jaxlib 0.10.2), reduced, and what avoids it: one run, both settings.

A reduction fused with a matrix product whose other operand is a uniform constant (all entries
equal: a ones-initialized dense layer closed over by the function, a mean written as
``x @ jnp.ones(...)``) is wrong once the reduction covers 1,024 values or more, in float32 and
float64. The same programs with the weights passed as arguments, with random weights, or compiled
with ``xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT`` (part of
``jx.compiler_options()``) are right. Checked on jaxlib 0.8.3, 0.9.0, 0.9.2, 0.10.0, 0.10.1 (right)
and 0.10.2 (wrong).

The last case is what users met: layer conductance at relu3 of Captum's ``BasicModel_ConvNet``
(max pooling, then a dense layer of ones) with 300 steps, all zeros where the reference is
``A(x) - A(0)``.

This script keeps XLA's defaults for itself (``JAXPLAIN_XLA_DEFAULTS=1`` before jaxplain is
imported), so that ``defaults`` below are XLA's and ``safe`` is ``jx.compiler_options()``.

Usage::

    python benchmarks/xla_cpu_miscompile.py
"""

from __future__ import annotations

import os
import pathlib
import sys

os.environ["JAXPLAIN_XLA_DEFAULTS"] = "1"  # see the module's notes; must precede import jaxplain
HERE = pathlib.Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):  # benchmarks/, the repo (tests/nets.py)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxlib.version  # noqa: E402
import numpy as np  # noqa: E402

import jaxplain as jx  # noqa: E402

from tests.nets import convnet_features, convnet_head, init_convnet  # noqa: E402

FAMILY = "xla_cpu_miscompile"


def _cases():
    rng = np.random.default_rng(0)
    ones = jnp.ones((4, 8), jnp.float32)
    for n, k in ((255, 4), (256, 4), (1000, 2)):
        h = rng.uniform(0, 10, (n, k, 4)).astype(np.float32)
        ref = h.astype(np.float64).max(axis=1) @ np.ones((4, 8))
        yield f"max(h, axis=1) @ ones, h {h.shape}", lambda v: jnp.max(v, axis=1) @ ones, (h,), ref
    h = rng.uniform(-3, 3, (1024, 4)).astype(np.float32)
    yield "sum(h @ ones, axis=0), h (1024, 4)", lambda v: jnp.sum(v @ ones, axis=0), (h,), (
        h.astype(np.float64) @ np.ones((4, 8))).sum(0)
    w = rng.normal(size=(4, 8)).astype(np.float32)
    wj = jnp.asarray(w)
    h = rng.uniform(0, 10, (256, 4, 4)).astype(np.float32)
    yield "max(h, axis=1) @ random W (control)", lambda v: jnp.max(v, axis=1) @ wj, (h,), (
        h.astype(np.float64).max(axis=1) @ w.astype(np.float64))
    p = init_convnet(0)
    features = lambda v: convnet_features(p, v)
    cond = jx.layer_conductance(features=features, head=lambda a, t: convnet_head(p, a, t), steps=300)
    x = jnp.arange(100, dtype=jnp.float32).reshape(10, 10, 1) / 10
    ref = np.asarray(features(x) - features(jnp.zeros_like(x)))[None]
    yield ("layer_conductance, ConvNet relu3, 300 steps", jax.vmap(cond), (x[None], jnp.array([1])), ref)


def main(argv=None) -> list[dict]:
    safe = jx.compiler_options()
    rows = []
    print(f"  [{FAMILY}] jax {jax.__version__}, jaxlib {jaxlib.version.__version__}, "
          f"backend {jax.default_backend()}", file=sys.stderr)
    for name, fn, args, ref in _cases():
        scale = float(np.max(np.abs(ref)))
        for label, options in (("defaults", None), ("safe", safe)):
            out = np.asarray(jax.jit(fn, compiler_options=options)(*args))
            err = float(np.max(np.abs(out - ref)))
            rows.append(dict(family=FAMILY, benchmark=name, config=f"XLA {label}", ratio=err / scale,
                             ratio_of="max |error| / max |reference|"))
            print(f"  [{FAMILY}] {name:46s} {label:8s} max |error| {err:9.3g}  (reference up to "
                  f"{scale:.3g})", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
