"""LRP rules as data.

A rule says how relevance ``R`` at a layer's output goes back to the layer's input. Rules for
dense and convolution layers ``z = W x + b`` are written in the form Zennit uses (Anders et al.):
one or more *branches*, each a modified copy of the layer (the input replaced by ``x+``, ``x-``,
ones or a bound; the weights by ``W+``, ``W-``, ``W**2``, ones...; the bias kept, modified or
dropped), grouped so that every group shares one stabilized denominator::

    R_in = sum_groups sum_branches coef * x_b * W_b^T [mask_g * R / stab(sum_b' z_sign * z_b')]

where ``z_b = W_b x_b + b_b`` and ``mask_g`` (optional) keeps the outputs where the unmodified
``z`` is positive or negative. ``stab(z) = z + eps * sign(z)`` with ``sign(0) = 1`` (or a function
of ``z`` you give).

Every public rule is a value. Calling it with keyword options returns a configured copy:
``jaxplain.rules.epsilon(epsilon=0.25)``, ``jaxplain.rules.zplus(stabilizer=1e-3)``,
``jaxplain.rules.zbox(low=-1.0, high=1.0)``. Rules for other operations are ``pass_through``
(relevance goes back unchanged: activations, normalization), ``norm`` (relevance split in
proportion to each input's share of the output: sums, average pooling, residual additions) and
``gradient`` (the ordinary backward pass: max pooling, reshapes).

Example:
  >>> import jaxplain as jx
  >>> jx.rules.epsilon(epsilon=0.25)
  Rule('epsilon', epsilon=0.25)
  >>> jx.rules.alpha_beta(alpha=2.0, beta=1.0).name
  'alpha_beta'

References:
  Bach, Binder, Montavon, Klauschen, Müller & Samek (2015), "On Pixel-Wise Explanations for
  Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation", PLoS ONE; Montavon,
  Binder, Lapuschkin, Samek & Müller (2019), "Layer-Wise Relevance Propagation: An Overview",
  in Explainable AI, LNCS 11700; Anders, Neumann, Samek, Müller & Lapuschkin (2021), "Software
  for Dataset-wide XAI: From Local Explanations to Global Insights with Zennit, CoRelAy, and
  ViRelAy", arXiv:2106.13200.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxplain import _checks

__all__ = [
    "Branch",
    "Group",
    "Rule",
    "stabilize",
    "stabilizer",
    "zero",
    "epsilon",
    "zplus",
    "alpha_beta",
    "alpha1_beta0",
    "alpha2_beta1",
    "gamma",
    "flat",
    "wsquare",
    "zbox",
    "pass_through",
    "norm",
    "gradient",
    "relu_beta_smooth",
    "uniform",
    "softmax",
    "attention_head",
]

# Input modifiers, by name (the propagation knows which ones vanish for a non-negative input).
INPUTS = ("x", "pos", "neg", "ones", "low", "high")


def _identity(p):
    return p


def _positive(p):
    return jnp.maximum(p, 0)


def _negative(p):
    return jnp.minimum(p, 0)


def _ones(p):
    return jnp.ones_like(p)


def _square(p):
    return p * p


# A weight modifier may declare itself linear in (W, W+): ``modify(W) = a * W + c * W+`` as its
# ``linear = (a, c)`` attribute. The propagation then shares convolutions between branches
# (``x W`` is the layer's own output, ``x W+`` is computed once, and every branch's transpose is a
# combination of two), which makes gamma and alpha-beta about as cheap as z+.
_identity.linear = (1.0, 0.0)
_positive.linear = (0.0, 1.0)
_negative.linear = (1.0, -1.0)  # W- = W - W+


def _plus_gamma(g: float, part: Callable) -> Callable:
    def modify(p):
        return p + g * part(p)

    modify.__name__ = f"plus_{g}_{part.__name__.strip('_')}"
    a, c = part.linear
    modify.linear = (1.0 + g * a, g * c)
    return modify


class Branch(NamedTuple):
    """One modified copy of a layer: ``z_b = weight(W) input(x) + bias(b)``.

    Attributes:
      input: how the layer's input is modified: ``"x"`` (unchanged), ``"pos"`` (``max(x, 0)``),
        ``"neg"`` (``min(x, 0)``), ``"ones"``, ``"low"`` / ``"high"`` (the z^B bounds).
      weight: ``W -> W'``, elementwise.
      bias: ``b -> b'``, or None for no bias in this branch.
      coef: the branch's factor in the sum of relevances.
      z_sign: the branch's sign in its group's denominator.

    Example:
      >>> import jaxplain as jx
      >>> pos, neg = jx.rules.zplus.groups[0].branches  # x+ W+ (+ b+) and x- W- (no bias)
      >>> pos.input, neg.input, neg.bias is None
      ('pos', 'neg', True)

    References:
      Zennit's ``BasicHook`` (input, parameter and output modifiers): Anders et al. (2021),
      arXiv:2106.13200.
    """

    input: str = "x"
    weight: Callable = _identity
    bias: Callable | None = _identity
    coef: float = 1.0
    z_sign: float = 1.0


class Group(NamedTuple):
    """Branches sharing one denominator; ``where`` ("positive"/"negative"/None) masks the outputs
    by the sign of the unmodified ``z``.

    Example:
      >>> import jaxplain as jx
      >>> [g.where for g in jx.rules.gamma.groups]  # the generalized gamma rule's two halves
      ['positive', 'negative']

    References:
      Andéol, Kawakami, Wada, Kanamori, Müller & Montavon (2021), "Learning domain invariant
      representations by joint Wasserstein distance minimization", arXiv preprint (the gamma
      rule generalized to negative outputs, as in Zennit's ``Gamma``).
    """

    branches: tuple[Branch, ...]
    where: str | None = None


class Rule(NamedTuple):
    """An LRP rule (see the module's notes). Call it with keyword options for a configured copy.

    Attributes:
      name: the rule's name (``"epsilon"``, ``"zplus"``, ...).
      kind: ``"layer"`` (a branch rule for dense/convolution layers; without parameter changes
        also valid for sums and pooling), ``"pass"`` or ``"gradient"``.
      groups: the branches of a ``"layer"`` rule.
      stabilizer: ``eps`` of ``z + eps * sign(z)``, or a function ``z -> stabilized z``.
      options: the options the rule was built with, as ``(name, value)`` pairs.

    Example:
      >>> import jaxplain as jx
      >>> r = jx.rules.gamma(gamma=0.5, stabilizer=1e-3)
      >>> r, r.stabilizer, r.modifies_params
      (Rule('gamma', gamma=0.5, stabilizer=0.001), 0.001, True)

    References:
      Montavon, Binder, Lapuschkin, Samek & Müller (2019), "Layer-Wise Relevance Propagation: An
      Overview", in Explainable AI, LNCS 11700.
    """

    name: str
    kind: str
    groups: tuple[Group, ...] = ()
    stabilizer: Any = 1e-6
    options: tuple = ()

    def __call__(self, **options) -> "Rule":
        if self.name not in _FACTORIES:
            raise TypeError(f"jaxplain.rules: the rule {self.name!r} takes no options.")
        merged = {**dict(self.options), **options}
        zero_params = merged.pop("zero_params", None)
        rule = _FACTORIES[self.name](**merged)
        return rule if zero_params is None else _without_bias(rule, zero_params)

    def __repr__(self) -> str:
        opts = "".join(f", {k}={_short(v)}" for k, v in self.options)
        return f"Rule({self.name!r}{opts})"

    @property
    def modifies_params(self) -> bool:
        """Whether the rule changes the layer (weights, bias or input), i.e. needs a dense or
        convolution layer rather than any linear operation."""
        return any(
            b.input != "x" or b.weight is not _identity or b.bias is not _identity
            for g in self.groups
            for b in g.branches
        ) or any(g.where is not None for g in self.groups) or len(self.groups) > 1


def _without_bias(rule: "Rule", zero_params: Any) -> "Rule":
    """The rule with every branch's bias dropped (Zennit's ``zero_params='bias'``)."""
    names = (zero_params,) if isinstance(zero_params, str) else zero_params
    try:
        names = tuple(names)
    except TypeError:
        names = (zero_params,)
    if not names or any(n != "bias" for n in names):
        raise ValueError(
            f"jaxplain.rules.{rule.name}: zero_params must be 'bias' (or ('bias',)), got "
            f"{zero_params!r}; 'bias' drops the layer's bias from every branch of the rule. (Zeroing "
            f"the weights would leave no relevance to propagate.)"
        )
    groups = tuple(
        Group(tuple(b._replace(bias=None) for b in g.branches), g.where) for g in rule.groups
    )
    return rule._replace(groups=groups, options=rule.options + (("zero_params", "bias"),))


def _short(v):
    if isinstance(v, (np.ndarray,)) or hasattr(v, "shape") and getattr(v, "ndim", 0):
        return f"<array {list(v.shape)}>"
    if callable(v):
        return getattr(v, "__name__", type(v).__name__)
    return repr(v)


def stabilize(z, stabilizer):
    """``z + eps * sign(z)`` with ``sign(0) = +1``; or ``stabilizer(z)`` when it is a function.

    With ``eps = 0`` (LRP-0), zero denominators are replaced by one: their numerators are zero as
    well, so that output's relevance is dropped instead of becoming NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> stabilize(jnp.array([-1.0, 0.0, 2.0]), 0.5)
      Array([-1.5,  0.5,  2.5], dtype=float32)

    References:
      Zennit's ``zennit.core.stabilize`` (Anders et al. 2021).
    """
    if callable(stabilizer):
        return stabilizer(z)
    sign = jnp.where(z >= 0, 1, -1).astype(z.dtype)
    if stabilizer == 0:
        return jnp.where(z == 0, jnp.ones_like(z), z)
    return z + sign * jnp.asarray(stabilizer, z.dtype)


def stabilizer(epsilon: float = 1e-6, *, clip: bool = False, norm_scale: bool = False,
               signed: bool = True) -> Callable:
    """A stabilizer function for a rule's ``stabilizer=`` option, as Zennit's ``Stabilizer``.

    ``clip=False``: ``z + eps * sign(z)``; ``clip=True``: ``sign(z) * max(|z|, eps)`` (values
    smaller than ``eps`` in magnitude are raised to it, larger ones are untouched). With
    ``norm_scale=True``, ``eps`` is first scaled by the root mean square of ``z`` over the
    example (Zennit's default ``dim``: all axes but the batch). ``sign(0) = +1``.
    ``signed=False``: ``z + eps`` whatever the sign of ``z`` (LXT's ``_stabilize``, AttnLRP).

    Args:
      epsilon: the shift or clip value (``>= 0``).
      clip: clip the magnitude instead of shifting it.
      norm_scale: scale ``epsilon`` by ``sqrt(mean(z ** 2))``.
      signed: shift by ``eps * sign(z)`` (Zennit) rather than by ``+eps`` (LXT).

    Returns:
      ``z -> stabilized z``, e.g. ``jaxplain.rules.epsilon(epsilon=jaxplain.rules.stabilizer(0.1,
      clip=True))``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> jx.rules.stabilizer(0.5, clip=True)(jnp.array([-1.0, 0.1, 0.0, 2.0]))
      Array([-1. ,  0.5,  0.5,  2. ], dtype=float32)

    References:
      Zennit's ``zennit.core.Stabilizer`` (Anders et al. 2021, arXiv:2106.13200).
    """
    eps = _checks.check_float("rules.stabilizer", "epsilon", epsilon, minimum=0.0)
    clip = _checks.check_bool("rules.stabilizer", "clip", clip)
    norm_scale = _checks.check_bool("rules.stabilizer", "norm_scale", norm_scale)
    signed = _checks.check_bool("rules.stabilizer", "signed", signed)
    if clip and not signed:
        raise ValueError("jaxplain.rules.stabilizer: clip=True clips |z|, so it needs signed=True.")

    def stabilize_z(z):
        sign = jnp.where(z >= 0, 1, -1).astype(z.dtype) if signed else jnp.ones_like(z)
        e = jnp.asarray(eps, z.dtype)
        if norm_scale:
            e = e * jnp.sqrt(jnp.mean(z * z))
        if clip:
            return sign * jnp.maximum(jnp.abs(z), e)
        return z + sign * e

    stabilize_z.__name__ = (f"stabilizer({eps:g}" + (", clip=True" if clip else "")
                            + (", norm_scale=True" if norm_scale else "")
                            + ("" if signed else ", signed=False") + ")")
    return stabilize_z


# --------------------------------------------------------------------------- option checks


def _check_stabilizer(name: str, value: Any, option: str = "stabilizer") -> Any:
    """A stabilizer: a function ``z -> stabilized z``, or a number >= 0 (``eps``)."""
    if callable(value):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"jaxplain.rules.{name}: {option} must be a number >= 0 or a function z -> stabilized "
            f"z, got {type(value).__name__} {value!r}."
        )
    return _checks.check_float(f"rules.{name}", option, value, minimum=0.0)


def check_configured(rule: "Rule", who: str) -> "Rule":
    """Raises ValueError for a rule that needs options before use (``zbox`` without its bounds)."""
    if rule.name == "zbox" and not rule.options:
        raise ValueError(
            f"{who}: jaxplain.rules.zbox needs the input's bounds: jaxplain.rules.zbox(low=..., "
            f"high=...), e.g. low=0.0, high=1.0 for images in [0, 1]."
        )
    return rule


def _check_number(name: str, option: str, value: Any, minimum: float = 0.0) -> float:
    return _checks.check_float(f"rules.{name}", option, value, minimum=minimum)


def _no_options(name: str, options: dict) -> None:
    allowed = {"stabilizer"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(
            f"jaxplain.rules.{name}: unknown option(s) {', '.join(unknown)}; it takes "
            f"stabilizer= only."
        )


# --------------------------------------------------------------------------- the rules


def _epsilon(epsilon: float = 1e-6, **rest) -> Rule:
    if rest:
        raise TypeError(f"jaxplain.rules.epsilon: unknown option(s) {', '.join(sorted(rest))}; it takes epsilon=.")
    eps = _check_stabilizer("epsilon", epsilon, "epsilon")
    return Rule("epsilon", "layer", (Group((Branch(),)),), eps, (("epsilon", epsilon),))


def _zero(**options) -> Rule:
    _no_options("zero", options)
    return Rule("zero", "layer", (Group((Branch(),)),), 0.0, ())


def _norm(stabilizer: float = 1e-6, **rest) -> Rule:
    _no_options("norm", rest)
    stab = _check_stabilizer("norm", stabilizer)
    return Rule("norm", "layer", (Group((Branch(),)),), stab, (("stabilizer", stabilizer),))


def _zplus(stabilizer: float = 1e-6, **rest) -> Rule:
    _no_options("zplus", rest)
    stab = _check_stabilizer("zplus", stabilizer)
    group = Group(
        (Branch("pos", _positive, _positive), Branch("neg", _negative, None)),
    )
    return Rule("zplus", "layer", (group,), stab, (("stabilizer", stabilizer),))


def _alpha_beta(alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6, **rest) -> Rule:
    if rest:
        raise TypeError(
            f"jaxplain.rules.alpha_beta: unknown option(s) {', '.join(sorted(rest))}; it takes "
            f"alpha=, beta= and stabilizer=."
        )
    alpha = _check_number("alpha_beta", "alpha", alpha)
    beta = _check_number("alpha_beta", "beta", beta)
    if abs(alpha - beta - 1.0) > 1e-12:
        raise ValueError(
            f"jaxplain.rules.alpha_beta: alpha - beta must equal 1 so that relevance is conserved, "
            f"got alpha={alpha}, beta={beta} (alpha - beta = {alpha - beta}). Common choices: "
            f"alpha=1, beta=0 (jaxplain.rules.alpha1_beta0) and alpha=2, beta=1 "
            f"(jaxplain.rules.alpha2_beta1)."
        )
    stab = _check_stabilizer("alpha_beta", stabilizer)
    positive = Group(
        (Branch("pos", _positive, _positive, alpha), Branch("neg", _negative, None, alpha)),
    )
    negative = Group(
        (Branch("pos", _negative, _negative, -beta), Branch("neg", _positive, None, -beta)),
    )
    groups = (positive, negative) if beta else (positive,)
    return Rule(
        "alpha_beta",
        "layer",
        groups,
        stab,
        (("alpha", alpha), ("beta", beta), ("stabilizer", stabilizer)),
    )


def _gamma(gamma: float = 0.25, stabilizer: float = 1e-6, **rest) -> Rule:
    if rest:
        raise TypeError(
            f"jaxplain.rules.gamma: unknown option(s) {', '.join(sorted(rest))}; it takes "
            f"gamma= and stabilizer=."
        )
    g = _check_number("gamma", "gamma", gamma)
    stab = _check_stabilizer("gamma", stabilizer)
    up, down = _plus_gamma(g, _positive), _plus_gamma(g, _negative)
    positive = Group((Branch("pos", up, up), Branch("neg", down, None)), where="positive")
    negative = Group((Branch("pos", down, down), Branch("neg", up, None)), where="negative")
    return Rule(
        "gamma", "layer", (positive, negative), stab, (("gamma", gamma), ("stabilizer", stabilizer))
    )


def _flat(stabilizer: float = 1e-6, **rest) -> Rule:
    _no_options("flat", rest)
    stab = _check_stabilizer("flat", stabilizer)
    return Rule("flat", "layer", (Group((Branch("ones", _ones, None),)),), stab, (("stabilizer", stabilizer),))


def _wsquare(stabilizer: float = 1e-6, **rest) -> Rule:
    _no_options("wsquare", rest)
    stab = _check_stabilizer("wsquare", stabilizer)
    # Zennit squares every parameter, the bias included.
    return Rule(
        "wsquare", "layer", (Group((Branch("ones", _square, _square),)),), stab, (("stabilizer", stabilizer),)
    )


def _zbox(low: Any = None, high: Any = None, stabilizer: float = 1e-6, **rest) -> Rule:
    if rest:
        raise TypeError(
            f"jaxplain.rules.zbox: unknown option(s) {', '.join(sorted(rest))}; it takes low=, "
            f"high= and stabilizer=."
        )
    if low is None or high is None:
        raise TypeError(
            "jaxplain.rules.zbox needs the input's bounds: jaxplain.rules.zbox(low=..., high=...), "
            "e.g. low=0.0, high=1.0 for images in [0, 1] (scalars, or arrays that broadcast to the "
            "input, e.g. per channel)."
        )
    lo, hi = np.asarray(low), np.asarray(high)
    for nm, v in (("low", lo), ("high", hi)):
        if v.dtype.kind not in "iuf":
            raise TypeError(f"jaxplain.rules.zbox: {nm} must be real numbers, got dtype {v.dtype}.")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"jaxplain.rules.zbox: {nm} must be finite, got {v}.")
    try:
        ok = bool(np.all(lo <= hi))
    except ValueError as err:
        raise ValueError(
            f"jaxplain.rules.zbox: low (shape {lo.shape}) and high (shape {hi.shape}) do not "
            f"broadcast together."
        ) from err
    if not ok:
        raise ValueError(f"jaxplain.rules.zbox: low must be <= high everywhere, got low={low}, high={high}.")
    stab = _check_stabilizer("zbox", stabilizer)
    group = Group(
        (
            Branch("x", _identity, _identity, 1.0, 1.0),
            Branch("low", _positive, _positive, -1.0, -1.0),
            Branch("high", _negative, _negative, -1.0, -1.0),
        ),
    )
    return Rule(
        "zbox", "layer", (group,), stab, (("low", low), ("high", high), ("stabilizer", stabilizer))
    )


def _relu_beta_smooth(beta_smooth: float = 10.0, **rest) -> Rule:
    if rest:
        raise TypeError(
            f"jaxplain.rules.relu_beta_smooth: unknown option(s) {', '.join(sorted(rest))}; it "
            f"takes beta_smooth=."
        )
    beta = _checks.check_float("rules.relu_beta_smooth", "beta_smooth", beta_smooth, minimum=0.0)
    return Rule("relu_beta_smooth", "beta_smooth", (), beta, (("beta_smooth", beta_smooth),))


def _uniform(epsilon: Any = 1e-8, **rest) -> Rule:
    if rest:
        raise TypeError(f"jaxplain.rules.uniform: unknown option(s) {', '.join(sorted(rest))}; it takes epsilon=.")
    eps = _check_stabilizer("uniform", epsilon, "epsilon")
    return Rule("uniform", "uniform", (), eps, (("epsilon", epsilon),))


def _attention_head(epsilon: Any = 1e-8, **rest) -> Rule:
    if rest:
        raise TypeError(
            f"jaxplain.rules.attention_head: unknown option(s) {', '.join(sorted(rest))}; it takes epsilon=."
        )
    eps = _check_stabilizer("attention_head", epsilon, "epsilon")
    return Rule("attention_head", "attention_head", (), eps, (("epsilon", epsilon),))


_FACTORIES: dict[str, Callable[..., Rule]] = {
    "zero": _zero,
    "epsilon": _epsilon,
    "norm": _norm,
    "zplus": _zplus,
    "alpha_beta": _alpha_beta,
    "gamma": _gamma,
    "flat": _flat,
    "wsquare": _wsquare,
    "zbox": _zbox,
    "relu_beta_smooth": _relu_beta_smooth,
    "uniform": _uniform,
    "attention_head": _attention_head,
}

#: LRP-0: ``R_j = sum_k x_j w_jk / z_k R_k`` (Bach et al. 2015); zero denominators drop relevance.
zero = _zero()
#: LRP-epsilon: ``z_k + eps sign(z_k)`` in the denominator; ``epsilon(epsilon=0.25)`` for more.
epsilon = _epsilon()
#: z+ (alpha=1, beta=0, negative inputs paired with negative weights, as Zennit's ``ZPlus``).
zplus = _zplus()
#: alpha-beta with ``alpha - beta = 1``; this value is alpha=2, beta=1: call it to choose others.
alpha_beta = _alpha_beta()
#: alpha=1, beta=0.
alpha1_beta0 = _alpha_beta(alpha=1.0, beta=0.0)
#: alpha=2, beta=1.
alpha2_beta1 = _alpha_beta(alpha=2.0, beta=1.0)
#: The generalized gamma rule (Montavon et al. 2019; Andéol et al. 2021), gamma=0.25 by default.
gamma = _gamma()
#: Flat: weights ones, bias dropped, input ones (Lapuschkin et al. 2019).
flat = _flat()
#: w^2: squared weights (and bias, as Zennit), input ones (Montavon et al. 2017).
wsquare = _wsquare()
#: z^B for a bounded input: call ``zbox(low=..., high=...)`` before use.
zbox = Rule("zbox", "layer", (), 1e-6, ())
#: Relevance passes back unchanged (activations, normalization).
pass_through = Rule("pass_through", "pass")
#: LRP-0 with a stabilizer and no parameter changes: sums, pooling, residual additions.
norm = _norm()
#: The ordinary backward pass (max pooling routes relevance to the winner; reshapes move it).
gradient = Rule("gradient", "gradient")
#: For activations: the backward pass of ``softplus`` with ``beta``, ``sigmoid(beta x) * g``
#: (Zennit's ``ReLUBetaSmooth``, Dombrowski et al. 2019); ``beta_smooth`` (default 10) is kept as
#: the rule's ``stabilizer`` field.
relu_beta_smooth = _relu_beta_smooth()
#: For a product of two x-dependent values (AttnLRP's uniform rule, Achtibat et al. 2024): each
#: factor gets half. A matrix product is split by the epsilon rule on ``2 z`` (LXT's ``matmul``:
#: ``R_a = a * J_a^T (R / (2 z + eps))``, the same for ``b``); an elementwise ``a * b`` gives
#: ``R / 2`` to each (LXT's ``mul2``). ``epsilon`` (default 1e-8) as in a stabilizer.
uniform = _uniform()
#: For a softmax (AttnLRP's softmax rule, Achtibat et al. 2024, Prop. 3.1):
#: ``R_in = x * (R - s * sum(R))`` over the softmax's axes, with ``s`` its output and ``x`` its
#: input (``-inf`` inputs count 0); the rest is absorbed (its bias term).
softmax = Rule("softmax", "softmax")
#: For a product of two x-dependent values, CP-LRP's AH rule (Ali et al. 2022): attention weights
#: (a softmax's output) are constants, so ``A . v`` hands all of ``R`` to ``v`` by the epsilon rule
#: (``R_v = v * A^T (R / (z + eps))``) and the softmax, ``q`` and ``k`` get none; a product
#: without attention weights (a gate) is split as :data:`uniform` splits it.
attention_head = _attention_head()

RULE_NAMES = ("zero", "epsilon", "zplus", "alpha_beta", "gamma", "flat", "wsquare", "zbox", "pass_through", "norm", "gradient", "relu_beta_smooth", "uniform", "softmax", "attention_head")
