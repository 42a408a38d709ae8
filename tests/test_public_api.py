"""Standing promises about the public API: every public name documents an example and its paper."""

import doctest
import inspect

import pytest

import jaxplain as jx
from jaxplain import data, featurevis, flax, models, objectives, plot, segmentation, similarity, zoo

PUBLIC = [(jx, n) for n in jx.__all__ if not inspect.ismodule(getattr(jx, n))] + [
    (m, n) for m in (flax, plot, data, models, zoo, similarity, featurevis, objectives, segmentation) for n in m.__all__
    if callable(getattr(m, n)) and not isinstance(getattr(m, n), (tuple, dict))
]


@pytest.mark.parametrize("module, name", PUBLIC, ids=[f"{m.__name__}.{n}" for m, n in PUBLIC])
def test_public_names_have_an_example_and_a_reference(module, name):
    doc = inspect.getdoc(getattr(module, name)) or ""
    assert "Example" in doc, f"{module.__name__}.{name} has no runnable example"
    assert "References" in doc, f"{module.__name__}.{name} names no paper"


def test_explainer_doctest():
    assert doctest.testmod(jx._contract).failed == 0
