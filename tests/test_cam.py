"""The CAM family: Grad-CAM = CAM on a GAP + dense model, references from the papers' formulas."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxplain as jx
from jaxplain import _cam, _taps, zoo
from jaxplain import flax as jxf


@pytest.fixture(scope="module")
def vgg():
    model = zoo.VGG(features=(4, 6), classes=3)
    v = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    f = lambda x, t: model.apply(v, x[None])[0, t]
    abstract = nnx.eval_shape(lambda: zoo.VGGNNX(features=(4, 6), classes=3, rngs=nnx.Rngs(0)))
    f_nnx = jxf.from_nnx(zoo.linen_to_nnx(model, v, abstract))
    xs = jax.random.uniform(jax.random.key(1), (4, 8, 8, 3))
    return f, f_nnx, xs


def _act_grad(f, layer, x, t):
    sp = _taps.split("t", f, layer, None, None)
    a = sp.activation(x, t)
    g = jax.grad(lambda z: sp.rest(x, z, t))(a)
    return np.asarray(a[0], np.float64), np.asarray(g[0], np.float64)


def test_doctests_run():
    assert doctest.testmod(_cam).failed == 0


def test_grad_cam_matches_the_papers_formula(vgg):
    f, _, xs = vgg
    a, g = _act_grad(f, "stage1", xs[0], 1)
    alpha = g.mean(axis=(0, 1))  # Selvaraju et al. eq. (1)
    ref = np.maximum((a * alpha).sum(-1), 0)  # eq. (2)
    ours = jx.grad_cam(f, layer="stage1", upsample=False)(xs[0], 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)
    up = jx.grad_cam(f, layer="stage1")(xs[0], 1)
    assert up.shape == (8, 8) and float(up.min()) >= 0
    np.testing.assert_allclose(up, jax.image.resize(jnp.asarray(ref, jnp.float32), (8, 8), "bilinear"), rtol=1e-5, atol=1e-7)


def test_grad_cam_equals_cam_on_a_gap_dense_model(vgg):
    # The lecture's claim: CAM weights are the dense weights w_k; Grad-CAM's are w_k / (h w).
    f, _, xs = vgg
    for t in range(3):
        c = jx.cam(f, layer="stage1")(xs[1], t)
        g = jx.grad_cam(f, layer="stage1")(xs[1], t)
        np.testing.assert_allclose(g * 4 * 4, c, rtol=1e-5, atol=1e-6)


def test_cam_uses_the_dense_weights(vgg):
    f, _, xs = vgg
    model = zoo.VGG(features=(4, 6), classes=3)
    v = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    a, _ = _act_grad(f, "stage1", xs[2], 2)
    w = np.asarray(v["params"]["head"]["kernel"])[:, 2]  # Zhou et al.: M_c = sum_k w_k^c f_k
    np.testing.assert_allclose(jx.cam(f, layer="stage1", relu=False, upsample=False)(xs[2], 2), (a * w).sum(-1), rtol=1e-5, atol=1e-6)


def test_cam_rejects_a_layer_not_followed_by_gap_and_dense(vgg):
    f, _, xs = vgg
    with pytest.raises(ValueError, match="CAM needs layer 'stage1/conv0' to be followed by global average pooling"):
        jx.cam(f, layer="stage1/conv0")(xs[0], 0)


def test_grad_cam_plus_plus_matches_the_papers_formula(vgg):
    f, _, xs = vgg
    a, g = _act_grad(f, "stage1", xs[3], 0)
    # Chattopadhyay et al. eq. (19) (exponential output), eq. (10) for the weights.
    ref = np.zeros(a.shape[:2])
    for k in range(a.shape[-1]):
        gk, ak = g[..., k], a[..., k]
        denom = 2 * gk**2 + ak.sum() * gk**3
        alpha = np.where((gk != 0) & (denom != 0), gk**2 / np.where(denom != 0, denom, 1), 0)
        ref += (alpha * np.maximum(gk, 0)).sum() * ak
    ours = jx.grad_cam_plus_plus(f, layer="stage1", upsample=False, relu=False)(xs[3], 0)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)


def test_linen_equals_nnx_and_jit_vmap_equals_loop(vgg):
    f, f_nnx, xs = vgg
    ts = jnp.array([0, 1, 2, 0])
    for make in (jx.grad_cam, jx.grad_cam_plus_plus, jx.cam):
        a = jax.jit(jax.vmap(make(f, layer="stage1")))(xs, ts)
        b = jax.jit(jax.vmap(make(f_nnx, layer="stage1")))(xs, ts)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        ex = make(f, layer="stage1")
        loop = jnp.stack([ex(xs[i], ts[i]) for i in range(4)])
        np.testing.assert_allclose(a, loop, rtol=1e-5, atol=1e-7)


def test_errors(vgg):
    f, _, xs = vgg
    with pytest.raises(TypeError, match="upsample must be a bool"):
        jx.grad_cam(f, layer="stage1", upsample="yes")
    with pytest.raises(ValueError, match=r"the layer's output has shape \(1, 3\)"):
        jx.grad_cam(f, layer="head")(xs[0], 0)
    with pytest.raises(ValueError, match="Valid layer paths"):
        jx.grad_cam(f, layer="stage9")(xs[0], 0)
