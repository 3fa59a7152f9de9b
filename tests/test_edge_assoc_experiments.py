"""``sweeps/experiments/edge_assoc.py``: the Fig. 5 and poisoning claims are computed from
the records and can fail (each tested both ways on synthetic records), and the poisoning
cell runs every defence configuration over its seeds."""

import numpy as np
import pytest

from sweeps import figures, stats
from sweeps.experiments import RunContext
from sweeps.experiments import edge_assoc as E


def _fig5_records(proposed_offset):
    rng = np.random.default_rng(0)
    out = []
    for m, base in (("proposed", 7.0 + proposed_offset), ("random", 9.0), ("average", 8.0),
                    ("best_constant", 7.6), ("orthogonal", 8.1), ("search", 6.5)):
        for seed in range(3):
            for t in range(4):
                out.append({"scenario": "edge_assoc", "method": m, "series": m,
                            "axis": "round", "axis_value": t + 1.0, "seed": seed,
                            "episode": 0, "objective_s": base + 0.01 * rng.normal(),
                            "time_cost_s": 0.7 * base})
    return out


@pytest.mark.parametrize("offset, expect", [(0.0, [stats.REPRODUCED] * 3 + [
    stats.NOT_REPRODUCED]), (3.0, [stats.NOT_REPRODUCED] * 4)])
def test_fig5_claims_follow_the_records(offset, expect):
    claims = figures.figure_claims(E.FIG5, _fig5_records(offset))
    # paper claim (vs random and average), then best constant, orthogonal, search
    assert [c.verdict.label for c in claims] == expect
    assert "T/(1 − θ_G)" in claims[0].claim
    # a reference that was not run is said so
    partial = [r for r in _fig5_records(offset) if r["method"] != "search"]
    assert figures.figure_claims(E.FIG5, partial)[3].verdict.label == stats.NOT_RUN


def test_fig5_report_pools_the_rounds_per_seed():
    text = figures.report_figure(E.FIG5, _fig5_records(0.0))
    assert "T/(1 − θ_G) per round" in text and "(n = 3)" in text
    assert "| 1 | 2 |" not in text  # one column per table, not one per round


def _poison_records(dpos_acc):
    out = []
    for d in E.DEFENSES:
        for f in E.POISON_FRACTIONS:
            for seed in range(5):
                acc = dpos_acc if d != "none" else 0.1
                out.append({"method": d, "defense": d, "poisoned_fraction": f, "seed": seed,
                            "test_accuracy": acc + 0.001 * seed})
    return out


def test_poison_claims_follow_the_records():
    good = E._poison_claims(_poison_records(0.85))
    bad = E._poison_claims(_poison_records(0.1))
    assert len(good) == len(E.DEFENSES) - 1
    assert all(c.verdict.label == stats.REPRODUCED for c in good)
    assert all(c.verdict.label == stats.NOT_REPRODUCED for c in bad)


def test_poison_cell_runs_every_fraction_and_seed():
    s = E._scale("smoke")
    cell = next(c for c in E._poison_cells("smoke") if c.config["defense"] == "dpos_colluding")
    records = E._poison_run(cell, RunContext("smoke", 0, None))
    assert len(records) == len(E.POISON_FRACTIONS) * s["poison_seeds"]
    acc = np.array([r["test_accuracy"] for r in records])
    assert np.all((acc >= 0) & (acc <= 1))
    assert {r["method"] for r in records} == {"dpos_colluding"}
    assert set(E.DEFENSES) == {"none", "dpos", "dpos_colluding", "mbs_oracle", "median",
                               "trimmed_mean"}
    assert E._scale("default")["poison_seeds"] >= 5


def test_fig5_learned_cell_is_saved_and_eval_only_reproduces_it(tmp_path, capsys):
    """``python -m sweeps.grid --scale smoke --experiment edge_assoc_fig5 --cells proposed``
    with ``--set`` overrides of the env and of the MADDPG config: they reach both (passed
    explicitly in ``RunContext.overrides``; the saved policy's identity shows the env size
    and the config it was trained with); the trained batch is saved through
    ``sweeps.methods.train_or_load``; with ``--eval-only`` the cell is recomputed from the
    saved policy (no training) and its evaluation records are identical."""
    import json

    from sweeps import grid
    from sweeps.io import read_json_or_none

    out = tmp_path / "res"
    base = ["--scale", "smoke", "--experiment", "edge_assoc_fig5", "--cells", "proposed",
            "--out", str(out), "--set", "edge_assoc.num_users=8",
            "--set", "maddpg.hidden=(16, 16)"]

    def cell():
        return read_json_or_none(grid.cell_path(out, "smoke", "edge_assoc_fig5", "proposed"))

    assert grid.main(base) == 0
    first = cell()
    assert first["policies"] and first["policies"][0].startswith("edge_assoc/proposed-")
    saved = grid.policy_dir(grid.RunContext("smoke", 0, grid.run_dir(out, "smoke")))
    assert (saved / first["policies"][0]).exists()
    identity = json.loads((saved / first["policies"][0]).with_suffix(".json").read_text())
    assert identity["sizes"][0] == 8 and json.loads(identity["config"])["hidden"] == [16, 16]
    assert first["overrides"] == {"edge_assoc.num_users": 8, "maddpg.hidden": [16, 16]}
    assert grid.main(base + ["--eval-only"]) == 0
    again = cell()
    assert again["eval_only"] is True and again["policies"] == first["policies"]
    assert again["records"] == first["records"] and len(first["records"]) > 0
    assert "edge_assoc_fig5/proposed: eval-only records reproduce the stored ones exactly" \
        in capsys.readouterr().err
