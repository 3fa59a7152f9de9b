"""Statistics and verdicts of the evaluation protocol (``specs/evaluation.md`` §3-4).

* :func:`mean_ci` — mean ± half-width of the Student-t 95 % confidence interval
  over seeds, with the number of finite values out of all values (non-finite
  values are counted and shown, never dropped silently). n = 1 gives an
  undefined interval (shown as such).
* :func:`paired_difference` / :func:`compare` — "A beats B" iff the 95 % CI of
  the paired difference over the common seeds excludes 0, else "no significant
  difference".
* Verdict functions return a :class:`Verdict`: one of :data:`REPRODUCED`,
  :data:`NOT_REPRODUCED`, :data:`FORMULA_CHECK`, :data:`NOT_RUN` and the numbers
  that decided it.

Records are tidy dicts (``method, axis, axis_value, seed, episode`` + metric
columns). The statistical unit is the seed: episodes of one seed are averaged
first (:func:`per_seed`), then the CI is taken over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
FORMULA_CHECK = "formula check"
NOT_RUN = "not run at this scale"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, FORMULA_CHECK, NOT_RUN)

LEVEL = 0.95


# ------------------------------------------------------------------ estimates
@dataclass(frozen=True)
class Estimate:
    """Mean and CI half-width over ``n`` finite values out of ``n_total``."""

    mean: float
    half_width: float  # NaN when n < 2 (undefined)
    n: int
    n_total: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def defined(self) -> bool:
        """True when the CI exists (at least two finite values)."""
        return self.n >= 2 and math.isfinite(self.half_width)

    def excludes_zero(self) -> bool:
        return self.defined and (self.low > 0 or self.high < 0)

    def n_text(self) -> str:
        return f"n = {self.n}" if self.n == self.n_total else f"n = {self.n}/{self.n_total} finite"

    def fmt(self, digits: int = 4) -> str:
        """``mean ± hw (n = k)``; ``CI undefined`` for n = 1; ``no finite value`` for n = 0."""
        if self.n == 0:
            return f"no finite value ({self.n_text()})"
        if not self.defined:
            return f"{self.mean:.{digits}g} ± CI undefined ({self.n_text()})"
        return f"{self.mean:.{digits}g} ± {self.half_width:.{digits}g} ({self.n_text()})"


def _as_array(values: Iterable[float]) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in values], np.float64)


def mean_ci(values: Iterable[float], level: float = LEVEL) -> Estimate:
    """Mean ± half-width of the Student-t ``level`` CI of the finite ``values``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = _as_array(values)
    finite = x[np.isfinite(x)]
    n = int(finite.size)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, int(x.size))
    mean = float(finite.mean())
    if n < 2:
        return Estimate(mean, math.nan, 1, int(x.size))
    sem = float(finite.std(ddof=1)) / math.sqrt(n)
    half = float(_st.t.ppf(0.5 + level / 2, n - 1)) * sem
    return Estimate(mean, half, n, int(x.size))


def paired_difference(a: Mapping, b: Mapping, level: float = LEVEL) -> Estimate:
    """CI of ``a[k] - b[k]`` over the keys (seeds) common to both mappings.

    ``n_total`` counts the common keys; pairs with a non-finite side are not finite.
    """
    common = [k for k in a if k in b]
    return mean_ci([_diff(a[k], b[k]) for k in common], level)


def _diff(x, y) -> float:
    if x is None or y is None:
        return math.nan
    return float(x) - float(y)


@dataclass(frozen=True)
class Comparison:
    """Outcome of a paired comparison of two series."""

    a: str
    b: str
    diff: Estimate  # a - b
    higher_is_better: bool

    @property
    def winner(self) -> str | None:
        if not self.diff.excludes_zero():
            return None
        a_higher = self.diff.low > 0
        return self.a if a_higher == self.higher_is_better else self.b

    def text(self) -> str:
        w = self.winner
        head = "no significant difference" if w is None else (
            f"{w} beats {self.b if w == self.a else self.a}")
        return f"{head} (paired {self.a} − {self.b}: {self.diff.fmt()})"


def compare(a: Mapping, b: Mapping, *, names: tuple[str, str] = ("A", "B"),
            higher_is_better: bool = True) -> Comparison:
    """Paired comparison of per-seed values ``a`` and ``b`` (dicts seed -> value)."""
    return Comparison(names[0], names[1], paired_difference(a, b), higher_is_better)


# ------------------------------------------------------------------ records
def select(records: Iterable[dict], **where) -> list[dict]:
    """Records whose fields equal every ``where`` item (floats compared with isclose)."""
    out = []
    for r in records:
        ok = True
        for k, v in where.items():
            rv = r.get(k)
            if isinstance(v, float) and isinstance(rv, (int, float)):
                ok = rv is not None and math.isclose(float(rv), v, rel_tol=1e-6, abs_tol=1e-12)
            else:
                ok = rv == v
            if not ok:
                break
        if ok:
            out.append(r)
    return out


def per_seed(records: Iterable[dict], metric: str, seed_key: str = "seed") -> dict:
    """{seed: mean over that seed's episodes of ``metric``} (NaN if any episode is
    non-finite, so the seed shows up as non-finite in the CI's count)."""
    by: dict = {}
    for r in records:
        v = r.get(metric)
        by.setdefault(r[seed_key], []).append(math.nan if v is None else float(v))
    return {s: float(np.mean(v)) for s, v in sorted(by.items())}


def estimate(records: Iterable[dict], metric: str, **where) -> Estimate:
    """:func:`mean_ci` over seeds of ``metric`` in the records matching ``where``."""
    return mean_ci(per_seed(select(records, **where), metric).values())


# ------------------------------------------------------------------ verdicts
@dataclass(frozen=True)
class Verdict:
    """A claim's verdict and the numbers that decided it."""

    label: str
    evidence: str

    def __post_init__(self) -> None:
        if self.label not in VERDICTS:
            raise ValueError(f"verdict label {self.label!r} not in {VERDICTS}")

    def text(self) -> str:
        return f"{self.label} ({self.evidence})" if self.evidence else self.label


def formula_check(evidence: str) -> Verdict:
    """A claim that holds for any policy by the model's arithmetic."""
    return Verdict(FORMULA_CHECK, evidence)


def not_run(missing: Iterable[str]) -> Verdict:
    return Verdict(NOT_RUN, "no records of " + ", ".join(sorted(set(missing))))


def _missing(records, methods) -> list[str]:
    have = {r.get("method") for r in records}
    return [m for m in methods if m not in have]


def trend_verdict(records: list[dict], metric: str, direction: str, *, method: str,
                  axis_key: str = "axis_value", **where) -> Verdict:
    """``metric`` moves ``direction`` ("up"/"down") from the first to the last axis value:
    the paired (same seeds) difference last − first has a 95 % CI on that side of 0."""
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
    rows = select(records, method=method, **where)
    if not rows:
        return not_run([method])
    xs = sorted({r[axis_key] for r in rows})
    if len(xs) < 2:
        return Verdict(NOT_REPRODUCED, f"{method}: only one axis value")
    first = per_seed([r for r in rows if r[axis_key] == xs[0]], metric)
    last = per_seed([r for r in rows if r[axis_key] == xs[-1]], metric)
    d = paired_difference(last, first)
    ok = d.excludes_zero() and ((d.low > 0) if direction == "up" else (d.high < 0))
    ev = f"{method}: {metric} at {xs[-1]:g} − at {xs[0]:g} = {d.fmt()}"
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED, ev)


def beats_verdict(records: list[dict], metric: str, winner: str, loser: str, *,
                  higher_is_better: bool, **where) -> Verdict:
    """``winner`` beats ``loser`` on ``metric`` (paired over seeds, 95 % CI excludes 0)."""
    missing = _missing(records, (winner, loser))
    if missing:
        return not_run(missing)
    a = per_seed(select(records, method=winner, **where), metric)
    b = per_seed(select(records, method=loser, **where), metric)
    c = compare(a, b, names=(winner, loser), higher_is_better=higher_is_better)
    return Verdict(REPRODUCED if c.winner == winner else NOT_REPRODUCED, c.text())


def best_of_verdict(records: list[dict], metric: str, winner: str, others: Iterable[str], *,
                    higher_is_better: bool, **where) -> Verdict:
    """``winner`` significantly beats every method in ``others`` (all must be run)."""
    others = list(others)
    missing = _missing(records, [winner, *others])
    if missing:
        return not_run(missing)
    parts, ok = [], True
    for o in others:
        v = beats_verdict(records, metric, winner, o, higher_is_better=higher_is_better, **where)
        ok &= v.label == REPRODUCED
        parts.append(v.evidence)
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED, "; ".join(parts))


def close_verdict(records: list[dict], metric: str, method: str, reference: str,
                  rel_tol: float, **where) -> Verdict:
    """``method`` is within ``rel_tol`` of ``reference``: the paired difference's CI lies
    inside ±rel_tol·|reference mean|."""
    missing = _missing(records, (method, reference))
    if missing:
        return not_run(missing)
    a = per_seed(select(records, method=method, **where), metric)
    b = per_seed(select(records, method=reference, **where), metric)
    d = paired_difference(a, b)
    ref = mean_ci(b.values())
    tol = rel_tol * abs(ref.mean)
    ok = d.defined and -tol <= d.low and d.high <= tol
    ev = (f"{method} − {reference} = {d.fmt()}, tolerance ±{tol:.4g} "
          f"({100 * rel_tol:g} % of {ref.mean:.4g})")
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED, ev)


def monotone_verdict(groups: Mapping, metric: str, direction: str) -> Verdict:
    """Consecutive groups (``groups``: ordered {label: records}) move ``direction``
    ("up"/"down") with a significant step each (paired over their common seeds)."""
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
    labels = list(groups)
    if len(labels) < 2:
        return Verdict(NOT_REPRODUCED, "fewer than two groups")
    parts, ok = [], True
    for lo, hi in zip(labels, labels[1:]):
        d = paired_difference(per_seed(groups[hi], metric), per_seed(groups[lo], metric))
        good = d.excludes_zero() and ((d.low > 0) if direction == "up" else (d.high < 0))
        ok &= good
        parts.append(f"{hi} − {lo}: {d.fmt()}")
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED, "; ".join(parts))
