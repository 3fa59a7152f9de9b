"""Baselines for ``edge_assoc`` (Lu et al., IEEE TII 2021, Sec. V).

Policies with the signature of a learned one, ``policy(key, obs, state, params)
-> {"bs": {"bid", "batch_frac", "bandwidth"}}``, pure and jit-able. Build one
with ``make_policy(name, env)``.

* ``random`` — random association (paper): each DT to a uniformly random BS
  (random bids), uniform bandwidth weights (τ = 1/M' per subchannel over the
  M' active BSs) and the fixed batch fraction b (as ``average``, so the two
  differ only in the association).
* ``average`` — average association (paper): equal K_i (user j → BS j mod M,
  round robin), uniform τ, fixed b.
* ``full_data`` — "full data" FL (paper, Fig. 6): average association and
  uniform τ with every b_j = 1 (all local data every round; b is clipped to
  b_max if b_max < 1).
* ``orthogonal`` — a hand-made reference beyond the paper: average
  association, subchannel c given to BS c mod M alone (no interference), fixed b.

Decision (paper silent): the "fixed b" of the baselines is the midpoint of
[b_min, b_max] unless ``batch`` is given.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def _pack(bid, batch, bandwidth):
    return {"bs": {"bid": bid.astype(jnp.float32), "batch_frac": batch.astype(jnp.float32),
                   "bandwidth": bandwidth.astype(jnp.float32)}}


def _fixed_batch(env, params, batch):
    b = 0.5 * (params.batch_frac_min + params.batch_frac_max) if batch is None else batch
    b = jnp.clip(b, params.batch_frac_min, params.batch_frac_max)
    return jnp.full((env.num_bs, env.num_users), b, jnp.float32)


def _round_robin_bids(env):
    return jax.nn.one_hot(jnp.arange(env.num_users) % env.num_bs, env.num_bs).T


def average(env, batch: float | None = None) -> Callable:
    """Equal K_i (round robin), uniform τ, fixed b."""

    def policy(key, obs, state, params):
        del key, obs, state
        ones = jnp.ones((env.num_bs, env.num_subchannels))
        return _pack(_round_robin_bids(env), _fixed_batch(env, params, batch), ones)

    return policy


def random_association(env, batch: float | None = None) -> Callable:
    """Uniformly random DT → BS association, uniform τ, fixed b."""

    def policy(key, obs, state, params):
        del obs, state
        bid = jax.random.uniform(key, (env.num_bs, env.num_users))
        ones = jnp.ones((env.num_bs, env.num_subchannels))
        return _pack(bid, _fixed_batch(env, params, batch), ones)

    return policy


def full_data(env) -> Callable:
    """Average association, uniform τ, b_j = 1 (clipped to b_max)."""
    return average(env, batch=1.0)


def orthogonal(env, batch: float | None = None) -> Callable:
    """Average association; subchannel c exclusively to BS c mod M (no interference)."""

    def policy(key, obs, state, params):
        del key, obs, state
        owner = jnp.arange(env.num_subchannels) % env.num_bs
        bw = jax.nn.one_hot(owner, env.num_bs).T  # (M, C)
        return _pack(_round_robin_bids(env), _fixed_batch(env, params, batch), bw)

    return policy


POLICIES = {
    "random": random_association,
    "average": average,
    "full_data": full_data,
    "orthogonal": orthogonal,
}


def make_policy(name: str, env, **kwargs) -> Callable:
    if name not in POLICIES:
        raise ValueError(f"unknown edge_assoc policy {name!r}; choose from {sorted(POLICIES)}")
    return POLICIES[name](env, **kwargs)
