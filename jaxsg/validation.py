"""Parameter validation, run on concrete values before anything is traced.

Every scenario declares a table ``{field: Bound(...)}`` for its numeric params
and a list of ordering constraints (``("f_min_hz", "f_max_hz")`` meaning
``f_min_hz <= f_max_hz``). :func:`validate_params` checks a params dataclass
against them and raises a ``ValueError`` that names the field, the value and
the allowed range. It works on scalars and on stacked sweep axes alike (every
element must be valid), so a whole figure axis is checked in one call.

Static sizes (numbers of agents, channels, …) are checked with
:func:`check_int` at construction.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Bound:
    """Allowed range of one numeric field: ``low <(=) value <(=) high``."""

    low: float = -math.inf
    high: float = math.inf
    low_inclusive: bool = True
    high_inclusive: bool = True
    integer: bool = False

    def describe(self) -> str:
        lo = "[" if self.low_inclusive else "("
        hi = "]" if self.high_inclusive else ")"
        kind = "integer in " if self.integer else ""
        return f"{kind}{lo}{self.low:g}, {self.high:g}{hi}"

    def holds(self, x: np.ndarray) -> bool:
        lo_ok = x >= self.low if self.low_inclusive else x > self.low
        hi_ok = x <= self.high if self.high_inclusive else x < self.high
        ok = bool(np.all(lo_ok & hi_ok))
        if self.integer:
            ok = ok and bool(np.all(np.floor(x) == x))
        return ok


POSITIVE = Bound(0.0, math.inf, low_inclusive=False)
NON_NEGATIVE = Bound(0.0, math.inf)
UNIT_INTERVAL = Bound(0.0, 1.0)


def _as_numeric(name: str, value: Any, where: str) -> np.ndarray:
    if isinstance(value, jax.core.Tracer):
        raise ValueError(
            f"{where}: field '{name}' is a traced value; validate params before jit/vmap"
        )
    if isinstance(value, (str, bytes)) or value is None:
        raise ValueError(f"{where}: field '{name}' must be a number, got {type(value).__name__}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: field '{name}' must be a number, got {type(value).__name__}"
        ) from None
    if np.any(np.isnan(arr)):
        raise ValueError(f"{where}: field '{name}' is NaN")
    return arr


def validate_params(
    params: Any,
    bounds: Mapping[str, Bound],
    order: Iterable[tuple[str, str]] = (),
    where: str = "params",
) -> Any:
    """Check every field of ``params`` against ``bounds`` and ``order``; return ``params``.

    Raises ``ValueError`` naming the field and allowed range on: a non-numeric
    value, NaN, a value out of range, a field without a declared bound (so a new
    knob cannot slip in unchecked), or ``low_field > high_field`` for a pair in
    ``order``.
    """
    fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    missing = sorted(set(fields) - set(bounds))
    if missing:
        raise ValueError(f"{where}: no declared range for field(s) {missing}")
    values = {}
    for name, value in fields.items():
        arr = _as_numeric(name, value, where)
        b = bounds[name]
        if not b.holds(arr):
            bad = arr.ravel()[0] if arr.size == 1 else arr
            raise ValueError(f"{where}: field '{name}' = {bad} is outside {b.describe()}")
        values[name] = arr
    for lo_name, hi_name in order:
        if np.any(values[lo_name] > values[hi_name]):
            raise ValueError(
                f"{where}: field '{lo_name}' ({values[lo_name]}) must be <= "
                f"'{hi_name}' ({values[hi_name]})"
            )
    return params


def replace_checked(params: Any, overrides: Mapping[str, Any], where: str = "params") -> Any:
    """``params.replace(**overrides)`` that rejects unknown field names clearly."""
    names = {f.name for f in dataclasses.fields(params)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(names)}")
    return params.replace(**overrides)


def check_int(name: str, value: Any, low: int = 1, high: int | None = None, where: str = "") -> int:
    """Validate a static size (number of agents, channels, steps)."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{prefix}'{name}' must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{prefix}'{name}' = {value} is outside the allowed range {rng}")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[str], where: str = "") -> str:
    """Validate a static string option."""
    choices = tuple(choices)
    prefix = f"{where}: " if where else ""
    if value not in choices:
        raise ValueError(f"{prefix}'{name}' = {value!r}; allowed values: {choices}")
    return value
