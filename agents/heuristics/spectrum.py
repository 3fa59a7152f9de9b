"""Baselines and references for ``spectrum``: one-level steps on the learners' price and
power grids (eq. 11); searches on the episodes of ``keys`` (:func:`agents.heuristics.best_of`)
record their choice (docs/spectrum.md, "References and baselines")."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from agents.heuristics import best_of, class_policy, recorded
from jaxsg.scenarios.spectrum import myopic_optimal_price  # noqa: F401


def _toward(level, target):
    """One-level step (−1, 0 or +1) from ``level`` towards ``target`` (None: hold)."""
    if target is None:
        return jnp.zeros_like(level)
    return jnp.sign(jnp.asarray(target) - level).astype(jnp.int32)


def _average_budget(env, power):
    def act(key, state, params):
        grid = env.price_grid(params)
        target = jnp.argmin(jnp.abs(grid[None, :] - state.last_mean_budget[:, None]), axis=-1)
        seen = state.last_mean_budget > 0
        d_price = jnp.where(seen, jnp.sign(target - state.price_level), 0)
        return env.encode_action(d_price, _toward(state.power_level, power))

    return class_policy("satellite", act)


def average_budget(env, power="hold"):
    """The paper's baseline: step toward the price level nearest ``state.last_mean_budget``
    (hold while it is 0). ``power``: ``"hold"``, ``"max"`` or a level to step to and hold."""
    top = env.num_power_levels - 1
    levels = {"hold": None, "max": top, **{i: i for i in range(top + 1)}}
    if isinstance(power, bool) or power not in levels:
        raise ValueError(f"power must be 'hold', 'max' or a power level in [0, {top}], "
                         f"got {power!r}")
    return _average_budget(env, levels[power])


def constant_levels(env, price_level, power_level):
    """Steer one level per step to (price level, power level) and hold it (ints or traced;
    power level None: hold the initial one)."""
    return class_policy("satellite", lambda key, state, params: env.encode_action(
        _toward(state.price_level, price_level), _toward(state.power_level, power_level)))


def _revenue(trajectory):
    """Mean revenue per satellite per step of an episode."""
    return jnp.mean(trajectory["metrics"]["revenue_mean"])


def average_budget_fair(env, params=None, **keys):
    """Average-budget pricing at the best fixed power level on the evaluation keys."""
    best, table = best_of(env, lambda lv: _average_budget(env, lv),
                          jnp.arange(env.num_power_levels), _revenue, params, **keys)
    return recorded(_average_budget(env, best), power_level=best, mean_revenue=table)


def best_constant(env, params=None, **keys):
    """The (price, power) level pair, steered to and held, of highest mean revenue."""
    n_power = 1 if env.price_only else env.num_power_levels
    pl, wl = jnp.meshgrid(jnp.arange(env.num_price_levels), jnp.arange(n_power), indexing="ij")
    power = (lambda c: None) if env.price_only else (lambda c: c[1])
    best, table = best_of(env, lambda c: constant_levels(env, c[0], power(c)),
                          (pl.ravel(), wl.ravel()), _revenue, params, **keys)
    price_level, power_level = divmod(best, n_power)
    return recorded(constant_levels(env, price_level, power((price_level, power_level))),
                    price_level=price_level, power_level=power_level,
                    mean_revenue=table.reshape(pl.shape))


def myopic_optimal(env, reputation_weight=None):
    """One-step oracle: per satellite the action maximising U'_s + ``reputation_weight``·ΔR_s
    (None: ``params.reputation_weight``) by ``env.outcome`` of every action."""

    def act(key, state, params):
        w = params.reputation_weight if reputation_weight is None else reputation_weight

        def value(a):  # (S,) the value of action a for every satellite
            price_level, power_level = env.next_levels(
                state, jnp.full((env.num_satellites,), a, jnp.int32))
            out = env.outcome(state, price_level, power_level, params)
            return out["revenue"] + w * (out["reputation_next"] - state.reputation)

        values = jax.vmap(value)(jnp.arange(env.num_actions))  # (A, S)
        return jnp.argmax(values, axis=0).astype(jnp.int32)

    return class_policy("satellite", act)


POLICIES = {
    "average_budget": average_budget,
    "average_budget_fair": average_budget_fair,
    "best_constant": best_constant,
    "myopic_optimal": myopic_optimal,
}
