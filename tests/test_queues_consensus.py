"""Tests for jaxsg.queues and jaxsg.consensus (values from docs/physics.md and by hand)."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsg import consensus as cs
from jaxsg import queues as qu

# ---------------------------------------------------------------------------
# queues
# ---------------------------------------------------------------------------


def test_queue_update_hand_values():
    q = jnp.array([5.0, 5.0, 5.0, 5.0, 0.0])
    served = jnp.array([3.0, 7.0, -2.0, 5.0, 4.0])
    arrivals = jnp.array([1.0, 1.0, 1.0, 1.0, 2.5])
    q_next, se = qu.queue_update(q, served, arrivals)
    chex.assert_trees_all_close(se, jnp.array([3.0, 5.0, 0.0, 5.0, 0.0]))
    chex.assert_trees_all_close(q_next, jnp.array([3.0, 1.0, 6.0, 1.0, 2.5]))
    assert q_next.dtype == jnp.float32 and se.dtype == jnp.float32


def test_queue_update_int_inputs_promote_to_float32():
    q_next, se = qu.queue_update(jnp.array([4, 2]), jnp.array([1, 5]), jnp.array([0, 3]))
    assert q_next.dtype == jnp.float32
    chex.assert_trees_all_close(q_next, jnp.array([3.0, 3.0]))
    chex.assert_trees_all_close(se, jnp.array([1.0, 2.0]))


def test_queue_never_negative_and_served_le_q_random():
    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    shape = (2000, 16)
    q = jax.random.uniform(k1, shape, maxval=10.0)
    served = jax.random.uniform(k2, shape, minval=-5.0, maxval=20.0)  # negatives and > q
    arrivals = jax.random.uniform(k3, shape, maxval=3.0)
    q_next, se = qu.queue_update(q, served, arrivals)
    assert bool(jnp.all(q_next >= 0.0))
    assert bool(jnp.all(se <= q))
    assert bool(jnp.all(se >= 0.0))
    np.testing.assert_allclose(q_next, q - se + arrivals, rtol=1e-6, atol=1e-6)
    # reference form max(Q - D, 0) + A for D >= 0
    qn, dn, an = np.asarray(q), np.asarray(served), np.asarray(arrivals)
    ref = np.maximum(qn - np.maximum(dn, 0.0), 0.0) + an
    np.testing.assert_allclose(q_next, ref, rtol=1e-5, atol=1e-5)
    # a long random run never goes negative
    def step(qc, key):
        ka, kb = jax.random.split(key)
        d = jax.random.uniform(ka, qc.shape, minval=-2.0, maxval=8.0)
        a = jax.random.uniform(kb, qc.shape, maxval=4.0)
        qn, s = qu.queue_update(qc, d, a)
        return qn, (qn.min(), jnp.all(s <= qc))

    _, (mins, ok) = jax.lax.scan(step, jnp.zeros(64), jax.random.split(key, 200))
    assert float(mins.min()) >= 0.0 and bool(ok.all())


def test_queue_update_negative_q_treated_as_empty():
    q_next, se = qu.queue_update(-3.0, 2.0, 1.0)
    assert float(se) == 0.0 and float(q_next) == 1.0


def test_queue_update_broadcasting_shapes():
    q = jnp.ones((3, 4)) * 5.0
    served = jnp.array([1.0, 2.0, 6.0, 0.0])  # (4,)
    arrivals = 2.0  # scalar
    q_next, se = qu.queue_update(q, served, arrivals)
    chex.assert_shape([q_next, se], (3, 4))
    chex.assert_trees_all_close(q_next[0], jnp.array([6.0, 5.0, 2.0, 7.0]))


def _central_fd(f, x, eps):
    x = np.asarray(x, np.float32)
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        g.flat[i] = (float(f(jnp.asarray(x + e))) - float(f(jnp.asarray(x - e)))) / (2 * eps)
    return g


def test_queue_update_grad_matches_fd_away_from_kinks():
    q = jnp.array([5.0, 5.0, 4.0, 8.0])
    served = jnp.array([3.0, 7.0, 1.5, 2.0])  # interior (0 < D < Q) and clipped (D > Q)
    arrivals = jnp.array([1.0, 2.0, 0.5, 3.0])
    w = jnp.array([1.0, -2.0, 0.5, 3.0])  # weights to make a scalar loss

    def loss(q, served, arrivals):
        qn, se = qu.queue_update(q, served, arrivals)
        return jnp.sum(w * qn) + 0.3 * jnp.sum(se)

    grads = jax.grad(loss, argnums=(0, 1, 2))(q, served, arrivals)
    for g in grads:
        assert bool(jnp.all(jnp.isfinite(g)))
    # analytic: interior -> dqn/dq=1, dqn/dD=-1; clipped (D>Q) -> dqn/dq=0, dqn/dD=0
    interior = np.array([1.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(grads[0], np.asarray(w) * interior + 0.3 * (1 - interior), atol=1e-6)
    np.testing.assert_allclose(grads[1], (-np.asarray(w) + 0.3) * interior, atol=1e-6)
    np.testing.assert_allclose(grads[2], w, atol=1e-6)
    fd = [
        _central_fd(lambda x: loss(x, served, arrivals), q, 1e-2),
        _central_fd(lambda x: loss(q, x, arrivals), served, 1e-2),
        _central_fd(lambda x: loss(q, served, x), arrivals, 1e-2),
    ]
    for g, f in zip(grads, fd):
        np.testing.assert_allclose(g, f, atol=2e-3)


def test_lyapunov_values_and_axis():
    q = jnp.array([[3.0, 4.0], [1.0, 2.0]])
    chex.assert_trees_all_close(qu.lyapunov(q), jnp.array([12.5, 2.5]))
    chex.assert_shape(qu.lyapunov(q), (2,))
    chex.assert_trees_all_close(qu.lyapunov(q, axis=None), jnp.asarray(15.0))
    chex.assert_trees_all_close(qu.lyapunov(q, axis=0), jnp.array([5.0, 10.0]))
    chex.assert_trees_all_close(qu.lyapunov_drift(q, q + 1.0), jnp.array([8.0, 4.0]))
    # gradient of L is q
    chex.assert_trees_all_close(jax.grad(lambda x: qu.lyapunov(x, axis=None))(q), q)


def test_drift_plus_penalty_reward_values_and_grad():
    r = qu.drift_plus_penalty_reward(2.0, 3.0, -1.0, 10.0)
    chex.assert_trees_all_close(r, jnp.asarray(-4.0))
    q = jnp.array([1.0, 4.0, 0.0])
    served = jnp.array([2.0, 0.5, 3.0])
    util = jnp.array([-1.0, 2.0, 0.25])
    v = jnp.asarray(5.0)
    chex.assert_trees_all_close(
        qu.drift_plus_penalty_reward(q, served, util, v), jnp.array([-3.0, 12.0, 1.25])
    )
    f = lambda q, s, u, v: jnp.sum(qu.drift_plus_penalty_reward(q, s, u, v))
    gq, gs, gu, gv = jax.grad(f, argnums=(0, 1, 2, 3))(q, served, util, v)
    chex.assert_trees_all_close(gq, served)
    chex.assert_trees_all_close(gs, q)
    chex.assert_trees_all_close(gu, jnp.full(3, 5.0))
    chex.assert_trees_all_close(gv, jnp.sum(util))
    np.testing.assert_allclose(gq, _central_fd(lambda x: f(x, served, util, v), q, 1e-2), atol=2e-3)
    np.testing.assert_allclose(gs, _central_fd(lambda x: f(q, x, util, v), served, 1e-2), atol=2e-3)
    # broadcasting (B, N) with per-batch V
    out = qu.drift_plus_penalty_reward(jnp.ones((7, 5)), jnp.ones(5), 0.0, jnp.ones((7, 1)))
    chex.assert_shape(out, (7, 5))


def test_queues_jit_equals_eager_and_vmap():
    key = jax.random.PRNGKey(3)
    q, d, a = jax.random.uniform(key, (3, 8, 6), maxval=5.0)
    eager = qu.queue_update(q, d, a)
    jitted = jax.jit(qu.queue_update)(q, d, a)
    chex.assert_trees_all_close(eager, jitted)
    vm = jax.vmap(qu.queue_update)(q, d, a)
    chex.assert_trees_all_close(eager, vm)
    chex.assert_trees_all_close(jax.jit(qu.lyapunov)(q), qu.lyapunov(q))
    chex.assert_trees_all_close(jax.vmap(qu.lyapunov)(q), qu.lyapunov(q))


# ---------------------------------------------------------------------------
# SGIN privacy overhead
# ---------------------------------------------------------------------------

SGIN_ARGS = {
    "model_bits": 1e6, "f_mbs_hz": 6e9, "delta": 0.5, "num_mbs": 4, "num_dt_total": 48,
    "r_up_bps": 5e9, "r_down_bps": 1e10, "block_bits": 4e6, "f_verify_hz": 2e9,
}


def test_sgin_privacy_overhead_spec_values():
    c1, c2, c3, total = cs.sgin_privacy_overhead(**SGIN_ARGS)
    np.testing.assert_allclose(c1, 1.667e-4, rtol=1e-3)
    np.testing.assert_allclose(c2, 2.0e-4, rtol=1e-3)
    np.testing.assert_allclose(c3, 3.117e-3, rtol=1e-3)
    np.testing.assert_allclose(total, 3.484e-3, rtol=1e-3)
    for x in (c1, c2, c3, total):
        assert x.dtype == jnp.float32 and x.shape == ()


def test_sgin_privacy_overhead_verifier_axis():
    # slowest verifier (1e9) gates: 4e6 / 1e9 = 4e-3
    args = dict(SGIN_ARGS, f_verify_hz=jnp.array([2e9, 4e9, 1e9]))
    out = cs.sgin_privacy_overhead(**args)
    np.testing.assert_allclose(out.c3, 1.117e-3 + 4e-3, rtol=1e-3)
    # mask out the slow one -> gated by 2e9 again
    out_m = cs.sgin_privacy_overhead(**args, verifier_mask=jnp.array([True, True, False]))
    np.testing.assert_allclose(out_m.c3, 3.117e-3, rtol=1e-3)
    # verify_cycles_per_bit scales the verification term
    out_v = cs.sgin_privacy_overhead(**dict(SGIN_ARGS, verify_cycles_per_bit=2.0))
    np.testing.assert_allclose(out_v.c3, 1.117e-3 + 4e-3, rtol=1e-3)
    # batch: (B,) blocks with a (B, V) verifier matrix and per-batch delta
    blocks = jnp.array([4e6, 8e6])
    f = jnp.array([[2e9, 4e9], [4e9, 8e9]])
    delta = jnp.array([0.5, 1.0])
    out_b = cs.sgin_privacy_overhead(
        1e6, 6e9, delta, 4, 48, 5e9, 1e10, blocks, f
    )
    chex.assert_shape(list(out_b), (2,))
    # second row: C2 = 1*2*1e6/5e9 = 4e-4; C3 = 1*log2(48)*8e6/1e10 + 8e6/4e9
    c3_row1 = np.log2(48.0) * 8e6 / 1e10 + 2e-3
    np.testing.assert_allclose(out_b.c2, [2e-4, 4e-4], rtol=1e-4)
    np.testing.assert_allclose(out_b.c3, [3.117e-3, c3_row1], rtol=1e-3)


def test_sgin_privacy_overhead_jit_vmap_grad():
    f = jax.jit(cs.sgin_privacy_overhead)
    chex.assert_trees_all_close(
        f(**SGIN_ARGS), cs.sgin_privacy_overhead(**SGIN_ARGS), rtol=1e-6
    )
    f_mbs = jnp.array([3e9, 5e9, 6e9, 1e10])
    vm = jax.vmap(lambda fm: cs.sgin_privacy_overhead(**dict(SGIN_ARGS, f_mbs_hz=fm)).total)(f_mbs)
    np.testing.assert_allclose(vm, 1e6 / f_mbs + 2e-4 + 3.117e-3, rtol=1e-3)
    # dC/df_MBS = -|W|/f^2 ; dC/ddelta = log2 N |W|/r_up + log2(MN) S_B / r_down
    g = jax.grad(lambda fm: cs.sgin_privacy_overhead(**dict(SGIN_ARGS, f_mbs_hz=fm)).total)(6e9)
    np.testing.assert_allclose(g, -1e6 / 36e18, rtol=1e-3)
    gd = jax.grad(lambda d: cs.sgin_privacy_overhead(**dict(SGIN_ARGS, delta=d)).total)(0.5)
    np.testing.assert_allclose(gd, 2 * 1e6 / 5e9 + np.log2(48) * 4e6 / 1e10, rtol=1e-3)


# ---------------------------------------------------------------------------
# DPoS (DTWN eq. 6)
# ---------------------------------------------------------------------------


def test_dpos_stakes():
    s = cs.dpos_stakes(jnp.array([1.0, 3.0, 0.0, 4.0]), 100.0)
    chex.assert_trees_all_close(s, jnp.array([12.5, 37.5, 0.0, 50.0]))
    # no data anywhere: equal split, sum preserved, no NaN
    s0 = cs.dpos_stakes(jnp.zeros(4), 100.0)
    chex.assert_trees_all_close(s0, jnp.full(4, 25.0))
    # batched with per-batch s_ini
    sb = cs.dpos_stakes(jnp.array([[1.0, 1.0], [1.0, 3.0]]), jnp.array([10.0, 8.0]))
    chex.assert_trees_all_close(sb, jnp.array([[5.0, 5.0], [2.0, 6.0]]))
    g = jax.grad(lambda d: cs.dpos_stakes(d, 1.0)[0])(jnp.array([1.0, 3.0]))
    chex.assert_tree_all_finite(g)
    chex.assert_trees_all_close(g, jnp.array([3.0 / 16.0, -1.0 / 16.0]))


def test_dpos_elect_hand_and_ties():
    idx, mask = cs.dpos_elect(jnp.array([0.1, 5.0, 3.0, 5.0, 2.0]), 3)
    np.testing.assert_array_equal(idx, [1, 3, 2])  # tie 5 = 5 -> lower index first
    np.testing.assert_array_equal(mask, [False, True, True, True, False])
    assert idx.dtype == jnp.int32 and mask.dtype == jnp.bool_
    # stake-weighted ballots: 3 voters, 4 candidates
    votes = jnp.array([[1.0, 0, 0, 1], [0, 1, 0, 0], [0, 1, 1, 0]])
    stakes = jnp.array([10.0, 4.0, 5.0])  # tallies: [10, 9, 5, 10]
    chex.assert_trees_all_close(cs.dpos_tally(votes, stakes), jnp.array([10.0, 9.0, 5.0, 10.0]))
    idx2, mask2 = cs.dpos_elect(votes, 2, stakes=stakes)
    np.testing.assert_array_equal(idx2, [0, 3])
    np.testing.assert_array_equal(mask2, [True, False, False, True])
    with pytest.raises(ValueError):
        cs.dpos_elect(jnp.ones(3), 4)


def test_dpos_elect_picks_top_k_random():
    key = jax.random.PRNGKey(7)
    tally = jax.random.uniform(key, (500, 9))
    k = 4
    elect = jax.jit(functools.partial(cs.dpos_elect, num_producers=k))
    idx, mask = elect(tally)
    chex.assert_shape(idx, (500, k))
    chex.assert_shape(mask, (500, 9))
    ref = np.argsort(-np.asarray(tally), axis=-1)[:, :k]
    np.testing.assert_array_equal(idx, ref)
    assert bool(jnp.all(mask.sum(-1) == k))
    # every elected tally >= every non-elected tally
    t = np.asarray(tally)
    m = np.asarray(mask)
    min_in = np.where(m, t, np.inf).min(-1)
    max_out = np.where(m, -np.inf, t).max(-1)
    assert np.all(min_in >= max_out)
    # vmap == batched
    idx_v, mask_v = jax.vmap(lambda t: cs.dpos_elect(t, k))(tally)
    np.testing.assert_array_equal(idx_v, idx)
    np.testing.assert_array_equal(mask_v, mask)


def test_dpos_award():
    c = cs.dpos_award(jnp.array([1.0, 2.0, 3.0]), jnp.array([True, False, True]), 0.5)
    chex.assert_trees_all_close(c, jnp.array([1.5, 2.0, 3.5]))


# ---------------------------------------------------------------------------
# DTWN round time (eq. 12-17)
# ---------------------------------------------------------------------------

DTWN_KW = {
    "block_bits": 2e6, "cycles_per_sample": 1e6, "agg_cycles_per_bit": 10.0, "model_bits": 1e6,
    "xi": 0.5, "num_producers": 2, "verify_cycles_per_bit": 100.0,
}


def test_dtwn_bs_load():
    assoc = jnp.array([0, 1, 0, 2, -1])  # last DT unassociated
    b = jnp.array([0.5, 1.0, 0.25, 1.0, 1.0])
    d = jnp.array([100.0, 200.0, 400.0, 50.0, 1000.0])
    trained, k, data = cs.dtwn_bs_load(assoc, b, d, num_bs=3)
    chex.assert_trees_all_close(trained, jnp.array([150.0, 200.0, 50.0]))
    chex.assert_trees_all_close(k, jnp.array([2.0, 1.0, 1.0]))
    chex.assert_trees_all_close(data, jnp.array([500.0, 200.0, 50.0]))
    tb, kb, _ = cs.dtwn_bs_load(jnp.stack([assoc, assoc]), b, d, 3)
    chex.assert_shape([tb, kb], (2, 3))


def test_dtwn_round_time_hand_value():
    # BS0: 1000 samples * 1e6 / 2e9 = 0.5 s ; BS1: 400*1e6/1e9 = 0.4 s          -> 0.5
    # local agg: K=[3,0]: 3*1e6*10/2e9 = 0.015                                   -> 0.015
    # transmit: 0.5*log2(2)*3*1e6/1e7 = 0.15 ; BS1 has K=0 and rate 0 -> 0 s    -> 0.15
    # block broadcast: 0.5*log2(2)*2e6/1e8 = 0.01
    # verify: max(2e6*100/2e9, 2e6*100/1e9) = 0.2
    out = cs.dtwn_round_time(
        trained_samples=jnp.array([1000.0, 400.0]),
        num_dts=jnp.array([3, 0]),
        f_cpu_hz=jnp.array([2e9, 1e9]),
        r_up_bps=jnp.array([1e7, 0.0]),
        r_down_bps=1e8,
        f_verify_hz=jnp.array([2e9, 1e9]),
        **DTWN_KW,
    )
    np.testing.assert_allclose(out.compute, 0.5, rtol=1e-5)
    np.testing.assert_allclose(out.local_agg, 0.015, rtol=1e-5)
    np.testing.assert_allclose(out.transmit, 0.15, rtol=1e-5)
    np.testing.assert_allclose(out.block_broadcast, 0.01, rtol=1e-5)
    np.testing.assert_allclose(out.block_verify, 0.2, rtol=1e-5)
    np.testing.assert_allclose(out.total, 0.875, rtol=1e-5)
    # paper's eq. 17 literally (no local aggregation)
    out17 = cs.dtwn_round_time(
        jnp.array([1000.0, 400.0]), jnp.array([3, 0]), jnp.array([2e9, 1e9]),
        jnp.array([1e7, 0.0]), 1e8, jnp.array([2e9, 1e9]), include_local_agg=False, **DTWN_KW,
    )
    np.testing.assert_allclose(out17.total, 0.86, rtol=1e-5)


def test_dtwn_round_time_producer_mask_and_batch():
    kw = dict(DTWN_KW)
    kw.pop("num_producers")
    f_cpu = jnp.array([2e9, 1e9, 4e9])
    mask = jnp.array([True, False, True])  # BS1 (slow verifier, slow R^D) is not a producer
    out = cs.dtwn_round_time(
        jnp.array([1000.0, 400.0, 0.0]), jnp.array([3.0, 1.0, 0.0]), f_cpu,
        jnp.array([1e7, 1e7, 1e7]), jnp.array([1e8, 1e6, 2e8]), f_cpu,
        producer_mask=mask, **kw,
    )
    # M = 3 -> log2 3 in transmit; Mp = 2 from the mask
    np.testing.assert_allclose(out.transmit, 0.5 * np.log2(3.0) * 3e6 / 1e7, rtol=1e-5)
    np.testing.assert_allclose(out.block_broadcast, 0.01, rtol=1e-5)
    np.testing.assert_allclose(out.block_verify, 0.1, rtol=1e-5)
    # batch of 4 rounds, per-BS CPU shared; vmap == batched == jit
    key = jax.random.PRNGKey(1)
    trained = jax.random.uniform(key, (4, 3), minval=100.0, maxval=1000.0)
    k = jnp.array([[3.0, 1.0, 2.0]] * 4)
    r_up = jnp.full((4, 3), 2e7)
    f = functools.partial(cs.dtwn_round_time, f_cpu_hz=f_cpu, r_down_bps=1e8,
                          f_verify_hz=f_cpu, **DTWN_KW)
    batched = f(trained, k, r_up_bps=r_up)
    chex.assert_shape(list(batched), (4,))
    vm = jax.vmap(lambda t, kk, r: f(t, kk, r_up_bps=r))(trained, k, r_up)
    chex.assert_trees_all_close(batched, vm, rtol=1e-6)
    jt = jax.jit(lambda t, kk, r: f(t, kk, r_up_bps=r))(trained, k, r_up)
    chex.assert_trees_all_close(batched, jt, rtol=1e-6)
    np.testing.assert_allclose(
        batched.compute, np.max(np.asarray(trained) * 1e6 / np.asarray(f_cpu), -1), rtol=1e-5
    )


def test_dtwn_round_time_grad_finite():
    def total(f_cpu, r_up, b):
        trained, k, _ = cs.dtwn_bs_load(jnp.array([0, 1, 1, 0]), b,
                                        jnp.array([100.0, 200.0, 300.0, 400.0]), 2)
        return cs.dtwn_round_time(trained, k, f_cpu, r_up, 1e8, f_cpu, **DTWN_KW).total

    f_cpu = jnp.array([2e9, 1e9])
    r_up = jnp.array([1e7, 2e7])
    b = jnp.array([0.5, 0.5, 1.0, 0.25])
    g = jax.grad(total, argnums=(0, 1, 2))(f_cpu, r_up, b)
    chex.assert_tree_all_finite(g)
    # BS1 trains 0.5*200 + 1*300 = 400 samples -> 0.4 s, BS0 trains 150 -> 0.075 s;
    # d compute / d b_j for DT j on BS1 = D_j * 1e6 / 1e9
    np.testing.assert_allclose(g[2], [0.0, 200e6 / 1e9, 300e6 / 1e9, 0.0], rtol=1e-4, atol=1e-9)


def test_dtwn_zero_rate_with_dts_is_inf():
    t = cs.dtwn_transmit_time(jnp.array([1.0, 0.0]), jnp.array([0.0, 0.0]), 1e6, 1.0, 4)
    assert np.isinf(t[0]) and t[1] == 0.0


# ---------------------------------------------------------------------------
# reputation & aggregator election (spectrum paper IV-D)
# ---------------------------------------------------------------------------


def test_reputation_update():
    rep = jnp.array([10.0, 10.0, 10.0, 0.0])
    n_normal = jnp.array([5, 5, 0, 2])
    n_mal = jnp.array([0, 2, 1, 0])
    out = cs.reputation_update(rep, n_normal, n_mal, 0.5)
    chex.assert_trees_all_close(out, jnp.array([12.5, 9.0, 9.5, 1.0]))
    out2 = cs.reputation_update(rep, n_normal, n_mal, 0.5, penalty_coeff=3.0)
    chex.assert_trees_all_close(out2, jnp.array([12.5, 4.0, 7.0, 1.0]))
    # broadcasting over a batch and jit
    ob = jax.jit(cs.reputation_update)(jnp.zeros((6, 4)), n_normal, n_mal, 1.0)
    chex.assert_shape(ob, (6, 4))
    g = jax.grad(lambda c: cs.reputation_update(rep, n_normal, n_mal, c).sum())(0.5)
    chex.assert_trees_all_close(g, jnp.asarray(5.0 - 2.0 - 1.0 + 2.0))


def test_select_aggregator_hand():
    rep = jnp.array([3.0, 9.0, 7.0, 9.0])
    assert int(cs.select_aggregator(rep, jnp.array([True, True, True, True]))) == 1
    assert int(cs.select_aggregator(rep, jnp.array([True, False, True, True]))) == 3
    assert int(cs.select_aggregator(rep, jnp.array([True, False, True, False]))) == 2
    assert int(cs.select_aggregator(rep, jnp.zeros(4, bool))) == -1
    # -inf reputations: the only online node is still chosen
    assert int(cs.select_aggregator(jnp.array([-jnp.inf, 1.0]), jnp.array([True, False]))) == 0
    # reset: -1 is a no-op
    chex.assert_trees_all_close(
        cs.reputation_reset(rep, jnp.int32(1)), jnp.array([3.0, 0.0, 7.0, 9.0])
    )
    chex.assert_trees_all_close(cs.reputation_reset(rep, jnp.int32(-1)), rep)


def test_select_aggregator_property_random():
    key = jax.random.PRNGKey(42)
    k1, k2, k3 = jax.random.split(key, 3)
    b, s = 20000, 8
    # integer reputations create many ties; p_online varies per draw (incl. none online)
    rep = jax.random.randint(k1, (b, s), -3, 4).astype(jnp.float32)
    p = jax.random.uniform(k2, (b, 1))
    online = jax.random.uniform(k3, (b, s)) < p
    idx = jax.jit(cs.select_aggregator)(rep, online)
    chex.assert_shape(idx, (b,))
    assert idx.dtype == jnp.int32
    any_on = np.asarray(online.any(-1))
    assert any_on.sum() > 1000 and (~any_on).sum() > 10  # both cases exercised
    idx_n, rep_n, on_n = np.asarray(idx), np.asarray(rep), np.asarray(online)
    assert np.all(idx_n[~any_on] == -1)
    rows = np.nonzero(any_on)[0]
    sel = idx_n[rows]
    assert np.all((sel >= 0) & (sel < s))
    assert np.all(on_n[rows, sel])  # the chosen node is online
    best = np.where(on_n, rep_n, -np.inf).max(-1)
    assert np.all(rep_n[rows, sel] == best[rows])  # with maximal reputation
    # ties -> lowest index among the online maximisers
    first = np.argmax(on_n & (rep_n == best[:, None]), axis=-1)
    assert np.all(sel == first[rows])
    # vmap == batched
    np.testing.assert_array_equal(jax.vmap(cs.select_aggregator)(rep, online), idx)


# ---------------------------------------------------------------------------
# PBFT
# ---------------------------------------------------------------------------


def test_pbft_messages():
    assert int(cs.pbft_messages(4)) == 24
    np.testing.assert_array_equal(
        cs.pbft_messages(jnp.array([1, 2, 3, 4, 7])), [0, 4, 12, 24, 84]
    )
    # phase decomposition of the spec: (n-1) + (n-1)^2 + n(n-1)
    n = np.arange(1, 20)
    np.testing.assert_array_equal(
        cs.pbft_messages(jnp.asarray(n)), (n - 1) + (n - 1) ** 2 + n * (n - 1)
    )


def test_pbft_latency():
    # n=4, m=1e3 bit, r=1e6 bit/s, t_v=1e-4 s, S_B=1e5 bit, d=1e-3 s
    out = cs.pbft_latency(4, 1e3, 1e6, 1e-4, block_bits=1e5, prop_delay_s=1e-3)
    np.testing.assert_allclose(out.pre_prepare, 3 * 0.1 + 1e-3 + 1e-4, rtol=1e-5)
    np.testing.assert_allclose(out.prepare, 3e-3 + 1e-3 + 3e-4, rtol=1e-5)
    np.testing.assert_allclose(out.commit, 4.3e-3, rtol=1e-5)
    np.testing.assert_allclose(out.total, 0.3097, rtol=1e-5)
    ob = cs.pbft_latency(4, 1e3, 1e6, 1e-4, block_bits=1e5, prop_delay_s=1e-3, broadcast=True)
    np.testing.assert_allclose(ob.total, 0.1011 + 2.3e-3 + 2.3e-3, rtol=1e-5)
    # n = 1: nothing to do
    o1 = cs.pbft_latency(1, 1e3, 1e6, 1e-4, prop_delay_s=1e-3)
    assert float(o1.total) == 0.0
    # batched over n, jit == eager, grad wrt rate finite and = -(bits)/r^2
    ns = jnp.array([4.0, 7.0, 10.0])
    f = functools.partial(cs.pbft_latency, message_bits=1e3, link_rate_bps=1e6, verify_time_s=1e-4)
    chex.assert_shape(list(f(ns)), (3,))
    chex.assert_trees_all_close(jax.jit(f)(ns), f(ns), rtol=1e-6)
    g = jax.grad(lambda r: cs.pbft_latency(4, 1e3, r, 1e-4).total)(1e6)
    np.testing.assert_allclose(g, -(3 * 3 * 1e3) / 1e12, rtol=1e-4)
    # latency grows with n
    tot = np.asarray(f(ns).total)
    assert np.all(np.diff(tot) > 0)


def test_consensus_jit_traces_once():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def g(rep, online, tally):
        return cs.select_aggregator(rep, online), cs.dpos_elect(tally, 2)

    rep = jnp.arange(5.0)
    for i in range(3):
        g(rep + i, rep > i, rep * i)
