"""Attributions of every family pinned to values recorded before the architecture move (#12).

The values in ``tests/data/pinned.npz`` were computed by :func:`compute` on commit ff5d3b5 (the
code before the shared interpreter, checks, paths and taps were moved), in float64 on this
project's CPU machine. A move that keeps every result must reproduce them to 1e-6 of each
result's scale; a change that alters a result on purpose must re-record them and say why.

Record again (only on purpose): ``python -m tests.test_pinned --record``.
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain import zoo
from tests.nets import cnn_f, init_cnn

PINNED = pathlib.Path(__file__).resolve().parent / "data" / "pinned.npz"


def _cnn():
    f = cnn_f(init_cnn(jax.random.key(0), dtype=jnp.float64))
    x = jax.random.uniform(jax.random.key(1), (8, 8, 3), jnp.float64)
    refs = jax.random.uniform(jax.random.key(3), (4, 8, 8, 3), jnp.float64)
    return f, x, jax.random.key(2), refs


def _vgg():
    vgg = zoo.VGG(features=(4, 6), classes=3)
    vv = vgg.init(jax.random.key(4), jnp.zeros((1, 8, 8, 3), jnp.float64))
    return lambda x, t: vgg.apply(vv, x[None])[0, t]


def gradients() -> dict:
    f, x, key, refs = _cnn()
    out = {}
    out["gradient"] = jx.gradient(f)(x, 1)
    out["gradient_x_input"] = jx.gradient_x_input(f)(x, 1)
    out["integrated_gradients"] = jx.integrated_gradients(f, steps=16)(x, 1)
    out["integrated_gradients_trapezoid"] = jx.integrated_gradients(
        f, steps=7, method="riemann_trapezoid", baseline=0.5, batch_size=3
    )(x, 2)
    out["smoothgrad"] = jx.smoothgrad(jx.gradient(f), samples=8, sigma=0.2)(x, 1, key=key)
    out["vargrad"] = jx.smoothgrad(jx.gradient_x_input(f), samples=5, kind="vargrad")(x, 0, key=key)
    out["expected_gradients"] = jx.expected_gradients(f, baselines=refs, samples=6, sigma=0.1)(
        x, 1, key=key
    )
    return out


def backprop() -> dict:
    """Modified backprop, DeepLIFT, LRP (pure JAX CNN)."""
    f, x, _, refs = _cnn()
    out = {}
    out["guided_backprop"] = jx.guided_backprop(f)(x, 1)
    out["deconvnet"] = jx.deconvnet(f)(x, 1)
    out["deeplift"] = jx.deeplift(f, baseline=0.1)(x, 1)
    out["deeplift_shap"] = jx.deeplift_shap(f, baselines=refs[:3])(x, 2)
    out["lrp_epsilon_plus_flat"] = jx.lrp(f)(x, 1)
    out["lrp_gamma_box"] = jx.lrp(f, rules=jx.composites.epsilon_gamma_box(low=0.0, high=1.0))(x, 1)
    out["lrp_alpha2_beta1"] = jx.lrp(f, rules=jx.composites.epsilon_alpha2_beta1())(x, 0)
    return out


def layers() -> dict:
    """Layer and neuron methods on a Linen model."""
    _, x, _, _ = _cnn()
    g = _vgg()
    out = {}
    out["layer_activation"] = jx.layer_activation(g, layer="stage0/conv1")(x, 1)
    out["layer_gradient_x_activation"] = jx.layer_gradient_x_activation(g, layer="stage1")(x, 1)
    out["layer_integrated_gradients"] = jx.layer_integrated_gradients(g, layer="stage0", steps=9)(x, 2)
    out["layer_conductance"] = jx.layer_conductance(g, layer="stage0/conv1", steps=9)(x, 2)
    out["internal_influence"] = jx.internal_influence(g, layer="stage1", steps=6)(x, 0)
    out["neuron_gradient"] = jx.neuron_gradient(g, layer="stage1", neuron=(0, 1, 2, 3))(x, 0)
    out["neuron_integrated_gradients"] = jx.neuron_integrated_gradients(
        g, layer="stage1", neuron=(0, 1, 2, 3), steps=8
    )(x, 0)
    out["neuron_conductance"] = jx.neuron_conductance(g, layer="stage1", neuron=(0, 2, 1, 4), steps=8)(
        x, 1
    )
    return out


def cam_and_paths() -> dict:
    """The CAM family, LRP by module path, the BatchNorm canonizer, DeepLIFT on a ResNet."""
    _, x, _, _ = _cnn()
    g = _vgg()
    out = {}
    out["cam"] = jx.cam(g, layer="stage1")(x, 1)
    out["grad_cam"] = jx.grad_cam(g, layer="stage0", upsample=False)(x, 2)
    out["grad_cam_plus_plus"] = jx.grad_cam_plus_plus(g, layer="stage1")(x, 2)
    out["guided_grad_cam"] = jx.guided_grad_cam(g, layer="stage1")(x, 1)
    rules = jx.composites.custom(
        types={"conv": jx.rules.zplus, "dense": jx.rules.epsilon(epsilon=0.1)},
        first=jx.rules.flat,
        paths={"head": jx.rules.zero},
    )
    out["lrp_custom_paths"] = jx.lrp(g, rules=rules)(x, 1)
    res = zoo.ResNet(features=(4, 6), classes=3)
    rv = res.init(jax.random.key(5), jnp.zeros((1, 8, 8, 3), jnp.float64))
    h = lambda x, t: res.apply(rv, x[None])[0, t]
    out["lrp_resnet_merged"] = jx.lrp(jx.canonizers.merge_batchnorm(h))(x, 1)
    out["deeplift_resnet"] = jx.deeplift(h)(x, 2)
    return out


def representations() -> dict:
    """t-SNE and representation similarity."""
    out = {}
    feats = np.random.default_rng(0).normal(size=(60, 5))
    out["tsne"] = jx.tsne(feats, key=jax.random.key(6), perplexity=10.0, n_iter=120, progress=False)
    other = feats @ np.random.default_rng(1).normal(size=(5, 4))
    out["cka_linear"] = jx.similarity.cka(feats, other)
    out["cka_rbf"] = jx.similarity.cka(feats, other, kernel="rbf")
    out["svcca"] = jx.similarity.svcca(feats, other, keep=3)
    out["pwcca"] = jx.similarity.pwcca(feats, other)
    out["pca"] = jx.similarity.pca(feats, 3).projected
    return out


GROUPS = (gradients, backprop, layers, cam_and_paths, representations)


def compute() -> dict[str, np.ndarray]:
    """Every pinned attribution, by name (float64; call under ``jax.enable_x64(True)``)."""
    out = {}
    for group in GROUPS:
        out.update(group())
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.__name__)
def test_attributions_are_unchanged(group):
    pinned = np.load(PINNED)
    with jax.enable_x64(True):
        current = {k: np.asarray(v) for k, v in group().items()}
    errors = []
    for name, got in current.items():
        assert name in pinned.files, f"{name} is not pinned"
        want = pinned[name]
        assert got.shape == want.shape, f"{name}: shape {got.shape}, recorded {want.shape}"
        scale = max(float(np.max(np.abs(want))), 1e-12)
        err = float(np.max(np.abs(got - want))) / scale
        if err > 1e-6:
            errors.append(f"{name}: differs from the recorded values by {err:.3g} of their scale")
    assert not errors, "; ".join(errors)


def test_every_pinned_attribution_is_computed():
    names = {n for g in GROUPS for n in _names_of(g)}
    assert names == set(np.load(PINNED).files)


def _names_of(group):
    import inspect
    import re

    return re.findall(r'out\["(\w+)"\]', inspect.getsource(group))


if __name__ == "__main__":
    if "--record" not in sys.argv:
        raise SystemExit("usage: python -m tests.test_pinned --record")
    with jax.enable_x64(True):
        values = compute()
    PINNED.parent.mkdir(exist_ok=True)
    np.savez(PINNED, **values)
    print(f"recorded {len(values)} attributions to {PINNED}")
