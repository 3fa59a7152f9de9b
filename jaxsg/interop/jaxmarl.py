"""Adapter from a jaxsg scenario to JaxMARL's ``MultiAgentEnv`` interface.

    from jaxsg.interop.jaxmarl import JaxMARLAdapter
    env = JaxMARLAdapter("dt_deploy", num_users=8)        # or JaxMARLAdapter(env, params)
    obs, state = env.reset(key)                            # {"user_0": (D,), ...}
    obs, state, rewards, dones, infos = env.step(key, state, actions)
    env.get_avail_actions(state)                           # {"user_0": (n,) bool, ...}

The interface is the one of ``jaxmarl.environments.multi_agent_env.MultiAgentEnv``
(JaxMARL 0.2): ``reset(key) -> (obs, state)``,
``step(key, state, actions, reset_state=None) -> (obs, state, rewards, dones, infos)``
with the env params closed over, dicts keyed by agent name, ``num_agents``, ``agents``,
``agent_classes`` (class → agent names), ``observation_space(agent)``,
``action_space(agent)``, ``get_obs(state)`` and ``get_avail_actions(state)``. The
adapter is duck-typed and does not import jaxmarl; ``tests/test_interop_jaxmarl.py``
checks it against the interface always, and against jaxmarl's own ``LogWrapper`` when
jaxmarl is installed (the ``interop`` extra pins ``jaxmarl==0.2.0``, which installs
beside ``jax<0.10`` without changing any other package; Python ≥ 3.11).

Conventions (decisions of this adapter)
---------------------------------------
* **Agent names**: ``f"{agent_class}_{i}"`` in the order of ``env.agent_classes``,
  e.g. ``follower_0 … follower_47, leader_0`` for sgin.
* **Observations**: one float32 vector per agent. With ``pad_observations=True``
  (default) every class's vector is zero-padded at the end to the longest class's
  length, so one shared network can read every agent (the padding's space bounds are
  [0, 0]); with ``False`` each class keeps its own length.
* **Rewards**: one scalar per agent (the agent's entry of its class's reward).
* **Dones**: ``terminated | truncated`` per agent (jaxsg episodes end together) and
  ``"__all__"``. ``infos`` holds only arrays of shape ``(num_agents,)`` (what JaxMARL's
  baselines reshape to their actor axis): ``"terminated"`` and ``"truncated"`` kept
  apart (for bootstrapping at truncation) and every scalar per-step metric of the
  scenario, broadcast to the agents.
* **Actions** (``action_encoding``), per agent, from the class's (possibly hybrid)
  jaxsg action space whose components are flattened in the space's key order, element
  by element:

  - ``"discrete"`` (default): every ``Discrete`` element keeps its options; every
    ``Box`` element becomes ``num_bins`` evenly spaced levels over ``[low, high]``
    (bins ≥ 2; infinite bounds are a ``ValueError``). One element →
    ``Discrete(n)`` (an int scalar); several → ``MultiDiscrete(n_1, …, n_k)`` (an
    int vector). ``get_avail_actions`` gives the class's ``avail_actions`` masks
    concatenated over the elements (``(Σ n_k,)`` bool; the bins of a Box element
    are always available).
  - ``"box"``: one ``Box`` vector per agent: a ``Box`` element is passed through
    (clipped to its bounds); a ``Discrete`` element with n options is a real in
    ``[0, n]`` floored and clipped to ``n − 1``. ``get_avail_actions`` gives the
    masks of the ``Discrete`` elements only (possibly a ``(0,)`` array).

* **World state** (centralised critics): ``get_world_state(state)`` is
  ``env.global_state(state, params)`` when the scenario defines it, else every agent's
  padded observation concatenated. With ``world_state=True`` the observation dict also
  carries ``"world_state"``, shape ``(num_agents, W)`` (one copy per agent, the layout
  JaxMARL's MAPPO world-state wrappers produce).
* **State**: :class:`JaxMARLState` holds the jaxsg state, the last class-keyed
  observation (so ``get_obs`` and ``reset_state`` work for every scenario), ``done``
  and ``step`` (the fields of JaxMARL's ``State``). ``step`` auto-resets like
  jaxsg's ``MultiAgentEnv.step``; a given ``reset_state`` replaces the fresh episode.

Everything is pure JAX on arrays: ``reset``/``step`` jit once and vmap over keys and
states. The per-agent dicts are built by slicing the class arrays at trace time (the
interface is keyed by agent), so tracing grows with the number of agents; the
computation itself stays vectorised.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxsg import spaces
from jaxsg.env import MultiAgentEnv, make
from jaxsg.wrappers import scalar_metrics

ENCODINGS = ("discrete", "box")


class MultiDiscrete(spaces.Space):
    """One int per element, element k in ``{0, …, num_categories[k] − 1}`` (as JaxMARL's)."""

    def __init__(self, num_categories):
        self.num_categories = np.asarray(num_categories, np.int32)
        if self.num_categories.ndim != 1 or np.any(self.num_categories < 1):
            raise ValueError(f"MultiDiscrete: num_categories must be a list of ints >= 1, "
                             f"got {num_categories}")
        self.shape = (len(self.num_categories),)
        self.dtype = jnp.int32

    def sample(self, key, mask=None):
        """Uniform per element; ``mask`` (``(Σ n_k,)`` bool, concatenated) restricts it."""
        keys = jax.random.split(key, self.shape[0])
        offsets = np.concatenate([[0], np.cumsum(self.num_categories)])
        out = []
        for k, n, lo in zip(keys, self.num_categories, offsets[:-1]):
            sub = None if mask is None else jnp.asarray(mask)[lo: lo + n]
            out.append(spaces.Discrete(int(n)).sample(k, sub))
        return jnp.stack(out).astype(self.dtype)

    def contains(self, x):
        x = jnp.asarray(x)
        if x.shape != self.shape or not jnp.issubdtype(x.dtype, jnp.integer):
            return jnp.array(False)
        return jnp.all((x >= 0) & (x < self.num_categories))

    def __repr__(self) -> str:
        return f"MultiDiscrete({self.num_categories.tolist()})"


@struct.dataclass
class JaxMARLState:
    """Adapter state: the jaxsg state, its class-keyed observation, ``done``, ``step``."""

    env_state: Any
    obs: dict
    done: jnp.ndarray
    step: jnp.ndarray


class _Element:
    """The flattened action elements of one agent class (static metadata)."""

    def __init__(self, cls: str, space: spaces.Space, n_agents: int, encoding: str,
                 num_bins: int):
        comps = space.spaces if isinstance(space, spaces.Dict) else {"action": space}
        self.dict_action = isinstance(space, spaces.Dict)
        self.names, self.sub_shapes, self.kinds, self.options = [], [], [], []
        self.categories, self.low, self.high = [], [], []
        for name, s in comps.items():
            sub = tuple(s.shape[1:])
            size = int(np.prod(sub, dtype=np.int64))
            self.names.append(name)
            self.sub_shapes.append(sub)
            if isinstance(s, spaces.Discrete):
                self.kinds.append("discrete")
                self.options.append(s.n)
                self.categories.append(np.full((size,), s.n, np.int32))
                lo = np.zeros((n_agents, size), np.float32)
                hi = np.full((n_agents, size), s.n, np.float32)
            elif isinstance(s, spaces.Box):
                self.kinds.append("box")
                self.options.append(num_bins)
                lo = np.asarray(s.low, np.float32).reshape(n_agents, size)
                hi = np.asarray(s.high, np.float32).reshape(n_agents, size)
                if encoding == "discrete" and not (np.all(np.isfinite(lo))
                                                   and np.all(np.isfinite(hi))):
                    raise ValueError(
                        f"action_encoding='discrete': component '{name}' of class '{cls}' "
                        "has infinite bounds; use action_encoding='box'")
                self.categories.append(np.full((size,), num_bins, np.int32))
            else:
                raise ValueError(f"class '{cls}': unsupported action space {s!r}")
            self.low.append(lo)
            self.high.append(hi)
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.sub_shapes]
        self.low = np.concatenate(self.low, axis=1)  # (n_agents, dims)
        self.high = np.concatenate(self.high, axis=1)
        self.categories = np.concatenate(self.categories)  # (dims,)
        self.is_discrete = np.concatenate(
            [np.full((z,), k == "discrete") for z, k in zip(self.sizes, self.kinds)])
        self.dims = int(sum(self.sizes))


class JaxMARLAdapter:
    """A jaxsg scenario behind JaxMARL's ``MultiAgentEnv`` interface (see module doc).

    ``JaxMARLAdapter(env, params)`` wraps a built env; ``JaxMARLAdapter("name", **kw)``
    builds it with :func:`jaxsg.make` (sizes and param overrides as there).
    """

    def __init__(
        self,
        env: MultiAgentEnv | str,
        params: Any = None,
        *,
        action_encoding: str = "discrete",
        num_bins: int = 11,
        pad_observations: bool = True,
        world_state: bool = False,
        **make_kwargs: Any,
    ):
        if isinstance(env, str):
            if params is not None:
                raise ValueError("params: give either a built env with params or a name "
                                 "with make() keyword arguments, not a name with params")
            env, params = make(env, **make_kwargs)
        elif make_kwargs:
            raise ValueError(f"unexpected keyword arguments {sorted(make_kwargs)} with a built "
                             "env (they are make() arguments)")
        if action_encoding not in ENCODINGS:
            raise ValueError(f"action_encoding must be one of {ENCODINGS}, got "
                             f"{action_encoding!r}")
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}")
        self.env = env
        self.params = env.default_params if params is None else env.validate_params(params)
        self.action_encoding = action_encoding
        self.num_bins = num_bins
        self.pad_observations = bool(pad_observations)
        self.world_state = bool(world_state)

        self.classes = tuple(env.agent_classes)
        self.class_sizes = {c: env.num_agents(c) for c in self.classes}
        self.agents = [f"{c}_{i}" for c in self.classes for i in range(self.class_sizes[c])]
        self.num_agents = len(self.agents)
        self._obs_spaces_cls = {c: env.observation_space(c, self.params) for c in self.classes}
        self.obs_dims = {c: int(np.prod(s.shape[1:], dtype=np.int64))
                         for c, s in self._obs_spaces_cls.items()}
        self.obs_dim = max(self.obs_dims.values())
        self._elements = {
            c: _Element(c, env.action_space(c, self.params), self.class_sizes[c],
                        action_encoding, num_bins)
            for c in self.classes
        }
        self.observation_spaces = {a: self._obs_space(c, i) for c, i, a in self._iter_agents()}
        self.action_spaces = {a: self._act_space(c, i) for c, i, a in self._iter_agents()}

    # ------------------------------------------------------------ metadata
    @property
    def name(self) -> str:
        return f"jaxsg.{self.env.name}"

    @property
    def agent_classes(self) -> dict[str, list[str]]:
        return {c: [f"{c}_{i}" for i in range(self.class_sizes[c])] for c in self.classes}

    def _iter_agents(self):
        for c in self.classes:
            for i in range(self.class_sizes[c]):
                yield c, i, f"{c}_{i}"

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def _obs_space(self, cls: str, i: int) -> spaces.Box:
        s = self._obs_spaces_cls[cls]
        d = self.obs_dims[cls]
        low = np.asarray(s.low, np.float32).reshape(-1, d)[i]
        high = np.asarray(s.high, np.float32).reshape(-1, d)[i]
        width = self.obs_dim if self.pad_observations else d
        pad = width - d
        low = np.concatenate([low, np.zeros(pad, np.float32)])
        high = np.concatenate([high, np.zeros(pad, np.float32)])
        return spaces.Box(low, high, (width,))

    def _act_space(self, cls: str, i: int) -> spaces.Space:
        el = self._elements[cls]
        if self.action_encoding == "box":
            return spaces.Box(el.low[i], el.high[i], (el.dims,))
        if el.dims == 1:
            return spaces.Discrete(int(el.categories[0]))
        return MultiDiscrete(el.categories)

    # --------------------------------------------------------- conversion
    def agent_observations(self, obs_cls: Mapping[str, Any]) -> dict[str, jnp.ndarray]:
        """Class-keyed observations (leading agent axis) → per-agent (padded) vectors."""
        out = {}
        for c in self.classes:
            x = jnp.asarray(obs_cls[c], jnp.float32).reshape(self.class_sizes[c], -1)
            if self.pad_observations and x.shape[1] < self.obs_dim:
                x = jnp.pad(x, ((0, 0), (0, self.obs_dim - x.shape[1])))
            for i in range(self.class_sizes[c]):
                out[f"{c}_{i}"] = x[i]
        return out

    def _world_state(self, obs_cls, env_state) -> jnp.ndarray:
        if hasattr(self.env, "global_state"):
            return jnp.asarray(self.env.global_state(env_state, self.params),
                               jnp.float32).reshape(-1)
        parts = []
        for c in self.classes:
            x = jnp.asarray(obs_cls[c], jnp.float32).reshape(self.class_sizes[c], -1)
            x = jnp.pad(x, ((0, 0), (0, self.obs_dim - x.shape[1])))
            parts.append(x.reshape(-1))
        return jnp.concatenate(parts)

    def get_obs(self, state: JaxMARLState) -> dict[str, jnp.ndarray]:
        """Per-agent observations of ``state`` (plus ``"world_state"`` when enabled)."""
        obs = self.agent_observations(state.obs)
        if self.world_state:
            ws = self._world_state(state.obs, state.env_state)
            obs["world_state"] = jnp.broadcast_to(ws, (self.num_agents,) + ws.shape)
        return obs

    def get_world_state(self, state: JaxMARLState) -> jnp.ndarray:
        """The global state for a centralised critic, a flat float32 vector."""
        return self._world_state(state.obs, state.env_state)

    def decode_actions(self, actions: Mapping[str, Any]) -> dict:
        """Per-agent actions (this adapter's encoding) → the scenario's class-keyed action."""
        out = {}
        for c in self.classes:
            el = self._elements[c]
            n = self.class_sizes[c]
            a = jnp.stack([jnp.asarray(actions[f"{c}_{i}"]).reshape(-1) for i in range(n)])
            if self.action_encoding == "discrete":
                k = jnp.clip(a.astype(jnp.int32), 0, el.categories - 1)
                frac = k.astype(jnp.float32) / float(self.num_bins - 1)
                real = el.low + frac * (el.high - el.low)
                disc = k
            else:
                real = jnp.clip(a.astype(jnp.float32), el.low, el.high)
                disc = jnp.clip(jnp.floor(real).astype(jnp.int32), 0, el.categories - 1)
            comps, start = {}, 0
            for name, sub, size, kind in zip(el.names, el.sub_shapes, el.sizes, el.kinds):
                sl = slice(start, start + size)
                x = disc[:, sl] if kind == "discrete" else real[:, sl]
                comps[name] = x.reshape((n,) + sub)
                start += size
            out[c] = comps if el.dict_action else comps["action"]
        return out

    def get_avail_actions(self, state: JaxMARLState) -> dict[str, jnp.ndarray]:
        """Per-agent boolean masks over the flattened action options (see module doc)."""
        masks = self.env.avail_actions(state.env_state, self.params)
        out = {}
        for c in self.classes:
            el = self._elements[c]
            n = self.class_sizes[c]
            cls_masks = masks.get(c, {}) if masks else {}
            parts = []
            for name, size, kind, cats in zip(el.names, el.sizes, el.kinds, el.options):
                if kind == "discrete":
                    m = cls_masks.get(name)
                    m = (jnp.ones((n, size * cats), bool) if m is None
                         else jnp.asarray(m, bool).reshape(n, size * cats))
                    parts.append(m)
                elif self.action_encoding == "discrete":
                    parts.append(jnp.ones((n, size * self.num_bins), bool))
            full = (jnp.concatenate(parts, axis=1) if parts else jnp.zeros((n, 0), bool))
            for i in range(n):
                out[f"{c}_{i}"] = full[i]
        return out

    # ------------------------------------------------------------------ API
    def reset(self, key: jax.Array) -> tuple[dict, JaxMARLState]:
        obs_cls, env_state = self.env.reset(key, self.params)
        state = JaxMARLState(env_state=env_state, obs=dict(obs_cls),
                             done=jnp.zeros((), bool), step=jnp.asarray(env_state.step))
        return self.get_obs(state), state

    def step(self, key: jax.Array, state: JaxMARLState, actions: Mapping[str, Any],
             reset_state: JaxMARLState | None = None):
        obs_cls, env_state, reward, term, trunc, info = self.env.step(
            key, state.env_state, self.decode_actions(actions), self.params)
        done = term | trunc
        new = JaxMARLState(env_state=env_state, obs=dict(obs_cls), done=done,
                           step=jnp.asarray(env_state.step))
        if reset_state is not None:
            new = jax.tree.map(lambda r, s: jnp.where(done, r, s),
                               reset_state.replace(done=done), new)
        rewards = {}
        for c in self.classes:
            r = jnp.asarray(reward[c], jnp.float32).reshape(self.class_sizes[c])
            for i in range(self.class_sizes[c]):
                rewards[f"{c}_{i}"] = r[i]
        dones = {a: done for a in self.agents}
        dones["__all__"] = done
        full = lambda x: jnp.full((self.num_agents,), x)  # noqa: E731
        infos = {k: full(v) for k, v in scalar_metrics(info).items()}
        infos["terminated"] = full(term)
        infos["truncated"] = full(trunc)
        return self.get_obs(new), new, rewards, dones, infos

    def __repr__(self) -> str:
        return (f"JaxMARLAdapter({self.env.name}, agents={self.num_agents}, "
                f"obs_dim={self.obs_dim}, action_encoding={self.action_encoding!r})")


__all__ = ["ENCODINGS", "JaxMARLAdapter", "JaxMARLState", "MultiDiscrete"]
