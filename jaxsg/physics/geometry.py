"""Geometry and orbits: slant range, elevation, ECEF positions, circular orbits, Walker-δ.

Conventions (decisions where the spec is silent):

* Spherical Earth of radius ``EARTH_RADIUS`` centred at the origin of an
  Earth-centred Cartesian frame ("ECEF-like", metres). **Earth rotation is
  ignored**: the frame is treated as inertial, so orbits are fixed ellipses
  (circles) in it and ground points are fixed. Over the minutes-long episodes
  of the scenarios this only shifts ground tracks by ~0.25°/min of longitude.
* Angles are radians unless the argument name says ``_deg``.
* Cartesian vectors have their 3 components on the **last** axis; all other
  axes broadcast.

All functions are pure ``jax.numpy``, jit/vmap-able and differentiable
(degenerate points use safe-``where`` patterns so gradients stay finite).
They are ``jax.jit``-decorated (``walker_delta`` with static ``total``,
``planes``, ``phasing``): one compilation per input shape when called
eagerly, inlined when called inside a user's ``jit``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .units import EARTH_RADIUS, GM_EARTH, _as_float

__all__ = [
    "circular_orbit_state",
    "deviation_angle",
    "elevation_angle",
    "geodetic_to_ecef",
    "orbital_period",
    "orbital_speed",
    "slant_range",
    "walker_delta",
]


def _safe_sqrt(x):
    """sqrt(max(x, 0)) with a finite (zero) gradient at x <= 0."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


@jax.jit
def slant_range(elevation_rad, altitude_m, earth_radius=EARTH_RADIUS):
    """Slant range between a ground terminal and a satellite seen at elevation α.

    ``d = sqrt(R²·sin²α + h² + 2·h·R) − R·sin α``   (3GPP TR 38.811 eq. 6.6-2).

    Examples: h = 600 km → 1931.64 km at 10°, 1075.09 km at 30°, 600 km at 90°.

    Args:
      elevation_rad: elevation angle α at the ground terminal, rad.
      altitude_m: satellite altitude h above the spherical Earth, m.
      earth_radius: Earth radius R, m (keyword; default ``EARTH_RADIUS``).

    Returns:
      Slant range in m, broadcast shape of the inputs.
    """
    alpha = _as_float(elevation_rad)
    h = _as_float(altitude_m)
    r_sin = earth_radius * jnp.sin(alpha)
    return jnp.sqrt(r_sin**2 + h**2 + 2.0 * h * earth_radius) - r_sin


@jax.jit
def elevation_angle(ground_xyz, sat_xyz):
    """Elevation of ``sat_xyz`` above the local horizon of ``ground_xyz`` (spherical Earth).

    With d = sat − ground and the local up unit vector û = ground/|ground|,
    ``α = atan2(d·û, |d − (d·û)û|)``, equivalent to ``asin(d·û / |d|)``
    (standard topocentric elevation, e.g. Vallado, *Fundamentals of
    Astrodynamics*, §4.4) but with finite gradients at the zenith.

    Args:
      ground_xyz: ground-terminal position, shape (..., 3), m, Earth-centred.
        Must not be the Earth's centre.
      sat_xyz: satellite position, shape (..., 3), m. Broadcasts with
        ``ground_xyz`` (e.g. (G, 1, 3) and (1, S, 3) give a (G, S) result).

    Returns:
      Elevation in rad, in [−π/2, π/2]; negative below the horizon. Shape:
      broadcast of the leading axes.
    """
    g = _as_float(ground_xyz)
    s = _as_float(sat_xyz)
    up = g / jnp.linalg.norm(g, axis=-1, keepdims=True)
    d = s - g
    vertical = jnp.sum(d * up, axis=-1)
    perp = d - vertical[..., None] * up
    horizontal = _safe_sqrt(jnp.sum(perp * perp, axis=-1))
    return jnp.arctan2(vertical, horizontal)


@jax.jit
def geodetic_to_ecef(lat_rad, lon_rad, alt_m=0.0, earth_radius=EARTH_RADIUS):
    """Latitude/longitude/altitude on a spherical Earth to Earth-centred Cartesian.

    ``p = (R + alt)·(cos φ cos λ, cos φ sin λ, sin φ)`` (spherical, not WGS-84:
    decision consistent with TR 38.811's spherical-Earth geometry).

    Args:
      lat_rad: latitude φ, rad.
      lon_rad: longitude λ, rad.
      alt_m: altitude above the sphere, m (default 0).
      earth_radius: sphere radius R, m.

    Returns:
      Position, shape (..., 3), m.
    """
    lat = _as_float(lat_rad)
    lon = _as_float(lon_rad)
    r = earth_radius + _as_float(alt_m)
    lat, lon, r = jnp.broadcast_arrays(lat, lon, r)
    c = jnp.cos(lat)
    return jnp.stack([r * c * jnp.cos(lon), r * c * jnp.sin(lon), r * jnp.sin(lat)], axis=-1)


@jax.jit
def orbital_speed(altitude_m, earth_radius=EARTH_RADIUS, gm=GM_EARTH):
    """Circular orbital speed ``v = sqrt(GM / (R + h))`` (vis-viva with a = r).

    Example: h = 600 km → 7561.7 m/s.

    Args:
      altitude_m: altitude h, m.
      earth_radius: R, m.
      gm: gravitational parameter GM, m³/s².

    Returns:
      Speed in m/s.
    """
    return jnp.sqrt(gm / (earth_radius + _as_float(altitude_m)))


@jax.jit
def orbital_period(altitude_m, earth_radius=EARTH_RADIUS, gm=GM_EARTH):
    """Circular orbital period ``T = 2π·sqrt((R + h)³ / GM)`` (Kepler's third law).

    Example: h = 600 km → 5792 s = 96.5 min.

    Args:
      altitude_m: altitude h, m.
      earth_radius: R, m.
      gm: GM, m³/s².

    Returns:
      Period in s.
    """
    r = earth_radius + _as_float(altitude_m)
    return 2.0 * math.pi * r * jnp.sqrt(r / gm)


@jax.jit
def circular_orbit_state(
    t, altitude_m, inclination_rad, raan_rad, phase_rad, earth_radius=EARTH_RADIUS, gm=GM_EARTH
):
    """Position and velocity on a circular orbit at time t.

    Argument of latitude ``u = u0 + n·t`` with mean motion
    ``n = sqrt(GM / r³)``, r = R + h; the orbit-plane position ``r(cos u, sin u, 0)``
    is rotated by the inclination i about x and the RAAN Ω about z (classical
    orbital elements with e = 0, e.g. Vallado §2.6, COE2RV):

    ``p = r·(cosΩ cos u − sinΩ cos i sin u, sinΩ cos u + cosΩ cos i sin u, sin i sin u)``,
    ``v = r·n·(−cosΩ sin u − sinΩ cos i cos u, −sinΩ sin u + cosΩ cos i cos u, sin i cos u)``.

    |v| = sqrt(GM/(R+h)) and |p| = R + h at all t. Earth rotation ignored
    (inertial frame, see the module docstring).

    Args:
      t: time since epoch, s.
      altitude_m: altitude h, m.
      inclination_rad: inclination i, rad.
      raan_rad: right ascension of the ascending node Ω, rad.
      phase_rad: argument of latitude u0 at t = 0 (angle from the ascending
        node), rad.
      earth_radius, gm: keywords, R (m) and GM (m³/s²).

    Returns:
      ``(position, velocity)``, each of shape (..., 3) where ``...`` is the
      broadcast shape of the five arguments; m and m/s.
    """
    t = _as_float(t)
    r = earth_radius + _as_float(altitude_m)
    inc = _as_float(inclination_rad)
    raan = _as_float(raan_rad)
    n = jnp.sqrt(gm / r**3)
    u = _as_float(phase_rad) + n * t
    cu, su = jnp.cos(u), jnp.sin(u)
    ci, si = jnp.cos(inc), jnp.sin(inc)
    co, so = jnp.cos(raan), jnp.sin(raan)
    pos = jnp.stack(
        jnp.broadcast_arrays(
            r * (co * cu - so * ci * su), r * (so * cu + co * ci * su), r * (si * su)
        ),
        axis=-1,
    )
    rn = r * n
    vel = jnp.stack(
        jnp.broadcast_arrays(
            rn * (-co * su - so * ci * cu), rn * (-so * su + co * ci * cu), rn * (si * cu)
        ),
        axis=-1,
    )
    return pos, vel


@functools.partial(jax.jit, static_argnames=("total", "planes", "phasing"))
def walker_delta(
    t,
    total,
    planes,
    phasing,
    altitude_m,
    inclination_rad,
    earth_radius=EARTH_RADIUS,
    gm=GM_EARTH,
):
    """Positions and velocities of a Walker-δ constellation i: T/P/F (Walker 1984).

    With S = T/P satellites per plane, satellite ``k = p·S + j`` (plane-major
    order, p = 0..P−1, j = 0..S−1) has
    ``Ω_p = 2π·p/P`` and ``u_{p,j}(0) = 2π·j/S + 2π·F·p/T``, all at the same
    altitude and inclination, propagated with :func:`circular_orbit_state`.

    Args:
      t: time, s; any shape (...).
      total: T, number of satellites (static Python int > 0).
      planes: P, number of planes (static int > 0, must divide T).
      phasing: F, relative phasing (static int, 0 <= F <= P − 1).
      altitude_m: altitude, m (scalar or shape broadcastable with ``t``).
      inclination_rad: inclination, rad (same).
      earth_radius, gm: keywords, R (m) and GM (m³/s²).

    Returns:
      ``(position, velocity)``, each of shape (..., T, 3), m and m/s.

    Raises:
      ValueError: if ``total``, ``planes`` or ``phasing`` are not valid
        (non-integers, T % P != 0, F outside [0, P − 1]).
    """
    for name, val in (("total", total), ("planes", planes), ("phasing", phasing)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool):
            raise ValueError(f"walker_delta: {name} must be a static Python int, got {val!r}")  # noqa: TRY004 (spec: bad configuration is a ValueError)
    if total <= 0:
        raise ValueError(f"walker_delta: total must be > 0, got {total}")
    if planes <= 0 or total % planes != 0:
        raise ValueError(
            f"walker_delta: planes must be a positive divisor of total={total}, got {planes}"
        )
    if not 0 <= phasing <= planes - 1:
        raise ValueError(
            f"walker_delta: phasing must be in [0, planes-1={planes - 1}], got {phasing}"
        )
    per_plane = total // planes
    p = np.repeat(np.arange(planes), per_plane)
    j = np.tile(np.arange(per_plane), planes)
    raan = 2.0 * np.pi * p / planes
    phase = 2.0 * np.pi * j / per_plane + 2.0 * np.pi * phasing * p / total
    dtype = jnp.result_type(float)
    raan = jnp.asarray(raan, dtype=dtype)
    phase = jnp.asarray(phase, dtype=dtype)
    t = _as_float(t)[..., None]
    alt = _as_float(altitude_m)[..., None]
    inc = _as_float(inclination_rad)[..., None]
    return circular_orbit_state(t, alt, inc, raan, phase, earth_radius=earth_radius, gm=gm)


@jax.jit
def deviation_angle(d_sat_center, d_sat_user, d_center_user):
    """Off-axis angle at the satellite between the beam-centre line and the user.

    Law of cosines in the triangle satellite / beam centre / user (flat-Earth
    cell): ``cos φ = (a² + b² − c²) / (2ab)`` with a = d_sat_center,
    b = d_sat_user, c = d_center_user. Implemented as
    ``φ = atan2(4·A, a² + b² − c²)`` where 4A = sqrt((a+b+c)(−a+b+c)(a−b+c)(a+b−c))
    (Heron), which equals ``arccos`` of the above but keeps gradients finite
    when the user is at the beam centre (φ = 0). Decision: rounding that makes
    the three lengths violate the triangle inequality is clamped to a
    degenerate triangle (φ = 0 or π).

    Args:
      d_sat_center: distance satellite → beam centre, m (> 0).
      d_sat_user: distance satellite → user, m (> 0).
      d_center_user: distance beam centre → user, m (>= 0).

    Returns:
      φ in rad, in [0, π].
    """
    a = _as_float(d_sat_center)
    b = _as_float(d_sat_user)
    c = _as_float(d_center_user)
    heron = (a + b + c) * (-a + b + c) * (a - b + c) * (a + b - c)
    four_area = _safe_sqrt(heron)
    return jnp.arctan2(four_area, a * a + b * b - c * c)
