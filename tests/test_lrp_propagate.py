"""The LRP interpreter's economies: they change how much is computed, never the relevance.

* Branches whose weight modifiers are linear in (W, W+) share convolutions (``share_linear``).
* Inputs known to be non-negative (after a ReLU, average pooling of ReLU outputs) drop the
  ``min(x, 0)`` branches, which are zero there.

The counts of convolutions in the compiled programs are the facts the speed of LRP rests on
(benchmarks/lrp.py has the timings).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain._lrp import api

from tests import twins

COMPOSITES = {
    "epsilon_plus_flat": jx.composites.epsilon_plus_flat(),
    "epsilon_gamma_box": jx.composites.epsilon_gamma_box(low=0.0, high=1.0),
    "epsilon_alpha2_beta1": jx.composites.epsilon_alpha2_beta1(),
    "gamma": jx.rules.gamma(gamma=0.5),
    "alpha2_beta1": jx.rules.alpha2_beta1,
    "zplus": jx.rules.zplus,
}


@pytest.fixture(scope="module")
def cnn():
    apply, params, _ = twins.make_twins(0, size=8, channels=(4, 4, 4, 4))
    x = jax.random.uniform(jax.random.key(0), (8, 8, 3))
    return twins.logit_fn(apply, params), x


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_shared_convolutions_give_the_same_relevance(cnn, name):
    f, x = cnn
    shared = jx.lrp(f, rules=COMPOSITES[name])(x, 1)
    composite = api.resolve_rules("lrp", COMPOSITES[name])
    separate = jax.jit(api.relevance("lrp", f, composite, share_linear=False))(x, 1)
    np.testing.assert_allclose(shared, separate, rtol=1e-5, atol=2e-6 * float(jnp.abs(separate).max()))


def _convolutions(fn, x):
    return jax.jit(fn).lower(x, 1).compile().as_text().count(" convolution(")


def test_compiled_programs_hold_few_convolutions(cnn):
    f, x = cnn
    grad = _convolutions(jax.grad(f), x)  # 4 forward + 4 transposed
    assert grad == 8
    # epsilon: the layer's own output is the denominator; one transpose per layer, as the gradient
    assert _convolutions(jx.lrp(f, rules=jx.rules.epsilon), x) == grad
    # z+ after ReLUs: x W+ and its transpose per layer (no min(x, 0) branch); flat's forward on
    # constants is folded away by the compiler
    assert _convolutions(jx.lrp(f, rules=COMPOSITES["epsilon_plus_flat"]), x) <= 12
    # gamma after ReLUs: x W+ once and two transposes per layer (not two of each per group)
    assert _convolutions(jx.lrp(f, rules=COMPOSITES["epsilon_gamma_box"]), x) <= 16


def test_an_explainer_can_be_jitted_directly(cnn):
    f, x = cnn
    for ex in (jx.lrp(f), jx.gradient(f), jx.deeplift(f)):
        np.testing.assert_allclose(jax.jit(ex)(x, 1), ex(x, 1), rtol=1e-6, atol=1e-7)
