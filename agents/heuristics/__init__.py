"""Heuristic baselines and references, one module per scenario (``docs/<scenario>.md``,
"References and baselines"), each with a ``POLICIES`` table of factories ``name(env,
**kw) -> policy``; :func:`get` is the entry point, :func:`best_of` the one grid search.
"""

import importlib

import jax
import jax.numpy as jnp

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


def class_policy(agent_class: str, act):
    """The policy in which ``agent_class`` plays ``act(key, state, params)`` (the
    observation unused; no other class acts)."""
    return lambda key, obs, state, params: {agent_class: act(key, state, params)}


def recorded(policy, **attrs):
    """``policy`` carrying ``attrs`` as attributes (what a search chose)."""
    policy.__dict__.update(attrs)
    return policy


def best_of(env, policy_of, candidates, score, params=None, lowest: bool = False, keys=None,
            key=None, seed: int = 0, num_episodes: int = 16, horizon=None, params_of=None):
    """``(index of the best, (G,) mean score(trajectory))`` of ``policy_of(c)`` per candidate
    (leading axis of ``candidates``; ``lowest``: least, first on ties) on the episodes of
    ``keys`` (else ``num_episodes`` from ``key``/``PRNGKey(seed)``) under ``params_of(c,
    params)``, in one compiled call (common random numbers)."""
    horizon = env.horizon if horizon is None else horizon
    params = env.default_params if params is None else params
    if keys is None:
        keys = jax.random.split(jax.random.PRNGKey(seed) if key is None else key, num_episodes)

    def one(c, key, p):
        p = p if params_of is None else params_of(c, p)
        return score(rollout(env, policy_of(c), key, p, horizon))

    run = jax.jit(jax.vmap(jax.vmap(one, (None, 0, None)), (0, None, None)))
    means = run(candidates, jnp.asarray(keys), params).mean(axis=1)
    return int(jnp.argmin(means) if lowest else jnp.argmax(means)), means
