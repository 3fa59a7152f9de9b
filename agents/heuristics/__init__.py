"""Heuristic baselines and exact/game-theoretic references, one module per scenario.

``get(scenario, name, env, **kwargs)`` is the one entry point: it looks ``name`` up in
``agents.heuristics.<scenario>.POLICIES`` and returns the policy (``policy(key, obs,
state, params) -> action``, :mod:`jaxsg.policy`). :func:`episode_scores` is the one
search loop of the references that pick the best of a grid of policies.
"""

import importlib

import jax
import jax.numpy as jnp

from jaxsg.wrappers import rollout

SCENARIOS = ("sgin", "dt_deploy", "spectrum", "edge_assoc")


def policies(scenario: str) -> dict:
    """``{name: factory(env, **kwargs) -> Policy}`` of one scenario."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; heuristics exist for {SCENARIOS}")
    return importlib.import_module(f"agents.heuristics.{scenario}").POLICIES


def get(scenario: str, name: str, env, **kwargs):
    """The heuristic or reference policy ``name`` of ``scenario`` built for ``env``."""
    table = policies(scenario)
    if name not in table:
        raise ValueError(f"unknown {scenario} heuristic {name!r}; known: {sorted(table)}")
    return table[name](env, **kwargs)


def episode_scores(env, policy_of, candidates, params, keys, score, horizon=None,
                   params_of=None):
    """``(G, K)``: ``score(trajectory)`` of ``policy_of(c)`` for every candidate ``c`` (the
    leading axis of the pytree ``candidates``) on every evaluation key, each a
    :func:`jaxsg.wrappers.rollout` of ``horizon`` steps (default ``env.horizon``) under
    ``params_of(c, params)`` (default ``params``); one compiled call vmapped over
    candidates × keys (common random numbers)."""
    horizon = env.horizon if horizon is None else horizon

    def one(c, key, p):
        p = p if params_of is None else params_of(c, p)
        return score(rollout(env, policy_of(c), key, p, horizon))

    run = jax.jit(jax.vmap(jax.vmap(one, (None, 0, None)), (0, None, None)))
    return run(candidates, jnp.asarray(keys), params)


# ``from agents import heuristics; heuristics.best_response(env)``: sgin came first
from agents.heuristics.sgin import best_response, marto  # noqa: E402, F401
