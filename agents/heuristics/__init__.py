"""Heuristic baselines and exact/game-theoretic references, one module per scenario.

``get(scenario, name, env, **kwargs)`` is the one entry point: it looks ``name`` up in
``agents.heuristics.<scenario>.POLICIES`` and returns the policy (``policy(key, obs,
state, params) -> action``, :mod:`jaxsg.policy`). :func:`episode_scores` is the one
search loop of the references that pick the best of a grid of policies (on the evaluation
keys of :func:`evaluation_keys`); :func:`best_choice` builds the chosen one.
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np

from agents.adapters import SCENARIOS
from jaxsg.wrappers import rollout


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


def evaluation_keys(key=None, seed: int = 0, num_episodes: int = 16, keys=None):
    """A search's episodes: ``keys``, else ``num_episodes`` from ``key`` or ``seed``."""
    if keys is not None:
        return keys
    return jax.random.split(jax.random.PRNGKey(seed) if key is None else key, num_episodes)


def episode_scores(env, policy_of, candidates, params, keys, score, horizon=None,
                   params_of=None):
    """``(G, K)``: ``score(trajectory)`` of ``policy_of(c)`` for every candidate ``c`` (the
    leading axis of the pytree ``candidates``) on every evaluation key, each a
    :func:`jaxsg.wrappers.rollout` of ``horizon`` steps (default ``env.horizon``) under
    ``params_of(c, params)`` (default ``params``; ``params`` None: ``env.default_params``);
    one compiled call vmapped over candidates × keys (common random numbers)."""
    horizon = env.horizon if horizon is None else horizon
    params = env.default_params if params is None else params

    def one(c, key, p):
        p = p if params_of is None else params_of(c, p)
        return score(rollout(env, policy_of(c), key, p, horizon))

    run = jax.jit(jax.vmap(jax.vmap(one, (None, 0, None)), (0, None, None)))
    return run(candidates, jnp.asarray(keys), params)


def best_choice(choices, table, build):
    """``build(choice)`` for the choice of lowest mean score over the episodes of ``table``
    (G, K); ``policy.choice`` and ``policy.scores`` (``{choice: mean}``) record it."""
    scores = {c: float(v) for c, v in zip(choices, np.asarray(table).mean(axis=1))}
    choice = min(scores, key=scores.get)
    policy = build(choice)
    policy.choice, policy.scores = choice, scores
    return policy


# ``from agents import heuristics; heuristics.best_response(env)``: sgin came first
from agents.heuristics.sgin import best_response, marto  # noqa: E402, F401
