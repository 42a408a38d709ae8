"""Speed of activation maximization: many units in one batched call vs one call per unit, and the
per-step cost vs one batched forward + backward pass (the floor).

Model: the demo CNN, ``jaxplain.zoo.VGG(features=(16, 32))`` on 32x32x3 inputs (random weights:
the speed does not depend on training), objective ``jx.objectives.channel(f, "stage1")``; the
defaults of ``jx.activation_maximization`` (Fourier parametrization, decorrelated colour, Lucid's
standard transforms, Adam).

* ``batched``: ``render(key, jnp.arange(U))``, U units (``--units``, 16) x ``--steps`` (256);
* ``sequential``: ``render(key, u)`` for each unit in turn (compiled once for a scalar unit);
* ``floor``: ``jax.jit(jax.vmap(jax.grad(objective)))`` on U images: one forward + backward of the
  same batch; the batched call's per-step time is reported as a ratio to it, with and without the
  robustness transforms (``transforms=None``), which cost resampling work of their own.

Usage::

    python benchmarks/featurevis.py            # 16 units, 256 steps
    python benchmarks/featurevis.py --quick    # 4 units, 32 steps
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jaxplain as jx  # noqa: E402
from jaxplain import zoo  # noqa: E402
from gradients import _measure  # noqa: E402

FAMILY = "featurevis"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", type=int, default=None, help="units rendered together (default 16)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default 256)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each row")
    p.add_argument("--quick", action="store_true", help="4 units, 32 steps")
    a = p.parse_args(argv)
    a.units = a.units or (4 if a.quick else 16)
    a.steps = a.steps or (32 if a.quick else 256)
    return a


def _log(msg: str) -> None:
    print(f"  [{FAMILY}] {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> list[dict]:
    a = parse_args(argv)
    U, S, rows = a.units, a.steps, []

    def row(benchmark, config, time_s, ratio=None, ratio_of=None, n=None):
        rows.append(dict(family=FAMILY, benchmark=benchmark, config=config, compile_s=None, time_s=time_s,
                         n=n, images_per_s=None, ratio=ratio, ratio_of=ratio_of))
        _log(f"{benchmark:<28} {config:<30} {time_s:9.4f} s" + (f"  {ratio:.3g} {ratio_of}" if ratio else ""))

    model = zoo.VGG(features=(16, 32), classes=4)
    v = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    f = lambda x: model.apply(v, x[None])[0, 0]
    obj = jx.objectives.channel(f, "stage1")
    key, units = jax.random.key(0), jnp.arange(U)
    timing = dict(repeats=a.repeats, budget=600.0)
    per_step = {}
    for label, transforms in (("standard transforms", "standard"), ("no transforms", None)):
        render = jx.activation_maximization(obj, shape=(32, 32, 3), steps=S, transforms=transforms,
                                            progress=False)
        t0 = time.perf_counter()
        jax.block_until_ready(render(key, units))  # compiles
        _log(f"compile + first run ({label}): {time.perf_counter() - t0:.1f} s")
        t_batch, n = _measure(lambda: jax.block_until_ready(render(key, units)), **timing)
        row("batched", f"{U} units x {S} steps, {label}", t_batch, n=n)
        per_step[label] = t_batch / S
        if transforms is not None:
            jax.block_until_ready(render(key, 0))
            t_seq, n = _measure(lambda: [jax.block_until_ready(render(key, u)) for u in range(U)],
                                repeats=1, budget=600.0)
            row("sequential", f"{U} calls x {S} steps, {label}", t_seq, ratio=t_seq / t_batch,
                ratio_of="x batched (speed-up)", n=n)
    images = jax.random.uniform(jax.random.key(1), (U, 32, 32, 3))
    floor = jax.jit(jax.vmap(jax.grad(lambda x, u: obj(x, u))))
    jax.block_until_ready(floor(images, units))
    t_floor, n = _measure(lambda: jax.block_until_ready(floor(images, units)), repeats=50, budget=30.0)
    row("floor: fwd+bwd of the batch", f"{U} images", t_floor, n=n)
    for label, t in per_step.items():
        row("per step", label, t, ratio=t / t_floor, ratio_of="x floor")
    return rows


if __name__ == "__main__":
    from run import environment, format_table

    rows = main()
    print(f"# {environment()}")
    print(format_table(rows))
