"""Baselines and references for ``sgin``, pure and jit-able (docs/sgin.md, "References and
baselines"): f in Hz and S_B in bits, encoded by :func:`_follower_action`; unless stated,
the leader posts ``params.price``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from agents.heuristics import best_of, recorded
from jaxsg.consensus import sgin_privacy_overhead
from jaxsg.physics.link import shannon_rate

GHZ = 1e9
MBIT = 1e6
MS = 1e-3


def _cloud(env) -> bool:
    return getattr(env, "payoff", "paper") == "cloud"


def _follower_action(env, params, offload, leo, channel, cpu_hz, block_bits, drop=None,
                     cpu_frac=None):
    """The env's action from f (Hz) and S_B (bits): ``cpu_ghz`` (paper payoff), or the mode's
    fraction ``cpu`` (``cpu_frac`` if given, else from f) and ``drop`` (cloud payoff)."""
    offload = jnp.asarray(offload).astype(bool)
    vec = lambda x, dtype: jnp.broadcast_to(jnp.asarray(x, dtype), offload.shape)  # noqa: E731
    action = {"offload": vec(offload, jnp.int32), "leo": vec(leo, jnp.int32),
              "channel": vec(channel, jnp.int32), "block_mbit": vec(block_bits / MBIT, jnp.float32)}
    if _cloud(env):
        if cpu_frac is None:
            span = jnp.maximum(_mode_cpu_max(env, params, offload) - params.cpu_min_hz, 1.0)
            cpu_frac = jnp.clip((cpu_hz - params.cpu_min_hz) / span, 0.0, 1.0)
        action["cpu"] = vec(cpu_frac, jnp.float32)
        action["drop"] = vec(0 if drop is None else drop, jnp.int32)
    else:
        action["cpu_ghz"] = vec(cpu_hz / GHZ, jnp.float32)
    return action


def _mode_cpu_max(env, params, offload):
    """Largest f of the chosen mode: the cloud's when offloading under ``payoff="cloud"``,
    the DT's own otherwise (one f range under ``payoff="paper"``)."""
    return jnp.where(jnp.asarray(offload) | (not _cloud(env)), params.cpu_max_hz,
                     params.local_cpu_max_hz)


def _best_visible_leo(gain, visible):
    return jnp.argmax(jnp.where(visible, gain, -1.0), axis=-1)


def _follower_policy(env, follower, price=None) -> Callable:
    """The followers play ``follower(key, state, params)``; the leader posts ``price``
    (None: ``params.price``)."""
    return lambda key, obs, state, params: {
        "follower": follower(key, state, params),
        "leader": jnp.full((1, env.num_followers), params.price if price is None else price,
                           jnp.float32)}


def _mid_cpu(env, params, offload):
    """Mid-range f (Hz) of the mode ``offload`` (bool, any shape)."""
    return 0.5 * (params.cpu_min_hz + _mode_cpu_max(env, params, offload))


def _mid_range_action(env, params, offload, leo, channel):
    """MAMCC's and MAGCS's action: the mid-range f of the chosen mode, the mid-range S_B."""
    return _follower_action(env, params, offload, leo, channel,
                            _mid_cpu(env, params, offload),
                            0.5 * (params.block_min_bits + params.block_max_bits))


def marto(env) -> Callable:
    """MARTO: offload, LEO and channel uniformly among the available options; f, S_B uniform."""
    return _follower_policy(env, lambda key, state, params: env.action_space(
        "follower", params).sample(key, env.avail_actions(state, params)["follower"]))


def mamcc_follower(env, state, params):
    """MAMCC: the LEO with the highest gain, channel m mod R, offload iff the
    interference-free rate beats the local rate."""
    gain = env.path_gain(state, params)
    leo = _best_visible_leo(gain, state.visible)
    best_gain = jnp.take_along_axis(gain, leo[:, None], axis=1)[:, 0]
    visible = jnp.any(state.visible, axis=-1)
    channel = jnp.arange(env.num_followers) % env.users_per_mbs % env.num_channels
    free_rate = shannon_rate(params.bandwidth_hz, params.power_w * best_gain / params.noise_w)
    if _cloud(env):  # the cloud also computes at its f
        free_rate = jnp.minimum(free_rate, _mid_cpu(env, params, True) / state.cycles_per_bit)
    local_rate = _mid_cpu(env, params, False) / state.cycles_per_bit
    return _mid_range_action(env, params, visible & (free_rate > local_rate), leo, channel)


def mamcc(env) -> Callable:
    return _follower_policy(env, lambda key, state, params: mamcc_follower(env, state, params))


def magcs(env) -> Callable:
    """MAGCS: least-path-loss LEO, channels greedy per MBS, offload iff faster (docs/sgin.md)."""
    n_mbs, m = env.num_mbs, env.users_per_mbs
    cells = jnp.arange(n_mbs)

    def follower(key, state, params):
        gain = env.path_gain(state, params).reshape(n_mbs, m, -1)  # (N, M, O)
        leo = _best_visible_leo(gain, state.visible.reshape(gain.shape))  # (N, M)
        other_rx = state.last_rx_power_w.sum(axis=0)[None] - state.last_rx_power_w  # (N, O, R)
        local_rate = (_mid_cpu(env, params, False) / state.cycles_per_bit).reshape(n_mbs, m)
        visible = jnp.any(state.visible, -1).reshape(n_mbs, m)

        def assign(own_rx, k):
            """DT k of every MBS: least-interfered channel; ``own_rx`` (N, O, R) so far."""
            leo_k = leo[:, k]
            interference = (other_rx[cells, leo_k]
                            + params.intra_cell_interference * own_rx[cells, leo_k])  # (N, R)
            ch = jnp.argmin(interference, axis=-1)
            signal = params.power_w * gain[cells, k, leo_k]
            rate = shannon_rate(params.bandwidth_hz,
                                signal / (params.noise_w + interference[cells, ch]))
            offload = visible[:, k] & (rate > local_rate[:, k])
            own_rx = own_rx.at[cells, :, ch].add(params.power_w * gain[:, k] * offload[:, None])
            return own_rx, (ch, offload)

        _, (channel, offload) = jax.lax.scan(assign, jnp.zeros_like(other_rx), jnp.arange(m))
        return _mid_range_action(env, params, offload.T.reshape(-1), leo.reshape(-1),
                                 channel.T.reshape(-1))

    return _follower_policy(env, follower)


def best_response_follower(env, state, params, rounds: int = 2, cpu_levels: int = 8):
    """Sequential best response on P2': ``rounds`` sweeps over the DTs in index order, f over
    ``cpu_levels`` levels of the mode's range (docs/sgin.md, "References and baselines")."""
    n, m, n_mbs = env.num_followers, env.users_per_mbs, env.num_mbs
    n_ch = env.num_channels
    cloud = _cloud(env)
    dpp = getattr(env, "reward", "paper") == "drift_plus_penalty"
    gain = env.path_gain(state, params)  # (NM, O)
    cell = jnp.arange(n) // m
    block = params.block_min_bits
    # candidate modes: row 0 computes locally, row 1 + o·R + r offloads to LEO o on
    # channel r; per row an f grid over the mode's range
    local = (jnp.arange(1 + env.num_leo * n_ch) == 0)[:, None]
    f_max = jnp.where(local[:, 0], _mode_cpu_max(env, params, False), params.cpu_max_hz)
    f_grid = jnp.linspace(params.cpu_min_hz, f_max, cpu_levels, axis=-1)  # (1 + O·R, K)

    start = mamcc_follower(env, state, params)

    def update(choice, i):
        my_cell = cell[i]
        # (O, R) the others' received power at every LEO and channel, × ι within my MBS
        on = jax.nn.one_hot(choice["channel"], n_ch) * (
            choice["offload"] & (jnp.arange(n) != i))[:, None]  # (NM, R)
        weight = jnp.where(cell == my_cell, params.intra_cell_interference, 1.0)
        interference = jnp.einsum("j,jo,jr->or", params.power_w * weight, gain, on)
        signal = params.power_w * gain[i]  # (O,)
        rate = shannon_rate(params.bandwidth_hz, signal[:, None] / (params.noise_w + interference))
        link_bits = jnp.concatenate([jnp.full(1, jnp.inf), (rate * params.slot_s).ravel()])
        w = state.cycles_per_bit[i]
        q_bits = state.queue_bits[i]
        q_mbit = q_bits / MBIT
        a_mbit = state.arrivals_bits[i] / MBIT
        price = state.price[i]
        # privacy overhead of my MBS for candidate f (others' f fixed)
        cell_cpu = jax.lax.dynamic_slice(choice["cpu"], (my_cell * m,), (m,))
        slowest_other = jnp.where(jnp.arange(m) == i - my_cell * m, jnp.inf, cell_cpu).min()

        if cloud:  # the capacity is min(link, f·τ/w); + the kink f = w·min(link, Q)/τ
            kink = jnp.clip(w * jnp.minimum(link_bits, q_bits) / params.slot_s,
                            params.cpu_min_hz, f_max)
            f = jnp.concatenate([f_grid, kink[:, None]], axis=-1)
            cap = jnp.minimum(link_bits[:, None], f * params.slot_s / w)
            unit_cost = jnp.where(local, params.local_energy_price, price)
        else:  # the capacity is f·τ/w locally, the link's when offloading
            f = f_grid
            cap = jnp.where(local, f * params.slot_s / w, link_bits[:, None])
            unit_cost = price
        # this slot's reward of every candidate, keeping or (cloud) dropping the rest
        verifier = jnp.minimum(slowest_other, f)[..., None]
        overhead_s = sgin_privacy_overhead(
            params.model_bits, params.f_mbs_hz, params.delta, n_mbs, n,
            params.r_up_bps, params.r_down_bps, block, verifier,
            params.verify_cycles_per_bit,
        ).total
        d = (jnp.minimum(cap, q_bits) if cloud else cap) / MBIT
        u = d - params.privacy_weight * overhead_s / MS - unit_cost * f / GHZ
        val = q_mbit * (d - a_mbit if dpp else d) + params.v_weight * u
        drop = jnp.zeros(val.shape, bool)
        if cloud:
            dropped = jnp.maximum(q_mbit - d, 0.0)
            gone = q_mbit * (d + dropped - a_mbit if dpp else d) + params.v_weight * (
                u - params.drop_penalty * dropped)
            drop = (gone > val) & (dropped > 0)  # no drop when nothing is left to drop
            val = jnp.where(drop, gone, val)
        valid = jnp.concatenate([jnp.ones(1, bool), jnp.repeat(state.visible[i], n_ch)])
        best = jnp.argmax(jnp.where(valid[:, None], val, -jnp.inf))
        row = best // f.shape[-1]
        go = row > 0
        new = {"offload": go,
               "leo": jnp.where(go, (row - 1) // n_ch, choice["leo"][i]),
               "channel": jnp.where(go, (row - 1) % n_ch, choice["channel"][i]),
               "cpu": f.ravel()[best], "drop": drop.ravel()[best]}
        return jax.tree.map(lambda x, v: x.at[i].set(v), choice, new), None

    choice = {"offload": start["offload"].astype(bool) & jnp.any(state.visible, -1),
              "leo": start["leo"], "channel": start["channel"],
              "cpu": jnp.full((n,), params.cpu_min_hz), "drop": jnp.zeros(n, bool)}
    c, _ = jax.lax.scan(update, choice, jnp.tile(jnp.arange(n), rounds))
    return _follower_action(env, params, c["offload"], c["leo"], c["channel"], c["cpu"], block,
                            c["drop"])


def best_response(env, rounds: int = 2, cpu_levels: int = 8, price=None) -> Callable:
    """The followers play :func:`best_response_follower`; the leader posts ``price``
    (None: ``params.price``)."""
    return _follower_policy(env, lambda key, state, params: best_response_follower(
        env, state, params, rounds, cpu_levels), price)


def price_grid_around(price, points: int = 11, low: float = 0.5, high: float = 1.5):
    """The spec's Stackelberg grid: ``points`` prices in [low, high]·λ₀."""
    return jnp.linspace(low * price, high * price, points).astype(jnp.float32)


def stackelberg_fixed_price(env, params=None, price_grid=None, num_episodes: int = 4,
                            rounds: int = 2, cpu_levels: int = 8, **keys):
    """Stackelberg reference: the best fixed price of ``price_grid`` (:func:`price_grid_around`)
    by mean episode profit, on the episodes of ``keys`` (:func:`agents.heuristics.best_of`):
    ``(price, profit per grid price, grid)``."""
    params = env.default_params if params is None else params
    grid = price_grid_around(params.price) if price_grid is None else jnp.asarray(
        price_grid, jnp.float32)
    policy = best_response(env, rounds, cpu_levels)
    best, profits = best_of(env, lambda _: policy, grid,
                            lambda tr: tr["reward"]["leader"][..., 0].sum(), params,
                            num_episodes=num_episodes,
                            params_of=lambda price, p: p.replace(price=price), **keys)
    return float(grid[best]), profits, grid


def stackelberg(env, price=None, rounds: int = 2, cpu_levels: int = 8, **search) -> Callable:
    """Best-response followers; the leader posts ``price`` (None: found once by
    :func:`stackelberg_fixed_price`). Evaluate with ``params.replace(price=policy.price)``
    for a fixed price from slot 0 on (slot 0 runs at the reset price)."""
    if price is None:
        price, _, _ = stackelberg_fixed_price(env, rounds=rounds, cpu_levels=cpu_levels,
                                              **search)
    return recorded(best_response(env, rounds, cpu_levels, price), price=float(price))


CONSTANT_CPU_LEVELS = tuple(i / 10 for i in range(11))


def constant_action_grid(env, cpu_levels=CONSTANT_CPU_LEVELS, leo_ranks=(0, 1),
                         channel_offsets=(0,)) -> dict:
    """The constant actions of :func:`constant_policy` as ``(G,)`` arrays ``offload, drop,
    leo_rank, channel_offset, cpu`` (the grid: docs/sgin.md, "References and baselines")."""
    drops = (0, 1) if _cloud(env) else (0,)
    ranks = tuple(r for r in leo_ranks if r < env.num_leo)
    rows = [(0, d, 0, 0, c) for d in drops for c in cpu_levels]
    rows += [(1, d, r, k, c) for d in drops for r in ranks for k in channel_offsets
             for c in cpu_levels]
    names = ("offload", "drop", "leo_rank", "channel_offset", "cpu")
    return {name: jnp.asarray(col, jnp.float32 if name == "cpu" else jnp.int32)
            for name, col in zip(names, zip(*rows))}


def constant_policy(env, offload, drop, leo_rank, channel_offset, cpu) -> Callable:
    """Every DT plays the same action every slot: its ``leo_rank``-th best LEO by gain,
    channel (m + ``channel_offset``) mod R for DT m of its MBS, fraction ``cpu`` of the
    mode's f range, S_min. Arguments may be traced."""
    n = env.num_followers

    def follower(key, state, params):
        gain = jnp.where(state.visible, env.path_gain(state, params), -1.0)
        leo = jnp.argsort(-gain, axis=-1)[:, jnp.clip(leo_rank, 0, env.num_leo - 1)]
        channel = (jnp.arange(n) % env.users_per_mbs + channel_offset) % env.num_channels
        f = params.cpu_min_hz + cpu * (params.cpu_max_hz - params.cpu_min_hz)  # paper's f
        return _follower_action(env, params, jnp.full((n,), offload), leo, channel, f,
                                params.block_min_bits, drop, cpu)

    return _follower_policy(env, follower)


def best_constant_search(env, params=None, num_episodes: int = 8, grid: dict | None = None,
                         **keys):
    """Mean episode return (follower reward summed over slots, mean over DTs) of every point
    of ``grid`` (default :func:`constant_action_grid`) on the episodes of ``keys``
    (:func:`agents.heuristics.best_of`). Returns ``(best point as a dict, returns (G,), grid)``."""
    grid = constant_action_grid(env) if grid is None else grid
    best, values = best_of(env, lambda pt: constant_policy(env, **pt), grid,
                           lambda tr: tr["reward"]["follower"].sum(0).mean(), params,
                           num_episodes=num_episodes, **keys)
    return {k: v[best].item() for k, v in grid.items()}, values, grid


def best_constant(env, action: dict | None = None, **search) -> Callable:
    """The best constant policy (docs/evaluation.md §2): ``action`` (a grid point) or, if
    None, the best of :func:`best_constant_search` (found once, here)."""
    if action is None:
        action, _, _ = best_constant_search(env, **search)
    return recorded(constant_policy(env, **action), action=dict(action))


POLICIES = {
    "marto": marto,
    "mamcc": mamcc,
    "magcs": magcs,
    "best_response": best_response,
    "stackelberg": stackelberg,
    "best_constant": best_constant,
}
