"""The README's Python examples run as written, one after the other."""

import pathlib
import re


def test_readme_python_blocks_run():
    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no Python example"
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["attrs"].shape == (8, 1, 16, 16, 32)  # the last block's layer attributions
