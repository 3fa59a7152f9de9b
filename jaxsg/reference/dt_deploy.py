"""Plain-NumPy reference of the ``dt_deploy`` scenario (one episode at a time).

Source: Tao et al., "Adaptive Multi-Layer Deployment for a Digital Twin Empowered
Satellite-Terrestrial Integrated Network", arXiv 2409.05480, eq. (1)-(18); spec
``docs/dt_deploy.md``. Equation numbers in the comments are the paper's.

The test oracle of ``jaxsg.scenarios.dt_deploy``, written independently of the JAX
code (``numpy`` and ``math`` only; no ``jaxsg`` import), with explicit loops over
users i and nodes j so each line reads against the paper, in float64. It implements
the same model and decisions as the JAX scenario (its docstring has the decisions
table):

* admission (13d): users choosing node j are admitted in increasing ``priority``
  (ties by index) up to the capacity N_j; the overflow deploys locally;
* local (eq. 1) L = μD/f_i; end device j (eq. 2-5) L = D/r_ij + μD/(F/n_j) with
  r_ij = W log2(1 + P·G_ij/(W·N0)), G_ij = 10^(−(128.1 + 37.6 log10 d_km)/10)·|h|²
  (d clamped at ``d2d_min_distance_m``, 35 m, where the UMa form starts to hold);
  |h|² = −log1p(−u) with u on the midpoints of a 2⁻²³ grid, never 0; cloud (eq. 6-10)
  L = D/r_is + D/r_sc + 2·d_is/c + μD/f_c with the uplink band shared by the n_c cloud
  users;
* satellite elevation el(t) = el_min + (el_peak − el_min)·sin(π(t+½)/T) (t clipped to
  [0, T−1]), slant range d = sqrt(R² sin² el + h² + 2hR) − R sin el, FSPL 20 log10(4πdf/c)
  (d floored at 1 m);
* reward R = α·(−L_sum) − β·ς·m (eq. 16-18), m = DTs off-device.

API::

    ref = DtDeployReference.from_env(env, params)      # or DtDeployReference(I, E, T, params)
    obs, state = ref.reset(rng)                        # rng: np.random.Generator
    obs, state, reward, info = ref.transition(state, action, next_draws)
    obs, state, reward, terminated, truncated, info = ref.step(action, rng)

``state`` is a dict with the fields of the JAX ``DtDeployState``; ``info`` has the
metric names of ``DtDeployEnv.metrics`` plus ``"final_avail_actions"``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["DtDeployReference", "pick_distinct_cells", "state_from"]

EARTH_RADIUS = 6_371_000.0
RATE_SCALE_BPS = 100e6
SAT_DISTANCE_SCALE_M = 2.0e6

STATE_FIELDS = ("step", "user_xy", "end_xy", "local_cpu_hz", "data_bits", "cycles_per_bit",
                "fading", "priority", "last_action", "last_placement")
STEP_DRAW_FIELDS = ("data_bits", "cycles_per_bit", "fading", "priority")
PARAM_FIELDS = (
    "area_m", "end_device_cell_m", "data_min_bits", "data_max_bits", "cycles_per_bit_min",
    "cycles_per_bit_max", "local_cpu_min_hz", "local_cpu_max_hz", "end_cpu_hz",
    "end_capacity", "cloud_cpu_hz", "cloud_capacity", "noise_psd_dbm_per_hz", "user_power_w",
    "d2d_bandwidth_hz", "d2d_min_distance_m", "sat_uplink_bandwidth_hz",
    "sat_feeder_bandwidth_hz", "sat_power_w",
    "uplink_freq_hz", "feeder_freq_hz", "user_antenna_gain_dbi", "sat_antenna_gain_dbi",
    "gateway_antenna_gain_dbi", "altitude_m", "min_elevation_rad", "peak_elevation_rad",
    "speed_of_light", "alpha", "beta", "unit_cost",
)


class _P:
    """Params as plain floats."""

    def __init__(self, params):
        for name in PARAM_FIELDS:
            setattr(self, name, float(np.asarray(getattr(params, name))))


def state_from(jax_state) -> dict:
    """A JAX ``DtDeployState`` as a dict of NumPy arrays."""
    return {k: np.asarray(getattr(jax_state, k)) for k in STATE_FIELDS}


def pick_distinct_cells(u, num_cells: int) -> np.ndarray:
    """Device k takes the floor(u_k (G − k))-th still-free cell (uniform without replacement)."""
    taken = []
    cells = []
    for k, uk in enumerate(np.asarray(u, np.float64)):
        x = int(math.floor(float(np.float32(uk)) * (num_cells - k)))
        x = min(max(x, 0), num_cells - k - 1)
        for t in sorted(taken):
            if x >= t:
                x += 1
        taken.append(x)
        cells.append(x)
    return np.asarray(cells, np.int64)


def shannon(bw, snr):
    return bw * math.log2(1.0 + snr)


class DtDeployReference:
    def __init__(self, num_users: int, num_end_devices: int, horizon: int, params):
        self.I = int(num_users)
        self.E = int(num_end_devices)
        self.T = int(horizon)
        self.K = self.E + 2
        self.p = _P(params)
        self.state = None

    @classmethod
    def from_env(cls, env, params) -> "DtDeployReference":
        return cls(env.num_users, env.num_end_devices, env.horizon, params)

    # ------------------------------------------------------------ randomness
    def episode_from_uniforms(self, u) -> dict:
        p, i_n, e_n = self.p, self.I, self.E
        u = np.asarray(u, np.float64)
        user_xy = u[: 2 * i_n].reshape(i_n, 2) * p.area_m
        f = p.local_cpu_min_hz + u[2 * i_n: 3 * i_n] * (p.local_cpu_max_hz - p.local_cpu_min_hz)
        side = int(math.floor(p.area_m / p.end_device_cell_m))
        cells = pick_distinct_cells(u[3 * i_n: 3 * i_n + e_n], side * side)
        jitter = u[3 * i_n + e_n:].reshape(e_n, 2)
        end_xy = np.zeros((e_n, 2))
        for e in range(e_n):
            end_xy[e, 0] = (cells[e] % side + jitter[e, 0]) * p.end_device_cell_m
            end_xy[e, 1] = (cells[e] // side + jitter[e, 1]) * p.end_device_cell_m
        return {"user_xy": user_xy, "end_xy": end_xy, "local_cpu_hz": f}

    def draw_step(self, rng) -> dict:
        p = self.p
        # float32-like grid k·2⁻²³ shifted to the midpoints: u ∈ [2⁻²⁴, 1 − 2⁻²⁴], so the
        # Rayleigh fading −log1p(−u) is never 0 (as in the JAX env)
        u = (np.floor(rng.uniform(size=(self.I, 3 + self.E)) * 2**23) + 0.5) / 2**23
        return {
            "data_bits": p.data_min_bits + u[:, 0] * (p.data_max_bits - p.data_min_bits),
            "cycles_per_bit": p.cycles_per_bit_min + u[:, 1] * (
                p.cycles_per_bit_max - p.cycles_per_bit_min),
            "priority": u[:, 2],
            "fading": -np.log1p(-u[:, 3:]),
        }

    def reset(self, rng):
        episode = self.episode_from_uniforms(rng.uniform(size=3 * self.I + 3 * self.E))
        state = {"step": 0, "last_action": np.full(self.I, -1), "last_placement":
                 np.zeros(self.I, np.int64), **episode, **self.draw_step(rng)}
        self.state = state
        return self.observe(state), state

    # --------------------------------------------------------------- physics
    def capacity(self, j: int) -> float:
        if j == 0:
            return math.inf
        return self.p.cloud_capacity if j == self.K - 1 else self.p.end_capacity

    def elevation(self, t: int) -> float:
        p = self.p
        t = min(max(t, 0), self.T - 1)
        return p.min_elevation_rad + (p.peak_elevation_rad - p.min_elevation_rad) * math.sin(
            math.pi * (t + 0.5) / self.T)

    def slant_range(self, el: float) -> float:
        r, h = EARTH_RADIUS, self.p.altitude_m
        return math.sqrt((r * math.sin(el)) ** 2 + h * h + 2 * h * r) - r * math.sin(el)

    def fspl_db(self, d: float, f: float) -> float:
        return 20 * math.log10(4 * math.pi * max(d, 1.0) * f / self.p.speed_of_light)

    def noise_w(self, bw: float) -> float:
        return 10 ** ((self.p.noise_psd_dbm_per_hz - 30) / 10) * bw

    def distance(self, state, i: int, e: int) -> float:
        dx = state["user_xy"][i, 0] - state["end_xy"][e, 0]
        dy = state["user_xy"][i, 1] - state["end_xy"][e, 1]
        return math.hypot(dx, dy)

    def d2d_rate(self, state, i: int, e: int) -> float:
        p = self.p
        # 3GPP UMa, valid beyond its minimum distance (35 m): the distance is clamped there
        d = max(self.distance(state, i, e), p.d2d_min_distance_m)
        pl_db = 128.1 + 37.6 * math.log10(d / 1000.0)
        gain = 10 ** (-pl_db / 10) * state["fading"][i, e]
        return shannon(p.d2d_bandwidth_hz, p.user_power_w * gain / self.noise_w(
            p.d2d_bandwidth_hz))  # eq. (2)

    def sat(self, t: int) -> dict:
        p = self.p
        el = self.elevation(t)
        d = self.slant_range(el)
        up_db = p.user_antenna_gain_dbi + p.sat_antenna_gain_dbi - self.fspl_db(
            d, p.uplink_freq_hz)
        feed_db = p.sat_antenna_gain_dbi + p.gateway_antenna_gain_dbi - self.fspl_db(
            d, p.feeder_freq_hz)
        r_sc = shannon(p.sat_feeder_bandwidth_hz, p.sat_power_w * 10 ** (feed_db / 10)
                       / self.noise_w(p.sat_feeder_bandwidth_hz))  # eq. (7)
        return {"el": el, "d": d, "up_gain": 10 ** (up_db / 10), "r_sc": r_sc}

    def uplink_rate(self, sat: dict, sharers: float) -> float:
        p = self.p
        bw = p.sat_uplink_bandwidth_hz / max(sharers, 1.0)
        return shannon(bw, p.user_power_w * sat["up_gain"] / self.noise_w(bw))  # eq. (6)

    def delay(self, state, i: int, j: int, counts) -> float:
        """Delay of user i at node j with counts[j] DTs there (eq. 1, 5, 10)."""
        p = self.p
        d, mu = state["data_bits"][i], state["cycles_per_bit"][i]
        if j == 0:
            return mu * d / state["local_cpu_hz"][i]  # eq. (1)
        if j < self.K - 1:
            f_ij = p.end_cpu_hz / max(counts[j], 1)  # 13e, even split
            return d / self.d2d_rate(state, i, j - 1) + mu * d / f_ij  # eq. (3)-(5)
        sat = self.sat(int(state["step"]))
        r_is = self.uplink_rate(sat, counts[j])
        return (d / r_is + d / sat["r_sc"] + 2 * sat["d"] / p.speed_of_light
                + mu * d / p.cloud_cpu_hz)  # eq. (8)-(10)

    # ------------------------------------------------------------- dynamics
    def admit(self, action, priority) -> np.ndarray:
        placement = np.zeros(self.I, np.int64)
        for j in range(self.K):
            users = [i for i in range(self.I) if action[i] == j]
            users.sort(key=lambda i: (priority[i], i))
            for rank, i in enumerate(users):
                placement[i] = j if rank < self.capacity(j) else 0
        return placement

    def outcome(self, state, action) -> dict:
        p = self.p
        action = np.clip(np.asarray(action, np.int64), 0, self.K - 1)
        placement = self.admit(action, state["priority"])
        counts = np.array([np.sum(placement == j) for j in range(self.K)], np.float64)
        latency = np.array([self.delay(state, i, placement[i], counts) for i in range(self.I)])
        l_sum = float(latency.sum())  # eq. (12)
        m = float(np.sum(placement > 0))
        cost = p.unit_cost * m  # eq. (17)
        reward = p.alpha * (-l_sum) - p.beta * cost  # eq. (18)
        return {"action": action, "placement": placement, "counts": counts, "latency": latency,
                "latency_sum_s": l_sum, "cost": cost, "reward": reward,
                "overflow": float(np.sum(placement != action))}

    def avail_actions(self, state) -> np.ndarray:
        mask = np.ones((self.I, self.K), bool)
        for i in range(self.I):
            for j in range(1, self.K):
                others = sum(1 for k in range(self.I) if k != i and state["last_placement"][k] == j)
                mask[i, j] = others < self.capacity(j)
        return mask

    def observe(self, state, t=None) -> dict:
        p = self.p
        t = int(state["step"]) if t is None else int(t)
        loads = np.array([np.sum(state["last_placement"] == j) for j in range(self.K)], float)
        sat = self.sat(t)
        r_is = self.uplink_rate(sat, loads[-1])
        obs = np.zeros((self.I, 4 * self.E + 11))
        for i in range(self.I):
            row = [state["data_bits"][i] / p.data_max_bits,
                   state["cycles_per_bit"][i] / p.cycles_per_bit_max,
                   state["local_cpu_hz"][i] / p.local_cpu_max_hz]
            row += [self.distance(state, i, e) / p.area_m for e in range(self.E)]
            row += [self.d2d_rate(state, i, e) / RATE_SCALE_BPS for e in range(self.E)]
            row += [sat["d"] / SAT_DISTANCE_SCALE_M, r_is / RATE_SCALE_BPS,
                    sat["el"] / (math.pi / 2)]
            row += list(loads / self.I)
            row += [1.0 if state["last_action"][i] == j else 0.0 for j in range(self.K)]
            row += [t / self.T]
            obs[i] = row
        return {"user": obs}

    def metrics(self, out) -> dict:
        c = out["counts"]
        return {
            "latency_sum_s": out["latency_sum_s"],
            "latency_mean_s": out["latency_sum_s"] / self.I,
            "count_local": c[0],
            "count_end": float(np.sum(c[1:-1])),
            "count_cloud": c[-1],
            "capacity_overflow": out["overflow"],
            "deployment_cost": out["cost"],
            "team_reward": out["reward"],
        }

    def transition(self, state, action, next_draws):
        """Step t → t+1 with the given next-step draws (no auto-reset)."""
        out = self.outcome(state, action["user"])
        new = dict(state)
        new.update({k: np.asarray(next_draws[k], np.float64) for k in STEP_DRAW_FIELDS})
        new["last_action"] = out["action"]
        new["last_placement"] = out["placement"]
        new["step"] = int(state["step"]) + 1
        obs = self.observe(new, new["step"])
        reward = {"user": np.full(self.I, out["reward"])}
        info = self.metrics(out)
        info["final_avail_actions"] = {"user": {"action": self.avail_actions(new)}}
        return obs, new, reward, info

    def step(self, action, rng):
        obs, state, reward, info = self.transition(self.state, action, self.draw_step(rng))
        truncated = state["step"] >= self.T
        info["final_observation"] = obs
        if truncated:
            obs, state = self.reset(rng)
        self.state = state
        return obs, state, reward, False, truncated, info
