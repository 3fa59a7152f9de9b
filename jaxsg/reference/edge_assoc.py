"""Plain-NumPy reference of the ``edge_assoc`` scenario (one episode at a time).

Source: Lu et al., IEEE TII 2021 (arXiv 2011.09902), eq. 6-8 and 11-19; spec
``docs/edge_assoc.md``. The test oracle of ``jaxsg.scenarios.edge_assoc`` and
its speed baseline. Written independently of the JAX code (``numpy`` and
``math`` only, no ``jaxsg`` import), float64, with explicit loops over BSs i,
users j and subchannels c so each line reads against the paper. Same model and
decisions as the JAX module's docstring:

* DT j → BS argmax_i bid[i, j] (first maximum); b_j = batch_frac[assoc_j, j]
  clipped to [b_min, b_max];
* bandwidth weights clipped to [0, 1], floored at ``bandwidth_weight_min``,
  zeroed for BSs with K_i = 0, normalised per subchannel: τ_{i,c} = w_{i,c}/Σ_k w_{k,c};
* eq. 7 under the static ``interference_model``: ``"orthogonal"`` (default; τ are
  TDMA time shares, no interference) or ``"expected_use"`` (interference
  ι·Σ_{k≠i} τ_{k,c} P h_{k,c} r^−α); eq. 8 interference-free; r^−α with r = ring
  radius, the link budget P − PL − N0·W summed in dB before the conversion;
* T = max_i T_cmp + max_i T_la + max_i T_pt + max_{i∈P} ξ log2(M_p) S_B/R_i^D
  + max_{i∈P} S_B f^v / f_i^S (eq. 12-17 with eq. 14 kept; P = producers);
* θ_G = θ_min + (θ_max − θ_min) e^{−κρ}, ρ = Σ b_j D_j / Σ D_j; reward
  −T/(1 − θ_G) for every BS, 1 − θ_G = (1 − θ_max) + (θ_max − θ_min)(1 − e^{−κρ});
* DPoS: round 0 sets coins to D_i/ΣD·S_ini (eq. 6), verified (K_i > 0) BSs
  earn ``coin_reward``, producers = the M_p richest (ties → lower index).

API::

    ref = EdgeAssocReference.from_env(env, params)
    obs, state = ref.reset(rng)
    obs, state, reward, info = ref.transition(state, action, next_draws)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["DRAW_FIELDS", "EdgeAssocReference", "state_from"]

MBIT = 1e6
DRAW_FIELDS = ("cpu_hz", "h_up", "h_down")
STATE_FIELDS = ("step", "data_samples", "cpu_hz", "h_up", "h_down", "num_dts", "assoc",
                "coins", "producers")


def state_from(obj) -> dict:
    """A reference state dict from a JAX ``EdgeAssocState`` (or a dict of arrays)."""
    get = obj.get if isinstance(obj, dict) else (lambda k: getattr(obj, k))
    return {k: np.array(get(k)) for k in STATE_FIELDS}


class _Params:
    def __init__(self, params):
        for name in params.__dataclass_fields__:
            setattr(self, name, float(np.asarray(getattr(params, name))))


def _dbm_to_w(dbm: float) -> float:
    return 10.0 ** ((dbm - 30.0) / 10.0)


def _elect(coins, k: int) -> np.ndarray:
    """Top-k by coins, ties to the lower index."""
    order = sorted(range(len(coins)), key=lambda i: (-coins[i], i))
    mask = np.zeros(len(coins), bool)
    for i in order[:k]:
        mask[i] = True
    return mask


class EdgeAssocReference:
    def __init__(self, num_users, num_bs, num_subchannels, num_producers, horizon,
                 bs_cpu_max_hz, params, interference_model="orthogonal"):
        if interference_model not in ("orthogonal", "expected_use"):
            raise ValueError(f"interference_model = {interference_model!r}")
        self.interference_model = interference_model
        self.N, self.M, self.C = int(num_users), int(num_bs), int(num_subchannels)
        self.Mp = int(num_producers)
        self.horizon = int(horizon)
        self.f_max = np.asarray(bs_cpu_max_hz, np.float64)
        self.p = _Params(params)
        self.state = None

    @classmethod
    def from_env(cls, env, params) -> EdgeAssocReference:
        return cls(env.num_users, env.num_bs, env.num_subchannels, env.num_producers,
                   env.horizon, env.bs_cpu_max_hz, params, env.interference_model)

    # ------------------------------------------------------------ draws
    def draw_round(self, rng: np.random.Generator) -> dict:
        p = self.p
        f = self.f_max * p.cpu_scale
        return {
            "cpu_hz": f * rng.uniform(p.cpu_avail_min, 1.0, self.M),
            "h_up": rng.exponential(1.0, (self.M, self.C)),
            "h_down": rng.exponential(1.0, (self.M, self.C)),
        }

    def reset(self, rng: np.random.Generator):
        p = self.p
        coins = np.full(self.M, p.s_ini / self.M)
        state = {
            "step": 0,
            "data_samples": rng.uniform(p.data_min_samples, p.data_max_samples, self.N),
            "num_dts": np.zeros(self.M),
            "assoc": np.full(self.N, -1),
            "coins": coins,
            "producers": _elect(coins, self.Mp),
            **self.draw_round(rng),
        }
        self.state = state
        return self.observe(state), state

    # ------------------------------------------------------------ model
    def resolve(self, action: dict):
        p = self.p
        bid = np.asarray(action["bid"], np.float64)
        bfrac = np.asarray(action["batch_frac"], np.float64)
        assoc = np.zeros(self.N, int)
        batch = np.zeros(self.N)
        for j in range(self.N):
            best = 0
            for i in range(1, self.M):
                if bid[i, j] > bid[best, j]:
                    best = i
            assoc[j] = best
            batch[j] = min(max(bfrac[best, j], p.batch_frac_min), p.batch_frac_max)
        k = np.zeros(self.M)
        for j in range(self.N):
            k[assoc[j]] += 1
        w = np.zeros((self.M, self.C))
        for i in range(self.M):
            for c in range(self.C):
                wic = min(max(float(action["bandwidth"][i][c]), 0.0), 1.0)
                w[i, c] = max(wic, p.bandwidth_weight_min) if k[i] > 0 else 0.0
        tau = np.zeros((self.M, self.C))
        for c in range(self.C):
            total = sum(w[i, c] for i in range(self.M))
            for i in range(self.M):
                tau[i, c] = w[i, c] / total if total > 0 else 0.0
        return assoc, batch, k, tau

    def round_outcome(self, state: dict, action: dict) -> dict:
        p = self.p
        assoc, batch, k, tau = self.resolve(action)
        data = state["data_samples"]
        trained = np.zeros(self.M)
        data_bs = np.zeros(self.M)
        for j in range(self.N):
            trained[assoc[j]] += batch[j] * data[j]
            data_bs[assoc[j]] += data[j]
        # eq. 7-8
        W = p.subchannel_bandwidth_hz
        noise_dbm = p.noise_psd_dbm_per_hz + 10.0 * math.log10(W)
        pl_db = 10.0 * p.pathloss_exponent * math.log10(p.ring_radius_m)
        snr_bs = 10.0 ** ((p.bs_power_dbm - pl_db - noise_dbm) / 10.0)  # P r^-a / (N0 W)
        snr_mbs = 10.0 ** ((p.mbs_power_dbm - pl_db - noise_dbm) / 10.0)
        r_up = np.zeros(self.M)
        r_down = np.zeros(self.M)
        for i in range(self.M):
            for c in range(self.C):
                interf = 0.0  # in units of the noise power N0 W
                if self.interference_model == "expected_use":
                    for kk in range(self.M):
                        if kk != i:
                            interf += tau[kk, c] * snr_bs * state["h_up"][kk, c]
                    interf *= p.interference_factor
                s = snr_bs * state["h_up"][i, c]
                r_up[i] += tau[i, c] * W * math.log2(1.0 + s / (interf + 1.0))
                r_down[i] += W * math.log2(1.0 + snr_mbs * state["h_down"][i, c])
        # eq. 12-17
        t_cmp = max(trained[i] * p.cycles_per_sample / state["cpu_hz"][i] for i in range(self.M))
        t_la = max(k[i] * p.model_bits * p.agg_cycles_per_bit / state["cpu_hz"][i]
                   for i in range(self.M))
        t_pt = 0.0
        for i in range(self.M):
            bits = p.xi * math.log2(self.M) * k[i] * p.model_bits
            if bits > 0:
                t_pt = max(t_pt, bits / r_up[i])
        prod = state["producers"]
        f_ver = self.f_max * p.cpu_scale * p.verify_cpu_scale
        t_b = max((p.xi * math.log2(self.Mp) * p.block_bits / r_down[i] if prod[i] else 0.0)
                  for i in range(self.M))
        t_v = max((p.block_bits * p.verify_cycles_per_bit / f_ver[i] if prod[i] else 0.0)
                  for i in range(self.M))
        total = t_cmp + t_la + t_pt + t_b + t_v
        rho = sum(trained) / sum(data)
        theta = p.theta_min + (p.theta_max - p.theta_min) * math.exp(-p.theta_kappa * rho)
        one_minus_theta = (1.0 - p.theta_max) + (p.theta_max - p.theta_min) * (
            1.0 - math.exp(-p.theta_kappa * rho))
        objective = total / one_minus_theta
        # DPoS
        if state["step"] == 0:
            tot = sum(data_bs)
            coins = np.array([data_bs[i] / tot * p.s_ini for i in range(self.M)])
        else:
            coins = np.array(state["coins"], np.float64)
        verified = k > 0
        coins = coins + p.coin_reward * verified
        return {
            "assoc": assoc, "batch_frac": batch, "num_dts": k, "tau": tau,
            "trained": trained, "r_up": r_up, "r_down": r_down,
            "times": (t_cmp, t_la, t_pt, t_b, t_v, total),
            "rho": rho, "theta": theta, "objective": objective,
            "rounds_factor": 1.0 / one_minus_theta,
            "coins": coins, "producers": _elect(coins, self.Mp),
        }

    def transition(self, state: dict, action: dict, next_draws: dict):
        """Round t with ``action`` (the ``bs`` dict); next round's draws given."""
        out = self.round_outcome(state, action["bs"] if "bs" in action else action)
        new_state = dict(state)
        new_state.update(
            step=state["step"] + 1, num_dts=out["num_dts"], assoc=out["assoc"],
            coins=out["coins"], producers=out["producers"],
            **{k: np.asarray(next_draws[k], np.float64) for k in DRAW_FIELDS},
        )
        reward = {"bs": np.full(self.M, -out["objective"])}
        return self.observe(new_state), new_state, reward, self.metrics(out)

    def step(self, action: dict, rng: np.random.Generator):
        obs, state, reward, info = self.transition(self.state, action, self.draw_round(rng))
        truncated = state["step"] >= self.horizon
        info["final_observation"] = obs
        if truncated:
            obs, state = self.reset(rng)
        self.state = state
        return obs, state, reward, False, truncated, info

    def observe(self, state: dict) -> dict:
        p = self.p
        f_max = max(self.f_max) * p.cpu_scale
        shared = list(state["cpu_hz"] / f_max) + list(state["num_dts"] / self.N)
        shared += list(state["data_samples"] / p.data_max_samples)
        shared += [state["h_up"][i, c] for i in range(self.M) for c in range(self.C)]
        obs = np.zeros((self.M, len(shared) + self.M))
        for i in range(self.M):
            obs[i, : len(shared)] = shared
            obs[i, len(shared) + i] = 1.0
        return {"bs": obs}

    def metrics(self, out: dict) -> dict:
        t_cmp, t_la, t_pt, t_b, t_v, total = out["times"]
        k = out["num_dts"]
        active = k > 0
        return {
            "time_cost_s": total,
            "objective_s": out["objective"],
            "compute_s": t_cmp,
            "local_agg_s": t_la,
            "transmit_s": t_pt,
            "block_broadcast_s": t_b,
            "block_verify_s": t_v,
            "theta_g": out["theta"],
            "rounds_factor": out["rounds_factor"],
            "data_fraction": out["rho"],
            "batch_frac_mean": float(np.mean(out["batch_frac"])),
            "uplink_rate_mean_mbps": float(np.sum(out["r_up"][active]) / max(active.sum(), 1)
                                           / MBIT),
            "uplink_rate_min_mbps": float(np.min(out["r_up"][active]) / MBIT),
            "active_bs": float(active.sum()),
            "dts_max": float(k.max()),
            "dts_min": float(k.min()),
            "coins_total": float(out["coins"].sum()),
            "assoc": out["assoc"],
            "batch_frac": out["batch_frac"],
            "tau": out["tau"],
            "num_dts": k,
        }
