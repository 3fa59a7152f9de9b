"""Physical constants and decibel / power-unit conversions.

This module is the bottom of ``jaxsg.physics``: SI constants shared by every
kernel, and the dB <-> linear helpers that scenarios use at their edges (the
kernels themselves work in SI units: metres, hertz, watts, seconds, bits).

All functions are pure ``jax.numpy`` functions, broadcast over any leading
axes, are jit/vmap-able and differentiable. Integer inputs are promoted to the
default float dtype (float32 unless the user enabled x64).
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = [
    "BOLTZMANN",
    "EARTH_RADIUS",
    "GM_EARTH",
    "SPEED_OF_LIGHT",
    "db_to_linear",
    "dbm_to_watt",
    "linear_to_db",
    "noise_power_watt",
    "thermal_noise_watt",
    "watt_to_dbm",
]

#: Speed of light in vacuum, m/s (exact, SI definition). Scenarios whose paper
#: uses c = 3e8 pass their own value through the ``speed_of_light`` keyword.
SPEED_OF_LIGHT = 299_792_458.0
#: Mean Earth radius, m (spherical Earth; TR 38.811 uses R = 6371 km).
EARTH_RADIUS = 6_371_000.0
#: Standard gravitational parameter of the Earth, m^3/s^2 (WGS-84 / IERS value).
GM_EARTH = 3.986004418e14
#: Boltzmann constant, J/K (exact, SI definition).
BOLTZMANN = 1.380649e-23


def _as_float(x):
    """``jnp.asarray(x)`` promoted to the default float dtype if it is integer/bool."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


def db_to_linear(x_db):
    """Decibels to a linear power ratio: ``x = 10**(x_db / 10)``.

    Args:
      x_db: ratio in dB, any shape.

    Returns:
      The dimensionless linear ratio, same shape.
    """
    x_db = _as_float(x_db)
    return jnp.power(10.0, x_db / 10.0)


def linear_to_db(x):
    """Linear power ratio to decibels: ``x_db = 10·log10(x)``.

    Args:
      x: non-negative linear ratio (dimensionless), any shape.

    Returns:
      The ratio in dB. Decision: no floor is applied, so ``x = 0`` gives
      ``-inf`` (mathematically exact); floor the input yourself if you need a
      finite value or gradient there.
    """
    x = _as_float(x)
    return 10.0 * jnp.log10(x)


def dbm_to_watt(p_dbm):
    """dBm to watts: ``P_W = 10**((P_dBm − 30) / 10)``.

    Args:
      p_dbm: power in dBm, any shape.

    Returns:
      Power in W (``dbm_to_watt(30) == 1.0``).
    """
    p_dbm = _as_float(p_dbm)
    return jnp.power(10.0, (p_dbm - 30.0) / 10.0)


def watt_to_dbm(p_w):
    """Watts to dBm: ``P_dBm = 10·log10(P_W) + 30``.

    Args:
      p_w: power in W (non-negative), any shape. ``0 W`` maps to ``-inf`` dBm.

    Returns:
      Power in dBm.
    """
    p_w = _as_float(p_w)
    return 10.0 * jnp.log10(p_w) + 30.0


def noise_power_watt(psd_dbm_per_hz, bandwidth_hz):
    """Noise power in a band from a power spectral density: ``N = 10**((N0_dBm/Hz − 30)/10) · B``.

    Example: ``noise_power_watt(-174, 1e6)`` ≈ 3.98e-15 W (thermal noise at
    290 K over 1 MHz).

    Args:
      psd_dbm_per_hz: noise PSD N0 in dBm/Hz.
      bandwidth_hz: bandwidth B in Hz. Broadcast against ``psd_dbm_per_hz``.

    Returns:
      Noise power in W.
    """
    return dbm_to_watt(psd_dbm_per_hz) * _as_float(bandwidth_hz)


def thermal_noise_watt(temperature_k, bandwidth_hz):
    """Johnson–Nyquist thermal noise power ``N = k_B·T·B`` (extra helper).

    Args:
      temperature_k: noise temperature T in K.
      bandwidth_hz: bandwidth B in Hz.

    Returns:
      Noise power in W.
    """
    return BOLTZMANN * _as_float(temperature_k) * _as_float(bandwidth_hz)
