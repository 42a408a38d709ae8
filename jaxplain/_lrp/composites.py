"""Composites: which LRP rule each operation of ``f`` gets.

LRP sees ``f`` as a program (its jaxpr) and sorts each operation that touches ``x`` into a kind:

=============  ===============================================================  ================
kind           operations                                                       default rule
=============  ===============================================================  ================
``dense``      ``dot_general`` with a constant operand (``x @ W``, ``nn.Dense``)  the composite's
``conv``       ``conv_general_dilated`` with a constant kernel (1-D, 2-D, 3-D)   layer rules
``activation`` elementwise functions of one input (ReLU, GELU, tanh, ...)        ``pass_through``
``affine``     elementwise ``+ - * /`` with constants (BatchNorm in inference)   ``pass_through``
``sum``        ``a + b`` of two inputs (residual additions), ``reduce_sum``     ``norm``
``avg_pool``   ``reduce_window`` sums (average pooling)                          ``norm``
``max_pool``   ``reduce_window`` / ``reduce_max`` maxima                         ``gradient``
``softmax``    ``jax.nn.softmax`` (its max shift, ``exp``, sum and division)     none: give one
``product``    ``a * b``, ``a @ b`` of two x-dependent values (attention)       none: give one
``layer_norm`` ``(x - mean) * rsqrt(var + eps) * scale + bias`` (LayerNorm)     none: give one
``rms_norm``   ``x * rsqrt(mean(x^2) + eps) * scale`` (RMSNorm)                 none: give one
=============  ===============================================================  ================

Reshapes, transposes, slices, padding, broadcasts, concatenations and type casts move relevance
with their ordinary backward pass. A dense or convolution layer's bias is the constant added to its
output right after it. Any other operation that touches ``x`` (e.g. a product of two
``x``-dependent values) needs a rule given by its primitive name, e.g. ``types={"mul":
jx.rules.gradient}``, or ``lrp`` raises an error naming it. A softmax has no default either:
``types={"softmax": jx.rules.pass_through}`` is Zennit's ``Pass`` on a softmax module (the
relevance goes through unchanged), ``jx.rules.gradient`` its ordinary backward pass; by module path
(``paths={"attn/probs": jx.rules.pass_through}``) for one softmax only.

A :class:`Composite` picks the rule of each layer, first match wins: ``paths`` (the Flax module
path, shell patterns such as ``"stage1/*"``; a layer rule given by path reaches the dense and
convolution layers there, ``pass_through`` / ``gradient`` every operation there), ``first`` /
``last`` (the first / last dense or
convolution layer of the program), ``head`` (dense layers after the last convolution), ``types``
(a kind or a primitive name), then the default above.

Example:
  >>> import jaxplain as jx
  >>> c = jx.composites.custom(types={"conv": jx.rules.zplus, "dense": jx.rules.epsilon},
  ...                          first=jx.rules.flat)
  >>> c.first
  (('any', Rule('flat', stabilizer=1e-06)),)

References:
  Kohlbrenner, Bauer, Nakajima, Binder, Samek & Lapuschkin (2020), "Towards Best Practice in
  Explaining Neural Network Decisions with LRP", IJCNN; Montavon et al. (2019), "Layer-Wise
  Relevance Propagation: An Overview"; Zennit's composites (Anders et al. 2021).
"""

from __future__ import annotations

import fnmatch
from typing import Any, Mapping, NamedTuple

from jaxplain import _checks
from jaxplain._lrp import rules as R

__all__ = [
    "Composite",
    "custom",
    "epsilon_plus",
    "epsilon_plus_flat",
    "epsilon_gamma_box",
    "epsilon_alpha2_beta1",
    "epsilon_alpha2_beta1_flat",
    "attn_lrp",
    "cp_lrp",
    "KINDS",
]

KINDS = ("dense", "conv", "activation", "affine", "sum", "avg_pool", "max_pool", "softmax", "product",
         "layer_norm", "rms_norm")
LAYER_KINDS = ("dense", "conv")

DEFAULTS: dict[str, R.Rule] = {
    "activation": R.pass_through,
    "affine": R.pass_through,
    "sum": R.norm,
    "avg_pool": R.norm,
    "max_pool": R.gradient,
}


class Composite(NamedTuple):
    """Rules for the operations of ``f``; build one with :func:`custom` or take a preset.

    Attributes:
      types: ``((kind or primitive name, rule), ...)``.
      paths: ``((module path pattern, rule), ...)``, matched in order.
      first: ``((kind, rule), ...)`` for the first layer: kind ``"any"`` is the first
        dense/convolution layer, ``"conv"`` / ``"dense"`` the first layer of that kind.
      last: the rule of the last dense/convolution layer, or None.
      head: the rule of dense layers after the last convolution, or None.
      default: the rule of dense/convolution layers nothing else matched (None: an error).

    Example:
      >>> import jaxplain as jx
      >>> c = jx.composites.epsilon_gamma_box(low=0.0, high=1.0)
      >>> c.rule_for("conv", "conv_general_dilated", "", frozenset({"first", "first_conv"})).name
      'zbox'
      >>> c.rule_for("conv", "conv_general_dilated", "", frozenset()).name
      'gamma'

    References:
      Kohlbrenner et al. (2020), "Towards Best Practice in Explaining Neural Network Decisions
      with LRP", IJCNN.
    """

    types: tuple = ()
    paths: tuple = ()
    first: tuple = ()
    last: R.Rule | None = None
    head: R.Rule | None = None
    default: R.Rule | None = None

    def rule_for(self, kind: str, primitive: str, path: str, position: frozenset) -> R.Rule | None:
        """The rule of one operation: ``kind`` (see :data:`KINDS`, or ``"other"``), its primitive's
        name, its module path (``""`` if unknown) and its position tags (``"first"``,
        ``"first_conv"``, ``"first_dense"``, ``"last"``, ``"head"``)."""
        if path:
            for pattern, rule in self.paths:
                # "stage1/*": zplus means stage1's layers, not its activations and sums
                applies = kind in LAYER_KINDS or rule.kind in ("pass", "gradient")
                if applies and path_matches(pattern, path):
                    return rule
        if kind in LAYER_KINDS:
            for k, rule in self.first:
                if ("first" if k == "any" else f"first_{k}") in position:
                    return rule
            for tag in ("last", "head"):
                rule = getattr(self, tag)
                if rule is not None and tag in position:
                    return rule
        types = dict(self.types)
        if primitive in types:
            return types[primitive]
        if kind in types:
            return types[kind]
        if kind in LAYER_KINDS:
            return self.default
        return DEFAULTS.get(kind)


def path_matches(pattern: str, path: str) -> bool:
    """``pattern`` matches ``path`` or a trailing part of it (``"conv1"`` matches ``"VGG/conv1"``;
    Linen programs name their modules under the root module's class name)."""
    pattern = pattern.strip("/")
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[i:]), pattern) for i in range(len(parts)))


def _check_rule(where: str, rule: Any) -> R.Rule:
    if not isinstance(rule, R.Rule):
        raise TypeError(
            f"jaxplain.composites.custom: {where} must be a rule such as jaxplain.rules.epsilon, "
            f"got {type(rule).__name__} {rule!r}."
        )
    return R.check_configured(rule, f"jaxplain.composites.custom: {where}")


def custom(
    *,
    types: Mapping[str, R.Rule] | None = None,
    paths: Mapping[str, R.Rule] | None = None,
    first: R.Rule | Mapping[str, R.Rule] | None = None,
    last: R.Rule | None = None,
    head: R.Rule | None = None,
    default: R.Rule | None = None,
) -> Composite:
    """A composite of your own.

    Args:
      types: rules by kind (``"dense"``, ``"conv"``, ``"activation"``, ``"affine"``, ``"sum"``,
        ``"avg_pool"``, ``"max_pool"``) or by primitive name (``"mul"``, ``"dot_general"``...).
      paths: rules by Flax module path; shell patterns (``"stage1/*"``) match the path or a
        trailing part of it. Checked first, in order. A layer rule (epsilon, zplus, ...) reaches
        the dense and convolution layers under the path; ``pass_through`` and ``gradient`` reach
        every operation there.
      first: the first dense/convolution layer's rule (e.g. ``rules.flat``), or
        ``{"conv": rule}`` / ``{"dense": rule}`` for the first layer of that kind (Zennit's
        ``EpsilonGammaBox`` puts z^B on the first convolution).
      last: the last dense/convolution layer's rule.
      head: the rule of dense layers after the last convolution (the classifier).
      default: dense/convolution layers nothing else matched; None makes them an error.

    Returns:
      A :class:`Composite` for ``jaxplain.lrp(f, rules=...)``.

    Example:
      >>> import jaxplain as jx
      >>> c = jx.composites.custom(default=jx.rules.epsilon, paths={"head": jx.rules.zero})
      >>> c.rule_for("dense", "dot_general", "MLP/head", frozenset()).name
      'zero'

    References:
      Kohlbrenner et al. (2020), "Towards Best Practice in Explaining Neural Network Decisions
      with LRP", IJCNN.
    """
    types = dict(types or {})
    for name, rule in types.items():
        if not isinstance(name, str):
            raise TypeError(f"jaxplain.composites.custom: types keys must be strings, got {name!r}.")
        _check_rule(f"types[{name!r}]", rule)
    paths = dict(paths or {})
    for name, rule in paths.items():
        if not isinstance(name, str) or not name.strip("/"):
            raise TypeError(
                f"jaxplain.composites.custom: paths keys must be module paths such as 'stage1/conv0', "
                f"got {name!r}."
            )
        _check_rule(f"paths[{name!r}]", rule)
    if first is None:
        firsts = ()
    elif isinstance(first, Mapping):
        firsts = []
        for k, rule in first.items():
            if k not in ("any", *LAYER_KINDS):
                raise ValueError(
                    f"jaxplain.composites.custom: first= keys must be 'conv', 'dense' or 'any', got {k!r}."
                )
            firsts.append((k, _check_rule(f"first[{k!r}]", rule)))
        firsts = tuple(firsts)
    else:
        firsts = (("any", _check_rule("first", first)),)
    for nm, rule in (("last", last), ("head", head), ("default", default)):
        if rule is not None:
            _check_rule(nm, rule)
    return Composite(tuple(types.items()), tuple(paths.items()), firsts, last, head, default)


def _preset(conv: R.Rule, epsilon: float, first: Any, stabilizer: float) -> Composite:
    eps = R.epsilon(epsilon=epsilon)
    types = {
        "conv": conv,
        "dense": eps,
        "sum": R.norm(stabilizer=stabilizer),
        "avg_pool": R.norm(stabilizer=stabilizer),
    }
    return custom(types=types, first=first)


def epsilon_plus(*, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """Convolutions z+, dense layers epsilon, activations and normalization pass, sums and average
    pooling norm (Zennit's ``EpsilonPlus``).

    Example:
      >>> import jaxplain as jx
      >>> jx.composites.epsilon_plus().rule_for("conv", "conv_general_dilated", "", frozenset()).name
      'zplus'

    References:
      Kohlbrenner et al. (2020), IJCNN; Zennit's ``EpsilonPlus``.
    """
    return _preset(R.zplus(stabilizer=stabilizer), epsilon, None, stabilizer)


def epsilon_plus_flat(*, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """:func:`epsilon_plus` with the flat rule on the first dense/convolution layer (Zennit's
    ``EpsilonPlusFlat``).

    Example:
      >>> import jaxplain as jx
      >>> jx.composites.epsilon_plus_flat().first[0][1].name
      'flat'

    References:
      Kohlbrenner et al. (2020), IJCNN; Lapuschkin et al. (2019), "Unmasking Clever Hans
      predictors", Nature Communications.
    """
    c = _preset(R.zplus(stabilizer=stabilizer), epsilon, R.flat(stabilizer=stabilizer), stabilizer)
    return c


def epsilon_gamma_box(
    *, low: Any, high: Any, epsilon: float = 1e-6, gamma: float = 0.25, stabilizer: float = 1e-6
) -> Composite:
    """Convolutions gamma, dense layers epsilon, the first layer z^B with bounds ``low``/``high``
    (Zennit's ``EpsilonGammaBox``).

    Example:
      >>> import jaxplain as jx
      >>> jx.composites.epsilon_gamma_box(low=0.0, high=1.0).first
      (('conv', Rule('zbox', low=0.0, high=1.0, stabilizer=1e-06)),)

    References:
      Montavon et al. (2019), "Layer-Wise Relevance Propagation: An Overview"; Zennit's
      ``EpsilonGammaBox``.
    """
    conv = R.gamma(gamma=gamma, stabilizer=stabilizer)
    # As Zennit's first map, which holds convolutions only: z^B goes to the first convolution.
    first = {"conv": R.zbox(low=low, high=high, stabilizer=stabilizer)}
    return _preset(conv, epsilon, first, stabilizer)


def epsilon_alpha2_beta1(*, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """Convolutions alpha2-beta1, dense layers epsilon (Zennit's ``EpsilonAlpha2Beta1``).

    Example:
      >>> import jaxplain as jx
      >>> jx.composites.epsilon_alpha2_beta1().rule_for("conv", "conv_general_dilated", "", frozenset()).options[:2]
      (('alpha', 2.0), ('beta', 1.0))

    References:
      Bach et al. (2015), PLoS ONE; Zennit's ``EpsilonAlpha2Beta1``.
    """
    return _preset(R.alpha_beta(alpha=2.0, beta=1.0, stabilizer=stabilizer), epsilon, None, stabilizer)


def epsilon_alpha2_beta1_flat(*, epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """:func:`epsilon_alpha2_beta1` with the flat rule on the first layer (Zennit's
    ``EpsilonAlpha2Beta1Flat``).

    Example:
      >>> import jaxplain as jx
      >>> jx.composites.epsilon_alpha2_beta1_flat().first[0][1].name
      'flat'

    References:
      Bach et al. (2015), PLoS ONE; Zennit's ``EpsilonAlpha2Beta1Flat``.
    """
    return _preset(
        R.alpha_beta(alpha=2.0, beta=1.0, stabilizer=stabilizer),
        epsilon,
        R.flat(stabilizer=stabilizer),
        stabilizer,
    )


def attn_lrp(*, epsilon: float = 1e-6, sum_epsilon: float = 1e-8) -> Composite:
    """AttnLRP for Transformers (Achtibat et al. 2024), as LXT's explicit rules compute it.

    Dense and convolution layers (patch embeddings) get epsilon with LXT's stabilizer ``z + eps``
    (no sign; ``epsilon``, default 1e-6); a softmax gets :data:`jaxplain.rules.softmax`
    (``x * (R - s sum R)``); a product of two x-dependent values (``q.k``, ``A.v``, gates)
    :data:`jaxplain.rules.uniform` (half to each factor); LayerNorm the epsilon rule through it
    with its statistics held constant (the identity rule on the division; LXT's ``layer_norm``),
    RMSNorm and elementwise activations (GELU, SiLU) pass relevance through (identity); residual
    additions split in proportion with ``+sum_epsilon`` (LXT's ``add2``), additions of constants
    (position embeddings, masks) give the constant its share (absorbed), and means divide by their
    sum ``+ epsilon`` (LXT's ``mean``). AttnLRP is not conservative: the softmax rule's bias term,
    biases, class tokens and position embeddings keep part of ``f(x)``.

    Example:
      >>> import jaxplain as jx
      >>> c = jx.composites.attn_lrp()
      >>> dict(c.types)["softmax"], dict(c.types)["product"]
      (Rule('softmax'), Rule('uniform', epsilon=stabilizer(1e-08, signed=False)))

    References:
      Achtibat, Hatefi, Dreyer, Jain, Wiegand, Lapuschkin & Samek (2024), "AttnLRP:
      Attention-Aware Layer-Wise Relevance Propagation for Transformers", ICML; LXT 2.1
      (``lxt.explicit.functional``).
    """
    eps = R.stabilizer(_checks.check_float("composites.attn_lrp", "epsilon", epsilon, minimum=0.0), signed=False)
    eps_sum = R.stabilizer(_checks.check_float("composites.attn_lrp", "sum_epsilon", sum_epsilon, minimum=0.0),
                           signed=False)
    linear = R.epsilon(epsilon=eps)
    return custom(
        types={
            "dense": linear,
            "conv": linear,
            "product": R.uniform(epsilon=eps_sum),
            "softmax": R.softmax,
            "layer_norm": linear,
            "rms_norm": R.pass_through,
            "activation": R.pass_through,
            "affine": R.epsilon(epsilon=eps_sum),
            "sum": R.norm(stabilizer=eps_sum),
            "avg_pool": R.norm(stabilizer=eps),
        },
        default=linear,
    )


def cp_lrp(*, epsilon: float = 1e-6, sum_epsilon: float = 1e-8) -> Composite:
    """CP-LRP for Transformers (Ali et al. 2022): :func:`attn_lrp` with the attention weights held
    constant.

    A product with attention weights (``A . v``: a softmax's output times an x-dependent value)
    gets :data:`jaxplain.rules.attention_head`, the epsilon rule with ``A`` constant, so all of
    its relevance goes to the values ``v`` and none to the softmax, ``q`` or ``k``; LayerNorm gets
    the epsilon rule with its statistics held constant (the paper's LN rule); other products
    (gates) are split uniformly. Without biases, class tokens and position embeddings, CP-LRP is
    conservative up to what its stabilizers absorb.

    Example:
      >>> import jaxplain as jx
      >>> dict(jx.composites.cp_lrp().types)["product"]
      Rule('attention_head', epsilon=stabilizer(1e-08, signed=False))

    References:
      Ali, Schnake, Eberle, Montavon, Müller & Wolf (2022), "XAI for Transformers: Better
      Explanations through Conservative Propagation", ICML.
    """
    base = attn_lrp(epsilon=epsilon, sum_epsilon=sum_epsilon)
    types = dict(base.types)
    types["product"] = R.attention_head(epsilon=dict(types["product"].options)["epsilon"])
    return custom(types=types, default=base.default)
