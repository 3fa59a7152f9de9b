"""Scenario ``spectrum``: LEO spectrum pricing and power control with a reputation blockchain.

Source: Shen, Lam, Li, Wang, "Privacy-aware spectrum pricing and power control
optimization for LEO satellite Internet-of-Things" (arXiv 2407.00814 v2),
Sec. III-IV; our spec is ``docs/spectrum.md``. Our copy of the paper lost its
equations and its parameter table: every piece marked **(R)** below is a
reconstruction from the symbol list, the prose and the standard multibeam
model, and each is a parameter (or a static option), not a hard-coded guess.

Agents
------
* ``satellite`` — S LEO satellites (the FL agents). Each serves its own
  footprint of C hexagonal beams (cells) with U terrestrial users. Action
  (eq. 11): ``Discrete(9)`` = (price Δ ∈ {−1, 0, +1}) × (power-control Δ ∈
  {−1, 0, +1}) on the level grids, index ``3·(Δp + 1) + (ΔP + 1)``; with
  ``price_only=True`` ``Discrete(3)`` (price Δ only, P_ctrl fixed at its
  initial level). Observation (eq. 10), per satellite:
  ``[p/p_max, P_ctrl/P_ctrl_max, U'_last/(p_max·cap), leases_last/cap,
  mean SINR_last (dB)/30]`` with cap = K·slots.

Step t (ordering)
-----------------
The state holds step t's exogenous draws (visibility, fading, servers
online). Given the actions: new price and power-control levels (clipped to
the grids) → received powers (eq. 3) with Doppler (eq. 2) → ex-ante
interference and SINR (eq. 4-5) over the *eligible* users → budgets (eq. 6)
→ leasing rule with capacity → realised interference and SINR over the
users that lease → revenue (eq. 9), user utility (eq. 8), reputation
(eq. 20-22) → reward (eq. 12). Then step t+1's draws are sampled.

Physics
-------
* Geometry of a pass (round-2 decision, docs/spectrum.md "Live regime"): per
  episode each satellite s sees the centre of its footprint at an elevation
  ε_s ~ U(``elevation_min_rad``, ``elevation_max_rad``) (default 40°..90°, the
  visible part of a pass), the satellite along-track of the centre (behind it,
  approaching) at altitude ``altitude_m`` on a spherical Earth
  (:func:`pass_geometry`): slant range d₀ = √((R+h)² − R²cos²ε) − R·sin ε, velocity
  ⊥ to its radius vector, so |cos φ| = R·cos ε/(R+h) at the footprint centre
  (:func:`footprint_cos_phi`): Doppler is largest at low elevation. C beam
  centres on a hexagonal grid (spacing √3·r_beam, filled ring by ring) in the
  local horizontal frame of the footprint centre, placed on the sphere
  (:func:`ground_xyz`); users uniform over the cells (a cell uniformly, then
  uniform in the disc of radius r_beam around its centre) **(R)** (the paper
  says "randomly located at the beam coverage area"). Distances are 3-D.
* Deviation angle θ (eq. 1): :func:`jaxsg.physics.deviation_angle` between
  the user and every beam centre line.
* Beam gain (R): :func:`jaxsg.physics.bessel_beam_gain` with G_max =
  ``sat_gain_dbi`` and θ_3dB = atan(r_beam / h) (an antenna property: the
  half-power contour on a nadir cell's edge; beams point at the cell centres).
* Received power (eq. 3): P_r = P·G_u·G_s(θ)·(λ/(4πd))²·|h|², λ = c/f,
  d the straight-line user–satellite distance, |h|² Rician with factor
  ``rician_k`` (0 = Rayleigh; mean 1), drawn per user per step. User antenna
  gain G_u ~ U(``user_gain_min_dbi``, ``user_gain_max_dbi``) per user.
* Doppler (eq. 2), ``doppler_model="rho"`` (default): ρ =
  :func:`jaxsg.physics.doppler_loss_factor` (v, cos φ, ξ), cos φ the cosine
  between the satellite velocity and the satellite→user line of sight, ξ =
  ``doppler_xi`` = :data:`DOPPLER_XI_PASS` ≈ 5.25e4 (:func:`calibrated_doppler_xi`):
  ρ(7.5 km/s) = 0.6 at the median footprint-centre |cos φ| of a pass (0.389 at
  ε = 65°), hence ρ(3 km/s) = 0.815 there; an exponential in v cannot also give
  0.95 at 3 km/s, which is not forced. ρ multiplies the **desired** signal only (R): the receiver
  is tuned to the user's carrier, the interferers' powers are not reduced.
  ``doppler_model="ici"``: the residual carrier offset
  ε = ``cfo_residual``·f·v·|cos φ|/c / ``subcarrier_spacing_hz`` turns signal
  into inter-carrier interference, SINR' = :func:`jaxsg.physics.ici_sinr`.
* Inter-cell interference (eq. 4) (R): at the beam of cell c,
  ``I_c = χ·Σ_{j: c_j ≠ c} a_j·ι(c, c_j)·P_j·G_u,j·G_s(θ_{j,c})·(λ/4πd_j)²·|h_j|²``
  over the transmitting users j of the same satellite: a_j the activity
  factor (service type, U(``activity_min``, ``activity_max``) per user),
  ι the polarization isolation (4-colour frequency/polarization reuse over
  the hex cells: same colour 0 dB, else ``polarization_isolation_db``), and
  χ = ``cochannel_factor`` the probability that j occupies the receiving
  user's channel at the same time (default 1/8 = 1/K: a random channel out
  of K = 8, every TDMA slot of it in use). Users inside the same cell are
  orthogonal (OFDMA/TDMA).
* SINR (eq. 5): S·ρ/(I + N), N = ``noise_psd_dbm_per_mhz`` over
  ``channel_bandwidth_hz``.

Market (III-D, IV-B)
--------------------
* Power (round-2 decision): channel inversion (R): an honest user's required
  power is the power that reaches ``target_rx_power_w`` over its own beam's
  link (mean fading 1), P_req = P_target / (G_u·G_s(θ_own)·(λ/4πd)²), per
  episode. (Drawn independently of the channel, the users a higher power level
  admits are the strongest bidders and the top level always wins; with channel
  inversion a higher level admits weak-link users who transmit more and
  interfere more, so the best level is interior.) A user is *eligible* iff it is visible this step
  (probability ``visibility``, the weather) and P_req ≤ P_ctrl (the paper: a
  user whose required power exceeds the power control does not lease).
  Honest users transmit P_req; a malicious user (fraction
  ``malicious_fraction``, per episode) transmits ``malicious_boost_db`` above
  P_ctrl (III-C: "increases the uplink transmit power for a better QoS").
* Budget (eq. 6) (R): b_k = κ·ν^w·log2(1 + SINR_k^ante), κ =
  ``revenue_coefficient``. ν = ``visibility`` is the paper's "percentage of
  time that a terrestrial user can use the spectrum without losing
  connection": a user prices the expected connected share of its lease
  (w = ``visibility_prices_budget`` = 1; w = 0 is the spec's plain
  κ·log2(1 + SINR), where visibility only gates who can lease — then fewer
  visible users also means less interference and slightly *higher* budgets,
  the opposite of the paper's "low visibility → low quality of spectrum").
  The SINR uses the ex-ante interference of every *eligible*
  user transmitting at the power it will use (users anticipate the load; a
  malicious user anticipates its boosted power and so bids higher).
* Leasing: user k leases iff eligible and p_s ≤ b_k; at most K·slots leases
  per satellite, highest budgets first (ties: lower user index).
* Realised SINR: the interference of the users that actually lease. User
  utility (eq. 8): b_k − p_s over leasing users (``user_utility_mean``); the
  honest users' realised utility κ·ν^w·log2(1 + SINR_k^real) − p_s is
  ``honest_utility_mean`` (beyond the paper: what malicious power costs them).
* Revenue U'_s = p_s·#leases (eq. 9 without B_s); utility U_s = U'_s + B_s
  (eq. 9), B_s the block reward credited to the ledger since the last step
  (``info["utility"]``, ``info["block_reward"]``). Reward (eq. 12) (R):
  ``reward="revenue"`` U'_s (default), ``"utility"`` U_s or ``"delta"``
  U'_s − U'_s,last, plus ``reputation_weight``·(R' − R) (beyond the paper,
  default 0: lets the reputation ledger steer the power control in the security study).
* The bound of every gap (round-2 decision): ``info["myopic_optimal_revenue"]``
  is the myopic optimum (the best single posted price, exact) **maximised over
  the power-control levels** per satellite (:meth:`SpectrumEnv.myopic_bound`),
  with its price and level (``myopic_optimal_price_mean``,
  ``myopic_optimal_power_w_mean``); ``myopic_revenue_at_level_total`` is the
  optimum at the level in force.

Reputation blockchain (IV-D)
----------------------------
Every step R_s ← :func:`jaxsg.consensus.reputation_update` (R, n_normal,
n_malicious, ``reputation_coeff``) with n_normal the honest leasers and
n_malicious the malicious leasers (who always exceed P_ctrl). Each server is
online with probability ``p_online`` per step (``state.online``). The
aggregator election, block reward B_s = ``block_reward`` and reputation reset
live in the agent loop (block settlement: ``agents.adapters.spectrum.settle_block`` /
the spectrum adapter). ``info["aggregator_candidate"]`` is who would be
elected now (:func:`jaxsg.consensus.select_aggregator`).

The ledger persists across episodes (round-2 decision: it is the chain, not
part of an episode). Its state fields (:data:`LEDGER_FIELDS`: ``reputation``,
``block_income`` (cumulative B_s credited) and ``block_income_counted`` (the
part already paid into a U_s)) form a :class:`SpectrumLedger`:

* ``env.step``'s automatic reset keeps the ledger (:meth:`reset_for_autoreset`):
  a new episode of users, draws and levels, the same chain;
* ``env.reset`` starts a fresh chain (zeros); ``env.ledger(state)`` reads it
  (read it *before* any explicit reset), ``env.with_ledger(state, ledger)`` and
  ``env.reset_with_ledger(key, params, ledger)`` continue it: a learner-side
  adapter carries the ledger in its training state and elects from it.

Decisions (also where the spec is silent)
-----------------------------------------
======================  ==========================================================
item                    decision
======================  ==========================================================
sizes                   S=10, C=7, U=100 (paper's velocity study), K=8, slots=5
price grid              ``num_price_levels`` (static) levels linspace(p_min, p_max)
power grid              ``num_power_levels`` levels linspace(P_min, P_max) W
initial levels          the middle of each grid (static override available)
altitude, beam radius   550 km (spec), 50 km (R)
elevation of a pass     U(40°, 90°) per satellite per episode (spec: "about [40°, 90°]")
carrier, bandwidth      2 GHz (S band), 1 MHz per channel (R)
G_max, G_u              30 dBi (spec); U(0, 5) dBi (R, values lost)
P_req                   channel inversion to ``target_rx_power_w`` = 4.25e-14 W
                        (−103.7 dBm, 10.7 dB over the noise): median P_req ≈ 85 mW
                        (10-90 % 49-145 mW), as the spec's prototype (≈ 80 mW)
noise PSD               −114 dBm/MHz (spec)
Rician K                10 (LoS-dominated satellite link) (R)
velocity                7.5 km/s default; swept 3..7.5 km/s
ξ                       ``DOPPLER_XI_PASS`` ≈ 5.25e4: ρ(7.5 km/s) = 0.6 at the median pass
visibility              0.9 default; swept; priced into budgets (ν^w, w = 1) (R)
κ (revenue coeff)       1.0 (R): budgets ≈ 0..8 price units
activity factor         U(0.3, 0.9) per user (R)
isolation               20 dB between different colours (spec)
co-channel factor χ     0.125 (= 1/K at the default K) (R)
malicious               10 %, boost 10 dB above P_ctrl (R)
reputation              β = 0.1; p_online = 0.9; B_s = 10 (R)
myopic optimum          ``info["myopic_optimal_revenue"]``: Σ_s max_level max_i
                        b_(i)·min(i, cap) over the sorted budgets of the eligible
                        users at each P_ctrl level — the best single posted price
                        (not restricted to the grid) and power level this step;
                        an upper bound for any policy on these grids this step.
ledger                  persists across episodes (auto-reset keeps it; see above)
======================  ==========================================================

Live regime (measured)
----------------------
``PYTHONPATH=. python tests/test_spectrum_regime.py`` (defaults, 16 episodes × 6
steps, common random numbers; per satellite per step; bound = myopic optimum
maximised over the power levels, price = its price; avg-bud = average-budget
pricing held at the initial level 150 mW; share = fraction of satellite-steps
where each level is the best):

=======  ====  ======  =====  =======  ===========================  =======================
v km/s   vis   bound   price  avg-bud  bound at 50/100/150/200 mW    best-level share
=======  ====  ======  =====  =======  ===========================  =======================
3.00     0.9   104.53  2.615  70.29    21.13 / 95.85 / 104.05 / 102.60  0.00/0.07/0.77/0.16
5.25     0.9   98.28   2.459  63.34    20.29 / 90.17 / 97.84 / 96.40    0.00/0.07/0.77/0.16
7.50     0.9   92.27   2.309  57.07    19.45 / 84.64 / 91.90 / 90.43    0.00/0.06/0.78/0.16
7.50     0.7   68.30   1.715  27.87    12.11 / 58.45 / 67.72 / 67.39    0.00/0.01/0.68/0.31
7.50     0.5   42.74   1.120  10.20    6.38 / 32.25 / 41.70 / 42.43     0.00/0.00/0.43/0.57
=======  ====  ======  =====  =======  ===========================  =======================

1. 3 → 7.5 km/s: bound −11.7 %, price −11.7 % (criterion ≥ 10 %: met).
2. best power level interior (150 mW) at the default visibility 0.9, every
   velocity (met). Not at visibility 0.5: the top level edges it (42.43 vs
   41.70), fewer visible users interfere less.
3. visibility 0.9 / 0.7 / 0.5 → bound 92.3 / 68.3 / 42.7, average-budget
   revenue 57.1 / 27.9 / 10.2 (met).

At malicious fraction 0.2 (same command, second table): bound −10.7 % but
price only −3.5 % from 3 to 7.5 km/s (boosted malicious users keep high
budgets), best-level share 0.11/0.58/0.31 at 7.5 km/s (more mass on the top
level): a finding for the security study, not a default.
"""

from __future__ import annotations

import math
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxsg import spaces
from jaxsg.consensus import reputation_update, select_aggregator
from jaxsg.env import EnvState, MultiAgentEnv, register
from jaxsg.physics.antenna import bessel_beam_gain
from jaxsg.physics.doppler import doppler_loss_factor, ici_sinr
from jaxsg.physics.geometry import deviation_angle
from jaxsg.physics.units import EARTH_RADIUS
from jaxsg.validation import UNIT_INTERVAL, Bound, check_choice, check_int, check_memory

SINR_DB_SCALE = 30.0
SINR_FLOOR = 1e-12
SPEED_OF_LIGHT = 299_792_458.0

#: Default elevation range of a pass (the visible part over which a footprint is served).
ELEVATION_MIN_RAD = math.radians(40.0)
ELEVATION_MAX_RAD = math.radians(90.0)
#: Default altitude (spec), used by the calibration of ξ below.
ALTITUDE_M = 550e3
#: Doppler calibration target: ρ = 0.6 at 7.5 km/s at the median |cos φ| of a pass.
DOPPLER_RHO_TARGET = 0.6
DOPPLER_SPEED_TARGET_MPS = 7500.0
#: Channel-inversion target received power (W), see ``target_rx_power_w``.
TARGET_RX_POWER_W = 4.25e-14


def footprint_cos_phi(elevation_rad, altitude_m, earth_radius=EARTH_RADIUS):
    """|cos φ| = R·cos ε / (R + h) between the satellite velocity and the line of sight to the
    footprint centre seen at elevation ε (spherical Earth, satellite along-track)."""
    return earth_radius * np.cos(elevation_rad) / (earth_radius + altitude_m)


def calibrated_doppler_xi(rho=DOPPLER_RHO_TARGET, speed_mps=DOPPLER_SPEED_TARGET_MPS,
                          elevation_min_rad=ELEVATION_MIN_RAD,
                          elevation_max_rad=ELEVATION_MAX_RAD, altitude_m=ALTITUDE_M,
                          speed_of_light=SPEED_OF_LIGHT) -> float:
    """ξ of ρ = exp(−ξ·v·|cos φ|/c) such that ρ(``speed_mps``) = ``rho`` at the median
    footprint-centre |cos φ| of a pass with elevation ~ U(ε_min, ε_max) (|cos φ| is monotone
    in ε, so its median is at the median elevation)."""
    cos_med = float(footprint_cos_phi(0.5 * (elevation_min_rad + elevation_max_rad), altitude_m))
    return float(-math.log(rho) * speed_of_light / (speed_mps * cos_med))


#: Default ξ (pass geometry): ρ(7.5 km/s) = 0.6 at the median |cos φ|.
DOPPLER_XI_PASS = calibrated_doppler_xi()


def pass_geometry(elevation_rad, altitude_m, earth_radius=EARTH_RADIUS):
    """Satellite position and velocity direction in the footprint-centre frame.

    Frame: origin at the footprint centre on the ground, z up (local vertical), x the
    along-track direction, Earth's centre at (0, 0, −R). The satellite at altitude h is seen
    from the centre at elevation ε, behind it along-track (approaching): slant range
    d₀ = √((R+h)² − R²cos²ε) − R·sin ε, position (−d₀ cos ε, 0, d₀ sin ε), velocity
    direction ⊥ to its radius vector in the orbital (x, z) plane, towards +x. Then the
    cosine to the line of sight to the centre is R·cos ε/(R+h).

    Returns ``(sat_xyz (..., 3), vel_unit (..., 3))``.
    """
    ce, se = jnp.cos(elevation_rad), jnp.sin(elevation_rad)
    r_orbit = earth_radius + altitude_m
    d0 = jnp.sqrt(r_orbit**2 - (earth_radius * ce) ** 2) - earth_radius * se
    zero = jnp.zeros_like(d0)
    sat = jnp.stack([-d0 * ce, zero, d0 * se], -1)
    vel = jnp.stack([d0 * se + earth_radius, zero, d0 * ce], -1) / r_orbit
    return sat, vel


def ground_xyz(xy, earth_radius=EARTH_RADIUS):
    """Ground points on the sphere from their local horizontal coordinates (x, y):
    z = √(R² − x² − y²) − R, written as −ρ²/(R + √(R² − ρ²)) (no float32 cancellation)."""
    rho2 = jnp.sum(xy**2, -1)
    z = -rho2 / (earth_radius + jnp.sqrt(earth_radius**2 - rho2))
    return jnp.concatenate([xy, z[..., None]], -1)


@struct.dataclass
class SpectrumParams:
    """Every numeric knob of the scenario, SI units (m, m/s, Hz, W, rad); dB at the edges."""

    # geometry and motion (pass geometry, drawn per episode)
    altitude_m: float = 550e3
    elevation_min_rad: float = ELEVATION_MIN_RAD
    elevation_max_rad: float = ELEVATION_MAX_RAD
    beam_radius_m: float = 50e3
    velocity_mps: float = 7500.0
    # radio (eq. 2-5)
    carrier_hz: float = 2e9
    speed_of_light: float = SPEED_OF_LIGHT
    channel_bandwidth_hz: float = 1e6
    sat_gain_dbi: float = 30.0
    user_gain_min_dbi: float = 0.0
    user_gain_max_dbi: float = 5.0
    target_rx_power_w: float = TARGET_RX_POWER_W
    noise_psd_dbm_per_mhz: float = -114.0
    rician_k: float = 10.0
    doppler_xi: float = DOPPLER_XI_PASS
    cfo_residual: float = 0.05
    subcarrier_spacing_hz: float = 15e3
    activity_min: float = 0.3
    activity_max: float = 0.9
    polarization_isolation_db: float = 20.0
    cochannel_factor: float = 0.125
    # market (eq. 6-9)
    visibility: float = 0.9
    visibility_prices_budget: float = 1.0
    malicious_fraction: float = 0.1
    malicious_boost_db: float = 10.0
    revenue_coefficient: float = 1.0
    price_min: float = 0.3
    price_max: float = 6.0
    power_ctrl_min_w: float = 0.05
    power_ctrl_max_w: float = 0.2
    # reputation blockchain (eq. 20-22)
    reputation_coeff: float = 0.1
    p_online: float = 0.9
    block_reward: float = 10.0
    reputation_weight: float = 0.0


#: π/2 rounded up to float32 (a float32 sweep of 90° must validate).
HALF_PI_F32 = float(np.float32(math.pi / 2))

#: Allowed ranges, closed and finite where the physics needs it (round 3, params fuzzing,
#: ``tests/test_params_fuzz.py``): the open ranges of round 2 (any positive float32) let a
#: legal draw reach non-finite observations, e.g. carrier 1 Hz with speed_of_light 1 m/s,
#: or a power-control grid up to 3.4e38 W. With these ranges the worst own-beam link gain
#: is ≈ 1e−29 (−20 dBi user and satellite, (λ/4πd)² at 300 GHz, c = 1e8, 46 000 km), so
#: the channel-inversion power target/gain ≤ 1e29 W stays finite, and the largest SNR
#: (1 W target over −150 dBm/MHz × 1 kHz) is ≈ 1e21.
_GAIN_DBI = Bound(-20.0, 70.0)  # a badly mismatched antenna .. the largest dishes
PARAM_BOUNDS = {
    "altitude_m": Bound(100e3, 40_000e3),
    "elevation_min_rad": Bound(0.0, HALF_PI_F32, low_inclusive=False),
    "elevation_max_rad": Bound(0.0, HALF_PI_F32, low_inclusive=False),
    "beam_radius_m": Bound(1e3, 1e6),  # a 1 km spot beam .. a 1000 km regional beam
    "velocity_mps": Bound(0.0, 1e4),  # LEO ≈ 7.5 km/s; 10 km/s bounds any orbit's speed
    "carrier_hz": Bound(1e8, 3e11),  # VHF .. 300 GHz
    # propagation speed: a third of c (slow media) .. c; a model constant, not a knob
    "speed_of_light": Bound(1e8, 3e8),
    "channel_bandwidth_hz": Bound(1e3, 1e10),
    "sat_gain_dbi": _GAIN_DBI,
    "user_gain_min_dbi": _GAIN_DBI,
    "user_gain_max_dbi": _GAIN_DBI,
    "target_rx_power_w": Bound(1e-20, 1.0),  # −170 dBm .. 30 dBm at the receiver
    # a cooled receiver (−150) .. 60 dB above thermal noise (−54); thermal is −114
    "noise_psd_dbm_per_mhz": Bound(-150.0, -54.0),
    "rician_k": Bound(0.0, 1e4),  # Rayleigh .. 40 dB (pure line of sight)
    "doppler_xi": Bound(0.0, 1e6),  # ρ at 7.5 km/s: 1 .. exp(−25)
    "cfo_residual": UNIT_INTERVAL,
    "subcarrier_spacing_hz": Bound(1e2, 1e7),
    "activity_min": UNIT_INTERVAL,
    "activity_max": UNIT_INTERVAL,
    "polarization_isolation_db": Bound(0.0, 100.0),
    "cochannel_factor": UNIT_INTERVAL,
    "visibility": UNIT_INTERVAL,
    "visibility_prices_budget": UNIT_INTERVAL,
    "malicious_fraction": UNIT_INTERVAL,
    "malicious_boost_db": Bound(0.0, 60.0, low_inclusive=False),
    # prices and revenue are normalised by price_max in the observation: keep them
    # within six decades of 1 (a unit of account, not a physical scale)
    "revenue_coefficient": Bound(1e-6, 1e6),
    "price_min": Bound(0.0, 1e6),
    "price_max": Bound(1e-6, 1e6),
    "power_ctrl_min_w": Bound(1e-6, 1e4),  # 1 µW .. 10 kW transmit power
    "power_ctrl_max_w": Bound(1e-6, 1e4),
    "reputation_coeff": Bound(0.0, 1e6),
    "p_online": UNIT_INTERVAL,
    "block_reward": Bound(0.0, 1e6),
    "reputation_weight": Bound(0.0, 1e6),
}
PARAM_ORDER = (
    ("user_gain_min_dbi", "user_gain_max_dbi"),
    ("elevation_min_rad", "elevation_max_rad"),
    ("activity_min", "activity_max"),
)


def hex_cells(num_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-spacing hexagonal beam centres (ring by ring) and their 4-colour reuse ids.

    Returns ``(xy, colour)``: (C, 2) centres for a centre-to-centre spacing of 1
    (scale by √3·r_beam) and (C,) colours ``(q mod 2) + 2·(r mod 2)`` of the
    axial coordinates (q, r), a proper 4-colouring of the hex grid (neighbours
    always differ).
    """
    rings = 0
    while 1 + 3 * rings * (rings + 1) < num_cells:
        rings += 1
    cand = [(q, r) for q in range(-rings, rings + 1) for r in range(-rings, rings + 1)
            if abs(q + r) <= rings]
    xy = np.array([(q + 0.5 * r, r * math.sqrt(3) / 2) for q, r in cand])
    dist = np.round(np.hypot(xy[:, 0], xy[:, 1]), 9)
    ang = np.round(np.mod(np.arctan2(xy[:, 1], xy[:, 0]), 2 * np.pi), 9)
    order = np.lexsort((ang, dist))[:num_cells]
    qr = np.array(cand)[order]
    colour = (qr[:, 0] % 2) + 2 * (qr[:, 1] % 2)
    return xy[order], colour.astype(np.int32)


def myopic_optimal_price(budgets, eligible, capacity):
    """Revenue-maximising single posted price under a capacity cap (exact).

    With budgets known, the best price is one of the budgets: sort the
    eligible budgets b_(1) ≥ b_(2) ≥ …; posting p = b_(i) sells min(i, cap)
    leases, so the optimum is max_i b_(i)·min(i, cap) (for i > cap the price
    only falls). Args: budgets (..., U), eligible bool (..., U), capacity (int).
    Returns ``(price, revenue)`` (...,), both 0 when nobody is eligible.
    """
    b = jnp.where(eligible, budgets, 0.0)
    sorted_b = -jnp.sort(-b, axis=-1)
    count = jnp.minimum(jnp.arange(1, b.shape[-1] + 1), capacity).astype(b.dtype)
    revenue = sorted_b * count
    best = jnp.argmax(revenue, axis=-1)
    return (jnp.take_along_axis(sorted_b, best[..., None], -1)[..., 0],
            jnp.take_along_axis(revenue, best[..., None], -1)[..., 0])


#: State fields holding one step's exogenous draws (see ``SpectrumEnv.draw_step``).
DRAW_FIELDS = ("visible", "fading", "online")
#: State fields drawn once per episode (see ``SpectrumEnv.draw_users``).
USER_FIELDS = ("user_xy", "cell", "user_gain", "activity", "malicious", "elevation_rad")
#: State fields of the reputation ledger (the chain): they persist across episodes.
LEDGER_FIELDS = ("reputation", "block_income", "block_income_counted")


@struct.dataclass
class SpectrumLedger:
    """The reputation blockchain's ledger, which outlives episodes (the chain, not an episode).

    ``reputation`` R_s (S,); ``block_income`` the cumulative block reward B_s credited to each
    satellite (``agents.adapters.spectrum.settle_block``); ``block_income_counted`` the part of it
    already paid into a step's utility U_s (eq. 9), so that a credit enters U_s exactly once.
    """

    reputation: jnp.ndarray
    block_income: jnp.ndarray
    block_income_counted: jnp.ndarray


@struct.dataclass
class SpectrumState(EnvState):
    # per episode (S, U, ...)
    user_xy: jnp.ndarray  # (S, U, 2) m, relative to the footprint centre
    cell: jnp.ndarray  # (S, U) int32
    user_gain: jnp.ndarray  # (S, U) linear G_u
    activity: jnp.ndarray  # (S, U) a
    malicious: jnp.ndarray  # (S, U) bool
    elevation_rad: jnp.ndarray  # (S,) elevation of the satellite seen from its footprint centre
    # derived (from the draws above and params at reset)
    link_gain: jnp.ndarray  # (S, U, C) G_u·G_s(θ_{u,c})·(λ/4πd_u)²
    cos_phi: jnp.ndarray  # (S, U)
    power_req_w: jnp.ndarray  # (S, U) channel inversion: target / own link gain
    # per step draws
    visible: jnp.ndarray  # (S, U) bool
    fading: jnp.ndarray  # (S, U) |h|²
    online: jnp.ndarray  # (S,) bool
    # satellite state
    price_level: jnp.ndarray  # (S,) int32
    power_level: jnp.ndarray  # (S,) int32
    # the ledger (LEDGER_FIELDS): persists across episodes, see SpectrumLedger
    reputation: jnp.ndarray  # (S,)
    block_income: jnp.ndarray  # (S,) cumulative B_s credited
    block_income_counted: jnp.ndarray  # (S,) part of block_income already in a step's U_s
    last_revenue: jnp.ndarray  # (S,) U'_s of the last step
    last_leases: jnp.ndarray  # (S,)
    last_sinr_db: jnp.ndarray  # (S,) mean ex-ante SINR of the visible users, dB
    last_mean_budget: jnp.ndarray  # (S,) mean budget of the visible users


class SpectrumEnv(MultiAgentEnv):
    """S satellites post spectrum prices and power-control levels to their users."""

    agent_classes = ("satellite",)
    param_bounds = PARAM_BOUNDS
    param_order = PARAM_ORDER

    def __init__(
        self,
        num_satellites: int = 10,
        num_cells: int = 7,
        users_per_satellite: int = 100,
        num_channels: int = 8,
        slots_per_channel: int = 5,
        num_price_levels: int = 20,
        num_power_levels: int = 4,
        horizon: int = 100,
        price_only: bool = False,
        doppler_model: str = "rho",
        reward: str = "revenue",
        initial_price_level: int | None = None,
        initial_power_level: int | None = None,
    ):
        super().__init__(horizon)
        where = "spectrum"
        self.num_satellites = check_int("num_satellites", num_satellites, 1, where=where)
        self.num_cells = check_int("num_cells", num_cells, 1, where=where)
        self.users_per_satellite = check_int("users_per_satellite", users_per_satellite, 1,
                                             where=where)
        self.num_channels = check_int("num_channels", num_channels, 1, where=where)
        self.slots_per_channel = check_int("slots_per_channel", slots_per_channel, 1, where=where)
        self.num_price_levels = check_int("num_price_levels", num_price_levels, 2, where=where)
        self.num_power_levels = check_int("num_power_levels", num_power_levels, 1, where=where)
        if not isinstance(price_only, bool):
            raise ValueError(f"{where}: 'price_only' must be a bool, got {price_only!r}")
        self.price_only = price_only
        self.doppler_model = check_choice("doppler_model", doppler_model, ("rho", "ici"), where)
        self.reward_mode = check_choice("reward", reward, ("revenue", "delta", "utility"), where)
        self.initial_price_level = check_int(
            "initial_price_level",
            num_price_levels // 2 if initial_price_level is None else initial_price_level,
            0, num_price_levels - 1, where)
        self.initial_power_level = check_int(
            "initial_power_level",
            num_power_levels // 2 if initial_power_level is None else initial_power_level,
            0, num_power_levels - 1, where)
        self.capacity = self.num_channels * self.slots_per_channel
        xy, colour = hex_cells(self.num_cells)
        self.cell_xy_unit = xy.astype(np.float32)
        self.cell_colour = colour
        self.num_actions = 3 if price_only else 9
        check_memory({"num_satellites": self.num_satellites,
                      "users_per_satellite": self.users_per_satellite,
                      "num_cells": self.num_cells, "num_power_levels": self.num_power_levels},
                     self.step_elements(), where=where)

    def step_elements(self) -> int:
        """Estimate of the float32 elements one step of one episode holds at its peak.

        Dominated by the link gains and per-level interference of the myopic bound
        (``myopic_by_level`` vmaps eq. 3-6 over the LP power levels): ``(LP+2, S, U, C)``
        link-gain × weight products (×2: the einsum operand and the gains), and the
        ``(LP+2, S, C, C)`` beam-to-beam powers.
        """
        s, u, c = self.num_satellites, self.users_per_satellite, self.num_cells
        lp = self.num_power_levels + 2
        return 2 * lp * s * u * c + lp * s * c * c + 16 * lp * s * u

    # ----------------------------------------------------------- params
    @property
    def default_params(self) -> SpectrumParams:
        return SpectrumParams()

    def validate_params(self, params: Any) -> Any:
        """Bounds table plus strictly increasing price / power-control grids."""
        super().validate_params(params)
        lo, hi = np.asarray(params.price_min), np.asarray(params.price_max)
        if np.any(hi <= lo):
            raise ValueError(
                f"{self.name}: price grid not increasing: 'price_min' ({lo}) must be < "
                f"'price_max' ({hi})")
        if self.num_power_levels > 1:
            lo, hi = np.asarray(params.power_ctrl_min_w), np.asarray(params.power_ctrl_max_w)
            if np.any(hi <= lo):
                raise ValueError(
                    f"{self.name}: power-control grid not increasing: 'power_ctrl_min_w' "
                    f"({lo}) must be < 'power_ctrl_max_w' ({hi})")
        return params

    def price_grid(self, params) -> jnp.ndarray:
        return jnp.linspace(params.price_min, params.price_max, self.num_price_levels)

    def power_grid(self, params) -> jnp.ndarray:
        if self.num_power_levels == 1:
            return jnp.reshape(jnp.asarray(params.power_ctrl_max_w, jnp.float32), (1,))
        return jnp.linspace(params.power_ctrl_min_w, params.power_ctrl_max_w,
                            self.num_power_levels)

    # ----------------------------------------------------------- spaces
    def num_agents(self, agent_class: str) -> int:
        return {"satellite": self.num_satellites}[agent_class]

    def observation_space(self, agent_class: str, params: Any = None) -> spaces.Space:
        return spaces.Box(-jnp.inf, jnp.inf, (self.num_satellites, 5))

    def action_space(self, agent_class: str, params: Any = None) -> spaces.Space:
        return spaces.Discrete(self.num_actions, (self.num_satellites,))

    def decode_action(self, action):
        """Action index → (price Δ, power Δ), each in {−1, 0, +1}."""
        a = jnp.clip(jnp.asarray(action), 0, self.num_actions - 1)
        if self.price_only:
            return a - 1, jnp.zeros_like(a)
        return a // 3 - 1, a % 3 - 1

    def encode_action(self, d_price, d_power):
        """(price Δ, power Δ) → action index (inverse of :meth:`decode_action`)."""
        d_price = jnp.clip(d_price, -1, 1)
        if self.price_only:
            return (d_price + 1).astype(jnp.int32)
        return (3 * (d_price + 1) + jnp.clip(d_power, -1, 1) + 1).astype(jnp.int32)

    # ------------------------------------------------------- randomness
    def draw_users(self, key: chex.PRNGKey, params: SpectrumParams) -> dict:
        """Per-episode draws: user position, cell, G_u, activity, malicious flag, and each
        satellite's elevation over its footprint centre ε ~ U(ε_min, ε_max) (the pass)."""
        s, u, c = self.num_satellites, self.users_per_satellite, self.num_cells
        k_cell, k_u, k_el = jax.random.split(key, 3)
        cell = jax.random.randint(k_cell, (s, u), 0, c, dtype=jnp.int32)
        r = jax.random.uniform(k_u, (s, u, 5), jnp.float32)
        r_el = jax.random.uniform(k_el, (s,), jnp.float32)
        centre = jnp.asarray(self.cell_xy_unit)[cell] * (math.sqrt(3.0) * params.beam_radius_m)
        radius = params.beam_radius_m * jnp.sqrt(r[..., 0])
        angle = 2.0 * jnp.pi * r[..., 1]
        xy = centre + jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], -1)
        lin = lambda x: jnp.power(10.0, x / 10.0)  # noqa: E731
        scale = lambda x, lo, hi: lo + x * (hi - lo)  # noqa: E731
        return {
            "user_xy": xy,
            "cell": cell,
            "user_gain": lin(scale(r[..., 2], params.user_gain_min_dbi, params.user_gain_max_dbi)),
            "activity": scale(r[..., 3], params.activity_min, params.activity_max),
            "malicious": r[..., 4] < params.malicious_fraction,
            "elevation_rad": scale(r_el, params.elevation_min_rad, params.elevation_max_rad),
        }

    def draw_step(self, key: chex.PRNGKey, params: SpectrumParams) -> dict:
        """Per-step draws: visibility (weather), Rician fading |h|², servers online."""
        s, u = self.num_satellites, self.users_per_satellite
        k_u, k_n = jax.random.split(key)
        r = jax.random.uniform(k_u, (s, u + 1), jnp.float32)
        z = jax.random.normal(k_n, (s, u, 2), jnp.float32)
        k = params.rician_k
        los = jnp.sqrt(k / (k + 1.0))
        diffuse = jnp.sqrt(0.5 / (k + 1.0))
        fading = (los + diffuse * z[..., 0]) ** 2 + (diffuse * z[..., 1]) ** 2
        return {
            "visible": r[:, :u] < params.visibility,
            "fading": fading,
            "online": r[:, u] < params.p_online,
        }

    # ---------------------------------------------------------- physics
    def cell_centres(self, params) -> jnp.ndarray:
        return jnp.asarray(self.cell_xy_unit) * (math.sqrt(3.0) * params.beam_radius_m)

    def geometry(self, user_xy, user_gain, elevation_rad, params):
        """``(link_gain (S, U, C), cos_phi (S, U))`` from the pass geometry (eq. 1-3).

        Users and beam centres on the sphere (:func:`ground_xyz`), the satellite at
        :func:`pass_geometry` (ε per satellite); distances are 3-D (spherical slant range).
        """
        sat, vel = pass_geometry(elevation_rad, params.altitude_m)  # (S, 3)
        users = ground_xyz(user_xy)  # (S, U, 3)
        centres = ground_xyz(self.cell_centres(params))  # (C, 3)
        to_user = users - sat[:, None, :]
        d_user = jnp.linalg.norm(to_user, axis=-1)  # (S, U)
        d_centre = jnp.linalg.norm(centres[None] - sat[:, None, :], axis=-1)  # (S, C)
        d_cu = jnp.linalg.norm(users[..., None, :] - centres, axis=-1)  # (S, U, C)
        theta = deviation_angle(d_centre[:, None, :], d_user[..., None], d_cu)  # eq. (1)
        theta_3db = jnp.arctan(params.beam_radius_m / params.altitude_m)
        g_max = jnp.power(10.0, params.sat_gain_dbi / 10.0)
        g_sat = bessel_beam_gain(theta, g_max, theta_3db)
        wavelength = params.speed_of_light / params.carrier_hz
        path = (wavelength / (4.0 * jnp.pi * d_user)) ** 2
        link_gain = user_gain[..., None] * g_sat * path[..., None]
        cos_phi = jnp.sum(to_user * vel[:, None, :], -1) / d_user
        return link_gain, cos_phi

    def required_power(self, link_gain, cell, params):
        """Channel inversion (R): P_req = target received power / own-beam link gain
        (mean fading 1): the power that reaches ``target_rx_power_w`` over the user's link."""
        own = jnp.take_along_axis(link_gain, cell[..., None], -1)[..., 0]
        return params.target_rx_power_w / own

    def isolation_matrix(self, params) -> jnp.ndarray:
        """ι(c, c') (C, C): 1 for the same colour, 10^(−iso/10) otherwise."""
        colour = jnp.asarray(self.cell_colour)
        iso = jnp.power(10.0, -params.polarization_isolation_db / 10.0)
        return jnp.where(colour[:, None] == colour[None, :], 1.0, iso)

    def noise_w(self, params) -> jnp.ndarray:
        dbm = params.noise_psd_dbm_per_mhz + 10.0 * jnp.log10(params.channel_bandwidth_hz / 1e6)
        return jnp.power(10.0, (dbm - 30.0) / 10.0)

    def interference(self, state: SpectrumState, tx_power_w, active, params) -> jnp.ndarray:
        """Eq. (4): interference (S, U) at every user's own beam from the active users
        of the *other* cells of its satellite."""
        c = self.num_cells
        onehot = jax.nn.one_hot(state.cell, c, dtype=jnp.float32)  # (S, U, C)
        weight = state.activity * tx_power_w * state.fading * active  # (S, U)
        # rx[s, c, c']: power at beam c from the active users of cell c'
        rx = jnp.einsum("suc,su,sud->scd", state.link_gain, weight, onehot,
                        precision=jax.lax.Precision.HIGHEST)
        iso = self.isolation_matrix(params) * (1.0 - jnp.eye(c))
        per_cell = params.cochannel_factor * jnp.sum(rx * iso, -1)  # (S, C)
        return jnp.take_along_axis(per_cell, state.cell, axis=1)

    def effective_sinr(self, signal_w, interference_w, state, params):
        """Eq. (5) with the Doppler model (ρ on the signal, or ICI)."""
        noise = self.noise_w(params)
        if self.doppler_model == "rho":
            rho = doppler_loss_factor(params.velocity_mps, state.cos_phi, params.doppler_xi,
                                      speed_of_light=params.speed_of_light)
            return rho * signal_w / (interference_w + noise)
        doppler_hz = params.carrier_hz * params.velocity_mps * jnp.abs(state.cos_phi) \
            / params.speed_of_light
        eps = params.cfo_residual * doppler_hz / params.subcarrier_spacing_hz
        return ici_sinr(signal_w / (interference_w + noise), eps)

    def connected_fraction(self, params):
        """ν^w: the share of the lease a user expects to be connected, priced into its budget
        (w = ``visibility_prices_budget``; 0 gives the spec's plain κ·log2(1 + SINR))."""
        return jnp.power(params.visibility, params.visibility_prices_budget)

    def ante(self, state: SpectrumState, p_ctrl, params) -> dict:
        """Transmit powers, eligibility, ex-ante SINR and budgets (eq. 3-6) at P_ctrl (S,)."""
        boost = jnp.power(10.0, params.malicious_boost_db / 10.0)
        tx = jnp.where(state.malicious, boost * p_ctrl[:, None], state.power_req_w)  # (S, U)
        eligible = state.visible & (state.power_req_w <= p_ctrl[:, None])
        own_gain = jnp.take_along_axis(state.link_gain, state.cell[..., None], -1)[..., 0]
        signal = tx * own_gain * state.fading
        i_ante = self.interference(state, tx, eligible, params)
        sinr_ante = self.effective_sinr(signal, i_ante, state, params)
        kappa = params.revenue_coefficient
        budget = kappa * self.connected_fraction(params) * jnp.log2(1.0 + sinr_ante)  # eq. (6)
        return {"tx": tx, "eligible": eligible, "signal": signal, "sinr_ante": sinr_ante,
                "budget": budget}

    def myopic_by_level(self, state: SpectrumState, params) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The myopic optimum (best single posted price, exact) at every power-control level:
        ``(price (S, LP), revenue (S, LP))``."""
        def at(p):
            a = self.ante(state, jnp.full((self.num_satellites,), p), params)
            return myopic_optimal_price(a["budget"], a["eligible"], self.capacity)

        price, revenue = jax.vmap(at)(self.power_grid(params))
        return price.T, revenue.T

    def myopic_bound(self, state: SpectrumState, params) -> dict:
        """The one bound of every gap: the myopic optimum maximised over the power-control
        levels, per satellite (S,): revenue, its price and its power level (W)."""
        price, revenue = self.myopic_by_level(state, params)
        best = jnp.argmax(revenue, -1)
        take = lambda x: jnp.take_along_axis(x, best[:, None], -1)[:, 0]  # noqa: E731
        return {"revenue": take(revenue), "price": take(price),
                "power_w": self.power_grid(params)[best], "revenue_by_level": revenue}

    def outcome(self, state: SpectrumState, price_level, power_level, params) -> dict:
        """Everything that happens in a step at the given levels (pure)."""
        price = self.price_grid(params)[price_level]  # (S,)
        p_ctrl = self.power_grid(params)[power_level]  # (S,)
        a = self.ante(state, p_ctrl, params)
        tx, eligible, signal = a["tx"], a["eligible"], a["signal"]
        sinr_ante, budget = a["sinr_ante"], a["budget"]
        kappa = params.revenue_coefficient
        want = eligible & (price[:, None] <= budget)
        # capacity: highest budgets first (stable: ties to the lower index)
        order = jnp.argsort(-jnp.where(want, budget, -1.0), axis=-1, stable=True)
        rank = jnp.argsort(order, axis=-1)
        leased = want & (rank < self.capacity)
        i_real = self.interference(state, tx, leased, params)
        sinr_real = self.effective_sinr(signal, i_real, state, params)
        n_leased = jnp.sum(leased, -1).astype(jnp.float32)
        n_mal = jnp.sum(leased & state.malicious, -1).astype(jnp.float32)
        n_normal = n_leased - n_mal
        revenue = price * n_leased  # eq. (9) without B_s
        rep_next = reputation_update(state.reputation, n_normal, n_mal, params.reputation_coeff)
        util = jnp.where(leased, budget - price[:, None], 0.0)  # eq. (8)
        honest = leased & ~state.malicious
        value_real = kappa * self.connected_fraction(params) * jnp.log2(1.0 + sinr_real)
        util_real = jnp.where(honest, value_real - price[:, None], 0.0)
        vis = state.visible.astype(jnp.float32)
        n_vis = jnp.maximum(jnp.sum(vis, -1), 1.0)
        sinr_db = 10.0 * jnp.log10(jnp.maximum(sinr_ante, SINR_FLOOR))
        bound = self.myopic_bound(state, params)
        at_level = jnp.take_along_axis(bound["revenue_by_level"], power_level[:, None], -1)[:, 0]
        return {
            "price": price,
            "power_ctrl_w": p_ctrl,
            "tx_power_w": tx,
            "eligible": eligible,
            "budget": budget,
            "leased": leased,
            "sinr_ante": sinr_ante,
            "sinr_real": sinr_real,
            "interference_real_w": i_real,
            "leases": n_leased,
            "malicious_leases": n_mal,
            "normal_leases": n_normal,
            "revenue": revenue,
            "reputation_next": rep_next,
            "user_utility": util,
            "honest_utility": util_real,
            "honest_leases": jnp.sum(honest, -1).astype(jnp.float32),
            "mean_sinr_db": jnp.sum(sinr_db * vis, -1) / n_vis,
            "mean_budget": jnp.sum(budget * vis, -1) / n_vis,
            "myopic_optimal_revenue": bound["revenue"],
            "myopic_optimal_price": bound["price"],
            "myopic_optimal_power_w": bound["power_w"],
            "myopic_revenue_at_level": at_level,
        }

    def next_levels(self, state: SpectrumState, action) -> tuple[jnp.ndarray, jnp.ndarray]:
        d_price, d_power = self.decode_action(action)
        price_level = jnp.clip(state.price_level + d_price, 0, self.num_price_levels - 1)
        power_level = jnp.clip(state.power_level + d_power, 0, self.num_power_levels - 1)
        return price_level.astype(jnp.int32), power_level.astype(jnp.int32)

    # ---------------------------------------------------------- env API
    def reset_env(self, key: chex.PRNGKey, params: SpectrumParams):
        k_users, k_step = jax.random.split(key)
        users = self.draw_users(k_users, params)
        draws = self.draw_step(k_step, params)
        state = self.initial_state(users, draws, params)
        return self.observe(state, params), state

    def initial_state(self, users: dict, draws: dict, params: SpectrumParams) -> SpectrumState:
        s = self.num_satellites
        link_gain, cos_phi = self.geometry(users["user_xy"], users["user_gain"],
                                           users["elevation_rad"], params)
        zeros = jnp.zeros((s,), jnp.float32)
        return SpectrumState(
            step=jnp.zeros((), jnp.int32),
            link_gain=link_gain.astype(jnp.float32),
            cos_phi=cos_phi.astype(jnp.float32),
            power_req_w=self.required_power(link_gain, users["cell"], params).astype(jnp.float32),
            block_income_counted=zeros,
            price_level=jnp.full((s,), self.initial_price_level, jnp.int32),
            power_level=jnp.full((s,), self.initial_power_level, jnp.int32),
            reputation=zeros,
            block_income=zeros,
            last_revenue=zeros,
            last_leases=zeros,
            last_sinr_db=zeros,
            last_mean_budget=zeros,
            **users,
            **draws,
        )

    def step_env(self, key: chex.PRNGKey, state: SpectrumState, action: dict,
                 params: SpectrumParams):
        price_level, power_level = self.next_levels(state, action["satellite"])
        out = self.outcome(state, price_level, power_level, params)
        d_rep = out["reputation_next"] - state.reputation
        # B_s credited to this satellite's ledger since the last step (settle_block)
        out["block_reward"] = state.block_income - state.block_income_counted
        out["utility"] = out["revenue"] + out["block_reward"]  # eq. (9)
        base = {"revenue": out["revenue"], "utility": out["utility"],
                "delta": out["revenue"] - state.last_revenue}[self.reward_mode]
        reward = base + params.reputation_weight * d_rep  # eq. (12)
        draws = self.draw_step(key, params)
        next_state = state.replace(
            price_level=price_level,
            power_level=power_level,
            reputation=out["reputation_next"],
            block_income_counted=state.block_income,
            last_revenue=out["revenue"],
            last_leases=out["leases"],
            last_sinr_db=out["mean_sinr_db"],
            last_mean_budget=out["mean_budget"],
            **draws,
        )
        obs = self.observe(next_state, params)
        info = self.metrics(out, state, next_state)
        return obs, next_state, {"satellite": reward.astype(jnp.float32)}, jnp.zeros((), bool), \
            info

    # ----------------------------------------------------------- ledger
    def empty_ledger(self) -> SpectrumLedger:
        """A fresh chain: every reputation and block income 0."""
        zeros = jnp.zeros((self.num_satellites,), jnp.float32)
        return SpectrumLedger(zeros, zeros, zeros)

    def ledger(self, state: SpectrumState) -> SpectrumLedger:
        """Read the ledger out of a state (e.g. before any reset)."""
        return SpectrumLedger(**{k: getattr(state, k) for k in LEDGER_FIELDS})

    def with_ledger(self, state: SpectrumState, ledger: SpectrumLedger) -> SpectrumState:
        """``state`` carrying ``ledger`` (observations do not depend on it)."""
        return state.replace(**{k: jnp.asarray(getattr(ledger, k), jnp.float32)
                                for k in LEDGER_FIELDS})

    def reset_with_ledger(self, key: chex.PRNGKey, params: SpectrumParams,
                          ledger: SpectrumLedger):
        """:meth:`reset` continuing the chain ``ledger`` (a learner carries it across
        episodes; plain :meth:`reset` starts a fresh chain)."""
        obs, state = self.reset(key, params)
        return obs, self.with_ledger(state, ledger)

    def reset_for_autoreset(self, key: chex.PRNGKey, params: SpectrumParams,
                            state_step: SpectrumState):
        """The automatic reset at an episode boundary keeps the ledger: the chain outlives
        the episode (a fresh episode of users, draws and levels, the same reputations)."""
        return self.reset_with_ledger(key, params, self.ledger(state_step))

    def observe(self, state: SpectrumState, params: SpectrumParams) -> dict:
        price = self.price_grid(params)[state.price_level]
        p_ctrl = self.power_grid(params)[state.power_level]
        obs = jnp.stack(
            [
                price / params.price_max,
                p_ctrl / jnp.max(self.power_grid(params)),
                state.last_revenue / (params.price_max * self.capacity),
                state.last_leases / self.capacity,
                state.last_sinr_db / SINR_DB_SCALE,
            ],
            axis=-1,
        )
        return {"satellite": obs.astype(jnp.float32)}

    def metrics(self, out: dict, state: SpectrumState, next_state: SpectrumState) -> dict:
        """Per-step metrics: scalars (plottable) and per-satellite arrays (S,)."""
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        leased = out["leased"]
        n_leased = jnp.maximum(jnp.sum(leased), 1.0)
        n_honest = jnp.maximum(jnp.sum(out["honest_leases"]), 1.0)
        mean_i = jnp.sum(out["interference_real_w"] * leased) / n_leased
        sinr_real_db = 10.0 * jnp.log10(jnp.maximum(out["sinr_real"], SINR_FLOOR))
        return {
            "revenue_total": f(jnp.sum(out["revenue"])),
            "revenue_mean": f(jnp.mean(out["revenue"])),
            "myopic_optimal_revenue": f(jnp.sum(out["myopic_optimal_revenue"])),
            "myopic_revenue_at_level_total": f(jnp.sum(out["myopic_revenue_at_level"])),
            "myopic_optimal_price_mean": f(jnp.mean(out["myopic_optimal_price"])),
            "myopic_optimal_power_w_mean": f(jnp.mean(out["myopic_optimal_power_w"])),
            "utility_total": f(jnp.sum(out["utility"])),
            "block_reward_total": f(jnp.sum(out["block_reward"])),
            "price_mean": f(jnp.mean(out["price"])),
            "power_ctrl_mean_w": f(jnp.mean(out["power_ctrl_w"])),
            "leases_total": f(jnp.sum(out["leases"])),
            "malicious_leases": f(jnp.sum(out["malicious_leases"])),
            "user_utility_mean": f(jnp.sum(out["user_utility"]) / n_leased),
            "honest_utility_mean": f(jnp.sum(out["honest_utility"]) / n_honest),
            "budget_mean": f(jnp.mean(out["mean_budget"])),
            "sinr_mean_db": f(jnp.mean(out["mean_sinr_db"])),
            "sinr_real_leased_db": f(jnp.sum(sinr_real_db * leased) / n_leased),
            "interference_w": f(mean_i),
            "interference_dbm": f(10.0 * jnp.log10(jnp.maximum(mean_i, 1e-23)) + 30.0),
            "reputation_mean": f(jnp.mean(next_state.reputation)),
            "online_fraction": f(jnp.mean(state.online)),
            "aggregator_candidate": f(select_aggregator(next_state.reputation, state.online)),
            "revenue": f(out["revenue"]),
            "price": f(out["price"]),
            "power_ctrl_w": f(out["power_ctrl_w"]),
            "leases": f(out["leases"]),
            "malicious_leases_sat": f(out["malicious_leases"]),
            "myopic_revenue": f(out["myopic_optimal_revenue"]),
            "myopic_revenue_at_level": f(out["myopic_revenue_at_level"]),
            "myopic_power_w": f(out["myopic_optimal_power_w"]),
            "utility": f(out["utility"]),
            "block_reward": f(out["block_reward"]),
            "reputation": f(next_state.reputation),
            "online": state.online,
        }


register("spectrum", SpectrumEnv)
