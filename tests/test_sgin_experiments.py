"""The sgin paper-figure experiments: registration and one real smoke cell."""

import math

import numpy as np
import pytest

from sweeps import methods
from sweeps.experiments import Cell, RunContext, get_experiment, list_experiments
from sweeps.experiments import sgin as sgin_exps


def test_every_paper_figure_is_registered():
    names = {e.name for e in list_experiments()}
    assert {f"sgin_fig{i}" for i in range(4, 12)} <= names
    learned = sgin_exps.LEARNED_METHODS
    assert learned == ("maml_madfrl", "mappo")
    for scale in ("smoke", "default", "paper"):
        for fig in (7, 8, 9, 10, 11):
            exp = get_experiment(f"sgin_fig{fig}")
            cells = exp.cells(scale)
            expected = list(sgin_exps.HEURISTIC_METHODS)
            if fig in sgin_exps.LEARNED_FIGURES[scale]:
                expected += list(learned)
            assert [c.config["method"] for c in cells] == expected
            assert exp.claims is not None
    for scale in ("smoke", "default", "paper"):  # Figs. 4, 5, 7-11 (issue 16 item 6)
        assert sgin_exps.LEARNED_FIGURES[scale] == (4, 5, 7, 8, 9, 10, 11)
        fig6 = [c.config["method"] for c in get_experiment("sgin_fig6").cells(scale)]
        assert set(fig6) == {"stackelberg"}
    cells = [(c.config["method"], c.config["users"])
             for c in get_experiment("sgin_fig4").cells("default")]
    assert cells == [(m, u) for m in ("best_response", "maml_madfrl") for u in (12, 20, 28)]
    paper = [(c.config["method"], c.config["users"])
             for c in get_experiment("sgin_fig4").cells("paper")]
    assert ("maml_madfrl", 28) in paper and ("best_response", 12) in paper


def test_smoke_cell_sweeps_the_axis_and_labels_the_overhead_trend_a_formula_check():
    exp = get_experiment("sgin_fig10")
    records = exp.run_cell(Cell("marto", {"method": "marto"}), RunContext(scale="smoke", seed=0))
    scale = sgin_exps.SCALES["smoke"]
    assert len(records) == scale["points"] * scale["seeds"] * scale["episodes"]
    assert all(math.isfinite(r[k]) for r in records for k in sgin_exps.METRICS)
    for key in ("scenario", "method", "axis", "axis_value", "seed", "episode"):
        assert all(key in r for r in records)
    deltas = sorted({r["axis_value"] for r in records})
    overhead = [np.mean([r["privacy_overhead_ms"] for r in records if r["axis_value"] == d])
                for d in deltas]
    # eq. (8)-(9): C2 and the broadcast part of C3 grow linearly with delta
    assert np.all(np.diff(overhead) > 0)
    text = exp.report(records)
    assert "± " in text and "(n = 2)" in text
    claims = exp.claims(records)
    assert claims[0].verdict.label == "formula check"
    # the paper's point (δ = 0.8) is not on the smoke grid; the proposed method is not run
    assert claims[1].verdict.label == "not run at this scale"


def test_sgin_grid_gives_the_same_numbers_on_1_and_4_host_devices(tmp_path):
    """`python -m sweeps.grid` on a real sgin figure: device count must not change results
    (two heuristic cells and one learned cell, whose training batch is sharded too; the
    other cells add compile time, not coverage)."""
    import csv
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def run(devices):
        env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(root))
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        out = tmp_path / f"d{devices}"
        subprocess.run([sys.executable, "-m", "sweeps.grid", "--scale", "smoke",
                        "--experiment", "sgin_fig7", "--cells", "marto,best_response,mappo",
                        "--out", str(out)],
                       cwd=root, env=env, check=True, capture_output=True, timeout=600)
        exp_dir = out / "smoke" / "seed-0" / "sgin_fig7"
        with open(exp_dir / "records.csv") as f:
            rows = list(csv.DictReader(f))
        cells = [p.read_text() for p in (exp_dir / "cells").glob("*.json")]
        assert any(f'"cpu:{devices - 1}"' in c or f"cpu:{devices - 1}" in c for c in cells)
        return rows

    one, four = run(1), run(4)
    assert len(one) == len(four) > 0
    for a, b in zip(one, four):
        assert (a["method"], a["axis_value"], a["seed"]) == (b["method"], b["axis_value"],
                                                              b["seed"])
        for k in sgin_exps.METRICS:
            np.testing.assert_allclose(float(a[k]), float(b[k]), rtol=1e-5, err_msg=k)


def test_learned_smoke_cell_reports_the_paper_point():
    """A learned series (the shared training, adapted per price) beside MAMCC."""
    exp = get_experiment("sgin_fig9")
    cell = next(c for c in exp.cells("smoke") if c.config["method"] == "maml_madfrl")
    records = exp.run_cell(cell, RunContext(scale="smoke", seed=0))
    scale = sgin_exps.SCALES["smoke"]
    seeds = methods.train_seeds("sgin", "maml_madfrl", "smoke")
    assert len(records) == scale["points"] * seeds * scale["episodes"]
    assert {r["method"] for r in records} == {"maml_madfrl"}
    assert all(math.isfinite(r[k]) for r in records for k in (*sgin_exps.METRICS,
                                                               "follower_reward"))
    mamcc = exp.run_cell(Cell("mamcc", {"method": "mamcc"}), RunContext(scale="smoke", seed=0))
    claims = exp.claims(records + mamcc)
    assert claims[0].verdict.label == "formula check"
    # MARTO, MAGCS and MAPPO did not run: the point claim is not judged on the others
    assert claims[1].verdict.label == "not run at this scale"
    assert "marto" in claims[1].verdict.evidence


def test_compare_report_has_cis_and_the_claims_compare_paired_seeds():
    import jaxsg
    from sweeps.experiments import sgin_learners as sl

    _, params = jaxsg.make("sgin", payoff="paper")
    # payoff="paper": 48 DTs buying f_min = 0.5 GHz at λ_max = 10 with unit cost c = 1
    assert sl.rational_profit_ceiling(48, params) == pytest.approx(48 * 9 * 0.5)
    rng = np.random.default_rng(0)
    means = {"marto": (500.0, 700.0), "mamcc": (521.0, 780.0), "magcs": (510.0, 300.0),
             "mappo": (400.0, 90.0), "maml_madfrl": (600.0, 100.0),
             "best_constant": (550.0, 100.0), "madfrl": (650.0, 100.0),
             "best_response": (700.0, 50.0), "stackelberg": (690.0, 120.0)}
    records = [{"method": m, "seed": s, "served_mbit": t + rng.normal(),
                "throughput_mbit": 2 * t, "follower_reward": t / 100 + rng.normal(0, 0.01),
                "leader_profit_price": p + rng.normal(), "queue_mean_mbit": 6.0,
                "offload_fraction": 1.0, "num_followers": 48}
               for m, (t, p) in means.items() for s in range(5)]
    text = sl._compare_report(records)
    assert "(n = 5)" in text and "served throughput" in text and "capacity" in text
    # the f_min bound holds under payoff="paper" only; the default (cloud) report omits it
    assert ("= 216 per slot" in text) == (jaxsg.make("sgin")[0].payoff == "paper")
    # paired gaps: every method against best response and the Stackelberg reference
    gaps = "\n".join(sl.gap_lines(records))
    row = next(line for line in gaps.splitlines() if line.startswith("| MAPPO |"))
    assert row.count("(n = 5)") == 3 and "| -2.99" in row  # follower reward 4 − 7 = −3
    reward, served, constant, scratch = sl._compare_claims(records)
    assert reward.verdict.label == "reproduced"  # 6 vs at most 5.21, every seed
    assert served.verdict.label == "reproduced"
    assert constant.verdict.label == "reproduced"  # 6 vs 5.5
    assert scratch.verdict.label == "not reproduced" and "madfrl beats maml_madfrl" in \
        scratch.verdict.evidence


def test_learners_share_the_env_step_budget_and_the_price_regime():
    from sweeps.experiments import sgin_learners as sl

    for scale in ("smoke", "default", "paper"):
        cfgs = sl.learner_configs(scale)
        budget = sl.env_steps("maml_madfrl", cfgs["maml_madfrl"])
        for m in ("madfrl", "mappo"):  # rounded up to whole updates
            steps = sl.env_steps(m, cfgs[m])
            per_update = cfgs[m].num_envs * getattr(cfgs[m], "num_steps", 1)
            assert budget <= steps < budget + per_update, (scale, m)
        # one price regime: no learner learns the leader in this comparison
        assert not cfgs["maml_madfrl"].madfrl.learn_leader
        assert not cfgs["madfrl"].learn_leader
    assert sl.learner_configs("default")["madfrl"].num_updates == 1080  # 320 meta + 4000


def test_compare_learned_cells_reproduce_under_eval_only(tmp_path, capsys):
    """Every learned comparison cell keeps its trained parameters; ``--eval-only`` loads
    them (no training: ``cell_run`` refuses it) and reproduces the records exactly."""
    from sweeps import grid
    from sweeps.io import read_json_or_none

    name = "sgin_learned_vs_heuristics"
    out = tmp_path / "res"
    base = ["--scale", "smoke", "--experiment", name, "--out", str(out),
            "--cells", "mappo", "--cells", "madfrl"]
    assert grid.main(base) == 0
    cells = {c: read_json_or_none(grid.cell_path(out, "smoke", name, c))
             for c in ("mappo", "madfrl")}
    assert all(c["policies"] for c in cells.values())
    assert grid.main(base + ["--eval-only"]) == 0
    err = capsys.readouterr().err
    for c, plain in cells.items():
        assert f"{name}/{c}: eval-only records reproduce the stored ones exactly" in err
        again = read_json_or_none(grid.cell_path(out, "smoke", name, c))
        assert again["records"] == plain["records"] and again["eval_only"] is True
