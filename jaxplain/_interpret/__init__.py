"""The program interpreter every program transform of jaxplain stands on.

* :mod:`~jaxplain._interpret.program`: tracing ``f`` to a jaxpr, binding equations again, and
  re-evaluating a program one equation at a time (calls, checkpoints, ``cond`` and ``scan``
  included);
* :mod:`~jaxplain._interpret.analysis`: which values depend on ``x``, and the class of each
  operation (layer, elementwise region, mean, sum, pooling, maximum, shape-only, other);
* :mod:`~jaxplain._interpret.patterns`: functions recognised by their spelling (softmax, a
  variance clamp);
* :mod:`~jaxplain._interpret.evaluate`: the program re-evaluated with a hook per class (LRP's
  rules, DeepLIFT's rescale rule) through ``jax.custom_vjp``;
* :mod:`~jaxplain._interpret.affine`: ``f`` split at its affine input layer (path methods).

LRP and its canonizers, DeepLIFT, guided backpropagation / deconvnet and the gradient family's
path methods use it; it imports no method family.
"""

from jaxplain._interpret import affine as affine
from jaxplain._interpret import analysis as analysis
from jaxplain._interpret import patterns as patterns
from jaxplain._interpret import program as program
from jaxplain._interpret.evaluate import Hooks as Hooks
from jaxplain._interpret.evaluate import Plain as Plain
from jaxplain._interpret.evaluate import Program as Program
from jaxplain._interpret.evaluate import Site as Site
from jaxplain._interpret.evaluate import first as first
from jaxplain._interpret.evaluate import program as interpret
from jaxplain._interpret.evaluate import with_backward as with_backward

__all__ = [
    "Hooks",
    "Plain",
    "Program",
    "Site",
    "affine",
    "analysis",
    "first",
    "interpret",
    "patterns",
    "program",
    "with_backward",
]
