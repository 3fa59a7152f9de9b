"""Paper figures of the ``dt_deploy`` scenario (Tao et al., arXiv 2409.05480, Figs. 4-7).

Experiments
-----------
* ``dt_deploy_curves`` — training curves (Fig. 4: average reward; Fig. 5: average
  system latency vs training epoch) of the proposed method (VDN, sum mixing, eq. 21-23),
  IQL and QMIX: mean over training seeds with a 95 % band (curve records only).
* ``dt_deploy_fig4_5`` — the final greedy evaluation of every method (the paper's four,
  greedy and the exact per-step optimum) on common episodes: the comparison table with
  CIs and each method's paired latency gap to the optimum; the Fig. 4-5 claims.
* ``dt_deploy_fig6`` — average system latency vs number of users (shape axis: one
  training per user count and learner; off the default set).
* ``dt_deploy_fig7`` — average system latency vs data size D (numeric axis: D fixed to
  each value by ``data_min_bits = data_max_bits``).

Protocol (decisions where the paper is silent)
----------------------------------------------
* Learners: ``agents.value_decomp`` (GRU + FC, γ = 0.9 as the paper; lr 1e-3
  instead of the paper's 1e-4 because we train for far fewer iterations), training
  seeds (``sweeps.methods``: 3 at the default scale) trained at once with
  ``jit(vmap(train))``. IQL's team reward is scaled by 1/I (each independent agent
  regresses the whole team return, I times a VDN agent's share). One "epoch" of the x
  axis is one training iteration (``num_envs`` episodes collected, 2 gradient steps).
  Curves are the greedy evaluation envs inside training (``eval_*`` metrics).
* "Average system latency" is L_sum per step (eq. 12) averaged over the episode.
* Evaluation: every method goes through ``jaxsg.wrappers.rollout`` (learned policies
  greedy, with their GRU carry) and ``sweeps.sharding.run_axis``; the host-side exact
  optimum replays the same keys (``sweeps.figures.host_rollout``), so every method sees
  the same exogenous draws (common random numbers). Learner seed s is paired with
  evaluation seed s.
* Fig. 7 evaluates the policies trained at the default data range U(0.5, 2) MB at each
  fixed data size; Fig. 6 trains per user count.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax

import jaxsg
from agents import value_decomp as vd
from jaxsg.wrappers import rollout
from sweeps import figures, methods, report, stats
from sweeps.experiments import Cell, Experiment, RunContext
from sweeps.figures import Axis, ClaimSpec, Figure, Metric, Setup
from sweeps.sharding import run_axis, run_batched

LEARNED = {"proposed": "vdn", "iql": "none", "qmix": "qmix"}
PAPER_METHODS = ("proposed", "iql", "qmix", "rd")
MB_BITS = 8e6
LATENCY = "latency_sum_s"

SCALES = {
    "smoke": dict(users=5, ends=2, horizon=5, iterations=10, seeds=2, episodes=1,
                  fig6_users=(4, 5), data_mb=(0.5, 2.0), hidden=16, batch=8, envs=4),
    "default": dict(users=20, ends=3, horizon=20, iterations=100, seeds=5, episodes=2,
                    fig6_users=(20, 24), data_mb=(0.5, 1.25, 2.0), hidden=32, batch=16,
                    envs=8),
    "paper": dict(users=20, ends=3, horizon=20, iterations=1000, seeds=8, episodes=16,
                  fig6_users=(18, 20, 22, 24), data_mb=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0),
                  hidden=64, batch=64, envs=8),
}


def learner_config(method: str, scale: dict, users: int) -> vd.VDConfig:
    # IQL: every agent regresses the team return, n times the size of a VDN agent's share;
    # reward_scale = 1/n gives it the same value scale
    return vd.VDConfig(
        mixer=LEARNED[method], num_envs=scale["envs"], num_eval_envs=4,
        reward_scale=1.0 / users if method == "iql" else 1.0,
        num_iterations=scale["iterations"], updates_per_iter=2,
        batch_episodes=scale["batch"], buffer_episodes=1000, warmup_episodes=scale["batch"],
        gamma=0.9, lr=1e-3, target_update_interval=4, eps_decay_frac=0.3,
        hidden=scale["hidden"], fc=scale["hidden"], mixer_embed=32, hyper_hidden=64)


def make_env(users: int, scale: dict):
    return jaxsg.make("dt_deploy", num_users=users, num_end_devices=scale["ends"],
                      horizon=scale["horizon"])


@functools.lru_cache(maxsize=32)
def trained(method: str, users: int, scale_name: str, seed: int):
    """(agent params stacked over training seeds, training metrics as NumPy), cached."""
    scale = SCALES[scale_name]
    env, params = make_env(users, scale)
    train = vd.make_train(env, learner_config(method, scale, users))
    n = methods.train_seeds("dt_deploy", method, scale_name)
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    # training seeds sharded over the local devices like every other batch
    agent_params, metrics = run_batched(lambda k: train(k, params), keys)
    return agent_params, metrics


def summarize(traj: dict) -> dict:
    """Episode means of the env's per-step metrics and the team return (eq. 18)."""
    out = {k: v.mean() for k, v in traj["metrics"].items()}
    out["return"] = traj["reward"]["user"].mean(axis=-1).sum()
    return out


# ------------------------------------------------------------------ figures
def _setup(kind: str):
    def setup(scale_name: str, config: dict) -> Setup:
        sc = SCALES[scale_name]
        users = config.get("users", sc["users"])
        env, params = make_env(users, sc)
        if kind == "data":
            values = [mb * MB_BITS for mb in sc["data_mb"]]
            points = [{"data_min_bits": v, "data_max_bits": v} for v in values]
        else:
            values, points = [float(users)], [{}]
        return Setup(env, params, sc["horizon"], sc["seeds"], sc["episodes"], points, values,
                     summarize, fields={"users": users})

    return setup


def _learned(fig: Figure, setup: Setup, cell: Cell, ctx: RunContext) -> list[dict]:
    """Greedy evaluation of every training seed s on evaluation seed s's episodes."""
    method, users = cell.config["method"], setup.fields["users"]
    agent_params, _ = trained(method, users, ctx.scale, ctx.seed)
    env, horizon = setup.env, setup.horizon
    config = learner_config(method, SCALES[ctx.scale], users)

    def one(elem):
        policy = methods.learned_policy("dt_deploy", method, env, config, elem["agent"])
        return summarize(rollout(env, policy, elem["key"], elem["params"], horizon))

    out, index = run_axis(one, setup.params, setup.points,
                          seeds=methods.train_seeds("dt_deploy", method, ctx.scale),
                          episodes=setup.episodes, seed=ctx.seed,
                          per_seed={"agent": agent_params}, validate=env.validate_params)
    return figures.make_records(fig, setup, method, out, index)


def _lowest(metric: str, **where):
    return lambda recs: stats.best_of_verdict(recs, metric, "proposed",
                                              ["iql", "qmix", "rd"], higher_is_better=False,
                                              **where)


def _lowest_everywhere(recs):
    xs = sorted({r["axis_value"] for r in recs})
    vs = [_lowest(LATENCY, axis_value=x)(recs) for x in xs]
    labels = {v.label for v in vs}
    label = stats.NOT_RUN if stats.NOT_RUN in labels else (
        stats.REPRODUCED if labels == {stats.REPRODUCED} else stats.NOT_REPRODUCED)
    return stats.Verdict(label, "; ".join(f"at {x:g}: {v.evidence}" for x, v in zip(xs, vs)))


FINAL_METHODS = ("proposed", "iql", "qmix", "rd", "greedy", "optimal")
FIG7_METHODS = ("proposed", "iql", "qmix", "rd", "greedy")
_LAT = Metric(LATENCY, "average system latency L_sum per step (s)", False)

FIGURES = {
    "fig4_5": Figure(
        name="dt_deploy_fig4_5", scenario="dt_deploy", figure="Figs. 4-5",
        title="final greedy evaluation: latency and reward of every method",
        axis=Axis("num_users", (20.0,), "number of users I (1)"), metric=_LAT,
        methods=lambda scale: FINAL_METHODS, setup=_setup("final"), learned=_learned,
        claims=(
            ClaimSpec("Fig. 4: proposed obtains the highest reward",
                      lambda recs: stats.best_of_verdict(recs, "return", "proposed",
                                                         ["iql", "qmix", "rd"],
                                                         higher_is_better=True),
                      "proposed > IQL > QMIX"),
            ClaimSpec("Fig. 4: IQL obtains a higher reward than QMIX",
                      lambda recs: stats.beats_verdict(recs, "return", "iql", "qmix",
                                                       higher_is_better=True)),
            ClaimSpec("Fig. 5: proposed has the lowest average system latency",
                      _lowest(LATENCY), "IQL ≈ 2.75 s, QMIX ≈ 2.8 s"),
        )),
    "fig6": Figure(
        name="dt_deploy_fig6", scenario="dt_deploy", figure="Fig. 6",
        title="average system latency vs number of users",
        axis=Axis("num_users", (18.0, 20.0, 22.0, 24.0), "number of users I (1)"),
        metric=_LAT, methods=lambda scale: FINAL_METHODS, setup=_setup("users"),
        learned=_learned, default=False,
        shape=("users", "users", {k: v["fig6_users"] for k, v in SCALES.items()}, ""),
        claims=(
            ClaimSpec("latency rises with the number of users (proposed)",
                      lambda recs: stats.trend_verdict(recs, LATENCY, "up",
                                                       method="proposed")),
            ClaimSpec("proposed has the lowest latency at every user count",
                      _lowest_everywhere))),
    "fig7": Figure(
        name="dt_deploy_fig7", scenario="dt_deploy", figure="Fig. 7",
        title="average system latency vs data size D",
        axis=Axis("data_bits", (), "data size D (MB)", 1.0 / MB_BITS), metric=_LAT,
        methods=lambda scale: FIG7_METHODS, setup=_setup("data"), learned=_learned,
        claims=(
            ClaimSpec("latency rises with the data size (proposed)",
                      lambda recs: stats.trend_verdict(recs, LATENCY, "up",
                                                       method="proposed")),
            ClaimSpec("proposed has the lowest latency at every data size",
                      _lowest_everywhere))),
}

FINAL_COLUMNS = (("latency_sum_s", "L_sum per step (s)"),
                 ("latency_mean_s", "per-user mean latency (s)"),
                 ("return", "return per episode (1)"),
                 ("count_local", "DTs local (1)"), ("count_end", "DTs on end devices (1)"),
                 ("count_cloud", "DTs in the cloud (1)"),
                 ("capacity_overflow", "capacity overflow (1)"))


def _final_report(records: list[dict]) -> str:
    recs = [dict(r, series=methods.label("dt_deploy", r["method"])) for r in records]
    users = sorted({r["users"] for r in records})
    lines = [f"Final greedy evaluation on common episodes ({', '.join(map(str, users))} "
             "users); mean ± 95 % CI over seeds.", ""]
    for key, text in FINAL_COLUMNS:
        if any(key in r for r in records):
            lines += [f"**{text}**", "", report.ci_table(recs, key, series_key="series",
                                                         x_key=None), ""]
    if any(r["method"] == "optimal" for r in records):
        lines += ["**Paired latency gap to the optimum (s), same seeds and episodes:**", ""]
        opt = stats.per_seed(stats.select(records, method="optimal"), LATENCY)
        for m in dict.fromkeys(r["method"] for r in records):
            if m != "optimal":
                d = stats.paired_difference(stats.per_seed(stats.select(records, method=m),
                                                           LATENCY), opt)
                lines.append(f"- {methods.label('dt_deploy', m)}: {d.fmt()}")
    return "\n".join(lines)


def _final_plot(records: list[dict], fig_dir: Path) -> list[Path]:
    pyplot = report.plt()
    names = list(dict.fromkeys(r["method"] for r in records))
    fig, axes = pyplot.subplots(1, 2, figsize=(9, 3.6))
    for ax, (key, text) in zip(axes, FINAL_COLUMNS[:3:2]):
        ests = [stats.estimate(records, key, method=m) for m in names]
        ax.bar(range(len(names)), [e.mean for e in ests],
               yerr=[e.half_width if e.defined else 0.0 for e in ests], capsize=3)
        ax.set_xticks(range(len(names)), [methods.label("dt_deploy", m) for m in names],
                      rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(text)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("dt_deploy Figs. 4-5: final greedy evaluation, error bars = 95 % CI over "
                 "seeds", fontsize=9)
    fig.tight_layout()
    return report.save_figure(fig, fig_dir, "dt_deploy_fig4_5_final")


# ------------------------------------------------------------------ curves
CURVES = (("eval_reward_per_step", "eval_team_reward", "average reward per step (1)"),
          ("eval_latency_sum_s", "eval_latency_sum_s",
           "average system latency L_sum per step (s)"),
          ("eval_latency_mean_s", "eval_latency_mean_s", None),
          ("eval_return", "eval_return_mean", None), ("train_return", "return_mean", None),
          ("td_loss", "td_loss", None))


def _curve_cells(scale: str) -> list[Cell]:
    return [Cell(m, {"method": m}) for m in LEARNED]


def _curve_cell(cell: Cell, ctx: RunContext) -> list[dict]:
    scale = SCALES[ctx.scale]
    method = cell.config["method"]
    _, m = trained(method, scale["users"], ctx.scale, ctx.seed)
    n = methods.train_seeds("dt_deploy", method, ctx.scale)
    return [{"scenario": "dt_deploy", "method": method, "series":
             methods.label("dt_deploy", method), "seed": s, "iteration": it,
             "episodes": (it + 1) * scale["envs"],
             **{col: float(m[src][s, it]) for col, src, _ in CURVES}}
            for s in range(n) for it in range(scale["iterations"])]


def _curve_plot(records: list[dict], fig_dir: Path) -> list[Path]:
    paths = []
    for fig, (col, _, ylabel) in zip((4, 5), CURVES[:2]):
        curves = report.series_estimates(records, col, series_key="series",
                                         x_key="iteration")
        paths += report.line_figure(
            f"dt_deploy_fig{fig}", curves, fig_dir=fig_dir, offset_frac=0.0,
            title=f"dt_deploy Fig. {fig}: greedy evaluation during training vs epoch",
            xlabel="training iteration (epoch)", ylabel=ylabel, log_y=fig == 5)
    return paths


def _curve_report(records: list[dict]) -> str:
    last = max(r["iteration"] for r in records)
    rows = [r for r in records if r["iteration"] == last]
    return ("Last training iteration's greedy evaluation (inside training), mean ± 95 % CI "
            "over training seeds:\n\n"
            + report.ci_table(rows, "eval_latency_sum_s", series_key="series", x_key=None)
            + "\n\nFinal TD loss (IQL in its 1/I reward scale):\n\n"
            + report.ci_table(rows, "td_loss", series_key="series", x_key=None))


EXPERIMENTS = [
    Experiment(name="dt_deploy_curves", scenario="dt_deploy",
               title="Figs. 4-5 — reward and latency vs training epoch",
               cells=_curve_cells, run_cell=_curve_cell, plot=_curve_plot,
               report=_curve_report),
    Experiment(name="dt_deploy_fig4_5", scenario="dt_deploy",
               title="Figs. 4-5 — final greedy evaluation; optimality gap",
               cells=figures.experiment(FIGURES["fig4_5"]).cells,
               run_cell=figures.experiment(FIGURES["fig4_5"]).run_cell,
               plot=_final_plot, report=_final_report,
               claims=figures.experiment(FIGURES["fig4_5"]).claims),
    figures.experiment(FIGURES["fig6"]),
    figures.experiment(FIGURES["fig7"]),
]
