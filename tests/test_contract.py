"""The transform contract (jaxplain._contract): what every explainer is and promises."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain as jx
from jaxplain import _contract


def square_sum(v):
    """The sum of squares."""
    return jnp.sum(v ** 2)


def test_doctests_run():
    assert doctest.testmod(_contract).failed == 0


def test_options_and_attributes_are_read_only():
    ex = jx.integrated_gradients(square_sum, steps=4)
    assert dict(ex.options) == {"baseline": 0.0, "steps": 4, "method": "gausslegendre", "batch_size": None}
    with pytest.raises(TypeError):
        ex.options["steps"] = 8
    for name in ("method", "f", "options", "needs_key", "steps"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(ex, name, None)
    np.testing.assert_allclose(ex(jnp.ones(2)), [1.0, 1.0])  # still the explainer it was (IG of x^2)


def test_it_wraps_f_like_functools_wraps():
    ex = jx.gradient(square_sum)
    assert ex.__wrapped__ is square_sum and ex.f is square_sum
    assert ex.__name__ == "gradient"
    assert "jaxplain.gradient of square_sum" in ex.__doc__ and "The sum of squares." in ex.__doc__
    sg = jx.smoothgrad(ex, samples=2)
    assert sg.__wrapped__ is ex and "smoothgrad of gradient" in sg.__doc__
    assert repr(jx.integrated_gradients(square_sum, steps=7)).startswith(
        "jaxplain.integrated_gradients(square_sum, baseline=0.0, steps=7"
    )


def test_make_explainer_checks_inputs_outside_and_finishes_on_concrete_values():
    seen = []

    def core(x, scale):
        return x * scale, jnp.sum(x)

    def finish(out):
        attr, total = out
        seen.append(isinstance(total, jax.core.Tracer))
        return attr

    ex = _contract.make_explainer("m", square_sum, core, {}, finish=finish, check=lambda x: seen.append("checked"))
    np.testing.assert_allclose(ex(jnp.ones(2), 3.0), [3.0, 3.0])
    assert seen == ["checked", False]
    with pytest.raises(ValueError, match="^jaxplain.m: x contains NaN"):
        ex(jnp.array([jnp.nan, 1.0]), 1.0)
    jax.jit(ex)(jnp.ones(2), 2.0)
    assert seen[-1] is True  # under an outer trace the values are traced


def test_keys_are_required_where_random_and_passed_through_otherwise():
    sg = jx.smoothgrad(jx.gradient(square_sum), samples=2)
    assert sg.needs_key and not jx.gradient(square_sum).needs_key
    with pytest.raises(TypeError, match="smoothgrad is random and needs an explicit key"):
        sg(jnp.ones(2))
    with_key = lambda v, key: jnp.sum(v * jax.random.normal(key, v.shape))
    g = jx.gradient(with_key)
    k = jax.random.key(0)
    np.testing.assert_allclose(g(jnp.ones(3), key=k), jax.random.normal(k, (3,)))


def test_a_second_call_does_not_recompile():
    traces = []

    def f(v):
        traces.append(1)
        return jnp.sum(jnp.tanh(v))

    ex = jx.integrated_gradients(f, steps=3)
    ex(jnp.ones(3))
    n = len(traces)
    ex(jnp.zeros(3))
    assert len(traces) == n


def test_copies_signatures_and_wrappers_behave():
    import copy
    import functools
    import inspect

    ex = jx.gradient(square_sum)
    assert copy.copy(ex) is ex and copy.deepcopy({"e": ex})["e"] is ex  # immutable
    assert str(inspect.signature(ex)) == "(x, *args, **kwargs)"
    eg = jx.expected_gradients(square_sum, baselines=jnp.zeros((2, 3)), samples=2)
    assert str(inspect.signature(eg)) == "(x, *args, key, **kwargs)"
    # jax.jit reads the explainer's own signature (x is an argument whatever f calls its input)
    np.testing.assert_allclose(jax.jit(ex, donate_argnames="x")(jnp.ones(3)), 2.0)
    # wrappers do not inherit the explainer's state, and smoothgrad asks them for a key only if
    # what they wrap is random
    jitted = jax.jit(ex)
    assert not hasattr(jitted, "needs_key")
    k = jax.random.key(0)

    @functools.wraps(ex)
    def plain(x):
        return ex(x)

    np.testing.assert_allclose(jx.smoothgrad(plain, samples=2, sigma=0.0)(jnp.ones(3), key=k), 2.0)
    linear = jx.expected_gradients(lambda v: jnp.sum(3.0 * v), baselines=jnp.zeros((2, 3)), samples=2)
    np.testing.assert_allclose(jx.smoothgrad(jax.jit(linear), samples=2, sigma=0.0)(jnp.ones(3), key=k), 3.0)
