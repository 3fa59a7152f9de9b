"""Plain-NumPy reference of the ``spectrum`` scenario (one episode at a time).

Source: Shen, Lam, Li, Wang, arXiv 2407.00814 v2, Sec. III-IV; spec
``docs/spectrum.md``. This is the test oracle of
``jaxsg.scenarios.spectrum`` and its speed baseline. It is written
independently of the JAX code (``numpy``, ``math`` and ``scipy.special`` only;
no ``jaxsg`` import), float64, with explicit loops over satellites s and users
k so each line reads against the paper. It implements the same model and the
same reconstructions (R) as the JAX scenario (see that module's docstring):

* pass geometry: the satellite seen from its footprint centre at elevation ε (per
  episode), behind it along-track at slant range d₀ = √((R+h)² − R²cos²ε) − R sin ε,
  velocity ⊥ to its radius vector; users and beam centres on the sphere; 3-D distances;
* eq. (1) deviation angle by the law of cosines, θ = arccos((a² + b² − c²)/2ab);
* beam gain G_s(θ) = G_max·[J1(u)/(2u) + 36·J3(u)/u³]², u = 2.07123 sin θ / sin θ_3dB,
  θ_3dB = atan(r_beam / h);
* eq. (3) P_r = P·G_u·G_s·(λ/4πd)²·|h|²; an honest user's P_req inverts its own link
  to the target received power;
* eq. (2) ρ = exp(−ξ·v·|cos φ|/c) on the desired signal (or the ICI model);
* eq. (4) interference at beam c: χ·Σ over active users of the other cells of
  a·ι·P·G_u·G_s(θ_{j,c})·(λ/4πd_j)²·|h_j|²;
* eq. (5) SINR, eq. (6) budget κ·ν^w·log2(1 + SINR) (ν the visibility), leasing rule with capacity
  (highest budgets first, ties to the lower index), eq. (8)-(9), reputation
  eq. (20)-(22) R ± β·n; U_s = U'_s + B_s (eq. 9), B_s the block income credited to the
  ledger since the last step;
* the myopic optimum (best single posted price) at every power-control level, and its
  maximum over the levels (the bound of every gap).

API::

    ref = SpectrumReference.from_env(env, params)
    obs, state = ref.reset(users, draws, ledger=None)  # dicts of arrays (e.g. from JAX);
                                                       # ledger: reputation, block income
    obs, state, reward, info = ref.transition(state, action, next_draws)

``state`` is a dict with the fields of the JAX ``SpectrumState`` (the derived
``link_gain``/``cos_phi``/``power_req_w`` are recomputed here from the positions and
the elevation); ``info``
has the metric names of ``SpectrumEnv.metrics``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import jv

__all__ = ["SpectrumReference", "hex_cells_reference"]

BESSEL_U_3DB = 2.07123
SINR_DB_SCALE = 30.0
SINR_FLOOR = 1e-12
USER_FIELDS = ("user_xy", "cell", "user_gain", "activity", "malicious", "elevation_rad")
LEDGER_FIELDS = ("reputation", "block_income", "block_income_counted")
EARTH_RADIUS = 6_371_000.0
DRAW_FIELDS = ("visible", "fading", "online")


def hex_cells_reference(num_cells):
    """Hex beam centres (unit spacing), ring by ring, and 4-colour ids (q mod 2 + 2·(r mod 2))."""
    rings = 0
    while 1 + 3 * rings * (rings + 1) < num_cells:
        rings += 1
    cells = []
    for q in range(-rings, rings + 1):
        for r in range(-rings, rings + 1):
            if abs(q + r) <= rings:
                x, y = q + 0.5 * r, r * math.sqrt(3) / 2
                ang = round(math.atan2(y, x) % (2 * math.pi), 9)
                cells.append((round(math.hypot(x, y), 9), ang, x, y, q, r))
    cells.sort(key=lambda c: (c[0], c[1]))
    cells = cells[:num_cells]
    xy = np.array([(c[2], c[3]) for c in cells])
    colour = np.array([(c[4] % 2) + 2 * (c[5] % 2) for c in cells])
    return xy, colour


def beam_gain(theta, g_max, theta_3db):
    u = BESSEL_U_3DB * math.sin(theta) / math.sin(theta_3db)
    if abs(u) < 1e-9:
        return g_max
    amp = jv(1, u) / (2 * u) + 36 * jv(3, u) / u**3
    return g_max * amp * amp


class SpectrumReference:
    def __init__(self, num_satellites, num_cells, users_per_satellite, num_channels,
                 slots_per_channel, num_price_levels, num_power_levels, price_only,
                 doppler_model, reward, initial_price_level, initial_power_level, params):
        self.S, self.C, self.U = num_satellites, num_cells, users_per_satellite
        self.cap = num_channels * slots_per_channel
        self.L, self.LP = num_price_levels, num_power_levels
        self.price_only = price_only
        self.doppler_model = doppler_model
        self.reward = reward
        self.init_price_level, self.init_power_level = initial_price_level, initial_power_level
        self.p = params
        self.cell_xy, self.colour = hex_cells_reference(num_cells)
        self.cell_xy = self.cell_xy * math.sqrt(3) * params.beam_radius_m

    @classmethod
    def from_env(cls, env, params):
        class P:
            pass

        p = P()
        for name in params.__dataclass_fields__:
            setattr(p, name, float(getattr(params, name)))
        return cls(env.num_satellites, env.num_cells, env.users_per_satellite, env.num_channels,
                   env.slots_per_channel, env.num_price_levels, env.num_power_levels,
                   env.price_only, env.doppler_model, env.reward_mode, env.initial_price_level,
                   env.initial_power_level, p)

    # ---------------------------------------------------------- grids
    def price(self, level):
        p = self.p
        return p.price_min + (p.price_max - p.price_min) * level / (self.L - 1)

    def power_ctrl(self, level):
        p = self.p
        if self.LP == 1:
            return p.power_ctrl_max_w
        span = p.power_ctrl_max_w - p.power_ctrl_min_w
        return p.power_ctrl_min_w + span * level / (self.LP - 1)

    def noise_w(self):
        dbm = self.p.noise_psd_dbm_per_mhz + 10 * math.log10(self.p.channel_bandwidth_hz / 1e6)
        return 10 ** ((dbm - 30) / 10)

    # ------------------------------------------------------- geometry
    @staticmethod
    def on_sphere(x, y):
        """A ground point (x, y) of the footprint-centre frame on the sphere (z up)."""
        R = EARTH_RADIUS
        return np.array([x, y, math.sqrt(R * R - x * x - y * y) - R])

    def satellite(self, elevation):
        """Satellite position and velocity direction seen from the footprint centre."""
        R, h = EARTH_RADIUS, self.p.altitude_m
        d0 = math.sqrt((R + h) ** 2 - (R * math.cos(elevation)) ** 2) - R * math.sin(elevation)
        pos = np.array([-d0 * math.cos(elevation), 0.0, d0 * math.sin(elevation)])
        radius = pos - np.array([0.0, 0.0, -R])  # from Earth's centre, |radius| = R + h
        vel = np.array([radius[2], 0.0, -radius[0]]) / np.linalg.norm(radius)  # ⊥, towards +x
        return pos, vel

    def geometry(self, user_xy, user_gain, elevation):
        """link_gain[s, k, c] = G_u·G_s(θ_{k,c})·(λ/4πd_k)², cos φ[s, k] (pass geometry)."""
        p = self.p
        theta_3db = math.atan(p.beam_radius_m / p.altitude_m)
        g_max = 10 ** (p.sat_gain_dbi / 10)
        lam = p.speed_of_light / p.carrier_hz
        link = np.zeros((self.S, self.U, self.C))
        cos_phi = np.zeros((self.S, self.U))
        centres = [self.on_sphere(*self.cell_xy[c]) for c in range(self.C)]
        for s in range(self.S):
            sat, vel = self.satellite(elevation[s])
            for k in range(self.U):
                user = self.on_sphere(*user_xy[s, k])
                d_user = np.linalg.norm(user - sat)
                cos_phi[s, k] = np.dot(vel, user - sat) / d_user
                for c in range(self.C):
                    d_centre = np.linalg.norm(centres[c] - sat)
                    d_cu = np.linalg.norm(user - centres[c])
                    cos_t = (d_centre**2 + d_user**2 - d_cu**2) / (2 * d_centre * d_user)
                    theta = math.acos(min(1.0, max(-1.0, cos_t)))  # eq. (1)
                    link[s, k, c] = user_gain[s, k] * beam_gain(theta, g_max, theta_3db) * (
                        lam / (4 * math.pi * d_user)) ** 2
        return link, cos_phi

    # ---------------------------------------------------------- state
    def reset(self, users, draws, ledger=None):
        """A new episode; ``ledger`` (dict of LEDGER_FIELDS) continues a chain, None starts
        a fresh one (all zeros)."""
        state = {k: np.asarray(users[k], np.float64) for k in USER_FIELDS}
        state["cell"] = np.asarray(users["cell"]).astype(int)
        state["malicious"] = np.asarray(users["malicious"]).astype(bool)
        state["link_gain"], state["cos_phi"] = self.geometry(
            state["user_xy"], state["user_gain"], state["elevation_rad"])
        # channel inversion: the power that reaches the target over the user's own beam
        own = np.zeros((self.S, self.U))
        for s in range(self.S):
            for k in range(self.U):
                own[s, k] = state["link_gain"][s, k, state["cell"][s, k]]
        state["power_req_w"] = self.p.target_rx_power_w / own
        state.update(self._draws(draws))
        state["step"] = 0
        state["price_level"] = np.full(self.S, self.init_price_level)
        state["power_level"] = np.full(self.S, self.init_power_level)
        for name in LEDGER_FIELDS + ("last_revenue", "last_leases", "last_sinr_db",
                                     "last_mean_budget"):
            state[name] = np.zeros(self.S)
        if ledger is not None:
            for name in LEDGER_FIELDS:
                state[name] = np.asarray(ledger[name], np.float64).copy()
        return self.observe(state), state

    @staticmethod
    def _draws(draws):
        return {"visible": np.asarray(draws["visible"]).astype(bool),
                "fading": np.asarray(draws["fading"], np.float64),
                "online": np.asarray(draws["online"]).astype(bool)}

    def observe(self, state):
        p = self.p
        obs = np.zeros((self.S, 5))
        p_ctrl_max = self.power_ctrl(self.LP - 1)
        for s in range(self.S):
            obs[s] = [
                self.price(state["price_level"][s]) / p.price_max,
                self.power_ctrl(state["power_level"][s]) / p_ctrl_max,
                state["last_revenue"][s] / (p.price_max * self.cap),
                state["last_leases"][s] / self.cap,
                state["last_sinr_db"][s] / SINR_DB_SCALE,
            ]
        return {"satellite": obs}

    # -------------------------------------------------------- physics
    def interference(self, state, s, tx, active):
        """Eq. (4) at every user's own beam, satellite s."""
        p = self.p
        iso = 10 ** (-p.polarization_isolation_db / 10)
        cell = state["cell"][s]
        per_cell = np.zeros(self.C)
        for c in range(self.C):
            for j in range(self.U):
                if active[j] and cell[j] != c:
                    pol = 1.0 if self.colour[c] == self.colour[cell[j]] else iso
                    per_cell[c] += (state["activity"][s, j] * pol * tx[j]
                                    * state["link_gain"][s, j, c] * state["fading"][s, j])
        return p.cochannel_factor * per_cell[cell]

    def sinr(self, state, s, signal, interference):
        p = self.p
        noise = self.noise_w()
        cos_phi = np.abs(state["cos_phi"][s])
        if self.doppler_model == "rho":
            rho = np.exp(-p.doppler_xi * p.velocity_mps * cos_phi / p.speed_of_light)  # eq. (2)
            return rho * signal / (interference + noise)
        eps = p.cfo_residual * p.carrier_hz * p.velocity_mps * cos_phi / p.speed_of_light \
            / p.subcarrier_spacing_hz
        g = signal / (interference + noise)
        sc = np.sinc(eps) ** 2
        return g * sc / (1 + g * (1 - sc))

    def ante(self, state, s, p_ctrl):
        """Transmit powers, eligibility, signal, ex-ante SINR and budgets at P_ctrl."""
        p = self.p
        boost = 10 ** (p.malicious_boost_db / 10)
        mal = state["malicious"][s]
        tx = np.where(mal, boost * p_ctrl, state["power_req_w"][s])
        eligible = state["visible"][s] & (state["power_req_w"][s] <= p_ctrl)
        own = state["link_gain"][s, np.arange(self.U), state["cell"][s]]
        signal = tx * own * state["fading"][s]  # eq. (3)
        sinr_ante = self.sinr(state, s, signal, self.interference(state, s, tx, eligible))
        nu = p.visibility ** p.visibility_prices_budget  # connected share of the lease
        budget = p.revenue_coefficient * nu * np.log2(1 + sinr_ante)  # eq. (6)
        return tx, eligible, signal, sinr_ante, budget

    def myopic(self, budget, eligible):
        """Best single posted price among the eligible budgets: (price, revenue)."""
        b_sorted = np.sort(budget[eligible])[::-1]
        best, best_price = 0.0, 0.0
        for i, b in enumerate(b_sorted):
            if b * min(i + 1, self.cap) > best:
                best, best_price = b * min(i + 1, self.cap), b
        return best_price, best

    def satellite_outcome(self, state, s, price, p_ctrl, power_level):
        p = self.p
        mal = state["malicious"][s]
        tx, eligible, signal, sinr_ante, budget = self.ante(state, s, p_ctrl)
        want = eligible & (price <= budget)
        order = np.argsort(-np.where(want, budget, -1.0), kind="stable")
        leased = np.zeros(self.U, bool)
        for rank, k in enumerate(order):
            if rank < self.cap and want[k]:
                leased[k] = True
        i_real = self.interference(state, s, tx, leased)
        sinr_real = self.sinr(state, s, signal, i_real)
        n = leased.sum()
        n_mal = (leased & mal).sum()
        rep = state["reputation"][s]
        if n_mal > 0:  # eq. (20)-(22)
            rep_next = rep - p.reputation_coeff * n_mal
        else:
            rep_next = rep + p.reputation_coeff * (n - n_mal)
        vis = state["visible"][s]
        n_vis = max(vis.sum(), 1)
        sinr_db = 10 * np.log10(np.maximum(sinr_ante, SINR_FLOOR))
        # myopic optimum at every power-control level, and its maximum over the levels
        by_level = []
        for lv in range(self.LP):
            _, elig_lv, _, _, budget_lv = self.ante(state, s, self.power_ctrl(lv))
            by_level.append(self.myopic(budget_lv, elig_lv))
        best_level = int(np.argmax([rev for _, rev in by_level]))
        honest = leased & ~mal
        nu = p.visibility ** p.visibility_prices_budget
        return {
            "revenue": price * n, "leases": float(n), "malicious_leases": float(n_mal),
            "reputation_next": rep_next, "leased": leased, "honest": honest,
            "user_utility": np.where(leased, budget - price, 0.0),
            "honest_utility": np.where(
                honest, p.revenue_coefficient * nu * np.log2(1 + sinr_real) - price, 0.0),
            "interference_real_w": i_real, "sinr_real": sinr_real,
            "mean_sinr_db": float(np.sum(sinr_db * vis) / n_vis),
            "mean_budget": float(np.sum(budget * vis) / n_vis),
            "myopic_optimal_revenue": by_level[best_level][1],
            "myopic_optimal_price": by_level[best_level][0],
            "myopic_optimal_power_w": self.power_ctrl(best_level),
            "myopic_revenue_at_level": by_level[power_level][1],
            "budget": budget, "eligible": eligible,
        }

    # ----------------------------------------------------- transition
    def decode(self, a):
        a = int(min(max(a, 0), 2 if self.price_only else 8))
        if self.price_only:
            return a - 1, 0
        return a // 3 - 1, a % 3 - 1

    def transition(self, state, action, next_draws):
        p = self.p
        S = self.S
        new = dict(state)
        price_level = np.zeros(S, int)
        power_level = np.zeros(S, int)
        outs = []
        for s in range(S):
            dp, dP = self.decode(action["satellite"][s])
            price_level[s] = min(max(state["price_level"][s] + dp, 0), self.L - 1)
            power_level[s] = min(max(state["power_level"][s] + dP, 0), self.LP - 1)
            outs.append(self.satellite_outcome(state, s, self.price(price_level[s]),
                                               self.power_ctrl(power_level[s]), power_level[s]))
        revenue = np.array([o["revenue"] for o in outs])
        rep_next = np.array([o["reputation_next"] for o in outs])
        block = state["block_income"] - state["block_income_counted"]  # B_s since last step
        utility = revenue + block  # eq. (9)
        base = {"revenue": revenue, "utility": utility,
                "delta": revenue - state["last_revenue"]}[self.reward]
        reward = base + p.reputation_weight * (rep_next - state["reputation"])  # eq. (12)
        new.update(self._draws(next_draws))
        new.update(
            price_level=price_level, power_level=power_level, reputation=rep_next,
            block_income_counted=state["block_income"].copy(),
            last_revenue=revenue, last_leases=np.array([o["leases"] for o in outs]),
            last_sinr_db=np.array([o["mean_sinr_db"] for o in outs]),
            last_mean_budget=np.array([o["mean_budget"] for o in outs]),
            step=state["step"] + 1,
        )
        info = self.metrics(outs, state, new, price_level, power_level)
        info.update(utility_total=utility.sum(), block_reward_total=block.sum(),
                    utility=utility, block_reward=block)
        return self.observe(new), new, {"satellite": reward}, info

    def metrics(self, outs, state, new, price_level, power_level):
        leased = np.concatenate([o["leased"] for o in outs])
        honest = np.concatenate([o["honest"] for o in outs])
        n_l = max(leased.sum(), 1)
        n_h = max(honest.sum(), 1)
        i_real = np.concatenate([o["interference_real_w"] for o in outs])
        sinr_real = np.concatenate([o["sinr_real"] for o in outs])
        mean_i = float(np.sum(i_real * leased) / n_l)
        prices = np.array([self.price(lv) for lv in price_level])
        p_ctrl = np.array([self.power_ctrl(lv) for lv in power_level])
        rep = new["reputation"]
        online = state["online"]
        cand = -1
        if online.any():
            cand = int(np.argmax(np.where(online, rep, -np.inf)))
        rev = np.array([o["revenue"] for o in outs])
        leases = np.array([o["leases"] for o in outs])
        opt = np.array([o["myopic_optimal_revenue"] for o in outs])
        return {
            "revenue_total": rev.sum(),
            "revenue_mean": rev.mean(),
            "myopic_optimal_revenue": opt.sum(),
            "myopic_revenue_at_level_total": sum(o["myopic_revenue_at_level"] for o in outs),
            "myopic_optimal_price_mean": np.mean([o["myopic_optimal_price"] for o in outs]),
            "myopic_optimal_power_w_mean": np.mean([o["myopic_optimal_power_w"] for o in outs]),
            "price_mean": prices.mean(),
            "power_ctrl_mean_w": p_ctrl.mean(),
            "leases_total": leases.sum(),
            "malicious_leases": sum(o["malicious_leases"] for o in outs),
            "user_utility_mean": sum(o["user_utility"].sum() for o in outs) / n_l,
            "honest_utility_mean": sum(o["honest_utility"].sum() for o in outs) / n_h,
            "budget_mean": np.mean([o["mean_budget"] for o in outs]),
            "sinr_mean_db": np.mean([o["mean_sinr_db"] for o in outs]),
            "sinr_real_leased_db": float(
                np.sum(10 * np.log10(np.maximum(sinr_real, SINR_FLOOR)) * leased) / n_l),
            "interference_w": mean_i,
            "interference_dbm": 10 * math.log10(max(mean_i, 1e-23)) + 30,
            "reputation_mean": rep.mean(),
            "online_fraction": online.mean(),
            "aggregator_candidate": float(cand),
            "revenue": rev,
            "price": prices,
            "power_ctrl_w": p_ctrl,
            "leases": leases,
            "malicious_leases_sat": np.array([o["malicious_leases"] for o in outs]),
            "myopic_revenue": opt,
            "myopic_revenue_at_level": np.array([o["myopic_revenue_at_level"] for o in outs]),
            "myopic_power_w": np.array([o["myopic_optimal_power_w"] for o in outs]),
            "reputation": rep.copy(),
            "online": online.copy(),
        }
