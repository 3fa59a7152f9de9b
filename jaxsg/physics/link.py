"""Link-level quantities: co-channel interference, SINR and Shannon rate.

Shape convention for interference (decision; the spec fixes only the
semantics): links are indexed i = 0..n−1, each link being one transmitter →
receiver pair. ``rx_power_w[..., i, j]`` is the power **from transmitter j
received at the receiver of link i** (so the diagonal is each link's own
signal), ``channel[..., j]`` is link j's channel id and ``active[..., j]``
whether transmitter j transmits. All functions broadcast over leading axes and
are jit/vmap-able and differentiable in the powers.

Public kernels are ``jax.jit``-decorated: one compilation per input shape
when called eagerly, inlined when called inside a user's ``jit``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .units import _as_float

__all__ = [
    "cochannel_interference",
    "same_group_mask",
    "shannon_rate",
    "sinr",
]


@jax.jit
def same_group_mask(group_ids):
    """Boolean matrix ``M[..., i, j] = (group_ids[..., i] == group_ids[..., j])``.

    Typical use: ``same_cell_excluded_mask=same_group_mask(cell_of_link)`` to
    drop intra-cell interference (orthogonal within a cell). The diagonal is
    True.

    Args:
      group_ids: integer ids, shape (..., n).

    Returns:
      bool array, shape (..., n, n).
    """
    g = jnp.asarray(group_ids)
    return g[..., :, None] == g[..., None, :]


@jax.jit
def cochannel_interference(rx_power_w, channel, active, same_cell_excluded_mask=None):
    """Co-channel interference at every receiver link.

    ``I_i = Σ_{j ≠ i} P[i, j] · 1[active_j] · 1[channel_j = channel_i] · 1[not excluded[i, j]]``

    (the standard sum-of-co-channel-interferers model, e.g. SGIN paper eq. (4)-(5)
    and the spectrum paper's SINR). Vectorised with the channel-equality
    matrix ``channel[:, None] == channel[None, :]`` (equivalent to the product of
    one-hot channel matrices ``O·Oᵀ``, without materialising the channel axis),
    no Python loops. Decisions: the receiver's own activity does not matter
    (an idle link still reports the interference it would see); channel ids
    are compared for equality only (any integers; use ``active`` to switch a
    transmitter off); the diagonal j = i is always excluded.

    Args:
      rx_power_w: received powers, W, shape (..., n, n): ``[..., i, j]`` = from
        transmitter j at receiver i.
      channel: int channel id per link/transmitter, shape (..., n).
      active: bool (or 0/1) per transmitter, shape (..., n).
      same_cell_excluded_mask: optional bool (..., n, n); True at [i, j] removes
        transmitter j from receiver i's sum (e.g. ``same_group_mask(cell_ids)``).

    Returns:
      Interference power, W, shape (..., n).
    """
    p = _as_float(rx_power_w)
    n = p.shape[-1]
    ch = jnp.asarray(channel)
    on = jnp.asarray(active).astype(bool)
    include = (ch[..., :, None] == ch[..., None, :]) & on[..., None, :]
    include = include & ~jnp.eye(n, dtype=bool)
    if same_cell_excluded_mask is not None:
        include = include & ~jnp.asarray(same_cell_excluded_mask, dtype=bool)
    return jnp.sum(jnp.where(include, p, 0.0), axis=-1)


@jax.jit
def sinr(signal_w, interference_w, noise_w):
    """Signal-to-interference-plus-noise ratio ``γ = S / (I + N)`` (linear).

    Args:
      signal_w: received signal power S, W.
      interference_w: interference power I, W.
      noise_w: noise power N, W (> 0, so γ is finite).

    Returns:
      γ, dimensionless linear ratio.
    """
    return _as_float(signal_w) / (_as_float(interference_w) + _as_float(noise_w))


@jax.jit
def shannon_rate(bandwidth_hz, sinr):
    """Shannon capacity ``R = B·log2(1 + γ)`` bit/s (Shannon 1948).

    Computed as ``B·log1p(γ)/ln 2`` for accuracy at small γ. Examples:
    B = 1 MHz, γ = 1 → 1e6 bit/s; γ = 3 → 2e6 bit/s.

    Args:
      bandwidth_hz: bandwidth B, Hz.
      sinr: linear SINR γ >= 0 (not dB).

    Returns:
      Rate, bit/s.
    """
    return _as_float(bandwidth_hz) * jnp.log1p(_as_float(sinr)) / math.log(2.0)
