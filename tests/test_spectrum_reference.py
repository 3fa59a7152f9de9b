"""The NumPy reference of ``spectrum`` (jaxsg/reference/spectrum.py) against the JAX env.

The JAX env is rolled out with ``random_policy`` over a full episode; the
reference starts from the JAX reset's user draws (it recomputes the geometry
itself from the positions), is fed the same actions and the same next-step
draws, and carries its *own* price/power levels, reputation and last-step
statistics, so any drift accumulates. Every step compares rewards, every
metric (scalars and per-satellite arrays), the next state and observation.

Tolerance rtol = 1e-4 (JAX float32, reference float64). Absolute slack, only
where a quantity is a difference of larger terms or crosses 0, is rtol × the
size of those terms: utilities b − p (size b + p), the "delta" reward
U' − U'_last (size U' + U'_last + w·|ΔR|), dB values near 0 dB (size 10 dB),
cos φ (0.01: absolute 1e-6 near 0, at high elevation),
reputations (β·cap, one step's change; the elected candidate may differ only
between reputations tied within that), and the beam gain deep in the
sidelobes (1 % of the user's main-lobe gain: the float32 Bessel bracket
cancels there).

The ledger: each rollout starts from a non-zero chain (reputations and block income
not yet counted in a utility) and, every ``settle_every`` steps, the online satellite with
the highest reputation writes a block (B_s credited, its reputation reset to 0), done to the
JAX state with :mod:`jaxsg.consensus` and mirrored on the reference's dict, so the
utility U_s = U'_s + B_s (eq. 9) and the carried reputations are compared too.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg
from jaxsg.consensus import reputation_reset, select_aggregator
from jaxsg.reference.spectrum import (
    DRAW_FIELDS,
    LEDGER_FIELDS,
    USER_FIELDS,
    SpectrumReference,
    hex_cells_reference,
)
from jaxsg.scenarios.spectrum import SpectrumLedger, hex_cells

RTOL = 1e-4

SMALL = dict(num_satellites=3, num_cells=7, users_per_satellite=12, num_channels=2,
             slots_per_channel=2, num_price_levels=8, num_power_levels=3, horizon=25)
DEFAULT = dict(num_satellites=10, users_per_satellite=100, horizon=12)


@functools.cache
def compiled_rollout(sizes):
    env, _ = jaxsg.make("spectrum", **dict(sizes))
    policy = jaxsg.random_policy(env)

    # XLA CPU optimisation level 0 halves the compile time; the float32 arithmetic is the same
    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0},
                       static_argnums=3)
    def run(params, key, ledger, settle_every):
        k_reset, k_roll = jax.random.split(key)
        obs0, state0 = env.reset_with_ledger(k_reset, params, ledger)

        def body(carry, xs):
            obs, state = carry
            t, key = xs
            # block settlement between steps: the online node with the highest reputation
            agg = select_aggregator(state.reputation, state.online)
            agg = jnp.where((t + 1) % settle_every == 0, agg, -1)
            hit = jax.nn.one_hot(agg, env.num_satellites, dtype=jnp.float32)
            state = state.replace(reputation=reputation_reset(state.reputation, agg),
                                  block_income=state.block_income + params.block_reward * hit)
            k_act, k_step = jax.random.split(key)
            action = policy(k_act, obs, state, params)
            obs2, state2, reward, _, info = env.step_env(k_step, state, action, params)
            state2 = state2.replace(step=state.step + 1)
            return (obs2, state2), (action, reward, info, obs2, state2, agg)

        steps = env.horizon - 1
        xs = (jnp.arange(steps), jax.random.split(k_roll, steps))
        _, traj = jax.lax.scan(body, (obs0, state0), xs)
        return obs0, state0, traj

    return env, run


def assert_close(name, got, want, slack=0.0):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
    err = np.abs(got - want)
    bad = err > RTOL * np.abs(want) + RTOL * np.asarray(slack)
    assert not np.any(bad), (
        f"{name}: max err {err.max():.3g}; ref {got[bad][:4]} jax {want[bad][:4]}")


def check_candidate(ref_id, jax_id, new, state, rep_scale, where):
    """The elected id must match, except between reputations tied up to rounding (sums of
    β·n in float32 vs float64): then both must be online and tied in the reference."""
    ref_id, jax_id = int(ref_id), int(jax_id)
    if ref_id == jax_id:
        return
    assert ref_id >= 0 and jax_id >= 0, (where, ref_id, jax_id)
    online, rep = state["online"], new["reputation"]
    assert online[ref_id] and online[jax_id], where
    assert abs(rep[ref_id] - rep[jax_id]) <= RTOL * rep_scale, (where, rep[ref_id], rep[jax_id])


def check_equivalence(sizes, seed, settle_every=4, **overrides):
    env, run = compiled_rollout(tuple(sorted(sizes.items())))
    params = env.make_params(**overrides)
    s = env.num_satellites
    rng = np.random.default_rng(seed)
    ledger = {"reputation": rng.uniform(-1.0, 3.0, s),
              "block_income": np.full(s, 2.0 * params.block_reward),
              "block_income_counted": np.where(np.arange(s) % 2 == 0, params.block_reward,
                                               2.0 * params.block_reward)}
    ledger = {k: v.astype(np.float32) for k, v in ledger.items()}
    obs0, state0, traj = jax.device_get(
        run(params, jax.random.PRNGKey(seed), SpectrumLedger(**ledger), settle_every))
    actions, rewards, infos, next_obs, next_states, aggs = traj
    ref = SpectrumReference.from_env(env, params)
    users = {k: np.asarray(getattr(state0, k)) for k in USER_FIELDS}
    draws = {k: np.asarray(getattr(state0, k)) for k in DRAW_FIELDS}
    obs, state = ref.reset(users, draws, ledger=ledger)
    for key in LEDGER_FIELDS:
        assert_close(f"reset ledger {key}", state[key], getattr(state0, key))
    # deep in the sidelobes (−40 dB and below) the float32 Bessel bracket cancels: slack is
    # 1 % of the user's main-lobe gain (what matters for the interference sums)
    peak = np.max(state["link_gain"], axis=-1, keepdims=True)
    assert_close("link_gain", state["link_gain"], state0.link_gain, slack=0.01 * peak)
    # a cosine of unit vectors: float32 resolves it to ~1e-7 absolute (near 0 at high ε)
    assert_close("cos_phi", state["cos_phi"], state0.cos_phi, slack=0.01)
    assert_close("power_req_w", state["power_req_w"], state0.power_req_w)
    assert_close("reset obs", obs["satellite"], obs0["satellite"])
    leases = 0.0
    rep_scale = params.reputation_coeff * ref.cap  # reputations are sums of ±β·n that cancel
    blocks = 0
    for t in range(env.horizon - 1):
        where = f"[t={t}]"
        if (t + 1) % settle_every == 0:  # the reference elects and settles on its own ledger
            online = state["online"]
            ref_agg = int(np.argmax(np.where(online, state["reputation"], -np.inf))) \
                if online.any() else -1
            check_candidate(ref_agg, aggs[t], state, state, rep_scale, f"settle {where}")
            if aggs[t] >= 0:
                state = dict(state, reputation=state["reputation"].copy(),
                             block_income=state["block_income"].copy())
                state["reputation"][aggs[t]] = 0.0
                state["block_income"][aggs[t]] += params.block_reward
                blocks += 1
        action = {"satellite": np.asarray(actions["satellite"][t])}
        nxt = {k: np.asarray(getattr(next_states, k)[t]) for k in DRAW_FIELDS}
        obs, new, reward, info = ref.transition(state, action, nxt)
        info_jax = {k: np.asarray(v[t]) for k, v in infos.items()}
        size = np.abs(new["last_revenue"]) + np.abs(state["last_revenue"]) + \
            params.reputation_weight * np.abs(new["reputation"] - state["reputation"]) + \
            params.block_reward
        assert_close(f"reward {where}", reward["satellite"], rewards["satellite"][t], slack=size)
        assert set(info) | {"final_observation"} >= set(info_jax) - {"final_observation"}
        slack = {"user_utility_mean": info["budget_mean"] + info["price_mean"] + 10.0,
                 "honest_utility_mean": info["budget_mean"] + info["price_mean"] + 10.0,
                 "sinr_mean_db": 10.0, "sinr_real_leased_db": 10.0,
                 "reputation_mean": rep_scale, "reputation": rep_scale}
        for key in sorted(info):
            if key == "aggregator_candidate":
                check_candidate(info[key], info_jax[key], new, state, rep_scale, where)
                continue
            assert_close(f"metric {key} {where}", info[key], info_jax[key],
                         slack=slack.get(key, 0.0))
        for key in ("price_level", "power_level", "last_revenue", "last_leases",
                    "last_mean_budget", "block_income", "block_income_counted"):
            assert_close(f"next {key} {where}", new[key], getattr(next_states, key)[t])
        assert_close(f"next reputation {where}", new["reputation"],
                     next_states.reputation[t], slack=rep_scale)
        assert_close(f"next last_sinr_db {where}", new["last_sinr_db"],
                     next_states.last_sinr_db[t], slack=10.0)
        feature = np.zeros_like(obs["satellite"])
        feature[:, 4] = 1.0
        assert_close(f"next obs {where}", obs["satellite"], next_obs["satellite"][t],
                     slack=feature)
        leases += info["leases_total"]
        state = new
    assert leases > 0  # the episode exercised the leasing rule
    assert blocks > 0  # and the ledger's settlement


def test_hex_cells_match_and_colouring_is_proper():
    for c in (1, 7, 12, 19):
        xy, colour = hex_cells(c)
        rxy, rcolour = hex_cells_reference(c)
        np.testing.assert_allclose(xy, rxy, atol=1e-12)
        np.testing.assert_array_equal(colour, rcolour)
        d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
        neighbours = np.abs(d - 1.0) < 1e-9
        assert not np.any(neighbours & (colour[:, None] == colour[None, :]))


@pytest.mark.parametrize("seed", [0, 1])
def test_reference_matches_jax_small(seed):
    check_equivalence(SMALL, seed)


def test_reference_matches_jax_malicious_heavy_with_reputation_reward():
    check_equivalence(SMALL, 2, malicious_fraction=0.5, reputation_weight=2.0,
                      visibility=0.6, velocity_mps=3000.0, cochannel_factor=1.0,
                      elevation_min_rad=math.radians(15.0), elevation_max_rad=math.radians(35.0),
                      target_rx_power_w=2e-14)


def test_reference_matches_jax_utility_reward():
    """reward="utility": U_s = U'_s + B_s (eq. 9) with blocks written every 3 steps."""
    check_equivalence(dict(SMALL, reward="utility"), 5, settle_every=3)


def test_reference_matches_jax_ici_delta_price_only():
    sizes = dict(SMALL, price_only=True, doppler_model="ici", reward="delta")
    check_equivalence(sizes, 3, rician_k=0.0, cfo_residual=0.2)


def test_reference_matches_jax_default_sizes():
    check_equivalence(DEFAULT, 4)
