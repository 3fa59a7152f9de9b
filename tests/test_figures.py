"""``sweeps.figures`` beyond the sgin/dt_deploy figures: a steps axis (one record per
step of the episode, the report pooling each seed's steps), extra report tables, and a
learner without a ``Learned`` entry is refused before any compute."""

import numpy as np
import pytest

from sweeps import figures
from sweeps.experiments import Cell, RunContext
from sweeps.figures import Axis, Figure, Metric, Setup

FIG = Figure(name="_steps", scenario="edge_assoc", figure="Fig. 0", title="t",
             axis=Axis("round", (), "round (1)", steps=True),
             metric=Metric("time_cost_s", "T (s)", False), methods=lambda scale: ("random",),
             setup=lambda ctx, config: None, tables=(Metric("objective_s", "objective (s)"),))


def test_steps_axis_writes_one_record_per_step():
    setup = Setup(None, None, 3, 2, 1, [{}], [0.0], summarize=None, fields={"users": 4})
    out = {"time_cost_s": np.arange(6.0).reshape(2, 3), "objective_s": np.ones((2, 3))}
    recs = figures.make_records(FIG, setup, "random", out, [(0, 0, 0), (0, 1, 0)])
    assert [(r["seed"], r["axis_value"], r["time_cost_s"]) for r in recs] == [
        (0, 1.0, 0.0), (0, 2.0, 1.0), (0, 3.0, 2.0), (1, 1.0, 3.0), (1, 2.0, 4.0),
        (1, 3.0, 5.0)]
    assert all(r["axis"] == "round" and r["users"] == 4 for r in recs)
    text = figures.report_figure(FIG, recs)
    # one column per table (each seed's mean over its steps), a table per metric
    assert "| series | `time_cost_s` |" in text and "| series \\ round" not in text
    assert "**objective (s)**" in text and "**T (s)**" in text
    assert "(n = 2)" in text and "each seed's mean over the steps" in text


def test_a_learner_without_a_learned_entry_is_refused():
    setup = Setup(None, None, 3, 2, 1, [{}], [0.0], summarize=None)
    with pytest.raises(ValueError, match="no learned runner for 'proposed'"):
        figures.evaluate("edge_assoc", "proposed", setup, RunContext("smoke"))
    fig = Figure(**{**FIG.__dict__, "setup": lambda ctx, config: setup})
    with pytest.raises(ValueError, match="no learned runner"):
        figures.run_policy_cell(fig, Cell("proposed", {"method": "proposed"}),
                                RunContext("smoke"))


def test_runner_checks_that_the_setup_carries_the_env_overrides():
    """A figure whose setup builds its env without ``ctx.make`` would ignore ``--set``
    silently: the runner's check refuses it; fields the axis points set are the axis's."""
    import jaxsg

    over = {"edge_assoc.num_users": 7, "edge_assoc.subchannel_bandwidth_hz": 2e6,
            "maddpg.hidden": (8, 8), "sgin.num_mbs": 2}
    ctx = RunContext("smoke", overrides=over)

    def setup_of(env_params, points=({},)):
        env, params = env_params
        return Setup(env, params, 3, 1, 1, list(points), [0.0], summarize=None)

    good = setup_of(ctx.make("edge_assoc", num_users=5))
    figures.check_env_overrides("f", "edge_assoc", good, ctx.overrides)
    with pytest.raises(RuntimeError, match=r"f: --set edge_assoc.num_users=7 did not reach"):
        figures.check_env_overrides("f", "edge_assoc", setup_of(jaxsg.make("edge_assoc")),
                                    ctx.overrides)
    only_params = setup_of(jaxsg.make("edge_assoc", num_users=7))
    with pytest.raises(RuntimeError, match="subchannel_bandwidth_hz"):
        figures.check_env_overrides("f", "edge_assoc", only_params, ctx.overrides)
    swept = setup_of(jaxsg.make("edge_assoc", num_users=7),
                     points=[{"subchannel_bandwidth_hz": 1e6}])
    figures.check_env_overrides("f", "edge_assoc", swept, ctx.overrides)
    fig = Figure(**{**FIG.__dict__, "setup": lambda ctx, config: setup_of(
        jaxsg.make("edge_assoc"))})
    with pytest.raises(RuntimeError, match="build it with ctx.make"):
        figures.figure_setup(fig, Cell("random", {"method": "random"}), ctx)
