"""Feature masks for the perturbation methods (``mask=`` of :func:`jaxplain.feature_ablation`,
:func:`jaxplain.shapley_values`, :func:`jaxplain.kernel_shap`, :func:`jaxplain.lime`...): a regular
:func:`grid` and scikit-image :func:`superpixels`, both ``(H, W, 1)`` integer ids ``0 .. n-1``.

Example:
  >>> import jaxplain as jx
  >>> int(jx.segmentation.grid((32, 32, 3), 8).max()) + 1
  16
"""

from jaxplain._perturbation.segments import SUPERPIXELS, grid, superpixels

__all__ = ["grid", "superpixels", "SUPERPIXELS"]
