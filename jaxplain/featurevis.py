"""Feature visualization: what a unit of the network responds to.

* :func:`jaxplain.activation_maximization` renders the input that maximizes an objective
  (:mod:`jaxplain.objectives`): Optax gradient ascent on a parametrized image (:func:`fourier`,
  :func:`pixel`) through random transformations (:func:`standard`, :func:`compose` of
  :func:`pad`, :func:`jitter`, :func:`random_scale`, :func:`random_rotate`); every channel of a
  layer in one compiled, vmapped run.
* :func:`top_k` finds the dataset examples that excite a unit most (or least), streamed in
  batches; :func:`activation_crops` cuts out where; :func:`filters` and :func:`feature_maps` show
  a layer's kernels and outputs. :func:`jaxplain.plot.grid` draws any of them.

Example:
  >>> import jax, jax.numpy as jnp, jaxplain as jx
  >>> p = jx.featurevis.fourier()
  >>> p.image(p.init(jax.random.key(0), (8, 8, 3)), (8, 8, 3)).shape
  (8, 8, 3)
"""

from jaxplain._featurevis.examples import TopK, activation_crops, feature_maps, filters, top_k
from jaxplain._featurevis.param import (
    COLOR_CORRELATION_SVD_SQRT, Param, fourier, fourier_scale, pixel, rfft2d_freqs)
from jaxplain._featurevis.transforms import (
    Transform, compose, jitter, pad, random_rotate, random_scale, standard)

__all__ = ["TopK", "top_k", "activation_crops", "filters", "feature_maps", "Param", "pixel", "fourier",
           "fourier_scale", "rfft2d_freqs", "COLOR_CORRELATION_SVD_SQRT", "Transform", "pad", "jitter",
           "random_scale", "random_rotate", "compose", "standard"]
