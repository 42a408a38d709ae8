"""Option and input checks (jaxplain._checks): one wording, the right error type, the fix named."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
import jaxplain.flax as jxf
from jaxplain import _checks, plot


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: _checks.check_callable("m", "f", 3), TypeError, r"^jaxplain.m: f must be a callable, got int 3"),
        (lambda: _checks.check_bool("m", "flag", 1), TypeError, r"^jaxplain.m: flag must be True or False, got int 1"),
        (lambda: _checks.check_int("m", "steps", 2.0, minimum=1), TypeError, r"steps must be an int >= 1, got float"),
        (lambda: _checks.check_int("m", "steps", True, minimum=1), TypeError, r"got bool True"),
        (lambda: _checks.check_int("m", "steps", 0, minimum=1), ValueError, r"steps must be >= 1, got 0"),
        (lambda: _checks.check_float("m", "sigma", "a"), TypeError, r"sigma must be a real number"),
        (lambda: _checks.check_float("m", "sigma", float("nan")), ValueError, r"finite number >= 0.0, got nan"),
        (lambda: _checks.check_choice("m", "kind", "x", ("a", "b")), ValueError, r"unknown kind 'x'; choose one of 'a', 'b'"),
        (lambda: _checks.check_batch_size("m", 0), ValueError, r"batch_size must be >= 1"),
        (lambda: _checks.check_baseline("m", "zero"), TypeError, r"baseline must be numeric"),
        (lambda: _checks.check_baseline("m", np.array([0.0, np.inf])), ValueError, r"baseline contains NaN or Inf"),
        (lambda: _checks.check_reference_set("m", []), ValueError, r"baselines is empty"),
        (lambda: _checks.check_reference_set("m", np.float32(1)), ValueError, r"hold no reference inputs"),
        (lambda: _checks.check_reference_set("m", (np.ones((2, 3)), np.ones((3, 3)))), ValueError,
         r"same number of reference inputs along axis 0, got \[2, 3\]"),
        (lambda: _checks.require_key("m", None), TypeError, r"needs an explicit key.*jax.random.split"),
    ],
)
def test_each_check_names_the_value_and_the_fix(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_checks_pass_good_values_through():
    assert _checks.check_bool("m", "flag", np.bool_(True)) is True
    assert _checks.check_int("m", "n", np.int64(3), minimum=1) == 3
    assert _checks.check_float("m", "s", 2) == 2.0
    assert _checks.check_batch_size("m", None) is None
    _checks.check_baseline("m", lambda x: x)  # callables are checked when called
    refs = _checks.check_reference_set("m", {"a": np.array([[1.0, 2.0]]), "b": np.zeros((1, 3))})
    assert refs["a"].shape == (1, 2)


def test_array_check_is_shared_by_plots_tsne_and_similarity():
    """One array check, one wording, wherever arrays come in."""
    for call in (
        lambda: plot.reduce_channels("x"),
        lambda: jx.similarity.cka("x", np.ones((4, 2))),
        lambda: jx.tsne("x", key=jax.random.key(0)),
    ):
        with pytest.raises(TypeError, match=r"^jaxplain\.\S+: \S+ must be an? .*, got str 'x"):
            call()
    complex_ = np.ones((5, 3), complex)
    for call in (
        lambda: plot.reduce_channels(complex_),
        lambda: jx.similarity.cka(complex_, np.ones((5, 2))),
        lambda: jx.tsne(complex_, key=jax.random.key(0)),
    ):
        with pytest.raises(TypeError, match=r"must hold real numbers, got dtype complex128 \(shape \(5, 3\)\)"):
            call()
    with pytest.raises(TypeError, match="embedding is a traced value"):
        jax.jit(lambda y: plot.scatter(y))(jnp.ones((4, 2)))
    nan = np.ones((5, 3))
    nan[1, 2] = np.nan
    for call in (lambda: plot.reduce_channels(nan), lambda: jx.similarity.cka(nan, np.ones((5, 2)))):
        with pytest.raises(ValueError, match=r"contains NaN or Inf \(1 value\(s\), shape \(5, 3\)\)"):
            call()


def test_input_checks_refuse_integers_and_nan():
    ex = jx.gradient(lambda v: jnp.sum(v ** 2))
    with pytest.raises(TypeError, match="real floating dtype, got int32 .*usually tokens.*token_attribution"):
        ex(jnp.arange(3))
    with pytest.raises(ValueError, match=r"x \(leaves \[1\]\) contains NaN"):
        ex((jnp.ones(2), jnp.array([jnp.nan])))
    with pytest.raises(ValueError, match="x is empty"):
        ex(())


def test_a_batch_passed_without_vmap_says_so():
    """A batch given to an explainer of one example: the error says x looks like a batch and
    shows jax.vmap, for a hand-written f and for the adapters."""
    w = jnp.ones((3, 4))
    f = lambda x, t: (x @ w)[..., t]  # vectorized by accident: a batch in, a vector out
    xs = jnp.ones((16, 3))
    with pytest.raises(TypeError, match=r"shape \(16,\).*looks like a batch of 16 examples.*jax.vmap"):
        jx.gradient(f)(xs, 1)
    model = nn.Dense(4)  # acts on the last axis: a batch goes through it unnoticed
    v = model.init(jax.random.key(0), jnp.zeros((1, 3)))
    g = jxf.from_linen(model, v)
    with pytest.raises(ValueError, match=r"shape \(16, 4\).*batch of 16 examples.*jax.vmap\(explainer\)"):
        jx.integrated_gradients(g, steps=4)(xs, 1)
    good = jax.vmap(jx.integrated_gradients(g, steps=4))(xs, jnp.ones(16, int))
    assert good.shape == (16, 3)
