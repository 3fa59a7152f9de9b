"""Scenario adapters: everything a generic learner needs from one scenario (docs/design.md,
"Agents"); :func:`for_env` finds one.
"""

from __future__ import annotations

import importlib

from agents.adapters.base import Adapter

SCENARIOS = ("sgin", "dt_deploy", "spectrum", "edge_assoc")


def get(scenario: str) -> Adapter:
    """The adapter of a scenario by name."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; adapters exist for {SCENARIOS}")
    return importlib.import_module(f"agents.adapters.{scenario}").ADAPTER


def for_env(env) -> Adapter:
    """The adapter of ``env``'s scenario (by its module), or the generic defaults."""
    env = getattr(env, "_env", env)  # unwrap LogWrapper
    scenario = type(env).__module__.rsplit(".", 1)[-1]
    return get(scenario) if scenario in SCENARIOS else Adapter()
