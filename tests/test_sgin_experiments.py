"""The sgin paper-figure experiments: registration and one real smoke cell."""

import math

import numpy as np

from sweeps.experiments import Cell, RunContext, get_experiment, list_experiments
from sweeps.experiments import sgin as sgin_exps


def test_every_paper_figure_is_registered():
    names = {e.name for e in list_experiments()}
    assert {f"sgin_fig{i}" for i in range(4, 12)} <= names
    for fig in (7, 8, 9, 10, 11):
        cells = get_experiment(f"sgin_fig{fig}").cells("default")
        assert [c.config["method"] for c in cells] == list(sgin_exps.HEURISTIC_METHODS)
    users = [c.config["users"] for c in get_experiment("sgin_fig4").cells("default")]
    assert users == [12, 20, 28]


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
