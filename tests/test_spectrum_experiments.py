"""spectrum experiments: the one bound of every gap, the fair-baseline verdicts (both ways),
the federated-learning effect and the security study's explanation, on synthetic records."""

import numpy as np

from sweeps import stats
from sweeps.experiments import spectrum as X


def _curve(method, series, seed, revenue, optimum, phase="eval", bins=10, sats=6, spread=1.0):
    """Binned records of one (series, seed): flat revenue after a ramp over the first 3 bins."""
    rows = []
    for b in range(bins):
        r = revenue * min(1.0, (b + 1) / 3)
        rows.append({"scenario": "spectrum", "method": method, "series": series,
                     "phase": phase, "axis": "none", "axis_value": 0.0, "seed": seed,
                     "episode": 0, "iteration": (b + 1) * 10, "satellites": sats,
                     "users": 60, "revenue_mean": r, "revenue_min": r - spread / 2,
                     "revenue_max": r + spread / 2, "price_mean": 2.0, "power_mean": 0.2,
                     "revenue_total": r * sats, "optimum_total": optimum * sats})
    return rows


def _fig10(proposed, best_constant, seeds=5):
    recs = []
    for s in range(seeds):
        jitter = 0.1 * s
        recs += _curve("proposed", "proposed (training)", s, proposed + jitter, 50.0, "train")
        recs += _curve("proposed", "proposed (greedy)", s, proposed + jitter, 50.0, "greedy")
        recs += _curve("ddqn", "ddqn (training)", s, 20.0 + jitter, 50.0, "train")
        recs += _curve("ddqn", "ddqn (greedy)", s, 20.0 + jitter, 50.0, "greedy")
        for m, v in (("average_budget", 10.0), ("average_budget_fair", 15.0),
                     ("best_constant", best_constant)):
            recs += _curve(m, m, s, v + 2 * jitter, 50.0)
    return recs


def test_gap_is_to_one_bound_for_every_method():
    rows = {r["series"]: r for r in X._tail_rows(_fig10(30.0, 25.0, seeds=1))}
    for row in rows.values():
        np.testing.assert_allclose(row["gap"], 1.0 - row["revenue"] / 50.0, rtol=1e-6)
    assert rows["best_constant"]["gap"] == 0.5
    assert "(greedy)" in X._report_fig10(_fig10(30.0, 25.0))


def _verdict(claims, text):
    (claim,) = [c for c in claims if text in c.claim]
    return claim.verdict.label


def test_fig10_fair_verdicts_both_ways():
    win = X._claims_fig10(_fig10(30.0, 25.0))
    assert _verdict(win, "proposed earns more than the best") == stats.REPRODUCED
    assert _verdict(win, "same power freedom") == stats.REPRODUCED
    lose = X._claims_fig10(_fig10(30.0, 35.0))
    assert _verdict(lose, "proposed earns more than the best") == stats.NOT_REPRODUCED
    assert _verdict(lose, "same power freedom") == stats.REPRODUCED
    # DDQN alone (greedy 20) is judged against the best constant on its own records
    assert _verdict(win, "DDQN alone earns more") == stats.NOT_REPRODUCED
    assert _verdict(X._claims_fig10(_fig10(30.0, 15.0)), "DDQN alone earns more") == (
        stats.REPRODUCED)
    # without the references' records the claim says "not run"
    only_learners = [r for r in _fig10(30.0, 25.0) if r["method"] in X.LEARNERS]
    only = X._claims_fig10(only_learners)
    assert _verdict(only, "proposed earns more than the best") == stats.NOT_RUN


def test_fl_effect_is_paired_per_satellite_count():
    recs = []
    for s in range(5):
        for sats, gain in ((10, 2.0), (20, -1.0)):
            recs += _curve("proposed", f"proposed S={sats}", s, 30.0 + gain + 0.1 * s, 50.0,
                           "train", sats=sats, spread=1.0)
            recs += _curve("ddqn", f"ddqn S={sats}", s, 30.0 + 0.1 * s, 50.0, "train",
                           sats=sats, spread=3.0)
    rows = X._tail_rows(recs)
    d10 = X._fl_effect(rows, 10, "revenue")
    d20 = X._fl_effect(rows, 20, "revenue")
    assert d10.n_total == 5 and d10.excludes_zero() and d10.low > 0
    assert d20.excludes_zero() and d20.high < 0
    np.testing.assert_allclose(X._fl_effect(rows, 10, "spread").mean, -2.0, atol=1e-9)
    text = X._report_fig7(recs)
    assert "Federated-learning effect" in text and d20.fmt() in text
    # the spread claim reads the proposed rows only: equal spreads → not reproduced
    assert X._claims_fig7(recs)[0].verdict.label == stats.NOT_REPRODUCED


def test_security_explanation_is_computed_from_the_records():
    def recs(mal_pay):
        out = []
        for s in range(5):
            for f, rev in ((0.0, 100.0), (0.5, 120.0)):
                paid = mal_pay if f > 0 else 0.0
                out.append({"weight": 0.0, "malicious_fraction": f, "seed": s,
                            "revenue_total": rev + s, "malicious_revenue": paid + 0.1 * s,
                            "honest_revenue": rev + s - paid - 0.1 * s,
                            "malicious_revenue_share": (paid + 0.1 * s) / (rev + s)})
        return out

    a, b = X._security_artefact(recs(30.0)), X._security_artefact(recs(5.0))
    assert a != b
    assert stats.paired_difference({s: 30.0 for s in range(5)}, {s: 0.0 for s in range(5)}
                                   ).fmt() in a
    assert "one malicious fraction only" in X._security_artefact(
        [r for r in recs(1.0) if r["malicious_fraction"] == 0.0])


def test_fig10_learned_cell_is_saved_and_reevaluated_exactly(tmp_path, capsys):
    """The learned cell trains through ``sweeps.methods.train_or_load``: its output is saved,
    and ``--eval-only`` loads it (``train_or_load`` refuses to train) and reproduces the
    records exactly."""
    from sweeps import grid
    from sweeps.io import read_json_or_none

    base = ["--scale", "smoke", "--experiment", "spectrum_fig10", "--out", str(tmp_path),
            "--cells", "proposed", "--set", "horizon=10"]
    assert grid.main(base) == 0
    stored = read_json_or_none(grid.cell_path(tmp_path, "smoke", "spectrum_fig10", "proposed"))
    (saved,) = stored["policies"]
    run = grid.run_dir(tmp_path, "smoke")
    assert (grid.policy_dir(grid.RunContext("smoke", 0, run)) / saved).exists()
    assert {r["phase"] for r in stored["records"]} == {"train", "greedy"}
    assert grid.main(base + ["--eval-only"]) == 0
    err = capsys.readouterr().err
    assert "spectrum_fig10/proposed: eval-only records reproduce the stored ones exactly" in err
    again = read_json_or_none(grid.cell_path(tmp_path, "smoke", "spectrum_fig10", "proposed"))
    assert again["records"] == stored["records"] and again["eval_only"] is True
