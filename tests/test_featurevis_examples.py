"""Dataset examples, filters and feature maps (jaxplain._featurevis.examples): streamed top-k equals
a stable argsort of the whole dataset (ties included), crops sit on the strongest activation."""

import doctest

import flax.linen as nn
import numpy as np
import pytest

import jaxplain as jx
from jaxplain import featurevis as fv
from jaxplain._featurevis import examples


def test_doctests_run():
    assert doctest.testmod(examples).failed == 0


@pytest.mark.parametrize("bottom", [False, True])
def test_streamed_top_k_is_a_stable_argsort_of_everything(bottom):
    rng = np.random.default_rng(0)
    xs = rng.integers(0, 7, (1000, 3)).astype(np.float32)  # many ties
    score = lambda x: x[0] * 2 + x[1]
    scores = 2 * xs[:, 0] + xs[:, 1]
    want = np.argsort(scores if bottom else -scores, kind="stable")[:37]
    for data in (xs, (xs[i:i + 64] for i in range(0, 1000, 64))):  # an array, or a loader's batches
        got = fv.top_k(score, data, 37, bottom=bottom, batch_size=100)
        np.testing.assert_array_equal(got.indices, want)
        np.testing.assert_array_equal(got.scores, scores[want])
        np.testing.assert_array_equal(got.examples, xs[want])
    assert len(fv.top_k(score, xs[:5], 9).indices) == 5


def test_top_k_refuses_nan_and_non_scalar_scores():
    xs = np.ones((10, 2), np.float32)
    xs[7, 0] = np.nan
    with pytest.raises(ValueError, match="NaN for example 7"):
        fv.top_k(lambda x: x[0], xs, 3, batch_size=4)
    with pytest.raises(TypeError, match="a scalar per example"):
        fv.top_k(lambda x: x, np.ones((4, 2)), 2)
    with pytest.raises(TypeError, match="array of examples or an iterable"):
        fv.top_k(lambda x: x[0], 3.0, 2)


class Pool(nn.Module):
    @nn.compact
    def __call__(self, x):
        a = nn.avg_pool(x, (2, 2), strides=(2, 2))
        return Identity(name="pooled")(a).sum()


class Identity(nn.Module):
    @nn.compact
    def __call__(self, a):
        return a


def test_crops_sit_on_the_strongest_activation_and_maps_and_filters_are_the_layer():
    model = Pool()
    f = lambda x: model.apply({}, x[None])
    xs = np.zeros((2, 16, 16, 2), np.float32)
    xs[0, 10, 4, 1] = 9.0  # pooled position (5, 2): input centre (11, 5)
    xs[1, 0, 15, 1] = 9.0  # a corner: the crop is clamped inside
    crops = fv.activation_crops(f, "pooled", xs, 1, size=4)
    assert crops.shape == (2, 4, 4, 2)
    np.testing.assert_array_equal(crops[0], xs[0, 9:13, 3:7])
    np.testing.assert_array_equal(crops[1], xs[1, 0:4, 12:16])
    maps = fv.feature_maps(f, "pooled", xs[0])
    assert maps.shape == (2, 8, 8) and maps[1, 5, 2] == pytest.approx(9.0 / 4)
    k = np.random.default_rng(0).normal(size=(3, 3, 3, 5))
    img = fv.filters(k)
    np.testing.assert_allclose(img[2], 0.5 + k[..., 2] / (2 * np.abs(k[..., 2]).max()))
    with pytest.raises(ValueError, match=r"\(kh, kw, C_in, C_out\)"):
        fv.filters(np.ones((3, 3, 3)))
    with pytest.raises(ValueError, match="channel=5"):
        fv.activation_crops(f, "pooled", xs, 5, size=4)
    assert jx.featurevis.top_k is fv.top_k


def test_grid_draws_images_and_maps_and_checks_them(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from jaxplain import plot
    from jaxplain._featurevis import plot as fv_plot

    assert doctest.testmod(fv_plot).failed == 0
    fig = plot.grid(np.zeros((5, 4, 4)), titles="abcde", cols=3, path=tmp_path / "g.png")
    assert len(fig.axes) == 5 and (tmp_path / "g.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        plot.grid(np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match="3 titles for 2 images"):
        plot.grid(np.zeros((2, 4, 4)), titles="abc")
