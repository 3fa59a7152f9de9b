"""``--set`` overrides are passed explicitly: the grid runner hands each cell its overrides
in ``RunContext.overrides``; an experiment builds its env with
``ctx.make`` and its learner configs with ``ctx.learner_config``, and nothing is patched
while it runs. Bad overrides of the edge_assoc/spectrum experiments fail before any compute."""

from __future__ import annotations

import numpy as np
import pytest

import jaxsg
from agents import ddqn, maddpg
from sweeps import grid
from sweeps.experiments import Cell, Experiment, RunContext, register_experiment
from sweeps.io import read_json_or_none

NAME = "_explicit_overrides"
SEEN: list[dict] = []
MAKE, MAKE_TRAIN, MAKE_POLICY = jaxsg.make, maddpg.make_train, maddpg.make_policy


def _run_cell(cell, ctx):
    # the factories are the real ones: nothing wraps them while an explicit cell runs
    assert jaxsg.make is MAKE and maddpg.make_train is MAKE_TRAIN
    assert maddpg.make_policy is MAKE_POLICY
    env, params = ctx.make("edge_assoc", num_users=5, horizon=3)
    config = ctx.learner_config(maddpg.Config(hidden=(32, 32), actor_lr=1e-3))
    SEEN.append(dict(ctx.overrides))
    return [{"method": cell.config["method"], "seed": 0, "users": env.num_users,
             "horizon": env.horizon, "bandwidth_hz": float(params.subchannel_bandwidth_hz),
             "hidden": config.hidden[0], "actor_lr": config.actor_lr}]


register_experiment(Experiment(
    name=NAME, scenario="edge_assoc", title="explicit overrides",
    cells=lambda scale: [Cell("proposed", {"method": "proposed"}),
                         Cell("random", {"method": "random"})],
    run_cell=_run_cell, default=False), replace=True)


def test_ctx_applies_the_cells_overrides_and_only_those():
    ctx = RunContext("smoke", 0, overrides={"edge_assoc.num_users": 7, "maddpg.hidden": (8, 8),
                                            "sgin.num_mbs": 2})
    env, _ = ctx.make("edge_assoc", num_users=5)
    assert env.num_users == 7
    assert jaxsg.make("edge_assoc", num_users=5)[0].num_users == 5  # no global effect
    cfg = ctx.learner_config(maddpg.Config(hidden=(32, 32), actor_lr=2e-3))
    assert cfg.hidden == (8, 8) and cfg.actor_lr == 2e-3
    # as the runner passes them (JSON round trip): a list is the tuple that was set, and
    # the config stays hashable (the experiments cache on it)
    cfg = RunContext("smoke", overrides={"ddqn.hidden": [8, 8]}).learner_config(ddqn.Config())
    assert cfg.hidden == (8, 8) and hash(cfg) == hash(ddqn.Config(hidden=(8, 8)))
    other = ddqn.Config(hidden=(32, 32))
    assert RunContext("smoke").learner_config(other) is other  # no overrides: unchanged
    assert ctx.learner_config(other) is other  # overrides of other learners: unchanged


def test_set_reaches_env_params_and_learner_config_in_a_smoke_cell(tmp_path):
    out = tmp_path / "res"
    SEEN.clear()
    assert grid.main(["--scale", "smoke", "--experiment", NAME, "--out", str(out),
                      "--set", "edge_assoc.num_users=9", "--set", "subchannel_bandwidth_hz=2e6",
                      "--set", "maddpg.hidden=(16, 16)", "--set", "maddpg.actor_lr=5e-4"]) == 0
    learned = read_json_or_none(grid.cell_path(out, "smoke", NAME, "proposed"))
    (rec,) = learned["records"]
    assert (rec["users"], rec["horizon"], rec["bandwidth_hz"]) == (9, 3, 2e6)
    assert (rec["hidden"], rec["actor_lr"]) == (16, 5e-4)
    # a heuristic cell gets the env overrides only
    (rec,) = read_json_or_none(grid.cell_path(out, "smoke", NAME, "random"))["records"]
    assert (rec["users"], rec["hidden"], rec["actor_lr"]) == (9, 32, 1e-3)
    assert len(SEEN) == 2 and "maddpg.hidden" not in SEEN[1]


@pytest.mark.parametrize("item, words", [
    ("edge_assoc.num_userz=3", ["edge_assoc.num_userz", "no env size or param"]),
    ("maddpg.hiden=(8, 8)", ["maddpg.hiden", "no field 'hiden'", "hidden"]),
    ("ddqn.gamma=2.0", ["ddqn.gamma"]),
    ("spectrum.num_satellites=0", ["spectrum.num_satellites"]),
])
def test_bad_set_is_a_clear_error_before_any_compute(tmp_path, capsys, item, words):
    SEEN.clear()
    with pytest.raises(SystemExit) as err:
        grid.main(["--scale", "smoke", "--experiment", NAME, "--experiment",
                   "spectrum_fig10", "--out", str(tmp_path), "--set", item])
    assert err.value.code == 2
    text = capsys.readouterr().err
    for word in words:
        assert word in text, text
    assert SEEN == [] and not any(tmp_path.rglob("*.json"))


def test_a_cell_reusing_a_cached_training_names_its_saved_file(tmp_path):
    """``methods.note_saved`` lists the file ``train_or_load`` keeps for the same identity
    (with the run's overrides), so a cell served from a process cache names it too."""
    from sweeps import methods

    identity = {"config": "x", "seed": 0}
    run = methods.CellRun(overrides={"env": {"num_mbs": 2}}, policy_dir=tmp_path)
    with methods.cell_run(run):
        methods.train_or_load("sgin", "madfrl", identity, lambda: {"w": np.zeros(2)})
    saved = run.policies
    assert len(saved) == 1 and (tmp_path / saved[0]).exists()
    again = methods.CellRun(overrides={"env": {"num_mbs": 2}}, policy_dir=tmp_path)
    with methods.cell_run(again):
        methods.note_saved("sgin", "madfrl", identity)
    assert again.policies == saved
    other = methods.CellRun(overrides={}, policy_dir=tmp_path)  # other overrides, other file
    with methods.cell_run(other):
        methods.note_saved("sgin", "madfrl", identity)
    assert other.policies != saved
