"""The NumPy reference of ``dt_deploy`` (jaxsg/reference/dt_deploy.py) against the JAX env.

The JAX env is rolled out for a full episode (horizon − 1 ``step_env`` transitions plus
the reset) with ``random_policy`` (or a forced action); the reference starts from the
JAX reset state and is fed the same actions and the same next-step draws, but carries
its own last-placement trajectory. Every step compares the reward, every metric, the
admitted placement, the next observation and the avail masks, at rtol = 1e-4 (JAX in
float32, the reference in float64). Counts and placements are integers and must match
exactly.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg
from jaxsg.reference.dt_deploy import (
    STATE_FIELDS,
    STEP_DRAW_FIELDS,
    DtDeployReference,
    pick_distinct_cells,
    state_from,
)
from jaxsg.scenarios.dt_deploy import DtDeployState

RTOL = 1e-4


@functools.cache
def compiled_rollout(num_users, num_end_devices, horizon, preset="default"):
    env, _ = jaxsg.make("dt_deploy", num_users=num_users, num_end_devices=num_end_devices,
                        horizon=horizon, preset=preset)
    policy = jaxsg.random_policy(env)

    @jax.jit
    def run(params, key, forced, use_forced):
        k_reset, k_roll = jax.random.split(key)
        obs0, state0 = env.reset(k_reset, params)

        def body(carry, key):
            obs, state = carry
            k_act, k_step = jax.random.split(key)
            action = policy(k_act, obs, state, params)
            action = {"user": jnp.where(use_forced, forced, action["user"])}
            obs2, state2, reward, _, info = env.step_env(k_step, state, action, params)
            state2 = state2.replace(step=state.step + 1)
            return (obs2, state2), (action, reward, info, obs2, state2)

        _, traj = jax.lax.scan(body, (obs0, state0), jax.random.split(k_roll, env.horizon - 1))
        return obs0, state0, traj

    return env, run


def at(tree, t):
    return jax.tree.map(lambda x: np.asarray(x[t]), tree)


def assert_close(name, got, want, rtol=RTOL):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0.0, err_msg=name)


def check_equivalence(sizes, seed, forced=None, preset="default", **overrides):
    env, run = compiled_rollout(*sizes, preset=preset)
    params = env.make_params(**overrides)
    use_forced = forced is not None
    forced = jnp.zeros((env.num_users,), jnp.int32) if forced is None else jnp.asarray(forced)
    obs0, state0, traj = jax.device_get(run(params, jax.random.PRNGKey(seed), forced, use_forced))
    actions, rewards, infos, next_obs, next_states = traj
    ref = DtDeployReference.from_env(env, params)
    state = state_from(state0)
    assert_close("reset obs", ref.observe(state)["user"], obs0["user"])
    overflow_seen = 0.0
    for t in range(env.horizon - 1):
        action = at(actions, t)
        jax_next = state_from(at(next_states, t))
        draws = {k: jax_next[k] for k in STEP_DRAW_FIELDS}
        obs, new_state, reward, info = ref.transition(state, action, draws)
        where = f"[t={t}]"
        assert_close(f"reward {where}", reward["user"], rewards["user"][t])
        info_jax = {k: np.asarray(v[t]) for k, v in infos.items() if k != "final_avail_actions"}
        assert set(info) - {"final_avail_actions"} == set(info_jax)
        for key in sorted(info_jax):
            assert_close(f"metric {key} {where}", info[key], info_jax[key])
        np.testing.assert_array_equal(new_state["last_placement"], jax_next["last_placement"])
        np.testing.assert_array_equal(new_state["last_action"], jax_next["last_action"])
        np.testing.assert_array_equal(
            info["final_avail_actions"]["user"]["action"],
            np.asarray(infos["final_avail_actions"]["user"]["action"][t]),
        )
        assert_close(f"next obs {where}", obs["user"], at(next_obs, t)["user"])
        overflow_seen += info["capacity_overflow"]
        state = new_state
    return overflow_seen


@pytest.mark.parametrize("preset", ["default", "paper"])
@pytest.mark.parametrize("sizes,seed", [
    ((6, 2, 12), 3),
    pytest.param((20, 3, 20), 11, marks=pytest.mark.slow),  # default sizes: -m slow
], ids=["small", "default"])
def test_reference_matches_jax_random_policy(sizes, seed, preset):
    check_equivalence(sizes, seed, preset=preset)


def test_reference_matches_jax_below_the_d2d_break_point():
    """A 60 m area: most user–device distances are under 35 m, where the clamp applies."""
    check_equivalence((6, 2, 12), seed=8, area_m=60.0, end_device_cell_m=20.0)


def test_reference_fading_draws_are_never_zero():
    env, params = jaxsg.make("dt_deploy", num_users=50, num_end_devices=3)
    ref = DtDeployReference.from_env(env, params)
    rng = np.random.default_rng(0)
    fading = np.concatenate([ref.draw_step(rng)["fading"] for _ in range(200)])
    from jaxsg.scenarios.dt_deploy import FADING_MIN

    assert fading.min() >= FADING_MIN * (1 - 1e-9) and fading.max() <= 24 * np.log(2) + 1e-9


def test_reference_matches_jax_with_overflow_and_finite_cloud_capacity():
    """Everyone herds onto end device 1 and the cloud: admission by priority must agree."""
    n = 6
    forced = np.where(np.arange(n) % 2 == 0, 1, 3)  # node 1 (end device) and 3 (cloud)
    overflow = check_equivalence((n, 2, 12), seed=5, forced=forced, end_capacity=2.0,
                                 cloud_capacity=1.0)
    assert overflow == 11 * 3  # per step: 3 on node 1 (cap 2) → 1 bumped, 3 on cloud → 2


def test_episode_placement_matches_jax():
    env, params = jaxsg.make("dt_deploy", num_users=5, num_end_devices=7, end_device_cell_m=100.0)
    ref = DtDeployReference.from_env(env, params)
    for seed in range(5):
        u = jax.random.uniform(jax.random.PRNGKey(seed), (3 * 5 + 3 * 7,))
        got = ref.episode_from_uniforms(np.asarray(u))
        want = jax.device_get(env.episode_from_uniforms(u, params))
        for k in got:
            assert_close(k, got[k], want[k])
    # a 2 x 2 grid hosts 4 devices: distinct cells, all used
    cells = pick_distinct_cells(np.array([0.99, 0.99, 0.0, 0.5]), 4)
    assert sorted(cells) == [0, 1, 2, 3]
    assert list(cells) == [3, 2, 0, 1]


def test_reference_state_layout_and_auto_reset():
    env, params = jaxsg.make("dt_deploy", num_users=4, num_end_devices=2, horizon=3)
    _, state0 = env.reset(jax.random.PRNGKey(0), params)
    ref = DtDeployReference.from_env(env, params)
    rng = np.random.default_rng(0)
    obs, state = ref.reset(rng)
    assert set(state) == set(STATE_FIELDS) == {f for f in DtDeployState.__dataclass_fields__}
    for k in STATE_FIELDS:
        assert np.shape(state[k]) == np.shape(getattr(state0, k)), k
    assert obs["user"].shape == env.observation_space("user").shape
    for t in range(1, 4):
        obs, state, reward, terminated, truncated, info = ref.step(
            {"user": np.array([0, 1, 2, 3])}, rng)
        assert truncated == (t == 3) and not terminated
    assert state["step"] == 0 and np.all(state["last_action"] == -1)
    assert np.all(info["final_observation"]["user"][:, -1] == 1.0)  # t/T = 1 before reset
