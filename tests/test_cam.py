"""The CAM family and the modified-ReLU interpreter behind guided backprop: references written from
the papers' formulas in NumPy, Grad-CAM = CAM on a GAP + dense model, Linen = NNX = features/head,
jit(vmap) = loop, and the errors."""

import doctest

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

import jaxplain as jx
from jaxplain import _cam, _taps, zoo
from jaxplain import flax as jxf

SIZE, WIDTHS, CLASSES = 8, (4, 6), 3


@pytest.fixture(scope="module")
def vgg():
    """zoo.VGG (two conv stages, GAP, Dense "head") with NumPy weights, in Linen, NNX and as plain
    features/head functions; "stage1" is the pooled layer, 4 x 4 x 6."""
    model = zoo.VGG(features=WIDTHS, classes=CLASSES)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))
    rng = np.random.default_rng(0)

    def init(s):
        fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 10
        return jnp.asarray(rng.normal(size=s.shape) * np.sqrt(2.0 / fan_in), jnp.float32)

    v = jax.tree_util.tree_map(init, shapes)
    f = lambda x, t: model.apply(v, x[None])[0, t]
    make_nnx = lambda: zoo.VGGNNX(features=WIDTHS, classes=CLASSES, rngs=nnx.Rngs(0))
    abstract = nnx.eval_shape(make_nnx)
    f_nnx = jxf.from_nnx(zoo.linen_to_nnx(model, v, abstract))
    p = v["params"]

    def conv(h, q):
        dn = ("NHWC", "HWIO", "NHWC")
        out = lax.conv_general_dilated(h, q["kernel"], (1, 1), "SAME", dimension_numbers=dn)
        return out + q["bias"]

    def features(x):  # the same network up to "stage1", as a plain function
        h = x[None]
        for i in range(len(WIDTHS)):
            if i:
                h = nn.avg_pool(h, (2, 2), (2, 2))
            s = p[f"stage{i}"]
            h = jax.nn.relu(conv(jax.nn.relu(conv(h, s["conv0"])), s["conv1"]))
        return h

    def head(a, t):
        return (jnp.mean(a, axis=(1, 2)) @ p["head"]["kernel"] + p["head"]["bias"])[0, t]

    xs = jnp.asarray(rng.uniform(size=(4, SIZE, SIZE, 3)), jnp.float32)
    return dict(model=model, v=v, f=f, f_nnx=f_nnx, features=features, head=head, xs=xs)


def _act_grad(f, layer, x, t):
    sp = _taps.split("t", f, layer, None, None)
    a = sp.activation(x, t)
    g = jax.grad(lambda z: sp.rest(x, z, t))(a)
    return np.asarray(a[0], np.float64), np.asarray(g[0], np.float64)


def _bilinear(m, size):
    """torch.nn.functional.interpolate(mode="bilinear", align_corners=False), in NumPy."""

    def matrix(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        lam = src - i0
        out = np.zeros((n_out, n_in))
        np.add.at(out, (np.arange(n_out), i0), 1 - lam)
        np.add.at(out, (np.arange(n_out), i1), lam)
        return out

    return matrix(m.shape[0], size[0]) @ m @ matrix(m.shape[1], size[1]).T


def test_doctests_run():
    assert doctest.testmod(_cam).failed == 0


def test_grad_cam_matches_the_papers_formula(vgg):
    f, xs = vgg["f"], vgg["xs"]
    a, g = _act_grad(f, "stage1", xs[0], 1)
    alpha = g.mean(axis=(0, 1))  # Selvaraju et al. eq. (1)
    lin = (a * alpha).sum(-1)  # eq. (2) before the ReLU
    for relu in (False, True):
        ref = np.maximum(lin, 0) if relu else lin
        ours = jx.grad_cam(f, layer="stage1", upsample=False, relu=relu)(xs[0], 1)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)
        up = jx.grad_cam(f, layer="stage1", relu=relu)(xs[0], 1)
        np.testing.assert_allclose(up, _bilinear(ref, (SIZE, SIZE)), rtol=1e-5, atol=1e-7)
    assert float(up.min()) >= 0 and float(lin.min()) < 0  # the ReLU had something to remove


def test_grad_cam_equals_cam_on_a_gap_dense_model(vgg):
    # The lecture's claim, the acceptance: at the pooled layer Grad-CAM is CAM. Exactly:
    # CAM's weights are the dense weights w_k, Grad-CAM's are w_k / (h w) (Selvaraju et al. 3.1),
    # so the maps agree up to that positive constant, which ReLU and resizing commute with.
    f, xs = vgg["f"], vgg["xs"]
    hw = (SIZE // 2) ** 2
    for relu in (False, True):
        for upsample in (False, True):
            c = jx.cam(f, layer="stage1", relu=relu, upsample=upsample)(xs[1], 2)
            g = jx.grad_cam(f, layer="stage1", relu=relu, upsample=upsample)(xs[1], 2)
            np.testing.assert_allclose(g * hw, c, rtol=1e-5, atol=1e-6 * float(jnp.abs(c).max()))
            norm = lambda m: (m - m.min()) / (m.max() - m.min())  # as displayed: identical
            np.testing.assert_allclose(norm(g), norm(c), atol=1e-5)


def test_cam_uses_the_dense_weights(vgg):
    f, xs, v = vgg["f"], vgg["xs"], vgg["v"]
    a, _ = _act_grad(f, "stage1", xs[2], 2)
    # Zhou et al.: M_c = sum_k w_k^c f_k, with the dense weights and no bias.
    w = np.asarray(v["params"]["head"]["kernel"])[:, 2]
    ours = jx.cam(f, layer="stage1", relu=False, upsample=False)(xs[2], 2)
    np.testing.assert_allclose(ours, (a * w).sum(-1), rtol=1e-5, atol=1e-6)


def test_cam_rejects_heads_other_than_gap_and_dense(vgg):
    f, xs, model, v = vgg["f"], vgg["xs"], vgg["model"], vgg["v"]
    # A ReLU between the tapped convolution and the pooling: the gradient varies over positions.
    with pytest.raises(ValueError, match=r"CAM needs layer 'stage1/conv1' to be followed by global "
                       r"average pooling .* varies over positions"):
        jx.cam(f, layer="stage1/conv1")(xs[0], 0)
    # A softmax output: the gradient is constant over positions but changes with A.
    soft = jxf.from_linen(model, v, output="softmax")
    with pytest.raises(ValueError, match="changes when A is set to 0"):
        jx.cam(soft, layer="stage1")(xs[0], 0)
    # GAP, then a hidden dense + ReLU layer: constant over positions, and caught all the same.
    hidden = jnp.asarray(np.random.default_rng(1).normal(size=(3, 5)), jnp.float32)
    deep = lambda a, t: (jax.nn.relu(jnp.mean(a, axis=(0, 1)) @ hidden) - 0.5)[t]
    with pytest.raises(ValueError, match="features to be followed by global average pooling"):
        jx.cam(features=lambda x: x[::2, ::2] * 3.0, head=deep)(xs[0], 1)


def test_grad_cam_plus_plus_matches_the_papers_formula(vgg):
    f, xs = vgg["f"], vgg["xs"]
    a, g = _act_grad(f, "stage1", xs[3], 0)
    h, w, channels = a.shape
    # Chattopadhyay et al. eq. (19) (Y = exp(S)) for alpha, eq. (10) for the weights, eq. (6) for
    # the map, written out position by position.
    ref = np.zeros((h, w))
    for k in range(channels):
        total = sum(a[i, j, k] for i in range(h) for j in range(w))
        wk = 0.0
        for i in range(h):
            for j in range(w):
                gk = g[i, j, k]
                denom = 2 * gk**2 + total * gk**3
                alpha = gk**2 / denom if gk != 0 and denom != 0 else 0.0
                wk += alpha * max(gk, 0.0)
        ref += wk * a[:, :, k]
    ours = jx.grad_cam_plus_plus(f, layer="stage1", upsample=False, relu=False)(xs[3], 0)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
    relu_up = jx.grad_cam_plus_plus(f, layer="stage1")(xs[3], 0)
    np.testing.assert_allclose(relu_up, _bilinear(np.maximum(ref, 0), (SIZE, SIZE)), rtol=1e-4,
                               atol=1e-6 * np.abs(ref).max())


def test_guided_grad_cam_is_guided_backprop_times_the_resized_map(vgg):
    f, xs = vgg["f"], vgg["xs"]
    gb = np.asarray(jx.guided_backprop(f)(xs[0], 1))
    m = np.asarray(jx.grad_cam(f, layer="stage1", upsample=False)(xs[0], 1))  # with its ReLU
    nearest = m[np.arange(SIZE) * 4 // SIZE][:, np.arange(SIZE) * 4 // SIZE]  # floor(d h / H)
    ours = jx.guided_grad_cam(f, layer="stage1")(xs[0], 1)
    np.testing.assert_allclose(ours, gb * nearest[..., None], rtol=1e-5, atol=1e-7)
    ours = jx.guided_grad_cam(f, layer="stage1", interpolation="bilinear")(xs[0], 1)
    ref = gb * _bilinear(m, (SIZE, SIZE))[..., None]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)
    # torch's nearest rule at a non-integer factor (3 -> 7): floor(d * 3 / 7) in float32.
    assert _cam._nearest_index(3, 7).tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_linen_nnx_features_head_agree_and_jit_vmap_equals_loop(vgg):
    f, f_nnx, xs = vgg["f"], vgg["f_nnx"], vgg["xs"]
    split = dict(features=vgg["features"], head=vgg["head"])
    ts = jnp.array([0, 1, 2, 0])
    for make in (jx.grad_cam, jx.grad_cam_plus_plus, jx.cam, jx.guided_grad_cam):
        ex = make(f, layer="stage1")
        a = jax.jit(jax.vmap(ex))(xs, ts)
        loop = jnp.stack([ex(xs[i], ts[i]) for i in range(4)])
        tol = dict(rtol=1e-4, atol=1e-5 * float(jnp.abs(loop).max()))
        np.testing.assert_allclose(a, loop, **tol)
        nnx_maps = jax.jit(jax.vmap(make(f_nnx, layer="stage1")))(xs, ts)
        np.testing.assert_allclose(nnx_maps, loop, **tol)
        np.testing.assert_allclose(jax.jit(jax.vmap(make(**split)))(xs, ts), loop, **tol)
    for make in (jx.guided_backprop, jx.deconvnet):
        ex = make(f)
        loop = jnp.stack([ex(xs[i], ts[i]) for i in range(4)])
        tol = dict(rtol=1e-4, atol=1e-5 * float(jnp.abs(loop).max()))
        np.testing.assert_allclose(jax.jit(jax.vmap(ex))(xs, ts), loop, **tol)
        np.testing.assert_allclose(jax.jit(jax.vmap(make(f_nnx)))(xs, ts), loop, **tol)
        assert not np.allclose(loop, jax.vmap(jax.grad(f))(xs, ts))  # the rule changed something


def test_errors(vgg):
    f, xs = vgg["f"], vgg["xs"]
    for make in (jx.grad_cam, jx.grad_cam_plus_plus, jx.cam):  # options: at build time
        with pytest.raises(TypeError, match="upsample must be True or False"):
            make(f, layer="stage1", upsample="yes")
        with pytest.raises(TypeError, match="relu must be True or False"):
            make(f, layer="stage1", relu=1)
        with pytest.raises(TypeError, match="layer must be the path of a module"):
            make(f, layer=3)
        with pytest.raises(TypeError, match="pass either f and layer=, or features= and head="):
            make(f, layer="stage1", features=vgg["features"], head=vgg["head"])
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        jx.guided_grad_cam(f, layer="stage1", interpolation="cubic")
    with pytest.raises(TypeError, match="f must be a callable"):
        jx.guided_backprop("model")
    with pytest.raises(ValueError, match=r"no layer 'stage9'.*Valid layer paths: 'stage0/conv0'"):
        jx.grad_cam(f, layer="stage9")(xs[0], 0)
    with pytest.raises(ValueError, match=r"the layer's output has shape \(1, 3\)"):
        jx.grad_cam(f, layer="head")(xs[0], 0)
    pair = jx.grad_cam(features=lambda x: x["a"][None], head=lambda a, t: jnp.sum(a) * t)
    with pytest.raises(ValueError, match="needs x to be one image .* upsample=False"):
        pair({"a": xs[0]}, 1.0)


def test_grad_cam_on_sequence_and_dense_layers_and_per_channel():
    """(L, K): weights are the mean over L; (K,): the gradient itself; attr_dim_summation=False
    keeps alpha_k A_k per channel. Closed forms on a linear head."""
    w = jnp.array([[1.0, -2.0], [0.5, 3.0], [2.0, 1.0]])  # head: sum(A * w) over (L=3, K=2)
    features = lambda x: jnp.stack([x, 2 * x], axis=-1)  # (3,) -> (3, 2)
    x = jnp.array([1.0, 2.0, -1.0])
    a = features(x)
    alpha = w.mean(axis=0)
    seq = jx.grad_cam(features=features, head=lambda h: jnp.sum(h * w), relu=False, upsample=False)
    np.testing.assert_allclose(seq(x), a @ alpha, rtol=1e-6)
    per = jx.grad_cam(features=features, head=lambda h: jnp.sum(h * w), relu=False,
                      upsample=False, attr_dim_summation=False)
    np.testing.assert_allclose(per(x), a * alpha, rtol=1e-6)
    up = jx.grad_cam(features=features, head=lambda h: jnp.sum(h * w), relu=False)
    np.testing.assert_allclose(up(x), a @ alpha, rtol=1e-6)  # already x's length
    v = jnp.array([1.0, -1.0, 2.0])
    dense = jx.grad_cam(features=lambda x: 3 * x, head=lambda h: v @ h, relu=False, upsample=False)
    np.testing.assert_allclose(dense(x), jnp.sum(v * 3 * x), rtol=1e-6)
    with pytest.raises(ValueError, match="no spatial axis.*upsample=False"):
        jx.grad_cam(features=lambda x: 3 * x, head=lambda h: v @ h)(x)
    with pytest.raises(TypeError, match="attr_dim_summation must be True or False"):
        jx.grad_cam(features=features, head=jnp.sum, attr_dim_summation=0)
    with pytest.raises(ValueError, match=r"the layer's output has shape \(\)"):
        jx.grad_cam(features=jnp.sum, head=lambda h: 2 * h, upsample=False)(x)
