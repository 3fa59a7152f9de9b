"""Scenario ``edge_assoc``: contract, resolution rules (18b-d), hand-computed round time,
baselines and parameter validation."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg
from agents import heuristics
from agents.heuristics import edge_assoc as H
from jaxsg.scenarios.edge_assoc import PAPER_MODEL_BITS, paper_cnn_num_params
from jaxsg.testing import check_env
from jaxsg.wrappers import random_policy, rollout

SMALL = {"num_users": 12, "num_bs": 4, "num_subchannels": 3, "num_producers": 2, "horizon": 6}


def test_contract():
    env, params = jaxsg.make("edge_assoc", **SMALL)
    summary = check_env(env, params)
    assert summary["episodes"] == 2


@functools.cache
def outcomes():
    """One compile: 64 random rounds (4 BSs, 4 subchannels, ``expected_use`` interference);
    per round the outcome of the random policy, the baselines, and average association
    without interference."""
    env, params = jaxsg.make("edge_assoc", **{**SMALL, "num_subchannels": 4,
                                              "interference_model": "expected_use"})
    cases = {"random_policy": random_policy(env), "avg": H.average(env),
             "orth": H.orthogonal(env), "full": H.full_data(env)}

    def keep(v):
        return {"transmit": v["times"].transmit, "compute": v["times"].compute,
                "rho": v["rho"], "theta": v["theta_g"], "tau": v["tau"], "assoc": v["assoc"],
                "num_dts": v["num_dts"], "batch_frac": v["batch_frac"]}

    @jax.jit
    def run(keys):
        def one(key):
            obs, state = env.reset(key, params)
            k_act = jax.random.fold_in(key, 1)
            out = {name: keep(env.round_outcome(state, pol(k_act, obs, state, params)["bs"],
                                                params))
                   for name, pol in cases.items()}
            p0 = params.replace(interference_factor=0.0)
            out["avg_no_interf"] = keep(env.round_outcome(
                state, cases["avg"](k_act, obs, state, p0)["bs"], p0))
            return out

        return jax.vmap(one)(keys)

    return env, params, jax.tree.map(np.asarray, run(jax.random.split(jax.random.PRNGKey(0), 64)))


def test_every_dt_on_one_bs_and_subchannel_shares_at_most_one():
    """Σ_i τ_{i,c} ≤ 1 for every subchannel and every DT on exactly one BS, random policy."""
    env, params, out = outcomes()
    res = out["random_policy"]
    tau = res["tau"]
    assert tau.shape == (64, env.num_bs, env.num_subchannels)
    assert np.all(tau >= 0) and np.all(tau.sum(axis=1) <= 1 + 1e-6)
    np.testing.assert_allclose(tau.sum(axis=1), 1.0, rtol=1e-6)  # every subchannel is used
    assoc = res["assoc"]
    assert np.all((assoc >= 0) & (assoc < env.num_bs))
    one_hot = np.eye(env.num_bs)[assoc]  # (64, N, M): exactly one BS per DT
    np.testing.assert_array_equal(one_hot.sum(-1), 1.0)
    np.testing.assert_array_equal(one_hot.sum(1), res["num_dts"])
    assert np.all(res["num_dts"].sum(-1) == env.num_users)
    b = res["batch_frac"]
    assert np.all((b >= params.batch_frac_min) & (b <= params.batch_frac_max))


def test_round_time_by_hand():
    """N = 2 DTs both on BS 0 of M = 2, C = 1, b = 1: eq. 7, 12, 14, 15, 16 by hand."""
    env, params = jaxsg.make("edge_assoc", num_users=2, num_bs=2, num_subchannels=1,
                             num_producers=1, horizon=4)
    obs, state = jax.jit(env.reset)(jax.random.PRNGKey(4), params)
    action = {"bs": {"bid": jnp.array([[1.0, 1.0], [0.0, 0.0]]),
                     "batch_frac": jnp.ones((2, 2)), "bandwidth": jnp.array([[0.3], [0.9]])}}
    _, state2, reward, _, _, info = jax.jit(env.step)(jax.random.PRNGKey(5), state, action,
                                                      params)
    p = jax.tree.map(float, params)
    d = np.asarray(state.data_samples, np.float64)
    cpu0 = float(state.cpu_hz[0])
    t_cmp = d.sum() * p.cycles_per_sample / cpu0
    t_la = 2 * p.model_bits * p.agg_cycles_per_bit / cpu0
    # BS 1 is idle: τ_{0,0} = 1, no interference
    snr = 10 ** ((p.bs_power_dbm - 30) / 10) * float(state.h_up[0, 0]) \
        * p.ring_radius_m ** -p.pathloss_exponent / (10 ** ((p.noise_psd_dbm_per_hz - 30) / 10)
                                                     * p.subchannel_bandwidth_hz)
    r_up = p.subchannel_bandwidth_hz * math.log2(1 + snr)
    t_pt = p.xi * math.log2(2) * 2 * p.model_bits / r_up
    t_b = 0.0  # log2(M_p = 1) = 0
    t_v = p.block_bits * p.verify_cycles_per_bit / (2.6e9 * p.verify_cpu_scale)  # producer BS 0
    total = t_cmp + t_la + t_pt + t_b + t_v
    theta = p.theta_min + (p.theta_max - p.theta_min) * math.exp(-p.theta_kappa * 1.0)
    np.testing.assert_allclose(float(info["time_cost_s"]), total, rtol=1e-5)
    np.testing.assert_allclose(float(info["transmit_s"]), t_pt, rtol=1e-5)
    np.testing.assert_allclose(float(info["theta_g"]), theta, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(reward["bs"]), -total / (1 - theta), rtol=1e-5)
    # DPoS: round 0 coins from eq. 6 (all data on BS 0) + award for the verified BS 0
    np.testing.assert_allclose(np.asarray(state2.coins), [p.s_ini + p.coin_reward, 0.0])
    np.testing.assert_array_equal(np.asarray(state2.producers), [True, False])
    np.testing.assert_array_equal(np.asarray(state2.num_dts), [2.0, 0.0])


def test_interference_hurts_and_orthogonal_beats_average():
    _, _, out = outcomes()
    m = {k: {q: float(np.mean(v[q])) for q in ("transmit", "compute", "rho", "theta")}
         for k, v in out.items()}
    # uniform τ shares every subchannel: interference makes it far slower than orthogonal
    assert m["orth"]["transmit"] < 0.5 * m["avg"]["transmit"]
    # without interference, sharing costs less
    assert m["avg_no_interf"]["transmit"] < 0.5 * m["avg"]["transmit"]
    # full data: ρ = 1, the smallest θ_G, more compute than the mid-range b
    assert m["full"]["rho"] == pytest.approx(1.0, rel=1e-6)
    assert m["full"]["compute"] > 1.5 * m["avg"]["compute"]
    assert m["full"]["theta"] < m["avg"]["theta"]


def test_baselines_resolve_as_described():
    env, params = jaxsg.make("edge_assoc", **SMALL)

    @jax.jit
    def resolved(key):
        obs, state = env.reset(key, params)
        pols = [heuristics.get("edge_assoc", name, env) for name in ("average", "random")]
        return [env.resolve(p(jax.random.fold_in(key, 1), obs, state, params)["bs"], params)
                for p in pols]

    res, res_r = resolved(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(res["num_dts"], 3.0)  # 12 users over 4 BSs
    np.testing.assert_allclose(res["tau"], 0.25, rtol=1e-6)
    assert not np.array_equal(res_r["assoc"], res["assoc"])
    np.testing.assert_allclose(res_r["batch_frac"], 0.55, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown edge_assoc heuristic"):
        heuristics.get("edge_assoc", "no_such_policy", env)


def test_model_size_is_the_paper_cnn():
    assert paper_cnn_num_params() == 2_156_490
    assert PAPER_MODEL_BITS == 2_156_490 * 32
    assert paper_cnn_num_params(padding="VALID") == 878_538


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_frac_min": 0.8, "batch_frac_max": 0.5}, "batch_frac_min"),
        ({"num_subchannels": 0}, "num_subchannels"),
        ({"num_bs": 0}, "num_bs"),
        ({"num_producers": 6}, "num_producers"),
        ({"theta_min": 0.9, "theta_max": 0.5}, "theta_min"),
        ({"theta_max": 1.0}, "theta_max"),
        ({"subchannel_bandwidth_hz": -1.0}, "subchannel_bandwidth_hz"),
        ({"data_min_samples": float("nan")}, "NaN"),
        ({"bs_cpu_ghz": (2.6, -1.0)}, "bs_cpu_ghz"),
        ({"bandwidth": 3}, "unknown field"),
        ({"interference_model": "full"}, "interference_model"),
        ({"bs_cpu_ghz": (2.6, 1e9)}, "bs_cpu_ghz"),
        # issue 15: float32 edge cases refused by the bounds, not clipped later
        ({"pathloss_exponent": 8.0, "ring_radius_m": 1e6}, "link budget"),
        ({"theta_max": 0.99999999}, "theta_max"),
        ({"model_bits": float("inf")}, "model_bits"),
        ({"cycles_per_sample": 1e300}, "cycles_per_sample"),
    ],
)
def test_bad_params_raise_clear_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxsg.make("edge_assoc", **kwargs)


def test_zero_subchannels_message_names_range():
    with pytest.raises(ValueError) as err:
        jaxsg.make("edge_assoc", num_subchannels=0)
    assert "'num_subchannels' = 0 is outside the allowed range >= 1" in str(err.value)
    with pytest.raises(ValueError) as err:
        jaxsg.make("edge_assoc", batch_frac_min=0.9, batch_frac_max=0.2)
    assert "must be <=" in str(err.value) and "batch_frac_max" in str(err.value)


def test_params_vmap_sweep_one_compile():
    """A swept param axis (interference factor) is one vmap; more interference, more time."""
    env, params = jaxsg.make("edge_assoc", **SMALL, interference_model="expected_use")
    axis = jnp.array([0.0, 0.5, 1.0])
    ps = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (3,)), params)
    ps = ps.replace(interference_factor=axis)
    env.validate_params(jax.device_get(ps))
    policy = H.average(env)
    traj = jax.jit(jax.vmap(lambda p: rollout(env, policy, jax.random.PRNGKey(0), p, 5)))(ps)
    t = np.asarray(traj["metrics"]["transmit_s"]).mean(-1)
    assert t[0] < t[1] < t[2]


def test_orthogonal_model_has_no_interference():
    """Default ``interference_model="orthogonal"``: τ are TDMA shares, ι has no effect, and
    shared subchannels are not slower than under ``expected_use``."""
    env, params = jaxsg.make("edge_assoc", **SMALL)
    env_e, _ = jaxsg.make("edge_assoc", **SMALL, interference_model="expected_use")
    assert env.interference_model == "orthogonal"
    obs, state = env.reset(jax.random.PRNGKey(2), params)
    act = H.average(env)(None, obs, state, params)["bs"]
    t = [float(env.round_outcome(state, act, params.replace(interference_factor=x))
               ["times"].transmit) for x in (0.0, 1.0)]
    assert t[0] == t[1]
    t_e = float(env_e.round_outcome(state, act, params)["times"].transmit)
    assert t_e > 2 * t[1]


def test_extreme_link_and_theta_stay_finite():
    """Issue 15: the weakest link the bounds allow (mean SNR −30 dB), the largest model and
    the smallest fade on every subchannel, with θ_max = 0.9999 and ρ → 0: T and the reward
    are finite (the link budget is summed in dB; 1 − θ_G computed without cancellation)."""
    pl = 34.0 + 174.0 - 10 * math.log10(30e6) + 30.0  # path loss (dB) for −30 dB mean SNR
    env, params = jaxsg.make("edge_assoc", **SMALL, pathloss_exponent=8.0,
                             ring_radius_m=10 ** (pl / 80.0) * (1 - 1e-6), model_bits=1e12,
                             theta_min=0.9999, theta_max=0.9999, batch_frac_min=1e-3)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    tiny = -math.log1p(-2.0**-24)  # the smallest fade draw_round can produce
    state = state.replace(h_up=jnp.full_like(state.h_up, tiny),
                          h_down=jnp.full_like(state.h_down, tiny))
    act = H.average(env, batch=1e-3)(None, obs, state, params)["bs"]
    act["bandwidth"] = act["bandwidth"].at[:, 1:].set(0.0)  # τ floored on 2 of 3 subchannels
    out = env.round_outcome(state, act, params)
    assert np.isfinite(float(out["objective_s"])) and float(out["objective_s"]) > 1e15
    np.testing.assert_allclose(float(out["rounds_factor"]), 1e4, rtol=1e-3)
    # the fading draw is bounded away from 0
    draws = env.draw_round(jax.random.PRNGKey(1), params)
    assert float(jnp.min(draws["h_up"])) > 0.0


def test_search_references_beat_random_and_never_worsen_greedy():
    """``greedy``/``search`` (bandwidth rule and b fixed): local search never raises the
    greedy objective, and both beat random association on the same rounds."""
    env, params = jaxsg.make("edge_assoc", **SMALL)
    b = jnp.full((env.num_users,), 0.55)
    bw = jnp.ones((env.num_bs, env.num_subchannels))

    @jax.jit
    def run(key):
        obs, state = env.reset(key, params)
        _, v_greedy = H.search_association(env, state, params, b, bw, 0)
        assoc, v_search = H.search_association(env, state, params, b, bw, env.num_users)
        act = H.search(env)(key, obs, state, params)["bs"]
        v_policy = env.round_outcome(state, act, params)["objective_s"]
        rnd = H.random_association(env)(jax.random.fold_in(key, 1), obs, state, params)["bs"]
        v_random = env.round_outcome(state, rnd, params)["objective_s"]
        return v_greedy, v_search, v_policy, v_random

    g, s, pol, r = map(np.asarray, jax.vmap(run)(jax.random.split(jax.random.PRNGKey(0), 16)))
    assert np.all(s <= g * (1 + 1e-6))
    np.testing.assert_allclose(pol, s, rtol=1e-5)  # the policy's bids realise the search
    assert s.mean() < 0.9 * r.mean()
    with pytest.raises(ValueError, match="bandwidth"):
        H.search(env, bandwidth="proportional")
