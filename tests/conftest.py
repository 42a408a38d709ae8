"""Test configuration: eight host devices for the sharding tests (set before JAX starts); one
thread per pytest-xdist worker when there are as many workers as cores (``-n auto``); one
compilation cache per run, shared by the workers."""

import os

_flags = ["--xla_force_host_platform_device_count=8"]
try:
    _cores = len(os.sched_getaffinity(0))
except AttributeError:
    _cores = os.cpu_count() or 1
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) >= _cores > 1:
    # each worker owns a core: XLA's and torch's thread pools would only fight over them
    # (measured: 13 % less time for the suite on 2 cores)
    _flags += ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
for _flag in _flags:
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "PYTEST_XDIST_WORKER" not in os.environ and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    # One compilation cache for this run, shared by the xdist workers (they inherit the
    # environment): a program that another test already compiled, same HLO and options, is
    # loaded instead of compiled again. Fresh each run, so every run compiles what it needs
    # once, as a clean checkout does. Measured side by side, alternating: 12-19 % less time
    # on 2 cores.
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="jaxplain-tests-jit-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import jax  # noqa: E402
import pytest  # noqa: E402

import jaxplain  # noqa: E402,F401  (first: its XLA:CPU defaults apply before any JAX computation)


@pytest.fixture
def x64():
    """Runs the test with 64-bit floats enabled."""
    with jax.enable_x64(True):
        yield
