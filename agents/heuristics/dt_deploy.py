"""Baselines and references for ``dt_deploy`` (docs/dt_deploy.md, "References and
baselines"); the exact optimum (:func:`optimal_action`) is host-side (NumPy/SciPy).
"""

from __future__ import annotations

import functools
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from agents.heuristics import best_of, class_policy, recorded


def random_deploy(env) -> Callable:
    """RD: every user picks a uniformly random *available* node."""
    return class_policy("user", lambda key, state, params: env.action_space(
        "user", params).sample(key, env.avail_actions(state, params)["user"]["action"]))


def user_costs(env, state, counts, params) -> jnp.ndarray:
    """``(I, E+2)`` per-user objective α·L_ij + β·ς·[j > 0] at node counts ``counts``."""
    delays = env.node_delays(state, counts, params)
    off = (jnp.arange(env.num_nodes) > 0).astype(jnp.float32)
    return params.alpha * delays + params.beta * params.unit_cost * off[None, :]


def greedy(env) -> Callable:
    """Simultaneous greedy: each user's cheapest available node given the *other* users'
    last admitted placement (load = others' + 1)."""

    def act(key, state, params):
        mask = env.avail_actions(state, params)["user"]["action"]
        onehot = jax.nn.one_hot(state.last_placement, env.num_nodes, dtype=jnp.float32)
        others = jnp.sum(onehot, axis=0)[None, :] - onehot
        cost = jnp.where(mask, user_costs(env, state, others + 1.0, params), jnp.inf)
        return jnp.argmin(cost, axis=-1).astype(jnp.int32)

    return class_policy("user", act)


def sequential_greedy(env) -> Callable:
    """Users best-respond one at a time in increasing ``state.priority`` (13d's admission
    order), each to the node counts placed so far plus itself, among nodes not yet full."""
    k_nodes = env.num_nodes

    def act(key, state, params):
        order = jnp.argsort(state.priority, stable=True)
        caps = env.capacities(params)
        ones = jnp.ones((env.num_users, k_nodes), jnp.float32)

        def body(counts, i):
            cost = user_costs(env, state, ones * (counts + 1.0)[None, :], params)[i]
            cost = jnp.where(counts < caps, cost, jnp.inf).at[0].set(cost[0])
            j = jnp.argmin(cost).astype(jnp.int32)
            return counts.at[j].add(1.0), j

        _, chosen = jax.lax.scan(body, jnp.zeros((k_nodes,), jnp.float32), order)
        return jnp.zeros((env.num_users,), jnp.int32).at[order].set(chosen)

    return class_policy("user", act)


def constant_choices(env) -> tuple[str, ...]:
    """The constant policies: every user local, on its nearest end device, on end device e
    for each e, or on the cloud."""
    ends = tuple(f"end_{e}" for e in range(1, env.num_end_devices + 1))
    return ("local", "nearest_end") + ends + ("cloud",)


def constant(env, choice: str = "local", index=None) -> Callable:
    """Every user requests the same layer each step: ``choice`` in ``constant_choices``, or
    its (possibly traced) ``index`` there."""
    choices = constant_choices(env)
    if index is None:
        if choice not in choices:
            raise ValueError(f"dt_deploy constant: 'choice' must be one of {choices}, "
                             f"got {choice!r}")
        index = choices.index(choice)
    nodes = jnp.asarray([0, 0, *range(1, env.num_end_devices + 1), env.cloud], jnp.int32)

    def act(key, state, params):
        nearest = 1 + jnp.argmin(env.distances(state), axis=1)
        return jnp.where(index == 1, nearest, nodes[index]).astype(jnp.int32)

    return class_policy("user", act)


def best_constant(env, params=None, key=None, num_episodes: int = 16) -> Callable:
    """The ``constant_choices`` policy of least mean per-step α·L_sum + β·ς·m (= −reward) on
    ``num_episodes`` episodes from ``key`` (default ``PRNGKey(0)``); ``policy.choice`` and
    ``policy.scores`` (every choice's mean) record the selection."""
    choices = constant_choices(env)
    best, cost = best_of(env, lambda i: constant(env, index=i), jnp.arange(len(choices)),
                         lambda tr: -jnp.mean(tr["metrics"]["team_reward"]), params,
                         lowest=True, key=key, num_episodes=num_episodes)
    return recorded(constant(env, choices[best]), choice=choices[best],
                    scores=dict(zip(choices, cost.tolist())))


@functools.partial(jax.jit, static_argnums=0)
def _cost_tables(env, state, counts, params):
    """``(V, I, E+2)`` :func:`user_costs` at every count vector ``counts`` (V, E+2), ∞ at
    nodes with no slot (one call per step: the enumeration never calls JAX in its loop)."""
    cost = jax.vmap(lambda c: user_costs(env, state, c, params))(counts)
    return jnp.where(counts[:, None, :] > 0, cost, jnp.inf)


@functools.cache
def count_vector_array(num_users: int, num_end: int, end_cap: float,
                       cloud_cap: float) -> np.ndarray:
    """``(V, E+2)`` every feasible count vector ``(n_local, n_1..n_E, n_c)``: n ≤ capacity,
    Σ n ≤ I."""
    e_max, c_max = int(min(end_cap, num_users)), int(min(cloud_cap, num_users))
    rows = [(num_users - sum(ends) - n_c, *ends, n_c)
            for ends in itertools.product(range(e_max + 1), repeat=num_end)
            if sum(ends) <= num_users
            for n_c in range(min(c_max, num_users - sum(ends)) + 1)]
    return np.asarray(rows, np.int64)


def assignment_lower_bounds(tables: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(V,)`` lower bounds on the assignment value of every count vector: the larger of
    the row and column relaxations (docs/dt_deploy.md, "References and baselines")."""
    rows = tables.min(axis=2).sum(axis=1)
    finite = np.where(np.isfinite(tables), tables, 0.0)
    csum = np.cumsum(np.sort(finite, axis=1), axis=1)  # (V, I, K): sum of k+1 smallest
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    cols = np.take_along_axis(csum, counts[:, None, :], axis=1)[:, 0, :].sum(axis=1)
    return np.maximum(rows, cols)


def optimal_action(env, state, params, bound: bool = True) -> tuple[np.ndarray, float]:
    """``(action (I,), objective)``: the exact minimiser of this step's α·L_sum + β·ς·m
    (= −reward) under the capacities (13d), by branch and bound over count vectors
    (``bound=False``: every one); docs/dt_deploy.md, "References and baselines"."""
    counts = count_vector_array(env.num_users, env.num_end_devices,
                                float(params.end_capacity), float(params.cloud_capacity))
    tables = np.asarray(_cost_tables(env, state, jnp.asarray(counts, jnp.float32), params),
                        np.float64)
    lower = assignment_lower_bounds(tables, counts)
    best_value, best_action = np.inf, None
    for v in np.argsort(lower, kind="stable") if bound else range(len(counts)):
        if bound and lower[v] >= best_value:
            break
        slots = np.repeat(np.arange(env.num_nodes), counts[v])  # (I,) node of every slot
        cost = tables[v][:, slots]
        rows, cols = linear_sum_assignment(cost)
        value = float(cost[rows, cols].sum())
        if value < best_value:
            best_value, best_action = value, np.zeros(env.num_users, np.int32)
            best_action[rows] = slots[cols]
    return best_action, best_value


def optimal_policy(env) -> Callable:
    """Host-side policy of :func:`optimal_action` (not jit-able)."""
    return class_policy("user", lambda key, state, params: jnp.asarray(
        optimal_action(env, state, params)[0]))


#: host-side (not jit-able) factories: callers that trace policies skip them
optimal_policy.jittable = False

POLICIES = {
    "rd": random_deploy,
    "greedy": greedy,
    "sequential_greedy": sequential_greedy,
    "constant": constant,
    "best_constant": best_constant,
    "optimal": optimal_policy,
}
