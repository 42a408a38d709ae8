"""Objectives for :func:`jaxplain.activation_maximization`: ``channel``, ``neuron``,
``class_logit``, ``deepdream``, ``direction``, ``diversity``, and the regularizers ``l1``, ``l2``,
``total_variation``, ``blur``; they combine with ``+``, ``-`` and scalar ``*``.

Example:
  >>> import jax.numpy as jnp, jaxplain as jx
  >>> f = lambda x, t: jnp.sum(x) * (t + 1)
  >>> (jx.objectives.class_logit(f) - 1e-3 * jx.objectives.total_variation()).name
  'class_logit - 0.001 * total_variation'
"""

from jaxplain._featurevis.objectives import (
    Objective, blur, channel, class_logit, deepdream, direction, diversity, l1, l2, neuron,
    total_variation)

__all__ = ["Objective", "channel", "neuron", "class_logit", "deepdream", "direction", "diversity", "l1",
           "l2", "total_variation", "blur"]
