"""The demo writes a gallery with every method of the gallery list."""

import numpy as np

from jaxplain import __main__ as demo


def test_demo_quick_run_writes_the_gallery(tmp_path):
    result = demo.main(["--quick", "--out", str(tmp_path / "g")])
    for family in demo.GALLERY:
        png = tmp_path / "g" / f"{family}.png"
        assert png.exists() and png.stat().st_size > 10_000
        assert str(png) in result["paths"]
    assert (tmp_path / "g" / "tsne.png").exists()
    names = [e.name for entries in demo.GALLERY.values() for e in entries]
    assert list(result["attributions"]) == names
    for name, attr in result["attributions"].items():
        assert attr.shape[0] == 2, name
        assert np.all(np.isfinite(attr)) and np.any(attr != 0), name
    for name in ("vit.png", "text.png", "text.html"):
        assert (tmp_path / "g" / name).exists(), name
    for name, attr in result["transformers"].items():
        assert attr.shape[0] == 2 and np.all(np.isfinite(attr)) and np.any(attr != 0), name
    for name in ("featurevis.png", "dataset_examples.png", "filters.png"):
        png = tmp_path / "g" / name
        assert png.exists() and png.stat().st_size > 5_000 and str(png) in result["paths"], name
    fv = result["featurevis"]
    assert fv["class_probability"].shape == (4,) and np.all(np.isfinite(fv["class_probability"]))
    assert fv["channel_vs_noise"].shape == (4,)  # what the renders achieve: tests/test_featurevis_render.py
