"""jaxplain.plot: the recipe's numbers on hand-made arrays, the drawn colour scales, the gallery's
PNG and grid, and bad input."""

import matplotlib

matplotlib.use("Agg")

import doctest  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import ndimage  # noqa: E402

import jaxplain.plot as P  # noqa: E402

# One pixel per row of this (H=2, W=2, C=3) attribution, values chosen so every reduction differs.
A = np.array(
    [
        [[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]],
        [[-3.0, 1.0, 1.0], [2.0, 2.0, -1.0]],
    ]
)
EXPECTED = {
    "abs_max": [[2.0, 0.0], [3.0, 2.0]],
    "abs_sum": [[3.5, 0.0], [5.0, 5.0]],
    "sum_abs": [[0.5, 0.0], [1.0, 3.0]],
    "sum": [[-0.5, 0.0], [-1.0, 3.0]],
    "l2": [[np.sqrt(5.25), 0.0], [np.sqrt(11.0), 3.0]],
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_doctests_run():
    result = doctest.testmod(P)
    assert result.failed == 0 and result.attempted > 20


# ----------------------------------------------------------------------------- reduce_channels


@pytest.mark.parametrize("how", sorted(EXPECTED))
def test_reduce_channels_numbers(how):
    np.testing.assert_allclose(P.reduce_channels(A, how), EXPECTED[how])
    # JAX input, channels-first via axis, and a batch give the same numbers.
    np.testing.assert_allclose(P.reduce_channels(jnp.asarray(A), how), EXPECTED[how], rtol=1e-6)
    np.testing.assert_allclose(P.reduce_channels(np.moveaxis(A, -1, 0), how, axis=0), EXPECTED[how])
    batch = P.reduce_channels(np.stack([A, 2 * A]), how)
    assert batch.shape == (2, 2, 2)
    np.testing.assert_allclose(batch[1], 2 * np.asarray(EXPECTED[how]))


def test_reduce_channels_returns_numpy_and_passes_2d_through():
    out = P.reduce_channels(jnp.asarray(A, dtype=jnp.float32))
    assert isinstance(out, np.ndarray)
    m = np.array([[-1.0, 2.0], [3.0, -4.0]])
    np.testing.assert_array_equal(P.reduce_channels(m, "abs_max"), m)  # no abs on a 2-D map


def test_reduce_channels_bad_input():
    with pytest.raises(ValueError, match="'max_abs'"):
        P.reduce_channels(A, "max_abs")
    with pytest.raises(ValueError, match=r"\(5,\)"):
        P.reduce_channels(np.ones(5))
    with pytest.raises(ValueError, match=r"axis 3 .*\(2, 2, 3\)"):
        P.reduce_channels(A, axis=3)
    with pytest.raises(TypeError, match="complex"):
        P.reduce_channels(A.astype(complex))
    with pytest.raises(TypeError, match="str"):
        P.reduce_channels("image")
    with pytest.raises(ValueError, match="NaN"):
        P.reduce_channels(np.full((2, 2, 3), np.nan))


# ----------------------------------------------------------------------------- clip_quantiles


def test_clip_quantiles_equals_numpy_quantile_clamps():
    x = np.random.default_rng(0).standard_cauchy((16, 16))
    for low, high in [(0.01, 0.99), (0.1, 0.7), (0.0, 1.0)]:
        lo, hi = np.quantile(x, [low, high])
        out = P.clip_quantiles(x, low, high)
        np.testing.assert_array_equal(out, np.clip(x, lo, hi))
        assert out.min() == lo and out.max() == hi
    np.testing.assert_array_equal(P.clip_quantiles(x, 0.0, 1.0), x)  # the identity


def test_clip_quantiles_symmetric_keeps_sign():
    x = np.array([-10.0, -1.0, 0.0, 0.5, 3.0])
    m = np.quantile(np.abs(x), 0.6)  # |x| sorted: 0, 0.5, 1, 3, 10 -> m = 1.8
    out = P.clip_quantiles(x, 0.3, 0.6, symmetric=True)  # low is unused
    np.testing.assert_allclose(out, [-1.8, -1.0, 0.0, 0.5, 1.8])
    np.testing.assert_array_equal(out, np.clip(x, -m, m))
    assert np.array_equal(np.sign(out), np.sign(x))


def test_clip_quantiles_bad_quantiles():
    with pytest.raises(ValueError, match="low=0.9, high=0.1"):
        P.clip_quantiles(np.ones(4), 0.9, 0.1)
    with pytest.raises(ValueError, match="1.5"):
        P.clip_quantiles(np.ones(4), 0.0, 1.5)
    with pytest.raises(ValueError, match="-0.1"):
        P.clip_quantiles(np.ones(4), -0.1, 0.5)
    with pytest.raises(TypeError, match="'1%'"):
        P.clip_quantiles(np.ones(4), "1%")
    with pytest.raises(TypeError, match="symmetric.*'yes'"):
        P.clip_quantiles(np.ones(4), symmetric="yes")


# ----------------------------------------------------------------------------- smooth, normalize


def test_smooth_constant_identity_and_scipy():
    np.testing.assert_allclose(P.smooth(np.full((7, 9), 3.0), 2.0), 3.0)
    x = np.random.default_rng(1).normal(size=(8, 8))
    np.testing.assert_array_equal(P.smooth(x, 0), x)
    np.testing.assert_allclose(P.smooth(x, 1.5), ndimage.gaussian_filter(x, 1.5))
    assert P.smooth(x, 1.5).std() < x.std()  # smoother


def test_smooth_bad_input():
    with pytest.raises(ValueError, match="-1"):
        P.smooth(np.ones((3, 3)), -1.0)
    with pytest.raises(ValueError, match=r"\(3, 3, 3\)"):
        P.smooth(np.ones((3, 3, 3)), 1.0)
    with pytest.raises(TypeError, match="'wide'"):
        P.smooth(np.ones((3, 3)), "wide")


def test_normalize_ranges_and_zero_map():
    x = np.random.default_rng(2).normal(size=(6, 6))
    s = P.normalize(x, signed=True)
    assert np.max(np.abs(s)) == pytest.approx(1.0) and np.array_equal(np.sign(s), np.sign(x))
    np.testing.assert_allclose(s * np.max(np.abs(x)), x)
    u = P.normalize(x, signed=False)
    assert u.min() == 0.0 and u.max() == 1.0
    np.testing.assert_allclose(u, (x - x.min()) / (x.max() - x.min()))
    for signed in (True, False):
        z = P.normalize(jnp.zeros((3, 3)), signed=signed)
        assert isinstance(z, np.ndarray) and np.all(z == 0) and not np.any(np.isnan(z))
    assert np.all(P.normalize(np.full(4, 7.0), signed=False) == 0)
    with pytest.raises(TypeError, match="signed.*'auto'"):
        P.normalize(x, signed="auto")


# ----------------------------------------------------------------------------- heatmap, overlay


def test_heatmap_signed_uses_symmetric_limits_and_diverging_cmap():
    fig, ax = plt.subplots()
    attr = np.zeros((8, 8, 3))
    attr[1, 1] = [1.0, 0.5, 0.5]  # channel sum +2
    attr[6, 6] = [-5.0, 0.0, 0.0]  # channel sum -5
    im = P.heatmap(attr, ax, reduce="sum", clip=None)
    assert im.get_clim() == (-5.0, 5.0)
    assert im.get_cmap().name == "bwr"
    np.testing.assert_allclose(im.get_array(), attr.sum(-1))
    assert len(fig.axes) == 2  # the image and its colour bar
    # Clipping in signed mode is symmetric: |map| to its high quantile, so the limits stay (-m, m).
    im = P.heatmap(attr, plt.subplots()[1], reduce="sum", clip=(0.01, 0.99))
    m = np.quantile(np.abs(attr.sum(-1)), 0.99)
    np.testing.assert_allclose(im.get_clim(), (-m, m))


def test_heatmap_unsigned_uses_min_max():
    rng = np.random.default_rng(3)
    attr = rng.normal(size=(10, 10, 3))
    _, ax = plt.subplots()
    im = P.heatmap(attr, ax, colorbar=False, title="saliency")
    m = np.max(np.abs(attr), -1)
    lo, hi = np.quantile(m, [0.01, 0.99])
    assert im.get_clim() == (lo, hi)
    assert im.get_cmap().name == "inferno"
    assert ax.get_title() == "saliency" and len(ax.figure.axes) == 1
    # A signed reduction of a one-signed map is drawn unsigned; signed=True forces a diverging map.
    im = P.heatmap(np.abs(attr), plt.subplots()[1], reduce="sum", clip=None)
    s = np.abs(attr).sum(-1)
    assert im.get_clim() == (s.min(), s.max()) and im.get_cmap().name == "inferno"
    im = P.heatmap(s, plt.subplots()[1], reduce=None, signed=True, clip=None, cmap="RdBu_r")
    assert im.get_clim() == (-s.max(), s.max()) and im.get_cmap().name == "RdBu_r"


def test_heatmap_smoothing_and_zero_map():
    attr = np.zeros((9, 9))
    attr[4, 4] = 1.0
    im = P.heatmap(attr, plt.subplots()[1], clip=None, smooth_sigma=1.0)
    np.testing.assert_allclose(im.get_array(), ndimage.gaussian_filter(attr, 1.0))
    im = P.heatmap(np.zeros((4, 4, 3)), plt.subplots()[1], reduce="sum", signed=True)
    assert im.get_clim() == (-1.0, 1.0) and np.all(np.asarray(im.get_array()) == 0)


def test_heatmap_bad_input():
    with pytest.raises(ValueError, match="'mean'"):
        P.heatmap(A, reduce="mean")
    with pytest.raises(ValueError, match=r"reduce=None .*\(2, 2, 3\)"):
        P.heatmap(A, reduce=None)
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 3\)"):
        P.heatmap(A[None])
    with pytest.raises(TypeError, match="clip.*0.99"):
        P.heatmap(A, clip=0.99)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes.*'sum'"):
        P.heatmap(A, "sum")
    with pytest.raises(TypeError, match="signed.*'yes'"):
        P.heatmap(A, signed="yes")


def test_overlay_draws_image_then_map():
    rng = np.random.default_rng(4)
    image = rng.uniform(size=(6, 6, 3))
    attr = rng.normal(size=(6, 6, 3))
    fig, ax = plt.subplots()
    out = P.overlay(jnp.asarray(image), attr, ax, alpha=0.4)
    assert out is ax and len(ax.images) == 2
    np.testing.assert_allclose(ax.images[0].get_array(), image)  # in [0, 1]: drawn as it is
    assert ax.images[1].get_alpha() == 0.4 and ax.images[1].get_cmap().name == "inferno"
    assert len(fig.axes) == 2  # a colour bar
    # One channel: grayscale; standardised values are min-max scaled; uint8 read as 0..255.
    gray = rng.normal(size=(6, 6, 1))
    ax = P.overlay(gray, attr, plt.subplots()[1], colorbar=False)
    shown = np.asarray(ax.images[0].get_array())
    assert ax.images[0].get_cmap().name == "gray" and shown.shape == (6, 6)
    np.testing.assert_allclose(shown, (gray[..., 0] - gray.min()) / (gray.max() - gray.min()))
    u8 = np.full((6, 6, 3), 255, dtype=np.uint8)
    ax = P.overlay(u8, attr, plt.subplots()[1])
    np.testing.assert_allclose(ax.images[0].get_array(), 1.0)


def test_overlay_bad_input():
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(6, 6\)"):
        P.overlay(np.ones((6, 6, 3)), np.ones((4, 4, 3)))
    with pytest.raises(ValueError, match=r"\(3, 6, 6\)"):
        P.overlay(np.ones((3, 6, 6)), np.ones((6, 6, 3)))
    with pytest.raises(ValueError, match="alpha.*1.5"):
        P.overlay(np.ones((6, 6, 3)), np.ones((6, 6, 3)), alpha=1.5)


# ----------------------------------------------------------------------------- gallery


def test_gallery_png_and_grid(tmp_path):
    rng = np.random.default_rng(5)
    n, methods = 3, {
        "gradient": rng.normal(size=(3, 12, 12, 3)),
        "integrated gradients": jnp.asarray(rng.normal(size=(3, 12, 12, 3))),
        "reduced": rng.uniform(size=(3, 12, 12)),
    }
    images = rng.uniform(size=(n, 12, 12, 3)).astype(np.float32)
    path = tmp_path / "gallery.png"
    fig = P.gallery(images, methods, labels=["disk", "cross", "square"], path=path, dpi=60)
    assert type(fig).__name__ == "Figure"
    assert len(fig.axes) == n * (1 + len(methods))  # no colour bars by default
    width, height = fig.get_size_inches() * 60
    pixels = mpimg.imread(path)
    assert pixels.shape[:2] == (round(height), round(width))
    assert pixels[..., :3].std() > 0.05  # something was drawn
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["disk", "gradient", "integrated\ngradients", "reduced"]
    assert titles[4] == "cross" and titles[5:8] == ["", "", ""]
    # Each cell has its own colour scale: the first row's maps are scaled to their own values.
    for ax, attr in zip(fig.axes[1:4], methods.values()):
        m = P.reduce_channels(np.asarray(attr)[0])
        assert ax.images[0].get_clim() == tuple(np.quantile(m, [0.01, 0.99]))


def test_gallery_overlay_colorbars_and_signed(tmp_path):
    rng = np.random.default_rng(6)
    images = rng.uniform(size=(2, 8, 8, 1))
    attrs = {"gradient x input": rng.normal(size=(2, 8, 8, 1))}
    fig = P.gallery(images, attrs, overlay=True, colorbar=True, reduce="sum", path=tmp_path / "o.png")
    assert len(fig.axes) == 2 * 2 + 2  # plus one colour bar per map
    cell = fig.axes[1]
    assert len(cell.images) == 2 and cell.images[1].get_cmap().name == "bwr"
    lo, hi = cell.images[1].get_clim()
    assert lo == -hi and hi > 0
    assert fig.axes[0].get_title() == "input"
    assert (tmp_path / "o.png").stat().st_size > 1000


def test_gallery_bad_input():
    images = np.ones((2, 8, 8, 3))
    ok = {"g": np.ones((2, 8, 8, 3))}
    with pytest.raises(TypeError, match="dict.*ndarray"):
        P.gallery(images, np.ones((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="empty"):
        P.gallery(images, {})
    with pytest.raises(ValueError, match=r"attributions\['g'\] .*\(3, 8, 8, 3\)"):
        P.gallery(images, {"g": np.ones((3, 8, 8, 3))})
    with pytest.raises(ValueError, match="1 labels for 2 images"):
        P.gallery(images, ok, labels=["disk"])
    with pytest.raises(TypeError, match="labels.*'disk'"):
        P.gallery(images, ok, labels="disk")
    with pytest.raises(ValueError, match=r"\(8, 8, 3\)"):
        P.gallery(images[0], ok)
    with pytest.raises(ValueError, match="dpi must be >= 1, got 0"):
        P.gallery(images, ok, dpi=0)
