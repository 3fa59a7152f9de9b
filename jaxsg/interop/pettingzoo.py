"""A jaxsg scenario as a PettingZoo ``ParallelEnv`` (host side, one episode, NumPy in/out).

    from jaxsg.interop.pettingzoo import ParallelEnv
    env = ParallelEnv("spectrum", num_satellites=4, horizon=20)
    obs, infos = env.reset(seed=0)
    while env.agents:
        actions = {a: env.action_space(a).sample(infos[a]["action_mask"]) for a in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(actions)

Requires ``pip install -e ".[interop]"`` (pettingzoo, gymnasium). For RLlib, SB3
(through SuperSuit) and other PettingZoo users; JAX users should prefer the batched env
or :mod:`jaxsg.interop.jaxmarl`.

Agent names, padded observations, the per-agent action encoding (``"discrete"``:
``Discrete``/``MultiDiscrete`` with Box components binned; ``"box"``: one ``Box``) and the
action masks are those of :class:`jaxsg.interop.jaxmarl.JaxMARLAdapter`, here as
gymnasium spaces (``float32`` observations, ``int64`` discrete actions as gymnasium
samples them; they are cast on the way in). ``infos[agent]`` holds ``"action_mask"``
(``int8``, the flattened mask of ``get_avail_actions``: gymnasium's ``Discrete.sample``
takes it as is; for ``MultiDiscrete`` split it at the cumulative option counts) and the
scenario's scalar per-step metrics (floats, shared by all agents).

Episodes: ``reset(seed)`` starts one; ``seed=None`` continues the instance's key stream
(seeded from OS entropy on first use). ``step`` runs one jitted jaxsg step (compiled
once per instance); when the episode ends (every jaxsg scenario ends all agents
together, by termination or at the horizon) every agent gets its final observation
(not the auto-reset one), ``terminations``/``truncations`` are kept apart, and
``agents`` becomes empty. ``state()`` is the adapter's world state.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

try:
    import gymnasium
    from pettingzoo import ParallelEnv as _PZParallelEnv
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "jaxsg.interop.pettingzoo needs pettingzoo and gymnasium: "
        'pip install -e ".[interop]"') from err

from jaxsg import spaces
from jaxsg.env import MultiAgentEnv
from jaxsg.interop.jaxmarl import JaxMARLAdapter, MultiDiscrete
from jaxsg.wrappers import scalar_metrics


def to_gymnasium(space: spaces.Space) -> gymnasium.spaces.Space:
    """A per-agent jaxsg/adapter space as a gymnasium space."""
    if isinstance(space, MultiDiscrete):
        return gymnasium.spaces.MultiDiscrete(np.asarray(space.num_categories, np.int64))
    if isinstance(space, spaces.Discrete) and space.shape == ():
        return gymnasium.spaces.Discrete(space.n)
    if isinstance(space, spaces.Box):
        return gymnasium.spaces.Box(np.asarray(space.low, np.float32),
                                    np.asarray(space.high, np.float32),
                                    space.shape, np.float32)
    raise ValueError(f"no gymnasium equivalent for {space!r}")


class ParallelEnv(_PZParallelEnv):
    """PettingZoo ``ParallelEnv`` over a jaxsg scenario (see the module docstring).

    ``ParallelEnv(env, params)`` wraps a built env; ``ParallelEnv("name", **kw)`` builds
    it with :func:`jaxsg.make`. ``action_encoding``, ``num_bins`` and
    ``pad_observations`` are :class:`~jaxsg.interop.jaxmarl.JaxMARLAdapter`'s.
    """

    metadata = {"render_modes": [], "name": "jaxsg"}

    def __init__(
        self,
        env: MultiAgentEnv | str,
        params: Any = None,
        *,
        action_encoding: str = "discrete",
        num_bins: int = 11,
        pad_observations: bool = True,
        render_mode: str | None = None,
        **make_kwargs: Any,
    ):
        if render_mode is not None:
            raise ValueError(f"render_mode: jaxsg envs do not render, got {render_mode!r}")
        self.render_mode = None
        self.adapter = JaxMARLAdapter(env, params, action_encoding=action_encoding,
                                      num_bins=num_bins, pad_observations=pad_observations,
                                      **make_kwargs)
        self.env = self.adapter.env
        self.params = self.adapter.params
        self.metadata = {"render_modes": [], "name": f"jaxsg_{self.env.name}"}
        self.possible_agents = list(self.adapter.agents)
        self.agents: list[str] = []
        self._obs_spaces = {a: to_gymnasium(self.adapter.observation_space(a))
                            for a in self.possible_agents}
        self._act_spaces = {a: to_gymnasium(self.adapter.action_space(a))
                            for a in self.possible_agents}
        self._act_dtype = {a: (np.float32 if isinstance(s, gymnasium.spaces.Box) else np.int32)
                           for a, s in self._act_spaces.items()}
        self._act_shape = {a: self.adapter.action_space(a).shape for a in self.possible_agents}
        self._key = None
        self._state = None
        self._reset = jax.jit(self._reset_fn)
        self._step = jax.jit(self._step_fn)

    # ----------------------------------------------------------- spaces
    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._act_spaces[agent]

    @functools.cached_property
    def state_space(self) -> gymnasium.spaces.Box:
        _, st, _ = self._reset(jax.random.PRNGKey(0))
        n = int(np.asarray(self.adapter.get_world_state(st)).size)
        return gymnasium.spaces.Box(-np.inf, np.inf, (n,), np.float32)

    # ------------------------------------------------------- jitted core
    def _reset_fn(self, key):
        obs, st = self.adapter.reset(key)
        return obs, st, self.adapter.get_avail_actions(st)

    def _step_fn(self, key, state, actions):
        a = self.adapter
        obs_cls, env_state, reward, term, trunc, info = a.env.step(
            key, state.env_state, a.decode_actions(actions), a.params)
        new = state.replace(env_state=env_state, obs=dict(obs_cls), done=term | trunc,
                            step=jnp.asarray(env_state.step))
        final_obs = a.agent_observations(info["final_observation"])
        masks = a.get_avail_actions(new)
        rewards = {}
        for c in a.classes:
            r = jnp.asarray(reward[c], jnp.float32).reshape(a.class_sizes[c])
            for i in range(a.class_sizes[c]):
                rewards[f"{c}_{i}"] = r[i]
        return final_obs, new, masks, scalar_metrics(info), rewards, term, trunc

    # ------------------------------------------------------------- API
    def _next_key(self) -> jax.Array:
        if self._key is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
            self._key = jax.random.PRNGKey(seed)
        self._key, sub = jax.random.split(self._key)
        return sub

    def _infos(self, masks, metrics) -> dict:
        masks = jax.device_get(masks)
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        return {a: {"action_mask": np.asarray(masks[a], np.int8), **metrics}
                for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode: ``(observations, infos)``; ``options`` is accepted and unused."""
        del options
        if seed is not None:
            self._key = jax.random.PRNGKey(int(seed))
        obs, self._state, masks = self._reset(self._next_key())
        self.agents = list(self.possible_agents)
        obs = {a: np.asarray(o, np.float32) for a, o in jax.device_get(obs).items()}
        return obs, self._infos(masks, {})

    def step(self, actions: dict):
        """One step of every live agent: ``(obs, rewards, terminations, truncations, infos)``."""
        if not self.agents:
            raise ValueError("step: the episode is over (agents is empty); call reset()")
        missing = set(self.agents) - set(actions)
        if missing:
            raise ValueError(f"actions: missing agents {sorted(missing)}")
        acts = {a: np.asarray(actions[a], self._act_dtype[a]).reshape(self._act_shape[a])
                for a in self.agents}
        obs, self._state, masks, metrics, rew, term, trunc = self._step(
            self._next_key(), self._state, acts)
        obs, rew, term, trunc = jax.device_get((obs, rew, bool(term), bool(trunc)))
        live = self.agents
        obs = {a: np.asarray(obs[a], np.float32) for a in live}
        rewards = {a: float(rew[a]) for a in live}
        terminations = {a: term for a in live}
        truncations = {a: trunc for a in live}
        infos = self._infos(masks, metrics)
        if term or trunc:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        if self._state is None:
            raise ValueError("state: call reset() first")
        return np.asarray(self.adapter.get_world_state(self._state), np.float32)

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None


__all__ = ["ParallelEnv", "to_gymnasium"]
