"""The architecture, checked: rooms and import arrows, module sizes, and what ``import jaxplain``
costs.

Rooms: the shared ground (``_interpret``, ``_checks``, ``_paths``, ``_taps``, ``_contract``,
``_compile``) imports no method family; method families stand side by side on it and never import
each other (another family's method is reached by its public name, ``from jaxplain import ...``,
as a user would); adapters, plots, the zoo and the demo sit on top.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

import jaxplain

PACKAGE = pathlib.Path(jaxplain.__file__).resolve().parent
SHARED = {"_interpret", "_checks", "_paths", "_taps", "_contract", "_compile"}
FAMILIES = {"_gradients", "_layers", "_cam", "_modified_backprop", "_deeplift", "_lrp", "_tsne", "similarity",
            "_attention", "_tokens", "_featurevis", "_perturbation"}
OUTER = {"flax", "plot", "_plot_text", "zoo", "_zoo_transformers", "models", "data", "__main__", "_demo_transformers",
         "__init__", "featurevis", "objectives", "_demo_featurevis", "segmentation"}
MAX_LINES = 500  # per module, docstrings not counted


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _room(path: pathlib.Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: pathlib.Path):
    """``(room imported, name, line)`` for every import of jaxplain (nested ones included)."""
    rooms = SHARED | FAMILIES | OUTER
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "jaxplain" and len(parts) > 1:
                    yield parts[1], alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jaxplain":
            parts = node.module.split(".")
            for alias in node.names:
                if len(parts) > 1:
                    yield parts[1], alias.name, node.lineno
                elif alias.name in rooms:
                    yield alias.name, alias.name, node.lineno
                else:
                    yield "jaxplain", alias.name, node.lineno  # a public name of the package


def test_every_module_has_a_room():
    homeless = [str(p.relative_to(PACKAGE)) for p in _modules() if _room(p) not in SHARED | FAMILIES | OUTER]
    assert not homeless, f"modules outside every room (add them to a room above): {homeless}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_rooms(path):
    room = _room(path)
    bad = []
    for target, name, line in _imports(path):
        if target == room:
            continue
        if room in SHARED:
            ok = target in SHARED
        elif room in FAMILIES:
            ok = target in SHARED or (target == "jaxplain" and name in jaxplain.__all__)
        else:
            ok = True
        if not ok:
            bad.append(f"line {line}: {target}.{name}")
    assert not bad, f"{path.relative_to(PACKAGE)} ({room}) imports across rooms: {bad}"


def _code_lines(path: pathlib.Path) -> int:
    src = path.read_text()
    doc = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                doc.update(range(first.lineno, first.end_lineno + 1))
    return sum(1 for i, _ in enumerate(src.splitlines(), 1) if i not in doc)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path):
    assert _code_lines(path) <= MAX_LINES, f"{path.relative_to(PACKAGE)}: split it by concept"


def test_the_checker_sees_a_violation(tmp_path):
    """The room rule fails on a family importing another family's private name."""
    bad = tmp_path / "_cam.py"
    bad.write_text("from jaxplain._layers import _layer_grad\nfrom jaxplain import _paths\n")
    found = list(_imports(bad))
    assert ("_layers", "_layer_grad", 1) in found and ("_paths", "_paths", 2) in found


def test_import_jaxplain_does_not_import_flax():
    code = (
        "import sys, jax.numpy as jnp, jaxplain as jx\n"
        "assert 'flax' not in sys.modules, 'import jaxplain'\n"
        "jx.lrp(lambda v: jnp.sum(jnp.maximum(v, 0.0)))(jnp.ones(3))\n"
        "jx.layer_activation(features=lambda v: 2 * v, head=jnp.sum)(jnp.ones(3))\n"
        "assert 'flax' not in sys.modules, 'explaining a plain function'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"JAX_PLATFORMS": "cpu", "PATH": ""})
    assert out.returncode == 0, out.stderr[-2000:]
