"""Scenario ``spectrum``: LEO spectrum pricing and power control with a reputation blockchain.

Source: Shen, Lam, Li, Wang, "Privacy-aware spectrum pricing and power control
optimization for LEO satellite Internet-of-Things" (arXiv 2407.00814 v2),
Sec. III-IV; our spec is ``specs/spectrum.md``. Our copy of the paper lost its
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
* Geometry (flat Earth, as the paper): satellite s at ``altitude_m`` above
  the centre of its footprint, moving along +x at ``velocity_mps``; C beam
  centres on a hexagonal grid (spacing √3·r_beam, filled ring by ring);
  users uniform over the cells (a cell uniformly, then uniform in the disc of
  radius r_beam around its centre) **(R)** (the paper says "randomly located
  at the beam coverage area").
* Deviation angle θ (eq. 1): :func:`jaxsg.physics.deviation_angle` between
  the user and every beam centre line.
* Beam gain (R): :func:`jaxsg.physics.bessel_beam_gain` with G_max =
  ``sat_gain_dbi`` and θ_3dB = atan(r_beam / h) (the half-power contour on a
  nadir cell's edge).
* Received power (eq. 3): P_r = P·G_u·G_s(θ)·(λ/(4πd))²·|h|², λ = c/f,
  d the straight-line user–satellite distance, |h|² Rician with factor
  ``rician_k`` (0 = Rayleigh; mean 1), drawn per user per step. User antenna
  gain G_u ~ U(``user_gain_min_dbi``, ``user_gain_max_dbi``) per user.
* Doppler (eq. 2), ``doppler_model="rho"`` (default): ρ =
  :func:`jaxsg.physics.doppler_loss_factor` (v, cos φ, ξ), cos φ the cosine
  between the velocity (+x) and the satellite→user line of sight, ξ =
  ``doppler_xi``. ρ multiplies the **desired** signal only (R): the receiver
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
* Power: each user needs P_req ~ U(``user_power_min_w``, ``user_power_max_w``)
  (per episode) (R). A user is *eligible* iff it is visible this step
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
* Revenue U'_s = p_s·#leases (eq. 9 without B_s). Reward (eq. 12) (R):
  ``reward="revenue"`` U'_s (default) or ``"delta"`` U'_s − U'_s,last, plus
  ``reputation_weight``·(R' − R) (beyond the paper, default 0: lets the
  reputation ledger steer the power control in the security study).

Reputation blockchain (IV-D)
----------------------------
Every step R_s ← :func:`jaxsg.consensus.reputation_update` (R, n_normal,
n_malicious, ``reputation_coeff``) with n_normal the honest leasers and
n_malicious the malicious leasers (who always exceed P_ctrl). Each server is
online with probability ``p_online`` per step (``state.online``). The
aggregator election, block reward B_s = ``block_reward`` and reputation reset
live in the agent loop (``agents/ddqn.py``): it calls
:meth:`SpectrumEnv.settle_block`. ``info["aggregator_candidate"]`` is who
would be elected now (:func:`jaxsg.consensus.select_aggregator`).

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
carrier, bandwidth      2 GHz (S band), 1 MHz per channel (R)
G_max, G_u              30 dBi (spec); U(0, 5) dBi (R, values lost)
P_req                   U(10, 200) mW (R, "mW" range lost)
noise PSD               −114 dBm/MHz (spec)
Rician K                10 (LoS-dominated satellite link) (R)
velocity                7.5 km/s default; swept 3..7.5 km/s
ξ                       ``DOPPLER_XI_DEFAULT`` = 1.6e4 (physics kernel calibration)
visibility              0.9 default; swept; priced into budgets (ν^w, w = 1) (R)
κ (revenue coeff)       1.0 (R): budgets ≈ 0..8 price units
activity factor         U(0.3, 0.9) per user (R)
isolation               20 dB between different colours (spec)
co-channel factor χ     0.125 (= 1/K at the default K) (R)
malicious               10 %, boost 10 dB above P_ctrl (R)
reputation              β = 0.1; p_online = 0.9; B_s = 10 (R)
myopic optimum          ``info["myopic_optimal_revenue"]``: Σ_s max_i b_(i)·min(i, cap)
                        over the sorted budgets of the eligible users at the
                        P_ctrl in force — the best single posted price (not
                        restricted to the grid) this step; an upper bound for
                        any pricing policy at that P_ctrl.
======================  ==========================================================
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
from jaxsg.physics.doppler import DOPPLER_XI_DEFAULT, doppler_loss_factor, ici_sinr
from jaxsg.physics.geometry import deviation_angle
from jaxsg.validation import NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, Bound, check_choice, check_int

SINR_DB_SCALE = 30.0
SINR_FLOOR = 1e-12


@struct.dataclass
class SpectrumParams:
    """Every numeric knob of the scenario, SI units (m, m/s, Hz, W, rad); dB at the edges."""

    # geometry and motion
    altitude_m: float = 550e3
    beam_radius_m: float = 50e3
    velocity_mps: float = 7500.0
    # radio (eq. 2-5)
    carrier_hz: float = 2e9
    speed_of_light: float = 299_792_458.0
    channel_bandwidth_hz: float = 1e6
    sat_gain_dbi: float = 30.0
    user_gain_min_dbi: float = 0.0
    user_gain_max_dbi: float = 5.0
    user_power_min_w: float = 0.01
    user_power_max_w: float = 0.2
    noise_psd_dbm_per_mhz: float = -114.0
    rician_k: float = 10.0
    doppler_xi: float = DOPPLER_XI_DEFAULT
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


PARAM_BOUNDS = {
    "altitude_m": Bound(100e3, 40_000e3),
    "beam_radius_m": POSITIVE,
    "velocity_mps": NON_NEGATIVE,
    "carrier_hz": POSITIVE,
    "speed_of_light": POSITIVE,
    "channel_bandwidth_hz": POSITIVE,
    "sat_gain_dbi": Bound(-50.0, 80.0),
    "user_gain_min_dbi": Bound(-50.0, 80.0),
    "user_gain_max_dbi": Bound(-50.0, 80.0),
    "user_power_min_w": POSITIVE,
    "user_power_max_w": POSITIVE,
    "noise_psd_dbm_per_mhz": Bound(-250.0, 100.0),
    "rician_k": NON_NEGATIVE,
    "doppler_xi": NON_NEGATIVE,
    "cfo_residual": UNIT_INTERVAL,
    "subcarrier_spacing_hz": POSITIVE,
    "activity_min": UNIT_INTERVAL,
    "activity_max": UNIT_INTERVAL,
    "polarization_isolation_db": NON_NEGATIVE,
    "cochannel_factor": UNIT_INTERVAL,
    "visibility": UNIT_INTERVAL,
    "visibility_prices_budget": UNIT_INTERVAL,
    "malicious_fraction": UNIT_INTERVAL,
    "malicious_boost_db": Bound(0.0, 60.0, low_inclusive=False),
    "revenue_coefficient": POSITIVE,
    "price_min": NON_NEGATIVE,
    "price_max": POSITIVE,
    "power_ctrl_min_w": POSITIVE,
    "power_ctrl_max_w": POSITIVE,
    "reputation_coeff": NON_NEGATIVE,
    "p_online": UNIT_INTERVAL,
    "block_reward": NON_NEGATIVE,
    "reputation_weight": NON_NEGATIVE,
}
PARAM_ORDER = (
    ("user_gain_min_dbi", "user_gain_max_dbi"),
    ("user_power_min_w", "user_power_max_w"),
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
USER_FIELDS = ("user_xy", "cell", "user_gain", "power_req_w", "activity", "malicious")


@struct.dataclass
class SpectrumState(EnvState):
    # per episode (S, U, ...)
    user_xy: jnp.ndarray  # (S, U, 2) m, relative to the footprint centre
    cell: jnp.ndarray  # (S, U) int32
    user_gain: jnp.ndarray  # (S, U) linear G_u
    power_req_w: jnp.ndarray  # (S, U)
    activity: jnp.ndarray  # (S, U) a
    malicious: jnp.ndarray  # (S, U) bool
    # derived geometry (from user_xy and params at reset)
    link_gain: jnp.ndarray  # (S, U, C) G_u·G_s(θ_{u,c})·(λ/4πd_u)²
    cos_phi: jnp.ndarray  # (S, U)
    # per step draws
    visible: jnp.ndarray  # (S, U) bool
    fading: jnp.ndarray  # (S, U) |h|²
    online: jnp.ndarray  # (S,) bool
    # satellite state
    price_level: jnp.ndarray  # (S,) int32
    power_level: jnp.ndarray  # (S,) int32
    reputation: jnp.ndarray  # (S,)
    block_income: jnp.ndarray  # (S,) B_s credited this episode
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
        self.reward_mode = check_choice("reward", reward, ("revenue", "delta"), where)
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
        """Per-episode user draws: position, cell, G_u, P_req, activity, malicious flag."""
        s, u, c = self.num_satellites, self.users_per_satellite, self.num_cells
        k_cell, k_u = jax.random.split(key)
        cell = jax.random.randint(k_cell, (s, u), 0, c, dtype=jnp.int32)
        r = jax.random.uniform(k_u, (s, u, 6), jnp.float32)
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
            "power_req_w": scale(r[..., 3], params.user_power_min_w, params.user_power_max_w),
            "activity": scale(r[..., 4], params.activity_min, params.activity_max),
            "malicious": r[..., 5] < params.malicious_fraction,
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

    def geometry(self, user_xy, user_gain, params) -> tuple[jnp.ndarray, jnp.ndarray]:
        """``(link_gain (S, U, C), cos_phi (S, U))`` from the user positions (eq. 1, 3)."""
        h = params.altitude_m
        centres = self.cell_centres(params)  # (C, 2)
        d_user = jnp.sqrt(h * h + jnp.sum(user_xy**2, -1))  # (S, U)
        d_centre = jnp.sqrt(h * h + jnp.sum(centres**2, -1))  # (C,)
        d_cu = jnp.linalg.norm(user_xy[..., None, :] - centres, axis=-1)  # (S, U, C)
        theta = deviation_angle(d_centre, d_user[..., None], d_cu)  # eq. (1)
        theta_3db = jnp.arctan(params.beam_radius_m / h)
        g_max = jnp.power(10.0, params.sat_gain_dbi / 10.0)
        g_sat = bessel_beam_gain(theta, g_max, theta_3db)
        wavelength = params.speed_of_light / params.carrier_hz
        path = (wavelength / (4.0 * jnp.pi * d_user)) ** 2
        link_gain = user_gain[..., None] * g_sat * path[..., None]
        cos_phi = user_xy[..., 0] / d_user  # velocity along +x
        return link_gain, cos_phi

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

    def outcome(self, state: SpectrumState, price_level, power_level, params) -> dict:
        """Everything that happens in a step at the given levels (pure)."""
        price = self.price_grid(params)[price_level]  # (S,)
        p_ctrl = self.power_grid(params)[power_level]  # (S,)
        boost = jnp.power(10.0, params.malicious_boost_db / 10.0)
        tx = jnp.where(state.malicious, boost * p_ctrl[:, None], state.power_req_w)  # (S, U)
        eligible = state.visible & (state.power_req_w <= p_ctrl[:, None])
        own_gain = jnp.take_along_axis(state.link_gain, state.cell[..., None], -1)[..., 0]
        signal = tx * own_gain * state.fading
        i_ante = self.interference(state, tx, eligible, params)
        sinr_ante = self.effective_sinr(signal, i_ante, state, params)
        kappa = params.revenue_coefficient
        budget = kappa * self.connected_fraction(params) * jnp.log2(1.0 + sinr_ante)  # eq. (6)
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
        _, opt_rev = myopic_optimal_price(budget, eligible, self.capacity)
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
            "myopic_optimal_revenue": opt_rev,
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
        link_gain, cos_phi = self.geometry(users["user_xy"], users["user_gain"], params)
        zeros = jnp.zeros((s,), jnp.float32)
        return SpectrumState(
            step=jnp.zeros((), jnp.int32),
            link_gain=link_gain.astype(jnp.float32),
            cos_phi=cos_phi.astype(jnp.float32),
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
        base = out["revenue"] if self.reward_mode == "revenue" else out["revenue"] - \
            state.last_revenue
        reward = base + params.reputation_weight * d_rep  # eq. (12)
        draws = self.draw_step(key, params)
        next_state = state.replace(
            price_level=price_level,
            power_level=power_level,
            reputation=out["reputation_next"],
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
            "reputation": f(next_state.reputation),
            "online": state.online,
        }


register("spectrum", SpectrumEnv)
