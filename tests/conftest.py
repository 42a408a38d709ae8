"""Test configuration: eight host devices for the sharding tests (set before JAX starts)."""

import os

_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
