"""Speed of AttnLRP: ``jx.lrp(f, rules=jx.composites.attn_lrp())`` on the zoo ViT vs one batched
gradient, and vs LXT 2.1 (explicit rules, PyTorch) on the same weights.

Model: ``jaxplain.zoo.ViT`` (``--size`` 32 images, patch 4: 64 patch tokens and a class token,
width 64, depth 4, 4 heads, MLP 128, 10 classes), random weights, batch ``--batch`` (64) of standard
normal images with per-example targets, float32. jax rows compiled with ``jx.compiler_options()``:

* ``jax gradient (1 batch)``: ``jax.jit(jax.vmap(jax.grad(f)))(xs, ts)``, the unit of cost;
* ``jaxplain AttnLRP`` and ``jaxplain CP-LRP``: ``jax.jit(jax.vmap(jx.lrp(f, rules=...)))``, as a
  ratio to the gradient (median of per-round ratios, rounds interleaved);
* when torch and lxt import: the torch gradient of the twin (``autograd.grad`` of the summed
  target logits), LXT's explicit AttnLRP (the twin written with ``lxt.explicit.functional``;
  ``y.backward(y)`` on the target logits, relevance ``x.grad``), its ratio to the torch gradient,
  jaxplain's speed relative to LXT (LXT's time / ours) and the parity of the relevances (per
  example max |ours - LXT| / max |LXT| on the timed batch: the median example, and the worst).

Usage::

    python benchmarks/attn_lrp.py            # batch 64, 32x32, 5 repeats
    python benchmarks/attn_lrp.py --quick    # a smoke run (batch 8, 16x16, depth 2)
"""

from __future__ import annotations

import argparse
import math
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
from jaxplain import zoo  # noqa: E402
from gradients import _compile, _cores, _measure  # noqa: E402
from gradients import _interleaved as interleaved  # noqa: E402

FAMILY = "attn_lrp"
CLASSES, PATCH, WIDTH, HEADS, MLP = 10, 4, 64, 4, 128
LN_EPS = 1e-6  # Flax's LayerNorm default


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=None, help="images per batch (default 64)")
    p.add_argument("--size", type=int, default=None, help="image side (default 32)")
    p.add_argument("--depth", type=int, default=None, help="encoder blocks (default 4)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5)")
    p.add_argument("--budget", type=float, default=None, help="seconds of timed torch runs (default 30)")
    p.add_argument("--no-lxt", action="store_true", help="skip the torch/LXT rows")
    p.add_argument("--quick", action="store_true", help="batch 8, size 16, depth 2, 2 repeats")
    a = p.parse_args(argv)
    quick = dict(batch=8, size=16, depth=2, repeats=2, budget=5.0)
    full = dict(batch=64, size=32, depth=4, repeats=5, budget=30.0)
    for name, value in (quick if a.quick else full).items():
        if getattr(a, name) is None:
            setattr(a, name, value)
    return a


def _log(msg: str) -> None:
    print(f"  [{FAMILY}] {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> list[dict]:
    """Runs the benchmark; returns one dict per row (see benchmarks/run.py for the columns)."""
    a = parse_args(argv)
    B, rows = a.batch, []

    def row(benchmark, config, *, compile_s=None, time_s=None, n=None, ratio=None, ratio_of=None):
        rows.append(dict(family=FAMILY, benchmark=benchmark, config=config, compile_s=compile_s,
                         time_s=time_s, n=n, images_per_s=None if time_s is None else B / time_s,
                         ratio=ratio, ratio_of=ratio_of))
        _log(f"{benchmark:<26} {config:<34} "
             + (f"{time_s:8.4f} s  {B / time_s:9.1f} img/s" if time_s is not None else "")
             + (f"  {ratio:.3g} {ratio_of}" if ratio is not None else ""))

    model = zoo.ViT(image_size=a.size, patch=PATCH, width=WIDTH, depth=a.depth, heads=HEADS, mlp=MLP,
                    classes=CLASSES)
    v = model.init(jax.random.key(0), jnp.zeros((1, a.size, a.size, 3)))
    rng = np.random.default_rng(0)
    v = jax.tree_util.tree_map(lambda w: jnp.asarray(rng.normal(size=w.shape) * (0.2 if w.ndim > 1 else 0.05),
                                                     jnp.float32), v)
    xs_np = rng.standard_normal((B, a.size, a.size, 3)).astype(np.float32)
    ts_np = rng.integers(0, CLASSES, B)
    xs, ts = jnp.asarray(xs_np), jnp.asarray(ts_np)
    f = lambda x, t: model.apply(v, x[None])[0, t]
    tokens = (a.size // PATCH) ** 2 + 1
    _log(f"zoo ViT: {a.size}x{a.size}x3, {tokens} tokens, width {WIDTH}, depth {a.depth}; batch {B}")

    fns = {"gradient": jax.vmap(jax.grad(f)),
           "AttnLRP": jax.vmap(jx.lrp(f, rules=jx.composites.attn_lrp())),
           "CP-LRP": jax.vmap(jx.lrp(f, rules=jx.composites.cp_lrp()))}
    calls, compile_s = {}, {}
    for name, fn in fns.items():
        calls[name], compile_s[name] = _compile(fn, (xs, ts), {}, options=jx.compiler_options())
    times = interleaved(calls, rounds=3 * a.repeats, pause=0.0)
    t_grad = float(np.median(times["gradient"]))
    n = len(times["gradient"])
    row("jax gradient (1 batch)", f"{B} img", compile_s=compile_s["gradient"], time_s=t_grad, n=n)
    for name in ("AttnLRP", "CP-LRP"):
        ratio = float(np.median(np.asarray(times[name]) / np.asarray(times["gradient"])))
        row(f"jaxplain {name}", "zoo ViT", compile_s=compile_s[name], time_s=float(np.median(times[name])),
            n=n, ratio=ratio, ratio_of="x jax gradient")
    ours = np.asarray(jax.jit(fns["AttnLRP"])(xs, ts))
    if not a.no_lxt:
        try:
            import torch  # noqa: F401
            import lxt.explicit.functional  # noqa: F401
        except ImportError as e:
            _log(f"skipping the LXT rows: {e}")
        else:
            _lxt(a, v["params"], xs_np, ts_np, ours, float(np.median(times["AttnLRP"])), row)
    return rows


def _lxt(a, p, xs_np, ts_np, ours, ours_time, row) -> None:
    import torch
    import lxt.explicit.functional as lf
    import lxt.explicit.rules as lrules

    torch.set_num_threads(_cores())
    B, D, H = a.batch, WIDTH, HEADS
    t = lambda w: torch.tensor(np.asarray(w), dtype=torch.float32)
    ln = lambda z, q: lf.layer_norm(z, t(q["scale"]), t(q["bias"]), LN_EPS)
    lin = lambda z, q: lf.linear_epsilon(z, t(q["kernel"]).reshape(-1, q["kernel"].shape[-1]).T, t(q["bias"]))
    gelu = lambda z: torch.nn.functional.gelu(z, approximate="tanh")  # Flax's nn.gelu default

    def attn(h, q):
        b, n, _ = h.shape
        dh = D // H
        proj = lambda name: lf.linear_epsilon(h, t(q[name]["kernel"]).reshape(D, D).T,
                                              t(q[name]["bias"]).reshape(D)).view(b, n, H, dh).permute(0, 2, 1, 3)
        s = lf.mul2(lf.matmul(proj("query"), proj("key").transpose(-1, -2)), 1 / math.sqrt(dh))
        c = lf.matmul(lf.softmax(s, -1), proj("value")).permute(0, 2, 1, 3).reshape(b, n, D)
        return lf.linear_epsilon(c, t(q["out"]["kernel"]).reshape(D, D).T, t(q["out"]["bias"]))

    def vit(img):  # (B, size, size, 3), channels last as the Flax model
        b, g = img.shape[0], a.size // PATCH
        patches = img.reshape(b, g, PATCH, g, PATCH, 3).permute(0, 1, 3, 2, 4, 5).reshape(b, g * g, -1)
        x = lin(patches, p["patch_embed"])
        x = lf.add2(torch.cat([t(p["cls_token"]).expand(b, -1, -1), x], dim=1), t(p["pos_embed"]))
        for i in range(a.depth):
            q = p[f"block{i}"]
            x = lf.add2(x, attn(ln(x, q["ln0"]), q["attn"]))
            x = lf.add2(x, lin(lrules.identity(gelu, lin(ln(x, q["ln1"]), q["dense0"])), q["dense1"]))
        return lin(ln(x, p["ln"])[:, 0], p["head"])

    x = torch.from_numpy(xs_np)
    tt = torch.from_numpy(ts_np)[:, None]

    def grad_once():
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(vit(xg).gather(1, tt).sum(), xg)
        return g

    def lxt_once():
        xg = x.clone().requires_grad_(True)
        y = vit(xg).gather(1, tt)
        y.backward(y)
        return xg.grad

    timing = dict(repeats=a.repeats, budget=a.budget)
    t_grad, n = _measure(grad_once, **timing)
    row("torch gradient (1 batch)", f"{B} img, {torch.get_num_threads()} threads", time_s=t_grad, n=n)
    t_lxt, n = _measure(lxt_once, **timing)
    row("LXT AttnLRP (explicit)", "same weights", time_s=t_lxt, n=n, ratio=t_lxt / t_grad,
        ratio_of="x torch gradient")
    theirs = lxt_once().numpy()
    # per example: max|ours - LXT| / max|LXT|. In float32 a few examples of these random weights
    # are ill-conditioned for AttnLRP (an epsilon-rule denominator near zero): there BOTH ours and
    # LXT's relevances differ from the float64 result by up to a few times its maximum (measured:
    # worst example 6.1 for ours, 3.4 for LXT; median 1e-5 for both), so the median example is the
    # parity figure, and the worst is shown beside it. In float64 the two agree to 5e-6 on every
    # example (tests/parity/test_lxt_attnlrp.py checks parity there).
    per = (np.abs(ours - theirs).reshape(B, -1).max(1) / np.abs(theirs).reshape(B, -1).max(1))
    row("parity", "AttnLRP: median example", ratio=float(np.median(per)), ratio_of="relative")
    row("parity", "AttnLRP: worst example (float32)", ratio=float(per.max()), ratio_of="relative")
    row("speed", "AttnLRP: LXT time / jaxplain time", ratio=t_lxt / ours_time, ratio_of="jaxplain/LXT img/s")
    if not math.isfinite(float(np.median(per))) or float(np.median(per)) > 1e-3:
        _log(f"WARNING: AttnLRP relevances differ from LXT's by {np.median(per):.3g} (median example)")


if __name__ == "__main__":
    from run import environment, format_table

    rows = main()
    print(f"# {environment()}")
    print(format_table(rows))
