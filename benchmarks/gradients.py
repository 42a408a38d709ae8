"""Speed of the gradient family: integrated gradients and SmoothGrad vs their floor and Captum.

On the 4-conv CNN of tests/twins.py (32x32x3 input, channels 16-32-32-32, 10 classes),
batch ``--batch`` (64) and ``--steps`` (50) path points / noise samples, in two phases:

1. Sweep (each configuration timed on its own): one batched gradient
   ``jax.jit(jax.vmap(jax.grad(f)))(xs, ts)`` (and at larger batches); integrated gradients
   ``jax.jit(jax.vmap(jx.integrated_gradients(f, steps=S, batch_size=k)))(xs, ts)`` and SmoothGrad
   of the gradient (``samples=S, relative=False, sigma=0.15``) for each ``k`` of ``--sweep``, as
   time / floor (floor = ``S`` x one batched gradient: the work both must do); each row says how
   the chunks run (unrolled, or a ``lax.scan`` past ``jaxplain._paths.MAX_UNROLLED_CHUNKS``);
   when torch and captum import, Captum's ``IntegratedGradients`` (gausslegendre, same ``n_steps``)
   and ``NoiseTunnel(Saliency(abs=False))`` for each of ``--captum-batches``.
2. Head to head: the jax gradient, IG and SmoothGrad at their best ``batch_size``, compiled with
   XLA's defaults and with ``jx.compiler_options()`` (jaxplain's CPU kernel choice, passed to the
   ``jax.jit``), the torch gradient and Captum's best configurations, timed in interleaved rounds
   (one run of each per round, so this machine's drift of up to 50 % slows all alike); ratios are
   medians of per-round ratios: IG / (``S`` x gradient), and jaxplain / Captum images per second.

Timing: jax functions are compiled ahead of time (``jit(...).lower(...).compile()``, reported as
``compile s``) and run once as warm-up; the sweep times ``--repeats`` runs and shows the median
(a configuration whose warm-up took long runs fewer times to fit in ``--budget`` seconds: ``n``).

Usage::

    python benchmarks/gradients.py                  # defaults: batch 64, steps 50, 5 repeats
    python benchmarks/gradients.py --quick          # a smoke run in well under a minute
    python benchmarks/gradients.py --sweep none,5,10 --no-captum
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import statistics
import sys
import time

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
from jaxplain import _paths  # noqa: E402

from tests import twins  # noqa: E402

FAMILY = "gradients"
SIGMA = 0.15  # SmoothGrad noise standard deviation, input units (inputs are standard normal)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch", type=int, default=None, help="images per batch (default 64)")
    p.add_argument("--steps", type=int, help="IG steps = SmoothGrad samples (default 50)")
    p.add_argument("--repeats", type=int, help="timed runs per configuration (default 5)")
    p.add_argument("--size", type=int, default=None, help="image side (default 32)")
    p.add_argument(
        "--sweep",
        default=None,
        help="comma-separated batch_size values, 'none' for all at once (default 1,2,5)",
    )
    p.add_argument(
        "--captum-batches",
        default=None,
        help="comma-separated Captum internal_batch_size values in images, 'none' for all at once "
        "(default 64,128); NoiseTunnel uses them divided by the batch as nt_samples_batch_size",
    )
    p.add_argument("--budget", type=float, help="seconds of timed runs per config (default 30)")
    p.add_argument("--max-unrolled", type=int, help="override jaxplain's MAX_UNROLLED_CHUNKS")
    p.add_argument("--no-captum", action="store_true", help="skip the torch/Captum rows")
    p.add_argument("--quick", action="store_true", help="batch 8, steps 8, size 16, 2 repeats")
    a = p.parse_args(argv)
    quick = dict(batch=8, steps=8, repeats=2, size=16, sweep="none,2", captum_batches="none,16",
                 budget=5.0)
    full = dict(batch=64, steps=50, repeats=5, size=32, sweep="1,2,5",
                captum_batches="64,128", budget=30.0)
    for name, value in (quick if a.quick else full).items():
        if getattr(a, name) is None:
            setattr(a, name, value)
    a.sweep = _int_list(a.sweep)
    a.captum_batches = _int_list(a.captum_batches)
    return a


def _int_list(text: str) -> list[int | None]:
    return [None if t.strip().lower() == "none" else int(t) for t in text.split(",") if t.strip()]


def _measure(call, *, repeats: int, budget: float) -> tuple[float, int]:
    """(median seconds, runs timed) of ``call()`` after one warm-up run."""
    t0 = time.perf_counter()
    call()
    warm = time.perf_counter() - t0
    n = max(1, min(repeats, int(budget // max(warm, 1e-9))))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def _compile(fn, args: tuple, kwargs: dict, *, options=None, repeat: int = 1):
    """(call, compile s): ``call()`` runs ``jax.jit(fn)`` on ``args`` ``repeat`` times, compiled
    ahead of time (with XLA ``options``), and waits for the results."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn, compiler_options=options).lower(*args, **kwargs).compile()
    compile_s = time.perf_counter() - t0

    def call():
        for _ in range(repeat):
            jax.block_until_ready(compiled(*args, **kwargs))

    return call, compile_s


def _time_jax(fn, args: tuple, kwargs: dict, *, repeats: int, budget: float, options=None,
              keep: dict | None = None):
    """(compile s, median s, runs) of ``jax.jit(fn)`` on ``args``; compile is not in the runs.
    ``keep``, if given, receives the compiled call under ``"call"``."""
    call, compile_s = _compile(fn, args, kwargs, options=options)
    median, n = _measure(call, repeats=repeats, budget=budget)
    if keep is not None:
        keep["call"] = call
    return compile_s, median, n


def _chunking(k: int | None, steps: int, batch: int) -> str:
    if k is None or k >= steps:
        return f"all at once ({batch * steps} img)"
    chunks = math.ceil(steps / k)
    how = "unrolled" if chunks <= _paths.MAX_UNROLLED_CHUNKS else "lax.scan"
    return f"{chunks} chunks of {batch * k} img, {how}"


def _log(msg: str) -> None:
    print(f"  [{FAMILY}] {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> list[dict]:
    """Runs the benchmark; returns one dict per row (see benchmarks/run.py for the columns)."""
    a = parse_args(argv)
    if a.max_unrolled is not None:
        _paths.MAX_UNROLLED_CHUNKS = a.max_unrolled
    B, S = a.batch, a.steps
    rows: list[dict] = []

    def row(benchmark, config, *, compile_s=None, time_s, n, ratio=None, ratio_of=None):
        r = dict(
            family=FAMILY,
            benchmark=benchmark,
            config=config,
            compile_s=compile_s,
            time_s=time_s,
            n=n,
            images_per_s=B / time_s,
            ratio=ratio,
            ratio_of=ratio_of,
        )
        rows.append(r)
        _log(f"{benchmark:<24} {config:<36} {time_s:8.3f} s  {B / time_s:9.1f} img/s"
             + (f"  {ratio:.2f} {ratio_of}" if ratio is not None else ""))
        return r

    apply, params, module = twins.make_twins(0, act="relu", size=a.size)
    f = twins.logit_fn(apply, params)
    rng = np.random.default_rng(0)
    xs_np = rng.standard_normal((B, a.size, a.size, 3)).astype(np.float32)
    ts_np = rng.integers(0, 10, B)
    xs, ts = jnp.asarray(xs_np), jnp.asarray(ts_np)
    keys = jax.random.split(jax.random.key(0), B)
    tuned = jx.compiler_options()
    _log(f"batch {B}, steps/samples {S}, {a.size}x{a.size}x3 4-conv CNN, MAX_UNROLLED_CHUNKS="
         f"{_paths.MAX_UNROLLED_CHUNKS}, jx.compiler_options() = {tuned}")

    # -- 1. sweep: one batched gradient (and larger batches), then IG / SmoothGrad per batch_size
    timing = dict(repeats=a.repeats, budget=a.budget)
    c, t_grad, n = _time_jax(jax.vmap(jax.grad(f)), (xs, ts), {}, **timing)
    row("jax gradient (1 batch)", f"{B} img", compile_s=c, time_s=t_grad, n=n)
    # Larger batches can cost less per image, which lets chunked runs beat the floor: show it.
    for k in sorted({k for k in a.sweep if k is not None and 1 < k < S}):
        xk, tk = jnp.tile(xs, (k, 1, 1, 1)), jnp.tile(ts, k)
        c, t_k, n = _time_jax(jax.vmap(jax.grad(f)), (xk, tk), {}, **timing)
        row("jax gradient (1 batch)", f"{B * k} img, time per {B}", compile_s=c, time_s=t_k / k,
            n=n, ratio=t_k / (k * t_grad), ratio_of=f"x per-img cost at {B} img")

    builders = {
        "IG": (lambda k: jx.integrated_gradients(f, steps=S, batch_size=k), {}),
        "SmoothGrad": (
            lambda k: jx.smoothgrad(
                jx.gradient(f), samples=S, sigma=SIGMA, relative=False, batch_size=k
            ),
            {"key": keys},
        ),
    }
    # The best batch_size of each method and option set, kept compiled for the head to head.
    best_k, calls, compile_s = {}, {}, {}
    option_sets = [("", None)] + ([(" +options", tuned)] if tuned else [])
    for opts_name, opts in option_sets:
        if opts:
            c, t_opt, n = _time_jax(jax.vmap(jax.grad(f)), (xs, ts), {}, options=opts, **timing)
            row("jax gradient (1 batch)", f"{B} img, jx.compiler_options()", compile_s=c,
                time_s=t_opt, n=n)
        floor_k = S * (t_opt if opts else t_grad)
        for name, (build, kwargs) in builders.items():
            best = math.inf
            for k in a.sweep:
                keep: dict = {}
                c, t, n = _time_jax(jax.vmap(build(k)), (xs, ts), kwargs, options=opts,
                                    keep=keep, **timing)
                row(f"jaxplain {name}{opts_name}", f"batch_size={k}: {_chunking(k, S, B)}",
                    compile_s=c, time_s=t, n=n, ratio=t / floor_k,
                    ratio_of=f"x jax floor{opts_name}")
                if t < best:
                    label = name + opts_name
                    best, best_k[label], calls[label], compile_s[label] = t, k, keep["call"], c

    # -- 2. head to head, interleaved: every contender once per round, ratios taken per round
    for opts_name, opts in option_sets:  # the floor: S batched gradients in a row
        calls["jax floor" + opts_name], compile_s["jax floor" + opts_name] = _compile(
            jax.vmap(jax.grad(f)), (xs, ts), {}, options=opts, repeat=S
        )
    peer = None
    if not a.no_captum:
        try:
            import captum.attr  # noqa: F401
            import torch  # noqa: F401
        except ImportError as e:
            _log(f"skipping Captum rows: {e}")
        else:
            peer = _captum_calls(a, module, xs_np, ts_np, row=row, rows=rows)
            calls.update(peer)
    rounds = max(3, a.repeats)
    _log(f"head to head: {len(calls)} contenders, {rounds} interleaved rounds")
    times = _interleaved(calls, rounds=rounds)
    med = {name: statistics.median(ts_) for name, ts_ in times.items()}
    per_round = lambda num, den: statistics.median(
        [x / y for x, y in zip(times[num], times[den])]
    )
    for opts_name, _ in option_sets:
        floor_name = "jax floor" + opts_name
        how = "jx.compiler_options()" if opts_name else "XLA defaults"
        row("head to head", f"{floor_name}: {S} x gradient ({how})",
            compile_s=compile_s[floor_name], time_s=med[floor_name], n=rounds)
        for name in builders:
            label = name + opts_name
            row("head to head", f"jaxplain {label}, batch_size={best_k[label]}",
                compile_s=compile_s[label], time_s=med[label], n=rounds,
                ratio=per_round(label, floor_name), ratio_of=f"x {floor_name}")
    if peer:
        row("head to head", f"torch floor: {S} x gradient", time_s=med["torch floor"], n=rounds)
        for name, theirs in (("IG", "Captum IG"), ("SmoothGrad", "Captum NoiseTunnel SG")):
            row("head to head", theirs, time_s=med[theirs], n=rounds,
                ratio=per_round(theirs, "torch floor"), ratio_of="x torch floor")
            for opts_name, _ in option_sets:
                label = name + opts_name
                if label in med:
                    rows.append(dict(family=FAMILY, benchmark=f"speed {name}",
                                     config=f"jaxplain{opts_name or ' (XLA defaults)'} / Captum",
                                     ratio=per_round(theirs, label),
                                     ratio_of="jaxplain/Captum img/s"))
                    _log(f"speed {label}: {rows[-1]['ratio']:.2f} x Captum")
    return rows


def _interleaved(calls: dict, *, rounds: int, pause: float = 0.2) -> dict:
    """Times every call once per round after one warm-up each, so that a machine whose speed
    drifts (up to 50 % here) slows all contenders alike; returns {name: [seconds per round]}.
    A ``pause`` before each run lets the previous contender's threads go idle (torch's OpenMP
    threads spin after a call and slowed the next contender 2x)."""
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return times


def _captum_calls(a, module, xs_np, ts_np, *, row, rows) -> dict:
    """Sweeps Captum's batch options (rows), returns the torch gradient and Captum's best calls."""
    import torch
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    B, S = a.batch, a.steps
    torch.set_num_threads(_cores())
    x = torch.from_numpy(twins.nhwc_to_nchw(xs_np))
    t = torch.from_numpy(ts_np)

    def grad_once():
        xg = x.clone().requires_grad_(True)
        out = module(xg).gather(1, t[:, None]).sum()
        (g,) = torch.autograd.grad(out, xg)
        return g

    timing = dict(repeats=a.repeats, budget=a.budget)
    med, n = _measure(grad_once, **timing)
    floor = S * med
    row("torch gradient (1 batch)", f"{B} img, {torch.get_num_threads()} threads", time_s=med, n=n)
    rows.append(dict(family=FAMILY, benchmark="torch floor", config=f"{S} x gradient",
                     time_s=floor, images_per_s=B / floor))

    ig = IntegratedGradients(module)
    nt = NoiseTunnel(Saliency(module))
    ig_call = lambda ibs: (lambda: ig.attribute(
        x, baselines=0.0, target=t, n_steps=S, method="gausslegendre", internal_batch_size=ibs))
    nt_call = lambda ntb: (lambda: nt.attribute(
        x, nt_type="smoothgrad", nt_samples=S, stdevs=SIGMA, target=t, abs=False,
        nt_samples_batch_size=ntb))
    best = {}
    for ibs in a.captum_batches:
        med, n = _measure(ig_call(ibs), **timing)
        row("Captum IG", f"internal_batch_size={ibs}", time_s=med, n=n, ratio=med / floor,
            ratio_of="x torch floor")
        if med < best.get("IG", (math.inf,))[0]:
            best["IG"] = (med, ig_call(ibs))
    for ibs in a.captum_batches:
        ntb = None if ibs is None else max(1, ibs // B)
        med, n = _measure(nt_call(ntb), **timing)
        row("Captum NoiseTunnel SG", f"nt_samples_batch_size={ntb}", time_s=med, n=n,
            ratio=med / floor, ratio_of="x torch floor")
        if med < best.get("SG", (math.inf,))[0]:
            best["SG"] = (med, nt_call(ntb))
    return {"torch floor": lambda: [grad_once() for _ in range(S)], "Captum IG": best["IG"][1],
            "Captum NoiseTunnel SG": best["SG"][1]}


def _cores() -> int:
    from run import cores

    return cores()


if __name__ == "__main__":
    from run import environment, format_table

    rows = main()
    print(f"# {environment()}")
    print(format_table(rows))
