"""Paper figures of the ``spectrum`` scenario (Shen et al., arXiv 2407.00814, Figs. 7-10)
plus a security study beyond the paper.

Cells are series; inside a cell the numeric axis (velocity, visibility,
malicious fraction) × seeds is one batch through ``sweeps.sharding.run_batched``
(training vmapped), with common random numbers (seed s has the same key at
every axis value). Shape axes (satellites, users) are cells.

* ``spectrum_fig7`` — proposed (DDQN + reputation FL) and DDQN alone, S ∈ {10, 20, 30}
  (smaller at smoke): average reward, price and revenue per iteration, the min–max band
  over the satellites (as the paper draws it, seed-averaged) plus the 95 % CI over seeds of
  the mean; and the federated-learning effect measured: proposed − DDQN alone, paired over
  the training seeds (same keys), of the convergence iteration, the final revenue and the
  min–max spread over satellites at every S. (Round 1 saw the S = 30 batch freeze the jaxlib
  CPU runtime inside ``python -m sweeps.grid``; round 3 ran it at the default scale without a
  hang. The figure stays off the default set for its cost.)
* ``spectrum_fig8`` — every method at the relative velocities 3 / 5.25 / 7.5 km/s: price
  and revenue (the fair baselines are searched once at the default velocity and held).
* ``spectrum_fig9`` — revenue (last tenth of training) vs users, 3 visibilities
  × 3 velocities, with the myopic optimum beside it.
* ``spectrum_fig10`` — proposed vs DDQN alone vs average-budget pricing (the paper's: P_ctrl
  held at its initial level) vs **average-budget pricing with the same power freedom**
  (``average_budget_fair``: the best fixed power level) vs the **best constant (price,
  power) pair** (``best_constant``): revenue, price and power level per iteration, and every
  method's gap 1 − revenue / bound to **one** bound, ``info["myopic_optimal_revenue"]`` (the
  exact best single posted price for each step's budgets, maximised over the power-control
  levels), so the gaps are comparable across methods. The searches of the two fair
  references run on their own keys (``SEARCH_SEED``), not the evaluation keys.
* ``spectrum_security`` (beyond) — malicious fraction 0 … 0.5: revenue,
  interference and the honest users' realised utility under the myopic
  oracle with and without the reputation term steering (price, power
  control) (reward U' + w·ΔR, w = 0 vs ``STEER_WEIGHT``); the share of the revenue
  paid by malicious users (they bid on their boosted SINR, so they can raise revenue while
  hurting the honest users); and the share of
  blocks won when satellite 0 colludes with its malicious users (they are
  booked as normal, so its ledger gains β·n_all every step), replayed from
  the same episodes' per-satellite leases and online flags.

Why no spectrum figure is a :class:`sweeps.figures.Figure` table entry: Figs. 7, 8 and 10
are curves over training iterations (the learners' own training runs, and the references'
evaluation runs binned the same way), Fig. 9 is one learner's last-tenth training revenue
over a shape axis (users) with two series dimensions (visibility × velocity), and the
security study is bespoke. Every evaluation still goes through the one path: the
references and the learners' greedy evaluation are :func:`sweeps.figures.evaluate`
(``jaxsg.wrappers.rollout`` and ``sweeps.sharding.run_axis``, with the references'
evaluation keys for every method). ``--set`` overrides arrive in ``ctx.overrides``: the env
ones join the cell's sizes, the ``ddqn.*`` ones its learner config (``ctx.learner_config``).

Default set: Fig. 10 and the security study; Figs. 7, 8 and 9 (one compilation per shape
cell) are ``default=False``: run them with ``--experiment``. Learners train on
``max(registry seeds, MIN_SEEDS[scale])`` seeds (≥ 5 at default and paper scale). An
"iteration" is one training update (one env step of every parallel episode). Decisions: learning
curves are reported in bins of ``num_updates / bins`` updates; every report
line compares last-tenth means.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

import jaxsg
from agents import core, ddqn
from agents.ddqn import Config as DDQNConfig
from jaxsg.wrappers import rollout
from sweeps import methods, report, stats
from sweeps.experiments import Cell, Experiment, RunContext
from sweeps.figures import Learned, Setup, evaluate
from sweeps.sharding import run_batched

#: Weight of ΔR in the steered oracle's objective, revenue units per reputation point: with
#: β = 0.1 one malicious lease costs 20 (the price is ≈ 3), enough to move (price, P_ctrl).
STEER_WEIGHT = 200.0
VELOCITIES = (3000.0, 5250.0, 7500.0)
VISIBILITIES = (0.9, 0.7, 0.5)
MALICIOUS = (0.0, 0.1, 0.2, 0.3, 0.5)

SCALES = {
    "smoke": dict(updates=40, envs=1, seeds=2, eval_seeds=2, bins=4, sats=(2, 3, 4),
                  users=(10, 20), u=20, s=3, horizon=20, sec_steps=20),
    "default": dict(updates=1500, envs=2, seeds=3, eval_seeds=5, bins=30, sats=(10, 20, 30),
                    users=(40, 100), u=60, s=6, horizon=50, sec_steps=60),
    "paper": dict(updates=3000, envs=4, seeds=5, eval_seeds=8, bins=60, sats=(10, 20, 30),
                  users=(40, 70, 100), u=100, s=10, horizon=100, sec_steps=200),
}

#: Training seeds of the spectrum figures at least this many (issue 18: CIs over ≥ 5 seeds).
MIN_SEEDS = {"smoke": 2, "default": 5, "paper": 5}
#: Methods compared in Figs. 8 and 10 (the oracle policy joins Fig. 10 at paper scale).
LEARNERS = ("proposed", "ddqn")
FAIR = ("average_budget_fair", "best_constant")
#: The fair references' searches (best power level / best pair) use these keys, not the
#: evaluation keys: 16 episodes of the scale's horizon.
SEARCH_SEED, SEARCH_EPISODES = 10_000, 16

PAPER = {
    7: "more FL agents → smaller min–max spread over agents",
    8: "higher velocity → lower price and revenue",
    9: "lower visibility → lower revenue (and revenue rises with users)",
    10: "proposed converges in ~150 iterations, faster and with less variance than DDQN; "
        "average-budget pricing is far lower",
}


def _sizes(scale, **over):
    base = dict(num_satellites=scale["s"], users_per_satellite=scale["u"],
                horizon=scale["horizon"])
    base.update(over)
    return base


def _config(scale, federated=True):
    return DDQNConfig(num_envs=scale["envs"], num_updates=scale["updates"],
                      federated=federated, local_round=10, aggregation_rounds=2,
                      warmup_updates=min(32, scale["updates"] // 4), hidden=(32, 32),
                      gamma=0.5)


def _batch(env, params, field, values, seeds, seed):
    n = len(values) * seeds
    batch = jax.tree.map(lambda x: np.full((n,), x, np.float32), params)
    if field is not None:
        batch = batch.replace(**{field: np.repeat(np.asarray(values, np.float32), seeds)})
    env.validate_params(batch)
    keys = np.tile(np.asarray(jax.random.split(jax.random.PRNGKey(seed), seeds)),
                   (len(values), 1))
    return {"key": keys, "params": batch}


def _bin(x, bins):
    """(T, ...) → (bins, ...) means of consecutive blocks."""
    t = x.shape[0] - x.shape[0] % bins
    return x[:t].reshape((bins, t // bins) + x.shape[1:]).mean(1)


_TRAIN_CACHE: dict = {}


def _train_fn(sizes, cfg, bins):
    # sizes and cfg carry the cell's --set overrides (run_cell applies them)
    key = (tuple(sorted(sizes.items())), cfg, bins)
    if key not in _TRAIN_CACHE:
        env, _ = jaxsg.make("spectrum", **sizes)
        train = ddqn.make_train(env, cfg)

        def one(elem):
            q, m = train(elem["key"], elem["params"])
            return {
                "q": q,
                "revenue": _bin(m["revenue"], bins),  # (bins, S)
                "price": _bin(m["price"], bins),
                "reward": _bin(m["reward"], bins),
                "revenue_total": _bin(m["revenue_total"], bins),
                "optimum": _bin(m["myopic_optimal_revenue"], bins),
                "power": _bin(m["power_ctrl_mean_w"], bins),
            }

        _TRAIN_CACHE[key] = (env, one)
    return _TRAIN_CACHE[key]


def trained_batch(sizes, cfg, params, field, values, scale, seed, method):
    """The trained networks and binned training curves of every (axis value, seed) of one
    batch, through :func:`sweeps.methods.train_or_load` (saved per cell; loaded instead of
    trained under ``--eval-only``). The identity is everything the output depends on."""
    env, one = _train_fn(sizes, cfg, scale["bins"])
    batch = _batch(env, params, field, values, scale["seeds"], seed)
    identity = {"config": core.config_json(cfg), "sizes": sizes, "field": field,
                "values": [float(v) for v in values], "seeds": scale["seeds"], "seed": seed,
                "bins": scale["bins"],
                "params": {f.name: np.asarray(getattr(params, f.name)).tolist()
                           for f in dataclasses.fields(params)}}
    return methods.train_or_load("spectrum", method, identity,
                                 lambda: run_batched(one, batch))


def _records(out, rows, values, field, env, method, series, phase, per, keys):
    """One record per (row = (axis point, seed), bin) of the binned curves ``out[k]`` for
    ``k`` in ``keys`` (column order): a per-satellite curve gives ``<k>_mean/_min/_max``, a
    scalar one ``<k>_mean`` (the totals keep their names: ``revenue_total``,
    ``optimum_total``)."""
    records = []
    for i, (p, seed) in enumerate(rows):
        for b in range(out["revenue"].shape[1]):
            rec = {"scenario": "spectrum", "method": method, "series": series, "phase": phase,
                   "axis": field or "none", "axis_value": float(values[p]) if field else 0.0,
                   "seed": int(seed), "episode": 0, "iteration": int((b + 1) * per),
                   "satellites": env.num_satellites, "users": env.users_per_satellite}
            for k in keys:
                v = out[k][i, b]
                if np.ndim(v):
                    rec.update({f"{k}_mean": float(v.mean()), f"{k}_min": float(v.min()),
                                f"{k}_max": float(v.max())})
                else:
                    name = {"revenue_total": k, "optimum": "optimum_total"}.get(k, f"{k}_mean")
                    rec[name] = float(v)
            records.append(rec)
    return records


def train_series(sizes, cfg, field, values, scale, ctx, label, method="proposed",
                 greedy=False):
    """Training curves of every (axis value, seed); ``greedy`` (no axis) adds the greedy
    evaluation of the trained networks (:func:`eval_series`)."""
    env, _ = _train_fn(sizes, cfg, scale["bins"])
    out = trained_batch(sizes, cfg, env.default_params, field, values, scale, ctx.seed, method)
    records = eval_series(sizes, scale, ctx, method, q=out["q"], cfg=cfg) if greedy else []
    rows = [(i // scale["seeds"], i % scale["seeds"]) for i in range(len(values) * scale["seeds"])]
    return records + _records(out, rows, values, field, env, method, label, "train",
                              cfg.num_updates // scale["bins"],
                              ("revenue", "price", "reward", "revenue_total", "optimum", "power"))


def eval_series(sizes, scale, ctx, method, field=None, values=(0.0,), q=None, cfg=None):
    """``method`` rolled out for ``scale["updates"]`` steps on every (axis value, evaluation
    seed) through the one evaluation path (:func:`sweeps.figures.evaluate`), binned like the
    training curves. A learner (``q``: its trained Q networks, leading seed axis) is
    evaluated greedily, training seed s on evaluation seed s (the references' episodes).
    The fair references search their power level (pair) on ``SEARCH_EPISODES`` keys of
    ``SEARCH_SEED + seed`` over the scale's horizon."""
    env, params = jaxsg.make("spectrum", **sizes)
    bins, sats = scale["bins"], env.num_satellites

    def summarize(traj):
        m = traj["metrics"]
        return {"revenue": _bin(m["revenue_total"] / sats, bins),
                "price": _bin(m["price_mean"], bins), "power": _bin(m["power_ctrl_mean_w"], bins),
                "revenue_total": _bin(m["revenue_total"], bins),
                "optimum": _bin(m["myopic_optimal_revenue"], bins)}

    keys = jax.random.split(jax.random.PRNGKey(SEARCH_SEED + ctx.seed), SEARCH_EPISODES)
    search = dict(params=params, keys=keys, horizon=scale["horizon"])
    points = [{field: v} for v in values] if field else [{}]
    setup = Setup(env, params, scale["updates"], scale["eval_seeds"], 1, points, list(values),
                  summarize, policy_kwargs={m: search for m in FAIR})
    learned = None if q is None else Learned(lambda *_: q, lambda *_: cfg)
    out, index = evaluate("spectrum", method, setup, ctx, learned)
    greedy = q is not None
    return _records(out, [(p, s) for p, s, _ in index], values, field, env, method,
                    f"{method} (greedy)" if greedy else method, "greedy" if greedy else "eval",
                    scale["updates"] // bins, ("revenue", "price", "power", "revenue_total",
                                               "optimum"))


# ------------------------------------------------------------------ cells
def _cells(fig):
    def cells(scale_name):
        sc = SCALES[scale_name]
        if fig == 7:
            return [Cell(f"{m}-S{s}", {"method": m, "satellites": s})
                    for m in LEARNERS for s in sc["sats"]]
        if fig == 8:
            return [Cell(m, {"method": m}) for m in LEARNERS + FAIR]
        if fig == 9:
            return [Cell(f"U{u}-vis{v:g}", {"users": u, "visibility": v})
                    for u in sc["users"] for v in VISIBILITIES]
        if fig == 10:
            names = LEARNERS + ("average_budget",) + FAIR
            if scale_name == "paper":  # the oracle policy itself; its bound is in every cell
                names += ("myopic_optimal",)
            return [Cell(m, {"method": m}) for m in names]
        return [Cell("malicious-steering", {"weights": [0.0, STEER_WEIGHT]})]

    return cells


def _run(fig):
    def run_cell(cell: Cell, ctx: RunContext) -> list[dict]:
        # training seeds from the methods registry (the same for both learners)
        sc = dict(SCALES[ctx.scale], seeds=max(
            methods.train_seeds("spectrum", "proposed", ctx.scale), MIN_SEEDS[ctx.scale]))
        c, m = cell.config, cell.config.get("method", "proposed")
        env_set = methods.split_overrides(ctx.overrides)[0].get("spectrum", {})

        def sizes(**over):  # the scale's env sizes, then the cell's --set overrides
            return {**_sizes(sc, **over), **env_set}

        cfg = ctx.learner_config(_config(sc, federated=(m == "proposed")))
        if fig == 7:
            return train_series(sizes(num_satellites=c["satellites"]), cfg, None, [0.0], sc,
                                ctx, f"{m} S={c['satellites']}", method=m)
        if fig == 8:
            if m in LEARNERS:
                return train_series(sizes(), cfg, "velocity_mps", list(VELOCITIES), sc,
                                    ctx, m, method=m)
            return eval_series(sizes(), sc, ctx, m, "velocity_mps", list(VELOCITIES))
        if fig == 9:
            users = sizes(users_per_satellite=c["users"])
            env, _ = _train_fn(users, cfg, sc["bins"])
            params = env.default_params.replace(visibility=c["visibility"])
            out = trained_batch(users, cfg, params, "velocity_mps", list(VELOCITIES),
                                sc, ctx.seed, "proposed")
            tail = max(sc["bins"] // 10, 1)
            return [{"users": c["users"], "visibility": c["visibility"],
                     "velocity": VELOCITIES[i // sc["seeds"]], "seed": i % sc["seeds"],
                     "revenue_mean": float(out["revenue"][i, -tail:].mean()),
                     "optimum_mean": float(out["optimum"][i, -tail:].mean()
                                           / env.num_satellites)}
                    for i in range(len(VELOCITIES) * sc["seeds"])]
        if fig == 10:
            if m in LEARNERS:
                return train_series(sizes(), cfg, None, [0.0], sc, ctx,
                                    f"{m} (training)", method=m, greedy=True)
            return eval_series(sizes(), sc, ctx, m)
        return security_cell(dict(sc, seeds=sc["eval_seeds"]), ctx.seed, c["weights"], sizes())

    return run_cell


def security_cell(sc, seed, weights, sizes):
    """(reputation weight × malicious fraction × seed) as one batch: the oracle reads the
    weight from ``params.reputation_weight``, so both arms share one compilation."""
    env, params = jaxsg.make("spectrum", **sizes)
    policy = methods.policy("spectrum", "myopic_optimal", env)
    steps = sc["sec_steps"]
    per_sat = ("leases", "malicious_leases_sat", "online", "price")

    def one(elem):
        traj = rollout(env, policy, elem["key"], elem["params"], steps, info_keys=per_sat)
        return {**traj["metrics"], **traj["info"]}

    batch = _batch(env, params, "malicious_fraction", list(MALICIOUS) * len(weights),
                   sc["seeds"], seed)
    n = len(MALICIOUS) * sc["seeds"]
    w_axis = np.repeat(np.asarray(weights, np.float32), n)
    batch["params"] = batch["params"].replace(reputation_weight=w_axis)
    env.validate_params(batch["params"])
    out = run_batched(one, batch)
    records = []
    beta = float(params.reputation_coeff)
    for i in range(n * len(weights)):
        honest_share, collude_share = _block_shares(out, i, beta)
        paid = np.asarray(out["price"][i]) * np.asarray(out["malicious_leases_sat"][i])
        revenue = float(np.sum(out["revenue_total"][i]))
        records.append({
            "weight": float(weights[i // n]),
            "malicious_fraction": MALICIOUS[(i % n) // sc["seeds"]],
            "seed": i % sc["seeds"],
            "revenue_total": float(out["revenue_total"][i].mean()),
            "malicious_revenue": float(paid.sum(-1).mean()),
            "honest_revenue": float(out["revenue_total"][i].mean() - paid.sum(-1).mean()),
            "malicious_revenue_share": float(paid.sum() / revenue) if revenue > 0 else np.nan,
            "interference_dbm": float(out["interference_dbm"][i].mean()),
            "honest_utility": float(out["honest_utility_mean"][i].mean()),
            "malicious_leases": float(out["malicious_leases"][i].mean()),
            "power_ctrl_w": float(out["power_ctrl_mean_w"][i].mean()),
            "sat0_block_share_honest": honest_share,
            "sat0_block_share_colluding": collude_share,
        })
    return records


def _block_shares(out, i, beta, period=10):
    """Share of blocks won by satellite 0 (honest ledger vs colluding ledger), elections
    every ``period`` steps with the episodes' online flags (winner's reputation reset)."""
    from jaxsg.consensus import reputation_update, select_aggregator

    leases = np.asarray(out["leases"][i])  # (T, S)
    mal = np.asarray(out["malicious_leases_sat"][i])
    online = np.asarray(out["online"][i])
    shares = []
    for collude in (False, True):
        rep = np.zeros(leases.shape[1], np.float32)
        wins = total = 0
        for t in range(leases.shape[0]):
            n_mal = mal[t].copy()
            if collude:
                n_mal[0] = 0.0  # satellite 0 books its malicious users as normal
            rep = np.array(reputation_update(rep, leases[t] - n_mal, n_mal, beta))
            if (t + 1) % period == 0:
                a = int(select_aggregator(rep, online[t]))
                if a >= 0:
                    total += 1
                    wins += a == 0
                    rep[a] = 0.0
        shares.append(wins / max(total, 1))
    return shares[0], shares[1]


# ------------------------------------------------------------------ plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curves(records, key="series"):
    out = {}
    for s in sorted({r[key] for r in records}, key=str):
        rows = [r for r in records if r[key] == s]
        its = sorted({r["iteration"] for r in rows})
        agg = {}
        for field in ("revenue", "price", "reward", "power"):
            for stat in ("mean", "min", "max"):
                name = f"{field}_{stat}"
                if all(name in r for r in rows):  # learners carry min/max, references not
                    agg[name] = np.array([np.mean([r[name] for r in rows
                                                   if r["iteration"] == it]) for it in its])
        for field in ("revenue", "price", "reward"):
            if all(f"{field}_mean" in r for r in rows):  # 95 % CI over seeds of the mean
                est = [stats.estimate(rows, f"{field}_mean", iteration=it) for it in its]
                agg[f"{field}_ci"] = np.array([(e.low, e.high) if e.defined else
                                               (np.nan, np.nan) for e in est]).T
        agg["optimum"] = np.array([np.mean([r["optimum_total"] / r["satellites"] for r in rows
                                            if r["iteration"] == it]) for it in its])
        out[s] = (np.array(its), agg)
    return out


def _plot_curves(name, fields, key="series"):
    def plot(records, fig_dir: Path):
        plt = _plt()
        curves = _curves(records, key)
        fig, axes = plt.subplots(1, len(fields), figsize=(4.2 * len(fields), 3.4))
        axes = np.atleast_1d(axes)
        for ax, field in zip(axes, fields):
            for s, (it, agg) in curves.items():
                if f"{field}_mean" not in agg:
                    continue
                line, = ax.plot(it, agg[f"{field}_mean"], label=str(s))
                if f"{field}_min" in agg:
                    ax.fill_between(it, agg[f"{field}_min"], agg[f"{field}_max"], alpha=0.12,
                                    color=line.get_color(), lw=0)
                if f"{field}_ci" in agg:
                    ax.fill_between(it, *agg[f"{field}_ci"], alpha=0.35,
                                    color=line.get_color(), lw=0)
            ax.set_xlabel("iteration")
            ax.set_ylabel(f"{field} per satellite")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"{name}: per-satellite mean over seeds (light band: min–max over "
                     "satellites, seed-averaged; dark band: 95 % CI over seeds)", fontsize=9)
        fig.tight_layout()
        return report.save_figure(fig, fig_dir, name)

    return plot


def _plot_fig8(records, fig_dir):
    """One curve per (method, velocity): colour = method, line style = velocity; the band is
    the 95 % CI over seeds (learners: training curves; references: their evaluation runs)."""
    plt = _plt()
    recs = [dict(r, series=(r["method"], r["axis_value"])) for r in records]
    curves = _curves(recs)
    methods_ = sorted({m for m, _ in curves})
    colours = {m: f"C{i}" for i, m in enumerate(methods_)}
    styles = dict(zip(sorted({v for _, v in curves}), ("-", "--", ":")))
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for ax, field in zip(axes, ("price", "revenue")):
        for (m, v), (it, agg) in curves.items():
            ax.plot(it, agg[f"{field}_mean"], color=colours[m], ls=styles.get(v, "-"),
                    label=f"{m}, {v / 1e3:g} km/s")
            if f"{field}_ci" in agg:
                ax.fill_between(it, *agg[f"{field}_ci"], color=colours[m], alpha=0.12, lw=0)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{field} per satellite")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2)
    fig.suptitle("spectrum Fig. 8: price and revenue per satellite at 3 relative velocities "
                 "(mean over seeds, band: 95 % CI)", fontsize=9)
    fig.tight_layout()
    return report.save_figure(fig, fig_dir, "spectrum_fig8")


def _plot_fig9(records, fig_dir):
    recs = [dict(r, series=f"visibility {r['visibility']:g}, {r['velocity'] / 1e3:g} km/s")
            for r in sorted(records, key=lambda r: (-r["visibility"], r["velocity"]))]
    return report.line_figure(
        "spectrum_fig9", report.series_estimates(recs, "revenue_mean", series_key="series",
                                                 x_key="users"),
        title="spectrum Fig. 9: last-tenth training revenue per satellite vs users",
        xlabel="users per satellite (1)", ylabel="revenue per satellite and step (price units)",
        fig_dir=fig_dir)


def _plot_security(records, fig_dir):
    recs = [dict(r, series=f"reputation weight {r['weight']:g}") for r in records]
    fig, axes = _plt().subplots(1, 3, figsize=(12, 3.4))
    for ax, k in zip(axes, ("revenue_total", "interference_dbm", "honest_utility")):
        report.band_plot(ax, report.series_estimates(recs, k, series_key="series",
                                                     x_key="malicious_fraction"))
        ax.set(xlabel="malicious fraction (1)", ylabel=k)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, title=report.BAND_NOTE, title_fontsize=6)
    fig.suptitle("spectrum security: myopic oracle vs malicious fraction", fontsize=9)
    fig.tight_layout()
    return report.save_figure(fig, fig_dir, "spectrum_security")


# ----------------------------------------------------------------- reports
def _tail_rows(records: list[dict]) -> list[dict]:
    """One row per (series, axis value, seed): last-tenth means of the binned curves,
    the min–max spread over satellites, the iteration at which the seed's revenue first
    reaches 90 % of its last-tenth value, and the revenue std over the second half."""
    groups: dict = {}
    for r in records:
        groups.setdefault((r["series"], r["axis_value"], r["seed"]), []).append(r)
    out = []
    for (series, x, seed), rows in groups.items():
        rows = sorted(rows, key=lambda r: r["iteration"])
        n = max(len(rows) // 10, 1)
        rev = np.array([r["revenue_mean"] for r in rows])
        tail = float(rev[-n:].mean())
        reach = np.nonzero(rev >= 0.9 * tail)[0]
        row = {"series": series, "method": rows[0]["method"], "axis_value": x, "seed": seed,
               "phase": rows[0].get("phase", "train"),
               "satellites": rows[0]["satellites"], "revenue": tail,
               "optimum": float(np.mean([r["optimum_total"] / r["satellites"]
                                         for r in rows[-n:]])),
               "converged_at": float(rows[reach[0]]["iteration"]) if len(reach) else np.nan,
               "std_second_half": float(np.std(rev[len(rev) // 2:]))}
        row["gap"] = 1.0 - row["revenue"] / row["optimum"] if row["optimum"] > 0 else np.nan
        for k in ("price_mean", "reward_mean", "power_mean"):
            if k in rows[0]:
                row[k.removesuffix("_mean")] = float(np.mean([r[k] for r in rows[-n:]]))
        if "revenue_min" in rows[0]:
            row["spread"] = float(np.mean([r["revenue_max"] - r["revenue_min"]
                                           for r in rows[-n:]]))
        out.append(row)
    return out


def _table(rows, metric, x_key=None, x_label=""):
    return report.ci_table(rows, metric, series_key="series", x_key=x_key, x_label=x_label)


def _report_fig7(records):
    rows = _tail_rows(records)
    lines = ["Last tenth of training, per satellite; mean ± 95 % CI over training seeds.", ""]
    for key, text in (("revenue", "revenue"), ("spread", "min–max spread over satellites"),
                      ("converged_at", "iteration reaching 90 % of the final revenue"),
                      ("price", "price"), ("power", "power-control level (W)")):
        lines += [f"**{text}**", "", _table(rows, key), ""]
    lines += ["**Federated-learning effect** (proposed − DDQN alone, paired over training "
              "seeds with the same keys; reported whatever it shows)", "",
              "| satellites | Δ converged_at | Δ revenue | Δ spread |", "|---|---|---|---|"]
    for s in sorted({r["satellites"] for r in rows}):
        cells = [_fl_effect(rows, s, k).fmt() for k in ("converged_at", "revenue", "spread")]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fl_effect(rows, satellites, metric):
    """Paired (over training seeds) proposed − DDQN alone of ``metric`` at ``satellites``."""
    a = stats.per_seed(stats.select(rows, method="proposed", satellites=satellites), metric)
    b = stats.per_seed(stats.select(rows, method="ddqn", satellites=satellites), metric)
    return stats.paired_difference(a, b)


def _claims_fig7(records):
    rows = [r for r in _tail_rows(records) if r["method"] == "proposed"]
    if not rows:
        return [report.Claim("spectrum", "Fig. 7", "more FL agents → smaller min–max spread",
                             stats.not_run(["proposed"]))]
    order = sorted({r["satellites"] for r in rows})
    groups = {f"S = {s}": [r for r in rows if r["satellites"] == s] for s in order}
    return [report.Claim("spectrum", "Fig. 7", "more FL agents → smaller min–max spread",
                         stats.monotone_verdict(groups, "spread", "down"))]


def _report_fig8(records):
    rows = _tail_rows(records)
    lines = ["Last tenth of training (learners) or of the evaluation run (references), per "
             "satellite; mean ± 95 % CI over seeds; columns: relative velocity (m/s).", ""]
    for key in ("revenue", "price", "power", "gap", "optimum"):
        lines += [f"**{key}**", "", report.ci_table(rows, key, series_key="series",
                                                    x_key="axis_value", x_label="velocity"), ""]
    return "\n".join(lines)


def _claims_fig8(records):
    rows = _tail_rows(records)
    return [report.Claim("spectrum", "Fig. 8", f"higher velocity → lower {k}",
                         stats.trend_verdict(rows, k, "down", method="proposed"))
            for k in ("price", "revenue")]


def _report_fig9(records):
    rows = [dict(r, series=f"visibility {r['visibility']:g}, U = {r['users']}")
            for r in records]
    by_v = [dict(r, series=f"visibility {r['visibility']:g}, v = {r['velocity'] / 1e3:g} km/s")
            for r in records]
    return ("Last tenth of training, per satellite, pooled over the velocities; mean ± 95 % "
            "CI over training seeds.\n\n**revenue**\n\n" + _table(rows, "revenue_mean")
            + "\n\n**myopic optimum**\n\n" + _table(rows, "optimum_mean")
            + "\n\n**revenue per (visibility, velocity)**; columns: users per satellite\n\n"
            + _table(by_v, "revenue_mean", x_key="users", x_label="users"))


def _claims_fig9(records):
    rows = [dict(r, method=f"vis{r['visibility']:g}") for r in records]
    u_max, u_min = max(r["users"] for r in rows), min(r["users"] for r in rows)
    vis = sorted({r["visibility"] for r in rows}, reverse=True)
    groups = {f"visibility {v:g}": [r for r in rows if r["visibility"] == v
                                    and r["users"] == u_max] for v in vis}
    lower = stats.monotone_verdict(groups, "revenue_mean", "down")
    ups = [stats.monotone_verdict({f"U = {u}": [r for r in rows if r["visibility"] == v
                                                and r["users"] == u] for u in (u_min, u_max)},
                                  "revenue_mean", "up") for v in vis]
    ok = all(v.label == stats.REPRODUCED for v in ups)
    rises = stats.Verdict(stats.REPRODUCED if ok else stats.NOT_REPRODUCED,
                          "; ".join(f"visibility {v:g}: {u.evidence}" for v, u in zip(vis, ups)))
    return [report.Claim("spectrum", "Fig. 9", f"lower visibility → lower revenue "
                         f"(U = {u_max})", lower),
            report.Claim("spectrum", "Fig. 9", "revenue rises with the number of users", rises)]


def _report_fig10(records):
    rows = _tail_rows(records)
    lines = ["Per satellite, last tenth; mean ± 95 % CI over seeds. Learners: their "
             "ε-greedy training curves (`(training)`) and the greedy evaluation of the "
             "trained networks (`(greedy)`, one per training seed) on the references' "
             "evaluation keys (seed s: the same episodes for every method). **gap** = 1 − "
             "revenue / bound with one bound for every method: the myopic optimum maximised "
             "over the power-control levels. Verdicts on revenue compare the greedy "
             "evaluations with the references, paired by seed.", ""]
    for key, text in (("revenue", "last-tenth revenue"), ("price", "price"),
                      ("power", "power-control level (W)"), ("gap", "gap to the bound"),
                      ("optimum", "bound (myopic optimum over power levels)"),
                      ("converged_at", "iteration reaching 90 % of the final revenue"),
                      ("std_second_half", "revenue std over the second half")):
        lines += [f"**{text}**", "", _table(rows, key), ""]
    return "\n".join(lines)


def _claims_fig10(records):
    rows = _tail_rows(records)
    conv = stats.mean_ci([r["converged_at"] for r in rows
                          if r["method"] == "proposed" and r["phase"] == "train"])
    if conv.n_total == 0:
        converge = stats.not_run(["proposed"])
    else:
        ok = conv.defined and conv.high <= 200
        converge = stats.Verdict(stats.REPRODUCED if ok else stats.NOT_REPRODUCED,
                                 f"proposed reaches 90 % at iteration {conv.fmt()}; "
                                 "criterion: CI upper end ≤ 200")
    evals = [r for r in rows if r["phase"] != "train"]  # greedy learners and references
    train = [r for r in rows if r["phase"] == "train"]
    beats = lambda other: stats.beats_verdict(evals, "revenue", "proposed", other,  # noqa: E731
                                               higher_is_better=True)
    return [
        report.Claim("spectrum", "Fig. 10", "proposed earns far more than average-budget "
                     "pricing", beats("average_budget")),
        report.Claim("spectrum", "Fig. 10", "(fair) proposed earns more than average-budget "
                     "pricing with the same power freedom", beats("average_budget_fair")),
        report.Claim("spectrum", "Fig. 10", "(protocol) proposed earns more than the best "
                     "constant (price, power) pair", beats("best_constant")),
        report.Claim("spectrum", "Fig. 10", "(protocol) DDQN alone earns more than the best "
                     "constant (price, power) pair",
                     stats.beats_verdict(evals, "revenue", "ddqn", "best_constant",
                                         higher_is_better=True)),
        report.Claim("spectrum", "Fig. 10", "proposed converges in ~150 iterations", converge,
                     "~150 iterations"),
        report.Claim("spectrum", "Fig. 10", "proposed converges faster than DDQN alone",
                     stats.beats_verdict(train, "converged_at", "proposed", "ddqn",
                                         higher_is_better=False)),
        report.Claim("spectrum", "Fig. 10", "proposed has less variance than DDQN alone",
                     stats.beats_verdict(train, "std_second_half", "proposed", "ddqn",
                                         higher_is_better=False)),
    ]


SECURITY_COLUMNS = ("revenue_total", "malicious_revenue", "honest_revenue",
                    "malicious_revenue_share", "interference_dbm", "honest_utility",
                    "malicious_leases", "power_ctrl_w", "sat0_block_share_honest",
                    "sat0_block_share_colluding")


def _report_security(records):
    recs = [dict(r, series=f"w = {r['weight']:g}") for r in records]
    lines = ["**Beyond the paper:** malicious users, with and without the reputation term "
             f"(w = {STEER_WEIGHT:g}) steering the myopic oracle's price and power control; "
             "mean ± 95 % CI over evaluation seeds.", ""]
    lines += [_security_artefact(records), ""]
    for key in SECURITY_COLUMNS:
        lines += [f"**{key}**", "", report.ci_table(recs, key, series_key="series",
                                                    x_key="malicious_fraction",
                                                    x_label="malicious fraction"), ""]
    return "\n".join(lines)


def _security_artefact(records) -> str:
    """Why revenue can rise with the malicious fraction at w = 0, in this run's numbers:
    the paired change of revenue, of the part malicious users pay and of the honest part."""
    rows = stats.select(records, weight=0.0)
    xs = sorted({r["malicious_fraction"] for r in rows})
    if len(xs) < 2:
        return "(one malicious fraction only: no change to explain)"
    lo, hi = xs[0], xs[-1]

    def change(key):
        a = stats.per_seed(stats.select(rows, malicious_fraction=hi), key)
        b = stats.per_seed(stats.select(rows, malicious_fraction=lo), key)
        return stats.paired_difference(a, b).fmt()

    share = stats.estimate(rows, "malicious_revenue_share", malicious_fraction=hi).fmt()
    return (f"Malicious users bid on their boosted SINR (they anticipate their +"
            f"{'{:g}'.format(jaxsg.make('spectrum')[1].malicious_boost_db)} dB power), so "
            f"at w = 0 from malicious fraction {lo:g} to {hi:g} the revenue per step changes "
            f"by {change('revenue_total')}, of which the part paid by malicious users by "
            f"{change('malicious_revenue')} and the honest part by {change('honest_revenue')}"
            f" (paired over seeds); at {hi:g} malicious users pay a share {share} of the "
            "revenue.")


TITLES = {
    7: "Fig. 7 — reward, price, revenue vs iteration for 10/20/30 FL agents",
    8: "Fig. 8 — price and revenue vs iteration at three relative velocities",
    9: "Fig. 9 — revenue vs number of users, 3 visibilities × 3 velocities",
    10: "Fig. 10 — proposed vs average-budget vs DDQN (and the myopic optimum)",
}
PLOTS = {7: _plot_curves("spectrum_fig7", ("reward", "price", "revenue")), 8: _plot_fig8,
         9: _plot_fig9, 10: _plot_curves("spectrum_fig10", ("price", "power", "revenue"))}
REPORTS = {7: _report_fig7, 8: _report_fig8, 9: _report_fig9, 10: _report_fig10}
CLAIMS = {7: _claims_fig7, 8: _claims_fig8, 9: _claims_fig9, 10: _claims_fig10}

#: Figs. 7, 8 and 9 each compile their own training batch (3, 1 and 6 compilations): off the
#: default set (run them with --experiment).
EXPERIMENTS = [
    *(Experiment(name=f"spectrum_fig{fig}", scenario="spectrum", title=TITLES[fig],
                 cells=_cells(fig), run_cell=_run(fig), plot=PLOTS[fig], report=REPORTS[fig],
                 claims=CLAIMS[fig], default=fig == 10)
      for fig in (7, 8, 9, 10)),
    Experiment(name="spectrum_security", scenario="spectrum",
               title="Security (beyond): malicious fraction, reputation steering, collusion",
               cells=_cells("security"), run_cell=_run("security"), plot=_plot_security,
               report=_report_security),
]
