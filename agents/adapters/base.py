"""The adapter interface with scenario-free defaults (see :mod:`agents.adapters`)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp


class Adapter:
    """Scenario-free defaults (a scenario's adapter overrides what differs). Optional hook
    (no default; a learner checks for it): ``agent_rewards(env, state, action, params) ->
    (n,)``, each agent's own term of the shared reward, for independent learners."""

    #: the agent class a learner trains (None: the env's first class)
    agent_class: str | None = None
    #: a second, learned "leader" class of a leader-follower learner (None: none)
    leader_class: str | None = None
    #: discrete heads read as offsets from the agent index (``agents.networks``)
    relative_heads: tuple[str, ...] = ()
    #: (head, observation feature): the head ranks options by that feature
    ranked_heads: tuple[tuple[str, str], ...] = ()

    def learning_class(self, env, override: str | None = None, only: str = "") -> str:
        """The class a learner trains: ``override`` (a config's ``agent_class``) if given,
        else ``agent_class``, else the env's first; checked against the env's classes.
        ``only`` (a learner's name): that learner needs an env of one agent class."""
        if only and len(env.agent_classes) != 1:
            raise ValueError(f"{only} learns one agent class; env has {env.agent_classes}")
        cls = override or self.agent_class or env.agent_classes[0]
        if cls not in env.agent_classes:
            raise ValueError(f"Config: agent_class {cls!r} not in {env.agent_classes}")
        return cls

    def fixed_actions(self, env, params) -> dict:
        """Actions of the classes no learner controls (one env, no batch axis)."""
        return {}

    def reward_scale(self, env, params) -> Any:
        """Factor applied to raw rewards when a config leaves ``reward_scale`` None."""
        return 1.0

    def observation_features(self, env, obs: jnp.ndarray, params) -> jnp.ndarray:
        """The learner's input features ``(..., n, d)`` from observations ``(..., n, d_env)``."""
        return obs

    def num_observation_features(self, env) -> int:
        """``d`` of :meth:`observation_features`."""
        return int(env.observation_space(self.learning_class(env)).shape[-1])

    def federated_weights(self, env, obs: jnp.ndarray) -> jnp.ndarray:
        """Client weights (n,) from the learning class's observations (E, n, d)."""
        return jnp.ones(obs.shape[-2], jnp.float32)

    def election(self, env, env_states, params):
        """``(weights (n,), aggregator id, ledger (n,))`` for an elected aggregation
        over a batch of env states (leading env axis)."""
        n = env.num_agents(self.learning_class(env))
        return jnp.ones(n, jnp.float32), jnp.zeros((), jnp.int32), jnp.zeros(n, jnp.float32)

    def settle(self, env, env_states, aggregator, params):
        """Env states after the elected aggregator's block (default: unchanged)."""
        return env_states

    def train_metrics(self, env, before, after) -> dict:
        """Extra training metrics from the batched env states before and after settlement."""
        return {}

    def sample_tasks(self, key, base_params, num_tasks: int):
        """A batch of env params (leading task axis) for meta-learning."""
        raise ValueError(f"{type(self).__name__} defines no task distribution")
