"""The NumPy reference of ``sgin`` (jaxsg/reference/sgin.py) against the JAX env.

The JAX env is rolled out with ``random_policy``; the reference is started
from the JAX reset state and fed the same actions and the same next-slot
draws, but carries its *own* queue / price / last-slot trajectory, so any
drift accumulates. Every step compares rewards, every metric, the next queue
and the next observation.

Tolerances: rtol = 1e-4 (the JAX env is float32, the reference float64; the
largest float32 error is the ~150 dB path loss, ~1e-5 dB → ~3e-6 relative in
the gain). An absolute slack is used only where a quantity is a difference of
larger terms and may cancel to ~0, and it is then rtol × the size of those
terms (never a bare constant): the follower reward Q·D + V·(D − w·C − λ·f),
the follower utility, the leader profit Σ(λ − c)·f (λ < c possible), and the
observation features (I_dBm + 100)/50 and (L − 150 dB)/20, which cross 0 at
−100 dBm and 150 dB. The violation count (I > I_max) is a threshold of a float quantity:
it must match exactly unless the reference finds a transmitting DT within
1e-4 (relative) of I_max.
"""

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg
from jaxsg.reference.sgin import DRAW_FIELDS, STATE_FIELDS, SginReference, state_from
from jaxsg.scenarios.sgin import PATH_LOSS_CENTER_DB, PATH_LOSS_SCALE_DB, SginState

RTOL = 1e-4

SMALL = {"num_mbs": 2, "users_per_mbs": 3, "num_leo": 2, "num_channels": 3, "horizon": 30}
DEFAULT = {"num_mbs": 4, "users_per_mbs": 12, "num_leo": 4, "num_channels": 12, "horizon": 20}


@functools.cache
def compiled_rollout(sizes, price_mode, payoff="cloud", reward="drift_plus_penalty"):
    """``(env, run)``: one compile per static config; params (so the intra-cell
    flag), the seed and an optional forced action are arguments of ``run``.

    ``run(params, key, forced, use_forced)`` resets, then takes horizon − 1
    steps (``step_env`` plus the base class's step counter; no auto-reset is
    due before the horizon) with ``random_policy`` or, if ``use_forced``, the
    action ``forced``; everything is stacked over steps.
    """
    env, _ = jaxsg.make("sgin", price_mode=price_mode, payoff=payoff, reward=reward,
                        **dict(sizes))
    policy = jaxsg.random_policy(env)

    # Backend optimisation level 0 halves the XLA CPU compile time, which
    # dominates this test; the float32 arithmetic being checked is the same.
    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def run(params, key, forced, use_forced):
        k_reset, k_roll = jax.random.split(key)
        obs0, state0 = env.reset(k_reset, params)

        def body(carry, key):
            obs, state = carry
            k_act, k_step = jax.random.split(key)
            action = policy(k_act, obs, state, params)
            action = jax.tree.map(
                lambda f, a: jnp.where(use_forced, f, a).astype(a.dtype), forced, action
            )
            obs2, state2, reward, _, info = env.step_env(k_step, state, action, params)
            state2 = state2.replace(step=state.step + 1)
            return (obs2, state2), (state, action, reward, info, obs2, state2)

        keys = jax.random.split(k_roll, env.horizon - 1)
        _, traj = jax.lax.scan(body, (obs0, state0), keys)
        return obs0, state0, traj

    return env, run


def jax_rollout(sizes, price_mode, seed, forced=None, payoff="cloud",
                reward="drift_plus_penalty", **overrides):
    env, run = compiled_rollout(tuple(sorted(sizes.items())), price_mode, payoff, reward)
    params = env.make_params(**overrides)
    use_forced = forced is not None
    if forced is None:  # a placeholder of the right structure, ignored
        forced = {
            cls: jax.tree.map(
                lambda sp: jnp.zeros(sp.shape, sp.dtype),
                getattr(env.action_space(cls), "spaces", env.action_space(cls)),
                is_leaf=lambda x: isinstance(x, jaxsg.spaces.Space),
            )
            for cls in env.agent_classes
        }
    out = jax.device_get(run(params, jax.random.PRNGKey(seed), forced, use_forced))
    return env, params, out


def at(tree, t):
    return jax.tree.map(lambda x: np.asarray(x[t]), tree)


def reward_scale(ref, state, out):
    """Size of the terms of R = Q·(D + dropped − A) + V·F, per DT (for the
    cancellation slack)."""
    p = ref.p
    moved = (out["capacity_bits"] + out["dropped_bits"] + state["arrivals_bits"]) / 1e6
    q_d = np.abs(state["queue_bits"] / 1e6 * moved)
    price_f = np.abs(state["price"]) * out["action"]["cpu_hz"] / 1e9 + np.abs(out["cost"])
    privacy = p.privacy_weight * np.repeat(out["overhead_s"][:, 3], ref.M) / 1e-3
    u_terms = out["capacity_bits"] / 1e6 + privacy + price_f + p.drop_penalty * moved
    return q_d + p.v_weight * u_terms + p.interference_penalty, u_terms


def cancellation_slack(env, follower_obs) -> np.ndarray:
    """Slack for the observation features that are differences and may cancel to ~0:
    (I_dBm + 100)/50 crosses 0 at −100 dBm (terms of size 100/50 = 2) and
    (L − 150 dB)/20 crosses 0 at 150 dB (terms of size 150/20 = 7.5)."""
    where = env.observation_slices("follower")
    slack = np.zeros_like(np.asarray(follower_obs))
    slack[:, where["interference"]] = 100.0 / 50.0
    slack[:, where["path_loss"]] = PATH_LOSS_CENTER_DB / PATH_LOSS_SCALE_DB
    return slack


def assert_close(name, got, want, rtol=RTOL, slack=0.0):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
    err = np.abs(got - want)
    bound = rtol * np.abs(want) + rtol * np.asarray(slack)
    bad = err > bound
    assert not np.any(bad), (
        f"{name}: max err {err.max():.3g}; ref {got[bad][:4]} vs jax {want[bad][:4]}"
    )


def check_equivalence(sizes, price_mode, intra, seed, forced=None, payoff="cloud",
                      reward="drift_plus_penalty"):
    env, params, (obs0, state0, traj) = jax_rollout(
        sizes, price_mode, seed, forced, payoff, reward, intra_cell_interference=intra
    )
    ref = SginReference.from_env(env, params)
    assert ref.p.intra_cell_interference == intra
    assert (ref.payoff, ref.reward) == (payoff, reward)
    _, actions, rewards, infos, next_obs, next_states = traj

    ref_state = state_from(state0)
    reset_scale = cancellation_slack(env, obs0["follower"])
    assert_close("reset obs follower", ref.observe(ref_state)["follower"], obs0["follower"],
                 slack=reset_scale)
    assert_close("reset obs leader", ref.observe(ref_state)["leader"], obs0["leader"])
    price_moved = False
    for t in range(env.horizon - 1):
        action = at(actions, t)
        jax_next = state_from(at(next_states, t))
        draws = {k: jax_next[k] for k in DRAW_FIELDS}
        out = ref.slot_outcome(ref_state, action["follower"])
        obs, new_state, reward, info = ref.transition(ref_state, action, draws)
        info_jax = {k: np.asarray(v[t]) for k, v in infos.items()}
        where = f"[{price_mode}, intra={intra}, t={t}]"

        # rewards (follower: cancellation slack from the size of its terms)
        scale, u_terms = reward_scale(ref, ref_state, out)
        assert_close(
            f"follower reward {where}", reward["follower"], rewards["follower"][t], slack=scale
        )
        profit_scale = np.sum(
            (np.abs(ref_state["price"]) + ref.p.unit_cost) * out["action"]["cpu_hz"] / 1e9
        )
        assert_close(
            f"leader reward {where}", reward["leader"], rewards["leader"][t], slack=profit_scale
        )

        # metrics: same names, same values
        assert set(info) == set(info_jax), set(info) ^ set(info_jax)
        slack = {
            "leader_profit": profit_scale,
            "follower_reward_mean": float(np.mean(scale)),
            "follower_utility_mean": float(np.mean(u_terms)),
            "cost_mean": float(np.mean(np.abs(out["cost"]))),
        }
        for key in sorted(info):
            if key == "interference_violations":
                tx = out["transmit"]
                near = np.abs(out["interference_w"][tx] / ref.p.interference_max_w - 1) < RTOL
                assert abs(info[key] - info_jax[key]) <= np.sum(near), (where, key)
                continue
            assert_close(
                f"metric {key} {where}", info[key], info_jax[key], slack=slack.get(key, 0.0)
            )

        # next state (own trajectory) and next observation
        for key in ("queue_bits", "price", "last_cpu_hz", "last_interference_w", "last_rx_power_w"):
            assert_close(f"next {key} {where}", new_state[key], jax_next[key])
        assert new_state["step"] == jax_next["step"] == t + 1
        obs_jax = at(next_obs, t)
        feature_scale = cancellation_slack(env, obs["follower"])
        assert_close(
            f"next obs follower {where}", obs["follower"], obs_jax["follower"], slack=feature_scale
        )
        assert_close(f"next obs leader {where}", obs["leader"], obs_jax["leader"])
        price_moved |= not np.allclose(new_state["price"], ref.p.price)
        ref_state = new_state
    # the leader's action moves the price only in "leader" mode
    assert price_moved == (price_mode == "leader")


@pytest.mark.parametrize("price_mode", ["leader", "fixed"])
@pytest.mark.parametrize("intra", [0.0, 1.0])
@pytest.mark.parametrize("payoff", ["cloud", "paper"])
def test_reference_matches_jax_small(price_mode, intra, payoff):
    check_equivalence(SMALL, price_mode, intra, seed=3, payoff=payoff)


@pytest.mark.parametrize("payoff, reward", [("cloud", "paper"), ("paper", "paper"),
                                            ("paper", "drift_plus_penalty")])
def test_reference_matches_jax_every_reward(payoff, reward):
    check_equivalence(SMALL, "leader", 1.0, seed=4, payoff=payoff, reward=reward)


@pytest.mark.parametrize("intra", [0.0, 1.0])
def test_reference_matches_jax_default_sizes(intra):
    check_equivalence(DEFAULT, "leader", intra, seed=11)


def test_reference_matches_jax_default_sizes_paper_payoff():
    check_equivalence(DEFAULT, "leader", 1.0, seed=12, payoff="paper", reward="paper")


def test_reference_clips_out_of_range_actions_like_jax():
    """Out-of-range integers and continuous actions, everyone on two channels."""
    n = SMALL["num_mbs"] * SMALL["users_per_mbs"]
    ramp = np.arange(n)
    follower = {
        "offload": np.where(ramp % 3 == 0, 5, np.where(ramp % 3 == 1, -2, 1)),
        "leo": ramp - 2,  # negative and too large
        "channel": np.where(ramp % 2 == 0, 0, 99),  # herd onto channels 0 and R − 1
        "block_mbit": np.linspace(0.0, 10.0, n).astype(np.float32),
    }
    leader = np.linspace(-5.0, 50.0, n).astype(np.float32)[None, :]
    paper = {"follower": {**follower, "cpu_ghz": np.linspace(-1.0, 20.0, n).astype(np.float32)},
             "leader": leader}
    cloud = {"follower": {**follower, "cpu": np.linspace(-0.5, 1.5, n).astype(np.float32),
                          "drop": np.where(ramp % 2 == 0, 3, -1)},
             "leader": leader}
    check_equivalence(SMALL, "leader", 1.0, seed=5, forced=cloud)
    check_equivalence(SMALL, "fixed", 0.0, seed=6, forced=cloud)
    check_equivalence(SMALL, "leader", 1.0, seed=5, forced=paper, payoff="paper", reward="paper")


def test_reference_layout_matches_jax():
    env, params, (obs0, state0, _) = jax_rollout(SMALL, "leader", seed=0)
    ref = SginReference.from_env(env, params)
    rng = np.random.default_rng(0)
    jax_draws = {k: getattr(state0, k) for k in DRAW_FIELDS}
    ref_draws = ref.draw_slot(rng)
    assert set(ref_draws) == set(jax_draws) == set(DRAW_FIELDS)
    for k in DRAW_FIELDS:
        assert ref_draws[k].shape == jax_draws[k].shape, k
    assert ref_draws["visible"].all()
    obs, state = ref.reset(rng)
    assert set(state) == set(STATE_FIELDS) == {f.name for f in dataclasses.fields(SginState)}
    for cls in env.agent_classes:
        assert obs[cls].shape == obs0[cls].shape == env.observation_space(cls, params).shape
    for k in STATE_FIELDS:
        assert np.shape(state[k]) == np.shape(getattr(state0, k)), k
    assert state["last_rx_power_w"].shape == (env.num_mbs, env.num_leo, env.num_channels)
    # draws lie in their ranges
    assert np.all(
        (ref_draws["arrivals_bits"] >= params.arrival_min_bits)
        & (ref_draws["arrivals_bits"] <= params.arrival_max_bits)
    )


def test_reference_rejects_orbit_geometry():
    env, params = jaxsg.make("sgin", geometry="orbit", **SMALL)
    with pytest.raises(NotImplementedError, match="uniform"):
        SginReference.from_env(env, params)
    with pytest.raises(NotImplementedError):
        SginReference(2, 3, 2, 3, 10, "leader", params, geometry="orbit")
    with pytest.raises(ValueError):
        SginReference(2, 3, 2, 3, 10, "auction", params)


def test_reference_step_auto_resets_at_horizon():
    env, params = jaxsg.make("sgin", **{**SMALL, "horizon": 3})
    ref = SginReference.from_env(env, params)
    rng = np.random.default_rng(1)
    ref.reset(rng)
    n = env.num_followers
    action = {
        "follower": {
            "offload": np.zeros(n, int),
            "drop": np.zeros(n, int),
            "leo": np.zeros(n, int),
            "channel": np.zeros(n, int),
            "cpu": np.zeros(n),
            "block_mbit": np.full(n, 0.5),
        },
        "leader": np.full((1, n), 7.0),
    }
    for t in range(1, 4):
        obs, state, reward, terminated, truncated, info = ref.step(action, rng)
        assert not terminated
        assert truncated == (t == 3)
        assert reward["follower"].shape == (n,) and reward["leader"].shape == (1,)
        if t < 3:
            assert state["step"] == t
            assert np.all(state["queue_bits"] > 0)  # f_min locally cannot drain A ≥ 4 Mbit
            assert np.all(state["price"] == 7.0)
            np.testing.assert_array_equal(info["final_observation"]["follower"], obs["follower"])
    # fresh episode after the horizon; final_observation kept the old queues
    assert state["step"] == 0 and ref.state is state
    np.testing.assert_array_equal(state["queue_bits"], params.initial_queue_bits)
    np.testing.assert_array_equal(state["price"], params.price)
    assert np.all(info["final_observation"]["follower"][:, 2] > 0)
    assert np.all(obs["follower"][:, 2] == 0)


def test_reference_default_episode_speed_smoke():
    """A full default-size NumPy episode runs (the speed baseline) and stays finite."""
    env, params = jaxsg.make("sgin", horizon=5)
    ref = SginReference.from_env(env, params)
    rng = np.random.default_rng(2)
    ref.reset(rng)
    n = env.num_followers
    t0 = time.perf_counter()
    for _ in range(5):
        action = {
            "follower": {
                "offload": rng.integers(0, 2, n),
                "drop": rng.integers(0, 2, n),
                "leo": rng.integers(0, 4, n),
                "channel": rng.integers(0, 12, n),
                "cpu": rng.uniform(0, 1, n),
                "block_mbit": rng.uniform(0.5, 4, n),
            },
            "leader": rng.uniform(0, 10, (1, n)),
        }
        _, _, reward, _, _, info = ref.step(action, rng)
        assert np.all(np.isfinite(reward["follower"]))
        assert all(np.isfinite(v) for k, v in info.items() if k != "final_observation")
    assert time.perf_counter() - t0 < 10.0
