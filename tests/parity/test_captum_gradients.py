"""Parity of the gradient family with Captum 0.9 on twin CNNs (benchmarks/twins.py).

The same weights go into a pure-JAX CNN (NHWC) and a torch ``nn.Module`` (NCHW); the same batch of
four 8x8x3 images with per-example targets goes into both. Our attributions are computed per
example and batched with ``jax.vmap``; Captum's are transposed NCHW -> NHWC before comparing.

Tolerance: ``rtol=1e-4`` with ``atol = 1e-4 * max|Captum's attribution|`` (float32 on both sides;
the frameworks sum convolutions in different orders, so exact equality is not expected).

Conventions (see /work/shared/notes/peer-conventions.md):

* Captum's ``riemann_trapezoid`` uses step sizes ``1/n`` with halved ends, which sum to
  ``(n-1)/n``; ours is the true trapezoid rule on ``alpha = k/(n-1)`` with weights ``1/(n-1)``
  (halved ends), which sum to 1. Both evaluate the gradient at the same points, so
  ``ours * (n-1)/n == Captum's`` exactly in exact arithmetic, and completeness deltas differ by
  ``sum(ours) / n``. Ours is the correct one: a constant gradient ``g`` gives ``(x-b) * g`` with
  ours but ``(n-1)/n * (x-b) * g`` with Captum's.
* ``smoothgrad(..., relative=False, sigma=s)`` is ``NoiseTunnel(...).attribute(..., stdevs=s)``:
  ``s`` is the standard deviation of the Gaussian noise in input units. The noise comes from
  different generators, so values are compared only where they do not depend on the draw
  (``sigma=0``; a network that is affine in ``x``) and, statistically, for the noise scale.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

from captum.attr import (  # noqa: E402
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
)

import jaxplain as jx  # noqa: E402
from tests import twins

pytestmark = pytest.mark.parity

SIZE = 8
CHANNELS = (4, 6, 6, 6)
TARGETS = np.array([0, 3, 7, 9])
STEPS = 16


def close(ours, theirs, *, scale=None):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = np.abs(theirs).max() if scale is None else scale
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale)


class Twin:
    """One twin pair and helpers to run an explainer on both sides of it."""

    def __init__(self, act, seed=0):
        self.act = act
        self.apply, self.params, self.module = twins.make_twins(
            seed, act=act, size=SIZE, channels=CHANNELS
        )
        self.f = twins.logit_fn(self.apply, self.params)
        rng = np.random.default_rng(seed + 100)
        self.xs = rng.normal(size=(len(TARGETS), SIZE, SIZE, 3)).astype(np.float32)
        self.baselines = rng.normal(size=self.xs.shape).astype(np.float32) * 0.5
        self.ts = TARGETS

    def t(self, a):  # NHWC numpy -> NCHW torch tensor
        return torch.from_numpy(twins.nhwc_to_nchw(a))

    @property
    def inputs(self):  # a fresh NCHW leaf that requires grad, as Captum expects
        return self.t(self.xs).requires_grad_(True)

    @property
    def targets(self):
        return torch.from_numpy(self.ts)

    def ours(self, explainer, **kw):
        return np.asarray(jax.vmap(explainer)(jnp.asarray(self.xs), jnp.asarray(self.ts), **kw))

    def logits(self, xs):
        return np.asarray(self.apply(self.params, jnp.asarray(xs)))


@pytest.fixture(scope="module", params=["relu", "softplus", "tanh"])
def twin(request):
    return Twin(request.param)


@pytest.fixture(scope="module")
def relu_twin():
    # The quadrature-rule sweep runs on the ReLU twin only (the gradient itself is checked on all
    # three activations above; compiles dominate this file's run time).
    return Twin("relu")


def test_twins_agree_on_logits(twin):
    theirs = twin.module(twin.inputs).detach().numpy()
    close(twin.logits(twin.xs), theirs)


# ------------------------------------------------------------------ gradient, saliency, x input


def test_gradient_matches_saliency_abs_false(twin):
    theirs = Saliency(twin.module).attribute(twin.inputs, target=twin.targets, abs=False)
    close(twin.ours(jx.gradient(twin.f)), twins.nchw_to_nhwc(theirs))


def test_saliency_matches_saliency(twin):
    theirs = Saliency(twin.module).attribute(twin.inputs, target=twin.targets)
    close(twin.ours(jx.saliency(twin.f)), twins.nchw_to_nhwc(theirs))


def test_gradient_x_input_matches_input_x_gradient(twin):
    theirs = InputXGradient(twin.module).attribute(twin.inputs, target=twin.targets)
    close(twin.ours(jx.gradient_x_input(twin.f)), twins.nchw_to_nhwc(theirs))


# ------------------------------------------------------------------ integrated gradients


def _ig_both(tw, method, baseline_kind):
    """(ours_attr, ours_delta, captum_attr, captum_delta, f(x) - f(b)) for one rule and baseline."""
    xs = jnp.asarray(tw.xs)
    if baseline_kind == "zero":
        ig = jx.integrated_gradients(tw.f, steps=STEPS, method=method, return_delta=True)
        attr, delta = jax.vmap(ig)(xs, jnp.asarray(tw.ts))
        bs = np.zeros_like(tw.xs)
        captum_baselines = 0.0
    else:
        # One random baseline per example: the explainer is built inside vmap, so the baseline
        # option is a traced per-example array.
        bs = tw.baselines

        def one(x, t, b):
            return jx.integrated_gradients(
                tw.f, baseline=b, steps=STEPS, method=method, return_delta=True
            )(x, t)

        attr, delta = jax.vmap(one)(xs, jnp.asarray(tw.ts), jnp.asarray(bs))
        captum_baselines = tw.t(bs)
    c_attr, c_delta = IntegratedGradients(tw.module).attribute(
        tw.inputs,
        baselines=captum_baselines,
        target=tw.targets,
        n_steps=STEPS,
        method=method,
        return_convergence_delta=True,
    )
    rows = np.arange(len(tw.ts))
    df = tw.logits(tw.xs)[rows, tw.ts] - tw.logits(bs)[rows, tw.ts]
    return (
        np.asarray(attr),
        np.asarray(delta),
        twins.nchw_to_nhwc(c_attr),
        c_delta.detach().numpy(),
        df,
    )


AGREEING_METHODS = ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"]


@pytest.mark.parametrize("baseline_kind", ["zero", "random"])
@pytest.mark.parametrize("method", AGREEING_METHODS)
def test_integrated_gradients_matches_captum(relu_twin, method, baseline_kind):
    _check_ig(relu_twin, method, baseline_kind)


@pytest.mark.parametrize("act", ["softplus", "tanh"])
def test_integrated_gradients_matches_captum_on_smooth_activations(act):
    _check_ig(Twin(act), "gausslegendre", "random")


def _check_ig(tw, method, baseline_kind):
    attr, delta, c_attr, c_delta, df = _ig_both(tw, method, baseline_kind)
    close(attr, c_attr)
    # The delta is a small difference of O(|f(x) - f(b)|) numbers: compare it on that scale.
    close(delta, c_delta, scale=np.abs(df).max())
    # Both deltas are sum(attr) - (f(x) - f(b)) per example.
    close(delta, attr.reshape(len(df), -1).sum(1) - df, scale=np.abs(df).max())


@pytest.mark.parametrize("baseline_kind", ["zero", "random"])
def test_integrated_gradients_trapezoid_is_captums_times_n_over_n_minus_1(relu_twin, baseline_kind):
    # Same points alpha = k/(n-1); Captum's weights are ours * (n-1)/n (they sum to (n-1)/n, ours
    # to 1), so ours * (n-1)/n must equal Captum's attribution.
    attr, delta, c_attr, c_delta, df = _ig_both(relu_twin, "riemann_trapezoid", baseline_kind)
    close(attr * (STEPS - 1) / STEPS, c_attr)
    # The deltas differ by the missing 1/n of the weight: delta - c_delta = sum(ours) / n.
    total = attr.reshape(len(df), -1).sum(1)
    close(delta - c_delta, total / STEPS, scale=np.abs(df).max())
    close(delta, total - df, scale=np.abs(df).max())


def test_trapezoid_weights_are_the_true_rule():
    # Documents the convention difference on the rules themselves: ours sum to 1 (a constant
    # integrand integrates exactly), Captum's to (n-1)/n.
    from captum.attr._utils.approximation_methods import approximation_parameters

    for n in (2, 5, STEPS):
        alphas, weights = jx.quadrature("riemann_trapezoid", n)
        c_step_sizes, c_alphas = approximation_parameters("riemann_trapezoid")
        np.testing.assert_allclose(alphas, c_alphas(n), atol=1e-12)
        np.testing.assert_allclose(weights * (n - 1) / n, c_step_sizes(n), atol=1e-12)
        assert abs(weights.sum() - 1.0) < 1e-12
        assert abs(sum(c_step_sizes(n)) - (n - 1) / n) < 1e-12
    for method in AGREEING_METHODS:
        c_step_sizes, c_alphas = approximation_parameters(method)
        alphas, weights = jx.quadrature(method, STEPS)
        np.testing.assert_allclose(alphas, c_alphas(STEPS), atol=1e-12)
        np.testing.assert_allclose(weights, c_step_sizes(STEPS), atol=1e-12)


# ------------------------------------------------------------------ SmoothGrad / NoiseTunnel

KINDS = ["smoothgrad", "smoothgrad_sq", "vargrad"]


def _smoothgrad_both(tw, sigma, samples):
    """{kind: (ours, Captum's, expected if the gradient were constant)} for the three kinds.

    Ours are compiled together in one jit (the random draws compile slowly on XLA:CPU and are
    shared between the kinds).
    """
    explainers = [
        jx.smoothgrad(jx.gradient(tw.f), samples=samples, sigma=sigma, relative=False, kind=k)
        for k in KINDS
    ]
    keys = jax.random.split(jax.random.key(0), len(tw.ts))
    run = jax.jit(lambda xs, ts, keys: [jax.vmap(e)(xs, ts, key=keys) for e in explainers])
    ours = run(jnp.asarray(tw.xs), jnp.asarray(tw.ts), keys)
    grad = tw.ours(jx.gradient(tw.f))
    expected = {"smoothgrad": grad, "smoothgrad_sq": grad**2, "vargrad": np.zeros_like(grad)}
    out = {}
    for kind, o in zip(KINDS, ours):
        torch.manual_seed(0)
        theirs = NoiseTunnel(Saliency(tw.module)).attribute(
            tw.inputs,
            nt_type=kind,
            nt_samples=samples,
            stdevs=float(sigma),
            target=tw.targets,
            abs=False,
        )
        out[kind] = (np.asarray(o), twins.nchw_to_nhwc(theirs), expected[kind])
    return out, np.abs(grad**2).max(), np.abs(grad).max()


@pytest.fixture(scope="module")
def zero_noise(relu_twin):
    return _smoothgrad_both(relu_twin, 0.0, samples=5)


@pytest.fixture(scope="module")
def affine_noise():
    # act="linear": the network is affine in x, its gradient the same at every noisy point.
    return _smoothgrad_both(Twin("linear", seed=2), 0.7, samples=8)


def _check_smoothgrad(results, kind):
    by_kind, sq_scale, grad_scale = results
    ours, theirs, expected = by_kind[kind]
    # vargrad's exact value is 0: measure its rounding against grad^2, the size of its two terms.
    scale = grad_scale if kind == "smoothgrad" else sq_scale
    close(ours, theirs, scale=scale)
    close(ours, expected, scale=scale)


@pytest.mark.parametrize("kind", KINDS)
def test_smoothgrad_with_zero_noise_is_the_gradient(zero_noise, kind):
    # sigma = stdevs = 0: every sample is x itself, so smoothgrad = grad, smoothgrad_sq = grad^2,
    # vargrad = 0 on both sides, whatever the generators.
    _check_smoothgrad(zero_noise, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_smoothgrad_of_an_affine_network_is_independent_of_the_noise(affine_noise, kind):
    # Both libraries must return grad (grad^2, 0) whatever noise they draw.
    _check_smoothgrad(affine_noise, kind)


def test_smoothgrad_sigma_is_captums_stdevs():
    # f(x) = |x|^2 / 2 has gradient x, so VarGrad of the gradient is the noise variance sigma^2
    # per element: both libraries must read sigma / stdevs as a standard deviation in input units.
    # Statistical: 4 * 64 elements x 400 samples, relative standard error about 0.4 %.
    sigma, samples = 0.3, 400

    class HalfSquare(torch.nn.Module):
        def forward(self, x):
            return 0.5 * (x**2).flatten(1).sum(1, keepdim=True)

    xs = np.random.default_rng(3).normal(size=(4, 8, 8, 1)).astype(np.float32)
    sg = jx.smoothgrad(
        jx.gradient(lambda x: 0.5 * jnp.sum(x**2)),
        samples=samples,
        sigma=sigma,
        relative=False,
        kind="vargrad",
    )
    ours = np.asarray(jax.vmap(sg)(jnp.asarray(xs), key=jax.random.split(jax.random.key(1), 4)))
    torch.manual_seed(1)
    theirs = NoiseTunnel(Saliency(HalfSquare())).attribute(
        torch.from_numpy(twins.nhwc_to_nchw(xs)).requires_grad_(True),
        nt_type="vargrad",
        nt_samples=samples,
        stdevs=sigma,
        target=0,
        abs=False,
    )
    for v in (ours.mean(), theirs.mean().item()):
        assert abs(v / sigma**2 - 1) < 0.03, v / sigma**2


def test_integrated_gradients_global_matches_captum(relu_twin):
    """multiply_by_inputs=False (the mean gradient along the path) against Captum's."""
    tw = relu_twin
    theirs = IntegratedGradients(tw.module, multiply_by_inputs=False).attribute(
        tw.inputs, baselines=0.0, target=tw.targets, n_steps=STEPS, method="gausslegendre")
    ours = tw.ours(jx.integrated_gradients(tw.f, steps=STEPS, multiply_by_inputs=False))
    close(ours, twins.nchw_to_nhwc(theirs))
