"""Why ``jx.compiler_options()``: explainers under XLA's defaults and with it.

jaxplain recommends for CPU ``xla_cpu_experimental_ynn_fusion_type=INDIVIDUAL_DOT`` (matrix
products in YNNPACK, convolutions in XLA's own Eigen kernels) and
``xla_cpu_scheduler_type=MEMORY_OPTIMIZED`` (see jaxplain/_compile.py). This script measures both,
timed in interleaved rounds; ``ratio`` is the median over rounds of (with options / defaults),
below 1 where the options are faster:

1. the batched input gradient ``jax.jit(jax.vmap(jax.grad(f)))`` of each model of this project;
2. integrated gradients and SmoothGrad of the gradient (50 points, ``batch_size`` 1 and 5) on the
   benchmark CNN, compiled with XLA's defaults, with the kernel option alone and with both; the
   config shows XLA's temporary buffer (``memory_analysis()``) and the page faults of one call;
3. a plain training step (softmax cross-entropy, ``jax.grad`` in the parameters, an Adam update) of
   the project's models, under the same three option sets: what the options cost or gain outside
   explanations, where jaxplain's import-time default (``jaxplain/_compile.py``) also applies.

Usage::

    python benchmarks/compile_options.py            # 15 rounds
    python benchmarks/compile_options.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import statistics
import sys

# "XLA defaults" rows are XLA's own: keep jaxplain from making its options the defaults at import
# (jaxplain/_compile.py); "+options" rows are what `import jaxplain` gives otherwise.
os.environ.setdefault("JAXPLAIN_XLA_DEFAULTS", "1")
HERE = pathlib.Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):  # benchmarks/ (this folder's helpers), the repo (tests/twins.py)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxplain as jx  # noqa: E402
from jaxplain import flax as jf  # noqa: E402
from jaxplain import zoo  # noqa: E402

from tests import twins  # noqa: E402
from gradients import _compile, _interleaved  # noqa: E402

FAMILY = "compile_options"


def _models():
    rng = np.random.default_rng(0)
    for ch, size, batch in [((16, 32, 32, 32), 32, 64), ((32, 64, 64, 128), 32, 32),
                            ((64, 128, 128, 256), 32, 16), ((16, 32, 32, 32), 64, 16)]:
        apply, params, _ = twins.make_twins(0, channels=ch, size=size)
        xs = jnp.asarray(rng.normal(size=(batch, size, size, 3)).astype(np.float32))
        yield f"twins CNN {ch} {size}px", twins.logit_fn(apply, params), xs
    for name, model, shape in [("zoo.VGG", zoo.VGG(classes=10), (32, 32, 3)),
                               ("zoo.ResNet", zoo.ResNet(classes=10), (32, 32, 3)),
                               ("zoo.MLP", zoo.MLP(classes=10), (784,))]:
        variables = model.init(jax.random.key(0), jnp.zeros((1,) + shape))
        xs = jnp.asarray(rng.normal(size=(64,) + shape).astype(np.float32))
        yield name, jf.from_linen(model, variables), xs


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", "--repeats", type=int, default=15, help="interleaved rounds")
    p.add_argument("--quick", action="store_true", help="3 rounds")
    a = p.parse_args(argv)
    rounds = 3 if a.quick else a.rounds
    options = jx.compiler_options()
    rows = []
    if not options:
        print(f"  [{FAMILY}] no options on backend {jax.default_backend()!r}", file=sys.stderr)
        return rows
    for name, f, xs in _models():
        ts = jnp.arange(xs.shape[0]) % 10
        calls = {o: _compile(jax.vmap(jax.grad(f)), (xs, ts), {}, options=opt)[0]
                 for o, opt in (("defaults", None), ("options", options))}
        timed = _interleaved(calls, rounds=rounds, pause=0.0)
        times = [timed["defaults"], timed["options"]]
        ratio = statistics.median(b / d for d, b in zip(*times))
        for label, t in (("XLA defaults", times[0]), ("jx.compiler_options()", times[1])):
            med = statistics.median(t)
            rows.append(dict(family=FAMILY, benchmark=f"gradient {name}", config=label,
                             time_s=med, n=rounds, images_per_s=xs.shape[0] / med,
                             ratio=ratio if t is times[1] else None,
                             ratio_of="x XLA defaults" if t is times[1] else None))
        print(f"  [{FAMILY}] {name:34s} {statistics.median(times[0]) * 1e3:7.2f} ms -> "
              f"{statistics.median(times[1]) * 1e3:7.2f} ms  ({ratio:.2f}x)", file=sys.stderr)
    rows += _chunked(options, rounds=max(3, rounds // 3))
    rows += _training(options, rounds=rounds)
    return rows


def _faults(call) -> int:
    """Minor page faults of one ``call()``."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    call()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _chunked(options: dict, *, rounds: int) -> list[dict]:
    """IG and SmoothGrad (many points, unrolled chunks) under three option sets."""
    apply, params, _ = twins.make_twins(0)
    f = twins.logit_fn(apply, params)
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(64, 32, 32, 3)).astype(np.float32))
    ts = jnp.arange(64) % 10
    keys = jax.random.split(jax.random.key(0), 64)
    kernels = {k: v for k, v in options.items() if k != "xla_cpu_scheduler_type"}
    sets = {"XLA defaults": None, "kernels only": kernels, "jx.compiler_options()": options}
    rows = []
    for k in (1, 5):
        for method, ex, kw in (
            ("IG", jx.integrated_gradients(f, steps=50, batch_size=k), {}),
            ("SmoothGrad", jx.smoothgrad(jx.gradient(f), samples=50, sigma=0.15, relative=False,
                                         batch_size=k), {"key": keys}),
        ):
            calls, notes = {}, {}
            for label, opt in sets.items():
                compiled = jax.jit(jax.vmap(ex), compiler_options=opt).lower(xs, ts, **kw).compile()
                temp = compiled.memory_analysis().temp_size_in_bytes
                calls[label] = lambda c=compiled, kw=kw: jax.block_until_ready(c(xs, ts, **kw))
                calls[label]()  # warm
                notes[label] = f"temp {temp / 2**20:.0f} MiB, {_faults(calls[label])} faults"
            timed = _interleaved(calls, rounds=rounds, pause=0.0)
            for label in sets:
                med = statistics.median(timed[label])
                ratio = statistics.median(
                    t / d for d, t in zip(timed["XLA defaults"], timed[label]))
                rows.append(dict(family=FAMILY, benchmark=f"{method} 50 pts, batch_size={k}",
                                 config=f"{label}: {notes[label]}", time_s=med, n=rounds,
                                 images_per_s=64 / med, ratio=ratio, ratio_of="x XLA defaults"))
                print(f"  [{FAMILY}] {method} batch_size={k} {label:22s} {med:6.3f} s "
                      f"({ratio:.2f}x)  {notes[label]}", file=sys.stderr)
    return rows


def _training(options: dict, *, rounds: int) -> list[dict]:
    """One training step of each model under XLA's defaults, the kernel option, both options."""
    import optax

    kernels = {k: v for k, v in options.items() if k != "xla_cpu_scheduler_type"}
    sets = {"XLA defaults": None, "kernels only": kernels, "jx.compiler_options()": options}
    rng = np.random.default_rng(1)
    rows = []
    for name, model, shape, batch in [("zoo.VGG", zoo.VGG(classes=10), (32, 32, 3), 128),
                                      ("zoo.ResNet", zoo.ResNet(classes=10), (32, 32, 3), 128),
                                      ("zoo.MLP", zoo.MLP(classes=10), (784,), 256)]:
        variables = model.init(jax.random.key(0), jnp.zeros((1,) + shape))
        tx = optax.adam(1e-3)
        opt_state = tx.init(variables["params"])
        xs = jnp.asarray(rng.normal(size=(batch,) + shape).astype(np.float32))
        ys = jnp.asarray(rng.integers(0, 10, batch))

        def step(params, opt_state, xs, ys, rest=variables):
            def loss(p):
                logits = model.apply({**rest, "params": p}, xs)
                return optax.softmax_cross_entropy_with_integer_labels(logits, ys).mean()

            g = jax.grad(loss)(params)
            updates, opt_state = tx.update(g, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        args = (variables["params"], opt_state, xs, ys)
        calls = {}
        for label, opt in sets.items():
            compiled = jax.jit(step, compiler_options=opt).lower(*args).compile()
            calls[label] = lambda c=compiled: jax.block_until_ready(c(*args))
            calls[label]()
        timed = _interleaved(calls, rounds=rounds, pause=0.0)
        for label in sets:
            med = statistics.median(timed[label])
            ratio = statistics.median(t / d for d, t in zip(timed["XLA defaults"], timed[label]))
            rows.append(dict(family=FAMILY, benchmark=f"training step {name}", config=label,
                             time_s=med, n=rounds, images_per_s=batch / med, ratio=ratio,
                             ratio_of="x XLA defaults"))
            print(f"  [{FAMILY}] training step {name:10s} {label:22s} {med * 1e3:7.2f} ms "
                  f"({ratio:.2f}x)", file=sys.stderr)
    return rows


if __name__ == "__main__":
    from run import environment, format_table

    rows = main()
    print(f"# {environment()}")
    print(format_table(rows))
