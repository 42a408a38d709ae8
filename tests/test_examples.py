"""The scripts in examples/ run as a user would copy them."""

import pathlib
import runpy

import jax
import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    return runpy.run_path(str(EXAMPLES / name))  # defines main() without running it


def test_explain_batch(tmp_path):
    out = tmp_path / "overlay.png"
    attr_ig, attr_sg = _load("explain_batch.py")["main"](["--out", str(out), "--train", "128", "--epochs", "1"])
    assert out.exists() and attr_ig.shape == attr_sg.shape == (8, 32, 32, 3)
    assert np.all(np.isfinite(attr_ig)) and np.all(np.isfinite(attr_sg))


def test_sharded():
    attrs = _load("sharded.py")["main"]()
    assert attrs.shape[0] == 4 * len(jax.devices())
    assert len(attrs.sharding.device_set) == len(jax.devices())


def test_lrp_resnet(tmp_path):
    out = tmp_path / "lrp.png"
    relevance, logits = _load("lrp_resnet.py")["main"](["--out", str(out), "--train", "128", "--epochs", "1"])
    assert out.exists() and set(relevance) == {"eps+ flat", "eps gamma box", "by path"}
    for r in relevance.values():
        assert r.shape == (4, 32, 32, 3) and np.all(np.isfinite(r))
