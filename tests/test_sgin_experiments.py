"""The sgin paper-figure experiments: registration and one real smoke cell."""

import math

import numpy as np
import pytest

from sweeps.experiments import Cell, RunContext, get_experiment, list_experiments
from sweeps.experiments import sgin as sgin_exps


def test_every_paper_figure_is_registered():
    names = {e.name for e in list_experiments()}
    assert {f"sgin_fig{i}" for i in range(4, 12)} <= names
    learned = sgin_exps.LEARNED_METHODS
    assert learned == ("maml_madfrl", "mappo")
    for scale in ("smoke", "default", "paper"):
        for fig in (7, 8, 9, 10, 11):
            cells = get_experiment(f"sgin_fig{fig}").cells(scale)
            expected = list(sgin_exps.HEURISTIC_METHODS)
            if fig in sgin_exps.LEARNED_FIGURES[scale]:
                expected += list(learned)
            assert [c.config["method"] for c in cells] == expected
    assert sgin_exps.LEARNED_FIGURES["paper"] == tuple(range(4, 12))
    users = [c.config["users"] for c in get_experiment("sgin_fig4").cells("default")]
    assert users == [12, 20, 28]
    paper = [(c.config["method"], c.config["users"])
             for c in get_experiment("sgin_fig4").cells("paper")]
    assert ("maml_madfrl", 28) in paper and ("best_response", 12) in paper


def test_smoke_cell_sweeps_the_axis_and_reproduces_the_overhead_trend():
    exp = get_experiment("sgin_fig10")
    records = exp.run_cell(Cell("mamcc", {"figure": 10, "method": "mamcc"}),
                           RunContext(scale="smoke", seed=0))
    scale = sgin_exps.SCALES["smoke"]
    assert len(records) == scale["points"] * scale["seeds"]
    assert all(math.isfinite(r[k]) for r in records for k in sgin_exps.METRICS)
    deltas = sorted({r["value"] for r in records})
    overhead = [np.mean([r["privacy_overhead_ms"] for r in records if r["value"] == d])
                for d in deltas]
    # eq. (8)-(9): C2 and the broadcast part of C3 grow linearly with delta
    assert np.all(np.diff(overhead) > 0)
    text = exp.report(records)
    assert "Paper:" in text and "reproduced by 1/1 series" in text


def test_sgin_grid_gives_the_same_numbers_on_1_and_4_host_devices(tmp_path):
    """`python -m sweeps.grid` on a real sgin figure: device count must not change results."""
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
                        "--experiment", "sgin_fig7", "--out", str(out)],
                       cwd=root, env=env, check=True, capture_output=True, timeout=600)
        with open(out / "smoke" / "sgin_fig7" / "records.csv") as f:
            rows = list(csv.DictReader(f))
        cells = [p.read_text() for p in (out / "smoke" / "sgin_fig7" / "cells").glob("*.json")]
        assert any(f'"cpu:{devices - 1}"' in c or f"cpu:{devices - 1}" in c for c in cells)
        return rows

    one, four = run(1), run(4)
    assert len(one) == len(four) > 0
    for a, b in zip(one, four):
        assert (a["method"], a["value"], a["seed"]) == (b["method"], b["value"], b["seed"])
        for k in sgin_exps.METRICS:
            np.testing.assert_allclose(float(a[k]), float(b[k]), rtol=1e-5, err_msg=k)


def test_learned_smoke_cell_trains_per_axis_value_and_reports_the_paper_point():
    """A learned series: one training per (price, seed) in one batch, then evaluation."""
    exp = get_experiment("sgin_fig9")
    cell = next(c for c in exp.cells("smoke") if c.config["method"] == "maml_madfrl")
    records = exp.run_cell(cell, RunContext(scale="smoke", seed=0))
    scale = sgin_exps.SCALES["smoke"]
    assert len(records) == scale["points"] * scale["seeds"]
    assert {r["method"] for r in records} == {"maml_madfrl"}
    assert all(math.isfinite(r[k]) for r in records for k in (*sgin_exps.METRICS,
                                                               "follower_reward"))
    prices = sorted({r["value"] for r in records})
    assert prices == [2.0, 6.0, 10.0]
    # fixed posted price: every record's mean price is its axis value
    for r in records:
        np.testing.assert_allclose(r["price_mean"], r["value"], rtol=1e-5)
    mamcc = exp.run_cell(Cell("mamcc", {"figure": 9, "method": "mamcc"}),
                         RunContext(scale="smoke", seed=0))
    text = exp.report(records + mamcc)
    assert "Proposed vs baselines at price λ = 6: MAMCC: paper ≈45 %, ours" in text


def test_compare_report_states_the_claim_and_the_rational_profit_bound():
    import jaxsg
    from sweeps.experiments import sgin_learners as sl

    _, params = jaxsg.make("sgin", payoff="paper")
    # payoff="paper": 48 DTs buying f_min = 0.5 GHz at λ_max = 10 with unit cost c = 1
    assert sl.rational_profit_ceiling(48, params) == pytest.approx(48 * 9 * 0.5)
    rows = {"mamcc": (521.0, 780.0), "best_response": (588.0, 120.0),
            "maml_madfrl": (522.0, 100.0)}
    records = [{"method": m, "throughput_mbit": t, "leader_profit": p, "queue_mean_mbit": 6.0,
                "offload_fraction": 1.0, "follower_reward": 1.0, "num_followers": 48}
               for m, (t, p) in rows.items()]
    report = sl._compare_report(records)
    assert "throughput 522 vs best paper heuristic (MAMCC) 521: reached" in report
    assert "cloud profit 100 vs MAMCC 780: not reached" in report
    # the f_min bound holds under payoff="paper" only; the default (cloud) report omits it
    assert ("= 216 per slot" in report) == (jaxsg.make("sgin")[0].payoff == "paper")
