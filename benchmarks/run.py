"""Runs every benchmark family in this folder and prints one combined table.

A family is a ``benchmarks/*.py`` script that defines ``main(argv=None) -> list[dict]`` (one dict
per measured row). This file is not a family; the twin models live in ``tests/twins.py``.

Usage::

    python benchmarks/run.py                 # every family, its default settings
    python benchmarks/run.py --quick         # a fast smoke run (small sizes)
    python benchmarks/run.py --only gradients -- --batch 32
    python benchmarks/run.py -- --repeats 3  # flags after -- go to every family's main()
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import platform
import sys
from typing import Iterable

# "XLA defaults" rows are XLA's own: keep jaxplain from making its options the defaults at import
# (jaxplain/_compile.py); "+options" rows are what `import jaxplain` gives otherwise.
os.environ.setdefault("JAXPLAIN_XLA_DEFAULTS", "1")
HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# The columns of the table, in order, with their headers; a row may leave any of them out.
COLUMNS = (
    ("family", "family"),
    ("benchmark", "benchmark"),
    ("config", "config"),
    ("compile_s", "compile s"),
    ("time_s", "time s"),
    ("n", "n"),
    ("images_per_s", "images/s"),
    ("ratio", "ratio"),
    ("ratio_of", "ratio is"),
)


def families() -> list[str]:
    """Names of the family modules in this folder (scripts with a ``main``), sorted."""
    names = []
    for path in sorted(HERE.glob("*.py")):
        name = path.stem
        if name in {"run", "twins"} or name.startswith("_"):
            continue
        if "def main(" in path.read_text():
            names.append(name)
    return names


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def environment() -> str:
    """One line describing the machine and library versions."""
    import jax

    parts = [
        f"python {platform.python_version()}",
        f"jax {jax.__version__} ({jax.default_backend()}, {len(jax.devices())} device(s))",
        f"{cores()} cores",
        platform.processor() or platform.machine(),
    ]
    try:
        import torch

        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    try:
        import captum

        parts.append(f"captum {captum.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3g}" if abs(value) < 10 else f"{value:.2f}"
        return f"{value:.2e}"
    return str(value)


def format_table(rows: Iterable[dict], columns=COLUMNS) -> str:
    """A plain-text table of ``rows`` (dicts) with the given ``(key, header)`` columns.

    Columns no row has are dropped; numbers are right-aligned.
    """
    rows = list(rows)
    columns = [(k, h) for k, h in columns if any(r.get(k) is not None for r in rows)]
    cells = [[_fmt(r.get(k)) for k, _ in columns] for r in rows]
    numeric = [
        all(isinstance(r.get(k), (int, float)) or r.get(k) is None for r in rows)
        for k, _ in columns
    ]
    widths = [
        max([len(h)] + [len(row[i]) for row in cells]) for i, (_, h) in enumerate(columns)
    ]

    def line(values):
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)
        ).rstrip()

    out = [line([h for _, h in columns]), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def main(argv=None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", help="run only this family (repeatable)")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every family")
    args = parser.parse_args(argv)
    if args.quick:
        passthrough = ["--quick"] + passthrough
    names = args.only or families()
    rows: list[dict] = []
    for name in names:
        module = importlib.import_module(name)
        print(f"# running {name} ...", file=sys.stderr, flush=True)
        rows.extend(module.main(passthrough))
    print(f"# {environment()}")
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
