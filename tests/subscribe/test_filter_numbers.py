"""Numbers in filters: literals are ASCII and in range, integers are exact (int64, compared
exactly with floats), integer overflow and NaN from arithmetic are null, like division by
zero. A hypothesis test checks random arithmetic against the Python reference."""

from __future__ import annotations

import copy
import datetime as dt
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertbutler.subscribe.filters import FilterError, compile_filter
from alertbutler.subscribe.testing import varied_alerts
from tests.subscribe.reference import INT64_MAX, INT64_MIN, reference_arith, reference_compare

BASE = varied_alerts(1, seed=3)[0]


def _alert(source_id: int = 1, visit: int = 1, ra: float = 1.0,
           psf_flux: float | None = 1.0) -> dict:
    alert = copy.deepcopy(BASE)
    alert["diaSourceId"] = source_id
    alert["diaSource"].update(visit=visit, ra=ra, psfFlux=psf_flux)
    return alert


def _keeps(text: str, alert: dict) -> bool:
    return compile_filter(text).matches(alert)


def test_nan_from_arithmetic_is_null() -> None:
    alert = _alert(psf_flux=float("inf"))
    for text in ("diaSource.psfFlux - diaSource.psfFlux > 0",
                 "diaSource.psfFlux - diaSource.psfFlux <= 0",
                 "1e308 * 10 - 1e308 * 10 == 0", "0 * diaSource.psfFlux == 0"):
        assert not _keeps(text, alert), text
        assert not _keeps(f"not ({text})", alert), text  # unknown, not false
        assert _keeps(f"({text}) is null", alert), text


def test_float_division_overflow_is_infinite_and_quiet() -> None:
    """A division that overflows gives inf (a number, not null) and no RuntimeWarning,
    which a subscriber running with warnings as errors would die of."""
    alert = _alert(psf_flux=1e-300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _keeps("1e300 / diaSource.psfFlux > 1e308", alert)
        assert not _keeps("(1e300 / diaSource.psfFlux) is null", alert)


def test_integer_overflow_is_null_not_wrapped() -> None:
    top, bottom = _alert(source_id=INT64_MAX), _alert(source_id=INT64_MIN)
    for text, alert in [("diaSourceId + 1 > 0", top), ("diaSourceId * 2 < 0", top),
                        ("diaSourceId - 1 < 0", bottom), ("-diaSourceId > 0", bottom),
                        ("diaSourceId * -1 > 0", bottom), ("9223372036854775807 + 1 < 0", top)]:
        assert not _keeps(text, alert), text
        assert not _keeps(f"not ({text})", alert), text
    assert _keeps("diaSourceId - 1 == 9223372036854775806", top)  # exact inside the range
    assert _keeps("diaSourceId + 1.0 > 9.2e18", top)  # a float operand: float arithmetic


def test_integer_literals_are_exact_64_bit() -> None:
    top = _alert(source_id=INT64_MAX)
    with pytest.raises(FilterError, match="out of range") as err:
        compile_filter("diaSourceId == 9223372036854775808")
    assert err.value.column == 16
    with pytest.raises(FilterError, match="out of range"):
        compile_filter("diaSourceId in [1, 99999999999999999999]")
    assert _keeps("diaSourceId == 9223372036854775807", top)
    bottom = _alert(source_id=INT64_MIN)
    assert _keeps("diaSourceId == -9223372036854775808", bottom)
    assert _keeps("diaSourceId in [-9223372036854775808]", bottom)


def test_integers_compare_exactly_with_floats() -> None:
    top = _alert(source_id=INT64_MAX)  # 9223372036854775807.0 is the float 2^63
    assert not _keeps("diaSourceId == 9223372036854775807.0", top)
    assert _keeps("diaSourceId < 9223372036854775807.0", top)
    assert _keeps("diaSourceId != 9.3e18 and diaSourceId < 9.3e18", top)
    assert not _keeps("diaSourceId in [9223372036854775807.0, 1.5]", top)
    odd = _alert(source_id=2**53 + 1)
    assert _keeps("diaSourceId > 9007199254740992.0", odd)
    assert not _keeps("diaSourceId in [9007199254740992.0]", odd)
    assert _keeps("diaSourceId in [9007199254740993]", odd)
    assert _keeps("diaSourceId == 9007199254740993", odd)


@pytest.mark.parametrize("literal", ["1e-999", "1e400", "9" * 39, "1.5e-320", "-1e-999"])
def test_out_of_range_float_literals_are_refused(literal: str) -> None:
    with pytest.raises(FilterError, match="out of range") as err:
        compile_filter(f"diaSource.snr > {literal}")
    assert err.value.column == 17 + literal.startswith("-")


@pytest.mark.parametrize("literal", ["1e-301", "2.2250738585072014e-308", "0e-999", "0.0",
                                     "1.7976931348623157e308"])
def test_in_range_float_literals_are_accepted(literal: str) -> None:
    compile_filter(f"diaSource.snr > {literal}")


@pytest.mark.parametrize("text", ["diaSource.snr > \u09ea", "diaSource.snr > \u0665",
                                  "diaSourceId == 1\u0665", "diaSource.snr > 1.\u0663",
                                  "diaSource.snr > 1e\u0663", "diaSource.snr > \uff15"])
def test_non_ascii_digits_are_refused(text: str) -> None:
    with pytest.raises(FilterError) as err:
        compile_filter(text)
    bad = next(i for i, c in enumerate(text) if not c.isascii())
    assert err.value.position <= bad


# --- random arithmetic against the Python reference ------------------------------------------
LEAVES = {"A": "diaSourceId", "B": "diaSource.visit", "X": "diaSource.ra",
          "Y": "diaSource.psfFlux"}
EDGE_INTS = [INT64_MIN, INT64_MIN + 1, -(2**62), -(2**53) - 1, -1, 0, 1, 2, 3, 2**31,
             2**53 + 1, 2**62, INT64_MAX - 1, INT64_MAX]
INTS = st.one_of(st.sampled_from(EDGE_INTS), st.integers(INT64_MIN, INT64_MAX))
FLOATS = st.one_of(st.sampled_from([0.0, -0.0, 1.5, float("inf"), float("-inf"), 1e308,
                                    2.0**63, -(2.0**63), 2.0**53]),
                   st.floats(allow_nan=False, width=64))
LITERALS = st.one_of(st.integers(0, INT64_MAX), st.sampled_from([0.5, 2.0**63, 1e300, 3.0]))


def _expr(depth: int) -> st.SearchStrategy:
    leaf = st.one_of(st.sampled_from(list(LEAVES)), LITERALS)
    if depth == 0:
        return leaf
    sub = _expr(depth - 1)
    return st.one_of(leaf, st.tuples(st.sampled_from(["+", "-", "*", "/"]), sub, sub),
                     st.tuples(st.just("neg"), sub))


def _text(e: object) -> str:
    if isinstance(e, str):
        return LEAVES[e]
    if isinstance(e, int | float):
        return repr(float(e)) if isinstance(e, float) else str(e)
    assert isinstance(e, tuple)
    if e[0] == "neg":
        return f"-({_text(e[1])})"
    return f"({_text(e[1])} {e[0]} {_text(e[2])})"


def _value(e: object, env: dict) -> object:
    if isinstance(e, str):
        return env[e]
    if isinstance(e, int | float):
        return e
    assert isinstance(e, tuple)
    if e[0] == "neg":
        return reference_arith("neg", _value(e[1], env), None)
    return reference_arith(e[0], _value(e[1], env), _value(e[2], env))


@settings(max_examples=300, deadline=dt.timedelta(seconds=10),
          suppress_health_check=[HealthCheck.too_slow])
@given(_expr(3), st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), _expr(2),
       INTS, INTS, FLOATS, st.one_of(st.none(), FLOATS))
def test_arithmetic_matches_the_reference(left, op, right, a, b, x, y) -> None:
    env = {"A": a, "B": b, "X": x, "Y": y}
    alert = _alert(source_id=a, visit=b, ra=x, psf_flux=y)
    text = f"{_text(left)} {op} {_text(right)}"
    want = reference_compare(op, _value(left, env), _value(right, env))
    assert _keeps(text, alert) is (want is True), text
    assert _keeps(f"not ({text})", alert) is (want is False), text
