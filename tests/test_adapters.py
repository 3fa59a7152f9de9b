"""Scenario adapters: what each scenario gives the generic learners (moved here from
agents.federated, agents.maml and the spectrum env class)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg
from agents import adapters
from agents.adapters import sgin, spectrum

C = 6
sgin_weights = jax.jit(sgin.sgin_weights)


def _pos(key, c=C, lo=0.1, hi=10.0):
    return np.random.default_rng(key).uniform(lo, hi, size=(c,)).astype(np.float32)


def test_sgin_weights_sum_to_one_and_follow_the_decision():
    for seed in range(5):
        kd, kl = 2 * seed, 2 * seed + 1
        bits, dist = _pos(kd, lo=1e6, hi=3e7), _pos(kl, lo=5e5, hi=2e6)
        w = sgin_weights(bits, dist)
        chex.assert_shape(w, (C,))
        assert np.all(np.asarray(w) >= 0)
        np.testing.assert_allclose(float(jnp.sum(w)), 1.0, rtol=1e-6)
        # Decision: each term a fraction of its own total, averaged 50/50 (unit-free).
        b, d = np.asarray(bits, np.float64), np.asarray(dist, np.float64)
        expected = 0.5 * b / b.sum() + 0.5 * d / d.sum()
        np.testing.assert_allclose(w, expected, rtol=1e-5)
        # Changing the distance unit (m -> km) leaves the weights unchanged.
        np.testing.assert_allclose(sgin_weights(bits, dist / 1e3), w, rtol=1e-5)
    # More task bits (distance equal) -> more weight; longer distance -> more weight.
    w = sgin_weights(jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 1.0, 1.0]))
    assert w[0] < w[1] < w[2]
    w = sgin_weights(jnp.array([1.0, 1.0]), jnp.array([1.0, 4.0]))
    np.testing.assert_allclose(w, [0.5 * 0.5 + 0.5 * 0.2, 0.5 * 0.5 + 0.5 * 0.8], rtol=1e-6)
    # Degenerate totals fall back to uniform for that term.
    np.testing.assert_allclose(sgin_weights(jnp.zeros(4), jnp.zeros(4)), 0.25)


def test_sgin_sample_tasks_produces_valid_params():
    env, base = jaxsg.make("sgin", num_mbs=2, users_per_mbs=3, num_leo=2, num_channels=3)
    regimes = np.array([[1e6, 4e6], [10e6, 30e6], [5e6, 5e6]])
    tasks = sgin.sample_tasks(jax.random.PRNGKey(0), base, 16, regimes, (1.0, 50.0))
    for leaf in jax.tree.leaves(tasks):
        assert leaf.shape[0] == 16
    lo, hi, v = map(np.asarray, (tasks.arrival_min_bits, tasks.arrival_max_bits, tasks.v_weight))
    assert np.all(lo <= hi) and np.all(lo >= 0)
    pairs = {tuple(r) for r in np.stack([lo, hi], -1).tolist()}
    assert pairs <= {tuple(r) for r in regimes.tolist()} and len(pairs) >= 2
    assert np.all((v >= 1.0) & (v <= 50.0)) and np.std(v) > 0
    np.testing.assert_allclose(tasks.bandwidth_hz, base.bandwidth_hz)  # other fields untouched
    env.validate_params(tasks)  # the env's own range/order checks, over the stacked task axis

    # Continuous family: bounds (2,) -> sorted draws inside them.
    cont = sgin.sample_tasks(jax.random.PRNGKey(1), base, 16, (2e6, 20e6), (5.0, 5.0))
    lo, hi = np.asarray(cont.arrival_min_bits), np.asarray(cont.arrival_max_bits)
    assert np.all(2e6 <= lo) and np.all(lo <= hi) and np.all(hi <= 20e6 * (1 + 1e-6))
    np.testing.assert_allclose(cont.v_weight, 5.0)
    env.validate_params(cont)

    with pytest.raises(ValueError, match="arrival_ranges"):
        sgin.sample_tasks(jax.random.PRNGKey(0), base, 4, (5e6, 1e6), (1.0, 2.0))
    with pytest.raises(ValueError, match="v_range"):
        sgin.sample_tasks(jax.random.PRNGKey(0), base, 4, (1e6, 5e6), (-1.0, 2.0))


def test_spectrum_settle_block_credits_and_resets_the_aggregator():
    env, params = jaxsg.make("spectrum", num_satellites=3, users_per_satellite=20,
                             num_channels=2, slots_per_channel=4, num_price_levels=10,
                             num_power_levels=3)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    state = state.replace(reputation=jnp.array([1.0, 3.0, 2.0]))
    settled = spectrum.settle_block(env, state, jnp.int32(1), params)
    np.testing.assert_allclose(settled.reputation, [1.0, 0.0, 2.0])
    np.testing.assert_allclose(settled.block_income, [0.0, params.block_reward, 0.0])
    np.testing.assert_allclose(spectrum.settle_block(env, state, jnp.int32(-1), params).reputation,
                               [1.0, 3.0, 2.0])
    # the adapter's election reads the ledger (mean over episodes) and episode 0's online flags
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), state.replace(online=jnp.array([1, 0, 1],
                                                                                     bool)))
    weights, who, ledger = adapters.get("spectrum").election(env, batch, params)
    assert int(who) == 2  # satellite 1 has the top reputation but is offline
    np.testing.assert_allclose(weights, [1.0, 0.0, 1.0])
    np.testing.assert_allclose(ledger, [1.0, 3.0, 2.0])
    after = adapters.get("spectrum").settle(env, batch, who, params)
    np.testing.assert_allclose(after.reputation, [[1.0, 3.0, 0.0]] * 2)


def test_for_env_finds_each_scenario_and_unknown_names_fail():
    for name in adapters.SCENARIOS:
        env, _ = jaxsg.make(name)
        assert adapters.for_env(env) is adapters.get(name)
        assert adapters.for_env(env).learning_class(env) in env.agent_classes
    with pytest.raises(ValueError, match="adapters exist for"):
        adapters.get("nope")


def test_sgin_posted_price_and_federated_weights_from_observations():
    env, params = jaxsg.make("sgin", num_mbs=2, users_per_mbs=3, num_leo=2, num_channels=3)
    ad = adapters.for_env(env)
    fixed = ad.fixed_actions(env, params)
    np.testing.assert_allclose(fixed["leader"], np.full((1, 6), params.price))
    obs, _ = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), 2),
                                                   params)
    w = ad.federated_weights(env, obs["follower"])
    chex.assert_shape(w, (6,))
    np.testing.assert_allclose(float(jnp.sum(w)), 1.0, rtol=1e-5)


def test_env_defaults_for_observation_slices_and_global_state():
    env, params = jaxsg.make("edge_assoc", num_bs=3, num_users=6, num_producers=2, horizon=3)
    d = env.observation_space("bs").shape[-1]
    assert env.observation_slices("bs") == {"obs": slice(0, d)}
    _, state = env.reset(jax.random.PRNGKey(0), params)
    g = jax.jit(env.global_state)(state, params)
    assert g.ndim == 1 and g.dtype == jnp.float32 and np.isfinite(np.asarray(g)).all()
    size = sum(np.size(x) for x in jax.tree.leaves(state)) - 1  # all but the step counter
    assert g.shape == (size,)
