"""Baselines and references for ``edge_assoc`` (Lu et al., IEEE TII 2021, Sec. V;
docs/edge_assoc.md, "References and baselines"), pure and jit-able; a fixed b is the
midpoint of [b_min, b_max] unless ``batch`` is given.
"""

from __future__ import annotations

import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from agents.heuristics import best_of, recorded

BATCH_GRID = 10  # b points of the best-constant grid, b_min..b_max
ASSOCIATIONS = ("round_robin", "cpu_share")


def _pack(bid, batch, bandwidth):
    return {"bs": {"bid": bid.astype(jnp.float32), "batch_frac": batch.astype(jnp.float32),
                   "bandwidth": bandwidth.astype(jnp.float32)}}


def _fixed_batch(env, params, batch):
    b = 0.5 * (params.batch_frac_min + params.batch_frac_max) if batch is None else batch
    b = jnp.clip(b, params.batch_frac_min, params.batch_frac_max)
    return jnp.full((env.num_bs, env.num_users), b, jnp.float32)


def _bids(env, association: str):
    """(M, N) one-hot bids, no state read: ``"round_robin"`` user j → BS j mod M;
    ``"cpu_share"`` by cumulative peak-CPU share, K_i ≈ N·f_i^max / Σ f^max."""
    if association == "round_robin":
        owner = np.arange(env.num_users) % env.num_bs
    elif association == "cpu_share":
        cpu = np.resize(np.asarray(env.bs_cpu_ghz, np.float64), env.num_bs)
        edges = np.cumsum(cpu) / cpu.sum() * env.num_users
        owner = np.minimum(np.searchsorted(edges, np.arange(env.num_users) + 0.5), env.num_bs - 1)
    else:
        raise ValueError(f"association = {association!r}; allowed: {ASSOCIATIONS}")
    return jax.nn.one_hot(jnp.asarray(owner), env.num_bs).T


def _bandwidth_rule(env, bandwidth: str):
    if bandwidth == "uniform":
        return jnp.ones((env.num_bs, env.num_subchannels))
    if bandwidth == "orthogonal":  # subchannel c to BS c mod M alone: no interference
        return jax.nn.one_hot(jnp.arange(env.num_subchannels) % env.num_bs, env.num_bs).T
    raise ValueError(f"bandwidth = {bandwidth!r}; allowed: ('uniform', 'orthogonal')")


def _constant(env, bids, batch, bandwidth) -> Callable:
    return lambda key, obs, state, params: _pack(bids, _fixed_batch(env, params, batch),
                                                 bandwidth)


def constant(env, association: str = "round_robin", batch: float | None = None,
             bandwidth: str = "uniform") -> Callable:
    """One fixed action every round; the defaults are the paper's ``average`` (user j →
    BS j mod M, uniform τ: 1/M' per subchannel over the M' active BSs, fixed b)."""
    return _constant(env, _bids(env, association), batch, _bandwidth_rule(env, bandwidth))


average = constant


def orthogonal(env, batch: float | None = None) -> Callable:
    """Average association; subchannel c to BS c mod M alone (no interference)."""
    return constant(env, batch=batch, bandwidth="orthogonal")


def full_data(env) -> Callable:
    """Average association, uniform τ, b_j = 1 (clipped to b_max)."""
    return constant(env, batch=1.0)


def random_association(env, batch: float | None = None) -> Callable:
    """Uniformly random DT → BS association, uniform τ, fixed b."""
    bw = _bandwidth_rule(env, "uniform")
    return lambda key, obs, state, params: _pack(
        jax.random.uniform(key, (env.num_bs, env.num_users)), _fixed_batch(env, params, batch), bw)


def search_association(env, state, params, batch_frac, bandwidth, iters: int):
    """``(assoc (N,) int32, its objective)`` for fixed ``batch_frac`` (N,) and ``bandwidth``
    (M, C): greedy placement in decreasing D_j, then ``iters`` best-improvement moves over
    all N·M single-user moves (docs/edge_assoc.md, "References and baselines")."""
    n, m = env.num_users, env.num_bs

    def objective(assoc):
        res = env.resolve_assoc(assoc, batch_frac, bandwidth, params)
        return env.outcome(state, res, params)["objective_s"]

    def best_move(assoc, users, bss):
        """The best of the moves user ``users[k]`` → BS ``bss[k]`` and its objective."""
        cands = jax.vmap(lambda j, i: assoc.at[j].set(i))(users, bss)
        values = jax.vmap(objective)(cands)
        best = jnp.argmin(values)
        return cands[best], values[best]

    bss = jnp.arange(m, dtype=jnp.int32)
    order = jnp.argsort(-state.data_samples)
    assoc, _ = jax.lax.scan(lambda a, j: (best_move(a, jnp.full(m, j), bss)[0], None),
                            jnp.full((n,), -1, jnp.int32), order)

    def improve(_, carry):
        assoc, value = carry
        cand, cand_value = best_move(assoc, jnp.repeat(jnp.arange(n), m), jnp.tile(bss, n))
        better = cand_value < value
        return jnp.where(better, cand, assoc), jnp.where(better, cand_value, value)

    return jax.lax.fori_loop(0, iters, improve, (assoc, objective(assoc)))


def search(env, batch: float | None = None, iters: int | None = None,
           bandwidth: str = "uniform") -> Callable:
    """Greedy + ``iters`` (default N) local-search moves over associations; b and the
    bandwidth rule (``"uniform"`` or ``"orthogonal"``) fixed."""
    iters = env.num_users if iters is None else int(iters)
    if iters < 0:
        raise ValueError(f"iters = {iters} must be >= 0")
    bw = _bandwidth_rule(env, bandwidth)

    def policy(key, obs, state, params):
        del key, obs
        b = _fixed_batch(env, params, batch)
        assoc, _ = search_association(env, state, params, b[0], bw, iters)
        bids = jax.nn.one_hot(assoc, env.num_bs).T
        return _pack(bids, b, bw)

    return policy


def greedy(env, batch: float | None = None, bandwidth: str = "uniform") -> Callable:
    """Greedy association only (``search`` with no local-search iteration)."""
    return search(env, batch=batch, iters=0, bandwidth=bandwidth)


def constant_choices(env, params) -> list[tuple]:
    """The (association, b, bandwidth) grid of ``best_constant``: :data:`ASSOCIATIONS` ×
    ``BATCH_GRID`` points of [b_min, b_max] × uniform or orthogonal bandwidth."""
    bs = np.linspace(float(params.batch_frac_min), float(params.batch_frac_max), BATCH_GRID)
    return list(itertools.product(ASSOCIATIONS, [round(float(b), 4) for b in bs],
                                  ("uniform", "orthogonal")))


def best_constant(env, params=None, key=None, num_episodes: int = 16) -> Callable:
    """The ``constant_choices`` point of least mean T/(1 − θ_G) on ``num_episodes`` episodes
    from ``key`` (default ``PRNGKey(0)``); ``policy.choice``, ``policy.scores`` record it."""
    params = env.default_params if params is None else params
    choices = constant_choices(env, params)
    grid = (jnp.stack([_bids(env, a) for a, _, _ in choices]),
            jnp.asarray([b for _, b, _ in choices], jnp.float32),
            jnp.stack([_bandwidth_rule(env, w) for _, _, w in choices]))
    best, cost = best_of(env, lambda row: _constant(env, *row), grid,
                         lambda tr: jnp.mean(tr["metrics"]["objective_s"]), params,
                         lowest=True, key=key, num_episodes=num_episodes)
    return recorded(constant(env, *choices[best]), choice=choices[best],
                    scores=dict(zip(choices, cost.tolist())))


POLICIES = {
    "random": random_association,
    "average": average,
    "full_data": full_data,
    "orthogonal": orthogonal,
    "search": search,
    "greedy": greedy,
    "constant": constant,
    "best_constant": best_constant,
}
