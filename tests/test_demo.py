"""The demo writes a gallery with every method of the gallery list."""

import numpy as np

from jaxplain import __main__ as demo


def test_demo_quick_run_writes_the_gallery(tmp_path):
    out = tmp_path / "g" / "gallery.png"
    result = demo.main(["--quick", "--out", str(out)])
    assert out.exists() and out.stat().st_size > 10_000
    assert list(result["attributions"]) == [e.name for e in demo.GALLERY]
    for name, attr in result["attributions"].items():
        assert attr.shape == (2, 32, 32, 3), name
        assert np.all(np.isfinite(attr)) and np.any(attr != 0), name
