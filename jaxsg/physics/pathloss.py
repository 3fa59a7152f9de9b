"""Path-loss models: free space, Al-Hourani air-to-ground, 3GPP TR 38.811 NTN, terrestrial.

* :func:`fspl_db` — Friis free-space path loss.
* :func:`los_probability_al_hourani`, :func:`air_to_ground_pathloss_db` —
  Al-Hourani et al., "Optimal LAP Altitude for Maximum Coverage", IEEE WCL 2014,
  as used in eq. (2)-(3) of the SGIN paper.
* :func:`ntn_los_probability`, :func:`ntn_clutter_loss_db`,
  :func:`ntn_shadow_fading_std_db`, :func:`ntn_pathloss_db` — 3GPP TR 38.811
  (v15.x) §6.6, Tables 6.6.1-1 and 6.6.2-1/2/3, linearly interpolated in
  elevation (clamped to [10°, 90°]). The S-band values are those of
  docs/physics.md; the Ka-band shadow-fading values (not in the spec) are
  from the same TR 38.811 tables.
* :func:`log_distance_pathloss_db`, :func:`uma_pathloss_db` — terrestrial links.

Distances that enter a logarithm are floored at ``min_distance_m`` (default
1 m; decision: keeps zero distances finite with finite gradients; below the
floor the loss is constant and its distance gradient is zero). Losses are in
dB, positive. String variants (``scenario``, ``band``) are static Python
arguments; unknown values raise ``ValueError`` (when wrapping these functions
in your own ``jax.jit``, mark ``scenario``/``band`` static or close over them).

The numeric kernels are ``jax.jit``-decorated (compiled once per input
shape when called eagerly; inlined when called inside a user's ``jit``). The
NTN functions are thin Python wrappers that validate the strings, pick the
table and call shared jitted cores, so every scenario/band reuses one
compiled executable.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .units import SPEED_OF_LIGHT, _as_float

__all__ = [
    "AL_HOURANI_ENV",
    "NTN_BANDS",
    "NTN_CLUTTER_LOSS_DB",
    "NTN_ELEVATION_DEG",
    "NTN_LOS_PROBABILITY_PERCENT",
    "NTN_SCENARIOS",
    "NTN_SHADOW_FADING_STD_DB",
    "air_to_ground_pathloss_db",
    "fspl_db",
    "log_distance_pathloss_db",
    "los_probability_al_hourani",
    "ntn_clutter_loss_db",
    "ntn_los_probability",
    "ntn_pathloss_db",
    "ntn_pathloss_sample",
    "ntn_shadow_fading_std_db",
    "uma_pathloss_db",
]

#: Al-Hourani S-curve parameters (a, b) per environment (IEEE WCL 2014, Table I
#: fit; b is per degree).
AL_HOURANI_ENV = {
    "suburban": (4.88, 0.43),
    "urban": (9.61, 0.16),
    "dense_urban": (12.08, 0.11),
    "high_rise": (27.23, 0.08),
}

# --------------------------------------------------------------------------- TR 38.811 tables
#: Elevation grid of TR 38.811 Tables 6.6.1-1 and 6.6.2-x, degrees.
NTN_ELEVATION_DEG = np.arange(10.0, 91.0, 10.0)

#: LoS probability in percent, TR 38.811 Table 6.6.1-1 (same for S and Ka band).
NTN_LOS_PROBABILITY_PERCENT = {
    "dense_urban": np.array([28.2, 33.1, 39.8, 46.8, 53.7, 61.2, 73.8, 82.0, 98.1]),
    "urban": np.array([24.6, 38.6, 49.3, 61.3, 72.6, 80.5, 91.9, 96.8, 99.2]),
    "suburban": np.array([78.2, 86.9, 91.9, 92.9, 93.5, 94.0, 94.9, 95.2, 99.8]),
}

#: Shadow-fading standard deviation in dB, {(scenario, band): (σ_LoS, σ_NLoS)},
#: TR 38.811 Table 6.6.2-1 (dense urban), 6.6.2-2 (urban), 6.6.2-3 (suburban/rural).
NTN_SHADOW_FADING_STD_DB = {
    ("dense_urban", "S"): (
        np.array([3.5, 3.4, 2.9, 3.0, 3.1, 2.7, 2.5, 2.3, 1.2]),
        np.array([15.5, 13.9, 12.4, 11.7, 10.6, 10.5, 10.1, 9.2, 9.2]),
    ),
    ("dense_urban", "Ka"): (
        np.array([2.9, 2.4, 2.7, 2.4, 2.4, 2.7, 2.6, 2.8, 0.6]),
        np.array([17.1, 17.1, 15.6, 14.6, 14.2, 12.6, 12.1, 12.3, 12.3]),
    ),
    ("urban", "S"): (np.full(9, 4.0), np.full(9, 6.0)),
    ("urban", "Ka"): (np.full(9, 4.0), np.full(9, 6.0)),
    ("suburban", "S"): (
        np.array([1.79, 1.14, 1.14, 0.92, 1.42, 1.56, 0.85, 0.72, 0.72]),
        np.array([8.93, 9.08, 8.78, 10.25, 10.56, 10.74, 10.17, 11.52, 11.52]),
    ),
    ("suburban", "Ka"): (
        np.array([1.9, 1.6, 1.9, 2.3, 2.7, 3.1, 3.0, 3.6, 0.4]),
        np.array([10.7, 10.0, 11.2, 11.6, 11.8, 10.8, 10.8, 10.8, 10.8]),
    ),
}

#: Clutter loss (NLoS only) in dB, {(scenario, band): CL}, TR 38.811 Tables
#: 6.6.2-1/2/3 (dense urban and urban share the same CL).
NTN_CLUTTER_LOSS_DB = {
    ("dense_urban", "S"): np.array([34.3, 30.9, 29.0, 27.7, 26.8, 26.2, 25.8, 25.5, 25.5]),
    ("dense_urban", "Ka"): np.array([44.3, 39.9, 37.5, 35.8, 34.6, 33.8, 33.3, 33.0, 32.9]),
    ("urban", "S"): np.array([34.3, 30.9, 29.0, 27.7, 26.8, 26.2, 25.8, 25.5, 25.5]),
    ("urban", "Ka"): np.array([44.3, 39.9, 37.5, 35.8, 34.6, 33.8, 33.3, 33.0, 32.9]),
    ("suburban", "S"): np.array([19.52, 18.17, 18.42, 18.28, 18.63, 17.68, 16.50, 16.30, 16.30]),
    ("suburban", "Ka"): np.array([29.5, 24.6, 21.9, 20.0, 18.7, 17.8, 17.2, 16.9, 16.8]),
}

#: Canonical scenario names; "rural" is accepted as an alias of "suburban"
#: (TR 38.811 Table 6.6.2-3 is "suburban and rural").
NTN_SCENARIOS = ("dense_urban", "urban", "suburban")
_SCENARIO_ALIASES = {"rural": "suburban"}
#: Canonical band names (S: 2-4 GHz, Ka: 26.5-40 GHz).
NTN_BANDS = ("S", "Ka")


def _canonical_scenario(scenario):
    if isinstance(scenario, str):
        key = scenario.strip().lower().replace(" ", "_").replace("-", "_")
        key = _SCENARIO_ALIASES.get(key, key)
        if key in NTN_SCENARIOS:
            return key
    raise ValueError(
        f"scenario must be one of {NTN_SCENARIOS} (or alias 'rural' for 'suburban'), "
        f"got {scenario!r}"
    )


def _canonical_band(band):
    if isinstance(band, str):
        for b in NTN_BANDS:
            if band.strip().lower() == b.lower():
                return b
    raise ValueError(f"band must be one of {NTN_BANDS}, got {band!r}")


@jax.jit
def _interp_elevation(elevation_deg, table):
    """Piecewise-linear table lookup on the 10°..90° grid, elevation clamped to [10, 90].

    Same values as ``jnp.interp(clip(α, 10, 90), NTN_ELEVATION_DEG, table)``,
    written as an explicit lerp on the uniform 10° grid (cell index
    ``floor((α − 10)/10)``): ~4x cheaper to compile and ~7x cheaper to run
    op-by-op than the searchsorted of ``jnp.interp``; NaN propagates. Jitted
    with the table as an *argument*, so every scenario/band shares one compiled
    executable per input shape when called outside ``jit``.
    """
    el = jnp.clip(_as_float(elevation_deg), 10.0, 90.0)
    table = table.astype(el.dtype)
    pos = (el - 10.0) / 10.0
    cell = jnp.clip(jnp.floor(pos), 0.0, 7.0)
    w = pos - cell
    i = cell.astype(jnp.int32)
    return table[i] * (1.0 - w) + table[i + 1] * w


def _table(values):
    return np.asarray(values, dtype=np.float32)


# --------------------------------------------------------------------------- free space
@jax.jit
def fspl_db(distance_m, freq_hz, speed_of_light=SPEED_OF_LIGHT, min_distance_m=1.0):
    """Free-space path loss ``FSPL = 20·log10(4π·d·f / c)`` dB (Friis; TR 38.811 eq. 6.6-3).

    Examples (c = 299 792 458 m/s): 600 km @ 2 GHz = 154.03 dB, 1000 km @ 2 GHz
    = 158.47 dB, 1950 km @ 0.1 GHz = 138.25 dB.

    Args:
      distance_m: distance d, m; floored at ``min_distance_m``.
      freq_hz: carrier frequency f, Hz (> 0).
      speed_of_light: c, m/s (keyword; the SGIN scenario passes 3e8).
      min_distance_m: distance floor, m (default 1 m; decision of this module).

    Returns:
      Path loss in dB, broadcast shape.
    """
    d = jnp.maximum(_as_float(distance_m), min_distance_m)
    f = _as_float(freq_hz)
    c = _as_float(speed_of_light)
    # Sum of logs rather than log of a product: avoids 1e16-scale intermediates.
    return 20.0 * (jnp.log10(d) + jnp.log10(f) - jnp.log10(c)) + 20.0 * math.log10(4.0 * math.pi)


# --------------------------------------------------------------------------- Al-Hourani
@jax.jit
def los_probability_al_hourani(elevation_deg, a, b):
    """Al-Hourani LoS probability ``P_LoS = 1 / (1 + a·exp(−b·(θ − a)))``.

    Al-Hourani, Kandeepan, Lardner, IEEE Wireless Commun. Lett. 3(6), 2014,
    eq. (5); θ in **degrees**. Environment constants in ``AL_HOURANI_ENV``.
    Example (urban a = 9.61, b = 0.16): θ = 10° → 0.0997, 45° → 0.9677.

    Args:
      elevation_deg: elevation angle θ, degrees.
      a, b: S-curve parameters (dimensionless; b per degree).

    Returns:
      Probability in (0, 1).
    """
    theta = _as_float(elevation_deg)
    return jax.nn.sigmoid(_as_float(b) * (theta - a) - jnp.log(_as_float(a)))


@jax.jit
def air_to_ground_pathloss_db(
    horizontal_m,
    vertical_m,
    freq_hz,
    eta_los_db,
    eta_nlos_db,
    a,
    b,
    speed_of_light=SPEED_OF_LIGHT,
    min_distance_m=1.0,
):
    """Mean air-to-ground path loss (SGIN paper eq. (2)-(3), after Al-Hourani 2014).

    ``PL = FSPL(sqrt(x² + y²), f) + p·η_LoS + (1 − p)·η_NLoS`` with
    ``p = 1 / (1 + a·exp(−b·(θ − a)))``, ``θ = atan2(y, x)`` in degrees.
    The paper prints "log2" in the FSPL; it is read as 20·log10 (log2 would
    give 440-470 dB), and its bracket as the standard −b(θ − a).

    Decisions: the 3-D distance is floored at ``min_distance_m`` (1 m); when
    x = y = 0 the elevation is taken as 90° (overhead) so the value and its
    gradient stay finite.

    Args:
      horizontal_m: ground (horizontal) distance x, m (>= 0).
      vertical_m: height difference y, m (>= 0).
      freq_hz: carrier frequency, Hz.
      eta_los_db, eta_nlos_db: excess losses η_LoS, η_NLoS, dB.
      a, b: Al-Hourani parameters (see ``AL_HOURANI_ENV``).
      speed_of_light: c, m/s (keyword; the SGIN scenario passes 3e8).
      min_distance_m: distance floor, m.

    Returns:
      Mean path loss in dB, broadcast shape.
    """
    x = _as_float(horizontal_m)
    y = _as_float(vertical_m)
    r2 = x * x + y * y
    d = jnp.sqrt(jnp.maximum(r2, min_distance_m**2))
    both_zero = r2 == 0
    theta_deg = jnp.degrees(jnp.arctan2(jnp.where(both_zero, 1.0, y), jnp.where(both_zero, 0.0, x)))
    p = los_probability_al_hourani(theta_deg, a, b)
    return (
        fspl_db(d, freq_hz, speed_of_light=speed_of_light, min_distance_m=min_distance_m)
        + p * _as_float(eta_los_db)
        + (1.0 - p) * _as_float(eta_nlos_db)
    )


# --------------------------------------------------------------------------- TR 38.811
def ntn_los_probability(elevation_deg, scenario):
    """LoS probability of an NTN link, 3GPP TR 38.811 Table 6.6.1-1.

    Linear interpolation between the 10° grid points; elevation clamped to
    [10°, 90°] (decision: below 10° the 10° value is used).

    Args:
      elevation_deg: elevation, degrees.
      scenario: static str in {"dense_urban", "urban", "suburban"} ("rural" =
        "suburban").

    Returns:
      Probability in [0, 1] (the table is in percent; this returns a fraction).
    """
    key = _canonical_scenario(scenario)
    return _interp_elevation(elevation_deg, _table(NTN_LOS_PROBABILITY_PERCENT[key] / 100.0))


def ntn_clutter_loss_db(elevation_deg, scenario, band):
    """Clutter loss CL (applies to NLoS only), TR 38.811 Tables 6.6.2-1/2/3.

    Linear interpolation in elevation, clamped to [10°, 90°].

    Args:
      elevation_deg: elevation, degrees.
      scenario: static str, see :func:`ntn_los_probability`.
      band: static str in {"S", "Ka"} (case-insensitive).

    Returns:
      CL in dB.
    """
    key = (_canonical_scenario(scenario), _canonical_band(band))
    return _interp_elevation(elevation_deg, _table(NTN_CLUTTER_LOSS_DB[key]))


def ntn_shadow_fading_std_db(elevation_deg, scenario, band, los):
    """Shadow-fading standard deviation σ_SF, TR 38.811 Tables 6.6.2-1/2/3.

    Linear interpolation in elevation, clamped to [10°, 90°]. Urban uses
    4 dB (LoS) / 6 dB (NLoS) at every angle.

    Args:
      elevation_deg: elevation, degrees.
      scenario: static str, see :func:`ntn_los_probability`.
      band: static str in {"S", "Ka"}.
      los: bool (Python or array, broadcast with ``elevation_deg``): LoS state.

    Returns:
      σ_SF in dB.
    """
    key = (_canonical_scenario(scenario), _canonical_band(band))
    sf_los, sf_nlos = NTN_SHADOW_FADING_STD_DB[key]
    return _select_los(
        los,
        _interp_elevation(elevation_deg, _table(sf_los)),
        _interp_elevation(elevation_deg, _table(sf_nlos)),
    )


@jax.jit
def _select_los(los, x_los, x_nlos):
    return jnp.where(jnp.asarray(los, dtype=bool), x_los, x_nlos)


@jax.jit
def _ntn_sample_core(key, fspl, p_los, sf_los, sf_nlos, cl):
    """LoS ~ Bernoulli(p_los); PL = FSPL + σ(los)·N(0, 1) + CL·[not los] (scenario-free core)."""
    shape = jnp.broadcast_shapes(fspl.shape, p_los.shape, sf_los.shape, sf_nlos.shape, cl.shape)
    k_los, k_sf = jax.random.split(key)
    los = jax.random.bernoulli(k_los, jnp.broadcast_to(p_los, shape))
    z = jax.random.normal(k_sf, shape, dtype=fspl.dtype)
    pl = fspl + jnp.where(los, sf_los, sf_nlos) * z + jnp.where(los, 0.0, cl)
    return pl, los


def ntn_pathloss_sample(
    key, distance_m, freq_hz, elevation_deg, scenario, band, speed_of_light=SPEED_OF_LIGHT
):
    """Sampled NTN basic path loss and the LoS draw (TR 38.811 §6.6.2, eq. 6.6-1/6.6-3).

    ``los ~ Bernoulli(P_LoS(α))``; ``PL_b = FSPL(d, f) + SF + CL(α)·[not los]``
    with ``SF ~ N(0, σ_SF(α, los)²)``. Atmospheric, scintillation and
    building-entry losses (PL_g, PL_s, PL_e) are not included (decision).
    The key is split into one sub-key for the LoS draw and one for the shadow
    fading; every link gets independent draws. Differentiable in
    ``distance_m``/``freq_hz`` for a fixed key (reparameterised SF); the LoS
    draw itself is not.

    Args:
      key: ``jax.random`` PRNG key.
      distance_m: slant range, m.
      freq_hz: carrier frequency, Hz.
      elevation_deg: elevation, degrees.
      scenario: static str in {"dense_urban", "urban", "suburban"} ("rural" alias).
      band: static str in {"S", "Ka"}.
      speed_of_light: c, m/s (keyword).

    Returns:
      ``(pathloss_db, los)``: float array and bool array of the broadcast shape.
    """
    p_los = ntn_los_probability(elevation_deg, scenario)
    sf_los = ntn_shadow_fading_std_db(elevation_deg, scenario, band, True)
    sf_nlos = ntn_shadow_fading_std_db(elevation_deg, scenario, band, False)
    cl = ntn_clutter_loss_db(elevation_deg, scenario, band)
    fspl = fspl_db(distance_m, freq_hz, speed_of_light=speed_of_light)
    return _ntn_sample_core(key, fspl, p_los, sf_los, sf_nlos, cl)


def ntn_pathloss_db(
    key, distance_m, freq_hz, elevation_deg, scenario, band, speed_of_light=SPEED_OF_LIGHT
):
    """Sampled NTN basic path loss in dB (TR 38.811 §6.6.2): see :func:`ntn_pathloss_sample`.

    ``PL_b = FSPL(d, f) + SF + CL·[NLoS]`` with ``LoS ~ Bernoulli(P_LoS)`` and
    ``SF ~ N(0, σ_SF²)``; σ_SF and CL from TR 38.811 Tables 6.6.2-1/2/3 at the
    elevation, interpolated and clamped to [10°, 90°].

    Args:
      key: PRNG key (split internally: LoS draw, shadow fading).
      distance_m: slant range, m. freq_hz: Hz. elevation_deg: degrees.
      scenario: static str in {"dense_urban", "urban", "suburban"} ("rural" alias).
      band: static str in {"S", "Ka"}.
      speed_of_light: c, m/s (keyword).

    Returns:
      Path loss in dB, broadcast shape of the inputs.
    """
    return ntn_pathloss_sample(
        key, distance_m, freq_hz, elevation_deg, scenario, band, speed_of_light=speed_of_light
    )[0]


# --------------------------------------------------------------------------- terrestrial
@jax.jit
def log_distance_pathloss_db(distance_m, pl0_db, exponent, d0_m=1.0, min_distance_m=1.0):
    """Log-distance path loss ``PL = PL0 + 10·n·log10(d / d0)`` dB (Rappaport, *Wireless
    Communications*, eq. 4.68).

    Args:
      distance_m: distance d, m; floored at ``min_distance_m`` (1 m).
      pl0_db: path loss at the reference distance, dB.
      exponent: path-loss exponent n (dimensionless).
      d0_m: reference distance d0, m.
      min_distance_m: distance floor, m.

    Returns:
      Path loss in dB.
    """
    d = jnp.maximum(_as_float(distance_m), min_distance_m)
    return _as_float(pl0_db) + 10.0 * _as_float(exponent) * jnp.log10(d / _as_float(d0_m))


@jax.jit
def uma_pathloss_db(distance_m, min_distance_m=1.0):
    """3GPP urban-macro path loss ``PL = 128.1 + 37.6·log10(d / 1 km)`` dB.

    (3GPP TR 36.814 Table A.2.1.1-2 / TR 36.942 macro-cell model, 2 GHz;
    the usual terrestrial BS-user model.) Example: 1 km → 128.1 dB.

    Args:
      distance_m: distance d, m (in metres; converted to km internally),
        floored at ``min_distance_m`` (1 m).
      min_distance_m: distance floor, m.

    Returns:
      Path loss in dB.
    """
    d = jnp.maximum(_as_float(distance_m), min_distance_m)
    return 128.1 + 37.6 * jnp.log10(d / 1000.0)
