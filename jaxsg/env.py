"""The environment contract: ``MultiAgentEnv`` with auto-reset, and the registry.

Follows gymnax 1.0 with agents held as arrays (see docs/design.md):

    env, params = jaxsg.make("sgin", num_mbs=4, users_per_mbs=12)
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

* ``params`` — a ``flax.struct.dataclass`` of numbers only: every knob a paper
  sweeps, so ``jax.vmap(env.step, in_axes=(None, 0, 0, 0))`` sweeps a figure
  axis. Sizes and string options are constructor arguments (static).
* ``state`` — a ``flax.struct.dataclass`` of JAX arrays deriving from
  :class:`EnvState`, whose ``step`` counter the base class advances.
* observations, actions, rewards — dicts keyed by agent class, each value an
  array with a leading agent axis (hybrid actions are dicts of arrays).
* ``terminated`` and ``truncated`` are scalar booleans per episode and stay
  separate: ``truncated`` is True exactly when the step counter reaches
  ``horizon`` (it may be True together with ``terminated``).
* Auto-reset: when ``terminated | truncated`` the returned ``obs`` and
  ``state`` are those of a fresh episode (selected leaf by leaf), and
  ``info["final_observation"]`` holds the observation the step produced
  before the reset (it equals ``obs`` when the episode goes on).
* Non-finite actions are flagged, never passed off as valid ones: an agent
  whose action has a NaN or ±inf in any floating component gets a NaN reward
  for that step, and ``info["nonfinite_action"]`` (float32 scalar, every
  scenario, every step) counts such agents over all classes — 0 for finite
  actions, whose results this rule leaves unchanged. Rollouts and
  ``LogWrapper`` record it as a metric, and the NaN reward makes the
  episode's return non-finite, so a diverged policy shows up in every record
  (n_finite/n) instead of looking like one that chose a valid action. The
  state still advances with the scenario's decoding of the action (clipping,
  casting), so the batch keeps running. Integer actions cannot be non-finite;
  a *negative* integer is the sentinel :data:`INVALID_ACTION` a policy emits
  when it has no valid choice (e.g. a greedy argmax over NaN Q-values), and it
  is flagged the same way. Other out-of-range integers are clipped, as each
  scenario documents.

Subclasses implement ``default_params``, ``reset_env``, ``step_env``,
``observation_space``, ``action_space`` and optionally ``avail_actions``,
``observation_slices``, ``global_state``, ``param_bounds``/``param_order``
(validation tables).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import chex
import jax
import jax.numpy as jnp
from flax import struct

from jaxsg import spaces
from jaxsg.validation import Bound, check_int, replace_checked, validate_params

Obs = dict[str, Any]
Action = dict[str, Any]

#: The integer action a policy emits when it has no valid choice (a greedy argmax over
#: non-finite values, say): ``step`` flags it like a NaN (NaN reward, counted in
#: ``info["nonfinite_action"]``) instead of reading it as option 0.
INVALID_ACTION = -1


@struct.dataclass
class EnvState:
    """Base state: the step counter within the episode (int32 scalar)."""

    step: jnp.ndarray


class MultiAgentEnv:
    """Base class of every jaxsg scenario (pure functions, params separate from state)."""

    #: Agent classes in a fixed order, e.g. ``("follower", "leader")``.
    agent_classes: tuple[str, ...] = ()
    #: Per-field allowed ranges for ``params`` (see :mod:`jaxsg.validation`).
    param_bounds: Mapping[str, Bound] = {}
    #: Ordering constraints between param fields, ``(low_field, high_field)``.
    param_order: tuple[tuple[str, str], ...] = ()

    def __init__(self, horizon: int):
        self.horizon = check_int("horizon", horizon, 1, where=type(self).__name__)

    # ------------------------------------------------------------------ API
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def default_params(self) -> Any:
        raise NotImplementedError

    def make_params(self, **overrides: Any) -> Any:
        """Default params with ``overrides`` applied, validated (raises ValueError)."""
        params = replace_checked(self.default_params, overrides, where=self.name)
        return self.validate_params(params)

    def validate_params(self, params: Any) -> Any:
        """Check concrete params (scalars or stacked sweep axes); return them."""
        return validate_params(params, self.param_bounds, self.param_order, where=self.name)

    def num_agents(self, agent_class: str) -> int:
        raise NotImplementedError

    def observation_space(self, agent_class: str, params: Any = None) -> spaces.Space:
        """Space of one agent class's observations (leading agent axis)."""
        raise NotImplementedError

    def action_space(self, agent_class: str, params: Any = None) -> spaces.Space:
        """Space of one agent class's actions; bounds may depend on ``params``
        (default params when omitted)."""
        raise NotImplementedError

    def avail_actions(self, state: EnvState, params: Any) -> dict[str, Any]:
        """Boolean masks of valid discrete actions, ``{class: {component: (n, k)}}``.

        The default marks every option of every ``Discrete`` component valid.
        """
        masks = {}
        for cls in self.agent_classes:
            space = self.action_space(cls, params)
            comps = space.spaces if isinstance(space, spaces.Dict) else {"action": space}
            masks[cls] = {
                name: jnp.ones(s.shape + (s.n,), bool)
                for name, s in comps.items()
                if isinstance(s, spaces.Discrete)
            }
        return masks

    def observation_slices(self, agent_class: str) -> dict[str, slice]:
        """Where each named feature sits on the last axis of ``agent_class``'s
        observations. Default: one feature ``"obs"`` spanning the whole vector."""
        return {"obs": slice(0, int(self.observation_space(agent_class).shape[-1]))}

    def global_state(self, state: EnvState, params: Any) -> jnp.ndarray:
        """The global state for centralised critics and mixers, a float32 vector.

        Default: every leaf of ``state`` except the step counter, flattened and
        concatenated (the full Markov state). Scenarios may return a compact one.
        """
        del params
        leaves = jax.tree.leaves(state.replace(step=jnp.zeros((0,), jnp.float32)))
        return jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in leaves])

    def reset(self, key: chex.PRNGKey, params: Any) -> tuple[Obs, EnvState]:
        """Start an episode: ``(obs, state)`` with ``state.step == 0``."""
        return self.reset_env(key, params)

    def step(
        self, key: chex.PRNGKey, state: EnvState, action: Action, params: Any
    ) -> tuple[Obs, EnvState, dict, jnp.ndarray, jnp.ndarray, dict]:
        """One transition with auto-reset (six-tuple, gymnax 1.0 order)."""
        key_step, key_reset = jax.random.split(key)
        obs_step, state_step, reward, terminated, info = self.step_env(
            key_step, state, action, params
        )
        state_step = state_step.replace(step=state.step + 1)
        bad = nonfinite_action_agents(action, reward)
        reward = {c: jnp.where(bad[c], jnp.nan, r).astype(r.dtype) for c, r in reward.items()}
        terminated = jnp.asarray(terminated, bool)
        truncated = state_step.step >= self.horizon
        done = terminated | truncated
        obs_reset, state_reset = self.reset_for_autoreset(key_reset, params, state_step)
        state_next = _select_tree(done, state_reset, state_step)
        obs_next = _select_tree(done, obs_reset, obs_step)
        info = dict(info)
        info["final_observation"] = obs_step
        info["nonfinite_action"] = sum(
            jnp.sum(b, dtype=jnp.float32) for b in bad.values()
        ) + jnp.zeros((), jnp.float32)
        return obs_next, state_next, reward, terminated, truncated, info

    # ---------------------------------------------------- subclass contract
    def reset_env(self, key: chex.PRNGKey, params: Any) -> tuple[Obs, EnvState]:
        raise NotImplementedError

    def reset_for_autoreset(
        self, key: chex.PRNGKey, params: Any, state_step: EnvState
    ) -> tuple[Obs, EnvState]:
        """The fresh episode ``step`` switches to on done (computed every step under
        jit/vmap and selected leaf by leaf). Defaults to ``reset_env``; an env may
        reuse random draws of ``state_step`` that are independent of the episode's
        history, to halve the random bits a batched step needs."""
        del state_step
        return self.reset_env(key, params)

    def step_env(
        self, key: chex.PRNGKey, state: EnvState, action: Action, params: Any
    ) -> tuple[Obs, EnvState, dict, jnp.ndarray, dict]:
        """Transition without reset: ``(obs, state, reward, terminated, info)``.

        The base class advances ``state.step``; ``step_env`` must leave it alone.
        """
        raise NotImplementedError


def nonfinite_action_agents(action: Action, reward: dict) -> dict[str, jnp.ndarray]:
    """Per agent class, which agents' actions hold a NaN or ±inf: ``{class: (n,) bool}``
    shaped like ``reward[class]``.

    Every floating leaf of ``action[class]`` is checked for NaN/±inf and every integer
    leaf for the sentinel :data:`INVALID_ACTION` (any negative value); a leaf whose
    leading axis is the agent axis flags agent by agent, any other leaf flags the whole
    class. Boolean leaves are always valid.
    """
    flags = {}
    for cls, r in reward.items():
        r = jnp.asarray(r)
        n = r.shape[0] if r.ndim else None
        bad = jnp.zeros(r.shape[:1], bool)
        leaves = jax.tree.leaves(action.get(cls, {}) if isinstance(action, dict) else {})
        for leaf in leaves:
            x = jnp.asarray(leaf)
            if jnp.issubdtype(x.dtype, jnp.inexact):
                finite = jnp.isfinite(x)
            elif jnp.issubdtype(x.dtype, jnp.signedinteger):
                finite = x >= 0
            else:
                continue
            if n is not None and x.ndim >= 1 and x.shape[0] == n:
                bad = bad | ~jnp.all(finite.reshape(n, -1), axis=1)
            else:
                bad = bad | ~jnp.all(finite)
        flags[cls] = jnp.broadcast_to(bad, r.shape)
    return flags


def _select_tree(pred: jnp.ndarray, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


# --------------------------------------------------------------- registry
_REGISTRY: dict[str, Callable[..., MultiAgentEnv]] = {}


def register(name: str, factory: Callable[..., MultiAgentEnv]) -> None:
    """Register an environment class (or factory) under ``name``."""
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"environment '{name}' is already registered")
    _REGISTRY[name] = factory


def registered_envs() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def make(name: str, **kwargs: Any) -> tuple[MultiAgentEnv, Any]:
    """Build ``(env, params)``.

    Keyword arguments that the environment's constructor takes are static
    (sizes, string options); every other keyword overrides a field of the
    default params. Everything is validated here, before tracing: unknown
    names, wrong types, NaN and out-of-range values raise ``ValueError``.
    """
    import inspect

    if name not in _REGISTRY:
        raise ValueError(f"unknown environment '{name}'; registered: {registered_envs()}")
    factory = _REGISTRY[name]
    ctor_names = set(inspect.signature(factory).parameters)
    ctor_kwargs = {k: v for k, v in kwargs.items() if k in ctor_names}
    param_kwargs = {k: v for k, v in kwargs.items() if k not in ctor_names}
    env = factory(**ctor_kwargs)
    try:
        params = env.make_params(**param_kwargs)
    except ValueError as err:
        if "unknown field" in str(err):
            raise ValueError(
                f"{err}; constructor arguments: {sorted(ctor_names)}"
            ) from None
        raise
    return env, params
