"""Federated aggregation (agents/federated.py): SGIN eq. 34-35, FedAvg, grouped
and robust rules (the SGIN eq. 36 weights are tested in tests/test_adapters.py)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import federated as fl
from agents.adapters.sgin import sgin_weights as _sgin_weights

C = 6

# Jitted entry points: one compile per shape instead of op-by-op dispatch (keeps the file fast).
sgin_weights = jax.jit(_sgin_weights)
weighted_average = jax.jit(fl.weighted_average)
coordinate_median = jax.jit(fl.coordinate_median)
trimmed_mean = jax.jit(fl.trimmed_mean)
group_average = jax.jit(fl.group_average, static_argnums=3)
aggregate = jax.jit(fl.aggregate, static_argnums=0)


def _rng(key):
    # NumPy data (jax.random compiles slowly in eager mode on small CPUs); `key` is an int seed.
    return np.random.default_rng(key)


def _stacked(key, c=C):
    r = _rng(key)
    return {
        "dense": {"kernel": r.normal(size=(c, 3, 4)).astype(np.float32),
                  "bias": r.normal(size=(c, 4)).astype(np.float32)},
        "scale": r.normal(size=(c,)).astype(np.float32),
    }


def _global(key):
    return jax.tree.map(lambda x: x[0], _stacked(key, 1))


def _pos(key, c=C, lo=0.1, hi=10.0):
    return _rng(key).uniform(lo, hi, size=(c,)).astype(np.float32)


def test_weighted_average_and_fedavg_weights():
    stacked = _stacked(0)
    w = _pos(1)
    avg = weighted_average(stacked, w)
    chex.assert_trees_all_equal_shapes(avg, _global(0))
    wn = np.asarray(w) / np.asarray(w).sum()
    np.testing.assert_allclose(avg["scale"], np.sum(wn * np.asarray(stacked["scale"])), rtol=1e-5)
    np.testing.assert_allclose(
        avg["dense"]["kernel"], np.einsum("c,cij->ij", wn, stacked["dense"]["kernel"]), rtol=1e-5,
        atol=1e-6,
    )
    # Raw and normalised weights give the same average; all-zero weights -> plain mean.
    chex.assert_trees_all_close(avg, weighted_average(stacked, jnp.asarray(wn)), rtol=1e-5)
    chex.assert_trees_all_close(
        weighted_average(stacked, jnp.zeros(C)),
        jax.tree.map(lambda x: x.mean(0), stacked), rtol=1e-5, atol=1e-6,
    )
    # FedAvg through `aggregate` weights clients by data size, normalised to 1.
    cfg = fl.FederatedConfig(rule="fedavg")
    z = _global(5)
    chex.assert_trees_all_close(aggregate(cfg, z, stacked, w), avg, rtol=1e-5)
    chex.assert_trees_all_close(
        aggregate(cfg, z, stacked), jax.tree.map(lambda x: x.mean(0), stacked),
        rtol=1e-5, atol=1e-6,
    )


@pytest.mark.parametrize("rule", fl.RULES)
def test_aggregating_identical_clients_is_identity(rule):
    z = _global(2)
    stacked = fl.broadcast(z, C)
    chex.assert_trees_all_equal_shapes(stacked, _stacked(0))
    cfg = fl.FederatedConfig(rule=rule, step_size=0.7, trim_fraction=0.2)
    out = aggregate(cfg, z, stacked, _pos(3))
    chex.assert_trees_all_close(out, z, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_equal_dtypes(out, z)


def test_identity_for_every_averaging_function():
    z = _global(2)
    stacked = fl.broadcast(z, C)
    w = _pos(3)
    ids = jnp.array([0, 0, 1, 2, 2, 2])
    for out in [
        weighted_average(stacked, w),
        jax.tree.map(lambda g: g[2], group_average(stacked, w, ids, 3)[0]),
        coordinate_median(stacked),
        trimmed_mean(stacked, 0.34),
    ]:
        chex.assert_trees_all_close(out, z, rtol=1e-6, atol=1e-6)


def test_fl_update_eq35():
    stacked = _stacked(0)
    z = _global(9)
    bits, dist = _pos(1, lo=1e6, hi=3e7), _pos(2, lo=5e5, hi=2e6)
    w = sgin_weights(bits, dist)
    avg = weighted_average(stacked, w)
    # u = 1: the weighted average (the global model is replaced).
    chex.assert_trees_all_close(aggregate(fl.FederatedConfig(), z, stacked, w), avg,
                                rtol=1e-5, atol=1e-6)
    # General u: Z + u * sum_c w_c (Z_c - Z), computed by hand.
    u = 0.3
    by_hand = jax.tree.map(
        lambda g, s: g + u * jnp.tensordot(w, s - g[None], axes=(0, 0)), z, stacked
    )
    # The SGIN rule is `aggregate`'s fedavg with the eq. 36 weights (eq. 35).
    out = aggregate(fl.FederatedConfig(rule="fedavg", step_size=u), z, stacked, w)
    chex.assert_trees_all_close(out, by_hand, rtol=1e-5, atol=1e-6)
    # The update moves towards the clients (sign of eq. 34 fixed), not away.
    dist_before = jnp.abs(z["scale"] - avg["scale"])
    dist_after = jnp.abs(out["scale"] - avg["scale"])
    np.testing.assert_allclose(dist_after, (1 - u) * dist_before, rtol=1e-4)


def test_median_and_trimmed_mean_resist_an_outlier():
    key = 0
    honest = jax.tree.map(lambda x: 1.0 + 0.01 * x, _stacked(key, 7))
    attacked = jax.tree.map(lambda x: np.concatenate([x[:3], np.full_like(x[3:4], 1e6), x[4:]]),
                            honest)
    med = coordinate_median(attacked)
    tm = trimmed_mean(attacked, 0.15)  # k = 1 of 7 at each end
    mean = weighted_average(attacked, np.ones(7, np.float32))
    for out in (med, tm):
        chex.assert_trees_all_close(out, jax.tree.map(lambda x: np.ones(x.shape[1:]), honest),
                                    atol=0.05)
    assert float(mean["scale"]) > 1e5  # plain averaging is broken by the outlier
    # Exact values on a small vector.
    x = {"p": np.array([[5.0], [1.0], [100.0], [2.0], [3.0]], np.float32)}
    np.testing.assert_allclose(coordinate_median(x)["p"], [3.0])
    np.testing.assert_allclose(trimmed_mean(x, 0.2)["p"], [(2.0 + 3.0 + 5.0) / 3])
    np.testing.assert_allclose(trimmed_mean(x, 0.0)["p"], [111.0 / 5])
    # Eager (concrete trim fraction) agrees with the jitted (traced) call.
    np.testing.assert_allclose(fl.trimmed_mean(x, 0.2)["p"], [10.0 / 3], rtol=1e-6)
    with pytest.raises(ValueError, match="trim_fraction"):
        fl.trimmed_mean(x, 0.5)


def test_group_average_matches_hand_computation():
    # 5 DTs in 2 BSs (plus an empty third BS): DT -> BS -> MBS.
    x = {"p": np.array([[1.0, 0.0], [3.0, 2.0], [10.0, 4.0], [20.0, 8.0], [30.0, 12.0]],
                       np.float32)}
    w = np.array([2.0, 3.0, 1.0, 1.0, 2.0], np.float32)
    ids = np.array([0, 0, 1, 1, 1])
    bs0 = (2 * np.array([1.0, 0.0]) + 3 * np.array([3.0, 2.0])) / 5  # [2.2, 1.2]
    bs1 = (np.array([10.0, 4.0]) + np.array([20.0, 8.0]) + 2 * np.array([30.0, 12.0])) / 4
    groups, total, count = group_average(x, w, ids, 3)
    np.testing.assert_allclose(groups["p"], [bs0, bs1, [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(total, [5.0, 4.0, 0.0])
    np.testing.assert_allclose(count, [2.0, 3.0, 0.0])
    # BSs weighted by their total client weight: hierarchical FedAvg equals the flat average.
    two_level = weighted_average({"p": groups["p"][:2]}, total[:2])
    flat = weighted_average(x, w)
    np.testing.assert_allclose(two_level["p"], flat["p"], rtol=1e-6)
    np.testing.assert_allclose(flat["p"], (5 * bs0 + 4 * bs1) / 9, rtol=1e-6)
    # Works on nested pytrees with chex-checked shapes.
    out, _, _ = group_average(_stacked(1), _pos(2), np.arange(C) % 2, 2)
    chex.assert_trees_all_equal_shapes(out, fl.broadcast(_global(0), 2))
    chex.assert_tree_all_finite(out)


def test_periodic_aggregation_and_broadcast():
    cfg = fl.FederatedConfig(rule="fedavg", period=3)
    stacked = _stacked(0)
    z = _global(1)
    step_fn = jax.jit(lambda s, g, st: fl.maybe_aggregate(cfg, s, g, st))
    for step in range(6):
        g, st = step_fn(step, z, stacked)
        if (step + 1) % 3 == 0:
            mean = jax.tree.map(lambda x: x.mean(0), stacked)
            chex.assert_trees_all_close(g, mean, rtol=1e-5, atol=1e-6)
            chex.assert_trees_all_close(st, fl.broadcast(mean, C), rtol=1e-5, atol=1e-6)
        else:
            chex.assert_trees_all_equal(g, z)
            chex.assert_trees_all_equal(st, stacked)
    # vmapped over seeds (a leading seed axis on everything).
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *[_stacked(k) for k in range(4)])
    zs = jax.tree.map(lambda x: x[:, 0], batch)
    seeds = jax.vmap(lambda g, st: aggregate(cfg, g, st))(zs, batch)
    chex.assert_shape(seeds["dense"]["kernel"], (4, 3, 4))


def test_config_validation():
    with pytest.raises(ValueError, match="allowed values.*fedavg.*median.*trimmed_mean"):
        fl.FederatedConfig(rule="krum")
    cfg = fl.FederatedConfig()
    assert (cfg.rule, cfg.period, cfg.step_size) == ("fedavg", 10, 1.0)
    object.__setattr__(cfg, "rule", "bogus")  # bypass the constructor check
    with pytest.raises(ValueError, match="allowed values"):
        aggregate(cfg, _global(0), _stacked(0))
    with pytest.raises(ValueError, match="period"):
        fl.FederatedConfig(period=0)
    with pytest.raises(ValueError, match="step_size"):
        fl.FederatedConfig(step_size=0.0)
    with pytest.raises(ValueError, match="leading client axis"):
        weighted_average({"a": jnp.ones((3, 2)), "b": jnp.ones((4,))}, jnp.ones(3))
