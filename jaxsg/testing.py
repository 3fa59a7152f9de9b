"""Reusable checks of the environment contract (docs/design.md "Environment contract").

``check_env(env, params)`` runs a random-policy episode past the horizon and
asserts, raising ``AssertionError`` with a precise message:

* spaces: every agent class has observation/action spaces whose samples they
  contain; reset and step observations lie in the observation space; rewards
  are ``(n,)`` float arrays per class; ``terminated``/``truncated`` are scalar
  booleans; ``avail_actions`` masks have the right shapes;
* state: a pytree of JAX arrays only (no Python scalars), ``step`` starts at 0;
* finiteness: every observation, reward, state leaf and scalar metric is
  finite at every step;
* one trace: the jitted ``step`` and ``reset`` compile once
  (``chex.assert_max_traces(n=1)``) across the whole run;
* auto-reset: ``truncated`` is True exactly at the horizon (and the counter
  returns to 0 after any done step), ``info["final_observation"]`` equals the
  returned observation except on done steps;
* determinism: the same key gives identical outputs, another key does not.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxsg.env import MultiAgentEnv
from jaxsg.wrappers import random_policy, scalar_metrics


def _all_finite(tree: Any) -> bool:
    leaves = [np.asarray(x) for x in jax.tree.leaves(tree)]
    return all(np.all(np.isfinite(x)) for x in leaves if np.issubdtype(x.dtype, np.inexact))


def check_spaces(env: MultiAgentEnv, key: chex.PRNGKey, params: Any = None) -> None:
    assert env.agent_classes, "env.agent_classes is empty"
    for cls in env.agent_classes:
        n = env.num_agents(cls)
        assert isinstance(n, int) and n >= 1, f"num_agents({cls!r}) = {n!r}"
        for space in (env.observation_space(cls, params), env.action_space(cls, params)):
            sample = space.sample(key)
            assert bool(space.contains(sample)), f"{cls}: {space} does not contain its sample"
            for leaf in jax.tree.leaves(sample):
                assert leaf.shape[:1] == (n,), f"{cls}: sample leading axis {leaf.shape} != ({n},)"


def check_step_outputs(env, params, obs, state, reward, terminated, truncated, info) -> None:
    for cls in env.agent_classes:
        n = env.num_agents(cls)
        space = env.observation_space(cls, params)
        assert bool(space.contains(obs[cls])), f"observation of {cls!r} outside {space}"
        chex.assert_shape(reward[cls], (n,))
        assert jnp.issubdtype(reward[cls].dtype, jnp.floating), f"reward[{cls}] not float"
    chex.assert_shape([terminated, truncated], [(), ()])
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    for leaf in jax.tree.leaves(state):
        assert isinstance(leaf, jax.Array), f"state leaf {leaf!r} is not a JAX array"
    masks = env.avail_actions(state, params)
    for cls, comps in masks.items():
        space = env.action_space(cls, params)
        for name, mask in comps.items():
            sub = space.spaces[name] if hasattr(space, "spaces") else space
            chex.assert_shape(mask, sub.shape + (sub.n,))
    assert _all_finite(obs), "non-finite observation"
    assert _all_finite(reward), "non-finite reward"
    assert _all_finite(state), "non-finite state"
    assert _all_finite(scalar_metrics(info)), f"non-finite metric in {scalar_metrics(info)}"


def check_env(
    env: MultiAgentEnv,
    params: Any,
    *,
    num_steps: int | None = None,
    seed: int = 0,
    policy=None,
    expect_stochastic: bool = True,
) -> dict:
    """Run the contract checks; return a summary dict (episodes ended, steps run).

    ``num_steps`` defaults to ``2 * horizon + 1`` so at least two auto-resets
    happen. ``policy`` defaults to the uniform random policy over available
    actions.
    """
    policy = policy or random_policy(env)
    num_steps = num_steps or 2 * env.horizon + 1
    key = jax.random.PRNGKey(seed)
    check_spaces(env, key, params)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def reset(key, params):
        return env.reset(key, params)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state, action, params):
        return env.step(key, state, action, params)

    act = jax.jit(policy)

    key, k_reset = jax.random.split(key)
    obs, state = reset(k_reset, params)
    assert int(state.step) == 0, f"reset state.step = {state.step}, expected 0"
    for leaf in jax.tree.leaves(state):
        assert isinstance(leaf, jax.Array), f"reset state leaf {leaf!r} is not a JAX array"
    for cls in env.agent_classes:
        assert bool(env.observation_space(cls, params).contains(obs[cls])), f"reset obs {cls!r}"

    episodes = 0
    t_in_episode = 0
    for t in range(num_steps):
        key, k_act, k_step = jax.random.split(key, 3)
        action = act(k_act, obs, state, params)
        out = step(k_step, state, action, params)
        # Determinism: the same key and inputs give identical outputs.
        if t < 2:
            again = step(k_step, state, action, params)
            chex.assert_trees_all_equal(out, again)
        obs_next, state_next, reward, terminated, truncated, info = out
        check_step_outputs(env, params, obs_next, state_next, reward, terminated, truncated, info)
        t_in_episode += 1
        done = bool(terminated) or bool(truncated)
        assert bool(truncated) == (t_in_episode >= env.horizon), (
            f"truncated={bool(truncated)} at step {t_in_episode} of horizon {env.horizon}"
        )
        if done:
            episodes += 1
            t_in_episode = 0
            assert int(state_next.step) == 0, "state.step not reset after a done step"
        else:
            assert int(state_next.step) == t_in_episode, "state.step does not count steps"
            chex.assert_trees_all_equal(info["final_observation"], obs_next)
        obs, state = obs_next, state_next

    # Different keys must give different randomness somewhere.
    o1, _ = reset(jax.random.PRNGKey(seed + 1), params)
    o2, _ = reset(jax.random.PRNGKey(seed + 2), params)
    s1 = step(jax.random.PRNGKey(1), state, act(jax.random.PRNGKey(3), obs, state, params), params)
    s2 = step(jax.random.PRNGKey(2), state, act(jax.random.PRNGKey(3), obs, state, params), params)
    differs = not all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves((o1, s1)), jax.tree.leaves((o2, s2)))
    )
    assert differs or not expect_stochastic, "reset/step outputs do not depend on the key"
    return {"episodes": episodes, "steps": num_steps}
