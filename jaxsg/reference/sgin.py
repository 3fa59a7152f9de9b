"""Plain-NumPy reference of the ``sgin`` scenario (one episode at a time).

Source: Gong et al., "Blockchain-aided digital twin offloading mechanism in
space-air-ground networks", IEEE TCOM 2024 (arXiv 2302.08525), Sec. III
(eq. 1-11) and Sec. IV (eq. 23, 29, 33); spec ``docs/sgin.md``. Equation
numbers in the comments are the paper's.

This module is the test oracle of ``jaxsg.scenarios.sgin`` and its slow speed
baseline. It is written independently of the JAX code (only ``numpy`` and
``math``; no ``jaxsg`` import) with explicit loops over MBS n, DT m, LEO o and
channel r so each line can be read against the paper. It implements the same
model and the same decisions as the JAX scenario (see that module's docstring
and ``docs/sgin.md``), in float64:

* path loss eq. (2) read as 20·log10 (the printed log2 gives 440-470 dB), the
  3-D distance floored at 1 m; LoS probability eq. (3) read as the
  Al-Hourani curve 1 / (1 + a·exp(−b·(θ − a))) with θ in degrees;
* power gain g = 10^(−L/10) (eq. 4-5 print |g|², which makes every SNR ≈ 0);
* only offloading DTs transmit (with power P, on their chosen channel, to
  their chosen LEO); the interference of eq. (4) at DT (n, m)'s chosen LEO on
  its chosen channel sums P·g of every other transmitting co-channel DT of
  the *other* MBSs, plus ``intra_cell_interference`` × the same-MBS ones;
  it is computed for every DT (a DT that does not transmit still reports
  what it would see);
* capacity D = f·τ/w (eq. 1, local) or R·τ (eq. 6, offload); queue
  Q' = Q − min(D, Q) + A (eq. 23 with constraint 16 as a clip);
* privacy overhead per MBS (eq. 7-10) with block S_n = the largest block of
  its DTs and verification gated by the slowest DT, max_m S_n·v/f_{n,m};
  every DT of MBS n bears C_n;
* ``payoff="paper"``: capacity D = f·τ/w locally or R·τ offloaded, utility
  F = D − w_priv·C_SBC − λ·f (eq. 29) in Mbit, ms, GHz with f ∈ [f_min, f_max]
  (``cpu_ghz``); leader reward Σ (λ − c)·f over every DT (eq. 11);
* ``payoff="cloud"`` (docs/sgin.md "Live regime"): ``cpu`` ∈ [0, 1] gives
  f = f_min + cpu·(f_mode_max − f_min), f_mode_max the cloud maximum
  ``cpu_max_hz`` when offloading, ``local_cpu_max_hz`` locally; offloaded
  capacity D = min(R·τ, f·τ/w); an offloading DT pays λ·f to the leader, a
  local one the energy κ·f; after serving, ``drop`` = 1 empties the rest of
  the backlog at π per Mbit; F = min(D, Q) − w_priv·C_SBC − cost − π·dropped;
  leader reward Σ over offloading DTs of (λ − c)·f;
* follower reward ``reward="paper"``: R = Q·D + V·F (eq. 33, D as in F);
  ``"drift_plus_penalty"``: R = Q·(D + dropped − A) + V·F; both minus the
  optional penalty for I > I_max (eq. 17);
* ``price_mode="leader"``: the leader's action is the price of the *next*
  slot, clipped to [λ_min, λ_max]; ``"fixed"``: λ = ``params.price``.

Only ``geometry="uniform"`` (the paper's i.i.d. x, y) is implemented; the
orbit geometry is beyond the paper and out of scope for the reference.

API::

    ref = SginReference(num_mbs, users_per_mbs, num_leo, num_channels,
                        horizon, price_mode, params)
    obs, state = ref.reset(rng)                 # rng: np.random.Generator
    obs, state, reward, info = ref.transition(state, action, next_draws)
    obs, state, reward, terminated, truncated, info = ref.step(action, rng)

``state`` is a plain dict with the fields of the JAX ``SginState``; actions
are ``{"follower": {"offload", "leo", "channel", "cpu_ghz", "block_mbit"},
"leader": (1, N·M) prices}``; rewards ``{"follower": (N·M,), "leader": (1,)}``;
``info`` has exactly the metric names and units of ``SginEnv.metrics``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SginReference", "state_from"]

MBIT = 1e6
GHZ = 1e9
MS = 1e-3
DISTANCE_SCALE_M = 2.0e6
ARRIVAL_SCALE_BITS = 10e6  # fixed observation scales (never params)
CYCLES_SCALE = 4000.0
QUEUE_SCALE_BITS = 100e6
PRICE_SCALE = 1.0
CPU_SCALE_HZ = 10e9
PATH_LOSS_CENTER_DB = 150.0
PATH_LOSS_SCALE_DB = 20.0
INTERFERENCE_FLOOR_W = 1e-20
MIN_DISTANCE_M = 1.0

#: Fields of the JAX ``SginState`` (same names, same shapes).
STATE_FIELDS = (
    "step",
    "queue_bits",
    "arrivals_bits",
    "cycles_per_bit",
    "horizontal_m",
    "vertical_m",
    "eta_los_db",
    "eta_nlos_db",
    "visible",
    "path_loss_db",
    "price",
    "last_cpu_hz",
    "last_interference_w",
    "last_rx_power_w",
    "time_offset_s",
    "ground_xyz",
)
DRAW_FIELDS = (
    "arrivals_bits",
    "cycles_per_bit",
    "horizontal_m",
    "vertical_m",
    "eta_los_db",
    "eta_nlos_db",
    "visible",
)
#: Params the reference reads (attribute names of the JAX ``SginParams``).
PARAM_FIELDS = (
    "slot_s",
    "arrival_min_bits",
    "arrival_max_bits",
    "cycles_per_bit_min",
    "cycles_per_bit_max",
    "initial_queue_bits",
    "horizontal_min_m",
    "horizontal_max_m",
    "altitude_min_m",
    "altitude_max_m",
    "carrier_hz",
    "speed_of_light",
    "los_a",
    "los_b",
    "eta_los_min_db",
    "eta_los_max_db",
    "eta_nlos_min_db",
    "eta_nlos_max_db",
    "power_w",
    "bandwidth_hz",
    "noise_w",
    "intra_cell_interference",
    "interference_max_w",
    "interference_penalty",
    "cpu_min_hz",
    "cpu_max_hz",
    "local_cpu_max_hz",
    "local_energy_price",
    "drop_penalty",
    "block_min_bits",
    "block_max_bits",
    "model_bits",
    "f_mbs_hz",
    "delta",
    "r_up_bps",
    "r_down_bps",
    "verify_cycles_per_bit",
    "v_weight",
    "privacy_weight",
    "price",
    "price_min",
    "price_max",
    "unit_cost",
)


class _Params:
    """Float copy of the params fields the reference needs (read by attribute)."""

    def __init__(self, params):
        for name in PARAM_FIELDS:
            setattr(self, name, float(getattr(params, name)))


def state_from(obj) -> dict:
    """Plain float64 dict of a state-like object (e.g. a JAX ``SginState``).

    Reads the ``STATE_FIELDS`` attributes; ``step`` becomes an int and
    ``visible`` a bool array.
    """
    state = {}
    for name in STATE_FIELDS:
        value = np.asarray(getattr(obj, name))
        if name == "step":
            state[name] = int(value)
        elif name == "visible":
            state[name] = value.astype(bool)
        else:
            state[name] = value.astype(np.float64)
    return state


def watt_to_dbm(p_w: float) -> float:
    """P_dBm = 10·log10(P_W) + 30."""
    return 10.0 * math.log10(p_w) + 30.0


class SginReference:
    """One ``sgin`` episode in NumPy, loops over MBS n, DT m, LEO o, channel r."""

    def __init__(
        self,
        num_mbs: int,
        users_per_mbs: int,
        num_leo: int,
        num_channels: int,
        horizon: int,
        price_mode: str,
        params,
        geometry: str = "uniform",
        payoff: str = "cloud",
        reward: str = "drift_plus_penalty",
    ):
        if geometry == "orbit":
            raise NotImplementedError(
                "SginReference implements only geometry='uniform' (the paper's i.i.d. "
                "x, y); the Walker-delta 'orbit' geometry is beyond the paper and out "
                "of scope for the NumPy reference"
            )
        if geometry != "uniform":
            raise ValueError(f"sgin reference: unknown geometry {geometry!r}")
        if payoff not in ("cloud", "paper"):
            raise ValueError(f"sgin reference: payoff must be 'cloud' or 'paper', got {payoff!r}")
        if reward not in ("drift_plus_penalty", "paper"):
            raise ValueError(
                f"sgin reference: reward must be 'drift_plus_penalty' or 'paper', got {reward!r}"
            )
        if price_mode not in ("leader", "fixed"):
            raise ValueError(
                f"sgin reference: price_mode must be 'leader' or 'fixed', got {price_mode!r}"
            )
        for name, value in (
            ("num_mbs", num_mbs),
            ("users_per_mbs", users_per_mbs),
            ("num_leo", num_leo),
            ("num_channels", num_channels),
            ("horizon", horizon),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"sgin reference: {name} must be an int >= 1, got {value!r}")
        self.N = int(num_mbs)  # MBSs n
        self.M = int(users_per_mbs)  # DTs m per MBS
        self.O = int(num_leo)  # LEOs o
        self.R = int(num_channels)  # channels r
        self.NM = self.N * self.M
        self.horizon = int(horizon)
        self.price_mode = price_mode
        self.geometry = geometry
        self.payoff = payoff
        self.reward = reward
        self.p = _Params(params)
        self.state = None

    @classmethod
    def from_env(cls, env, params) -> SginReference:
        """Build from a JAX ``SginEnv`` (reads its sizes and options by attribute)."""
        return cls(
            env.num_mbs,
            env.users_per_mbs,
            env.num_leo,
            env.num_channels,
            env.horizon,
            env.price_mode,
            params,
            geometry=env.geometry,
            payoff=env.payoff,
            reward=env.reward,
        )

    def dt(self, n: int, m: int) -> int:
        """Flat index of DT m of MBS n (MBS-major, as the JAX agent axis)."""
        return n * self.M + m

    # ------------------------------------------------------------ randomness
    def draw_slot(self, rng: np.random.Generator) -> dict:
        """Exogenous draws of one slot: A, w, x, y, ε_LoS, ε_NLoS, visibility."""
        p, nm, o = self.p, self.NM, self.O
        return {
            "arrivals_bits": rng.uniform(p.arrival_min_bits, p.arrival_max_bits, nm),
            "cycles_per_bit": rng.uniform(p.cycles_per_bit_min, p.cycles_per_bit_max, nm),
            "horizontal_m": rng.uniform(p.horizontal_min_m, p.horizontal_max_m, (nm, o)),
            "vertical_m": rng.uniform(p.altitude_min_m, p.altitude_max_m, (nm, o)),
            "eta_los_db": rng.uniform(p.eta_los_min_db, p.eta_los_max_db, (nm, o)),
            "eta_nlos_db": rng.uniform(p.eta_nlos_min_db, p.eta_nlos_max_db, (nm, o)),
            "visible": np.ones((nm, o), bool),
        }

    def reset(self, rng: np.random.Generator):
        """Start an episode: queues at Q_0, price λ_0 = params.price, f_{-1} = f_min."""
        p, nm = self.p, self.NM
        state = {
            "step": 0,
            "queue_bits": np.full(nm, p.initial_queue_bits),
            "price": np.full(nm, p.price),
            # billed CPU of slot −1: f_min everywhere (paper), nothing billed yet (cloud)
            "last_cpu_hz": np.full(nm, p.cpu_min_hz if self.payoff == "paper" else 0.0),
            "last_interference_w": np.zeros(nm),
            "last_rx_power_w": np.zeros((self.N, self.O, self.R)),
            "time_offset_s": 0.0,
            "ground_xyz": np.zeros((nm, 3)),
            **self.draw_slot(rng),
        }
        state["path_loss_db"] = self.path_loss_table(state)
        self.state = state
        return self.observe(state), state

    # --------------------------------------------------------------- physics
    def path_loss_db(self, x: float, y: float, eta_los: float, eta_nlos: float) -> float:
        """L of one DT-LEO link, eq. (2)-(3) (20·log10 FSPL, Al-Hourani LoS probability)."""
        p = self.p
        d = max(math.sqrt(x * x + y * y), MIN_DISTANCE_M)
        fspl = 20.0 * math.log10(4.0 * math.pi * p.carrier_hz * d / p.speed_of_light)
        theta_deg = 90.0 if x == 0.0 and y == 0.0 else math.degrees(math.atan2(y, x))
        p_los = 1.0 / (1.0 + p.los_a * math.exp(-p.los_b * (theta_deg - p.los_a)))  # eq. (3)
        return fspl + p_los * eta_los + (1.0 - p_los) * eta_nlos  # eq. (2)

    def path_loss_table(self, state: dict) -> np.ndarray:
        """L[i, o] of every (DT i, LEO o) link of a state's draws (kept in the state, as
        the JAX env keeps it, and read by ``observe``)."""
        loss = np.zeros((self.NM, self.O))
        for i in range(self.NM):
            for o in range(self.O):
                loss[i, o] = self.path_loss_db(
                    state["horizontal_m"][i, o],
                    state["vertical_m"][i, o],
                    state["eta_los_db"][i, o],
                    state["eta_nlos_db"][i, o],
                )
        return loss

    def gains(self, state: dict) -> np.ndarray:
        """Power gain g[i, o] = 10^(−L_{i,o}/10) of every (DT i, LEO o) link."""
        g = np.zeros((self.NM, self.O))
        for i in range(self.NM):
            for o in range(self.O):
                loss = self.path_loss_db(
                    state["horizontal_m"][i, o],
                    state["vertical_m"][i, o],
                    state["eta_los_db"][i, o],
                    state["eta_nlos_db"][i, o],
                )
                g[i, o] = 10.0 ** (-loss / 10.0)
        return g

    def clip_follower_action(self, action: dict) -> dict:
        """Integers into range, f and S_B clipped to [f_min, f_max], [S_min, S_max]
        (cloud: f from the mode-relative fraction ``cpu`` clipped to [0, 1])."""
        p = self.p
        a = {k: np.asarray(v) for k, v in action.items()}
        offload = np.clip(a["offload"], 0, 1).astype(bool)
        if self.payoff == "cloud":
            cpu_hz = np.zeros(self.NM)
            drop = np.clip(a["drop"], 0, 1).astype(bool)
            for i in range(self.NM):
                f_max = p.cpu_max_hz if offload[i] else p.local_cpu_max_hz
                frac = min(max(float(a["cpu"][i]), 0.0), 1.0)
                cpu_hz[i] = p.cpu_min_hz + frac * (f_max - p.cpu_min_hz)
        else:
            cpu_hz = np.clip(a["cpu_ghz"].astype(np.float64) * GHZ, p.cpu_min_hz, p.cpu_max_hz)
            drop = np.zeros(self.NM, bool)
        return {
            "offload": offload,
            "drop": drop,
            "leo": np.clip(a["leo"], 0, self.O - 1).astype(int),
            "channel": np.clip(a["channel"], 0, self.R - 1).astype(int),
            "cpu_hz": cpu_hz,
            "block_bits": np.clip(
                a["block_mbit"].astype(np.float64) * MBIT, p.block_min_bits, p.block_max_bits
            ),
        }

    def privacy_overhead(self, block_bits: float, cpu_hz_of_mbs) -> tuple:
        """(C1, C2, C3, C_SBC) of one MBS in seconds, eq. (7)-(10)."""
        p, N, M = self.p, self.N, self.M
        c1 = p.model_bits / p.f_mbs_hz  # eq. (7)
        c2 = p.delta * math.log2(N) * p.model_bits / p.r_up_bps  # eq. (8)
        verify = max(block_bits * p.verify_cycles_per_bit / f for f in cpu_hz_of_mbs)
        c3 = p.delta * math.log2(M * N) * block_bits / p.r_down_bps + verify  # eq. (9)
        return c1, c2, c3, c1 + c2 + c3  # eq. (10)

    def slot_outcome(self, state: dict, follower_action: dict) -> dict:
        """Everything that happens in slot t given the followers' actions (per DT)."""
        p, N, M, O, R, NM = self.p, self.N, self.M, self.O, self.R, self.NM
        a = self.clip_follower_action(follower_action)
        g = self.gains(state)

        # who transmits: offloading DTs whose chosen LEO is visible
        transmit = np.zeros(NM, bool)
        for i in range(NM):
            transmit[i] = a["offload"][i] and state["visible"][i, a["leo"][i]]

        # eq. (4): interference at DT (n, m)'s LEO o on its channel r
        interference = np.zeros(NM)
        for n in range(N):
            for m in range(M):
                i = self.dt(n, m)
                o, r = a["leo"][i], a["channel"][i]
                total = 0.0
                for q in range(N):
                    weight = 1.0 if q != n else p.intra_cell_interference
                    for m2 in range(M):
                        j = self.dt(q, m2)
                        if j == i or not transmit[j] or a["channel"][j] != r:
                            continue  # β_{q,m',r} = 0
                        total += weight * p.power_w * g[j, o]
                interference[i] = total

        # eq. (5)-(6) and (1): rate, capacity
        rate = np.zeros(NM)
        capacity = np.zeros(NM)
        for i in range(NM):
            if transmit[i]:
                signal = p.power_w * g[i, a["leo"][i]]
                rate[i] = p.bandwidth_hz * math.log2(1.0 + signal / (p.noise_w + interference[i]))
            compute_bits = a["cpu_hz"][i] * p.slot_s / state["cycles_per_bit"][i]  # eq. (1)
            if a["offload"][i]:  # α = 0
                capacity[i] = rate[i] * p.slot_s  # eq. (6)
                if self.payoff == "cloud":  # the cloud computes at the f the DT buys
                    capacity[i] = min(capacity[i], compute_bits)
            else:  # α = 1
                capacity[i] = compute_bits

        # eq. (23) with constraint (16) as a clip: serve min(D, Q), drop the rest if
        # chosen (cloud), then A joins
        served = np.zeros(NM)
        dropped = np.zeros(NM)
        queue_next = np.zeros(NM)
        for i in range(NM):
            q = max(state["queue_bits"][i], 0.0)
            served[i] = min(max(capacity[i], 0.0), q)
            if a["drop"][i]:
                dropped[i] = q - served[i]
            queue_next[i] = q - served[i] - dropped[i] + state["arrivals_bits"][i]

        # eq. (7)-(10) per MBS: S_n = largest block of its DTs, slowest verifier gates
        overhead = np.zeros((N, 4))  # columns C1, C2, C3, C_SBC (s)
        for n in range(N):
            block = max(a["block_bits"][self.dt(n, m)] for m in range(M))
            cpu = [a["cpu_hz"][self.dt(n, m)] for m in range(M)]
            overhead[n] = self.privacy_overhead(block, cpu)

        # who pays what: paper, λ·f on every DT; cloud, λ·f if offloading, κ·f if local
        billed = np.zeros(NM)  # CPU (Hz) the leader sells
        cost = np.zeros(NM)
        for i in range(NM):
            f = a["cpu_hz"][i]
            if self.payoff == "paper":
                billed[i] = f
                cost[i] = state["price"][i] * f / GHZ
            elif a["offload"][i]:
                billed[i] = f if transmit[i] else 0.0
                cost[i] = state["price"][i] * billed[i] / GHZ
            else:
                cost[i] = p.local_energy_price * f / GHZ

        # eq. (29), (17), (33) per DT; eq. (11) for the leader
        utility = np.zeros(NM)
        violation = np.zeros(NM, bool)
        reward = np.zeros(NM)
        for n in range(N):
            for m in range(M):
                i = self.dt(n, m)
                # paper: the capacity D; cloud: the bits actually served, min(D, Q)
                d_mbit = (capacity[i] if self.payoff == "paper" else served[i]) / MBIT
                utility[i] = (
                    d_mbit
                    - p.privacy_weight * overhead[n, 3] / MS
                    - cost[i]
                    - p.drop_penalty * dropped[i] / MBIT
                )  # eq. (29)
                violation[i] = transmit[i] and interference[i] > p.interference_max_w  # (17)
                q_mbit = state["queue_bits"][i] / MBIT
                if self.reward == "paper":
                    drift = q_mbit * d_mbit  # eq. (33) as printed
                else:  # Q·(D + dropped − A)
                    departed = d_mbit + dropped[i] / MBIT - state["arrivals_bits"][i] / MBIT
                    drift = q_mbit * departed
                reward[i] = (
                    drift + p.v_weight * utility[i] - p.interference_penalty * violation[i]
                )
        profit = 0.0
        for i in range(NM):
            profit += (state["price"][i] - p.unit_cost) * billed[i] / GHZ  # eq. (11)

        # received power per (MBS n, LEO o, channel r): the leader-side spectrum picture
        rx_grid = np.zeros((N, O, R))
        for n in range(N):
            for m in range(M):
                i = self.dt(n, m)
                if transmit[i]:
                    for o in range(O):
                        rx_grid[n, o, a["channel"][i]] += p.power_w * g[i, o]

        return {
            "action": a,
            "transmit": transmit,
            "interference_w": interference,
            "rate_bps": rate,
            "capacity_bits": capacity,
            "served_bits": served,
            "dropped_bits": dropped,
            "queue_next_bits": queue_next,
            "billed_hz": billed,
            "cost": cost,
            "overhead_s": overhead,
            "utility": utility,
            "violation": violation,
            "follower_reward": reward,
            "leader_profit": profit,
            "rx_power_grid_w": rx_grid,
        }

    # ------------------------------------------------------------------- API
    def next_price(self, action: dict) -> np.ndarray:
        """λ of slot t+1: the leader's action (clipped) or the fixed params.price."""
        p = self.p
        if self.price_mode == "leader":
            leader = np.asarray(action["leader"], np.float64).reshape(-1)
            return np.clip(leader, p.price_min, p.price_max)
        return np.full(self.NM, p.price)

    def transition(self, state: dict, action: dict, next_draws: dict):
        """Slot t → t+1 given the actions and slot t+1's draws (deterministic, no reset).

        Returns ``(obs, next_state, reward, info)``.
        """
        out = self.slot_outcome(state, action["follower"])
        next_state = dict(state)
        next_state.update(
            step=int(state["step"]) + 1,
            queue_bits=out["queue_next_bits"],
            price=self.next_price(action),
            last_cpu_hz=out["billed_hz"],
            last_interference_w=out["interference_w"],
            last_rx_power_w=out["rx_power_grid_w"],
        )
        for name in DRAW_FIELDS:
            value = np.asarray(next_draws[name])
            next_state[name] = value.astype(bool) if name == "visible" else value.astype(np.float64)
        next_state["path_loss_db"] = self.path_loss_table(next_state)
        reward = {
            "follower": out["follower_reward"],
            "leader": np.array([out["leader_profit"]]),
        }
        info = self.metrics(out, state)
        info["price_next"] = float(np.mean(next_state["price"]))
        return self.observe(next_state), next_state, reward, info

    def step(self, action: dict, rng: np.random.Generator, state: dict | None = None):
        """Draw slot t+1 with ``rng``, transition, auto-reset at the horizon.

        Uses (and updates) ``self.state`` unless ``state`` is given. Returns
        ``(obs, state, reward, terminated, truncated, info)`` like the JAX
        ``env.step``; ``info["final_observation"]`` is the pre-reset observation.
        """
        state = self.state if state is None else state
        if state is None:
            raise RuntimeError("call reset(rng) before step")
        obs, next_state, reward, info = self.transition(state, action, self.draw_slot(rng))
        terminated = False
        truncated = next_state["step"] >= self.horizon
        info = dict(info)
        info["final_observation"] = obs
        if terminated or truncated:
            obs, next_state = self.reset(rng)
        self.state = next_state
        return obs, next_state, reward, terminated, truncated, info

    def observe(self, state: dict) -> dict:
        """Follower features [A, w, Q, x_o, y_o, λ, own last I (dBm), own L_o (dB)] and
        leader [billed f last slot (NM), c, price in force (NM)], each scaled by a fixed
        constant (never by a param)."""
        p, NM, O = self.p, self.NM, self.O
        follower = np.zeros((NM, 5 + 3 * O))
        for i in range(NM):
            # observed interference is floored at the noise power (eq. 5's σ²)
            i_dbm = watt_to_dbm(max(state["last_interference_w"][i], p.noise_w))
            follower[i, 0] = state["arrivals_bits"][i] / ARRIVAL_SCALE_BITS
            follower[i, 1] = state["cycles_per_bit"][i] / CYCLES_SCALE
            follower[i, 2] = state["queue_bits"][i] / QUEUE_SCALE_BITS
            for o in range(O):
                follower[i, 3 + o] = state["horizontal_m"][i, o] / DISTANCE_SCALE_M
                follower[i, 3 + O + o] = state["vertical_m"][i, o] / DISTANCE_SCALE_M
            follower[i, 3 + 2 * O] = state["price"][i] / PRICE_SCALE
            follower[i, 4 + 2 * O] = (i_dbm + 100.0) / 50.0
            for o in range(O):
                loss = state["path_loss_db"][i, o]  # L of this slot (``path_loss_table``)
                follower[i, 5 + 2 * O + o] = (loss - PATH_LOSS_CENTER_DB) / PATH_LOSS_SCALE_DB
        leader = np.zeros((1, 2 * NM + 1))
        for i in range(NM):
            leader[0, i] = state["last_cpu_hz"][i] / CPU_SCALE_HZ  # CPU billed last slot
            leader[0, NM + 1 + i] = state["price"][i] / PRICE_SCALE  # the price in force
        leader[0, NM] = p.unit_cost / PRICE_SCALE
        return {"follower": follower, "leader": leader}

    def metrics(self, out: dict, state: dict) -> dict:
        """Scalar per-slot metrics, same names and units as ``SginEnv.metrics``."""
        tx = out["transmit"]
        n_tx = int(np.sum(tx))
        mean_interference = float(np.sum(out["interference_w"][tx])) / max(n_tx, 1)
        overhead = out["overhead_s"]
        return {
            "throughput_mbit": float(np.sum(out["capacity_bits"])) / MBIT,
            "served_mbit": float(np.sum(out["served_bits"])) / MBIT,
            "dropped_mbit": float(np.sum(out["dropped_bits"])) / MBIT,
            "drop_fraction": float(np.mean(out["action"]["drop"])),
            "queue_mean_mbit": float(np.mean(out["queue_next_bits"])) / MBIT,
            "queue_max_mbit": float(np.max(out["queue_next_bits"])) / MBIT,
            "interference_w": mean_interference,
            "interference_dbm": watt_to_dbm(max(mean_interference, INTERFERENCE_FLOOR_W)),
            "interference_violations": float(np.sum(out["violation"])),
            "leader_profit": float(out["leader_profit"]),
            "privacy_overhead_ms": float(np.mean(overhead[:, 3])) / MS,
            "privacy_c1_ms": float(np.mean(overhead[:, 0])) / MS,
            "privacy_c2_ms": float(np.mean(overhead[:, 1])) / MS,
            "privacy_c3_ms": float(np.mean(overhead[:, 2])) / MS,
            "offload_fraction": float(np.mean(out["action"]["offload"])),
            "price_mean": float(np.mean(state["price"])),
            "price_in_force": float(np.mean(state["price"])),
            "cpu_mean_ghz": float(np.mean(out["action"]["cpu_hz"])) / GHZ,
            "cloud_cpu_ghz": float(np.sum(out["billed_hz"])) / GHZ,
            "cost_mean": float(np.mean(out["cost"])),
            "rate_mean_mbps": float(np.sum(out["rate_bps"])) / max(n_tx, 1) / MBIT,
            "follower_utility_mean": float(np.mean(out["utility"])),
            "follower_reward_mean": float(np.mean(out["follower_reward"])),
        }
