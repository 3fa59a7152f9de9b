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
    allow_inf: bool = False  # +inf is a meaningful value ("unlimited"), e.g. a capacity

    def describe(self) -> str:
        lo = "[" if self.low_inclusive else "("
        hi = "]" if self.high_inclusive else ")"
        kind = "integer in " if self.integer else ""
        return f"{kind}{lo}{self.low:g}, {self.high:g}{hi}"

    def holds(self, x: np.ndarray) -> bool:
        """``x`` (already cast to the compute dtype) lies in the range.

        The ends are cast too, so a value typed as the end itself (``1e-4`` for a
        ``[1e-4, …]`` bound, whose float32 image is 9.99999975e-05) is inside.
        """
        with np.errstate(over="ignore"):
            low = float(np.float64(self.low).astype(COMPUTE_DTYPE))
            high = float(np.float64(self.high).astype(COMPUTE_DTYPE))
        lo_ok = x >= low if self.low_inclusive else x > low
        hi_ok = x <= high if self.high_inclusive else x < high
        ok = bool(np.all(lo_ok & hi_ok))
        if self.integer:
            ok = ok and bool(np.all(np.floor(x) == x))
        return ok


POSITIVE = Bound(0.0, math.inf, low_inclusive=False)
NON_NEGATIVE = Bound(0.0, math.inf)
UNIT_INTERVAL = Bound(0.0, 1.0)


COMPUTE_DTYPE = np.float32
"""The dtype the simulator computes in: every value is checked after this cast."""

MAX_INT_SIZE = 2**31 - 1
"""Largest static size or count (int32 counters and indices)."""


def _as_numeric(name: str, value: Any, where: str, allow_inf: bool = False) -> np.ndarray:
    """``value`` as the float64 image of its float32 cast, or a ``ValueError``.

    Rejects non-numbers, booleans, Python lists/tuples (a sweep axis is an
    array), NaN, ±inf and finite values that overflow float32.
    """
    if isinstance(value, jax.core.Tracer):
        raise ValueError(
            f"{where}: field '{name}' is a traced value; validate params before jit/vmap"
        )
    if isinstance(value, (str, bytes, list, tuple, dict, set)) or value is None:
        raise ValueError(
            f"{where}: field '{name}' must be a number (or an array for a sweep axis), "
            f"got {type(value).__name__}"
        )
    if isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.bool_:
        raise ValueError(f"{where}: field '{name}' must be a number, got a boolean")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: field '{name}' must be a number, got {type(value).__name__}"
        ) from None
    if np.any(np.isnan(arr)):
        raise ValueError(f"{where}: field '{name}' is NaN")
    if np.any(np.isinf(arr)) and not (allow_inf and np.all(arr[np.isinf(arr)] > 0)):
        raise ValueError(f"{where}: field '{name}' is infinite; every field must be finite")
    with np.errstate(over="ignore"):
        cast = arr.astype(COMPUTE_DTYPE)
    if np.any(np.isinf(cast) & ~np.isinf(arr)):
        bad = arr.ravel()[np.argmax((np.isinf(cast) & ~np.isinf(arr)).ravel())]
        raise ValueError(
            f"{where}: field '{name}' = {bad:g} overflows {np.dtype(COMPUTE_DTYPE).name} "
            f"(max {float(np.finfo(COMPUTE_DTYPE).max):.3g})"
        )
    # Subnormals (below the smallest normal, 1.2e-38) are flushed to 0 by XLA on CPU and
    # GPU: check them as the 0 the simulator computes with, so a positive bound refuses them.
    cast = np.where(np.abs(cast) < np.finfo(COMPUTE_DTYPE).tiny, COMPUTE_DTYPE(0), cast)
    return cast.astype(np.float64)


def validate_params(
    params: Any,
    bounds: Mapping[str, Bound],
    order: Iterable[tuple[str, str]] = (),
    where: str = "params",
) -> Any:
    """Check every field of ``params`` against ``bounds`` and ``order``; return ``params``.

    Values are checked as the simulator sees them, after the cast to float32
    (so ``theta_max = 0.99999999``, which rounds to 1.0, fails a ``[0, 1)``
    bound, and 1e-50, which underflows to 0, fails a positive bound, as does a
    subnormal such as 1e-40, which XLA flushes to 0).

    Raises ``ValueError`` naming the field and allowed range on: a non-numeric,
    boolean or list value, NaN, ±inf (unless the bound has ``allow_inf``, for
    "unlimited"), a float32 overflow, a value out of range, a field without
    a declared bound (so a new knob cannot slip in unchecked), or
    ``low_field > high_field`` for a pair in ``order``.
    """
    fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    missing = sorted(set(fields) - set(bounds))
    if missing:
        raise ValueError(f"{where}: no declared range for field(s) {missing}")
    values = {}
    for name, value in fields.items():
        b = bounds[name]
        arr = _as_numeric(name, value, where, allow_inf=b.allow_inf)
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
    """Validate a static size (number of agents, channels, steps).

    ``high`` defaults to :data:`MAX_INT_SIZE` (sizes and step counters are int32).
    """
    prefix = f"{where}: " if where else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{prefix}'{name}' must be an integer, got {value!r}")
    cap = MAX_INT_SIZE if high is None else min(high, MAX_INT_SIZE)
    if value < low or value > cap:
        rng = f">= {low}" if high is None and value < low else f"[{low}, {cap}]"
        raise ValueError(f"{prefix}'{name}' = {value} is outside the allowed range {rng}")
    return int(value)


DEFAULT_MEMORY_LIMIT_BYTES = 8 * 2**30
"""Refuse configurations whose per-episode arrays alone would exceed 8 GiB."""


def check_memory(
    sizes: Mapping[str, int],
    elements_per_episode: int,
    where: str = "",
    limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
    bytes_per_element: int = 4,
) -> int:
    """Refuse, before tracing, a configuration too large to hold one episode's arrays.

    ``elements_per_episode`` is the scenario's estimate of the number of float32
    elements in its largest per-step arrays (e.g. the interference tensor);
    ``sizes`` names the static sizes that produced it, for the message.
    Returns the estimate in bytes.
    """
    estimate = int(elements_per_episode) * bytes_per_element
    if estimate > limit_bytes:
        prefix = f"{where}: " if where else ""
        shown = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise ValueError(
            f"{prefix}sizes ({shown}) need about {estimate / 2**30:.1f} GiB per episode "
            f"(> limit {limit_bytes / 2**30:.1f} GiB); reduce them"
        )
    return estimate


def check_choice(name: str, value: Any, choices: Iterable[str], where: str = "") -> str:
    """Validate a static string option."""
    choices = tuple(choices)
    prefix = f"{where}: " if where else ""
    if value not in choices:
        raise ValueError(f"{prefix}'{name}' = {value!r}; allowed values: {choices}")
    return value
