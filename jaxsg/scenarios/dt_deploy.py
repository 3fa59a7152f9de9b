"""Scenario ``dt_deploy``: multi-layer digital-twin deployment in a satellite-terrestrial network.

Source: Tao et al., "Adaptive Multi-Layer Deployment for a Digital Twin Empowered
Satellite-Terrestrial Integrated Network", arXiv 2409.05480, Sec. 3-5; our spec is
``docs/dt_deploy.md``. Equation numbers below are the paper's.

Agents
------
* ``user`` — I users; each decides where its DT is deployed. Action (Discrete E+2):
  0 = local, 1..E = end device e, E+1 = cloud (via the LEO satellite and a gateway).
  Observation (O(1) scales, 4E + 11 features):
  ``[D/D_max, μ/μ_max, f/f_max, d_ij/area (E), r_ij/100 Mbit/s (E), d_is/2000 km,
  r_is/100 Mbit/s, elevation/(π/2), last loads n_j/I (E+2), own last action one-hot
  (E+2), t/T]``. ``r_ij`` is the D2D rate of this step (fading included); ``r_is`` the
  uplink rate with the band shared among ``max(1, cloud load of the last step)`` users.

Step t (state holds step t's draws, which users observe)
-------------------------------------------------------
Actions → random-priority admission (13d) → placement x_i → counts n_j → delays
(eq. 1-10) → L_sum (eq. 12) → reward (eq. 16-18) → draws of step t+1.

* Local (eq. 1): L = μ·D/f_i.
* End device j (eq. 2-5): L = D/r_ij + μ·D/(F_j/n_j), r_ij = W·log2(1 + P·G_ij/(W·N0)),
  G_ij = 10^(−PL/10)·|h|², PL = 128.1 + 37.6·log10(max(d, 35 m)/1 km) (``uma_pathloss_db``
  with ``d2d_min_distance_m``), |h|² ~ Exp(1) (Rayleigh) redrawn every step.
* Cloud (eq. 6-10): L = D/r_is + D/r_sc + (d_is + d_sc)/c + μ·D/f_c with
  r_is = (W_s/n_c)·log2(1 + P·G_is/((W_s/n_c)·N0)) and
  r_sc = W_sc·log2(1 + P_s·G_sc/(W_sc·N0)); G = 10^((G_tx + G_rx − FSPL(d, f))/10),
  d = ``slant_range(elevation, altitude)``.
* Reward, shared by every user: R = α·(−L_sum) − β·ς·m, m = DTs off-device.

Decisions where the paper is silent (also in ``docs/dt_deploy.md``)
--------------------------------------------------------------------
=================================  =====================================================
topic                              decision
=================================  =====================================================
"MB" of D                          10^6 bytes: D ∈ [4, 16] Mbit (``data_*_bits``)
capacity (13d)                     simultaneous actions; users choosing a node are admitted
                                   in a random priority order (uniform priority drawn with
                                   the step's draws); overflow deploys locally and is
                                   counted in ``info["capacity_overflow"]``
``avail_actions``                  node j masked for user i when the *other* users' last
                                   admitted placement already fills j; local always valid
end-device compute (13e)           F_j split evenly among its DTs (f_ij = F_j/n_j)
cloud compute                      f_c per DT, not split ("sufficient" resources, eq. 9)
cloud capacity                     ``cloud_capacity`` (default ∞)
satellite pass                     elevation(t) = el_min + (el_peak − el_min)·sin(π(t+½)/T),
                                   t clipped to [0, T−1]: one pass per episode
gateway                            sees the satellite at the users' elevation (the area is
                                   500 m; the gateway is assumed nearby): d_sc = d_is
satellite links                    LoS, no fading; S-band uplink 2 GHz (0 dBi user,
                                   40 dBi satellite), Ka feeder 20 GHz (10 W, 40 + 40 dBi)
                                   — not in the paper, chosen so that the cloud is a real
                                   option for slow users (one user: 26 Mbit/s at 10°,
                                   69 Mbit/s at the zenith; 10 users: 8–13 Mbit/s each)
feeder link per DT                 each DT's data crosses the feeder at r_sc (eq. 8), the
                                   feeder band is not split
end-device placement               distinct cells of a grid of side ``end_device_cell_m``
                                   (uniform cell without replacement, uniform in the cell);
                                   more end devices than cells is a ValueError
users                              uniform in the area
D2D path loss below 35 m           the 3GPP UMa form (128.1 + 37.6·log10 d_km) holds from
                                   its minimum distance 35 m (TR 36.814); below it the
                                   distance is *clamped* to ``d2d_min_distance_m`` = 35 m
                                   (73.4 dB), not free space (which needs a carrier the
                                   paper does not give); the raw form gave 15 dB at 1 m
Rayleigh fading draws              u on the midpoints (2k+1)·2⁻²⁴ of jax's 2⁻²³ grid, so
                                   |h|² = −log1p(−u) ∈ [``FADING_MIN`` ≈ 5.96e−8, 16.6]:
                                   never 0 (round 1 drew u = 0 with prob. 2⁻²³: rate 0,
                                   infinite delay, −inf reward). Delay tail, any user,
                                   device and step: P(D/r_ij > x) ≤ (2^{D_max/(xW)} − 1)
                                   / S̄(√2·area) (``d2d_delay_tail_bound``; 0.052 at 10 s,
                                   0.004 at 100 s at the defaults) and D/r_ij ≤
                                   ``d2d_delay_max`` (6.6e6 s at the defaults — finite but
                                   huge: E[1/rate] under Rayleigh fading diverges
                                   logarithmically as |h|² → 0, and the floor caps it)
local CPU f_i                      U(f_min, f_max) per user, fixed per episode
m (eq. 17)                         number of DTs deployed on end devices or the cloud
=================================  =====================================================

Live regime (``docs/dt_deploy.md``, round 2 decision; ``preset``)
----------------------------------------------------------------
Table 2's single "computation capacity f ∈ [0.5, 20] GHz" is read as covering every compute
node: user devices at its low end, end devices in its middle, the cloud above. The literal
per-user reading (round 1) stays available as ``preset="paper"``; ``make`` overrides apply
on top of either.

=========================  =====================  ==================================
param                      default                ``preset="paper"`` (round 1)
=========================  =====================  ==================================
local CPU f_i              U(0.5, 2) GHz          U(0.5, 20) GHz (Table 2 literal)
end device F_j, N_j        3 GHz, 6 DTs           20 GHz, 4 DTs
cloud CPU f_c              100 GHz                100 GHz
D2D bandwidth W            2 MHz                  10 MHz
satellite antenna gain     40 dBi                 30 dBi
unit expense ς             0.3                    1 (0.43 s per off-device DT: all local)
=========================  =====================  ==================================

Regime criteria at the defaults (asserted in ``tests/test_dt_deploy_regime.py``; measured
with ``python tests/test_dt_deploy_regime.py``: 20 users, 6 episodes × 20 steps = 120 steps,
seed 2024, common random numbers; "objective" = α·L_sum + β·ς·m, what the optimum minimises):

==========================================  ===========  =================================
criterion                                   required     measured
==========================================  ===========  =================================
1. optimum's users on local / end / cloud   ≥ 10 % each  62.5 % / 14.0 % / 23.5 %
2. sequential greedy / optimum (objective)  ≥ 1.03       1.193 (seq. greedy: 41.7 % local,
                                                         10.7 % end, 47.7 % cloud)
3. RD / optimum (objective)                 ≥ 2          2.39
4. optimum's per-user mean latency          0.5–5 s      0.617 s (seq. greedy 0.719 s,
                                                         RD 1.494 s)
==========================================  ===========  =================================

The optimum's objective is 9.32 per step. Other keys (``measure(6, seed)``) give seed 1:
64.2 / 13.7 / 22.2 %, 1.192, 2.49, 0.609 s; seed 2: 63.1 / 14.4 / 22.5 %, 1.186, 2.41,
0.612 s. The best constant policy (``agents.heuristics.dt_deploy.best_constant``, 16
episodes, key 2024) is all-local at 13.58 per step (≈ 1.46× the optimum; every user on
one end device 21.4–21.6, on its nearest end device 28.9, on the cloud 22.7).
Simultaneous greedy (round 1's, each user best-responding to the others' *last*
placement) herds: 47 % on the cloud, 1.99× the optimum. The paper's ≈ 2.75 s per user
is not reachable with its own Table 2 workload (all-local averages ≈ 0.96 s at these
CPUs).

Randomness: :meth:`DtDeployEnv.draw_episode` (positions, f_i) and
:meth:`DtDeployEnv.draw_step` (D, μ, fading, priority) are the only random functions,
one ``jax.random.uniform`` call each, so the NumPy reference can be fed the same draws.
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
from jaxsg.env import EnvState, MultiAgentEnv, register
from jaxsg.physics.geometry import slant_range
from jaxsg.physics.link import shannon_rate
from jaxsg.physics.pathloss import fspl_db, uma_pathloss_db
from jaxsg.physics.units import SPEED_OF_LIGHT, db_to_linear, noise_power_watt
from jaxsg.validation import Bound, check_choice, check_int, check_memory

MBIT = 1e6
RATE_SCALE_BPS = 100e6
SAT_DISTANCE_SCALE_M = 2.0e6
#: Smallest Rayleigh power fading a step can draw: −log1p(−2⁻²⁴) ≈ 5.96e−8 (see draw_step).
FADING_MIN = -math.log1p(-(2.0**-24))


@struct.dataclass
class DtDeployParams:
    """Every numeric knob of the scenario, SI units (bits, Hz, W, s, m, rad)."""

    # geometry
    area_m: float = 500.0
    end_device_cell_m: float = 50.0
    # traffic and compute (Table 2)
    data_min_bits: float = 0.5e6 * 8
    data_max_bits: float = 2.0e6 * 8
    cycles_per_bit_min: float = 50.0
    cycles_per_bit_max: float = 150.0
    local_cpu_min_hz: float = 0.5e9
    local_cpu_max_hz: float = 2e9
    end_cpu_hz: float = 3e9
    end_capacity: float = 6.0
    cloud_cpu_hz: float = 100e9
    cloud_capacity: float = math.inf
    # radio
    noise_psd_dbm_per_hz: float = -174.0
    user_power_w: float = 0.2
    d2d_bandwidth_hz: float = 2e6
    d2d_min_distance_m: float = 35.0
    sat_uplink_bandwidth_hz: float = 20e6
    sat_feeder_bandwidth_hz: float = 100e6
    sat_power_w: float = 10.0
    uplink_freq_hz: float = 2e9
    feeder_freq_hz: float = 20e9
    user_antenna_gain_dbi: float = 0.0
    sat_antenna_gain_dbi: float = 40.0
    gateway_antenna_gain_dbi: float = 40.0
    # satellite pass
    altitude_m: float = 600e3
    min_elevation_rad: float = math.radians(10.0)
    peak_elevation_rad: float = math.radians(90.0)
    speed_of_light: float = SPEED_OF_LIGHT
    # reward (eq. 16-18)
    alpha: float = 0.7
    beta: float = 0.3
    unit_cost: float = 0.3


#: ``preset="paper"``: Table 2's computation capacity [0.5, 20] GHz read literally as the
#: per-user CPU range, with the round-1 values of the knobs the paper does not print.
PAPER_OVERRIDES = dict(
    local_cpu_max_hz=20e9,
    end_cpu_hz=20e9,
    end_capacity=4.0,
    d2d_bandwidth_hz=10e6,
    sat_antenna_gain_dbi=30.0,
    unit_cost=1.0,
)

#: Allowed ranges. Every range is closed and finite where the physics needs it (round 3,
#: params fuzzing, ``tests/test_params_fuzz.py``): the open ranges of round 2 (any positive
#: float32) let a legal draw push a link's SNR below float32's smallest normal (1.2e−38,
#: flushed to 0 on CPU: rate 0, infinite delay, −inf reward), e.g. speed_of_light = 1 m/s
#: with a 1 THz carrier (FSPL 414 dB), or overflow the int32 cell grid (area/cell > 46 340).
#: With these ranges the worst case stays finite with margin: worst D2D mean SNR × fading
#: floor ≈ 4e−24 (1e−4 W, 171 dB at √2·10 km, −120 dBm/Hz over 10 GHz), worst uplink
#: gain −285 dB (±20 dBi, 46 000 km at 300 GHz with c = 1e8), worst per-user delay
#: ≈ 1e27 s, largest SNR ≈ 1e27.
_GAIN_DBI = Bound(-20.0, 70.0)  # a badly mismatched antenna .. the largest deep-space dishes
_CPU_HZ = Bound(1e6, 1e13)  # 1 MHz microcontroller .. a 10 THz-equivalent cloud
_BANDWIDTH_HZ = Bound(1e3, 1e10)  # 1 kHz narrowband .. 10 GHz (sub-THz channels)
PARAM_BOUNDS = {
    # ≤ 10 km and cells ≥ 1 m: the grid side floor(area/cell) ≤ 1e4, its cell count ≤ 1e8
    # stays inside int32 (pick_distinct_cells indexes cells in int32)
    "area_m": Bound(1.0, 1e4),
    "end_device_cell_m": Bound(1.0, 1e4),
    "data_min_bits": Bound(1.0, 1e10),  # 1 bit .. 1.25 GB per DT per step
    "data_max_bits": Bound(1.0, 1e10),
    "cycles_per_bit_min": Bound(1e-2, 1e5),
    "cycles_per_bit_max": Bound(1e-2, 1e5),
    "local_cpu_min_hz": _CPU_HZ,
    "local_cpu_max_hz": _CPU_HZ,
    "end_cpu_hz": _CPU_HZ,
    "end_capacity": Bound(0.0, 1e6, integer=True),
    "cloud_capacity": Bound(0.0, math.inf, integer=True, allow_inf=True),  # inf: unlimited
    "cloud_cpu_hz": _CPU_HZ,
    # a cooled receiver (−200) .. 54 dB above thermal noise (−120)
    "noise_psd_dbm_per_hz": Bound(-200.0, -120.0),
    "user_power_w": Bound(1e-4, 1e2),
    "d2d_bandwidth_hz": _BANDWIDTH_HZ,
    "d2d_min_distance_m": Bound(1.0, 1000.0),
    "sat_uplink_bandwidth_hz": _BANDWIDTH_HZ,
    "sat_feeder_bandwidth_hz": _BANDWIDTH_HZ,
    "sat_power_w": Bound(1e-2, 1e4),
    "uplink_freq_hz": Bound(1e8, 3e11),  # VHF .. 300 GHz
    "feeder_freq_hz": Bound(1e8, 3e11),
    "user_antenna_gain_dbi": _GAIN_DBI,
    "sat_antenna_gain_dbi": _GAIN_DBI,
    "gateway_antenna_gain_dbi": _GAIN_DBI,
    "altitude_m": Bound(100e3, 40_000e3),
    # π/2 + 1e-6: the float32 rounding of π/2 (a swept batch is float32) is above π/2
    "min_elevation_rad": Bound(0.0, math.pi / 2 + 1e-6, low_inclusive=False),
    "peak_elevation_rad": Bound(0.0, math.pi / 2 + 1e-6, low_inclusive=False),
    # propagation speed: a third of c (slow media) .. c; a model constant, not a knob
    "speed_of_light": Bound(1e8, 3e8),
    "alpha": Bound(0.0, 1e3),
    "beta": Bound(0.0, 1e3),
    "unit_cost": Bound(0.0, 1e3),
}
PARAM_ORDER = (
    ("data_min_bits", "data_max_bits"),
    ("cycles_per_bit_min", "cycles_per_bit_max"),
    ("local_cpu_min_hz", "local_cpu_max_hz"),
    ("min_elevation_rad", "peak_elevation_rad"),
)

#: State fields holding one step's exogenous draws (see ``DtDeployEnv.draw_step``).
STEP_DRAW_FIELDS = ("data_bits", "cycles_per_bit", "fading", "priority")


@struct.dataclass
class DtDeployState(EnvState):
    """Step-t state: episode geometry, step-t draws, last step's decisions."""

    user_xy: jnp.ndarray  # (I, 2) m
    end_xy: jnp.ndarray  # (E, 2) m
    local_cpu_hz: jnp.ndarray  # (I,) f_i
    data_bits: jnp.ndarray  # (I,) D_i of step t
    cycles_per_bit: jnp.ndarray  # (I,) μ_i of step t
    fading: jnp.ndarray  # (I, E) Rayleigh power fading |h|² of step t
    priority: jnp.ndarray  # (I,) admission priority of step t (smaller = earlier)
    last_action: jnp.ndarray  # (I,) int32, requested node of step t−1 (−1 at reset)
    last_placement: jnp.ndarray  # (I,) int32, admitted node of step t−1 (0 at reset)


def pick_distinct_cells(u: jnp.ndarray, num_cells: jnp.ndarray) -> jnp.ndarray:
    """Cells ``0..num_cells−1`` drawn uniformly without replacement, one per entry of ``u``.

    Device k takes the ``floor(u_k·(G − k))``-th cell among those still free (G may be
    traced); a ``lax.scan`` over devices, each skipping the taken cells in ascending order.
    """
    e = u.shape[0]
    big = jnp.iinfo(jnp.int32).max

    def body(taken, k):
        x = jnp.floor(u[k] * (num_cells - k).astype(jnp.float32)).astype(jnp.int32)
        x = jnp.clip(x, 0, num_cells - k - 1)

        def skip(x, t):
            return x + (x >= t).astype(jnp.int32), None

        x, _ = jax.lax.scan(skip, x, jnp.sort(taken))
        return taken.at[k].set(x), x

    _, cells = jax.lax.scan(body, jnp.full((e,), big, jnp.int32), jnp.arange(e))
    return cells


def admit(action: jnp.ndarray, priority: jnp.ndarray, capacity: jnp.ndarray) -> jnp.ndarray:
    """Random-priority admission (13d): ``(I,)`` admitted placement.

    ``capacity`` is ``(K,)`` per node (node 0, local, is ∞). User i's rank at its node is
    the number of users on the same node with smaller priority (ties by index); users
    with rank ≥ capacity deploy locally (node 0).
    """
    n = action.shape[0]
    idx = jnp.arange(n)
    same = action[:, None] == action[None, :]
    earlier = (priority[None, :] < priority[:, None]) | (
        (priority[None, :] == priority[:, None]) & (idx[None, :] < idx[:, None])
    )
    rank = jnp.sum(same & earlier, axis=1)
    ok = rank.astype(jnp.float32) < capacity[action]
    return jnp.where(ok, action, 0).astype(jnp.int32)


class DtDeployEnv(MultiAgentEnv):
    """Users choose local / end device / cloud for their DT; shared latency-cost reward."""

    agent_classes = ("user",)
    param_bounds = PARAM_BOUNDS
    param_order = PARAM_ORDER

    def __init__(self, num_users: int = 20, num_end_devices: int = 3, horizon: int = 20,
                 preset: str = "default"):
        super().__init__(horizon)
        self.num_users = check_int("num_users", num_users, 1, where="dt_deploy")
        self.num_end_devices = check_int("num_end_devices", num_end_devices, 1, where="dt_deploy")
        self.preset = check_choice("preset", preset, ("default", "paper"), "dt_deploy")
        self.num_nodes = self.num_end_devices + 2
        self.cloud = self.num_end_devices + 1
        check_memory({"num_users": self.num_users, "num_end_devices": self.num_end_devices},
                     self.step_elements(), where="dt_deploy")

    def step_elements(self) -> int:
        """Estimate of the float32 elements one step of one episode holds at its peak.

        Dominated by the random-priority admission (13d): three ``(I, I)`` pairwise
        tensors (same node, earlier priority, their product); plus the ``(I, E+2)``
        delays, one-hots and masks (×8) and the ``(I, 4E+11)`` observation (×2, the
        step's and the auto-reset's).
        """
        i, e = self.num_users, self.num_end_devices
        return 3 * i * i + 8 * i * (e + 2) + 2 * i * (4 * e + 11)

    # ----------------------------------------------------------- params
    @property
    def default_params(self) -> DtDeployParams:
        params = DtDeployParams()
        return params.replace(**PAPER_OVERRIDES) if self.preset == "paper" else params

    def validate_params(self, params: Any) -> Any:
        params = super().validate_params(params)
        where = self.name
        e = self.num_end_devices
        cells = np.floor(np.asarray(params.area_m, np.float64)
                         / np.asarray(params.end_device_cell_m, np.float64)) ** 2
        if np.any(cells < e):
            raise ValueError(
                f"{where}: num_end_devices = {e} exceeds the {int(np.min(cells))} placement "
                f"cells of the area (floor(area_m / end_device_cell_m)² = "
                f"floor({params.area_m} / {params.end_device_cell_m})²); need "
                f"end_device_cell_m <= area_m / ceil(sqrt({e}))"
            )
        for name in ("end_capacity", "cloud_capacity"):
            val = np.asarray(getattr(params, name), np.float64)
            finite = val[np.isfinite(val)]
            if np.any(np.floor(finite) != finite):
                raise ValueError(f"{where}: field '{name}' must be an integer or inf, got {val}")
        total = np.asarray(params.end_capacity) + np.asarray(params.cloud_capacity)
        if np.any(total <= 0):
            raise ValueError(
                f"{where}: fields 'end_capacity' and 'cloud_capacity' are both 0: no node can "
                "host a DT; need end_capacity >= 1 or cloud_capacity >= 1"
            )
        return params

    # ----------------------------------------------------------- spaces
    def num_agents(self, agent_class: str) -> int:
        return {"user": self.num_users}[agent_class]

    @property
    def obs_dim(self) -> int:
        return 4 * self.num_end_devices + 11

    def observation_space(self, agent_class: str, params: Any = None) -> spaces.Space:
        return spaces.Box(-jnp.inf, jnp.inf, (self.num_users, self.obs_dim))

    def action_space(self, agent_class: str, params: Any = None) -> spaces.Space:
        return spaces.Discrete(self.num_nodes, (self.num_users,))

    def capacities(self, params: DtDeployParams) -> jnp.ndarray:
        """``(E+2,)`` DT capacity per node: [∞ (local), N_j (E), cloud]."""
        e = self.num_end_devices
        return jnp.concatenate([
            jnp.full((1,), jnp.inf, jnp.float32),
            jnp.full((e,), params.end_capacity, jnp.float32),
            jnp.full((1,), params.cloud_capacity, jnp.float32),
        ])

    def avail_actions(self, state: DtDeployState, params: DtDeployParams) -> dict:
        """Node j is unavailable to user i when the others' last placement fills it."""
        onehot = jax.nn.one_hot(state.last_placement, self.num_nodes, dtype=jnp.float32)
        others = jnp.sum(onehot, axis=0)[None, :] - onehot  # (I, K)
        mask = others < self.capacities(params)[None, :]
        mask = mask.at[:, 0].set(True)
        return {"user": {"action": mask}}

    # ------------------------------------------------------- randomness
    def draw_episode(self, key: chex.PRNGKey, params: DtDeployParams) -> dict:
        """Positions and local CPUs: one uniform block ``(3I + 3E,)``."""
        i, e = self.num_users, self.num_end_devices
        u = jax.random.uniform(key, (3 * i + 3 * e,), jnp.float32)
        return self.episode_from_uniforms(u, params)

    def episode_from_uniforms(self, u: jnp.ndarray, params: DtDeployParams) -> dict:
        i, e = self.num_users, self.num_end_devices
        user_xy = u[: 2 * i].reshape(i, 2) * params.area_m
        f = params.local_cpu_min_hz + u[2 * i: 3 * i] * (
            params.local_cpu_max_hz - params.local_cpu_min_hz)
        side = jnp.floor(params.area_m / params.end_device_cell_m).astype(jnp.int32)
        cells = pick_distinct_cells(u[3 * i: 3 * i + e], side * side)
        jitter = u[3 * i + e:].reshape(e, 2)
        cell_xy = jnp.stack([cells % side, cells // side], axis=-1).astype(jnp.float32)
        end_xy = (cell_xy + jitter) * params.end_device_cell_m
        return {"user_xy": user_xy, "end_xy": end_xy, "local_cpu_hz": f}

    def draw_step(self, key: chex.PRNGKey, params: DtDeployParams) -> dict:
        """Draws of one step: one uniform block ``(I, 3 + E)`` → D, μ, priority, fading.

        The block is shifted by 2⁻²⁴ onto the midpoints ``(2k + 1)·2⁻²⁴`` (exact in
        float32), so every uniform lies in [2⁻²⁴, 1 − 2⁻²⁴]: the fading ``−log1p(−u)`` is
        never 0 (≥ ``FADING_MIN``) nor ∞ (≤ 24·ln 2).
        """
        i, e = self.num_users, self.num_end_devices
        u = jax.random.uniform(key, (i, 3 + e), jnp.float32) + jnp.float32(2.0**-24)
        scale = lambda x, lo, hi: lo + x * (hi - lo)  # noqa: E731
        return {
            "data_bits": scale(u[:, 0], params.data_min_bits, params.data_max_bits),
            "cycles_per_bit": scale(u[:, 1], params.cycles_per_bit_min,
                                    params.cycles_per_bit_max),
            "priority": u[:, 2],
            "fading": -jnp.log1p(-u[:, 3:]),  # Exp(1): Rayleigh power fading
        }

    # ---------------------------------------------------------- physics
    def elevation(self, step: jnp.ndarray, params: DtDeployParams) -> jnp.ndarray:
        t = jnp.clip(step, 0, self.horizon - 1).astype(jnp.float32)
        phase = jnp.sin(jnp.pi * (t + 0.5) / self.horizon)
        return params.min_elevation_rad + (
            params.peak_elevation_rad - params.min_elevation_rad) * phase

    def distances(self, state: DtDeployState) -> jnp.ndarray:
        """``(I, E)`` user–end-device distances, m."""
        diff = state.user_xy[:, None, :] - state.end_xy[None, :, :]
        return jnp.sqrt(jnp.sum(diff**2, axis=-1))

    def d2d_rates(self, state: DtDeployState, params: DtDeployParams) -> jnp.ndarray:
        """``(I, E)`` r_ij (eq. 2) with UMa path loss and Rayleigh fading."""
        pl_db = uma_pathloss_db(self.distances(state), min_distance_m=params.d2d_min_distance_m)
        gain = db_to_linear(-pl_db) * state.fading
        noise = noise_power_watt(params.noise_psd_dbm_per_hz, params.d2d_bandwidth_hz)
        return shannon_rate(params.d2d_bandwidth_hz, params.user_power_w * gain / noise)

    def d2d_mean_snr_worst(self, params: DtDeployParams) -> jnp.ndarray:
        """Mean D2D SNR (|h|² = 1) at the largest distance of the area, √2·``area_m``."""
        d_max = math.sqrt(2.0) * params.area_m
        pl_db = uma_pathloss_db(d_max, min_distance_m=params.d2d_min_distance_m)
        noise = noise_power_watt(params.noise_psd_dbm_per_hz, params.d2d_bandwidth_hz)
        return params.user_power_w * db_to_linear(-pl_db) / noise

    def d2d_delay_tail_bound(self, delay_s, params: DtDeployParams) -> jnp.ndarray:
        """Upper bound on P(D/r_ij > ``delay_s``) for any user, end device and step.

        D/r_ij > x ⟺ |h|² < (2^{D/(xW)} − 1)/S̄_ij, and for |h|² ~ Exp(1),
        P(|h|² < g) = 1 − e^{−g} ≤ g; with D ≤ D_max and S̄_ij ≥ S̄(√2·area):
        P ≤ (2^{D_max/(xW)} − 1) / S̄(√2·area). The hard maximum (|h|² ≥ ``FADING_MIN``)
        is :meth:`d2d_delay_max`.
        """
        x = jnp.asarray(delay_s, jnp.float32)
        g = jnp.exp2(params.data_max_bits / (x * params.d2d_bandwidth_hz)) - 1.0
        return jnp.minimum(g / self.d2d_mean_snr_worst(params), 1.0)

    def d2d_delay_max(self, params: DtDeployParams) -> jnp.ndarray:
        """Hard maximum of the D2D transfer delay D/r_ij (fading at ``FADING_MIN``), s."""
        snr = self.d2d_mean_snr_worst(params) * FADING_MIN
        return params.data_max_bits / (params.d2d_bandwidth_hz * jnp.log2(1.0 + snr))

    def sat_links(self, step: jnp.ndarray, params: DtDeployParams) -> dict:
        """Slant range, uplink gain and feeder rate at step ``step`` (eq. 6-8)."""
        el = self.elevation(step, params)
        d = slant_range(el, params.altitude_m)
        up_db = (params.user_antenna_gain_dbi + params.sat_antenna_gain_dbi
                 - fspl_db(d, params.uplink_freq_hz, speed_of_light=params.speed_of_light))
        feed_db = (params.sat_antenna_gain_dbi + params.gateway_antenna_gain_dbi
                   - fspl_db(d, params.feeder_freq_hz, speed_of_light=params.speed_of_light))
        feed_noise = noise_power_watt(params.noise_psd_dbm_per_hz, params.sat_feeder_bandwidth_hz)
        r_sc = shannon_rate(params.sat_feeder_bandwidth_hz,
                            params.sat_power_w * db_to_linear(feed_db) / feed_noise)
        return {"elevation_rad": el, "distance_m": d, "uplink_gain": db_to_linear(up_db),
                "feeder_rate_bps": r_sc}

    def uplink_rate(self, sat: dict, sharers: jnp.ndarray, params: DtDeployParams):
        """r_is (eq. 6) with the uplink band W_s split among ``sharers`` (≥ 1) users."""
        bw = params.sat_uplink_bandwidth_hz / jnp.maximum(sharers, 1.0)
        noise = noise_power_watt(params.noise_psd_dbm_per_hz, bw)
        return shannon_rate(bw, params.user_power_w * sat["uplink_gain"] / noise)

    def node_delays(self, state: DtDeployState, counts: jnp.ndarray,
                    params: DtDeployParams) -> jnp.ndarray:
        """``(I, E+2)`` delay of every user at every node for node counts ``counts``.

        Column j is the delay user i would have at node j with n_j = ``counts[..., j]`` DTs
        there (floored at 1); ``counts`` is ``(E+2,)`` (common) or ``(I, E+2)`` (per user,
        e.g. the others' load plus one). Eq. (1), (5) and (10).
        """
        d, mu = state.data_bits, state.cycles_per_bit
        cycles = mu * d
        local = cycles / state.local_cpu_hz  # eq. (1)
        n_end = jnp.maximum(counts[..., 1:-1], 1.0)
        end = d[:, None] / self.d2d_rates(state, params) + cycles[:, None] / (
            params.end_cpu_hz / n_end)  # eq. (5)
        sat = self.sat_links(state.step, params)
        r_is = self.uplink_rate(sat, counts[..., -1], params)
        cloud = (d / r_is + d / sat["feeder_rate_bps"]
                 + 2.0 * sat["distance_m"] / params.speed_of_light
                 + cycles / params.cloud_cpu_hz)  # eq. (6)-(10), d_sc = d_is
        return jnp.concatenate([local[:, None], end, cloud[:, None]], axis=1)

    def outcome(self, state: DtDeployState, action: jnp.ndarray, params: DtDeployParams) -> dict:
        """Admission, delays, cost and reward of step t given the requested nodes."""
        k = self.num_nodes
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, k - 1)
        placement = admit(action, state.priority, self.capacities(params))
        onehot = jax.nn.one_hot(placement, k, dtype=jnp.float32)
        counts = jnp.sum(onehot, axis=0)
        delays = self.node_delays(state, counts, params)
        latency = jnp.sum(delays * onehot, axis=1)
        latency_sum = jnp.sum(latency)  # eq. (12)
        m = jnp.sum(placement > 0).astype(jnp.float32)
        cost = params.unit_cost * m  # eq. (17)
        reward = params.alpha * (-latency_sum) - params.beta * cost  # eq. (18)
        return {
            "action": action,
            "placement": placement,
            "counts": counts,
            "latency_s": latency,
            "latency_sum_s": latency_sum,
            "deployed": m,
            "cost": cost,
            "reward": reward,
            "overflow": jnp.sum(placement != action).astype(jnp.float32),
        }

    # ---------------------------------------------------------- env API
    def reset_env(self, key: chex.PRNGKey, params: DtDeployParams):
        k_ep, k_step = jax.random.split(key)
        state = self.initial_state(self.draw_episode(k_ep, params),
                                   self.draw_step(k_step, params))
        return self.observe(state, params), state

    def initial_state(self, episode: dict, draws: dict) -> DtDeployState:
        i = self.num_users
        return DtDeployState(
            step=jnp.zeros((), jnp.int32),
            last_action=jnp.full((i,), -1, jnp.int32),
            last_placement=jnp.zeros((i,), jnp.int32),
            **episode,
            **draws,
        )

    def step_env(self, key: chex.PRNGKey, state: DtDeployState, action: dict,
                 params: DtDeployParams):
        out = self.outcome(state, action["user"], params)
        draws = self.draw_step(key, params)
        next_state = state.replace(last_action=out["action"], last_placement=out["placement"],
                                   **draws)
        obs = self.observe(next_state, params, step=state.step + 1)
        reward = {"user": jnp.full((self.num_users,), out["reward"], jnp.float32)}
        info = self.metrics(out)
        info["final_avail_actions"] = self.avail_actions(next_state, params)
        return obs, next_state, reward, jnp.zeros((), bool), info

    def observe(self, state: DtDeployState, params: DtDeployParams, step=None) -> dict:
        step = state.step if step is None else step
        i, e, k = self.num_users, self.num_end_devices, self.num_nodes
        loads = jnp.sum(jax.nn.one_hot(state.last_placement, k, dtype=jnp.float32), axis=0)
        sat = self.sat_links(step, params)
        r_is = self.uplink_rate(sat, loads[-1], params)
        col = lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (i,))[:, None]  # noqa: E731
        obs = jnp.concatenate([
            col(state.data_bits / params.data_max_bits),
            col(state.cycles_per_bit / params.cycles_per_bit_max),
            col(state.local_cpu_hz / params.local_cpu_max_hz),
            self.distances(state) / params.area_m,
            self.d2d_rates(state, params) / RATE_SCALE_BPS,
            col(sat["distance_m"] / SAT_DISTANCE_SCALE_M),
            col(r_is / RATE_SCALE_BPS),
            col(sat["elevation_rad"] / (jnp.pi / 2)),
            jnp.broadcast_to(loads / i, (i, k)),
            jax.nn.one_hot(state.last_action, k, dtype=jnp.float32),
            col(step.astype(jnp.float32) / self.horizon),
        ], axis=1)
        del e
        return {"user": obs.astype(jnp.float32)}

    def global_state(self, state: DtDeployState, params: DtDeployParams) -> jnp.ndarray:
        """Global state for centralised mixers: all observations flattened plus loads."""
        obs = self.observe(state, params)["user"]
        loads = jnp.sum(jax.nn.one_hot(state.last_placement, self.num_nodes), axis=0)
        return jnp.concatenate([obs.reshape(-1), loads / self.num_users]).astype(jnp.float32)

    def metrics(self, out: dict) -> dict:
        """Scalar per-step metrics (units in the names)."""
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        c = out["counts"]
        return {
            "latency_sum_s": f(out["latency_sum_s"]),
            "latency_mean_s": f(out["latency_sum_s"] / self.num_users),
            "count_local": f(c[0]),
            "count_end": f(jnp.sum(c[1:-1])),
            "count_cloud": f(c[-1]),
            "capacity_overflow": f(out["overflow"]),
            "deployment_cost": f(out["cost"]),
            "team_reward": f(out["reward"]),
        }


register("dt_deploy", DtDeployEnv)
