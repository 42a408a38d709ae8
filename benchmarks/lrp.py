"""Speed of LRP: ``jaxplain.lrp`` vs one batched gradient, and Zennit vs torch's gradient.

On two CNNs of tests/twins.py (32x32x3 input, 10 classes; ``--models``: ``a`` channels
16-32-32-32, ``b`` channels 32-32-64-64 with a 256-unit dense layer), batch ``--batch`` (64) of
standard normal images with per-example target classes. jax functions are compiled with
``jx.compiler_options()``, the CPU defaults ``import jaxplain`` sets (the README's setup):

* ``jax gradient (1 batch)``: ``jax.jit(jax.vmap(jax.grad(f)))(xs, ts)``, the unit of cost;
* ``jaxplain LRP``: ``jax.jit(jax.vmap(jx.lrp(f, rules=...)))(xs, ts)`` with
  ``jx.composites.epsilon_plus_flat()`` and ``jx.composites.epsilon_gamma_box(low, high)``
  (bounds: the batch's range rounded outwards to integers), as a ratio to the jax gradient;
* when torch and zennit import: the torch gradient of the same batch (``autograd.grad`` of the
  summed target logits), Zennit's ``Gradient`` attributor with ``EpsilonPlusFlat()`` and
  ``EpsilonGammaBox(low, high)`` (relevance started at the target logit, ``out * one_hot``; the
  composite is registered once, outside the timed calls), as a ratio to the torch gradient; and
  the jaxplain/Zennit speed ratio (Zennit's time / ours: above 1, jaxplain is faster). The
  ``parity`` rows give ``max |ours - Zennit| / max |Zennit|`` on the timed batch.

Timing: compiled ahead of time (``compile s``, not in the runs), one warm-up run each; the jax
rows are timed in ``3 * --repeats`` interleaved rounds (gradient, LRP, LRP, gradient, ...) and the
LRP/gradient ratio is the median of the per-round ratios, so machine noise cancels. Torch rows as
in gradients.py (median of ``--repeats`` runs, ``torch.set_num_threads(<cores>)``).

Usage::

    python benchmarks/lrp.py                # both CNNs, batch 64, 32x32, 5 repeats
    python benchmarks/lrp.py --quick        # a smoke run (batch 8, 16x16, 2 repeats)
    python benchmarks/lrp.py --no-zennit
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):  # benchmarks/ (this folder's helpers), the repo (tests/twins.py)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxplain as jx  # noqa: E402
from tests import twins  # noqa: E402
from gradients import MODEL_NAMES, MODELS, _compile, _cores, _measure  # noqa: E402
from gradients import _interleaved as interleaved  # noqa: E402

FAMILY = "lrp"
CLASSES = 10


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch", type=int, default=None, help="images per batch (default 64)")
    p.add_argument("--repeats", type=int, help="timed runs per configuration (default 5)")
    p.add_argument("--size", type=int, default=None, help="image side (default 32)")
    p.add_argument("--budget", type=float, help="seconds of timed runs per config (default 30)")
    p.add_argument("--models", default=None,
                   help="comma-separated: a (16-32-32-32), b (32-32-64-64 + dense 256); default a,b")
    p.add_argument("--no-zennit", action="store_true", help="skip the torch/Zennit rows")
    p.add_argument("--quick", action="store_true", help="batch 8, size 16, 2 repeats")
    a = p.parse_args(argv)
    quick = dict(batch=8, repeats=2, size=16, budget=5.0, models="a")
    full = dict(batch=64, repeats=5, size=32, budget=30.0, models="a,b")
    for name, value in (quick if a.quick else full).items():
        if getattr(a, name) is None:
            setattr(a, name, value)
    a.models = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in a.models if m not in MODELS]
    if unknown:
        p.error(f"unknown --models {unknown}; choose from {sorted(MODELS)}")
    return a


def _log(msg: str) -> None:
    print(f"  [{FAMILY}] {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> list[dict]:
    """Runs the benchmark; returns one dict per row (see benchmarks/run.py for the columns)."""
    a = parse_args(argv)
    rows: list[dict] = []
    for model in a.models:
        rows += _one_model(a, model)
    return rows


def _one_model(a, model: str) -> list[dict]:
    B = a.batch
    rows: list[dict] = []
    tag = f"[{model}] "

    def row(benchmark, config, *, compile_s=None, time_s=None, n=None, ratio=None, ratio_of=None):
        benchmark = tag + benchmark
        r = dict(family=FAMILY, benchmark=benchmark, config=config, compile_s=compile_s,
                 time_s=time_s, n=n, images_per_s=None if time_s is None else B / time_s,
                 ratio=ratio, ratio_of=ratio_of)
        rows.append(r)
        _log(f"{benchmark:<26} {config:<30} "
             + (f"{time_s:8.4f} s  {B / time_s:9.1f} img/s" if time_s is not None else "")
             + (f"  {ratio:.3g} {ratio_of}" if ratio is not None else ""))
        return r

    apply, params, module = twins.make_twins(0, act="relu", size=a.size, **MODELS[model])
    f = twins.logit_fn(apply, params)
    rng = np.random.default_rng(0)
    xs_np = rng.standard_normal((B, a.size, a.size, 3)).astype(np.float32)
    ts_np = rng.integers(0, CLASSES, B)
    xs, ts = jnp.asarray(xs_np), jnp.asarray(ts_np)
    low, high = float(np.floor(xs_np.min())), float(np.ceil(xs_np.max()))
    _log(f"{MODEL_NAMES[model]}: batch {B}, {a.size}x{a.size}x3, z^B bounds [{low:g}, {high:g}]")
    timing = dict(repeats=a.repeats, budget=a.budget)

    composites = {
        "EpsilonPlusFlat": jx.composites.epsilon_plus_flat(),
        "EpsilonGammaBox": jx.composites.epsilon_gamma_box(low=low, high=high),
    }
    fns = {"gradient": jax.vmap(jax.grad(f))}
    fns.update({name: jax.vmap(jx.lrp(f, rules=rules)) for name, rules in composites.items()})
    compile_s, times = _interleaved(fns, (xs, ts), repeats=3 * a.repeats)
    t_grad = float(np.median(times["gradient"]))
    n = len(times["gradient"])
    row("jax gradient (1 batch)", f"{B} img", compile_s=compile_s["gradient"], time_s=t_grad, n=n)
    ours, ours_time = {}, {}
    for name in composites:
        t = float(np.median(times[name]))
        # the ratio: median over rounds of (LRP / gradient) timed back to back
        ratio = float(np.median(np.asarray(times[name]) / np.asarray(times["gradient"])))
        row("jaxplain LRP", name, compile_s=compile_s[name], time_s=t, n=n, ratio=ratio,
            ratio_of="x jax gradient")
        ours[name] = np.asarray(jax.jit(fns[name])(xs, ts))
        ours_time[name] = t

    if not a.no_zennit:
        try:
            from tests.resnet_twins import import_zennit

            import_zennit()
        except ImportError as e:
            _log(f"skipping the Zennit rows: {e}")
        else:
            _zennit(a, module, xs_np, ts_np, low, high, ours=ours, ours_time=ours_time, row=row,
                    timing=timing)
    return rows


def _interleaved(fns: dict, args: tuple, *, repeats: int):
    """Compiles each function, then times them in rounds (one run of each per round), so that a
    noisy machine slows all of them alike; returns ({name: compile s}, {name: [seconds per round]})."""
    calls, compile_s = {}, {}
    for name, fn in fns.items():
        calls[name], compile_s[name] = _compile(fn, args, {}, options=jx.compiler_options())
    return compile_s, interleaved(calls, rounds=repeats, pause=0.0)


def _zennit(a, module, xs_np, ts_np, low, high, *, ours, ours_time, row, timing) -> None:
    import torch
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat

    B = a.batch
    torch.set_num_threads(_cores())
    x = torch.from_numpy(twins.nhwc_to_nchw(xs_np))
    t = torch.from_numpy(ts_np)
    one_hot = torch.eye(CLASSES)[t]

    def grad_once():
        xg = x.clone().requires_grad_(True)
        out = module(xg).gather(1, t[:, None]).sum()
        (g,) = torch.autograd.grad(out, xg)
        return g

    t_grad, n = _measure(grad_once, **timing)
    row("torch gradient (1 batch)", f"{B} img, {torch.get_num_threads()} threads", time_s=t_grad,
        n=n)
    composites = {
        "EpsilonPlusFlat": lambda: EpsilonPlusFlat(),
        "EpsilonGammaBox": lambda: EpsilonGammaBox(low=torch.tensor(low), high=torch.tensor(high)),
    }
    for name, make in composites.items():
        with Gradient(model=module, composite=make()) as attributor:
            _, relevance = attributor(x, lambda out: out * one_hot)
            med, n = _measure(lambda: attributor(x, lambda out: out * one_hot), **timing)
        row("Zennit LRP", name, time_s=med, n=n, ratio=med / t_grad, ratio_of="x torch gradient")
        theirs = twins.nchw_to_nhwc(relevance)
        diff = float(np.abs(ours[name] - theirs).max() / np.abs(theirs).max())
        row("parity", f"{name}: max|diff| / max|Zennit|", ratio=diff, ratio_of="relative")
        row("speed", f"{name}: Zennit time / jaxplain time", ratio=med / ours_time[name],
            ratio_of="jaxplain/Zennit img/s")
        if not math.isfinite(diff) or diff > 1e-3:
            _log(f"WARNING: {name} relevances differ from Zennit's by {diff:.3g} of their maximum")


if __name__ == "__main__":
    from run import environment, format_table

    rows = main()
    print(f"# {environment()}")
    print(format_table(rows))
