"""Layer-wise relevance propagation: rules (data), composites, canonizers, and the propagation."""

from jaxplain._lrp import canonizers as canonizers
from jaxplain._lrp import composites as composites
from jaxplain._lrp import rules as rules
from jaxplain._lrp.api import lrp as lrp

__all__ = ["canonizers", "composites", "lrp", "rules"]
