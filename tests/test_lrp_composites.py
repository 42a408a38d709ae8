"""LRP composites (jaxplain._lrp.composites): rules by position, module path, kind and primitive,
the presets, and bad rules or composites."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
import jaxplain.flax as jxf

from tests.lrp_nets import PAD, batched_conv, vgg


def _scoped_net(seed=14):
    """dense d0 -> reshape -> conv c -> relu -> conv c2 -> relu -> flatten -> dense d1 -> relu ->
    dense d2, with biases, every layer under a jax.named_scope so that paths name it."""
    rng = np.random.default_rng(seed)
    p = {
        "W0": rng.normal(size=(5, 32)), "b0": rng.normal(size=32) * 0.3,
        "K": rng.normal(size=(3, 3, 2, 3)) / 2, "bK": rng.normal(size=3) * 0.3,
        "K2": rng.normal(size=(3, 3, 3, 2)) / 2, "bK2": rng.normal(size=2) * 0.3,
        "W1": rng.normal(size=(32, 6)) / 4, "b1": rng.normal(size=6) * 0.3,
        "w2": rng.normal(size=6), "b2": 0.2,
    }
    p = {k: jnp.asarray(v) for k, v in p.items()}

    def f(x):
        with jax.named_scope("d0"):
            h = x @ p["W0"] + p["b0"]
        h = jax.nn.relu(h).reshape(4, 4, 2)
        with jax.named_scope("c"):
            h = (batched_conv(h, p["K"], (1, 1), PAD) + p["bK"])[0]
        h = jax.nn.relu(h)
        with jax.named_scope("c2"):
            h = (batched_conv(h, p["K2"], (1, 1), PAD) + p["bK2"])[0]
        h = jax.nn.relu(h).reshape(-1)
        with jax.named_scope("d1"):
            h = h @ p["W1"] + p["b1"]
        h = jax.nn.relu(h)
        with jax.named_scope("d2"):
            return h @ p["w2"] + p["b2"]

    return f, jnp.asarray(rng.uniform(-1, 1, 5))

def test_position_rules_pick_the_intended_layers(x64):
    f, x = _scoped_net()
    eps, zp, zero, flat = jx.rules.epsilon(epsilon=0.1), jx.rules.zplus, jx.rules.zero, jx.rules.flat
    C = jx.composites.custom
    cache = {}

    def lrp(comp):
        if comp not in cache:
            cache[comp] = np.asarray(jx.lrp(f, rules=comp)(x))
        return cache[comp]

    base = lrp(C(default=eps))
    cases = [
        (C(default=eps, first=flat), C(default=eps, paths={"d0": flat})),
        (C(default=eps, first={"conv": flat}), C(default=eps, paths={"c": flat})),
        (C(default=eps, first={"dense": flat}), C(default=eps, paths={"d0": flat})),
        (C(default=eps, last=zp), C(default=eps, paths={"d2": zp})),
        (C(default=eps, head=zp), C(default=eps, paths={"d1": zp, "d2": zp})),
        # paths beat position rules, position rules beat types
        (C(default=eps, first=flat, paths={"d0": zp}), C(default=eps, paths={"d0": zp})),
        (C(types={"dense": zero}, last=zp, default=eps), C(default=eps, paths={"d0": zero, "d1": zero, "d2": zp})),
    ]
    for k, (positional, by_path) in enumerate(cases):
        got, want = lrp(positional), lrp(by_path)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"case {k}")
        assert not np.allclose(got, base, rtol=1e-6), f"case {k}: the rule had no effect"

def test_path_rules_on_a_linen_model():
    model, variables = vgg()
    f = jxf.from_linen(model, variables)
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (4, 4, 3)), jnp.float32)
    C = jx.composites.custom
    eps, zp, zero = jx.rules.epsilon(epsilon=0.01), jx.rules.zplus, jx.rules.zero
    lrp = lambda comp: np.asarray(jx.lrp(f, rules=comp)(x, 1))
    # each path composite equals a composite by type that differs from every rule having matched
    # nothing (all-epsilon) and from the other pair
    head = lrp(C(default=eps, paths={"head": zero}))
    assert np.abs(head).sum() > 0.1 * abs(float(f(x, 1)))
    np.testing.assert_allclose(head, lrp(C(types={"conv": eps, "dense": zero})), rtol=1e-5, atol=1e-7)
    convs = lrp(C(default=eps, paths={"stage*/*": zp}))
    np.testing.assert_allclose(convs, lrp(C(types={"conv": zp, "dense": eps})), rtol=1e-5, atol=1e-7)
    assert not np.allclose(convs, head, rtol=1e-3)

def test_epsilon_gamma_box_puts_zbox_on_the_first_convolution_only(x64):
    C = jx.composites.custom
    gamma, eps, norm = jx.rules.gamma(gamma=0.25), jx.rules.epsilon, jx.rules.norm
    box = jx.rules.zbox(low=-1.5, high=2.0)
    manual_types = {"conv": gamma, "dense": eps, "sum": norm, "avg_pool": norm}
    # d0 (dense) -> c -> c2 (convolutions) -> d1 -> d2: z^B goes to c only; the dense layer before
    # it keeps its epsilon rule and c2 gets gamma
    g, x = _scoped_net()
    got = np.asarray(jx.lrp(g, rules=jx.composites.epsilon_gamma_box(low=-1.5, high=2.0))(x))
    np.testing.assert_allclose(got, jx.lrp(g, rules=C(types=manual_types, paths={"c": box}))(x), rtol=1e-10, atol=1e-12)
    assert not np.allclose(got, jx.lrp(g, rules=C(types=manual_types))(x), rtol=1e-4)

def test_presets_are_their_rules_by_type(x64):
    f, x = _scoped_net()
    C = jx.composites.custom
    eps, norm = jx.rules.epsilon, jx.rules.norm
    pairs = {
        "epsilon_plus": (
            jx.composites.epsilon_plus(),
            C(types={"conv": jx.rules.zplus, "dense": eps, "sum": norm, "avg_pool": norm}),
        ),
        "epsilon_alpha2_beta1_flat": (
            jx.composites.epsilon_alpha2_beta1_flat(),
            C(types={"conv": jx.rules.alpha2_beta1, "dense": eps}, paths={"d0": jx.rules.flat}),
        ),
        # the default composite is epsilon_plus_flat
        "default": (None, C(types={"conv": jx.rules.zplus, "dense": eps}, paths={"d0": jx.rules.flat})),
    }
    for name, (preset, manual) in pairs.items():
        got = jx.lrp(f)(x) if preset is None else jx.lrp(f, rules=preset)(x)
        np.testing.assert_allclose(got, jx.lrp(f, rules=manual)(x), rtol=1e-10, atol=1e-12, err_msg=name)

def test_bad_rules_and_composites_raise():
    with pytest.raises(ValueError, match="alpha - beta"):
        jx.rules.alpha_beta(alpha=2.0, beta=0.5)
    with pytest.raises(ValueError, match="alpha - beta"):
        jx.rules.alpha_beta(alpha=3.0)  # beta stays 1
    with pytest.raises(TypeError, match="bounds"):
        jx.rules.zbox()
    with pytest.raises(TypeError, match="bounds"):
        jx.rules.zbox(low=0.0)
    with pytest.raises(ValueError, match="low must be <= high"):
        jx.rules.zbox(low=1.0, high=0.0)
    with pytest.raises(ValueError, match="low must be <= high"):
        jx.rules.zbox(low=jnp.array([0.0, 2.0]), high=jnp.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="zbox"):
        jx.composites.custom(first=jx.rules.zbox)
    f = lambda v: jnp.sum(v @ jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="zbox"):
        jx.lrp(f, rules=jx.rules.zbox)
    with pytest.raises(TypeError, match="must be a rule"):
        jx.composites.custom(types={"dense": "epsilon"})
    with pytest.raises(TypeError, match="must be a rule"):
        jx.composites.custom(default=0.1)
    with pytest.raises(TypeError, match="must be a rule"):
        jx.composites.custom(paths={"head": jx.composites.epsilon_plus()})
    with pytest.raises(TypeError, match=r"composite factory; call it"):
        jx.lrp(f, rules=jx.composites.epsilon_plus)
    with pytest.raises(TypeError, match="rules must be a composite"):
        jx.lrp(f, rules="epsilon")
    with pytest.raises(ValueError, match="pass_through"):
        jx.lrp(f, rules=jx.rules.pass_through)
    with pytest.raises(ValueError, match="needs a dense or convolution layer"):  # z+ on a sum
        jx.lrp(f, rules=jx.composites.custom(default=jx.rules.epsilon, types={"sum": jx.rules.zplus}))(jnp.ones(3))
    with pytest.raises(TypeError):
        jx.lrp("not a function")

def test_a_layer_rule_by_path_reaches_only_the_layers_there():
    """paths={"block": zplus} means the block's convolutions: its ReLU and residual sum keep their
    kinds' rules (no error for giving zplus to an activation); gradient by path reaches everything."""
    rng = np.random.default_rng(13)
    k1 = jnp.asarray(rng.normal(size=(3, 3, 2, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=4 * 4 * 2), jnp.float32)

    def f(x):
        with jax.named_scope("block"):
            y = jax.nn.relu(batched_conv(x, k1, (1, 1), ((1, 1), (1, 1)))) + x[None]
        return y.reshape(-1) @ w

    x = jnp.asarray(rng.uniform(size=(4, 4, 2)), jnp.float32)
    by_path = jx.lrp(f, rules=jx.composites.custom(default=jx.rules.epsilon, paths={"block": jx.rules.zplus}))(x)
    by_type = jx.lrp(f, rules=jx.composites.custom(types={"conv": jx.rules.zplus, "dense": jx.rules.epsilon}))(x)
    np.testing.assert_allclose(by_path, by_type, rtol=1e-6)
    grad_path = jx.lrp(f, rules=jx.composites.custom(default=jx.rules.epsilon, paths={"block": jx.rules.gradient}))(x)
    # the dense layer's epsilon relevance, then the block's ordinary backward pass
    block = lambda v: (jax.nn.relu(batched_conv(v, k1, (1, 1), ((1, 1), (1, 1)))) + v[None]).reshape(-1)
    y, vjp = jax.vjp(block, x)
    z = y @ w
    (expected,) = vjp(y * w * z / (z + 1e-6 * jnp.sign(z)))
    np.testing.assert_allclose(grad_path, expected, rtol=1e-5, atol=1e-6)


def test_pass_through_on_a_layer_shaped_like_its_input_is_captums_identity_rule():
    """Captum's SimpleLRPModel (dense 3 -> 3 of twos with w[0, 0] = -2, ReLU, dense 3 -> 1 of
    threes) at x = (1, 2, 3), IdentityRule on the first layer and epsilon on the second: Captum's
    test expects relevance (24, 36, 36)."""
    w1 = jnp.full((3, 3), 2.0).at[0, 0].set(-2.0)  # torch's (out, in) layout: x @ w1.T
    w2 = jnp.full((3, 1), 3.0)

    def f(x):
        with jax.named_scope("linear"):
            h = x @ w1.T
        with jax.named_scope("linear2"):
            return (jax.nn.relu(h) @ w2)[0]

    rules = jx.composites.custom(paths={"linear": jx.rules.pass_through}, default=jx.rules.epsilon)
    np.testing.assert_allclose(jx.lrp(f, rules=rules)(jnp.array([1.0, 2.0, 3.0])), [24.0, 36.0, 36.0],
                               rtol=1e-5)
    # a layer that changes the shape cannot pass relevance through unchanged
    g = lambda x: jnp.sum(jax.nn.relu(x @ jnp.ones((3, 2))))
    with pytest.raises(ValueError, match=r"pass_through needs an output shaped like the input.*\(3,\) to \(2,\)"):
        jx.lrp(g, rules=jx.composites.custom(types={"dense": jx.rules.pass_through}))(jnp.ones(3))
