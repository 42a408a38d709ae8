"""Feature visualization: activation maximization with Optax, dataset examples, filters and
feature maps (see :mod:`jaxplain.featurevis`)."""
