"""The t-SNE optimizer as an Optax transformation: momentum with per-parameter gains
(delta-bar-delta), as in van der Maaten & Hinton's reference implementation.

For each parameter, with gradient ``g``, previous step ``v`` and gain ``gain``::

    gain <- gain + increase      if sign(g) != sign(v)    (still moving downhill: speed up)
            gain * decrease      otherwise               (overshot: slow down)
    gain <- max(gain, min_gain)
    v    <- momentum * v - learning_rate * gain * g
    v    <- v * min(1, max_step_norm / |v|)              (optional, per row: openTSNE's clip)

and the update is ``v``. ``learning_rate`` and ``momentum`` may be Optax schedules (functions of the
step count), which is how :func:`jaxplain.tsne` switches momentum and exaggeration phases.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

__all__ = ["DeltaBarDeltaState", "delta_bar_delta"]

ScalarOrSchedule = Union[float, jax.Array, Callable[[jax.Array], jax.Array]]


class DeltaBarDeltaState(NamedTuple):
    """State of :func:`delta_bar_delta`.

    Attributes:
      count: number of updates applied (int32 scalar); schedules are evaluated at it.
      gains: per-parameter gains, a pytree like the parameters (starts at 1).
      velocity: the previous update ``v``, a pytree like the parameters (starts at 0).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._tsne.optimize import delta_bar_delta
      >>> state = delta_bar_delta(1.0).init(jnp.zeros(2))
      >>> int(state.count), state.gains.tolist(), state.velocity.tolist()
      (0, [1.0, 1.0], [0.0, 0.0])

    References:
      Jacobs (1988), "Increased rates of convergence through learning rate adaptation", Neural
      Networks 1.
    """

    count: jax.Array
    gains: Any
    velocity: Any


def _value(x: ScalarOrSchedule, count):
    return x(count) if callable(x) else x


def _check_nonneg(name: str, value) -> None:
    if callable(value):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if not (isinstance(value, jax.Array) and value.ndim == 0):
            raise TypeError(
                f"delta_bar_delta: {name} must be a number or an optax schedule (a function of "
                f"the step count), got {type(value).__name__} {value!r}."
            )
    elif not value >= 0:
        raise ValueError(f"delta_bar_delta: {name} must be >= 0, got {value!r}.")


def delta_bar_delta(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule = 0.8,
    *,
    min_gain: float = 0.01,
    increase: float = 0.2,
    decrease: float = 0.8,
    max_step_norm: float | None = None,
) -> optax.GradientTransformation:
    """Gradient descent with momentum and per-parameter gains (Jacobs' delta-bar-delta rule).

    The gain of a parameter grows by ``increase`` while its gradient keeps the sign of descent
    (``sign(g) != sign(v)``: the last step ``v`` went against the gradient, as it should) and
    shrinks by the factor ``decrease`` when the gradient flips, never below ``min_gain``. The first
    step (``v = 0``) counts as a sign change, as in bhtsne and openTSNE (scikit-learn counts it as
    agreement, a factor 0.8/1.2 on the first step's gain).

    Args:
      learning_rate: step size, a number or an optax schedule of the step count.
      momentum: momentum, a number or a schedule (t-SNE: 0.5 then 0.8).
      min_gain: the floor of the gains.
      increase: additive gain increase.
      decrease: multiplicative gain decrease.
      max_step_norm: if set, each row of the step (the norm over the last axis, i.e. per point of
        an ``(N, d)`` embedding) is scaled down to this norm; the clipped step is also the
        velocity kept for the next step (openTSNE's ``max_step_norm``).

    Returns:
      An ``optax.GradientTransformation``; add its updates to the parameters
      (``optax.apply_updates``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._tsne.optimize import delta_bar_delta
      >>> tx = delta_bar_delta(learning_rate=1.0, momentum=0.5)
      >>> params = jnp.array([1.0, -1.0])
      >>> state = tx.init(params)
      >>> updates, state = tx.update(jnp.array([2.0, -2.0]), state)   # gains 1 -> 1.2
      >>> updates.tolist(), state.gains.tolist()
      ([-2.4000000953674316, 2.4000000953674316], [1.2000000476837158, 1.2000000476837158])
      >>> updates, state = tx.update(jnp.array([1.0, 1.0]), state)    # second sign flipped
      >>> [round(u, 4) for u in updates.tolist()], [round(g, 4) for g in state.gains.tolist()]
      ([-2.6, 0.24], [1.4, 0.96])

    References:
      Jacobs (1988), "Increased rates of convergence through learning rate adaptation", Neural
      Networks 1.
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
      Belkina, Ciccolella, Anno, Halpert, Spidlen & Snyder-Cappione (2019), "Automated optimized
      parameters for T-distributed stochastic neighbor embedding improve visualization and
      analysis of large datasets", Nature Communications 10.
    """
    _check_nonneg("learning_rate", learning_rate)
    _check_nonneg("momentum", momentum)
    for name, value in (("min_gain", min_gain), ("increase", increase), ("decrease", decrease)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"delta_bar_delta: {name} must be a number >= 0, got {value!r}.")
    if max_step_norm is not None and not (
        isinstance(max_step_norm, (int, float)) and max_step_norm > 0
    ):
        raise ValueError(
            f"delta_bar_delta: max_step_norm must be None or a number > 0, got {max_step_norm!r}."
        )

    def init_fn(params):
        return DeltaBarDeltaState(
            count=jnp.zeros((), jnp.int32),
            gains=jax.tree_util.tree_map(jnp.ones_like, params),
            velocity=jax.tree_util.tree_map(jnp.zeros_like, params),
        )

    def update_fn(updates, state, params=None):
        del params
        lr = _value(learning_rate, state.count)
        mom = _value(momentum, state.count)

        def one(g, gain, v):
            flipped = jnp.sign(g) != jnp.sign(v)
            gain = jnp.where(flipped, gain + increase, gain * decrease)
            gain = jnp.maximum(gain, min_gain).astype(g.dtype)
            v = (mom * v - lr * gain * g).astype(g.dtype)
            if max_step_norm is not None and v.ndim >= 1:
                norm = jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True))
                v = v * jnp.minimum(1.0, max_step_norm / jnp.maximum(norm, 1e-30)).astype(v.dtype)
            return gain, v

        g_leaves, treedef = jax.tree_util.tree_flatten(updates)
        pairs = [
            one(g, gain, v)
            for g, gain, v in zip(
                g_leaves, treedef.flatten_up_to(state.gains), treedef.flatten_up_to(state.velocity)
            )
        ]
        gains = jax.tree_util.tree_unflatten(treedef, [a for a, _ in pairs])
        velocity = jax.tree_util.tree_unflatten(treedef, [b for _, b in pairs])
        return velocity, DeltaBarDeltaState(state.count + 1, gains, velocity)

    return optax.GradientTransformation(init_fn, update_fn)
