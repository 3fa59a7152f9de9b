"""``--set`` overrides reach the sgin experiments explicitly (issue 12): envs through
``ctx.make``, learner configs through ``ctx.learner_config``, and the shared training's
cache and identity."""

import json

import numpy as np

from sweeps import grid
from sweeps.experiments import Cell, RunContext, get_experiment, list_experiments
from sweeps.experiments import sgin as sgin_exps
from sweeps.experiments import sgin_learners as sl
from sweeps.io import read_json_or_none

OVERRIDES = {"sgin.power_w": 9.0, "madfrl.actor_lr": 5e-4, "mappo.lr": 1e-4,
             "maml_madfrl.inner_lr": 0.02}


def test_every_sgin_experiment_applies_overrides_explicitly():
    sgin = [e for e in list_experiments() if e.scenario == "sgin"]
    assert len(sgin) == 10


def test_set_values_reach_a_smoke_cells_env_params_and_learner_configs():
    ctx = RunContext(scale="smoke", seed=0, overrides=OVERRIDES)
    for fig in (4, 5, 9, 10):
        setup = sgin_exps.FIGURES[fig].setup(ctx, {"method": "marto", "users": 3})
        assert float(setup.params.power_w) == 9.0, fig
    setup = sgin_exps.FIGURES[5].setup(ctx, {"method": "marto", "users": 3})
    assert float(setup.params.arrival_min_bits) == sl.FIXED_TASK_BITS  # the figure's own
    assert float(sl.training_env(ctx)[1].power_w) == 9.0
    cfgs = sl.configs(ctx)
    assert cfgs["maml_madfrl"].madfrl.actor_lr == 5e-4 and cfgs["madfrl"].actor_lr == 5e-4
    assert cfgs["maml_madfrl"].inner_lr == 0.02 and cfgs["mappo"].lr == 1e-4
    plain = sl.configs(RunContext(scale="smoke"))
    assert plain["madfrl"].actor_lr != 5e-4 and plain["mappo"].lr != 1e-4


def test_overrides_key_the_shared_training_cache_and_identity(monkeypatch):
    seen = []

    def fake(scenario, method, identity, train_one, batch):
        seen.append(identity)
        return {"policy": len(seen)}

    monkeypatch.setattr(sl.methods, "train_batch_or_load", fake)
    monkeypatch.setattr(sl, "_SHARED", {})
    plain = RunContext(scale="smoke", seed=0)
    lr = RunContext(scale="smoke", seed=0, overrides={"mappo.lr": 1e-4})
    power = RunContext(scale="smoke", seed=0, overrides={"sgin.power_w": 9.0})
    got = [sl.shared_trained("mappo", c)["policy"] for c in (plain, lr, power, lr, plain)]
    assert got == [1, 2, 3, 2, 1]  # one training per distinct override set
    lrs = [json.loads(identity["config"])["lr"] for identity in seen]
    assert lrs[1] == 1e-4 and lrs[0] != 1e-4 and lrs[2] == lrs[0]


def test_cli_set_reaches_a_sgin_figure_cell(tmp_path):
    """``--set sgin.power_w=…`` changes the interference a smoke Fig. 10 cell records, and
    the cell file keeps the override."""
    def run(extra):
        out = tmp_path / ("set" if extra else "plain")
        args = ["--scale", "smoke", "--experiment", "sgin_fig10", "--cells", "mamcc",
                "--out", str(out)]
        assert grid.main(args + extra) == 0
        return read_json_or_none(grid.cell_path(out, "smoke", "sgin_fig10", "mamcc"))

    plain, low = run([]), run(["--set", "sgin.power_w=2.0"])
    assert low["overrides"] == {"sgin.power_w": 2.0}
    a = np.mean([r["interference_dbm"] for r in plain["records"]])
    b = np.mean([r["interference_dbm"] for r in low["records"]])
    assert b < a - 3.0  # 16 W → 2 W: ≈ 9 dB less interference


def test_a_learned_smoke_cell_runs_with_overrides():
    ctx = RunContext(scale="smoke", seed=0, overrides={"sgin.power_w": 9.0,
                                                       "mappo.lr": 1e-4})
    rows = get_experiment("sgin_fig7").run_cell(Cell("mappo", {"method": "mappo"}), ctx)
    assert rows and all(r["training"] == "shared" for r in rows)
