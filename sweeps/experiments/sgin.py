"""Paper figures of the ``sgin`` scenario (Gong et al., TCOM 2024, Figs. 4-11).

One experiment per figure. A cell is one series (a method, or a number of
users M); inside a cell the figure's numeric axis × seeds is one batch,
vmapped (and sharded over local devices) through ``sweeps.sharding.run_batched``
with common random numbers: seed s uses the same key at every axis value.

Each record is one (axis value, seed): time averages over the episode of the
env's per-slot metrics. Methods: the paper's heuristic baselines MARTO, MAMCC,
MAGCS and our best-response reference (``agents.heuristics``); learned methods
(MAML-MADFRL, MAPPO) join with the agents issue.

Decisions where the paper is silent:
* axes: V ∈ {1, 5, 10, 50, 100}; P ∈ {8..40} W; B ∈ {10..30} MHz;
  λ ∈ {2..10}; δ ∈ {0.2..1.0}; f_MBS ∈ {2..6}·1e9 cycle/s; c ∈ {0.5..2.5};
* Fig. 5's "task size fixed to 15 MB" becomes a fixed task of 6 Mbit/slot
  (the mean of our calibrated arrival range, see ``jaxsg.scenarios.sgin``);
* Fig. 6 (profit vs unit cost c) uses the Stackelberg reference leader (grid
  price over the followers' best response), Fig. 9 the fixed posted price.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxsg
from agents import heuristics
from jaxsg.wrappers import rollout
from sweeps.experiments import Cell, Experiment, RunContext, register_experiment
from sweeps.sharding import run_batched

HEURISTIC_METHODS = ("marto", "mamcc", "magcs", "best_response")
METHOD_LABELS = {
    "marto": "MARTO",
    "mamcc": "MAMCC",
    "magcs": "MAGCS",
    "best_response": "best response (ref.)",
    "stackelberg": "Stackelberg (ref.)",
}
METRICS = (
    "throughput_mbit",
    "served_mbit",
    "queue_mean_mbit",
    "interference_dbm",
    "interference_w",
    "leader_profit",
    "privacy_overhead_ms",
    "offload_fraction",
    "price_mean",
    "cpu_mean_ghz",
)

#: Per scale: episode length, seeds, axis points, users per MBS for Figs. 4-6, sizes.
SCALES = {
    "smoke": dict(horizon=8, seeds=2, points=3, users=(3, 5),
                  sizes=dict(num_mbs=2, users_per_mbs=3, num_leo=2, num_channels=3)),
    "default": dict(horizon=50, seeds=2, points=5, users=(12, 20, 28),
                    sizes=dict(num_mbs=4, users_per_mbs=12, num_leo=4, num_channels=12)),
    "paper": dict(horizon=200, seeds=8, points=5, users=(12, 20, 28),
                  sizes=dict(num_mbs=4, users_per_mbs=12, num_leo=4, num_channels=12)),
}

# figure -> (param field, full axis in SI, x label, edge-unit scale, metric, y label)
FIGURES = {
    4: ("v_weight", [1.0, 5.0, 10.0, 50.0, 100.0], "Lyapunov V", 1.0,
        "throughput_mbit", "average throughput (Mbit/slot)"),
    5: ("v_weight", [1.0, 5.0, 10.0, 50.0, 100.0], "Lyapunov V", 1.0,
        "queue_mean_mbit", "time-average queue per DT (Mbit)"),
    6: ("unit_cost", [0.5, 1.0, 1.5, 2.0, 2.5], "unit energy cost c", 1.0,
        "leader_profit", "cloud profit per slot"),
    7: ("power_w", [8.0, 16.0, 24.0, 32.0, 40.0], "transmit power P (W)", 1.0,
        "interference_dbm", "mean interference on active links (dBm)"),
    8: ("bandwidth_hz", [10e6, 15e6, 20e6, 25e6, 30e6], "bandwidth B (MHz)", 1e-6,
        "throughput_mbit", "network throughput (Mbit/slot)"),
    9: ("price", [2.0, 4.0, 6.0, 8.0, 10.0], "price λ", 1.0,
        "leader_profit", "cloud profit per slot"),
    10: ("delta", [0.2, 0.4, 0.6, 0.8, 1.0], "model transmission factor δ", 1.0,
         "privacy_overhead_ms", "privacy overhead (ms)"),
    11: ("f_mbs_hz", [2e9, 3e9, 4e9, 5e9, 6e9], "MBS CPU f_MBS (GHz)", 1e-9,
         "privacy_overhead_ms", "privacy overhead (ms)"),
}

PAPER_CLAIMS = {
    4: ("throughput rises with V, and with the number of users", "up", "users_up"),
    5: ("time-average queue rises with V, and with the number of users", "up", "users_up"),
    6: ("profit falls as c rises; more users bring more profit", "down", "users_up"),
    7: ("proposed has the lowest interference (≈1 % below MAPPO at 32 W)", "up", None),
    8: ("throughput rises with B (proposed ≈1.3 % above MAPPO at 30 MHz)", "up", None),
    9: ("profit rises with price; at λ = 6 proposed beats MARTO/MAMCC/MAGCS/MAPPO "
         "by ≈55/45/15/6 %", "up", None),
    10: ("privacy overhead rises with δ (≈20.7 % below MARTO at δ = 0.8)", "up", None),
    11: ("privacy overhead falls as f_MBS rises; at 5e9 proposed is ≈67/55/41/20 % "
         "below MARTO/MAMCC/MAGCS/MAPPO", "down", None),
}


def _scale(name: str) -> dict:
    return SCALES[name]


def _axis(fig: int, scale: dict) -> list[float]:
    full = FIGURES[fig][1]
    idx = np.round(np.linspace(0, len(full) - 1, scale["points"])).astype(int)
    return [full[i] for i in idx]


def _policy(method: str, env):
    if method == "stackelberg":
        return heuristics.stackelberg(env, price_grid=jnp.linspace(0.0, 10.0, 6), rounds=1)
    return heuristics.make_policy(method, env)


def run_series(
    sizes: dict,
    method: str,
    field: str,
    values: list[float],
    *,
    horizon: int,
    seeds: int,
    seed: int,
    overrides: dict | None = None,
    price_mode: str = "leader",
) -> list[dict]:
    """Time-averaged metrics for every (axis value, seed), one compiled batch."""
    env, params = jaxsg.make("sgin", horizon=horizon, price_mode=price_mode, **sizes,
                             **(overrides or {}))
    policy = _policy(method, env)
    n = len(values) * seeds
    batch = jax.tree.map(lambda x: np.full((n,), x, np.float32), params)
    batch = batch.replace(**{field: np.repeat(np.asarray(values, np.float32), seeds)})
    env.validate_params(batch)  # every axis value checked before tracing
    seed_keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    keys = jnp.tile(seed_keys, (len(values), 1))

    def one(elem):
        traj = rollout(env, policy, elem["key"], elem["params"], horizon)
        return {k: v.mean() for k, v in traj["metrics"].items() if k in METRICS}

    out = run_batched(one, {"key": keys, "params": batch})
    records = []
    for i in range(n):
        rec = {"method": method, "axis": field, "value": float(values[i // seeds]),
               "seed": int(i % seeds), "users_per_mbs": int(sizes["users_per_mbs"]),
               "horizon": horizon}
        rec.update({k: float(out[k][i]) for k in METRICS})
        records.append(rec)
    return records


# ------------------------------------------------------------- experiments
def _cells_by_method(fig: int):
    def cells(scale_name: str) -> list[Cell]:
        return [Cell(m, {"figure": fig, "method": m}) for m in HEURISTIC_METHODS]

    return cells


def _cells_by_users(fig: int):
    def cells(scale_name: str) -> list[Cell]:
        users = _scale(scale_name)["users"]
        method = "stackelberg" if fig == 6 else "best_response"
        return [Cell(f"{method}-M{u}", {"figure": fig, "method": method, "users": u})
                for u in users]

    return cells


def _run_cell(fig: int):
    field = FIGURES[fig][0]

    def run_cell(cell: Cell, ctx: RunContext) -> list[dict]:
        scale = _scale(ctx.scale)
        sizes = dict(scale["sizes"])
        if "users" in cell.config:
            sizes["users_per_mbs"] = cell.config["users"]
        overrides = {}
        if fig == 5:  # fixed task size: the mean of the default arrival range
            overrides = {"arrival_min_bits": 6e6, "arrival_max_bits": 6e6}
        horizon = scale["horizon"] if fig != 6 else max(4, scale["horizon"] // 3)
        return run_series(
            sizes, cell.config["method"], field, _axis(fig, scale),
            horizon=horizon, seeds=scale["seeds"], seed=ctx.seed, overrides=overrides,
            price_mode="fixed" if fig == 9 else "leader",
        )

    return run_cell


def _summary(records: list[dict], metric: str, series_key: str) -> dict:
    """{series: (x values, mean over seeds, std over seeds)}."""
    out = {}
    for s in sorted({r[series_key] for r in records}, key=str):
        rows = [r for r in records if r[series_key] == s]
        xs = sorted({r["value"] for r in rows})
        ys = [[r[metric] for r in rows if r["value"] == x] for x in xs]
        out[s] = (np.array(xs), np.array([np.nanmean(y) for y in ys]),
                  np.array([np.nanstd(y) for y in ys]))
    return out


def _series_key(fig: int) -> str:
    return "users_per_mbs" if fig in (4, 5, 6) else "method"


def _plot(fig: int):
    field, _, xlabel, xscale, metric, ylabel = FIGURES[fig]

    def plot(records: list[dict], fig_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        key = _series_key(fig)
        figure, ax = plt.subplots(figsize=(5.2, 3.6))
        for s, (x, y, sd) in _summary(records, metric, key).items():
            label = f"M = {s}" if key == "users_per_mbs" else METHOD_LABELS.get(s, s)
            ax.errorbar(x * xscale, y, yerr=sd, marker="o", capsize=3, label=label)
        if field == "v_weight":
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"sgin Fig. {fig}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        figure.tight_layout()
        path = Path(fig_dir) / f"sgin_fig{fig}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        return [path]

    return plot


def _trend(y: np.ndarray) -> str:
    if len(y) < 2 or not np.all(np.isfinite(y)):
        return "n/a"
    rel = (y[-1] - y[0]) / max(abs(y[0]), 1e-9)
    if abs(rel) < 0.01:
        return "flat"
    return "up" if rel > 0 else "down"


def _report(fig: int):
    field, _, xlabel, xscale, metric, ylabel = FIGURES[fig]
    claim, direction, users_claim = PAPER_CLAIMS[fig]

    def report(records: list[dict]) -> str:
        key = _series_key(fig)
        summary = _summary(records, metric, key)
        lines = [f"**Paper:** {claim}.", "", f"| series | {xlabel}: " + " / ".join(
            f"{v * xscale:g}" for v in next(iter(summary.values()))[0]) + " | trend |",
            "|---|---|---|"]
        verdicts = []
        for s, (_, y, _) in summary.items():
            label = f"M = {s}" if key == "users_per_mbs" else METHOD_LABELS.get(s, s)
            t = _trend(y)
            verdicts.append(t == direction)
            lines.append(f"| {label} | " + " / ".join(f"{v:.4g}" for v in y) + f" | {t} |")
        lines.append("")
        ok = sum(verdicts)
        lines.append(f"**Ours ({ylabel}):** trend '{direction}' with {xlabel} reproduced by "
                     f"{ok}/{len(verdicts)} series.")
        if users_claim:
            means = {s: np.nanmean(y) for s, (_, y, _) in summary.items()}
            order = [means[s] for s in sorted(means)]
            rising = all(b >= a for a, b in zip(order, order[1:]))
            by_m = ", ".join(f"{s}: {means[s]:.4g}" for s in sorted(means))
            verdict = "reproduced" if rising else "not reproduced"
            lines.append(f"More users → larger value: {verdict} (means by M: {by_m}).")
        if key == "method":
            means = {s: np.nanmean(y) for s, (_, y, _) in summary.items()}
            best = (min if direction == "down" or metric in ("interference_dbm",
                                                            "privacy_overhead_ms") else max)
            winner = best(means, key=means.get)
            lines.append(f"Best method on average: {METHOD_LABELS.get(winner, winner)} "
                         "(learned methods join with the agents issue).")
        return "\n".join(lines)

    return report


TITLES = {
    4: "Fig. 4 — average throughput vs V (best response, M = 12/20/28)",
    5: "Fig. 5 — time-average queue vs V, fixed task size (best response)",
    6: "Fig. 6 — cloud profit vs unit energy cost c (Stackelberg reference)",
    7: "Fig. 7 — interference vs transmit power P",
    8: "Fig. 8 — throughput vs bandwidth B",
    9: "Fig. 9 — cloud profit vs price λ (fixed posted price)",
    10: "Fig. 10 — privacy overhead vs δ",
    11: "Fig. 11 — privacy overhead vs f_MBS",
}

for _fig in FIGURES:
    register_experiment(
        Experiment(
            name=f"sgin_fig{_fig}",
            scenario="sgin",
            title=TITLES[_fig],
            cells=_cells_by_users(_fig) if _fig in (4, 5, 6) else _cells_by_method(_fig),
            run_cell=_run_cell(_fig),
            plot=_plot(_fig),
            report=_report(_fig),
        )
    )
