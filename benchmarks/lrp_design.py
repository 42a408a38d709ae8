"""Why LRP is a jaxpr interpreter and not Flax module interception: one run, both designs.

Both designs apply the same rules (``jaxplain._lrp.arithmetic.layer_backward``) through a
``jax.custom_vjp``; they differ in how they find the operations:

* **interception**: ``flax.linen.intercept_methods`` wraps every ``nn.Conv`` / ``nn.Dense`` call
  (the way hook-based libraries see a model: module by module). Functions that are not modules
  (``nn.relu``, ``nn.avg_pool``, ``jnp.mean``, the residual ``y + x``) keep their ordinary
  backward pass.
* **jaxpr** (what ``jaxplain.lrp`` does): every operation of the traced program gets a rule.

Measured on zoo.VGG and zoo.ResNet (bias-free, ReLU, LRP-0 on every layer, where relevance must
be conserved exactly): the conservation error ``|sum(R) - f(x)| / |f(x)|`` and the time of a
jitted, vmapped batch. Run: ``python benchmarks/lrp_design.py``.
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jaxplain as jx
from jaxplain import zoo
from jaxplain._interpret import with_backward
from jaxplain._lrp.arithmetic import layer_backward


def intercepted_lrp(f, rule):
    """LRP by module interception: ``rule`` on each nn.Conv / nn.Dense, nothing else changed."""

    busy = []  # the rule's own calls of the bare layer are not intercepted again

    def interceptor(next_fun, args, kwargs, context):
        m = context.module
        if busy or context.method_name != "__call__" or not isinstance(m, (nn.Conv, nn.Dense)):
            return next_fun(*args, **kwargs)
        x = args[0]
        params = m.variables["params"]
        w, b = params["kernel"], params.get("bias")
        bare = m.clone(use_bias=False, parent=None)
        def lin(xx, ww):
            busy.append(1)
            try:
                return bare.apply({"params": {"kernel": ww}}, xx)
            finally:
                busy.pop()

        def fn(x, w, *bias):
            z = lin(x, w)
            return z + bias[0] if bias else z

        def backward(a, z, r):
            x, w, *bias = a
            rin = layer_backward(rule, lin, x, w, bias[0] if bias else None, z, r, nonneg=False)
            return [rin, None] + [None] * len(bias)

        return with_backward(fn, backward, [x, w] + ([] if b is None else [b]))

    def explain(x, *args):
        def g(x):
            with nn.intercept_methods(interceptor):
                return f(x, *args)

        y, vjp = jax.vjp(g, x)
        return vjp(y)[0]

    return explain


def _zero_biases(variables):
    return jax.tree_util.tree_map_with_path(
        lambda path, a: jnp.zeros_like(a) if "bias" in jax.tree_util.keystr(path) else a, variables
    )


def _bench(fn, *args, repeats=7):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="a smoke run: batch 4, 16x16 inputs")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.size = 4, 16
    rows = []
    for name, model in (
        ("VGG (relu, avg_pool, GAP)", zoo.VGG(features=(16, 32), classes=10)),
        ("ResNet (relu, residual adds, GAP)", zoo.ResNet(features=(16, 32), classes=10)),
    ):
        v = model.init(jax.random.key(0), jnp.zeros((1, args.size, args.size, 3)))
        if "batch_stats" in v:  # no BatchNorm shift: keep the network bias-free
            v = {"params": v["params"], "batch_stats": jax.tree_util.tree_map(
                lambda a: jnp.zeros_like(a) if a.ndim else a, v["batch_stats"])}
        v = _zero_biases(v)
        if "batch_stats" in v:
            v["batch_stats"] = jax.tree_util.tree_map_with_path(
                lambda path, a: jnp.full_like(a, 1.0 - 1e-5) if "var" in jax.tree_util.keystr(path) else a,
                v["batch_stats"],
            )
            v["params"] = jax.tree_util.tree_map_with_path(
                lambda path, a: jnp.ones_like(a) if "scale" in jax.tree_util.keystr(path) else a, v["params"]
            )
        f = lambda x, t: model.apply(v, x[None])[0, t]
        xs = jax.random.uniform(jax.random.key(1), (args.batch, args.size, args.size, 3))
        ts = jnp.arange(args.batch) % 10
        fx = jax.vmap(f)(xs, ts)
        for design, ex in (
            ("jaxpr (jx.lrp)", jx.lrp(f, rules=jx.rules.zero)),
            ("module interception", intercepted_lrp(f, jx.rules.zero)),
        ):
            batched = jax.jit(jax.vmap(ex))
            first, t = _bench(batched, xs, ts)
            r = batched(xs, ts)
            err = float(jnp.max(jnp.abs(r.reshape(len(xs), -1).sum(1) - fx) / jnp.abs(fx)))
            rows.append((name, design, err, first, t))
        grad = jax.jit(jax.vmap(jax.grad(f)))
        rows.append((name, "gradient (reference)", float("nan"), *_bench(grad, xs, ts)))
    print(f"{'model':36s} {'design':22s} {'conservation err':>16s} {'compile+run s':>13s} {'run ms':>8s}")
    for name, design, err, first, t in rows:
        print(f"{name:36s} {design:22s} {err:16.2e} {first:13.2f} {1e3 * t:8.1f}")
    # rows for benchmarks/run.py's table: the time of one batch; ratio = the conservation error
    return [
        dict(family="lrp_design", benchmark=f"{name}: {design}", config=f"batch {args.batch}",
             compile_s=first, time_s=t, n=None, images_per_s=args.batch / t, ratio=err,
             ratio_of="|sum(R) - f(x)| / |f(x)|")
        for name, design, err, first, t in rows
    ]


if __name__ == "__main__":
    main()
