"""Robustness transforms (jaxplain._featurevis.transforms): exact small cases, keyed and
jit-friendly, and their checks."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplain import featurevis as fv
from jaxplain._featurevis import transforms


def test_doctests_run():
    assert doctest.testmod(transforms).failed == 0


def test_jitter_is_a_crop_within_range_and_the_key_decides():
    x = jnp.arange(10 * 10 * 1.0).reshape(10, 10, 1)
    offsets = set()
    for k in range(40):
        y = fv.jitter(3)(jax.random.key(k), x)
        oy, ox = divmod(int(y[0, 0, 0]), 10)
        np.testing.assert_array_equal(y, x[oy:oy + 7, ox:ox + 7])
        offsets.add((oy, ox))
    assert offsets <= {(i, j) for i in range(4) for j in range(4)} and len(offsets) > 8
    t = fv.standard()
    a = jax.jit(t)(jax.random.key(1), jnp.ones((32, 32, 3)) * 0.3)
    np.testing.assert_allclose(a, t(jax.random.key(1), jnp.ones((32, 32, 3)) * 0.3), atol=1e-6)


def test_scale_and_rotate_about_the_centre():
    x = jnp.zeros((9, 9, 1)).at[4, 6, 0].set(1.0)
    np.testing.assert_allclose(fv.random_scale([2.0])(jax.random.key(0), x)[4, 8, 0], 1.0, atol=1e-6)
    r = fv.random_rotate([90])(jax.random.key(0), x)  # (4, 6) -> (2, 4): a quarter turn about (4, 4)
    assert float(r[2, 4, 0]) == pytest.approx(1.0) and float(r.sum()) == pytest.approx(1.0)
    np.testing.assert_allclose(fv.random_rotate([0])(jax.random.key(0), x), x, atol=1e-6)


def test_bad_transforms():
    with pytest.raises(ValueError, match="d must be"):
        fv.jitter(0)
    with pytest.raises(ValueError, match="leaves nothing"):
        fv.jitter(5)(jax.random.key(0), jnp.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="scales must be > 0"):
        fv.random_scale([1.0, -1.0])
    with pytest.raises(ValueError, match="non-empty list"):
        fv.random_rotate([])
    with pytest.raises(TypeError, match="featurevis Transform"):
        fv.compose(fv.pad(1), lambda k, x: x)


def test_the_fused_scale_and_rotate_of_standard_is_the_two_in_turn():
    inner = (slice(5, 11), slice(5, 11))  # away from the edges (clamped there)
    # bilinear interpolation is exact on a linear image, so one resampling equals two in turn
    ramp = jnp.broadcast_to((jnp.arange(16.0)[:, None] + 2 * jnp.arange(16.0))[..., None], (16, 16, 1))
    a = transforms._scale_and_rotate([1.5], [30])(jax.random.key(0), ramp)
    b = fv.random_rotate([30])(jax.random.key(0), fv.random_scale([1.5])(jax.random.key(0), ramp))
    np.testing.assert_allclose(a[inner], b[inner], atol=1e-3)
