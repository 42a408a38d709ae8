"""Layer-wise relevance propagation: rules (data), composites, canonizers, and the propagation."""

from jaxplain._lrp import canonizers as canonizers
from jaxplain._lrp import composites as composites
from jaxplain._lrp import rules as rules
from jaxplain._lrp.api import lrp as lrp
from jaxplain._lrp.budget import lrp_budget as lrp_budget
from jaxplain._lrp.layer import layer_lrp as layer_lrp

__all__ = ["canonizers", "composites", "layer_lrp", "lrp", "lrp_budget", "rules"]
