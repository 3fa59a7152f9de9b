"""Baselines for ``spectrum``: average-budget pricing, the best constant pair, the myopic oracle.

Every policy has the learned policies' signature ``policy(key, obs, state,
params) -> {"satellite": (S,) int}`` and moves on the env's action grid (one
price level and one power level per step, eq. 11), so it is compared with the
learners under the same constraint (same grids, same one-level steps, same start
in the middle of both grids).

* :func:`average_budget` — the paper's baseline: the operator posts the mean
  budget of its users seen in the last step (``state.last_mean_budget``,
  the visible users). It steps one level towards the grid level nearest to
  that target; before any step has been seen (mean 0) it holds. Power
  control: ``power="hold"`` keeps the initial level (default), ``"max"``
  climbs to the highest, an int steps to that level and holds it.
* :func:`average_budget_fair` — the fair comparison (docs/spectrum.md, live regime):
  average-budget pricing with the same power-control freedom as the learners, as **the best
  fixed power level** (the paper gives no rule for it): every level of the grid is
  evaluated on the evaluation keys and the one with the highest mean revenue is kept.
* :func:`best_constant` — the best constant policy (docs/evaluation.md §2): every
  (price level, power level) pair of the learners' grids, steered to and held, evaluated on
  the evaluation keys; the pair with the highest mean revenue is kept.
* :func:`myopic_optimal` — beyond the paper, an oracle reference: it knows
  this step's budgets (the env's state holds the step's draws) and takes, per
  satellite, the action (of the 9, or 3 with ``price_only``) that maximises
  this step's revenue U'_s + ``reputation_weight``·ΔR_s (exact, by evaluating
  :meth:`SpectrumEnv.outcome` for every action). ``reputation_weight`` None
  uses ``params.reputation_weight``.
* :func:`myopic_optimal_price` — the exact revenue-maximising single posted
  price from the sorted budgets under the capacity cap (re-exported from the
  env). The env reports the bound of every gap as ``info["myopic_optimal_revenue"]``:
  that optimum **maximised over the power-control levels** (per satellite), not at the
  level in force (``info["myopic_revenue_at_level_total"]``).

The searches (:func:`average_budget_fair`, :func:`best_constant`) take the evaluation keys
(``keys``; default ``num_episodes`` keys from ``seed``) so that a comparison uses the same
episodes for every method (common random numbers); the policies they return carry the
search as attributes: ``power_level`` (and ``price_level``) chosen, ``mean_revenue`` the
table of mean revenue per satellite per step over the candidates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from agents.heuristics import episode_scores
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
    """The paper's average-budget pricing (see the module docstring)."""
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
    """Mean revenue per satellite per step of ``policy_of(c)`` for every candidate, on
    ``keys`` (default ``num_episodes`` keys from ``seed``)."""
    params = env.default_params if params is None else params
    keys = jax.random.split(jax.random.PRNGKey(seed), num_episodes) if keys is None else keys
    return jnp.mean(episode_scores(env, policy_of, candidates, params, keys,
                                   lambda tr: jnp.mean(tr["metrics"]["revenue_mean"]),
                                   horizon), axis=-1)


def average_budget_fair(env, params=None, keys=None, num_episodes=16, seed=0, horizon=None):
    """Average-budget pricing at the best fixed power level (see the module docstring)."""
    table = _search(env, lambda lv: _average_budget(env, lv), jnp.arange(env.num_power_levels),
                    params, keys, num_episodes, seed, horizon)
    best = int(jnp.argmax(table))
    policy = _average_budget(env, best)
    policy.power_level, policy.mean_revenue = best, table
    return policy


def best_constant(env, params=None, keys=None, num_episodes=16, seed=0, horizon=None):
    """The best constant (price level, power level) pair (see the module docstring)."""
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
    """One-step oracle: the best reachable action for this step's budgets."""

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
