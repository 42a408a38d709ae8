"""Speed of occlusion: jaxplain vs Captum on the benchmark CNN, and vs the floor (one batched
forward pass of the same number of perturbed inputs).

Model: the benchmark CNN of ``tests/twins.py`` (32x32x3, conv 16-32-32-32, two average poolings,
10 classes), identical weights in JAX and torch; 8 uniform images with per-example targets;
window 4x4 over all 3 channels, stride 2: 15 x 15 = 225 windows per image, 1,800 forward passes.

* ``jaxplain occlusion``: ``jax.jit(jax.vmap(jx.occlusion(f, window=(4, 4, 3), stride=(2, 2, 3),
  batch_size=B)))``, ``B`` perturbed inputs per evaluation (``--batch-size``, default 64, and the
  automatic choice);
* ``floor``: ``jax.jit(jax.vmap(f))`` on the 1,800 perturbed inputs, built beforehand;
* ``Captum Occlusion``: ``Occlusion(module).attribute(..., perturbations_per_eval=P)`` with P = 1
  (Captum's default) and 64.

Usage::

    python benchmarks/perturbation.py
    python benchmarks/perturbation.py --quick   # 2 images, 16x16
"""

from __future__ import annotations

import argparse
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxplain as jx  # noqa: E402
from gradients import _cores, _measure  # noqa: E402
from tests import twins  # noqa: E402

FAMILY = "perturbation"


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    n, size = (2, 16) if a.quick else (8, 32)
    rows = []

    def row(benchmark, config, t, ratio=None, ratio_of=None, count=None):
        rows.append(dict(family=FAMILY, benchmark=benchmark, config=config, compile_s=None, time_s=t, n=count,
                         images_per_s=n / t, ratio=ratio, ratio_of=ratio_of))
        print(f"  [{FAMILY}] {benchmark:<26} {config:<28} {t:8.4f} s  {n / t:8.1f} img/s"
              + (f"  {ratio:.3g} {ratio_of}" if ratio else ""), file=sys.stderr, flush=True)

    apply, params, module = twins.make_twins(0, size=size)
    f = lambda x, t: apply(params, x[None])[0, t]
    rng = np.random.default_rng(0)
    xs_np = rng.uniform(size=(n, size, size, 3)).astype(np.float32)
    ts_np = rng.integers(0, 10, n)
    xs, ts = jnp.asarray(xs_np), jnp.asarray(ts_np)
    window, stride = (4, 4, 3), (2, 2, 3)
    timing = dict(repeats=a.repeats, budget=60.0)
    ours = {}
    for bs in (a.batch_size, None):
        ex = jax.jit(jax.vmap(jx.occlusion(f, window=window, stride=stride, batch_size=bs)))
        jax.block_until_ready(ex(xs, ts))
        t, k = _measure(lambda: jax.block_until_ready(ex(xs, ts)), **timing)
        ours[bs] = (t, np.asarray(ex(xs, ts)))
        row("jaxplain occlusion", f"batch_size={bs}", t, count=k)
    # the floor: every perturbed input, built beforehand, in one batched forward per image
    k_windows = ((size - 4) // 2 + 1) ** 2
    starts = [(i * 2, j * 2) for i in range((size - 4) // 2 + 1) for j in range((size - 4) // 2 + 1)]
    masks = np.zeros((k_windows, size, size, 1), np.float32)
    for k, (i, j) in enumerate(starts):
        masks[k, i:i + 4, j:j + 4] = 1
    pert = jnp.asarray(xs_np[:, None] * (1 - masks[None]))  # (n, K, H, W, 3), baseline 0
    floor = jax.jit(jax.vmap(jax.vmap(f, in_axes=(0, None))))
    jax.block_until_ready(floor(pert, ts))
    t_floor, k = _measure(lambda: jax.block_until_ready(floor(pert, ts)), **timing)
    row("floor: batched forward", f"{n * k_windows} perturbed inputs", t_floor, count=k)
    for bs, (t, _) in ours.items():
        row("jaxplain / floor", f"batch_size={bs}", t, ratio=t / t_floor, ratio_of="x floor")
    if module is not None:
        import torch
        from captum.attr import Occlusion

        torch.set_num_threads(_cores())
        x_t = torch.from_numpy(np.ascontiguousarray(twins.nhwc_to_nchw(xs_np)))
        t_t = torch.from_numpy(ts_np)
        for ppe in (1, 64):
            call = lambda: Occlusion(module).attribute(x_t, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2),
                                                       baselines=0.0, target=t_t, perturbations_per_eval=ppe)
            t_c, k = _measure(call, repeats=max(1, a.repeats // 2), budget=60.0)
            best = min(t for t, _ in ours.values())
            row("Captum Occlusion", f"perturbations_per_eval={ppe}", t_c, ratio=t_c / best,
                ratio_of="x jaxplain's time (speed-up)", count=k)
        theirs = twins.nchw_to_nhwc(call().detach().numpy())
        diff = float(np.abs(ours[a.batch_size][1] - theirs).max() / np.abs(theirs).max())
        rows.append(dict(family=FAMILY, benchmark="parity", config="max|ours - Captum| / max|Captum|",
                         compile_s=None, time_s=None, n=None, images_per_s=None, ratio=diff, ratio_of="relative"))
    return rows


if __name__ == "__main__":
    from run import environment, format_table

    rows = main()
    print(f"# {environment()}")
    print(format_table(rows))
