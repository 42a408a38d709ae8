"""Speed of the layer family: Grad-CAM and layer attributions vs one batched gradient.

On the 4-conv CNN of tests/twins.py (32x32x3, channels 16-32-32-32), batch ``--batch`` (64),
split at the last convolution's output with ``features=`` / ``head=`` (the Flax layer-path form
traces to the same program):

* ``jax gradient (1 batch)``: ``jax.jit(jax.vmap(jax.grad(f)))(xs, ts)``, the unit of cost;
* ``grad_cam``: ``jax.jit(jax.vmap(jx.grad_cam(...)))(xs, ts)`` as a ratio to that gradient
  (issue #4's target: at most 1.2x); ``layer_gradient_x_activation`` likewise;
* ``layer_integrated_gradients``, ``layer_conductance``, ``internal_influence`` with ``--steps``
  (50) as a ratio to ``steps`` batched gradients.

Usage::

    python benchmarks/layers.py            # batch 64, steps 50, 5 repeats
    python benchmarks/layers.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
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
from gradients import _time_jax  # noqa: E402

FAMILY = "layers"


def _log(msg: str) -> None:
    print(f"  [{FAMILY}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    defaults = dict(batch=8, steps=8, repeats=2, size=16) if a.quick else dict(batch=64, steps=50, repeats=5, size=32)
    for k, v in defaults.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    return a


def main(argv=None) -> list[dict]:
    a = parse_args(argv)
    B, S = a.batch, a.steps
    params = twins.init_params(0, size=a.size)
    act = jax.nn.relu

    def features(x):
        h = act(twins._conv(x[None], params["w1"], params["b1"]))
        h = twins._avgpool2(act(twins._conv(h, params["w2"], params["b2"])))
        h = act(twins._conv(h, params["w3"], params["b3"]))
        return twins._conv(h, params["w4"], params["b4"])

    def head(h, t):
        h = twins._avgpool2(act(h))
        return (h.reshape(1, -1) @ params["wd"] + params["bd"])[0, t]

    f = lambda x, t: head(features(x), t)
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.standard_normal((B, a.size, a.size, 3)).astype(np.float32))
    ts = jnp.asarray(rng.integers(0, 10, B))
    timing = dict(repeats=a.repeats, budget=30.0)
    rows = []

    def row(benchmark, config, c, t, n, ratio=None, ratio_of=None):
        rows.append(dict(family=FAMILY, benchmark=benchmark, config=config, compile_s=c, time_s=t,
                         n=n, images_per_s=B / t, ratio=ratio, ratio_of=ratio_of))
        _log(f"{benchmark:<28} {config:<24} {t:8.4f} s" + (f"  {ratio:.2f} {ratio_of}" if ratio else ""))

    c, t_grad, n = _time_jax(jax.vmap(jax.grad(f)), (xs, ts), {}, **timing)
    row("jax gradient (1 batch)", f"{B} img", c, t_grad, n)
    split = dict(features=features, head=head)
    one_pass = [("layer_gradient_x_activation", jx.layer_gradient_x_activation(**split))]
    if hasattr(jx, "grad_cam"):
        one_pass.insert(0, ("grad_cam", jx.grad_cam(**split)))
    for name, ex in one_pass:
        c, t, n = _time_jax(jax.vmap(ex), (xs, ts), {}, **timing)
        row(name, f"{B} img", c, t, n, t / t_grad, "x 1 batched gradient")
    for name, make in (
        ("layer_integrated_gradients", jx.layer_integrated_gradients),
        ("layer_conductance", jx.layer_conductance),
        ("internal_influence", jx.internal_influence),
    ):
        c, t, n = _time_jax(jax.vmap(make(**split, steps=S, batch_size=1)), (xs, ts), {}, **timing)
        row(name, f"steps={S}, batch_size=1", c, t, n, t / (S * t_grad), f"x {S} batched gradients")
    return rows


if __name__ == "__main__":
    import run

    print(run.format_table(main()))
