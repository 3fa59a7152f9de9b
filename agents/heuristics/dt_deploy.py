"""Baselines for ``dt_deploy``: RD (paper), greedy and the exact per-step optimum (beyond).

* ``random_deploy`` — RD (paper baseline): every user picks a uniformly random
  *available* node (``avail_actions``). Signature ``policy(key, obs, state, params)``.
* ``greedy`` — each user picks the available node minimising its own share of the
  objective, α·L_i + β·ς·[off-device], given the *other* users' last admitted placement
  (its node load = others' load + 1). Pure and jit-able.
* ``optimal_action`` / ``optimal_policy`` — the exact minimum over joint placements of the
  step objective α·L_sum + β·ς·m (= −reward) subject to the capacities (13d). For a fixed
  count vector (users per node) every user's cost at every node is fixed, so the
  problem is an assignment: enumerate every feasible count vector (n_1..n_E, n_c) and
  solve each with ``scipy.optimize.linear_sum_assignment`` on the I × I matrix whose
  columns are n_j copies of node j (and I − Σn copies of local). Host-side (NumPy/SciPy),
  for evaluation only. The state's exogenous draws do not depend on actions, so the
  per-step optimum is also the episode optimum of the return.

``step_cost_terms(env, state, params)`` (jitted once per env) returns the ingredients:
local delays, D2D communication delays, cycles, cloud delay terms, the uplink rate for
1..I sharers, so the enumeration never calls JAX inside its loop.
"""

from __future__ import annotations

import functools
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment


# ------------------------------------------------------------------- RD
def random_deploy(env) -> Callable:
    def policy(key, obs, state, params):
        del obs
        mask = env.avail_actions(state, params)["user"]["action"]
        return {"user": env.action_space("user", params).sample(key, mask)}

    policy.__name__ = "random_deploy"
    return policy


# --------------------------------------------------------------- greedy
def user_costs(env, state, counts, params) -> jnp.ndarray:
    """``(I, E+2)`` per-user objective α·L_ij + β·ς·[j > 0] at node counts ``counts``."""
    delays = env.node_delays(state, counts, params)
    off = (jnp.arange(env.num_nodes) > 0).astype(jnp.float32)
    return params.alpha * delays + params.beta * params.unit_cost * off[None, :]


def greedy(env) -> Callable:
    def policy(key, obs, state, params):
        del key, obs
        mask = env.avail_actions(state, params)["user"]["action"]
        onehot = jax.nn.one_hot(state.last_placement, env.num_nodes, dtype=jnp.float32)
        others = jnp.sum(onehot, axis=0)[None, :] - onehot
        cost = user_costs(env, state, others + 1.0, params)
        cost = jnp.where(mask, cost, jnp.inf)
        return {"user": jnp.argmin(cost, axis=-1).astype(jnp.int32)}

    policy.__name__ = "greedy"
    return policy


# -------------------------------------------------------------- optimum
@functools.cache
def _cost_terms_fn(env):
    def terms(state, params):
        d, mu = state.data_bits, state.cycles_per_bit
        cycles = mu * d
        sat = env.sat_links(state.step, params)
        sharers = jnp.arange(1, env.num_users + 1, dtype=jnp.float32)
        r_is = env.uplink_rate(sat, sharers, params)
        return {
            "local": cycles / state.local_cpu_hz,
            "d2d_comm": d[:, None] / env.d2d_rates(state, params),
            "cycles": cycles,
            "data": d,
            "cloud_fixed": d / sat["feeder_rate_bps"] + 2.0 * sat["distance_m"]
            / params.speed_of_light + cycles / params.cloud_cpu_hz,
            "uplink_rate": r_is,  # (I,) rate per user for 1..I sharers
        }

    return jax.jit(terms)


def step_cost_terms(env, state, params) -> dict:
    """Host copies (float64) of the per-step cost ingredients (see module docstring)."""
    out = jax.device_get(_cost_terms_fn(env)(state, params))
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def count_vectors(num_users: int, num_end: int, end_cap: float, cloud_cap: float):
    """Every feasible (n_1..n_E, n_c) with n ≤ capacity and Σ n ≤ I."""
    e_max = int(min(end_cap, num_users))
    c_max = int(min(cloud_cap, num_users))
    for ends in itertools.product(range(e_max + 1), repeat=num_end):
        s = sum(ends)
        if s > num_users:
            continue
        for n_c in range(min(c_max, num_users - s) + 1):
            yield ends, n_c


def optimal_action(env, state, params) -> tuple[np.ndarray, float]:
    """``(action (I,), objective)``: exact minimiser of α·L_sum + β·ς·m for this step."""
    t = step_cost_terms(env, state, params)
    i_n, e_n = env.num_users, env.num_end_devices
    alpha = float(params.alpha)
    off_cost = float(params.beta) * float(params.unit_cost)
    end_cpu = float(params.end_cpu_hz)
    local_col = alpha * t["local"]
    best = (np.inf, None)
    for ends, n_c in count_vectors(i_n, e_n, float(params.end_capacity),
                                   float(params.cloud_capacity)):
        cols, nodes = [], []
        for j, n_j in enumerate(ends):
            if n_j:
                c = alpha * (t["d2d_comm"][:, j] + t["cycles"] * n_j / end_cpu) + off_cost
                cols += [c] * n_j
                nodes += [j + 1] * n_j
        if n_c:
            c = alpha * (t["data"] / t["uplink_rate"][n_c - 1] + t["cloud_fixed"]) + off_cost
            cols += [c] * n_c
            nodes += [e_n + 1] * n_c
        n_local = i_n - len(nodes)
        cols += [local_col] * n_local
        nodes += [0] * n_local
        cost = np.stack(cols, axis=1)  # (I users, I slots)
        rows, slots = linear_sum_assignment(cost)
        value = float(cost[rows, slots].sum())
        if value < best[0]:
            action = np.zeros(i_n, np.int32)
            action[rows] = np.asarray(nodes)[slots]
            best = (value, action)
    return best[1], best[0]


def optimal_policy(env) -> Callable:
    """Host-side policy ``policy(key, obs, state, params) -> action`` (not jit-able)."""

    def policy(key, obs, state, params):
        del key, obs
        return {"user": jnp.asarray(optimal_action(env, state, params)[0])}

    policy.__name__ = "optimal"
    return policy


POLICIES = {"rd": random_deploy, "greedy": greedy}


def make_policy(name: str, env) -> Callable:
    if name not in POLICIES:
        raise ValueError(f"unknown dt_deploy heuristic '{name}'; choose from {sorted(POLICIES)}")
    return POLICIES[name](env)
