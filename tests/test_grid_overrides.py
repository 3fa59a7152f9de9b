"""``--set`` overrides, saved policies and ``--eval-only`` of ``python -m sweeps.grid``.

A tiny learned experiment on ``dt_deploy`` (registered here) trains
``agents.value_decomp`` for a few updates through :func:`sweeps.methods.train_or_load`
and evaluates the greedy policy through :func:`jaxsg.wrappers.rollout`, like the
scenario experiments; a heuristic cell (RD) sits beside it. It takes its overrides and
``--eval-only`` explicitly (``ctx.make``, ``ctx.learner_config``, ``ctx.make_train``).
"""

from __future__ import annotations

import json

import jax
import pytest

import jaxsg
from agents import core
from agents import value_decomp as vd
from jaxsg.wrappers import rollout
from sweeps import grid, methods
from sweeps.experiments import Cell, Experiment, RunContext, register_experiment
from sweeps.io import read_json_or_none, read_records_jsonl
from sweeps.sharding import run_axis, run_batched

NAME = "_dt_learned"
SEEDS, EPISODES, HORIZON = 2, 2, 4
TRAINED: list[str] = []  # methods actually trained in this process


def _config() -> vd.Config:
    return vd.Config(mixer="vdn", num_envs=2, num_eval_envs=2, num_updates=3,
                     updates_per_iter=1, batch_episodes=4, buffer_episodes=16,
                     warmup_episodes=2, hidden=8, fc=8)


def _make_env(ctx=None):
    kw = dict(num_users=3, num_end_devices=2, horizon=HORIZON)
    return jaxsg.make("dt_deploy", **kw) if ctx is None else ctx.make("dt_deploy", **kw)


def _summary(traj):
    return {"return": traj["reward"]["user"].mean(axis=-1).sum(),
            "latency_sum_s": traj["metrics"]["latency_sum_s"].mean()}


def _run_cell(cell, ctx):
    env, params = _make_env(ctx)
    method = cell.config["method"]
    if method == "proposed":
        config = ctx.learner_config(_config())
        fn = ctx.make_train(vd.make_train, env, config)

        def train():
            TRAINED.append(method)
            keys = jax.random.split(jax.random.PRNGKey(ctx.seed), SEEDS)
            return run_batched(lambda k: fn(k, params), keys)

        agent_params, _ = methods.train_or_load(
            "dt_deploy", method, {"config": core.config_json(config), "seed": ctx.seed,
                                  "seeds": SEEDS, "users": env.num_users}, train)

        def one(elem):
            policy = methods.learned_policy("dt_deploy", method, env, config, elem["agent"])
            return _summary(rollout(env, policy, elem["key"], elem["params"], HORIZON))

        per_seed = {"agent": agent_params}
    else:
        policy = methods.policy("dt_deploy", method, env)

        def one(elem):
            return _summary(rollout(env, policy, elem["key"], elem["params"], HORIZON))

        per_seed = None
    out, index = run_axis(one, params, [{}], seeds=SEEDS, episodes=EPISODES, seed=ctx.seed,
                          per_seed=per_seed)
    return [{"method": method, "seed": s, "episode": e, "users": env.num_users,
             **{k: float(v[i]) for k, v in out.items()}}
            for i, (_, s, e) in enumerate(index)]


register_experiment(Experiment(
    name=NAME, scenario="dt_deploy", title="tiny learned dt_deploy cell",
    cells=lambda scale: [Cell("proposed", {"method": "proposed"}),
                         Cell("rd", {"method": "rd"})],
    run_cell=_run_cell, default=False), replace=True)


def _cell(out, cell):
    return read_json_or_none(grid.cell_path(out, "smoke", NAME, cell))


# ---------------------------------------------------------------- validation
def test_parse_value():
    assert methods.parse_value("12") == 12
    assert methods.parse_value("1e-3") == 1e-3
    assert methods.parse_value("true") is True
    assert methods.parse_value("(64, 64)") == (64, 64)
    assert methods.parse_value("[8]") == (8,)
    assert methods.parse_value("vdn") == "vdn"


def test_resolve_overrides_namespace():
    ov = methods.resolve_overrides(
        ["num_users=12", "sgin.num_mbs=2", "value_decomp.lr=5e-4", "madfrl.actor_lr=1"],
        ["dt_deploy", "edge_assoc", "sgin"])
    assert ov.env == {"dt_deploy": {"num_users": 12}, "edge_assoc": {"num_users": 12},
                      "sgin": {"num_mbs": 2}}
    assert ov.learner == {"value_decomp": {"lr": 5e-4}, "madfrl": {"actor_lr": 1.0}}
    assert isinstance(ov.learner["madfrl"]["actor_lr"], float)  # int coerced to the field
    # learner overrides reach only learner cells of scenarios that train that learner
    assert ov.for_cell("dt_deploy", "proposed") == {"dt_deploy.num_users": 12,
                                                     "value_decomp.lr": 5e-4}
    assert ov.for_cell("dt_deploy", "rd") == {"dt_deploy.num_users": 12}
    assert ov.for_cell("spectrum", "proposed") == {}
    assert not methods.resolve_overrides([], ["sgin"])


@pytest.mark.parametrize("item, scenarios, words", [
    ("num_userz=3", ["dt_deploy"], ["num_userz", "no selected scenario"]),
    ("num_users=-3", ["dt_deploy"], ["num_users", ">= 1"]),
    ("num_users=3.5", ["dt_deploy"], ["num_users"]),
    ("sgin.num_users=3", ["sgin"], ["sgin.num_users", "num_users"]),
    ("sgin.num_mbs=2", ["dt_deploy"], ["sgin", "no selected experiment"]),
    ("foo.bar=1", ["sgin"], ["foo", "neither a scenario", "nor a learner"]),
    ("madfrl.lr=1e-3", ["sgin"], ["madfrl.lr", "no field 'lr'", "actor_lr"]),
    ("value_decomp.lr=fast", ["dt_deploy"], ["value_decomp.lr", "float"]),
    ("value_decomp.mixer=bogus", ["dt_deploy"], ["value_decomp.mixer"]),
    ("num_users", ["dt_deploy"], ["KEY=VALUE"]),
])
def test_bad_overrides_name_the_item(item, scenarios, words):
    with pytest.raises(ValueError) as err:
        methods.resolve_overrides([item], scenarios)
    for word in words:
        assert word in str(err.value), str(err.value)


def test_bad_set_exits_2_before_any_compute(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        grid.main(["--scale", "smoke", "--experiment", NAME, "--out", str(tmp_path),
                   "--set", "num_users=0"])
    assert err.value.code == 2
    assert "--set num_users=0" in capsys.readouterr().err
    assert not any(tmp_path.rglob("*.json"))


# --------------------------------------------------- records, resume, eval-only
def test_overrides_are_recorded_hashed_and_eval_only_reproduces(tmp_path, capsys):
    out = tmp_path / "res"
    base = ["--scale", "smoke", "--experiment", NAME, "--out", str(out)]
    TRAINED.clear()
    assert grid.main(base) == 0
    plain = _cell(out, "proposed")
    assert "overrides" not in plain and plain["policies"]
    assert TRAINED == ["proposed"]
    saved = grid.policy_dir(grid.RunContext("smoke", 0, grid.run_dir(out, "smoke")))
    assert (saved / plain["policies"][0]).exists()

    # --eval-only: no training, the stored records reproduced bit for bit
    TRAINED.clear()
    assert grid.main(base + ["--eval-only"]) == 0
    assert TRAINED == []
    err = capsys.readouterr().err
    assert f"{NAME}/proposed: eval-only records reproduce the stored ones exactly" in err
    again = _cell(out, "proposed")
    assert again["records"] == plain["records"] and again["eval_only"] is True
    report = (grid.run_dir(out, "smoke") / "report.md").read_text()
    assert "2 reproduce their stored records exactly" in report

    # overrides: recorded in the cell file, each record and the report; they change the
    # config hash (recompute) only of the cells they concern
    TRAINED.clear()
    assert grid.main(base + ["--set", "num_users=4", "--set", "value_decomp.hidden=6"]) == 0
    assert TRAINED == ["proposed"]
    learned, rd = _cell(out, "proposed"), _cell(out, "rd")
    assert learned["overrides"] == {"dt_deploy.num_users": 4, "value_decomp.hidden": 6}
    assert rd["overrides"] == {"dt_deploy.num_users": 4}
    assert learned["config_hash"] != plain["config_hash"]
    assert {r["users"] for r in learned["records"]} == {4}
    assert learned["policies"] != plain["policies"]
    rows = read_records_jsonl(grid.run_dir(out, "smoke") / NAME / "records.jsonl")
    assert {r["overrides"] for r in rows if r["cell"] == "proposed"} == {
        "dt_deploy.num_users=4; value_decomp.hidden=6"}
    csv_head = (grid.run_dir(out, "smoke") / NAME / "records.csv").read_text().split("\n")[0]
    assert csv_head.startswith("experiment,cell,overrides,method,")
    report = (grid.run_dir(out, "smoke") / "report.md").read_text()
    assert "overrides (`--set`): dt_deploy.num_users=4; value_decomp.hidden=6" in report

    # the same overrides again: reused; without them: recomputed (config changed)
    TRAINED.clear()
    assert grid.main(base + ["--set", "value_decomp.hidden=6", "--set", "num_users=4"]) == 0
    assert TRAINED == []
    assert grid.main(base + ["--cells", "rd"]) == 0
    assert "overrides" not in _cell(out, "rd")
    assert "config changed (overrides)" in capsys.readouterr().err


def test_eval_only_without_saved_policy_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved policy"):
        grid.main(["--scale", "smoke", "--experiment", NAME, "--out", str(tmp_path),
                   "--eval-only", "--cells", "proposed"])


def test_cell_file_with_overrides_survives_report_only(tmp_path):
    out = tmp_path / "res"
    base = ["--scale", "smoke", "--experiment", NAME, "--out", str(out), "--cells", "rd"]
    assert grid.main(base + ["--set", "horizon=3"]) == 0
    assert grid.main(["--scale", "smoke", "--out", str(out), "--report-only"]) == 0
    rows = read_records_jsonl(grid.run_dir(out, "smoke") / NAME / "records.jsonl")
    assert rows and all(r["overrides"] == "dt_deploy.horizon=3" for r in rows)
    assert json.loads(json.dumps(_cell(out, "rd")["overrides"])) == {"dt_deploy.horizon": 3}


def _fake_make_train(env, config):
    """A learner factory that trains nothing (cheap), for the eval-only contract."""
    return lambda key, params: {"hidden": config.hidden, "users": env.num_users}


register_experiment(Experiment(
    name="_trains_outside", scenario="dt_deploy", title="trains outside train_or_load",
    cells=lambda scale: [Cell("proposed", {"method": "proposed"})],
    run_cell=lambda cell, ctx: [{"method": "proposed", "seed": 0, **ctx.make_train(
        _fake_make_train, _make_env(ctx)[0], _config())(jax.random.PRNGKey(0), None)}],
    default=False), replace=True)


def test_eval_only_refuses_training_explicitly(tmp_path):
    """No patching: ``ctx.make_train`` applies the learner overrides and, under
    ``--eval-only``, returns a train function that raises (not even built), so a cell that
    trains outside ``train_or_load`` fails instead of silently retraining."""
    make, make_train = jaxsg.make, vd.make_train
    env, _ = _make_env()
    ctx = RunContext("smoke", overrides={"value_decomp.hidden": 4})
    assert ctx.make_train(_fake_make_train, env, _config())(None, None)["hidden"] == 4
    refusing = RunContext("smoke", eval_only=True).make_train(vd.make_train, env, _config())
    with pytest.raises(RuntimeError, match="--eval-only.*outside sweeps.methods.train_or_load"):
        refusing(jax.random.PRNGKey(0), env.default_params)
    base = ["--scale", "smoke", "--experiment", "_trains_outside", "--out", str(tmp_path)]
    assert grid.main(base + ["--set", "value_decomp.hidden=5"]) == 0
    (rec,) = _cell_of(tmp_path, "_trains_outside", "proposed")["records"]
    assert rec["hidden"] == 5
    with pytest.raises(RuntimeError, match="train_or_load"):
        grid.main(base + ["--eval-only"])
    assert jaxsg.make is make and vd.make_train is make_train  # nothing was patched


def _cell_of(out, name, cell):
    return read_json_or_none(grid.cell_path(out, "smoke", name, cell))


def test_cli_set_num_users_on_a_dt_deploy_experiment(tmp_path):
    """The issue's check: the override reaches the env and shows in the records."""
    out = tmp_path / "res"
    assert grid.main(["--scale", "smoke", "--set", "num_users=12", "--experiment",
                      "dt_deploy_fig7", "--cells", "rd", "--out", str(out)]) == 0
    rows = read_records_jsonl(grid.run_dir(out, "smoke") / "dt_deploy_fig7" / "records.jsonl")
    assert rows and {r["overrides"] for r in rows} == {"dt_deploy.num_users=12"}
    # every user's DT is placed somewhere each step: the counts add up to 12 users
    for r in rows:
        assert r["count_local"] + r["count_end"] + r["count_cloud"] == pytest.approx(12.0)
