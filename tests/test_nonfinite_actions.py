"""Non-finite actions are flagged, never passed off as valid ones (MultiAgentEnv contract).

Every scenario: an agent whose action holds a NaN or ±inf gets a NaN reward and is
counted in ``info["nonfinite_action"]``; finite actions give a 0 count and exactly the
rewards of ``step_env`` (the rule changes nothing for them). Discrete components are
given as floats here (a policy may emit float indices; the env casts them), so NaN can
reach every scenario's decoding.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg

SIZES = {
    "sgin": dict(num_mbs=2, users_per_mbs=3, num_leo=2, num_channels=3, horizon=5),
    "dt_deploy": dict(num_users=6, num_end_devices=2, horizon=5),
    "spectrum": dict(num_satellites=3, num_cells=3, users_per_satellite=4, num_channels=2,
                     horizon=5),
    "edge_assoc": dict(num_users=6, num_bs=2, num_subchannels=2, horizon=5),
}


def _is_float(x):
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)


def _float_action(action):
    """Classes with no floating component (discrete-only) get float32 indices, as a
    policy that emits float indices would send; others are left as they are."""
    return {
        cls: a if any(_is_float(x) for x in jax.tree.leaves(a))
        else jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), a)
        for cls, a in action.items()
    }


@functools.cache
def _setup(name):
    """``(env, params, step, action)``: a jitted ``env.step`` whose ``step_env``
    rewards come along (same key split as ``MultiAgentEnv.step``), and a random
    action with every leaf as float32 (one compile serves finite and NaN actions)."""
    env, params = jaxsg.make(name, **SIZES[name])
    key = jax.random.PRNGKey(0)
    _, state = env.reset(key, params)
    action = _float_action(jaxsg.random_policy(env)(jax.random.PRNGKey(1), None, state, params))

    @jax.jit
    def step(key, state, action):
        out = env.step(key, state, action, params)
        k_step, _ = jax.random.split(key)
        _, _, raw_reward, _, _ = env.step_env(k_step, state, action, params)
        return out, raw_reward

    return env, params, state, step, action


def _poison(action, cls, agent, value):
    """``action`` with one floating entry of ``agent`` (class ``cls``) set to ``value``."""
    leaves, tree = jax.tree.flatten(action[cls])
    i = next(i for i, x in enumerate(leaves) if _is_float(x))
    leaf = np.array(leaves[i])
    leaf[agent] = value  # leading axis is the agent axis (a whole row for 2-D leaves)
    leaves[i] = jnp.asarray(leaf)
    return {**action, cls: jax.tree.unflatten(tree, leaves)}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_finite_actions_flag_zero_and_change_nothing(name):
    env, params, state, step, action = _setup(name)
    (obs, _, reward, _, _, info), raw = step(jax.random.PRNGKey(2), state, action)
    assert float(info["nonfinite_action"]) == 0.0
    assert info["nonfinite_action"].shape == () and info["nonfinite_action"].dtype == jnp.float32
    for cls in env.agent_classes:
        assert np.all(np.isfinite(reward[cls])), cls
        np.testing.assert_array_equal(reward[cls], raw[cls])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", sorted(SIZES))
def test_nonfinite_action_is_flagged_and_its_reward_is_nan(name, value):
    env, params, state, step, action = _setup(name)
    cls = env.agent_classes[0]
    agent = 1 if env.num_agents(cls) > 1 else 0
    bad_action = _poison(action, cls, agent, value)
    (_, _, reward, _, _, info), _ = step(jax.random.PRNGKey(2), state, bad_action)
    assert float(info["nonfinite_action"]) == 1.0
    assert np.isnan(reward[cls][agent])
    # two agents poisoned → counted twice (one per agent, not per entry)
    if env.num_agents(cls) > 1:
        two = _poison(bad_action, cls, 0, value)
        (_, _, reward, _, _, info), _ = step(jax.random.PRNGKey(2), state, two)
        assert float(info["nonfinite_action"]) == 2.0
        assert np.isnan(reward[cls][0]) and np.isnan(reward[cls][agent])


def test_rollout_records_the_flag_and_the_return_goes_non_finite():
    env, params = jaxsg.make("dt_deploy", **SIZES["dt_deploy"])
    log = jaxsg.wrappers.LogWrapper(env)
    random = jaxsg.random_policy(log)

    def nan_policy(key, obs, state, params):
        action = _float_action(random(key, obs, state, params))
        return {**action, "user": action["user"].at[0].set(jnp.nan)}

    traj = jax.jit(lambda k: jaxsg.rollout(log, nan_policy, k, params, 6))(
        jax.random.PRNGKey(0))
    np.testing.assert_array_equal(traj["metrics"]["nonfinite_action"], 1.0)
    assert np.all(np.isnan(traj["reward"]["user"][:, 0]))
    assert np.all(np.isfinite(traj["reward"]["user"][:, 1:]))


def _int_action(action):
    """Every leaf as the space's own dtype: discrete leaves int32, Box leaves float32."""
    return {cls: jax.tree.map(lambda x: jnp.asarray(x), a) for cls, a in action.items()}


@pytest.mark.parametrize("name", ["dt_deploy", "sgin", "spectrum"])  # edge_assoc: all Box
def test_invalid_integer_sentinel_is_flagged_not_read_as_option_0(name):
    """A discrete learner's greedy action over NaN Q-values is ``INVALID_ACTION`` (−1):
    flagged like a NaN; option 0 itself is a valid action and is not flagged."""
    env, params = jaxsg.make(name, **SIZES[name])
    _, state = env.reset(jax.random.PRNGKey(0), params)
    action = _int_action(jaxsg.random_policy(env)(jax.random.PRNGKey(1), None, state, params))
    cls = next(c for c in env.agent_classes
               if any(jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer)
                      for x in jax.tree.leaves(action[c])))
    leaves, tree = jax.tree.flatten(action[cls])
    i = next(i for i, x in enumerate(leaves) if jnp.issubdtype(x.dtype, jnp.integer))
    step = jax.jit(lambda a: env.step(jax.random.PRNGKey(2), state, a, params))
    for value, flagged in [(0, False), (jaxsg.INVALID_ACTION, True)]:
        poisoned = list(leaves)
        poisoned[i] = leaves[i].at[0].set(value)
        a = {**action, cls: jax.tree.unflatten(tree, poisoned)}
        _, _, reward, _, _, info = step(a)
        assert float(info["nonfinite_action"]) == float(flagged), (name, value)
        assert bool(np.isnan(reward[cls][0])) == flagged, (name, value)
