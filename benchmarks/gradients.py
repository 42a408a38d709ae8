"""Speed of the gradient family: integrated gradients and SmoothGrad vs their floor and Captum.

On two CNNs of tests/twins.py (32x32x3 input, 10 classes; ``--models``: ``a`` the benchmark CNN,
channels 16-32-32-32, ``b`` channels 32-32-64-64 with a 256-unit dense layer), batch ``--batch``
(64) and ``--steps`` (50) path points / noise samples, per model:

1. Sweep (each configuration timed on its own), compiled with ``jx.compiler_options()``, the
   CPU defaults ``import jaxplain`` sets (this script keeps XLA's own otherwise, so both can be
   shown): one batched gradient ``jax.jit(jax.vmap(jax.grad(f)))(xs, ts)``; integrated gradients
   ``jax.jit(jax.vmap(jx.integrated_gradients(f, steps=S, batch_size=k)))(xs, ts)`` and SmoothGrad
   of the gradient (``samples=S, relative=False, sigma=0.15``) for each ``k`` of ``--sweep``
   (``default`` is ``batch_size=None``, the README's quick start), as time / floor (floor = ``S``
   x one batched gradient: the work both must do); each row says how the chunks run.
2. One example without ``vmap`` (``jax.jit(explainer)(x, t)``) for each ``k`` of
   ``--single-sweep``.
3. Head to head, interleaved (one run of each per round, so this machine's drift of up to 50 %
   slows all alike; ratios are medians of per-round ratios): the floor, IG and SmoothGrad with
   the default and with the best ``batch_size`` of the sweep, the default IG under XLA's own
   settings, the torch gradient and Captum's best ``IntegratedGradients`` (gausslegendre, same
   ``n_steps``) and ``NoiseTunnel(Saliency(abs=False))`` of ``--captum-batches``. Summary rows:
   ``default / best`` (time ratio, acceptance <= 1.15), ``speed`` (Captum time / jaxplain default
   time, acceptance >= 1.3) and ``single example default / best``.

Timing: jax functions are compiled ahead of time (``jit(...).lower(...).compile()``, reported as
``compile s``) and run once as warm-up; the sweep times ``--repeats`` runs and shows the median
(a configuration whose warm-up took long runs fewer times to fit in ``--budget`` seconds: ``n``).

Usage::

    python benchmarks/gradients.py                  # both CNNs: batch 64, steps 50, 5 repeats
    python benchmarks/gradients.py --quick          # a smoke run in about a minute
    python benchmarks/gradients.py --models b --sweep default,1,2 --no-captum
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


MODELS = {  # --models: the benchmark CNN and the second CNN of issue 13
    "a": dict(channels=(16, 32, 32, 32)),
    "b": dict(channels=(32, 32, 64, 64), hidden=256),
}
MODEL_NAMES = {"a": "CNN 16-32-32-32", "b": "CNN 32-32-64-64 + dense 256"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch", type=int, default=None, help="images per batch (default 64)")
    p.add_argument("--steps", type=int, help="IG steps = SmoothGrad samples (default 50)")
    p.add_argument("--repeats", type=int, help="timed runs per configuration (default 5)")
    p.add_argument("--size", type=int, default=None, help="image side (default 32)")
    p.add_argument("--models", default=None,
                   help="comma-separated: a (16-32-32-32), b (32-32-64-64 + dense 256); default a,b")
    p.add_argument(
        "--sweep",
        default=None,
        help="comma-separated batch_size values: 'default' (None, jaxplain's choice), 'all' "
        "(= steps, all at once) or numbers (default default,1,2,5,all)",
    )
    p.add_argument(
        "--single-sweep",
        default=None,
        help="batch_size values for one example without vmap (default default,5,10,25,all)",
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
    quick = dict(batch=8, steps=8, repeats=2, size=16, sweep="default,2", single_sweep="default,4",
                 captum_batches="none,16", budget=5.0, models="a")
    full = dict(batch=64, steps=50, repeats=5, size=32, sweep="default,1,2,5,all",
                single_sweep="default,5,10,25,all", captum_batches="64,128", budget=30.0,
                models="a,b")
    for name, value in (quick if a.quick else full).items():
        if getattr(a, name) is None:
            setattr(a, name, value)
    a.sweep = _batch_sizes(a.sweep, a.steps)
    a.single_sweep = _batch_sizes(a.single_sweep, a.steps)
    a.captum_batches = _int_list(a.captum_batches)
    a.models = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in a.models if m not in MODELS]
    if unknown:
        p.error(f"unknown --models {unknown}; choose from {sorted(MODELS)}")
    return a


DEFAULT = "default"  # batch_size=None, the sweep label of jaxplain's own choice


def _batch_sizes(text: str, steps: int) -> list:
    out = []
    for t in (t.strip().lower() for t in text.split(",") if t.strip()):
        out.append(DEFAULT if t in ("default", "none") else steps if t == "all" else int(t))
    return list(dict.fromkeys(out))


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


def _chunking(k, steps: int, batch: int, size: int) -> str:
    if k == DEFAULT:
        k = _chosen(steps, batch, size)
        prefix = f"None -> {k}: "
    else:
        prefix = ""
    if k >= steps:
        return prefix + f"all at once ({batch * steps} img)"
    chunks = math.ceil(steps / k)
    how = "unrolled" if chunks <= _paths.MAX_UNROLLED_CHUNKS else "lax.scan"
    return prefix + f"{chunks} chunks of {batch * k} img, {how}"


def _chosen(steps: int, batch: int, size: int) -> int:
    """The batch_size jaxplain chooses for ``steps`` points under a vmap over ``batch`` examples
    of ``(size, size, 3)`` images."""
    out = []
    image = jnp.zeros((size, size, 3))

    def probe(x):
        out.append(_paths.auto_batch_size(steps, None, like=image))
        return x

    if batch == 1:
        probe(jnp.zeros(()))
    else:
        jax.vmap(probe)(jnp.zeros(batch))
    return out[0]


def _k(k):
    return None if k == DEFAULT else k


def _log(msg: str) -> None:
    print(f"  [{FAMILY}] {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> list[dict]:
    """Runs the benchmark; returns one dict per row (see benchmarks/run.py for the columns)."""
    a = parse_args(argv)
    if a.max_unrolled is not None:
        _paths.MAX_UNROLLED_CHUNKS = a.max_unrolled
    rows: list[dict] = []
    for model in a.models:
        rows += _one_model(a, model)
    return rows


def _one_model(a, model: str) -> list[dict]:
    B, S = a.batch, a.steps
    rows: list[dict] = []
    tag = f"[{model}] "

    def row(benchmark, config, *, compile_s=None, time_s, n, ratio=None, ratio_of=None, batch=B):
        r = dict(
            family=FAMILY,
            benchmark=tag + benchmark,
            config=config,
            compile_s=compile_s,
            time_s=time_s,
            n=n,
            images_per_s=None if time_s is None else batch / time_s,
            ratio=ratio,
            ratio_of=ratio_of,
        )
        rows.append(r)
        _log(f"{tag + benchmark:<30} {config:<40} "
             + (f"{time_s:8.3f} s  {batch / time_s:9.1f} img/s" if time_s is not None else "")
             + (f"  {ratio:.2f} {ratio_of}" if ratio is not None else ""))
        return r

    apply, params, module = twins.make_twins(0, act="relu", size=a.size, **MODELS[model])
    f = twins.logit_fn(apply, params)
    rng = np.random.default_rng(0)
    xs_np = rng.standard_normal((B, a.size, a.size, 3)).astype(np.float32)
    ts_np = rng.integers(0, 10, B)
    xs, ts = jnp.asarray(xs_np), jnp.asarray(ts_np)
    keys = jax.random.split(jax.random.key(0), B)
    tuned = jx.compiler_options()
    _log(f"{MODEL_NAMES[model]}: batch {B}, steps/samples {S}, {a.size}x{a.size}x3, "
         f"MAX_UNROLLED_CHUNKS={_paths.MAX_UNROLLED_CHUNKS}, jx.compiler_options() = {tuned}")

    # -- 1. sweep: one batched gradient, then IG / SmoothGrad per batch_size, compiled with the
    # options `import jaxplain` makes the CPU defaults (the README's setup)
    timing = dict(repeats=a.repeats, budget=a.budget)
    c, t_grad, n = _time_jax(jax.vmap(jax.grad(f)), (xs, ts), {}, **timing)
    row("jax gradient (1 batch)", f"{B} img, XLA defaults", compile_s=c, time_s=t_grad, n=n)
    c, t_opt, n = _time_jax(jax.vmap(jax.grad(f)), (xs, ts), {}, options=tuned, **timing)
    row("jax gradient (1 batch)", f"{B} img, jx.compiler_options()", compile_s=c, time_s=t_opt,
        n=n)
    builders = {
        "IG": (lambda k: jx.integrated_gradients(f, steps=S, batch_size=_k(k)), {}),
        "SmoothGrad": (
            lambda k: jx.smoothgrad(
                jx.gradient(f), samples=S, sigma=SIGMA, relative=False, batch_size=_k(k)
            ),
            {"key": keys},
        ),
    }
    best_k, calls, compile_s = {}, {}, {}
    for name, (build, kwargs) in builders.items():
        best = math.inf
        for k in a.sweep:
            keep: dict = {}
            c, t, n = _time_jax(jax.vmap(build(k)), (xs, ts), kwargs, options=tuned, keep=keep,
                                **timing)
            row(f"jaxplain {name}", f"batch_size={_k(k)}: {_chunking(k, S, B, a.size)}", compile_s=c,
                time_s=t, n=n, ratio=t / (S * t_opt), ratio_of="x jax floor")
            if k == DEFAULT:
                calls[name + " default"], compile_s[name + " default"] = keep["call"], c
            if t < best:
                best, best_k[name], calls[name + " best"], compile_s[name + " best"] = (
                    t, k, keep["call"], c)
    # XLA's own settings for the default call: what the options gain (information only)
    calls["IG default, XLA defaults"], compile_s["IG default, XLA defaults"] = _compile(
        jax.vmap(builders["IG"][0](DEFAULT)), (xs, ts), {})

    # -- 2. one example, no vmap: jax.jit(explainer)(x, t) per batch_size
    x1, t1, key1 = xs[0], ts[0], keys[0]
    single = {}
    for name, (build, kwargs) in builders.items():
        kw1 = {"key": key1} if kwargs else {}
        for k in a.single_sweep:
            keep = {}
            c, t, n = _time_jax(build(k), (x1, t1), kw1, options=tuned, keep=keep,
                                repeats=max(a.repeats, 20), budget=a.budget)
            row(f"single example {name}", f"batch_size={_k(k)}: {_chunking(k, S, 1, a.size)}",
                compile_s=c, time_s=t, n=n, batch=1)
            single.setdefault(name, {})[k] = keep["call"]

    # -- 3. head to head, interleaved: every contender once per round, ratios taken per round
    calls["jax floor"], compile_s["jax floor"] = _compile(
        jax.vmap(jax.grad(f)), (xs, ts), {}, options=tuned, repeat=S)
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
    per_round = lambda num, den, t=times: statistics.median([x / y for x, y in zip(t[num], t[den])])
    row("head to head", f"jax floor: {S} x gradient (jx.compiler_options())",
        compile_s=compile_s["jax floor"], time_s=med["jax floor"], n=rounds)
    for name in builders:
        for which in ("default", "best"):
            label = f"{name} {which}"
            k = DEFAULT if which == "default" else best_k[name]
            row("head to head", f"jaxplain {name}, batch_size={_k(k)} ({which})",
                compile_s=compile_s[label], time_s=med[label], n=rounds,
                ratio=per_round(label, "jax floor"), ratio_of="x jax floor")
        rows.append(dict(family=FAMILY, benchmark=tag + f"default / best {name}",
                         config=f"batch_size=None vs {_k(best_k[name])}",
                         ratio=per_round(f"{name} default", f"{name} best"),
                         ratio_of="time ratio (acceptance: <= 1.15)"))
        _log(f"default / best {name}: {rows[-1]['ratio']:.3f}")
    label = "IG default, XLA defaults"
    row("head to head", "jaxplain IG, batch_size=None, XLA defaults", compile_s=compile_s[label],
        time_s=med[label], n=rounds, ratio=per_round(label, "IG default"),
        ratio_of="x the same with jaxplain's options")
    if peer:
        row("head to head", f"torch floor: {S} x gradient", time_s=med["torch floor"], n=rounds)
        for name, theirs in (("IG", "Captum IG"), ("SmoothGrad", "Captum NoiseTunnel SG")):
            row("head to head", theirs, time_s=med[theirs], n=rounds,
                ratio=per_round(theirs, "torch floor"), ratio_of="x torch floor")
            rows.append(dict(family=FAMILY, benchmark=tag + f"speed {name}",
                             config="jaxplain default / Captum best",
                             ratio=per_round(theirs, f"{name} default"),
                             ratio_of="jaxplain/Captum img/s (acceptance: >= 1.3)"))
            _log(f"speed {name}: {rows[-1]['ratio']:.2f} x Captum")
    # one example: the default against the best of its sweep, interleaved
    for name, by_k in single.items():
        t1s = _interleaved({str(k): c for k, c in by_k.items()}, rounds=max(rounds, 10))
        fastest = min(t1s, key=lambda k: statistics.median(t1s[k]))
        rows.append(dict(family=FAMILY, benchmark=tag + f"single example default / best {name}",
                         config=f"batch_size=None vs {fastest}",
                         ratio=per_round(DEFAULT, fastest, t1s),
                         ratio_of="time ratio (acceptance: <= 1.15)"))
        _log(f"single example default / best {name}: {rows[-1]['ratio']:.3f}")
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
