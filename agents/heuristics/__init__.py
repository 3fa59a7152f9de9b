"""Heuristic baselines and exact/game-theoretic references, one module per scenario.

``get(scenario, name, env, **kwargs)`` is the one entry point: it looks ``name``
up in ``agents.heuristics.<scenario>.POLICIES`` and returns the policy
(``policy(key, obs, state, params) -> action``, :mod:`jaxsg.policy`).

``agents.heuristics.sgin`` (MARTO, MAMCC, MAGCS, best response, Stackelberg) is
also re-exported here because it came first and is what ``from agents import
heuristics`` has always meant.
"""

import importlib

from agents.heuristics.sgin import (  # noqa: F401
    POLICIES,
    best_response,
    best_response_follower,
    magcs,
    mamcc,
    marto,
    stackelberg,
    stackelberg_price,
)

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
