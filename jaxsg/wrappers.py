"""Episode logging and batched rollouts over the env API.

* :class:`LogWrapper` accumulates per-agent episode returns, episode lengths and
  the time-average of every scalar metric the env reports in ``info``; on the
  step where an episode ends it publishes them under ``info["returned_*"]``.
* :func:`rollout` runs a policy for a fixed number of steps with ``lax.scan``
  and returns the stacked rewards and scalar metrics; ``jax.vmap`` it over keys
  for parallel episodes and over params for a sweep axis.

A policy is any function ``policy(key, obs, state, params) -> action`` (the
heuristics and the learned policies share this signature) or a
:class:`jaxsg.policy.RecurrentPolicy` (it carries its hidden state); see
:mod:`jaxsg.policy`.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from jaxsg.env import EnvState, MultiAgentEnv
from jaxsg.policy import Policy, RecurrentPolicy, as_recurrent


def scalar_metrics(info: dict) -> dict:
    """The entries of ``info`` that are scalar numbers (the plottable metrics)."""
    return {
        k: v
        for k, v in info.items()
        if k != "final_observation" and hasattr(v, "shape") and v.shape == ()
    }


@struct.dataclass
class LogEnvState:
    env_state: Any
    episode_returns: dict
    episode_length: jnp.ndarray
    metric_sums: dict
    returned_episode_returns: dict
    returned_episode_length: jnp.ndarray
    returned_episode_metrics: dict

    @property
    def step(self) -> jnp.ndarray:
        return self.env_state.step


class LogWrapper:
    """Adds episode statistics to a :class:`MultiAgentEnv` (same API)."""

    def __init__(self, env: MultiAgentEnv):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def _metric_template(self, key: chex.PRNGKey, state: EnvState, params: Any) -> dict:
        actions = {
            c: self._env.action_space(c, params).sample(key) for c in self._env.agent_classes
        }
        out = jax.eval_shape(self._env.step, key, state, actions, params)
        return {k: jnp.zeros((), jnp.float32) for k in scalar_metrics(out[-1])}

    def reset(self, key: chex.PRNGKey, params: Any) -> tuple[dict, LogEnvState]:
        obs, env_state = self._env.reset(key, params)
        zeros_r = {c: jnp.zeros(self._env.num_agents(c), jnp.float32) for c in self.agent_classes}
        metrics = self._metric_template(key, env_state, params)
        state = LogEnvState(
            env_state=env_state,
            episode_returns=zeros_r,
            episode_length=jnp.zeros((), jnp.int32),
            metric_sums=metrics,
            returned_episode_returns=zeros_r,
            returned_episode_length=jnp.zeros((), jnp.int32),
            returned_episode_metrics=metrics,
        )
        return obs, state

    def avail_actions(self, state: LogEnvState, params: Any) -> dict:
        return self._env.avail_actions(state.env_state, params)

    def step(self, key: chex.PRNGKey, state: LogEnvState, action: dict, params: Any):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        done = terminated | truncated
        returns = jax.tree.map(lambda acc, r: acc + r, state.episode_returns, reward)
        length = state.episode_length + 1
        sums = {k: state.metric_sums[k] + v for k, v in scalar_metrics(info).items()}
        means = {k: v / length for k, v in sums.items()}
        keep = lambda new, old: jnp.where(done, new, old)  # noqa: E731
        new_state = LogEnvState(
            env_state=env_state,
            episode_returns=jax.tree.map(lambda r: jnp.where(done, 0.0, r), returns),
            episode_length=jnp.where(done, 0, length),
            metric_sums=jax.tree.map(lambda s: jnp.where(done, 0.0, s), sums),
            returned_episode_returns=jax.tree.map(keep, returns, state.returned_episode_returns),
            returned_episode_length=keep(length, state.returned_episode_length),
            returned_episode_metrics=jax.tree.map(keep, means, state.returned_episode_metrics),
        )
        info = dict(info)
        info["returned_episode"] = done
        info["returned_episode_returns"] = new_state.returned_episode_returns
        info["returned_episode_length"] = new_state.returned_episode_length
        info["returned_episode_metrics"] = new_state.returned_episode_metrics
        return obs, new_state, reward, terminated, truncated, info


@struct.dataclass
class ParamsPerEpisodeState:
    env_state: object
    params: object

    @property
    def step(self):
        return self.env_state.step


class ParamsPerEpisode:
    """``env`` whose every episode runs at params drawn by ``sample(key, params, 1)`` (a
    leading axis of 1; kept in the state, drawn again at each auto-reset): training over
    a distribution of params (domain randomisation) through the plain env API."""

    def __init__(self, env, sample):
        self._env, self._sample = env, sample

    def __getattr__(self, name):
        return getattr(self._env, name)

    def _start(self, key, params):
        k_draw, k_reset = jax.random.split(key)
        drawn = jax.tree.map(lambda x: x[0], self._sample(k_draw, params, 1))
        obs, state = self._env.reset(k_reset, drawn)
        return obs, ParamsPerEpisodeState(state, drawn)

    def reset(self, key, params):
        return self._start(key, params)

    def avail_actions(self, state, params):
        return self._env.avail_actions(state.env_state, state.params)

    def step(self, key, state, action, params):
        k_step, k_new = jax.random.split(key)
        obs, inner, reward, term, trunc, info = self._env.step(k_step, state.env_state, action,
                                                               state.params)
        obs_new, new = self._start(k_new, params)
        done = term | trunc
        pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(done, x, y), a, b)  # noqa: E731
        kept = ParamsPerEpisodeState(inner, state.params)
        return pick(obs_new, obs), pick(new, kept), reward, term, trunc, info


def rollout(
    env: MultiAgentEnv,
    policy: Policy | RecurrentPolicy,
    key: chex.PRNGKey,
    params: Any,
    num_steps: int,
    info_keys: tuple[str, ...] = (),
) -> dict:
    """Run ``policy`` from a fresh reset for ``num_steps`` steps (auto-resetting).

    ``policy`` is a plain or a recurrent policy (its carry restarts with every
    episode). Returns ``{"reward": {class: (T, n)}, "metrics": {name: (T,)},
    "terminated": (T,), "truncated": (T,)}``, plus ``"info": {name: (T, ...)}`` with
    the non-scalar ``info`` entries named in ``info_keys`` (e.g. the decisions a
    downstream model replays). Pure and jit-able (``num_steps`` static); vmap it
    over keys for parallel episodes and over ``params`` for a sweep axis.
    """
    policy = as_recurrent(policy)
    key_reset, key_run = jax.random.split(key)
    obs, state = env.reset(key_reset, params)

    def body(carry, step_key):
        obs, state, policy_carry, first = carry
        k_act, k_env = jax.random.split(step_key)
        policy_carry, action = policy.apply(policy_carry, k_act, obs, state, params, first)
        obs, state, reward, terminated, truncated, info = env.step(k_env, state, action, params)
        out = {
            "reward": reward,
            "metrics": scalar_metrics(info),
            "terminated": terminated,
            "truncated": truncated,
        }
        if info_keys:
            out["info"] = {k: info[k] for k in info_keys}
        return (obs, state, policy_carry, terminated | truncated), out

    init = (obs, state, policy.init_carry(params), jnp.array(True))
    _, trajectory = jax.lax.scan(body, init, jax.random.split(key_run, num_steps))
    return trajectory


def random_policy(env: MultiAgentEnv) -> Policy:
    """Uniform over each action space, respecting ``avail_actions`` masks."""

    def policy(key, obs, state, params):
        del obs
        masks = env.avail_actions(state, params)
        keys = jax.random.split(key, len(env.agent_classes))
        action = {}
        for k, cls in zip(keys, env.agent_classes):
            space = env.action_space(cls, params)
            mask = masks.get(cls)
            if not hasattr(space, "spaces"):
                mask = None if mask is None else mask.get("action")
            action[cls] = space.sample(k, mask)
        return action

    return policy
