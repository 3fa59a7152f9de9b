"""Heuristic baselines and game-theoretic references for ``sgin``.

Every policy has the signature of a learned one, ``policy(key, obs, state,
params) -> action``, pure and jit-able; build one with ``make_policy(name,
env)`` or the named factories. The follower part follows ``specs/sgin.md``:

* ``marto`` — MARTO (paper baseline): offload, LEO and channel uniformly
  random among the available options; f and S_B uniform in range.
* ``mamcc`` — MAMCC (paper baseline): the same mid-range f for every DT; the
  LEO with the highest gain; channel = index m mod R within the MBS; offload
  iff the interference-free offload rate beats the local rate.
* ``magcs`` — MAGCS (paper baseline): LEO with the least path loss; channels
  chosen greedily one DT at a time within each MBS (least interference given
  last slot's other-cell interference and the choices already made in the
  cell — a ``lax.scan`` over the DTs of a cell, vmapped over MBSs); offload iff
  that rate beats local; f and S_B mid-range.
* ``best_response`` — beyond the paper: ``rounds`` sweeps of sequential best
  response on P2' (each DT in turn maximises its own drift-plus-penalty
  reward eq. 33 over offload × LEO × channel × a grid of f, given everyone
  else's current choice), starting from MAMCC. S_B = S_min (block size only
  costs in the model, so it is weakly dominant).
* ``stackelberg`` — beyond the paper: followers play ``best_response``; the
  leader posts the grid price λ that maximises Σ(λ − c)·f over the
  followers' best response to λ (grid search, vmapped over λ).

Unless stated, the leader posts ``params.price`` (a fixed posted price), so a
follower heuristic means the same in ``price_mode="leader"`` and ``"fixed"``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxsg.consensus import sgin_privacy_overhead
from jaxsg.physics.link import shannon_rate

GHZ = 1e9
MBIT = 1e6
MS = 1e-3


def _posted_price(env, params):
    return jnp.full((1, env.num_followers), params.price, jnp.float32)


def _mid(lo, hi):
    return 0.5 * (lo + hi)


def _follower_action(offload, leo, channel, cpu_hz, block_bits):
    return {
        "offload": offload.astype(jnp.int32),
        "leo": leo.astype(jnp.int32),
        "channel": channel.astype(jnp.int32),
        "cpu_ghz": (cpu_hz / GHZ).astype(jnp.float32),
        "block_mbit": (block_bits / MBIT).astype(jnp.float32),
    }


def _best_visible_leo(gain, visible):
    return jnp.argmax(jnp.where(visible, gain, -1.0), axis=-1)


# ---------------------------------------------------------------- MARTO
def marto(env) -> Callable:
    def policy(key, obs, state, params):
        del obs
        masks = env.avail_actions(state, params)["follower"]
        space = env.action_space("follower", params)
        follower = space.sample(key, masks)
        return {"follower": follower, "leader": _posted_price(env, params)}

    policy.__name__ = "marto"
    return policy


# ---------------------------------------------------------------- MAMCC
def mamcc_follower(env, state, params):
    gain = env.path_gain(state, params)
    leo = _best_visible_leo(gain, state.visible)
    best_gain = jnp.take_along_axis(gain, leo[:, None], axis=1)[:, 0]
    visible = jnp.any(state.visible, axis=-1)
    channel = jnp.arange(env.num_followers) % env.users_per_mbs % env.num_channels
    cpu_hz = jnp.full((env.num_followers,), _mid(params.cpu_min_hz, params.cpu_max_hz))
    free_rate = shannon_rate(params.bandwidth_hz, params.power_w * best_gain / params.noise_w)
    local_rate = cpu_hz / state.cycles_per_bit
    offload = visible & (free_rate > local_rate)
    block = jnp.full((env.num_followers,), _mid(params.block_min_bits, params.block_max_bits))
    return _follower_action(offload, leo, channel, cpu_hz, block)


def mamcc(env) -> Callable:
    def policy(key, obs, state, params):
        del key, obs
        follower = mamcc_follower(env, state, params)
        return {"follower": follower, "leader": _posted_price(env, params)}

    policy.__name__ = "mamcc"
    return policy


# ---------------------------------------------------------------- MAGCS
def magcs(env) -> Callable:
    n_mbs, m, n_ch = env.num_mbs, env.users_per_mbs, env.num_channels

    def cell_greedy(gain_cell, leo_cell, other_cell_rx, local_rate_cell, visible_cell, params):
        """Greedy channels for one MBS: DT k picks the least-interfered channel in turn."""
        # gain_cell (M, O); leo_cell (M,); other_cell_rx (O, R): last slot's power
        # from other MBSs; local_rate_cell (M,)
        own_gain_at = gain_cell[:, leo_cell]  # [j, k] gain of DT j at DT k's LEO

        def assign(carry, k):
            chosen_ch, tx = carry  # (M,), (M,) bool: choices so far in this cell
            same_cell = jnp.zeros(n_ch).at[chosen_ch].add(
                params.power_w * own_gain_at[:, k] * tx
            )
            interference = other_cell_rx[leo_cell[k]] + params.intra_cell_interference * same_cell
            ch = jnp.argmin(interference)
            signal = params.power_w * gain_cell[k, leo_cell[k]]
            rate = shannon_rate(params.bandwidth_hz, signal / (params.noise_w + interference[ch]))
            offload = visible_cell[k] & (rate > local_rate_cell[k])
            return (chosen_ch.at[k].set(ch), tx.at[k].set(offload)), (ch, offload)

        init = (jnp.zeros(m, jnp.int32), jnp.zeros(m, bool))
        _, (ch, offload) = jax.lax.scan(assign, init, jnp.arange(m))
        return ch, offload

    def policy(key, obs, state, params):
        del key, obs
        gain = env.path_gain(state, params)
        leo = _best_visible_leo(gain, state.visible)
        total_rx = state.last_rx_power_w.sum(axis=0)  # (O, R)
        other_rx = total_rx[None] - state.last_rx_power_w  # (N, O, R)
        cpu_hz = jnp.full((env.num_followers,), _mid(params.cpu_min_hz, params.cpu_max_hz))
        local_rate = cpu_hz / state.cycles_per_bit
        channel, offload = jax.vmap(cell_greedy, in_axes=(0, 0, 0, 0, 0, None))(
            gain.reshape(n_mbs, m, -1),
            leo.reshape(n_mbs, m),
            other_rx,
            local_rate.reshape(n_mbs, m),
            jnp.any(state.visible, -1).reshape(n_mbs, m),
            params,
        )
        block = jnp.full((env.num_followers,), _mid(params.block_min_bits, params.block_max_bits))
        follower = _follower_action(offload.reshape(-1), leo, channel.reshape(-1), cpu_hz, block)
        return {"follower": follower, "leader": _posted_price(env, params)}

    policy.__name__ = "magcs"
    return policy


# -------------------------------------------------------- best response
def best_response_follower(env, state, params, rounds: int = 2, cpu_levels: int = 8):
    """Sequential best response on P2' (eq. 33), ``rounds`` sweeps over all DTs.

    Each DT i, in index order, picks the (offload, LEO, channel, f) maximising
    ``Q_i·D_i + V·(D_i − w_priv·C_n − λ_i·f_i)`` (Mbit, ms, GHz) given every
    other DT's current choice: D_i from the exact SINR at the candidate
    (LEO, channel) under the others' current transmissions (eq. 4-5), C_n the
    MBS's privacy overhead with DT i's f among the verifiers (eq. 7-10).
    """
    n, m, n_mbs = env.num_followers, env.users_per_mbs, env.num_mbs
    n_ch = env.num_channels
    gain = env.path_gain(state, params)  # (NM, O)
    cell = jnp.arange(n) // m
    cpu_grid = jnp.linspace(params.cpu_min_hz, params.cpu_max_hz, cpu_levels)
    block = params.block_min_bits

    start = mamcc_follower(env, state, params)
    offload0 = start["offload"].astype(bool) & jnp.any(state.visible, -1)
    cpu0 = jnp.full((n,), params.cpu_min_hz)

    def contribution(i, offload, leo, channel):
        # (O, R) power DT i puts on every LEO/channel when it transmits on `channel`
        on = jax.nn.one_hot(channel, n_ch) * offload
        return params.power_w * gain[i][:, None] * on[None, :]

    per_cell0 = jax.vmap(contribution)(jnp.arange(n), offload0, start["leo"], start["channel"])
    per_cell0 = jax.ops.segment_sum(per_cell0, cell, num_segments=n_mbs)  # (N, O, R)

    def update(carry, i):
        offload, leo, channel, cpu, per_cell = carry
        my_cell = cell[i]
        per_cell = per_cell.at[my_cell].add(-contribution(i, offload[i], leo[i], channel[i]))
        weights = jnp.where(jnp.arange(n_mbs) == my_cell, params.intra_cell_interference, 1.0)
        interference = jnp.tensordot(weights, per_cell, axes=1)  # (O, R)
        signal = params.power_w * gain[i]  # (O,)
        rate = shannon_rate(params.bandwidth_hz, signal[:, None] / (params.noise_w + interference))
        rate = jnp.where(state.visible[i][:, None], rate, 0.0)
        offload_bits = rate * params.slot_s  # (O, R)
        local_bits = cpu_grid * params.slot_s / state.cycles_per_bit[i]  # (K,)
        # privacy overhead of my MBS for each candidate f (others' f fixed)
        cell_cpu = jax.lax.dynamic_slice(cpu, (my_cell * m,), (m,))
        others = jnp.where(jnp.arange(m) == i - my_cell * m, jnp.inf, cell_cpu)
        verifiers = jnp.minimum(others.min(), cpu_grid)[:, None]  # (K, 1) slowest verifier
        overhead_s = sgin_privacy_overhead(
            params.model_bits, params.f_mbs_hz, params.delta, n_mbs, n,
            params.r_up_bps, params.r_down_bps, block, verifiers, params.verify_cycles_per_bit,
        ).total  # (K,)
        cost = params.privacy_weight * overhead_s / MS + state.price[i] * cpu_grid / GHZ  # (K,)
        q_mbit = state.queue_bits[i] / MBIT

        def value(bits, k_cost):
            d = bits / MBIT
            return q_mbit * d + params.v_weight * (d - k_cost)

        local_value = value(local_bits, cost)  # (K,)
        k_off = jnp.argmin(cost)  # offloading: f only costs
        off_value = value(offload_bits, cost[k_off])  # (O, R)
        best_off = jnp.argmax(off_value.reshape(-1))
        go = off_value.reshape(-1)[best_off] > local_value.max()
        new_leo = jnp.where(go, best_off // n_ch, leo[i])
        new_ch = jnp.where(go, best_off % n_ch, channel[i])
        new_cpu = jnp.where(go, cpu_grid[k_off], cpu_grid[jnp.argmax(local_value)])
        offload = offload.at[i].set(go)
        leo = leo.at[i].set(new_leo)
        channel = channel.at[i].set(new_ch)
        cpu = cpu.at[i].set(new_cpu)
        per_cell = per_cell.at[my_cell].add(contribution(i, go, new_leo, new_ch))
        return (offload, leo, channel, cpu, per_cell), None

    carry = (offload0, start["leo"], start["channel"], cpu0, per_cell0)
    order = jnp.tile(jnp.arange(n), rounds)
    (offload, leo, channel, cpu, _), _ = jax.lax.scan(update, carry, order)
    return _follower_action(offload, leo, channel, cpu, jnp.full((n,), block))


def best_response(env, rounds: int = 2, cpu_levels: int = 8) -> Callable:
    def policy(key, obs, state, params):
        del key, obs
        follower = best_response_follower(env, state, params, rounds, cpu_levels)
        return {"follower": follower, "leader": _posted_price(env, params)}

    policy.__name__ = "best_response"
    return policy


# ----------------------------------------------------- Stackelberg price
def stackelberg_price(env, state, params, price_grid, rounds: int = 2, cpu_levels: int = 8):
    """Grid price maximising Σ(λ − c)·f over the followers' best response to λ."""

    def profit(price):
        s = state.replace(price=jnp.full_like(state.price, price))
        f = best_response_follower(env, s, params, rounds, cpu_levels)["cpu_ghz"]
        return jnp.sum((price - params.unit_cost) * f)

    profits = jax.vmap(profit)(price_grid)
    return price_grid[jnp.argmax(profits)], profits


def stackelberg(env, price_grid=None, rounds: int = 2, cpu_levels: int = 8) -> Callable:
    """Leader posts the Stackelberg grid price for the next slot; followers best-respond."""

    def policy(key, obs, state, params):
        del key, obs
        grid = (
            jnp.linspace(params.price_min, params.price_max, 11) if price_grid is None
            else jnp.asarray(price_grid, jnp.float32)
        )
        price, _ = stackelberg_price(env, state, params, grid, rounds, cpu_levels)
        follower = best_response_follower(env, state, params, rounds, cpu_levels)
        return {"follower": follower,
                "leader": jnp.full((1, env.num_followers), price, jnp.float32)}

    policy.__name__ = "stackelberg"
    return policy


POLICIES = {
    "marto": marto,
    "mamcc": mamcc,
    "magcs": magcs,
    "best_response": best_response,
    "stackelberg": stackelberg,
}


def make_policy(name: str, env, **kwargs) -> Callable:
    """Heuristic policy by name (see ``POLICIES``)."""
    if name not in POLICIES:
        raise ValueError(f"unknown heuristic '{name}'; choose from {sorted(POLICIES)}")
    return POLICIES[name](env, **kwargs)
