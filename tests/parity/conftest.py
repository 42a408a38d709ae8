"""Parity tests import the twin models from benchmarks/twins.py: put that folder on sys.path."""

import pathlib
import sys

_BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
if str(_BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(_BENCHMARKS))
