"""Validation fit for float32: values are checked as the simulator computes them."""

import math

import numpy as np
import pytest
from flax import struct

from jaxsg.validation import (
    MAX_INT_SIZE,
    POSITIVE,
    Bound,
    check_int,
    check_memory,
    validate_params,
)


@struct.dataclass
class _P:
    rate: float = 1.0
    share: float = 0.5
    capacity: float = 10.0


BOUNDS = {
    "rate": POSITIVE,
    "share": Bound(0.0, 1.0, high_inclusive=False),
    "capacity": Bound(0.0, math.inf, allow_inf=True),
}


def _check(**kw):
    return validate_params(_P(**kw), BOUNDS, where="toy")


def test_valid_values_pass_including_stacked_axes():
    _check()
    _check(rate=np.array([1.0, 2.0, 3.0]), capacity=math.inf)


@pytest.mark.parametrize(
    "kw, fragment",
    [
        (dict(rate=math.inf), "'rate' is infinite"),
        (dict(rate=-math.inf), "'rate' is infinite"),
        (dict(rate=1e39), "'rate' = 1e+39 overflows float32"),
        (dict(rate=1e-50), "'rate'"),  # underflows to 0 in float32: not positive
        (dict(share=0.99999999), "'share'"),  # rounds to 1.0 in float32: outside [0, 1)
        (dict(rate=True), "'rate' must be a number, got a boolean"),
        (dict(rate=np.array([True, False])), "'rate' must be a number, got a boolean"),
        (dict(rate=[1.0, 2.0]), "'rate' must be a number (or an array for a sweep axis), got list"),
        (dict(rate="3"), "'rate' must be a number"),
        (dict(rate=float("nan")), "'rate' is NaN"),
        (dict(capacity=-math.inf), "'capacity' is infinite"),
    ],
)
def test_bad_values_name_the_field(kw, fragment):
    with pytest.raises(ValueError) as err:
        _check(**kw)
    assert fragment in str(err.value)
    assert str(err.value).startswith("toy: field")


def test_missing_bound_is_an_error():
    with pytest.raises(ValueError, match="no declared range"):
        validate_params(_P(), {k: v for k, v in BOUNDS.items() if k != "share"})


def test_check_int_caps_sizes_at_int32_and_rejects_bools():
    assert check_int("n", 5) == 5
    with pytest.raises(ValueError, match=r"'horizon' = 2147483648 is outside .*\[1, 2147483647\]"):
        check_int("horizon", MAX_INT_SIZE + 1)
    with pytest.raises(ValueError, match="'n' must be an integer"):
        check_int("n", True)
    with pytest.raises(ValueError, match="'n' must be an integer"):
        check_int("n", 3.0)
    with pytest.raises(ValueError, match="allowed range >= 1"):
        check_int("n", 0)


def test_check_memory_refuses_before_tracing():
    assert check_memory({"n": 10}, 1000) == 4000
    with pytest.raises(ValueError, match=r"sizes \(num_users=10000000\) need about"):
        check_memory({"num_users": 10**7}, 10**7 * 10**3, where="toy")



def test_subnormals_are_checked_as_the_zero_xla_computes_with():
    """1e-40 is a float32 subnormal, which XLA flushes to 0 on CPU and GPU: a positive
    field refuses it (round 3 fuzzing: price_max = 1e-38·0.85 gave a 0/0 observation);
    the smallest normal passes, and 0 stays legal where the bound allows it."""
    with pytest.raises(ValueError, match="'rate'"):
        _check(rate=1e-40)
    _check(rate=float(np.finfo(np.float32).tiny))
    _check(share=1e-40)  # [0, 1): the 0 it becomes is inside


def test_bound_ends_are_compared_after_the_float32_cast():
    """A value typed as the end itself is inside, though float32(1e-4) < 1e-4."""
    bounds = dict(BOUNDS, rate=Bound(1e-4, 1e2))
    assert float(np.float32(1e-4)) < 1e-4
    validate_params(_P(rate=1e-4), bounds)
    validate_params(_P(rate=np.array([1e-4, 1e2], np.float32)), bounds)
    with pytest.raises(ValueError, match="'rate'"):
        validate_params(_P(rate=9.9e-5), bounds)
