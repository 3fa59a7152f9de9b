"""Tests of jaxsg.physics against the values in docs/physics.md, tabulated
references (TR 38.811, scipy.special.jv) and brute-force NumPy oracles."""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

import jaxsg.physics as P

RTOL = 1e-3
DEG = math.pi / 180.0


def jgrad(f, **kwargs):
    """jit(grad(f)): one compilation instead of op-by-op eager differentiation."""
    return jax.jit(jax.grad(f, **kwargs))


def close(actual, expected, rtol=RTOL, atol=0.0):
    chex.assert_trees_all_close(
        jnp.asarray(actual, jnp.float32), jnp.asarray(expected, jnp.float32), rtol=rtol, atol=atol
    )


def central_fd(f, x, rel_step=1e-2):
    """Central finite difference of a scalar function, step relative to |x|."""
    h = rel_step * abs(x) if x != 0 else rel_step
    return (float(f(x + h)) - float(f(x - h))) / (2.0 * h)


# ============================================================================ units
def test_units_spec_values():
    assert float(P.dbm_to_watt(30)) == 1.0
    close(P.noise_power_watt(-174, 1e6), 3.98e-15)
    close(P.db_to_linear(20.0), 100.0)
    close(P.linear_to_db(1000.0), 30.0)
    close(P.watt_to_dbm(0.001), 0.0, atol=1e-5)
    close(P.watt_to_dbm(2.0), 33.0103)
    close(P.thermal_noise_watt(290.0, 1e6), 4.0039e-15)
    assert P.SPEED_OF_LIGHT == 299_792_458.0
    assert P.EARTH_RADIUS == 6_371_000.0
    assert P.GM_EARTH == 3.986004418e14
    assert P.BOLTZMANN == 1.380649e-23


def test_units_dtype_and_roundtrip():
    x = jnp.arange(-30, 31)  # integer input promoted to float32
    chex.assert_type(P.db_to_linear(x), jnp.float32)
    close(P.linear_to_db(P.db_to_linear(x)), x, atol=1e-4)
    close(P.watt_to_dbm(P.dbm_to_watt(x)), x, atol=1e-4)


# ============================================================================ geometry
@pytest.mark.parametrize(
    "h_km, el_deg, d_km",
    [
        (600, 10, 1931.64),
        (600, 30, 1075.09),
        (600, 90, 600.0),
        (1200, 10, 3130.94),
        (1200, 30, 1998.88),
    ],
)
def test_slant_range_spec(h_km, el_deg, d_km):
    close(P.slant_range(el_deg * DEG, h_km * 1e3), d_km * 1e3)


def test_slant_range_broadcast():
    el = jnp.linspace(10, 90, 5)[:, None] * DEG
    h = jnp.array([600e3, 1200e3])[None, :]
    chex.assert_shape(P.slant_range(el, h), (5, 2))


def test_orbital_speed_period():
    close(P.orbital_speed(600e3), 7561.7)
    close(P.orbital_period(600e3) / 60.0, 96.5)


def test_circular_orbit_state():
    t = jnp.linspace(0.0, 20000.0, 41)
    pos, vel = P.circular_orbit_state(t, 600e3, 53 * DEG, 0.7, 0.3)
    chex.assert_shape(pos, (41, 3))
    chex.assert_shape(vel, (41, 3))
    close(jnp.linalg.norm(pos, axis=-1), np.full(41, P.EARTH_RADIUS + 600e3))
    close(jnp.linalg.norm(vel, axis=-1), np.full(41, 7561.7))
    # circular orbit: velocity perpendicular to position
    cosang = jnp.sum(pos * vel, -1) / (
        jnp.linalg.norm(pos, axis=-1) * jnp.linalg.norm(vel, axis=-1)
    )
    close(cosang, np.zeros(41), atol=1e-5)
    # velocity is the time derivative of position
    dpos = jax.jit(jax.jacfwd(lambda tt: P.circular_orbit_state(tt, 600e3, 53 * DEG, 0.7, 0.3)[0]))(
        1234.0
    )
    close(dpos, P.circular_orbit_state(1234.0, 600e3, 53 * DEG, 0.7, 0.3)[1], rtol=1e-3, atol=0.5)
    # inclination: max |z| = r sin i; at t=0, phase=0 the satellite is at the ascending node
    p0, v0 = P.circular_orbit_state(0.0, 600e3, 53 * DEG, 0.7, 0.0)
    close(p0, (P.EARTH_RADIUS + 600e3) * np.array([math.cos(0.7), math.sin(0.7), 0.0]), atol=1.0)
    assert float(v0[2]) > 0.0
    hvec = np.cross(np.asarray(pos[0], np.float64), np.asarray(vel[0], np.float64))
    close(math.acos(hvec[2] / np.linalg.norm(hvec)), 53 * DEG)


def test_geodetic_to_ecef():
    R = P.EARTH_RADIUS
    close(P.geodetic_to_ecef(0.0, 0.0), [R, 0.0, 0.0], atol=1e-2)
    close(P.geodetic_to_ecef(90 * DEG, 0.0, 1000.0), [0.0, 0.0, R + 1000.0], atol=1.0)
    close(P.geodetic_to_ecef(0.0, 90 * DEG), [0.0, R, 0.0], atol=1.0)
    lat = jnp.linspace(-1, 1, 4)[:, None]
    lon = jnp.linspace(0, 3, 5)[None, :]
    chex.assert_shape(P.geodetic_to_ecef(lat, lon), (4, 5, 3))


@pytest.mark.parametrize("el_deg", [10.0, 30.0, 55.0, 89.0, 90.0])
def test_elevation_angle_consistent_with_slant_range(el_deg):
    """Place a satellite at slant range d(α) and elevation α: it must sit at R + h
    and elevation_angle must return α (two independent formulas)."""
    R, h = P.EARTH_RADIUS, 600e3
    g = np.array([0.0, 0.0, R])  # north pole; up = +z, a horizontal direction = +x
    d = float(P.slant_range(el_deg * DEG, h))
    a = el_deg * DEG
    s = g + d * np.array([math.cos(a), 0.0, math.sin(a)])
    close(np.linalg.norm(s), R + h)
    close(P.elevation_angle(g, s), a, atol=1e-4)


def test_elevation_angle_broadcast_and_grad():
    R = P.EARTH_RADIUS
    ground = P.geodetic_to_ecef(jnp.linspace(-0.3, 0.3, 4), jnp.zeros(4))[:, None, :]  # (4,1,3)
    sats, _ = P.walker_delta(0.0, 12, 3, 1, 600e3, 53 * DEG)  # (12,3)
    el = P.elevation_angle(ground, sats[None])
    chex.assert_shape(el, (4, 12))
    assert bool(jnp.all(jnp.abs(el) <= math.pi / 2 + 1e-6))
    # zenith: finite gradient
    gz = jnp.array([R, 0.0, 0.0])
    sz = jnp.array([R + 600e3, 0.0, 0.0])
    close(P.elevation_angle(gz, sz), math.pi / 2)
    grad = jgrad(lambda s: P.elevation_angle(gz, s))(sz)
    assert bool(jnp.all(jnp.isfinite(grad)))
    # below the horizon: negative
    assert float(P.elevation_angle(gz, jnp.array([-R, 0.0, 0.0]))) < 0


def test_walker_delta():
    T, Pl, F, h, inc = 24, 4, 1, 1200e3, 53 * DEG
    pos, vel = P.walker_delta(100.0, T, Pl, F, h, inc)
    chex.assert_shape(pos, (T, 3))
    chex.assert_shape(vel, (T, 3))
    close(jnp.linalg.norm(pos, axis=-1), np.full(T, P.EARTH_RADIUS + h))
    close(jnp.linalg.norm(vel, axis=-1), np.full(T, float(P.orbital_speed(h))))
    pos64, vel64 = np.asarray(pos, np.float64), np.asarray(vel, np.float64)
    hvec = np.cross(pos64, vel64)
    raan = np.mod(np.arctan2(hvec[:, 0], -hvec[:, 1]), 2 * np.pi)
    incl = np.arccos(hvec[:, 2] / np.linalg.norm(hvec, axis=-1))
    close(incl, np.full(T, inc))
    S = T // Pl
    expected_raan = np.repeat(2 * np.pi * np.arange(Pl) / Pl, S)
    dif = np.angle(np.exp(1j * (raan - expected_raan)))
    close(dif, np.zeros(T), atol=1e-4)
    # no two satellites coincide
    dmin = np.min(np.linalg.norm(pos64[:, None] - pos64[None], axis=-1) + np.eye(T) * 1e12)
    assert dmin > 1e5
    # batched time
    pos_b, _ = P.walker_delta(jnp.array([0.0, 10.0, 20.0]), T, Pl, F, h, inc)
    chex.assert_shape(pos_b, (3, T, 3))
    close(pos_b[0], P.walker_delta(0.0, T, Pl, F, h, inc)[0], atol=1.0)


def test_walker_delta_in_plane_spacing_and_phasing():
    T, Pl, F, h = 12, 3, 2, 600e3
    r = P.EARTH_RADIUS + h
    pos, _ = P.walker_delta(0.0, T, Pl, F, h, 0.0)  # equatorial: angles are in-plane anomalies
    ang = np.mod(
        np.arctan2(np.asarray(pos[:, 1], np.float64), np.asarray(pos[:, 0], np.float64)), 2 * np.pi
    )
    # plane 0, sats j: 2πj/4 ; plane p: RAAN 2πp/3 + 2πF p/T
    p = np.repeat(np.arange(Pl), T // Pl)
    j = np.tile(np.arange(T // Pl), Pl)
    expected = np.mod(
        2 * np.pi * p / Pl + 2 * np.pi * j / (T // Pl) + 2 * np.pi * F * p / T, 2 * np.pi
    )
    close(np.angle(np.exp(1j * (ang - expected))), np.zeros(T), atol=1e-4)
    close(np.linalg.norm(np.asarray(pos), axis=-1), np.full(T, r))


@pytest.mark.parametrize(
    "args", [(24, 5, 1), (24, 4, 4), (0, 1, 0), (24, 0, 0), (24, 4, -1), (24.0, 4, 1)]
)
def test_walker_delta_invalid(args):
    with pytest.raises(ValueError):
        P.walker_delta(0.0, *args, 600e3, 0.9)


def test_deviation_angle():
    close(P.deviation_angle(3.0, 5.0, 4.0), math.acos(0.6))
    close(P.deviation_angle(4.0, 5.0, 3.0), math.acos(0.8))
    close(P.deviation_angle(1.0, 1.0, math.sqrt(2.0)), math.pi / 2)
    # realistic: satellite 600 km above the beam centre, user 20 km away
    close(P.deviation_angle(600e3, math.hypot(600e3, 20e3), 20e3), math.atan(20e3 / 600e3))
    # user at beam centre: 0 with finite gradient
    assert float(P.deviation_angle(600e3, 600e3, 0.0)) == 0.0
    g = jgrad(P.deviation_angle, argnums=(0, 1, 2))(600e3, 600e3, 0.0)
    assert all(bool(jnp.isfinite(x)) for x in g)
    chex.assert_shape(
        P.deviation_angle(jnp.ones((3, 1)) * 6e5, jnp.ones((1, 4)) * 6.1e5, 1e4), (3, 4)
    )


# ============================================================================ path loss
@pytest.mark.parametrize(
    "d, f, expected", [(600e3, 2e9, 154.03), (1000e3, 2e9, 158.47), (1950e3, 0.1e9, 138.25)]
)
def test_fspl_spec(d, f, expected):
    close(P.fspl_db(d, f), expected, rtol=2e-5)


def test_fspl_speed_of_light_and_floor():
    close(
        P.fspl_db(600e3, 2e9, speed_of_light=3e8),
        20 * math.log10(4 * math.pi * 600e3 * 2e9 / 3e8),
        rtol=1e-6,
    )
    # distance floored at 1 m: zero distance finite, equal to 1 m, zero gradient
    close(P.fspl_db(0.0, 2e9), P.fspl_db(1.0, 2e9), rtol=1e-6)
    assert bool(jnp.isfinite(jgrad(P.fspl_db)(0.0, 2e9)))
    chex.assert_shape(P.fspl_db(jnp.ones((4, 1)) * 1e5, jnp.ones((1, 5)) * 2e9), (4, 5))


def test_fspl_grad_vs_fd():
    for d in (1e3, 5e5):
        g = float(jgrad(P.fspl_db)(d, 2e9))
        close(g, central_fd(lambda x: P.fspl_db(x, 2e9), d), rtol=1e-2)
        close(g, 20.0 / (d * math.log(10.0)), rtol=1e-3)
    gf = float(jgrad(P.fspl_db, argnums=1)(5e5, 2e9))
    close(gf, 20.0 / (2e9 * math.log(10.0)), rtol=1e-3)


def test_al_hourani_spec_urban():
    a, b = P.AL_HOURANI_ENV["urban"]
    assert (a, b) == (9.61, 0.16)
    close(
        P.los_probability_al_hourani(jnp.array([10.0, 26.57, 39.81, 45.0]), a, b),
        [0.0997, 0.6108, 0.9289, 0.9677],
    )
    assert P.AL_HOURANI_ENV == {
        "suburban": (4.88, 0.43),
        "urban": (9.61, 0.16),
        "dense_urban": (12.08, 0.11),
        "high_rise": (27.23, 0.08),
    }


def _a2g_reference(x, y, f, el, enl, a, b, c=P.SPEED_OF_LIGHT):
    d = math.hypot(x, y)
    theta = math.degrees(math.atan2(y, x))
    p = 1.0 / (1.0 + a * math.exp(-b * (theta - a)))
    return 20 * math.log10(4 * math.pi * d * f / c) + p * el + (1 - p) * enl


def test_air_to_ground_pathloss():
    a, b = P.AL_HOURANI_ENV["urban"]
    # 45°: p = 0.9677 (spec), d = 141.42 m, FSPL = 81.48 dB → 83.09 dB
    close(P.air_to_ground_pathloss_db(100.0, 100.0, 2e9, 1.0, 20.0, a, b), 83.093)
    for x, y in [(1000.0, 100.0), (200.0, 150.0), (0.0, 120.0), (5000.0, 10.0)]:
        close(
            P.air_to_ground_pathloss_db(x, y, 2e9, 1.0, 20.0, a, b, speed_of_light=3e8),
            _a2g_reference(x, y, 2e9, 1.0, 20.0, a, b, c=3e8),
            rtol=1e-5,
        )
    out = P.air_to_ground_pathloss_db(
        jnp.linspace(0, 1e3, 6)[:, None], jnp.array([50.0, 100.0, 150.0]), 2e9, 1.0, 20.0, a, b
    )
    chex.assert_shape(out, (6, 3))
    assert bool(jnp.all(jnp.isfinite(out)))


def test_air_to_ground_grad():
    a, b = P.AL_HOURANI_ENV["urban"]
    f = lambda x, y: P.air_to_ground_pathloss_db(x, y, 2e9, 1.0, 20.0, a, b, speed_of_light=3e8)
    gx, gy = jgrad(f, argnums=(0, 1))(300.0, 100.0)
    close(gx, central_fd(lambda x: f(x, 100.0), 300.0), rtol=1e-2)
    close(gy, central_fd(lambda y: f(300.0, y), 100.0), rtol=1e-2)
    # float64 reference derivative of the independent formula
    fdx = (
        _a2g_reference(300.001, 100, 2e9, 1, 20, a, b, 3e8)
        - _a2g_reference(299.999, 100, 2e9, 1, 20, a, b, 3e8)
    ) / 0.002
    close(gx, fdx, rtol=1e-2)
    # degenerate point (0, 0) and directly overhead: finite values and gradients
    for pt in [(0.0, 0.0), (0.0, 100.0), (100.0, 0.0)]:
        val = f(*pt)
        g = jgrad(f, argnums=(0, 1))(*pt)
        assert bool(jnp.isfinite(val)) and all(bool(jnp.isfinite(v)) for v in g), pt


_LOS_TABLE = {
    "dense_urban": [28.2, 33.1, 39.8, 46.8, 53.7, 61.2, 73.8, 82.0, 98.1],
    "urban": [24.6, 38.6, 49.3, 61.3, 72.6, 80.5, 91.9, 96.8, 99.2],
    "suburban": [78.2, 86.9, 91.9, 92.9, 93.5, 94.0, 94.9, 95.2, 99.8],
}
_CL_TABLE = {
    ("dense_urban", "S"): [34.3, 30.9, 29.0, 27.7, 26.8, 26.2, 25.8, 25.5, 25.5],
    ("urban", "S"): [34.3, 30.9, 29.0, 27.7, 26.8, 26.2, 25.8, 25.5, 25.5],
    ("suburban", "S"): [19.52, 18.17, 18.42, 18.28, 18.63, 17.68, 16.50, 16.30, 16.30],
    ("dense_urban", "Ka"): [44.3, 39.9, 37.5, 35.8, 34.6, 33.8, 33.3, 33.0, 32.9],
    ("suburban", "Ka"): [29.5, 24.6, 21.9, 20.0, 18.7, 17.8, 17.2, 16.9, 16.8],
}
_SF_TABLE_S = {
    "dense_urban": (
        [3.5, 3.4, 2.9, 3.0, 3.1, 2.7, 2.5, 2.3, 1.2],
        [15.5, 13.9, 12.4, 11.7, 10.6, 10.5, 10.1, 9.2, 9.2],
    ),
    "urban": ([4.0] * 9, [6.0] * 9),
    "suburban": (
        [1.79, 1.14, 1.14, 0.92, 1.42, 1.56, 0.85, 0.72, 0.72],
        [8.93, 9.08, 8.78, 10.25, 10.56, 10.74, 10.17, 11.52, 11.52],
    ),
}
_ANGLES = np.arange(10.0, 91.0, 10.0)
_MID = _ANGLES[:-1] + 5.0


def _mid(v):
    v = np.asarray(v)
    return 0.5 * (v[:-1] + v[1:])


@pytest.mark.parametrize("scenario", ["dense_urban", "urban", "suburban"])
def test_ntn_los_probability_table(scenario):
    tab = np.array(_LOS_TABLE[scenario]) / 100.0
    close(P.ntn_los_probability(jnp.asarray(_ANGLES), scenario), tab)
    close(P.ntn_los_probability(jnp.asarray(_MID), scenario), _mid(tab))
    # clamping
    close(P.ntn_los_probability(jnp.array([0.0, 5.0, 95.0]), scenario), [tab[0], tab[0], tab[-1]])


def test_ntn_los_rural_alias():
    close(P.ntn_los_probability(25.0, "rural"), P.ntn_los_probability(25.0, "suburban"))
    close(P.ntn_los_probability(25.0, "rural"), 0.894)


@pytest.mark.parametrize("key", list(_CL_TABLE))
def test_ntn_clutter_loss_table(key):
    scen, band = key
    tab = np.array(_CL_TABLE[key])
    close(P.ntn_clutter_loss_db(jnp.asarray(_ANGLES), scen, band), tab)
    close(P.ntn_clutter_loss_db(jnp.asarray(_MID), scen, band), _mid(tab))
    close(P.ntn_clutter_loss_db(3.0, scen, band), tab[0])
    # urban CL equals dense-urban CL in both bands
    close(
        P.ntn_clutter_loss_db(37.0, "urban", "Ka"), P.ntn_clutter_loss_db(37.0, "dense_urban", "Ka")
    )


@pytest.mark.parametrize("scenario", ["dense_urban", "urban", "suburban"])
def test_ntn_shadow_fading_table(scenario):
    los_tab, nlos_tab = (np.array(v) for v in _SF_TABLE_S[scenario])
    close(P.ntn_shadow_fading_std_db(jnp.asarray(_ANGLES), scenario, "S", True), los_tab)
    close(P.ntn_shadow_fading_std_db(jnp.asarray(_ANGLES), scenario, "S", False), nlos_tab)
    close(P.ntn_shadow_fading_std_db(jnp.asarray(_MID), scenario, "S", False), _mid(nlos_tab))
    los = jnp.array([True, False, True])
    close(
        P.ntn_shadow_fading_std_db(jnp.array([10.0, 10.0, 90.0]), scenario, "S", los),
        [los_tab[0], nlos_tab[0], los_tab[-1]],
    )


def test_ntn_ka_shadow_fading_examples():
    # TR 38.811 Table 6.6.2-1 / 6.6.2-3, Ka band
    close(P.ntn_shadow_fading_std_db(10.0, "dense_urban", "Ka", False), 17.1)
    close(P.ntn_shadow_fading_std_db(90.0, "dense_urban", "Ka", True), 0.6)
    close(P.ntn_shadow_fading_std_db(40.0, "suburban", "ka", True), 2.3)
    close(P.ntn_shadow_fading_std_db(20.0, "rural", "KA", False), 10.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: P.ntn_los_probability(30.0, "forest"),
        lambda: P.ntn_clutter_loss_db(30.0, "downtown", "S"),
        lambda: P.ntn_clutter_loss_db(30.0, "urban", "X"),
        lambda: P.ntn_shadow_fading_std_db(30.0, "urban", "L", True),
        lambda: P.ntn_pathloss_db(jax.random.PRNGKey(0), 1e6, 2e9, 30.0, "city", "S"),
    ],
)
def test_ntn_unknown_strings_raise(call):
    with pytest.raises(ValueError, match="scenario|band"):
        call()


def test_ntn_unknown_scenario_message_names_values():
    with pytest.raises(ValueError) as e:
        P.ntn_los_probability(30.0, "forest")
    msg = str(e.value)
    assert "scenario" in msg and "dense_urban" in msg and "suburban" in msg
    with pytest.raises(ValueError) as e:
        P.ntn_clutter_loss_db(30.0, "urban", "X")
    assert "band" in str(e.value) and "Ka" in str(e.value)


def test_ntn_pathloss_deterministic_and_shapes():
    key = jax.random.PRNGKey(3)
    d = jnp.full((4, 5), 1.5e6)
    el = jnp.linspace(10, 90, 5)[None, :]
    a = P.ntn_pathloss_db(key, d, 2e9, el, "urban", "S")
    b = P.ntn_pathloss_db(key, d, 2e9, el, "urban", "S")
    chex.assert_shape(a, (4, 5))
    chex.assert_trees_all_equal(a, b)
    c = P.ntn_pathloss_db(jax.random.PRNGKey(4), d, 2e9, el, "urban", "S")
    assert not bool(jnp.all(a == c))
    # differentiable in distance for a fixed key; derivative = FSPL's
    g = jgrad(lambda x: P.ntn_pathloss_db(key, x, 2e9, 30.0, "dense_urban", "S"))(1e6)
    close(g, 20.0 / (1e6 * math.log(10.0)), rtol=1e-3)


@pytest.mark.parametrize(
    "scenario, band, el, p, sf_los, sf_nlos, cl",
    [
        ("dense_urban", "S", 30.0, 0.398, 2.9, 12.4, 29.0),
        ("suburban", "Ka", 45.0, 0.932, 2.5, 11.7, 19.35),  # midpoint of 40° and 50°
    ],
)
def test_ntn_pathloss_statistics(scenario, band, el, p, sf_los, sf_nlos, cl):
    n = 200_000
    d, f = 1.2e6, 2e9
    pl, los = P.ntn_pathloss_sample(jax.random.PRNGKey(0), jnp.full((n,), d), f, el, scenario, band)
    fspl = 20 * math.log10(4 * math.pi * d * f / P.SPEED_OF_LIGHT)
    mean = fspl + (1 - p) * cl
    var = p * sf_los**2 + (1 - p) * sf_nlos**2 + p * (1 - p) * cl**2
    assert abs(float(jnp.mean(los)) - p) < 0.005
    assert abs(float(jnp.mean(pl)) - mean) < 5 * math.sqrt(var / n) + 0.01
    close(jnp.std(pl), math.sqrt(var), rtol=0.02)
    # conditional moments
    pl_np, los_np = np.asarray(pl, np.float64), np.asarray(los)
    close(pl_np[los_np].std(), sf_los, rtol=0.03)
    close(pl_np[~los_np].mean() - fspl, cl, rtol=0.02)
    close(pl_np[~los_np].std(), sf_nlos, rtol=0.03)


def test_terrestrial_pathloss():
    close(P.uma_pathloss_db(1000.0), 128.1)
    close(P.uma_pathloss_db(500.0), 128.1 - 37.6 * 0.30103)
    close(P.uma_pathloss_db(jnp.array([2000.0, 100.0])), [128.1 + 37.6 * 0.30103, 90.5])
    close(P.log_distance_pathloss_db(100.0, 40.0, 3.0), 100.0)
    close(P.log_distance_pathloss_db(100.0, 40.0, 3.0, d0_m=10.0), 70.0)
    assert bool(jnp.isfinite(P.uma_pathloss_db(0.0)))
    assert bool(jnp.isfinite(jgrad(P.log_distance_pathloss_db)(0.0, 40.0, 3.0)))


# ============================================================================ antenna
def test_bessel_functions_vs_scipy():
    x = np.concatenate(
        [np.linspace(-60, 60, 4801), np.linspace(60, 400, 700), [0.0, 1e-6, 4.999, 5.0, 5.001]]
    )
    x32 = x.astype(np.float32)
    for fn, n in ((P.bessel_j0, 0), (P.bessel_j1, 1), (P.bessel_j3, 3)):
        ref = scipy.special.jv(n, x32.astype(np.float64))
        err = np.max(np.abs(np.asarray(fn(jnp.asarray(x32)), np.float64) - ref))
        assert err < 2e-6, (n, err)


def test_bessel_beam_gain_vs_scipy():
    t3 = 2.0 * DEG
    th = np.linspace(-30 * DEG, 30 * DEG, 20001).astype(np.float32)
    th = th[th != 0.0]
    u = 2.07123 * np.sin(th.astype(np.float64)) / math.sin(t3)
    ref = 100.0 * (scipy.special.jv(1, u) / (2 * u) + 36 * scipy.special.jv(3, u) / u**3) ** 2
    got = np.asarray(P.bessel_beam_gain(jnp.asarray(th), 100.0, t3), np.float64)
    assert np.max(np.abs(got - ref)) < 100.0 * 2e-6


def test_bessel_beam_gain_properties():
    t3 = 1.5 * DEG
    gmax = P.db_to_linear(40.0)
    assert float(P.bessel_beam_gain(0.0, gmax, t3)) == float(gmax)
    g3 = P.bessel_beam_gain(t3, gmax, t3)
    assert abs(float(P.linear_to_db(g3 / gmax)) - (-3.0103)) < 0.1
    # even
    close(P.bessel_beam_gain(-0.7 * t3, 1.0, t3), P.bessel_beam_gain(0.7 * t3, 1.0, t3), rtol=1e-6)
    # monotone decreasing from boresight to the first null u = 5.9072
    theta_null = math.asin(5.9072 * math.sin(t3) / 2.07123)
    th = jnp.linspace(0.0, theta_null, 2001)
    g = np.asarray(P.bessel_beam_gain(th, 1.0, t3))
    assert np.all(np.diff(g) <= 0.0)
    assert g[1000] < g[0] and g[-1] < 1e-6
    assert float(P.bessel_beam_gain(1.3 * theta_null, 1.0, t3)) > g[-1]  # sidelobe rises again
    # gradient: zero and finite at boresight, matches FD elsewhere
    grad = jgrad(P.bessel_beam_gain)
    assert float(grad(0.0, 1.0, t3)) == 0.0
    for th0 in (0.5 * t3, 1.2 * t3, 3.0 * t3):
        close(
            grad(th0, 1.0, t3),
            central_fd(lambda x: P.bessel_beam_gain(x, 1.0, t3), th0, rel_step=1e-3),
            rtol=1e-2,
        )
    chex.assert_shape(P.bessel_beam_gain(jnp.zeros((3, 1)), jnp.ones((1, 4)), t3), (3, 4))


# ============================================================================ link
def _interference_bruteforce(p, ch, act, excl):
    n = p.shape[-1]
    out = np.zeros(n)
    for i in range(n):
        for j in range(n):
            if j != i and act[j] and ch[j] == ch[i] and not excl[i, j]:
                out[i] += p[i, j]
    return out


@pytest.mark.parametrize("use_mask", [False, True])
def test_cochannel_interference_vs_bruteforce(use_mask):
    rng = np.random.default_rng(0)
    B1, B2, n = 2, 3, 9
    p = rng.exponential(1e-9, size=(B1, B2, n, n)).astype(np.float32)
    ch = rng.integers(0, 3, size=(B1, B2, n))
    act = rng.random((B1, B2, n)) < 0.7
    cells = rng.integers(0, 3, size=(B1, B2, n))
    mask = np.asarray(P.same_group_mask(cells)) if use_mask else None
    out = P.cochannel_interference(p, ch, act, mask)
    chex.assert_shape(out, (B1, B2, n))
    expected = np.zeros((B1, B2, n))
    for a in range(B1):
        for b in range(B2):
            ex = mask[a, b] if use_mask else np.zeros((n, n), bool)
            expected[a, b] = _interference_bruteforce(p[a, b], ch[a, b], act[a, b], ex)
    close(out, expected, rtol=1e-5)


def test_same_group_mask_and_simple_interference():
    m = P.same_group_mask(jnp.array([0, 1, 0]))
    chex.assert_trees_all_equal(
        m, jnp.array([[True, False, True], [False, True, False], [True, False, True]])
    )
    p = jnp.arange(1.0, 10.0).reshape(3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    out = P.cochannel_interference(p, jnp.array([0, 0, 1]), jnp.array([True, True, True]))
    close(out, [2.0, 4.0, 0.0])
    out = P.cochannel_interference(p, jnp.array([0, 0, 0]), jnp.array([True, False, True]))
    close(out, [3.0, 10.0, 7.0])
    out = P.cochannel_interference(
        p, jnp.array([0, 0, 0]), jnp.ones(3, bool), P.same_group_mask(jnp.array([0, 1, 0]))
    )
    close(out, [2.0, 10.0, 8.0])
    # differentiable in the powers
    g = jgrad(lambda q: P.cochannel_interference(q, jnp.array([0, 0, 1]), jnp.ones(3, bool)).sum())(
        p
    )
    chex.assert_trees_all_equal(g, jnp.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], jnp.float32))


def test_sinr_and_shannon():
    close(P.shannon_rate(1e6, 1.0), 1e6)
    close(P.shannon_rate(1e6, 3.0), 2e6)
    close(P.shannon_rate(1e6, 0.0), 0.0, atol=1e-6)
    close(P.sinr(2.0, 0.5, 0.5), 2.0)
    close(P.sinr(1e-12, 0.0, 1e-13), 10.0)
    chex.assert_shape(P.shannon_rate(jnp.ones((3, 1)) * 1e6, jnp.ones((1, 4))), (3, 4))


def test_shannon_grad_vs_fd():
    for s in (0.01, 1.0, 30.0):
        g = float(jgrad(P.shannon_rate, argnums=1)(1e6, s))
        close(g, central_fd(lambda x: P.shannon_rate(1e6, x), s, rel_step=1e-3), rtol=1e-2)
        close(g, 1e6 / ((1 + s) * math.log(2.0)), rtol=1e-4)


# ============================================================================ doppler
def test_max_doppler_spec():
    close(P.max_doppler_ntn_hz(2e9, 600e3, 0.0), 46.1e3)
    close(P.max_doppler_ntn_hz(2e9, 600e3, 0.0) / 2e9 * 1e6, 23.05)
    close(P.max_doppler_ntn_hz(2e9, 1200e3, 0.0), 40.7e3)
    close(P.max_doppler_ntn_hz(2e9, 1200e3, 0.0) / 2e9 * 1e6, 20.37)
    assert abs(float(P.max_doppler_ntn_hz(2e9, 600e3, math.pi / 2))) < 1.0


def test_doppler_shift_sign_and_value():
    f = 2e9
    u = jnp.array([1.0, 0.0, 0.0])  # tx → rx
    close(
        P.doppler_shift_hz(f, jnp.array([7500.0, 0, 0]), u), f * 7500.0 / P.SPEED_OF_LIGHT
    )  # closing
    assert float(P.doppler_shift_hz(f, jnp.array([-100.0, 0, 0]), u)) < 0  # receding
    close(P.doppler_shift_hz(f, jnp.array([0.0, 100.0, 0]), u), 0.0, atol=1e-6)
    close(P.doppler_shift_hz(f, jnp.array([300.0, 0, 0]), u, speed_of_light=3e8), 2000.0)
    out = P.doppler_shift_hz(jnp.array([1e9, 2e9]), jnp.ones((5, 1, 3)), jnp.array([0.0, 0.0, 1.0]))
    chex.assert_shape(out, (5, 2))


def test_doppler_shift_matches_max_doppler_at_horizon():
    """A UE on the equator with the satellite rising at 0° elevation in the
    equatorial orbit: the shift equals the TR 38.811 maximum."""
    R, h = P.EARTH_RADIUS, 600e3
    r = R + h
    ue = jnp.array([R, 0.0, 0.0])
    phase = -math.acos(R / r)  # satellite on the UE's horizon, approaching
    pos, vel = P.circular_orbit_state(0.0, h, 0.0, 0.0, phase)
    close(P.elevation_angle(ue, pos), 0.0, atol=1e-3)
    los = (ue - pos) / jnp.linalg.norm(ue - pos)
    close(P.doppler_shift_hz(2e9, vel, los), P.max_doppler_ntn_hz(2e9, h, 0.0), rtol=2e-3)


def test_doppler_loss_factor():
    assert P.DOPPLER_XI_DEFAULT == 1.6e4
    close(P.doppler_loss_factor(3000.0, 1.0), 0.852)
    close(P.doppler_loss_factor(7500.0, -1.0), 0.670)
    close(P.doppler_loss_factor(0.0, 1.0), 1.0)
    close(P.doppler_loss_factor(7500.0, 0.0), 1.0)
    rho = np.asarray(P.doppler_loss_factor(jnp.linspace(0.0, 8000.0, 101), 0.8))
    assert np.all(np.diff(rho) < 0) and np.all(rho > 0) and np.all(rho <= 1)
    # spans roughly 0.95 → 0.6 over 3 → 7.5 km/s
    assert 0.8 < float(P.doppler_loss_factor(3000.0, 1.0)) < 0.95
    assert 0.6 < float(P.doppler_loss_factor(7500.0, 1.0)) < 0.7
    close(P.doppler_loss_factor(3000.0, 1.0, xi=5126.0), 0.95)


def test_ici_sinr():
    close(P.ici_sinr(10.0, 0.0), 10.0)
    s = (2.0 / math.pi) ** 2  # sinc²(0.5)
    close(P.ici_sinr(10.0, 0.5), 10.0 * s / (1 + 10.0 * (1 - s)))
    close(P.ici_sinr(10.0, 0.5), 0.583384)
    close(P.ici_sinr(10.0, -0.1), P.ici_sinr(10.0, 0.1))
    # from powers: S = 1, N = 0.05, I = 0.05 → γ = 10
    close(P.ici_sinr_from_powers(1.0, 0.05, 0.05, 0.2), P.ici_sinr(10.0, 0.2))
    # strictly lower than γ for ε ≠ 0, finite gradient at ε = 0
    assert float(P.ici_sinr(10.0, 0.05)) < 10.0
    g = jgrad(P.ici_sinr, argnums=1)(10.0, 0.0)
    assert bool(jnp.isfinite(g))
    chex.assert_shape(P.ici_sinr(jnp.ones((2, 1)), jnp.linspace(0, 0.4, 3)), (2, 3))


# ============================================================================ jit / vmap
_KEY = jax.random.PRNGKey(7)
_B = 3

# (name, function, batched positional args with leading axis _B)
_CASES = [
    ("db_to_linear", P.db_to_linear, (jnp.array([-10.0, 0.0, 13.0]),)),
    ("linear_to_db", P.linear_to_db, (jnp.array([0.1, 1.0, 20.0]),)),
    ("dbm_to_watt", P.dbm_to_watt, (jnp.array([-10.0, 0.0, 30.0]),)),
    ("watt_to_dbm", P.watt_to_dbm, (jnp.array([0.1, 1.0, 20.0]),)),
    (
        "noise_power_watt",
        P.noise_power_watt,
        (jnp.array([-174.0, -170.0, -160.0]), jnp.array([1e6, 2e6, 1e7])),
    ),
    ("slant_range", P.slant_range, (jnp.array([0.2, 0.6, 1.5]), jnp.array([6e5, 1.2e6, 8e5]))),
    (
        "elevation_angle",
        P.elevation_angle,
        (
            P.geodetic_to_ecef(jnp.array([0.1, 0.2, 0.3]), jnp.zeros(3)),
            jnp.tile(jnp.array([7e6, 0.0, 1e6]), (3, 1)),
        ),
    ),
    (
        "geodetic_to_ecef",
        P.geodetic_to_ecef,
        (jnp.array([0.1, -0.5, 1.0]), jnp.array([0.0, 2.0, -1.0]), jnp.array([0.0, 10.0, 1e3])),
    ),
    ("orbital_speed", P.orbital_speed, (jnp.array([5e5, 6e5, 1.2e6]),)),
    ("orbital_period", P.orbital_period, (jnp.array([5e5, 6e5, 1.2e6]),)),
    (
        "circular_orbit_state",
        P.circular_orbit_state,
        (
            jnp.array([0.0, 100.0, 1e4]),
            jnp.array([6e5, 6e5, 1.2e6]),
            jnp.array([0.9, 1.0, 0.0]),
            jnp.array([0.0, 1.0, 2.0]),
            jnp.array([0.3, 0.2, 0.1]),
        ),
    ),
    (
        "walker_delta",
        functools.partial(
            P.walker_delta, total=12, planes=3, phasing=1, altitude_m=6e5, inclination_rad=0.9
        ),
        (jnp.array([0.0, 60.0, 600.0]),),
    ),
    (
        "deviation_angle",
        P.deviation_angle,
        (jnp.array([6e5, 7e5, 8e5]), jnp.array([6.1e5, 7.0e5, 8.2e5]), jnp.array([2e4, 0.0, 9e4])),
    ),
    ("fspl_db", P.fspl_db, (jnp.array([1e3, 6e5, 2e6]), jnp.array([2e9, 2e9, 30e9]))),
    (
        "los_probability_al_hourani",
        P.los_probability_al_hourani,
        (
            jnp.array([10.0, 30.0, 80.0]),
            jnp.array([9.61, 4.88, 12.08]),
            jnp.array([0.16, 0.43, 0.11]),
        ),
    ),
    (
        "air_to_ground_pathloss_db",
        functools.partial(
            P.air_to_ground_pathloss_db, eta_los_db=1.0, eta_nlos_db=20.0, a=9.61, b=0.16
        ),
        (jnp.array([0.0, 100.0, 1e3]), jnp.array([100.0, 0.0, 200.0]), jnp.array([2e9, 2e9, 3e9])),
    ),
    (
        "ntn_los_probability",
        functools.partial(P.ntn_los_probability, scenario="urban"),
        (jnp.array([5.0, 35.0, 90.0]),),
    ),
    (
        "ntn_clutter_loss_db",
        functools.partial(P.ntn_clutter_loss_db, scenario="suburban", band="Ka"),
        (jnp.array([5.0, 35.0, 90.0]),),
    ),
    (
        "ntn_shadow_fading_std_db",
        lambda el, los: P.ntn_shadow_fading_std_db(el, "dense_urban", "S", los),
        (jnp.array([15.0, 35.0, 90.0]), jnp.array([True, False, True])),
    ),
    (
        "ntn_pathloss_db",
        functools.partial(P.ntn_pathloss_db, scenario="dense_urban", band="S"),
        (
            jax.random.split(_KEY, 3),
            jnp.array([6e5, 1e6, 2e6]),
            jnp.array([2e9, 2e9, 2e9]),
            jnp.array([90.0, 45.0, 12.0]),
        ),
    ),
    (
        "log_distance_pathloss_db",
        P.log_distance_pathloss_db,
        (jnp.array([1.0, 10.0, 1e3]), jnp.array([40.0, 30.0, 20.0]), jnp.array([2.0, 3.0, 3.5])),
    ),
    ("uma_pathloss_db", P.uma_pathloss_db, (jnp.array([10.0, 500.0, 3e3]),)),
    (
        "bessel_beam_gain",
        P.bessel_beam_gain,
        (jnp.array([0.0, 0.02, 0.3]), jnp.array([1e3, 1e4, 1e3]), jnp.array([0.02, 0.03, 0.01])),
    ),
    ("bessel_j1", P.bessel_j1, (jnp.array([0.0, 3.0, 40.0]),)),
    ("bessel_j3", P.bessel_j3, (jnp.array([0.0, -4.0, 40.0]),)),
    (
        "cochannel_interference",
        P.cochannel_interference,
        (
            jnp.asarray(np.random.default_rng(1).exponential(1.0, (3, 5, 5)), jnp.float32),
            jnp.array([[0, 1, 0, 1, 0]] * 3),
            jnp.array([[True, True, False, True, True]] * 3),
            jnp.zeros((3, 5, 5), bool),
        ),
    ),
    ("same_group_mask", P.same_group_mask, (jnp.array([[0, 1, 0, 2]] * 3),)),
    (
        "sinr",
        P.sinr,
        (jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, 0.5, 1.0]), jnp.array([0.1, 0.2, 0.3])),
    ),
    ("shannon_rate", P.shannon_rate, (jnp.array([1e6, 2e6, 5e6]), jnp.array([0.0, 1.0, 3.0]))),
    (
        "doppler_shift_hz",
        P.doppler_shift_hz,
        (
            jnp.array([2e9, 2e9, 3e10]),
            jnp.array([[7e3, 0, 0], [0, 7e3, 0], [1e3, 1e3, 1e3]]),
            jnp.tile(jnp.array([1.0, 0.0, 0.0]), (3, 1)),
        ),
    ),
    (
        "max_doppler_ntn_hz",
        P.max_doppler_ntn_hz,
        (jnp.array([2e9, 2e9, 3e10]), jnp.array([6e5, 1.2e6, 6e5]), jnp.array([0.0, 0.5, 1.2])),
    ),
    (
        "doppler_loss_factor",
        P.doppler_loss_factor,
        (jnp.array([0.0, 3e3, 7.5e3]), jnp.array([1.0, -0.5, 0.3])),
    ),
    ("ici_sinr", P.ici_sinr, (jnp.array([1.0, 10.0, 100.0]), jnp.array([0.0, 0.1, 0.4]))),
]


@pytest.mark.parametrize("name, fn, args", _CASES, ids=[c[0] for c in _CASES])
def test_jit_and_vmap_match_eager(name, fn, args):
    """Every kernel broadcasts over a leading batch axis: eager on the batch, jit on
    the batch and vmap over the batch (= per-element calls) agree."""
    stack = lambda outs: jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)
    if name == "ntn_pathloss_db":
        # One key per call: the batch is only reachable by vmap. Plain Python call
        # (its sampling core is jitted; op-by-op threefry would only cost time).
        eager = stack([fn(*(a[i] for a in args)) for i in range(_B)])
        jitted = stack([jax.jit(fn)(*(a[i] for a in args)) for i in range(_B)])
    else:
        with jax.disable_jit():  # the kernels are jit-decorated: this is true op-by-op eager
            eager = fn(*args)
        jitted = jax.jit(fn)(*args)
    # vmap is wrapped in jit: eager vmap re-dispatches every primitive and only costs time
    vmapped = jax.jit(jax.vmap(fn))(*args)
    chex.assert_trees_all_close(jitted, eager, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(vmapped, eager, rtol=1e-5, atol=1e-6)
    for leaf in jax.tree_util.tree_leaves(eager):
        assert leaf.shape[0] == _B, name
        assert bool(jnp.all(jnp.isfinite(leaf))), name
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            chex.assert_type(leaf, jnp.float32)


def test_public_api_names():
    expected = {
        "SPEED_OF_LIGHT",
        "EARTH_RADIUS",
        "GM_EARTH",
        "BOLTZMANN",
        "db_to_linear",
        "linear_to_db",
        "dbm_to_watt",
        "watt_to_dbm",
        "noise_power_watt",
        "slant_range",
        "elevation_angle",
        "geodetic_to_ecef",
        "circular_orbit_state",
        "walker_delta",
        "deviation_angle",
        "orbital_speed",
        "orbital_period",
        "fspl_db",
        "los_probability_al_hourani",
        "air_to_ground_pathloss_db",
        "ntn_los_probability",
        "ntn_clutter_loss_db",
        "ntn_shadow_fading_std_db",
        "ntn_pathloss_db",
        "log_distance_pathloss_db",
        "uma_pathloss_db",
        "AL_HOURANI_ENV",
        "bessel_beam_gain",
        "cochannel_interference",
        "same_group_mask",
        "sinr",
        "shannon_rate",
        "doppler_shift_hz",
        "max_doppler_ntn_hz",
        "doppler_loss_factor",
        "ici_sinr",
        "DOPPLER_XI_DEFAULT",
    }
    missing = expected - set(P.__all__)
    assert not missing, missing
    for name in P.__all__:
        assert hasattr(P, name), name
