"""Declarative paper figures and the one generic cell runner.

A paper figure is a :class:`Figure` table entry: scenario, axis (param field,
values, label with unit), metric (key with its unit, label), methods, claims
(text, verdict function over the records, the paper's numbers). :func:`experiment`
turns an entry into a registered :class:`sweeps.experiments.Experiment`:

* cells — one per series (method, or method × shape setting such as users);
* ``run_cell`` — :func:`run_policy_cell`: any registered method on the figure's
  axis × seeds × episodes, through the one rollout (:func:`jaxsg.wrappers.rollout`)
  and the one batch builder (:func:`sweeps.sharding.run_axis`, sharded over local
  devices), with common random numbers (the same episode keys at every axis value and
  for every method). A learner is a :class:`Learned` entry: trained (or, with
  ``--eval-only``, loaded) once per training seed through
  :func:`sweeps.methods.train_or_load`, then evaluated greedily, training seed s on
  evaluation seed s; a figure may instead give its own ``learned`` runner;
* the axis is an env-param field (one batch over its values) or, with
  ``Axis(steps=True)``, the step (round) of the episode: ``summarize`` then returns
  per-step arrays and a record is written per step;
* ``--set`` overrides: a figure gets the :class:`RunContext` in ``setup(ctx, config)``
  and builds its env with ``ctx.make``; the runner checks that every setup carries
  the cell's env overrides (:func:`check_env_overrides`) and applies ``ctx.learner_config``
  to every :class:`Learned` config it evaluates with;
* plot — mean with a shaded 95 % band per series, PNG + PDF;
* report — the CI table (``mean ± CI (n = seeds)``) of the metric and of every
  ``tables`` metric, computed from the records (pooled over the steps of a steps axis);
* claims — the verdict of every claim for the summary table.

Records: ``scenario, method, series, axis, axis_value, seed, episode`` then the
metric columns (named with their unit) and the figure's fixed fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxsg.wrappers import rollout
from sweeps import methods, report
from sweeps.experiments import Cell, Experiment, RunContext
from sweeps.sharding import run_axis
from sweeps.stats import Verdict


@dataclass(frozen=True)
class Axis:
    """A numeric sweep axis: ``field`` of the env params, values in SI units."""

    field: str
    values: tuple[float, ...]
    label: str  # with its display unit, e.g. "bandwidth B (MHz)"
    display: float = 1.0  # SI value × display = plotted value
    log: bool = False
    #: the axis is the episode's step (1, 2, ...), not a param: one record per step
    steps: bool = False

    def subset(self, points: int) -> list[float]:
        """``points`` values spread over the full axis (both ends kept)."""
        idx = np.round(np.linspace(0, len(self.values) - 1, points)).astype(int)
        return [float(self.values[i]) for i in dict.fromkeys(idx)]


@dataclass(frozen=True)
class Metric:
    key: str  # record column, its unit in the suffix
    label: str  # axis label with unit
    higher_is_better: bool = True
    log: bool = False  # log-scaled y axis


@dataclass(frozen=True)
class ClaimSpec:
    text: str
    verdict: Callable[[list[dict]], Verdict]
    paper: str = "–"


@dataclass(frozen=True)
class Setup:
    """What a cell evaluates on: the env and base params, horizon, seeds × episodes,
    the axis points, how to summarise a trajectory, and fixed record fields."""

    env: Any
    params: Any
    horizon: int
    seeds: int
    episodes: int
    points: list[dict]
    axis_values: list[float]
    summarize: Callable[[dict], dict]
    fields: dict = field(default_factory=dict)
    policy_kwargs: dict = field(default_factory=dict)
    info_keys: tuple[str, ...] = ()  # non-scalar info entries the rollout keeps


@dataclass(frozen=True)
class Learned:
    """A learned method of a figure: ``train(setup, method, ctx)`` returns its policy
    params stacked over training seeds (leading axis), kept by
    :func:`sweeps.methods.train_or_load` (``--eval-only`` loads them);
    ``config(setup, method, ctx)`` the learner config of ``methods.learned_policy``."""

    train: Callable[[Setup, str, RunContext], Any]
    config: Callable[[Setup, str, RunContext], Any]


@dataclass(frozen=True)
class Figure:
    name: str
    scenario: str
    figure: str  # "Fig. 4"
    title: str  # what is plotted
    axis: Axis
    metric: Metric
    methods: Callable[[str], tuple[str, ...]]  # per scale
    #: (ctx, cell config) -> Setup (envs built with ``ctx.make``)
    setup: Callable[[Any, dict], Setup]
    claims: tuple[ClaimSpec, ...] = ()
    #: extra cell dimension: (config key, record field, values per scale, series label
    #: fmt or "" when the shape value is the x axis itself)
    shape: tuple | None = None
    #: a :class:`Learned` entry, or a runner (fig, setup, cell, ctx) -> records
    learned: Learned | Callable[[Figure, Setup, Cell, RunContext], list[dict]] | None = None
    default: bool = True
    paper_note: str = ""
    #: further metrics tabulated in the report (beside ``metric``)
    tables: tuple[Metric, ...] = ()


# ------------------------------------------------------------------ records
def series_name(scenario: str, method: str, fields: dict, shape: tuple | None) -> str:
    name = methods.label(scenario, method)
    if shape is not None and shape[3]:
        key, rec_field, _, fmt = shape
        name += ", " + fmt.format(fields[rec_field])
    return name


def make_records(fig: Figure, setup: Setup, method: str, out: dict, index: list) -> list[dict]:
    """Tidy records from a batch output (leading axis = ``index`` rows; a steps axis:
    then one record per step, ``axis_value`` = step number from 1)."""
    series = series_name(fig.scenario, method, setup.fields, fig.shape)
    steps = np.shape(next(iter(out.values())))[1] if fig.axis.steps else 0
    recs = []
    for i, (p, s, e) in enumerate(index):
        for t in range(steps) if fig.axis.steps else (None,):
            x = t + 1 if fig.axis.steps else float(setup.axis_values[p])
            rec = {"scenario": fig.scenario, "method": method, "series": series,
                   "axis": fig.axis.field, "axis_value": x, "seed": int(s), "episode": int(e),
                   **setup.fields}
            rec.update({k: float(v[i] if t is None else v[i][t]) for k, v in out.items()})
            recs.append(rec)
    return recs


def figure_setup(fig: Figure, cell: Cell, ctx: RunContext) -> Setup:
    """The cell's :class:`Setup`: ``fig.setup(ctx, config)``, checked to carry the cell's
    env overrides."""
    setup = fig.setup(ctx, cell.config)
    check_env_overrides(fig.name, fig.scenario, setup, ctx.overrides)
    return setup


def check_env_overrides(name: str, scenario: str, setup: Setup, overrides: dict) -> None:
    """RuntimeError unless the setup's env (sizes) and base params carry every env
    override ``scenario.field`` of the cell (fields the axis points set are the axis's):
    a setup that builds its env without ``ctx.make`` would silently ignore ``--set``."""
    env_over, _ = methods.split_overrides(overrides)
    swept = {k for point in setup.points for k in point}
    for key, value in env_over.get(scenario, {}).items():
        holder = setup.params if hasattr(setup.params, key) else setup.env
        if key in swept or not hasattr(holder, key):
            continue
        actual = getattr(holder, key)
        try:
            same = bool(np.allclose(np.asarray(actual, float), np.asarray(value, float),
                                    rtol=1e-6, atol=0.0))
        except (TypeError, ValueError):
            same = actual == value
        if not same:
            raise RuntimeError(f"{name}: --set {scenario}.{key}={value!r} did not reach the "
                               f"cell's env ({key} = {actual!r}); build it with ctx.make")


def run_policy_cell(fig: Figure, cell: Cell, ctx: RunContext, policy=None) -> list[dict]:
    """The generic cell runner: one method on the figure's axis × seeds × episodes.
    ``policy``: the method's policy if the caller built it (e.g. a reference selected per
    run seed), else ``methods.policy`` with the setup's ``policy_kwargs``; a learner's
    comes from the figure's :class:`Learned` entry (one per training seed)."""
    method = cell.config["method"]
    setup = figure_setup(fig, cell, ctx)
    if methods.is_learner(fig.scenario, method) and callable(fig.learned):
        return fig.learned(fig, setup, cell, ctx)
    if not methods.is_learner(fig.scenario, method) and \
            not methods.get(fig.scenario, method).jittable:
        if policy is None:
            policy = methods.policy(fig.scenario, method, setup.env,
                                    **setup.policy_kwargs.get(method, {}))
        return _host_cell(fig, setup, method, policy, ctx)
    out, index = evaluate(fig.scenario, method, setup, ctx, fig.learned, policy)
    return make_records(fig, setup, method, out, index)


def evaluate(scenario: str, method: str, setup: Setup, ctx: RunContext,
             learned: Learned | None = None, policy=None) -> tuple[dict, list]:
    """``setup.summarize`` of the rollouts of ``method`` on the setup's points × seeds ×
    episodes, one batch (:func:`sweeps.sharding.run_axis`) → ``(out, index)``. A learner
    (its ``learned`` entry) is evaluated per training seed: seed s on evaluation seed s."""
    env, horizon, summarize = setup.env, setup.horizon, setup.summarize
    seeds, per_seed = setup.seeds, None
    if methods.is_learner(scenario, method):
        if not isinstance(learned, Learned):
            raise ValueError(f"{scenario}: no learned runner for {method!r}")
        per_seed = {"policy": learned.train(setup, method, ctx)}
        seeds = int(np.shape(jax.tree.leaves(per_seed)[0])[0])
        config = ctx.learner_config(learned.config(setup, method, ctx))

        def policy_of(elem):
            return methods.learned_policy(scenario, method, env, config, elem["policy"])
    else:
        fixed = policy if policy is not None else methods.policy(
            scenario, method, env, **setup.policy_kwargs.get(method, {}))

        def policy_of(elem):
            return fixed

    def one(elem):
        return summarize(rollout(env, policy_of(elem), elem["key"], elem["params"], horizon,
                                 setup.info_keys))

    return run_axis(one, setup.params, setup.points, seeds=seeds, episodes=setup.episodes,
                    seed=ctx.seed, per_seed=per_seed, validate=env.validate_params)


def host_rollout(env, policy, key, params, num_steps: int) -> dict:
    """:func:`jaxsg.wrappers.rollout` for a host-side (not jit-able) plain policy: the
    same key use (so the same exogenous draws as every jitted method), NumPy output."""
    import jax

    from jaxsg.wrappers import scalar_metrics

    reset, step = _jitted_env(env)
    key_reset, key_run = jax.random.split(key)
    obs, state = reset(key_reset, params)
    steps = []
    for step_key in jax.random.split(key_run, num_steps):
        k_act, k_env = jax.random.split(step_key)
        action = policy(k_act, obs, state, params)
        obs, state, reward, terminated, truncated, info = step(k_env, state, action, params)
        steps.append({"reward": reward, "metrics": scalar_metrics(info),
                      "terminated": terminated, "truncated": truncated})
    return jax.tree.map(lambda *x: np.stack([np.asarray(v) for v in x]), *steps)


_JITTED: dict = {}


def _jitted_env(env):
    import jax

    if id(env) not in _JITTED:
        _JITTED[id(env)] = (env, jax.jit(env.reset), jax.jit(env.step))
    return _JITTED[id(env)][1:]


def _host_cell(fig: Figure, setup: Setup, method: str, policy, ctx: RunContext) -> list[dict]:
    from sweeps.sharding import axis_batch

    batch, index = axis_batch(setup.params, setup.points, seeds=setup.seeds,
                              episodes=setup.episodes, seed=ctx.seed)
    setup.env.validate_params(batch["params"])
    import jax

    rows = []
    for i in range(len(index)):
        params = jax.tree.map(lambda x, i=i: x[i], batch["params"])
        traj = host_rollout(setup.env, policy, batch["key"][i], params, setup.horizon)
        rows.append({k: float(v) for k, v in setup.summarize(traj).items()})
    out = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    return make_records(fig, setup, method, out, index)


# ------------------------------------------------------------------ experiment
def _cells(fig: Figure):
    def cells(scale: str) -> list[Cell]:
        out = []
        for m in fig.methods(scale):
            if fig.shape is None:
                out.append(Cell(m, {"method": m}))
            else:
                key, _, values, _ = fig.shape
                out += [Cell(f"{m}-{key}{v}", {"method": m, key: v}) for v in values[scale]]
        return out

    return cells


def plot_figure(fig: Figure, records: list[dict], fig_dir: Path) -> list[Path]:
    curves = report.series_estimates(records, fig.metric.key, series_key="series",
                                     x_key="axis_value")
    return report.line_figure(
        fig.name, curves, fig_dir=fig_dir, x_scale=fig.axis.display, log_x=fig.axis.log,
        title=f"{fig.scenario} {fig.figure}: {fig.title}", xlabel=fig.axis.label,
        ylabel=fig.metric.label, log_y=fig.metric.log)


def report_figure(fig: Figure, records: list[dict]) -> str:
    seeds = sorted({r["seed"] for r in records})
    eps = sorted({r.get("episode", 0) for r in records})
    pooled = " (each seed's mean over the steps of its episodes)" if fig.axis.steps else ""
    lines = [f"{fig.metric.label}, mean ± half-width of the 95 % CI over seeds{pooled} "
             f"({len(seeds)} seeds × {len(eps)} episode(s), common random numbers across "
             "methods and axis values)."]
    if fig.paper_note:
        lines += ["", fig.paper_note]
    x_key = None if fig.axis.steps else "axis_value"
    for metric in (fig.metric, *fig.tables):
        if not any(metric.key in r for r in records):
            continue
        lines += ["", f"**{metric.label}**", ""] if fig.tables else [""]
        lines += [report.ci_table(records, metric.key, series_key="series", x_key=x_key,
                                  x_label=fig.axis.label if x_key else "",
                                  x_fmt=lambda x: f"{x * fig.axis.display:g}")]
    return "\n".join(lines)


def figure_claims(fig: Figure, records: list[dict]) -> list[report.Claim]:
    return [report.Claim(fig.scenario, fig.figure, c.text, c.verdict(records), c.paper)
            for c in fig.claims]


def experiment(fig: Figure) -> Experiment:
    return Experiment(
        name=fig.name, scenario=fig.scenario, title=f"{fig.figure} — {fig.title}",
        cells=_cells(fig), run_cell=lambda cell, ctx: run_policy_cell(fig, cell, ctx),
        plot=lambda records, d: plot_figure(fig, records, d),
        report=lambda records: report_figure(fig, records),
        claims=lambda records: figure_claims(fig, records), default=fig.default)
