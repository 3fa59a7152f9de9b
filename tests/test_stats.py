"""sweeps.stats: Student-t CIs, non-finite counting and paired comparisons."""

import math

import numpy as np
import pytest
from scipy import stats as st

from sweeps.stats import compare, mean_ci, paired_difference, per_seed


def test_mean_ci_matches_the_student_t_formula():
    x = [1.0, 2.0, 4.0, 7.0]
    e = mean_ci(x)
    hw = st.t.ppf(0.975, 3) * np.std(x, ddof=1) / 2.0
    assert e.mean == pytest.approx(3.5) and e.half_width == pytest.approx(hw)
    assert e.n == e.n_total == 4
    assert e.fmt(3) == f"3.5 ± {hw:.3g} (n = 4)"


def test_single_value_has_an_undefined_interval():
    e = mean_ci([2.0])
    assert e.n == 1 and not e.defined and math.isnan(e.half_width)
    assert "CI undefined (n = 1)" in e.fmt()
    assert not e.excludes_zero()


def test_non_finite_values_are_counted_not_dropped_silently():
    e = mean_ci([1.0, float("nan"), 3.0, None, float("inf")])
    assert (e.n, e.n_total) == (2, 5) and e.mean == pytest.approx(2.0)
    assert "n = 2/5 finite" in e.fmt()
    assert mean_ci([float("nan")]).fmt().startswith("no finite value")


def test_per_seed_averages_episodes_and_keeps_a_bad_episode_visible():
    recs = [{"seed": 0, "x": 1.0}, {"seed": 0, "x": 3.0}, {"seed": 1, "x": None},
            {"seed": 1, "x": 2.0}]
    ps = per_seed(recs, "x")
    assert ps[0] == 2.0 and math.isnan(ps[1])


def test_paired_comparison_uses_common_seeds_only():
    a = {0: 10.0, 1: 11.0, 2: 12.0, 3: 99.0}
    b = {0: 9.0, 1: 10.1, 2: 10.9}
    d = paired_difference(a, b)
    assert d.n_total == 3 and d.mean == pytest.approx(1.0, abs=0.1)
    c = compare(a, b, names=("A", "B"))
    assert c.winner == "A" and c.text().startswith("A beats B")
    # lower is better: the same difference makes B the winner
    assert compare(a, b, names=("A", "B"), higher_is_better=False).winner == "B"


def test_noisy_difference_is_no_significant_difference():
    rng = np.random.default_rng(0)
    a = dict(enumerate(rng.normal(0, 1, 5)))
    b = {k: v + rng.normal(0, 1) for k, v in a.items()}
    c = compare({0: 1.0, 1: -1.0, 2: 0.5}, {0: 0.0, 1: 0.0, 2: 0.0})
    assert c.winner is None and c.text().startswith("no significant difference")
    assert compare(a, b).diff.n == 5


def test_bad_level_is_rejected():
    with pytest.raises(ValueError, match="level"):
        mean_ci([1.0, 2.0], level=1.5)
