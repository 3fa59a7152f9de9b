"""dt_deploy experiments take ``--set`` and ``--eval-only`` explicitly (``ctx.make``,
``ctx.learner_config``, ``ctx.make_train``; nothing is patched): an override reaches a
smoke cell's env params and learner config, it is part of the trained-policy cache
identity (in process and on disk), ``--eval-only`` refuses to train and reproduces the
records from the saved policy, and a bad override fails before any compute."""

from __future__ import annotations

import json

import pytest

import jaxsg
from agents import value_decomp as vd
from sweeps import figures, grid, methods
from sweeps.experiments import Cell, RunContext
from sweeps.experiments import dt_deploy as X
from sweeps.io import read_json_or_none, read_records_jsonl

OVER = {"dt_deploy.num_users": 3, "dt_deploy.horizon": 3, "dt_deploy.end_cpu_hz": 7e9,
        "value_decomp.hidden": 8, "value_decomp.lr": 5e-4}


def test_set_reaches_the_setup_env_params_and_learner_config():
    ctx = RunContext("smoke", overrides=OVER)
    for name in ("fig4_5", "fig7"):
        setup = figures.figure_setup(X.FIGURES[name], Cell("rd", {"method": "rd"}), ctx)
        assert (setup.env.num_users, setup.env.horizon) == (3, 3)
        assert setup.fields["users"] == 3  # the records name the users the env has
        assert float(setup.params.end_cpu_hz) == pytest.approx(7e9)
    # a shape cell's user count yields to --set num_users (the override wins)
    fig6 = figures.figure_setup(X.FIGURES["fig6"], Cell("rd-users4", {"method": "rd",
                                                                      "users": 4}), ctx)
    assert fig6.env.num_users == 3
    cfg = X.cell_learner_config("iql", 3, ctx)
    assert (cfg.hidden, cfg.lr, cfg.mixer) == (8, 5e-4, "none")
    plain = X.cell_learner_config("iql", 3, RunContext("smoke"))
    assert plain == X.learner_config("iql", X.SCALES["smoke"], 3) and plain.hidden == 16


def test_overrides_are_part_of_the_trained_cache_identity(monkeypatch):
    """The in-process cache of trained policies keys on the overrides: a policy trained
    under ``--set X`` is never reused without it (and the identity carries the config)."""
    calls = []

    def fake(scenario, method, identity, train_one, keys):
        calls.append(identity)
        return len(calls)

    monkeypatch.setattr(methods, "train_batch_or_load", fake)
    X._trained.cache_clear()
    try:
        with_set = RunContext("smoke", overrides=OVER)
        assert X.trained("proposed", 5, with_set) == 1
        assert X.trained("proposed", 5, RunContext("smoke")) == 2  # not the cached one
        assert X.trained("proposed", 5, RunContext("smoke", overrides=OVER)) == 1  # cached
        assert X.trained("proposed", 3, RunContext("smoke")) == 3
    finally:
        X._trained.cache_clear()
    assert json.loads(calls[0]["config"])["hidden"] == 8 and calls[0]["users"] == 3
    assert json.loads(calls[1]["config"])["hidden"] == 16 and calls[1]["users"] == 5


def test_eval_only_refuses_to_train_a_dt_deploy_learner():
    """Outside ``train_or_load``'s load path, an eval-only cell's training raises (the
    train function comes from ``ctx.make_train``): no patching involved."""
    make, make_train = jaxsg.make, vd.make_train
    X._trained.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="--eval-only.*train_or_load"):
            X.trained("qmix", 3, RunContext("smoke", overrides=OVER, eval_only=True))
    finally:
        X._trained.cache_clear()
    assert jaxsg.make is make and vd.make_train is make_train


@pytest.mark.parametrize("item, words", [
    ("value_decomp.hiden=4", ["value_decomp.hiden", "no field 'hiden'", "hidden"]),
    ("dt_deploy.num_userz=3", ["dt_deploy.num_userz", "no env size or param"]),
    ("num_users=0", ["--set num_users=0"]),
])
def test_bad_set_is_a_clear_error_before_any_compute(tmp_path, capsys, item, words):
    with pytest.raises(SystemExit) as err:
        grid.main(["--scale", "smoke", "--experiment", "dt_deploy_fig4_5", "--out",
                   str(tmp_path), "--set", item])
    assert err.value.code == 2
    text = capsys.readouterr().err
    for word in words:
        assert word in text, text
    assert not any(tmp_path.rglob("*.json"))


def test_smoke_learner_cell_with_set_trains_once_saves_and_reevaluates(tmp_path, capsys):
    """One grid run of a learned fig4_5 cell and its curves under ``--set``: the override
    reaches the records and the saved policy's identity, the two experiments share one
    training; ``--eval-only`` with the same overrides reproduces the records exactly, and
    without them (or with another value) finds no saved policy: never the one trained
    under the overrides."""
    out = tmp_path / "res"
    sets = ["--set", "num_users=3", "--set", "horizon=3", "--set", "value_decomp.num_updates=2",
            "--set", "value_decomp.hidden=8"]
    base = ["--scale", "smoke", "--out", str(out), "--cells", "proposed", "--experiment",
            "dt_deploy_curves", "--experiment", "dt_deploy_fig4_5"]
    assert grid.main(base + sets) == 0
    assert X._trained.cache_info().misses == 1  # curves and fig4_5 share the training
    cell = read_json_or_none(grid.cell_path(out, "smoke", "dt_deploy_fig4_5", "proposed"))
    assert cell["overrides"] == {"dt_deploy.num_users": 3, "dt_deploy.horizon": 3,
                                 "value_decomp.num_updates": 2, "value_decomp.hidden": 8}
    recs = cell["records"]
    assert {r["users"] for r in recs} == {3}
    for r in recs:  # every user's DT is placed somewhere each step
        assert r["count_local"] + r["count_end"] + r["count_cloud"] == pytest.approx(3.0)
    (policy,) = cell["policies"]
    saved = grid.policy_dir(grid.RunContext("smoke", 0, grid.run_dir(out, "smoke")))
    identity = json.loads((saved / policy).with_suffix(".json").read_text())
    config = json.loads(identity["config"])
    assert (config["hidden"], config["num_updates"]) == (8, 2)
    assert identity["users"] == 3 and identity["overrides"] == cell["overrides"]
    curves = read_records_jsonl(grid.run_dir(out, "smoke") / "dt_deploy_curves"
                                / "records.jsonl")
    assert {r["iteration"] for r in curves} == {0, 1}  # num_updates=2 reached the learner

    capsys.readouterr()
    assert grid.main(base + sets + ["--eval-only"]) == 0
    err = capsys.readouterr().err
    assert "dt_deploy_fig4_5/proposed: eval-only records reproduce the stored ones" in err
    assert "dt_deploy_curves/proposed: eval-only records reproduce the stored ones" in err
    for other in ([], sets[:-1] + ["value_decomp.hidden=6"]):
        with pytest.raises(FileNotFoundError, match="no saved policy"):
            grid.main(base + other + ["--eval-only"])
