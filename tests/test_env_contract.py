"""The environment contract, pinned on the toy env (and shown to catch violations)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy_env import ToyEnv, ToyState

import jaxsg
from jaxsg import spaces
from jaxsg.testing import check_env
from jaxsg.wrappers import LogWrapper, random_policy, rollout

if "toy" not in jaxsg.registered_envs():
    jaxsg.register("toy", ToyEnv)


def stay_policy(key, obs, state, params):
    n = state.position.shape[0]
    return {"worker": {"move": jnp.ones(n, jnp.int32), "effort": jnp.full(n, 0.5)},
            "boss": jnp.full((1,), 0.5)}


def up_policy(key, obs, state, params):
    a = stay_policy(key, obs, state, params)
    a["worker"]["move"] = jnp.full_like(a["worker"]["move"], 2)
    return a


def test_toy_env_passes_contract_checks():
    env, params = jaxsg.make("toy", horizon=4)
    summary = check_env(env, params)
    assert summary["episodes"] >= 2


def test_truncation_exactly_at_horizon_with_final_observation():
    env, params = jaxsg.make("toy", horizon=3)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(env.step)
    for t in range(1, 4):
        obs_next, state, reward, terminated, truncated, info = step(
            jax.random.PRNGKey(t), state, stay_policy(None, obs, state, params), params)
        assert not bool(terminated)
        assert bool(truncated) == (t == 3)
        if t < 3:
            chex.assert_trees_all_equal(info["final_observation"], obs_next)
        obs = obs_next
    # After truncation the state is a fresh episode; final_observation kept the old positions.
    assert int(state.step) == 0
    assert info["final_observation"]["worker"].shape == (3, 2)


def test_terminated_and_truncated_are_separate():
    env, params = jaxsg.make("toy", horizon=10, start_max=0.0)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    flags = []
    for t in range(4):
        obs, state, _, terminated, truncated, info = env.step(
            jax.random.PRNGKey(t), state, up_policy(None, obs, state, params), params)
        flags.append((bool(terminated), bool(truncated)))
    assert flags == [(False, False)] * 3 + [(True, False)]
    np.testing.assert_array_equal(info["final_observation"]["worker"][:, 0], 4.0)
    assert int(state.step) == 0 and bool(jnp.all(state.position == 0))


def test_params_vmap_sweeps_a_numeric_axis():
    env, params = jaxsg.make("toy")
    costs = jnp.array([0.0, 0.5, 1.0])
    batch = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (3,)), params)
    batch = batch.replace(step_cost=costs)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    obs, states = jax.vmap(env.reset)(keys, batch)
    action = jax.vmap(stay_policy)(keys, obs, states, batch)
    out = jax.vmap(env.step, in_axes=(None, 0, 0, 0))(keys[0], states, action, batch)
    np.testing.assert_allclose(out[2]["worker"][:, 0], -0.5 * np.asarray(costs), rtol=1e-6)


def test_log_wrapper_accumulates_returns_and_lengths():
    env, params = jaxsg.make("toy", horizon=3)
    wrapped = LogWrapper(env)
    obs, state = wrapped.reset(jax.random.PRNGKey(0), params)
    total = np.zeros(3)
    for t in range(3):
        obs, state, reward, _, _, info = wrapped.step(
            jax.random.PRNGKey(t), state, stay_policy(None, obs, state.env_state, params), params)
        total += np.asarray(reward["worker"])
    assert bool(info["returned_episode"])
    np.testing.assert_allclose(info["returned_episode_returns"]["worker"], total, rtol=1e-6)
    assert int(info["returned_episode_length"]) == 3
    assert "mean_position" in info["returned_episode_metrics"]
    assert float(state.episode_length) == 0


def test_rollout_shapes_and_batching():
    env, params = jaxsg.make("toy", horizon=5)
    policy = random_policy(env)
    run = jax.jit(jax.vmap(lambda k: rollout(env, policy, k, params, 12)))
    traj = run(jax.random.split(jax.random.PRNGKey(0), 7))
    chex.assert_shape(traj["reward"]["worker"], (7, 12, 3))
    chex.assert_shape(traj["metrics"]["mean_position"], (7, 12))
    assert "at_goal" not in traj["metrics"]  # only scalar metrics are kept
    assert bool(jnp.all(traj["truncated"][:, 4])) or bool(jnp.any(traj["terminated"]))


def test_random_policy_respects_avail_actions():
    env, params = jaxsg.make("toy", start_max=0.0)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    policy = jax.jit(random_policy(env))
    moves = jnp.stack([policy(jax.random.PRNGKey(i), None, state, params)["worker"]["move"]
                       for i in range(50)])
    assert int(moves.min()) >= 1  # "down" is masked at position 0


def test_spaces_sample_contains_and_mask():
    key = jax.random.PRNGKey(0)
    d = spaces.Discrete(4, (5,))
    assert bool(d.contains(d.sample(key)))
    assert not bool(d.contains(jnp.full((5,), 4)))
    assert not bool(d.contains(jnp.zeros((4,), jnp.int32)))
    mask = jnp.zeros((5, 4), bool).at[:, 2].set(True)
    np.testing.assert_array_equal(d.sample(key, mask), 2)
    b = spaces.Box(0.0, 2.0, (3, 2))
    assert bool(b.contains(b.sample(key)))
    assert not bool(b.contains(jnp.full((3, 2), 2.5)))
    assert not bool(b.contains(jnp.full((3, 2), jnp.nan)))
    with pytest.raises(ValueError):
        spaces.Box(1.0, 0.0, (2,))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"step_cost": -1.0}, "step_cost"),
        ({"bonus_scale": 1.5}, "bonus_scale"),
        ({"noise_std": float("nan")}, "noise_std"),
        ({"step_cost": "cheap"}, "step_cost"),
        ({"start_max": 1.5}, "start_max"),
        ({"not_a_field": 1.0}, "not_a_field"),
        ({"horizon": 0}, "horizon"),
    ],
)
def test_make_rejects_bad_params_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        jaxsg.make("toy", **kwargs)


def test_make_rejects_unknown_env():
    with pytest.raises(ValueError, match="registered"):
        jaxsg.make("no_such_env")


def test_validation_checks_min_le_max_and_sweep_axes():
    import dataclasses

    from jaxsg.validation import Bound, validate_params

    @dataclasses.dataclass
    class Range:
        lo: object
        hi: object

    bounds = {"lo": Bound(0, 10), "hi": Bound(0, 10)}
    validate_params(Range(1.0, 2.0), bounds, [("lo", "hi")])
    with pytest.raises(ValueError, match="'lo'.*<=.*'hi'"):
        validate_params(Range(3.0, 2.0), bounds, [("lo", "hi")])
    with pytest.raises(ValueError, match="'hi'"):
        validate_params(Range(np.array([1.0, 2.0]), np.array([5.0, 11.0])), bounds)


# ---- the checker must catch contract violations (tests that can fail) ----
class NoResetCounterEnv(ToyEnv):
    """Breaks the contract: reset starts the counter at 1."""

    def reset_env(self, key, params):
        obs, state = super().reset_env(key, params)
        return obs, state.replace(step=jnp.ones((), jnp.int32))


class NaNRewardEnv(ToyEnv):
    def step_env(self, key, state, action, params):
        obs, new, reward, term, info = super().step_env(key, state, action, params)
        reward["worker"] = reward["worker"] * jnp.nan
        return obs, new, reward, term, info


class PythonScalarStateEnv(ToyEnv):
    def reset_env(self, key, params):
        obs, state = super().reset_env(key, params)
        return obs, state.replace(noise=0.0)


class WrongRewardShapeEnv(ToyEnv):
    def step_env(self, key, state, action, params):
        obs, new, reward, term, info = super().step_env(key, state, action, params)
        reward["boss"] = jnp.zeros((2,))
        return obs, new, reward, term, info


@pytest.mark.parametrize("cls", [NoResetCounterEnv, NaNRewardEnv, PythonScalarStateEnv,
                                 WrongRewardShapeEnv])
def test_check_env_catches_violations(cls):
    env = cls(horizon=3)
    with pytest.raises(AssertionError):
        check_env(env, env.default_params)


def test_state_is_a_dataclass_of_arrays():
    env, params = jaxsg.make("toy")
    _, state = env.reset(jax.random.PRNGKey(0), params)
    assert isinstance(state, ToyState)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))
