"""Baselines for ``spectrum``: average-budget pricing and the myopic optimal posted price.

Every policy has the learned policies' signature ``policy(key, obs, state,
params) -> {"satellite": (S,) int}`` and moves on the env's action grid (one
price level and one power level per step, eq. 11), so it is compared with the
learners under the same constraint.

* :func:`average_budget` — the paper's baseline: the operator posts the mean
  budget of its users seen in the last step (``state.last_mean_budget``,
  the visible users). It steps one level towards the grid level nearest to
  that target; before any step has been seen (mean 0) it holds. Power
  control: ``power="hold"`` keeps the initial level (default), ``"max"``
  climbs to the highest.
* :func:`myopic_optimal` — beyond the paper, an oracle reference: it knows
  this step's budgets (the env's state holds the step's draws) and takes, per
  satellite, the action (of the 9, or 3 with ``price_only``) that maximises
  this step's revenue U'_s + ``reputation_weight``·ΔR_s (exact, by evaluating
  :meth:`SpectrumEnv.outcome` for every action). ``reputation_weight`` None
  uses ``params.reputation_weight``.
* :func:`myopic_optimal_price` — the exact revenue-maximising single posted
  price from the sorted budgets under the capacity cap (re-exported from the
  env; the env reports its revenue as ``info["myopic_optimal_revenue"]``, the
  per-step upper bound every method's gap is measured against).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxsg.scenarios.spectrum import myopic_optimal_price  # noqa: F401


def _nearest_level(env, target, params):
    grid = env.price_grid(params)
    return jnp.argmin(jnp.abs(grid[None, :] - target[:, None]), axis=-1)


def average_budget(env, power: str = "hold"):
    """The paper's average-budget pricing (see the module docstring)."""
    if power not in ("hold", "max"):
        raise ValueError(f"power must be 'hold' or 'max', got {power!r}")

    def policy(key, obs, state, params):
        del key, obs
        target = _nearest_level(env, state.last_mean_budget, params)
        seen = state.last_mean_budget > 0
        d_price = jnp.where(seen, jnp.sign(target - state.price_level), 0)
        d_power = jnp.ones_like(d_price) if power == "max" else jnp.zeros_like(d_price)
        return {"satellite": env.encode_action(d_price, d_power)}

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


POLICIES = {"average_budget": average_budget, "myopic_optimal": myopic_optimal}


def make_policy(name: str, env, **kwargs):
    if name not in POLICIES:
        raise ValueError(f"unknown spectrum heuristic {name!r}; choose from {sorted(POLICIES)}")
    return POLICIES[name](env, **kwargs)
