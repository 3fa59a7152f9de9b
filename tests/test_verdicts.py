"""Every verdict function says "reproduced" on one synthetic record set and
"not reproduced" on another (specs/evaluation.md §4)."""

import numpy as np
import pytest

from sweeps import stats
from sweeps.stats import NOT_REPRODUCED, NOT_RUN, REPRODUCED


def _records(series: dict, seeds=5, noise=0.1, episodes=2, seed=0):
    """series: {(method, axis_value): mean}; per-seed values with small noise."""
    rng = np.random.default_rng(seed)
    out = []
    for (m, x), mu in series.items():
        for s in range(seeds):
            for e in range(episodes):
                out.append({"method": m, "axis": "x", "axis_value": x, "seed": s,
                            "episode": e, "y_s": mu + noise * rng.standard_normal()})
    return out


def test_trend_verdict_both_ways():
    up = _records({("a", 1.0): 1.0, ("a", 2.0): 1.5, ("a", 3.0): 2.0})
    flat = _records({("a", 1.0): 1.0, ("a", 2.0): 1.0, ("a", 3.0): 1.0}, noise=0.5)
    assert stats.trend_verdict(up, "y_s", "up", method="a").label == REPRODUCED
    assert stats.trend_verdict(up, "y_s", "down", method="a").label == NOT_REPRODUCED
    assert stats.trend_verdict(flat, "y_s", "up", method="a").label == NOT_REPRODUCED
    assert stats.trend_verdict(up, "y_s", "up", method="b").label == NOT_RUN


def test_beats_verdict_both_ways():
    recs = _records({("a", 0.0): 1.0, ("b", 0.0): 2.0})
    v = stats.beats_verdict(recs, "y_s", "a", "b", higher_is_better=False)
    assert v.label == REPRODUCED and "a beats b" in v.evidence
    v = stats.beats_verdict(recs, "y_s", "a", "b", higher_is_better=True)
    assert v.label == NOT_REPRODUCED and "b beats a" in v.evidence
    same = _records({("a", 0.0): 1.0, ("b", 0.0): 1.0}, noise=1.0)
    v = stats.beats_verdict(same, "y_s", "a", "b", higher_is_better=True)
    assert v.label == NOT_REPRODUCED and "no significant difference" in v.evidence
    assert stats.beats_verdict(recs, "y_s", "a", "c", higher_is_better=True).label == NOT_RUN


def test_best_of_verdict_both_ways():
    recs = _records({("a", 0.0): 3.0, ("b", 0.0): 2.0, ("c", 0.0): 1.0})
    assert stats.best_of_verdict(recs, "y_s", "a", ["b", "c"],
                                 higher_is_better=True).label == REPRODUCED
    assert stats.best_of_verdict(recs, "y_s", "b", ["a", "c"],
                                 higher_is_better=True).label == NOT_REPRODUCED
    assert stats.best_of_verdict(recs, "y_s", "a", ["b", "z"],
                                 higher_is_better=True).label == NOT_RUN


def test_close_verdict_both_ways():
    near = _records({("a", 0.0): 1.02, ("ref", 0.0): 1.0}, noise=0.01)
    far = _records({("a", 0.0): 1.5, ("ref", 0.0): 1.0}, noise=0.01)
    assert stats.close_verdict(near, "y_s", "a", "ref", 0.1).label == REPRODUCED
    assert stats.close_verdict(far, "y_s", "a", "ref", 0.1).label == NOT_REPRODUCED


def test_monotone_verdict_both_ways():
    recs = _records({("a", 1.0): 1.0, ("a", 2.0): 2.0, ("a", 3.0): 3.0})
    groups = {x: stats.select(recs, axis_value=x) for x in (1.0, 2.0, 3.0)}
    assert stats.monotone_verdict(groups, "y_s", "up").label == REPRODUCED
    assert stats.monotone_verdict(groups, "y_s", "down").label == NOT_REPRODUCED


def test_single_seed_can_never_reproduce():
    recs = _records({("a", 1.0): 1.0, ("a", 2.0): 5.0}, seeds=1)
    v = stats.trend_verdict(recs, "y_s", "up", method="a")
    assert v.label == NOT_REPRODUCED and "CI undefined" in v.evidence


def test_verdict_labels_are_checked():
    with pytest.raises(ValueError, match="verdict label"):
        stats.Verdict("probably", "")
    assert stats.formula_check("x").label == stats.FORMULA_CHECK
    assert stats.not_run(["m"]).label == NOT_RUN
