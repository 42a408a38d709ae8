"""Occlusion, feature ablation and exact Shapley values vs Captum's Occlusion, FeatureAblation and
ShapleyValues on the twin CNN (identical weights; jaxplain HWC, Captum CHW)."""

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

from captum.attr import FeatureAblation, KernelShap, Occlusion, ShapleyValues, ShapleyValueSampling  # noqa: E402

import jaxplain as jx  # noqa: E402
from tests import twins  # noqa: E402

pytestmark = pytest.mark.parity

SIZE = 16


@pytest.fixture(scope="module")
def net():
    apply, params, module = twins.make_twins(0, size=SIZE, channels=(4, 4, 4, 4), classes=5)
    f = lambda x, t: apply(params, x[None])[0, t]
    xs = np.random.default_rng(0).uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    return f, module, xs, np.array([1, 3])


def _chw(a):
    return torch.from_numpy(np.ascontiguousarray(twins.nhwc_to_nchw(a)))


def _close(ours, theirs_chw):
    theirs = twins.nchw_to_nhwc(theirs_chw.detach().numpy())
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())


@pytest.mark.parametrize("window, stride", [((4, 4, 3), (2, 2, 3)), ((3, 5, 1), (2, 3, 1))])
def test_occlusion_equals_captum(net, window, stride):
    f, module, xs, ts = net
    ours = np.stack([jx.occlusion(f, window=window, stride=stride, baseline=0.25)(jnp.asarray(x), int(t))
                     for x, t in zip(xs, ts)])
    chw = lambda s: (s[2], s[0], s[1])
    theirs = Occlusion(module).attribute(_chw(xs), sliding_window_shapes=chw(window), strides=chw(stride),
                                         baselines=0.25, target=torch.from_numpy(ts))
    _close(ours, theirs)


def test_feature_ablation_and_shapley_values_equal_captum(net):
    f, module, xs, ts = net
    cells = (np.arange(SIZE)[:, None] // 8) * 2 + np.arange(SIZE)[None, :] // 8  # a 2x2 grid: 4 features
    mask_hwc = cells[..., None]
    mask_chw = torch.from_numpy(cells[None, None]).long()
    for ours_fn, theirs_cls in ((jx.feature_ablation, FeatureAblation), (jx.shapley_values, ShapleyValues)):
        ex = ours_fn(f, mask=jnp.asarray(mask_hwc), baseline=0.1)
        ours = np.stack([ex(jnp.asarray(x), int(t)) for x, t in zip(xs, ts)])
        theirs = theirs_cls(module).attribute(_chw(xs), baselines=0.1, feature_mask=mask_chw,
                                               target=torch.from_numpy(ts))
        _close(ours, theirs)


def test_sampled_shapley_values_agree_with_captums_within_sampling_error(net):
    f, module, xs, ts = net
    cells = (np.arange(SIZE)[:, None] // 6) * 3 + np.arange(SIZE)[None, :] // 6  # 3x3 grid: 9 features
    mask_chw = torch.from_numpy(cells[None, None]).long()
    mask = jnp.asarray(cells[..., None])
    x, t = jnp.asarray(xs[0]), int(ts[0])
    exact = np.asarray(jx.shapley_values(f, mask=mask, baseline=0.1)(x, t))
    scale = np.abs(exact).max()
    import jax

    ours = {"sampling": jx.shapley_sampling(f, mask=mask, baseline=0.1, samples=200)(x, t, key=jax.random.key(0)),
            "kernel": jx.kernel_shap(f, mask=mask, baseline=0.1, samples=2000)(x, t, key=jax.random.key(0))}
    torch.manual_seed(0)
    theirs = {
        "sampling": ShapleyValueSampling(module).attribute(_chw(xs[:1]), baselines=0.1, feature_mask=mask_chw,
                                                           target=t, n_samples=200),
        "kernel": KernelShap(module).attribute(_chw(xs[:1]), baselines=0.1, feature_mask=mask_chw, target=t,
                                               n_samples=2000),
    }
    for name in ours:
        t_hwc = twins.nchw_to_nhwc(theirs[name].detach().numpy())[0]
        err_ours = np.abs(np.asarray(ours[name]) - exact).max() / scale
        err_theirs = np.abs(t_hwc - exact).max() / scale
        # both estimate the same exact values; measured (relative to the largest): sampling 0.024
        # (ours) / 0.022 (Captum), kernel 0.018 / 0.010
        assert err_ours < 0.1 and err_theirs < 0.1, (name, err_ours, err_theirs)
