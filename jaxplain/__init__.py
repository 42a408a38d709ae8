"""jaxplain: explanations of neural networks as JAX function transforms.

Every method is a transform: ``jx.integrated_gradients(f, steps=50)`` returns ``explain(x, *args)``,
a pure function that composes with ``jax.jit``, ``jax.vmap``, ``jax.grad`` and sharding, where
``f(x, *args)`` returns a scalar for one example.

Example:
  >>> import jax, jax.numpy as jnp, jaxplain as jx
  >>> f = lambda v: 5 * v[0] + v[1] ** 2
  >>> [round(float(a), 3) for a in jx.integrated_gradients(f)(jnp.array([100.0, 5.0]))]
  [500.0, 25.0]
"""

from jaxplain import _compile

_compile.set_cpu_defaults()  # first, before anything can start JAX's CPU backend

from jaxplain._attention import attention_flow as attention_flow  # noqa: E402
from jaxplain._attention import attention_rollout as attention_rollout  # noqa: E402
from jaxplain._attention import attention_weights as attention_weights  # noqa: E402
from jaxplain._cam import cam as cam  # noqa: E402
from jaxplain._cam import grad_cam as grad_cam  # noqa: E402
from jaxplain._cam import grad_cam_plus_plus as grad_cam_plus_plus  # noqa: E402
from jaxplain._cam import guided_grad_cam as guided_grad_cam  # noqa: E402
from jaxplain._compile import compiler_options as compiler_options  # noqa: E402
from jaxplain._contract import Explainer as Explainer  # noqa: E402
from jaxplain._deeplift import deeplift as deeplift  # noqa: E402
from jaxplain._deeplift import deeplift_shap as deeplift_shap  # noqa: E402
from jaxplain._deeplift import layer_deeplift as layer_deeplift  # noqa: E402
from jaxplain._deeplift import layer_deeplift_shap as layer_deeplift_shap  # noqa: E402
from jaxplain._deeplift import neuron_deeplift as neuron_deeplift  # noqa: E402
from jaxplain._deeplift import neuron_deeplift_shap as neuron_deeplift_shap  # noqa: E402
from jaxplain._gradients import expected_gradients as expected_gradients  # noqa: E402
from jaxplain._gradients import gradient as gradient  # noqa: E402
from jaxplain._gradients import gradient_shap as gradient_shap  # noqa: E402
from jaxplain._gradients import gradient_x_input as gradient_x_input  # noqa: E402
from jaxplain._gradients import integrated_gradients as integrated_gradients  # noqa: E402
from jaxplain._paths import quadrature as quadrature  # noqa: E402
from jaxplain._gradients import saliency as saliency  # noqa: E402
from jaxplain._gradients import smoothgrad as smoothgrad  # noqa: E402
from jaxplain._layers import internal_influence as internal_influence  # noqa: E402
from jaxplain._lrp import canonizers as canonizers  # noqa: E402
from jaxplain._lrp import composites as composites  # noqa: E402
from jaxplain._lrp import layer_lrp as layer_lrp  # noqa: E402
from jaxplain._lrp import lrp as lrp  # noqa: E402
from jaxplain._lrp import lrp_budget as lrp_budget  # noqa: E402
from jaxplain._lrp import rules as rules  # noqa: E402
from jaxplain._modified_backprop import deconvnet as deconvnet  # noqa: E402
from jaxplain._modified_backprop import guided_backprop as guided_backprop  # noqa: E402
from jaxplain._modified_backprop import neuron_deconvnet as neuron_deconvnet  # noqa: E402
from jaxplain._modified_backprop import neuron_guided_backprop as neuron_guided_backprop  # noqa: E402
from jaxplain._layers import layer_activation as layer_activation  # noqa: E402
from jaxplain._layers import layer_conductance as layer_conductance  # noqa: E402
from jaxplain._layers import layer_gradient_shap as layer_gradient_shap  # noqa: E402
from jaxplain._layers import layer_gradient_x_activation as layer_gradient_x_activation  # noqa: E402
from jaxplain._layers import layer_integrated_gradients as layer_integrated_gradients  # noqa: E402
from jaxplain._layers import neuron_conductance as neuron_conductance  # noqa: E402
from jaxplain._layers import neuron_gradient as neuron_gradient  # noqa: E402
from jaxplain._layers import neuron_gradient_shap as neuron_gradient_shap  # noqa: E402
from jaxplain._layers import neuron_integrated_gradients as neuron_integrated_gradients  # noqa: E402
from jaxplain._taps import layers as layers  # noqa: E402
from jaxplain._tokens import token_attribution as token_attribution  # noqa: E402
from jaxplain._tsne import TSNE as TSNE  # noqa: E402
from jaxplain._tsne import tsne as tsne  # noqa: E402
from jaxplain import similarity as similarity  # noqa: E402
from jaxplain._featurevis.render import activation_maximization as activation_maximization  # noqa: E402
from jaxplain._perturbation.ablation import feature_ablation as feature_ablation  # noqa: E402
from jaxplain._perturbation.lime import lime as lime  # noqa: E402
from jaxplain._perturbation.occlusion import occlusion as occlusion  # noqa: E402
from jaxplain._perturbation.rise import rise as rise  # noqa: E402
from jaxplain._perturbation.sampling import kernel_shap as kernel_shap  # noqa: E402
from jaxplain._perturbation.sampling import shapley_sampling as shapley_sampling  # noqa: E402
from jaxplain._perturbation.shapley import shapley_values as shapley_values  # noqa: E402
from jaxplain import featurevis as featurevis  # noqa: E402
from jaxplain import objectives as objectives  # noqa: E402
from jaxplain import segmentation as segmentation  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Explainer",
    "TSNE",
    "activation_maximization",
    "attention_flow",
    "attention_rollout",
    "attention_weights",
    "cam",
    "canonizers",
    "compiler_options",
    "composites",
    "deconvnet",
    "deeplift",
    "deeplift_shap",
    "grad_cam",
    "grad_cam_plus_plus",
    "expected_gradients",
    "feature_ablation",
    "featurevis",
    "gradient",
    "gradient_shap",
    "gradient_x_input",
    "guided_backprop",
    "guided_grad_cam",
    "integrated_gradients",
    "internal_influence",
    "kernel_shap",
    "layer_activation",
    "layer_conductance",
    "layer_deeplift",
    "layer_deeplift_shap",
    "layer_gradient_shap",
    "layer_gradient_x_activation",
    "layer_integrated_gradients",
    "layer_lrp",
    "layers",
    "lime",
    "lrp",
    "lrp_budget",
    "neuron_conductance",
    "neuron_deconvnet",
    "neuron_deeplift",
    "neuron_deeplift_shap",
    "neuron_gradient",
    "neuron_gradient_shap",
    "neuron_guided_backprop",
    "neuron_integrated_gradients",
    "objectives",
    "occlusion",
    "quadrature",
    "rise",
    "rules",
    "saliency",
    "segmentation",
    "shapley_sampling",
    "shapley_values",
    "similarity",
    "smoothgrad",
    "token_attribution",
    "tsne",
]
