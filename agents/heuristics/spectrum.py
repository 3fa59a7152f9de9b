"""Baselines and references for ``spectrum`` (described in ``docs/spectrum.md``,
"References and baselines"), found by ``agents.heuristics.get("spectrum", name, env)``.

Every policy ``policy(key, obs, state, params) -> {"satellite": (S,) int}`` moves on the
env's action grid (one price level and one power level per step, eq. 11), under the
learners' constraint: same grids, same one-level steps, same start in the middle of both.
The searches (:func:`average_budget_fair`, :func:`best_constant`) take the evaluation keys
(``keys``; default ``num_episodes`` keys from ``seed``), so a comparison uses the same
episodes for every method; their policies carry the search: ``power_level`` (and
``price_level``) chosen, ``mean_revenue`` the table of mean revenue per satellite per step
over the candidates. The env reports the bound of every gap,
``info["myopic_optimal_revenue"]``: :func:`myopic_optimal_price` (the exact
revenue-maximising single posted price, re-exported from the env) maximised over the power
levels per satellite, not at the level in force (``info["myopic_revenue_at_level_total"]``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from agents.heuristics import episode_scores, evaluation_keys
from jaxsg.scenarios.spectrum import myopic_optimal_price  # noqa: F401


def _nearest_level(env, target, params):
    grid = env.price_grid(params)
    return jnp.argmin(jnp.abs(grid[None, :] - target[:, None]), axis=-1)


def _power_step(env, state, power):
    """Power-level Δ: hold (None), or one level towards ``power`` (an int or traced level)."""
    if power is None:
        return jnp.zeros_like(state.power_level)
    return jnp.sign(jnp.asarray(power) - state.power_level).astype(jnp.int32)


def _average_budget(env, power):
    def policy(key, obs, state, params):
        del key, obs
        target = _nearest_level(env, state.last_mean_budget, params)
        seen = state.last_mean_budget > 0
        d_price = jnp.where(seen, jnp.sign(target - state.price_level), 0)
        return {"satellite": env.encode_action(d_price, _power_step(env, state, power))}

    return policy


def average_budget(env, power="hold"):
    """The paper's baseline: step one level towards the grid level nearest the mean budget
    of the (visible) users seen in the last step (``state.last_mean_budget``); hold before
    any step was seen (mean 0). ``power``: ``"hold"`` the initial level, ``"max"`` climb
    to the highest, an int step to that level and hold it."""
    if isinstance(power, bool) or not (power in ("hold", "max") or isinstance(power, int)):
        raise ValueError(f"power must be 'hold', 'max' or a power level, got {power!r}")
    if isinstance(power, int) and not 0 <= power < env.num_power_levels:
        raise ValueError(
            f"power level must be in [0, {env.num_power_levels - 1}], got {power}")
    level = {"hold": None, "max": env.num_power_levels - 1}.get(power, power)
    return _average_budget(env, level)


def constant_levels(env, price_level, power_level):
    """Steer one level per step to (price level, power level) and hold it (ints or traced)."""

    def policy(key, obs, state, params):
        del key, obs
        d_price = jnp.sign(jnp.asarray(price_level) - state.price_level).astype(jnp.int32)
        return {"satellite": env.encode_action(d_price, _power_step(env, state, power_level))}

    return policy


def _search(env, policy_of, candidates, params, keys, num_episodes, seed, horizon):
    """Mean revenue per satellite per step of ``policy_of(c)`` for every candidate."""
    return jnp.mean(episode_scores(env, policy_of, candidates, params,
                                   evaluation_keys(seed=seed, num_episodes=num_episodes,
                                                   keys=keys),
                                   lambda tr: jnp.mean(tr["metrics"]["revenue_mean"]),
                                   horizon), axis=-1)


def average_budget_fair(env, params=None, keys=None, num_episodes=16, seed=0, horizon=None):
    """The fair comparison: average-budget pricing with the learners' power freedom, as the
    best fixed power level on the evaluation keys (the paper gives no rule for it)."""
    table = _search(env, lambda lv: _average_budget(env, lv), jnp.arange(env.num_power_levels),
                    params, keys, num_episodes, seed, horizon)
    best = int(jnp.argmax(table))
    policy = _average_budget(env, best)
    policy.power_level, policy.mean_revenue = best, table
    return policy


def best_constant(env, params=None, keys=None, num_episodes=16, seed=0, horizon=None):
    """The best constant policy (docs/evaluation.md §2): the (price level, power level)
    pair, steered to and held, with the highest mean revenue on the evaluation keys."""
    n_power = 1 if env.price_only else env.num_power_levels
    pl, wl = jnp.meshgrid(jnp.arange(env.num_price_levels), jnp.arange(n_power), indexing="ij")
    table = _search(env, lambda c: constant_levels(env, c[0], None if env.price_only else c[1]),
                    (pl.ravel(), wl.ravel()), params, keys, num_episodes, seed,
                    horizon).reshape(pl.shape)
    best = int(jnp.argmax(table))
    price_level, power_level = divmod(best, n_power)
    policy = constant_levels(env, price_level, None if env.price_only else power_level)
    policy.price_level, policy.power_level, policy.mean_revenue = price_level, power_level, table
    return policy


def action_values(env, state, params, reputation_weight=None):
    """(S, A) one-step value U'_s + w·ΔR_s of every action for every satellite."""
    w = params.reputation_weight if reputation_weight is None else reputation_weight
    actions = jnp.arange(env.num_actions)

    def value(a):
        price_level, power_level = env.next_levels(
            state, jnp.full((env.num_satellites,), a, jnp.int32))
        out = env.outcome(state, price_level, power_level, params)
        return out["revenue"] + w * (out["reputation_next"] - state.reputation)

    return jax.vmap(value)(actions).T


def myopic_optimal(env, reputation_weight=None):
    """One-step oracle (beyond the paper): it knows this step's budgets (the state holds the
    step's draws) and takes, per satellite, the action maximising U'_s +
    ``reputation_weight``·ΔR_s (None: ``params.reputation_weight``), exactly, by
    evaluating ``env.outcome`` for every action (9, or 3 with ``price_only``)."""

    def policy(key, obs, state, params):
        del key, obs
        values = action_values(env, state, params, reputation_weight)
        return {"satellite": jnp.argmax(values, axis=-1).astype(jnp.int32)}

    return policy


POLICIES = {
    "average_budget": average_budget,
    "average_budget_fair": average_budget_fair,
    "best_constant": best_constant,
    "myopic_optimal": myopic_optimal,
}
