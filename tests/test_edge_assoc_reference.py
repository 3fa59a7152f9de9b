"""The NumPy reference of ``edge_assoc`` (jaxsg/reference/edge_assoc.py) against the JAX env.

The JAX env is rolled out for a whole episode (horizon − 1 ``step_env`` calls)
with ``random_policy`` or a forced action; the reference starts from the JAX
reset state, is fed the same actions and the same next-round draws, and carries
its *own* DT counts, coins and producers, so drift accumulates. Every round
compares the reward, every metric (scalars and the association, batch and τ
arrays), the next state and the next observation at rtol = 1e-4 (float32 vs
float64; no absolute slack is needed: no quantity is a difference of larger
terms except the interference, compared through the rates it feeds).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg
from jaxsg.reference.edge_assoc import DRAW_FIELDS, EdgeAssocReference, state_from

RTOL = 1e-4
SMALL = {"num_users": 12, "num_bs": 4, "num_subchannels": 3, "num_producers": 2, "horizon": 25}


@functools.cache
def compiled_rollout(sizes):
    env, _ = jaxsg.make("edge_assoc", **dict(sizes))
    policy = jaxsg.random_policy(env)

    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def run(params, key, forced, use_forced):
        k_reset, k_roll = jax.random.split(key)
        obs0, state0 = env.reset(k_reset, params)

        def body(carry, key):
            obs, state = carry
            k_act, k_step = jax.random.split(key)
            action = policy(k_act, obs, state, params)
            action = jax.tree.map(lambda f, a: jnp.where(use_forced, f, a), forced, action)
            obs2, state2, reward, _, info = env.step_env(k_step, state, action, params)
            state2 = state2.replace(step=state.step + 1)
            return (obs2, state2), (action, reward, info, obs2, state2)

        keys = jax.random.split(k_roll, env.horizon - 1)
        _, traj = jax.lax.scan(body, (obs0, state0), keys)
        return obs0, state0, traj

    return env, run


def assert_close(name, got, want, rtol=RTOL):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
    err = np.abs(got - want)
    bad = err > rtol * np.abs(want)
    assert not np.any(bad), (
        f"{name}: max err {err.max():.3g}; ref {got[bad][:4]} jax {want[bad][:4]}"
    )


def check_equivalence(sizes, seed, forced=None, **overrides):
    env, run = compiled_rollout(tuple(sorted(sizes.items())))
    params = env.make_params(**overrides)
    use_forced = forced is not None
    if forced is None:
        forced = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                              env.action_space("bs").spaces,
                              is_leaf=lambda x: isinstance(x, jaxsg.spaces.Space))
        forced = {"bs": forced}
    obs0, state0, traj = jax.device_get(run(params, jax.random.PRNGKey(seed), forced, use_forced))
    actions, rewards, infos, next_obs, next_states = traj
    ref = EdgeAssocReference.from_env(env, params)
    ref_state = state_from(state0)
    assert_close("reset obs", ref.observe(ref_state)["bs"], obs0["bs"])
    for t in range(env.horizon - 1):
        where = f"[seed {seed}, t={t}]"
        action = jax.tree.map(lambda x, t=t: np.asarray(x[t]), actions)
        jax_next = state_from(jax.tree.map(lambda x, t=t: x[t], next_states))
        draws = {k: jax_next[k] for k in DRAW_FIELDS}
        obs, new_state, reward, info = ref.transition(ref_state, action, draws)
        assert_close(f"reward {where}", reward["bs"], rewards["bs"][t])
        info_jax = {k: np.asarray(v[t]) for k, v in infos.items()}
        assert set(info) == set(info_jax), set(info) ^ set(info_jax)
        for key in sorted(info):
            if key == "assoc":
                np.testing.assert_array_equal(info[key], info_jax[key], err_msg=where)
            else:
                assert_close(f"metric {key} {where}", info[key], info_jax[key])
        for key in ("num_dts", "coins"):
            assert_close(f"next {key} {where}", new_state[key], jax_next[key])
        np.testing.assert_array_equal(new_state["assoc"], jax_next["assoc"])
        np.testing.assert_array_equal(new_state["producers"], jax_next["producers"])
        assert new_state["step"] == jax_next["step"] == t + 1
        assert_close(f"next obs {where}", obs["bs"], next_obs["bs"][t])
        ref_state = new_state


EXPECTED = {**SMALL, "interference_model": "expected_use"}


@pytest.mark.parametrize("sizes, seed", [(SMALL, 0), (SMALL, 7), (EXPECTED, 0), (EXPECTED, 7)])
def test_reference_matches_jax_random_policy(sizes, seed):
    """Both interference models of eq. 7 (``orthogonal`` is the default)."""
    check_equivalence(sizes, seed)


@pytest.mark.parametrize("sizes", [SMALL, EXPECTED])
def test_reference_matches_jax_other_params(sizes):
    check_equivalence(sizes, 3, interference_factor=0.3, pathloss_exponent=3.0,
                      batch_frac_min=0.3, batch_frac_max=0.8, theta_kappa=5.0,
                      agg_cycles_per_bit=0.0, coin_reward=0.0)


def test_reference_matches_jax_extreme_link_and_theta():
    """A weak link near the allowed floor (mean SNR −26.8 dB: α = 8, r = 100 m), θ_max = 0.9999."""
    check_equivalence(SMALL, 4, pathloss_exponent=8.0, ring_radius_m=100.0,
                      theta_min=0.9, theta_max=0.9999, theta_kappa=1.0)


def test_reference_matches_jax_edge_actions():
    """Tied bids (everyone to BS 0), idle BSs, zero and out-of-range weights and batches."""
    m, n, c = SMALL["num_bs"], SMALL["num_users"], SMALL["num_subchannels"]
    bid = np.zeros((m, n), np.float32)
    bid[2, : n // 3] = 0.7  # BS 2 wins the first third; the rest tie at 0 -> BS 0
    bandwidth = np.zeros((m, c), np.float32)  # all zero -> floor, idle BSs dropped
    bandwidth[0, 0] = 5.0
    batch = np.linspace(-1.0, 2.0, m * n, dtype=np.float32).reshape(m, n)
    forced = {"bs": {"bid": bid, "batch_frac": batch, "bandwidth": bandwidth}}
    check_equivalence(SMALL, 5, forced=forced)


@pytest.mark.parametrize("model", ["orthogonal", "expected_use"])
def test_reference_default_sizes_episode(model):
    check_equivalence({"horizon": 6, "interference_model": model}, 11)


def test_reference_step_auto_resets():
    env, params = jaxsg.make("edge_assoc", **{**SMALL, "horizon": 3})
    ref = EdgeAssocReference.from_env(env, params)
    rng = np.random.default_rng(0)
    ref.reset(rng)
    m, n, c = env.num_bs, env.num_users, env.num_subchannels
    action = {"bs": {"bid": rng.uniform(size=(m, n)), "batch_frac": np.full((m, n), 0.5),
                     "bandwidth": np.ones((m, c))}}
    for t in range(1, 4):
        obs, state, reward, terminated, truncated, info = ref.step(action, rng)
        assert truncated == (t == 3) and not terminated
        assert np.all(reward["bs"] < 0) and np.all(np.isfinite(reward["bs"]))
    assert state["step"] == 0 and np.all(state["assoc"] == -1)
