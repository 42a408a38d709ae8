"""The BatchNorm canonizer (jaxplain._lrp.canonizers): merged programs equal the model and hand-merged
layers, for Linen and NNX models."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
import jaxplain.flax as jxf
from jaxplain import zoo

from tests.lrp_nets import batched_conv, random_variables


def test_merge_batchnorm_equals_hand_merged_layers(x64):
    """conv - BN - relu - flatten - dense - BN - relu - dense: the canonized f computes f, and LRP of
    it equals LRP of the same network with the BatchNorms merged by hand."""
    rng = np.random.default_rng(24)
    K = jnp.asarray(rng.normal(size=(3, 3, 2, 3)) / 2)
    def draw_bn(n):  # mean, var, scale, beta
        mean, var = rng.normal(size=n), rng.uniform(0.5, 2, n)
        return [jnp.asarray(a) for a in (mean, var, rng.normal(size=n), 0.3 * rng.normal(size=n))]

    bn1 = draw_bn(3)
    W, b = jnp.asarray(rng.normal(size=(48, 5)) / 4), jnp.asarray(rng.normal(size=5) * 0.3)
    bn2 = draw_bn(5)
    w_out = jnp.asarray(rng.normal(size=5))
    pad = ((1, 1), (1, 1))

    def bn(h, p):
        mean, var, scale, beta = p
        return (h - mean) / jnp.sqrt(var + 1e-5) * scale + beta

    def f(x):
        h = jax.nn.relu(bn(batched_conv(x, K, (1, 1), pad), bn1))[0].reshape(-1)
        return jax.nn.relu(bn(h @ W + b, bn2)) @ w_out

    s1 = bn1[2] / jnp.sqrt(bn1[1] + 1e-5)
    s2 = bn2[2] / jnp.sqrt(bn2[1] + 1e-5)

    def hand(x):
        h = jax.nn.relu(batched_conv(x, K * s1, (1, 1), pad) + (bn1[3] - bn1[0] * s1))[0].reshape(-1)
        return jax.nn.relu(h @ (W * s2) + ((b - bn2[0]) * s2 + bn2[3])) @ w_out

    g = jx.canonizers.merge_batchnorm(f)
    x = jnp.asarray(rng.normal(size=(4, 4, 2)))
    np.testing.assert_allclose(g(x), f(x), rtol=1e-12)
    np.testing.assert_allclose(hand(x), f(x), rtol=1e-12)
    for rules in (jx.rules.gamma, jx.composites.epsilon_plus()):
        merged = np.asarray(jx.lrp(g, rules=rules)(x))
        np.testing.assert_allclose(merged, jx.lrp(hand, rules=rules)(x), rtol=1e-9, atol=1e-12, err_msg=repr(rules))
    # without the canonizer the rules see the unnormalized layers
    assert not np.allclose(jx.lrp(f, rules=jx.rules.zplus)(x), jx.lrp(g, rules=jx.rules.zplus)(x), rtol=1e-3)

def test_merge_batchnorm_on_the_zoo_resnet(x64):
    model = zoo.ResNet(features=(3, 4), blocks=1, classes=3)
    variables = random_variables(model, (1, 6, 6, 3), 26, jnp.float64)  # random batch statistics
    p, st = variables["params"], variables["batch_stats"]
    f = jxf.from_linen(model, variables)
    g = jx.canonizers.merge_batchnorm(f)

    def cbn(h, conv, bn, stride, block=None):
        pp, ss = (p, st) if block is None else (block[0], block[1])
        s = pp[bn]["scale"] / jnp.sqrt(ss[bn]["var"] + 1e-5)
        k = pp[conv]["kernel"] * s
        return (batched_conv(h, k, (stride, stride), "SAME") + (pp[bn]["bias"] - ss[bn]["mean"] * s))[0]

    def hand(x, t):  # the same ResNet with every BatchNorm merged into its convolution
        h = jax.nn.relu(cbn(x, "stem_conv", "stem_bn", 1))
        for i, stride in ((0, 1), (1, 2)):
            blk = (p[f"stage{i}"]["block0"], st[f"stage{i}"]["block0"])
            y = jax.nn.relu(cbn(h, "conv0", "bn0", stride, blk))
            y = cbn(y, "conv1", "bn1", 1, blk)
            skip = cbn(h, "proj", "proj_bn", stride, blk) if "proj" in blk[0] else h
            h = jax.nn.relu(y + skip)
        return (jnp.mean(h, axis=(0, 1)) @ p["head"]["kernel"] + p["head"]["bias"])[t]

    x = jnp.asarray(np.random.default_rng(27).normal(size=(6, 6, 3)))
    outs = jax.jit(lambda v: jnp.stack([f(v, 1), g(v, 1), hand(v, 1)]))(x)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-10, atol=1e-12)  # merge_batchnorm(f) == f
    np.testing.assert_allclose(outs[2], outs[0], rtol=1e-10, atol=1e-12)  # the hand-merged net too
    rules = jx.composites.epsilon_plus()  # z+ on the convolutions: their merged biases matter
    np.testing.assert_allclose(jx.lrp(g, rules=rules)(x, 1), jx.lrp(hand, rules=rules)(x, 1), rtol=1e-8, atol=1e-12)

def test_merge_batchnorm_reaches_nnx_models_like_linen():
    """The canonizer works on the traced program, so an NNX ResNet (jaxplain.flax.from_nnx) and its
    Linen twin give the same canonized relevance."""
    from flax import nnx

    import jaxplain.flax as jxf
    from jaxplain.zoo import ResNet, ResNetNNX, linen_to_nnx

    model = ResNet(features=(4, 8), classes=3)
    v = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    stats = jax.tree_util.tree_map(lambda a: a + 0.5 * jax.random.uniform(jax.random.key(2), a.shape), v["batch_stats"])
    v = {"params": v["params"], "batch_stats": stats}
    twin = linen_to_nnx(model, v, ResNetNNX(features=(4, 8), classes=3, rngs=nnx.Rngs(0)))
    f_linen, f_nnx = jxf.from_linen(model, v), jxf.from_nnx(twin)
    x = jax.random.uniform(jax.random.key(1), (8, 8, 3))
    np.testing.assert_allclose(jx.canonizers.merge_batchnorm(f_nnx)(x, 1), f_nnx(x, 1), rtol=1e-5, atol=1e-7)
    for rules in (jx.composites.epsilon_plus_flat(), jx.composites.epsilon_gamma_box(low=0.0, high=1.0)):
        a = jx.lrp(jx.canonizers.merge_batchnorm(f_linen), rules=rules)(x, 1)
        b = jx.lrp(jx.canonizers.merge_batchnorm(f_nnx), rules=rules)(x, 1)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6 * float(jnp.abs(a).max()))


class _ConvBN(nn.Module):
    """Flax Conv + BatchNorm + ReLU, then a mean over positions and a dense head; called on one
    unbatched example, Flax reshapes the convolution's output back before the BatchNorm."""

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.BatchNorm(use_running_average=True)(nn.Conv(4, (3, 3))(x)))
        return nn.Dense(3)(jnp.mean(h, axis=(-3, -2)))


def _x_dependent_muls(g, x, *args):
    """The x-dependent multiplications of g's program (a BatchNorm left in place has one)."""
    from jaxplain._interpret import analysis, program

    traced = program.trace(g, x, args)
    jaxpr = traced.closed.jaxpr
    dep = analysis.dependents(jaxpr, traced.x_mask)
    return sum(e.primitive.name == "mul" and any(v in dep for v in e.invars if program.is_var(v))
               for e in jaxpr.eqns)


def test_merge_batchnorm_reaches_through_flax_reshapes_of_an_unbatched_call(x64):
    model = _ConvBN()
    v = random_variables(model, (1, 6, 6, 3), 30, jnp.float64)
    unbatched = lambda x, t: model.apply(v, x)[t]
    batched = lambda x, t: model.apply(v, x[None])[0, t]
    x = jnp.asarray(np.random.default_rng(31).normal(size=(6, 6, 3)))
    for f in (unbatched, batched):
        g = jx.canonizers.merge_batchnorm(f)
        np.testing.assert_allclose(g(x, 1), f(x, 1), rtol=1e-12)
        assert _x_dependent_muls(f, x, 1) == 1 and _x_dependent_muls(g, x, 1) == 0  # merged
    rules = jx.composites.epsilon_plus()
    ours = jx.lrp(jx.canonizers.merge_batchnorm(unbatched), rules=rules)(x, 1)
    ref = jx.lrp(jx.canonizers.merge_batchnorm(batched), rules=rules)(x, 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-14)
    assert not np.allclose(ours, jx.lrp(unbatched, rules=rules)(x, 1), rtol=1e-3)  # merging matters


def test_a_batchnorm_that_cannot_be_merged_warns_naming_its_module():
    class AfterResidual(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Conv(3, (3, 3), name="conv")(x) + x  # the BatchNorm sees a sum, not a layer
            h = nn.BatchNorm(use_running_average=True, name="bn")(h)
            return jnp.mean(nn.relu(h))

    model = AfterResidual()
    v = random_variables(model, (1, 5, 5, 3), 32)
    f = lambda x: model.apply(v, x[None])
    x = jnp.ones((5, 5, 3))
    with pytest.warns(UserWarning, match=r"could not be merged .*'bn'"):
        g = jx.canonizers.merge_batchnorm(f)
        np.testing.assert_allclose(g(x), f(x), rtol=1e-6)
