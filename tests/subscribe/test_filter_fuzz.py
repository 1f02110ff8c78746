"""Hostile and random text thrown at the filter compiler: a Filter or a FilterError, always.

Each example is bounded by a generous hypothesis deadline: a guard against hangs (an
unbounded parse or recursion would blow through it), not a performance assertion.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertbutler.subscribe.filters import Filter, FilterError, compile_filter
from alertbutler.subscribe.testing import varied_alerts

_ALERTS = varied_alerts(20, seed=11)
_SETTINGS = settings(max_examples=150, deadline=dt.timedelta(seconds=5),
                     suppress_health_check=[HealthCheck.too_slow])

PYTHON = [
    "__import__('os').system('rm -rf /')",
    "().__class__.__bases__[0].__subclasses__()",
    "diaSource.__class__.__init__.__globals__",
    "eval('1+1')", "exec('import os')", "open('/etc/passwd').read()", "import os",
    "lambda: 0", "[x for x in range(10**9)]", "9**9**9**9", "'a' * 10**9",
    "getattr(diaSource, 'snr')", "diaSource['snr'] > 1", "diaSource.snr > 1; import os",
    "{}.__class__", "f'{1}'", "b'x' == b'x'", "1 if True else 0", "(yield)", "await x",
    "diaSource.snr > 1 # comment", "\\x00", "\x00", "band == 'g'\x00",
    "\U0001d521\U0001d526\U0001d51e > 1",
    "${jndi:ldap://x}", "'; DROP TABLE alerts; --", "1 or 1=1", "x\u202e > 1",
]
TOKENS = ["diaSource", "diaObject", "prvDiaSources", ".", "snr", "band", "psfFlux", "(", ")",
          "[", "]", ",", "and", "or", "not", "in", "is", "null", "true", "false", "where",
          "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "1", "2.5", "1e3", "'g'",
          "count", "mean", "min", "max", "within", "abs", "mag",
          "days_since_first_detection", "__import__", "__class__", "=", ":", "lambda"]


def _check(text: str) -> None:
    try:
        f = compile_filter(text)
    except FilterError as err:
        assert err.line >= 1 and err.column >= 1
        assert 0 <= err.position <= len(text)
        assert str(err).startswith(f"line {err.line}, column {err.column}: ")
        return
    assert isinstance(f, Filter)
    kept = f.keep(_ALERTS)  # anything accepted also evaluates
    assert kept.shape == (len(_ALERTS),)


@_SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _check(text)


@_SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_token_soup(text: str) -> None:
    _check(text)


@_SETTINGS
@given(st.sampled_from(PYTHON), st.text(max_size=20))
def test_python_code_is_refused(code: str, suffix: str) -> None:
    for text in (code, code + suffix, f"diaSource.snr > 1 and {code}"):
        try:
            compile_filter(text)
        except FilterError:
            continue
        raise AssertionError(f"accepted {text!r}")


@_SETTINGS
@given(st.integers(0, 3000), st.sampled_from(["(", "not ", "-", "abs(", "[", "((("]))
def test_deep_nesting(depth: int, opener: str) -> None:
    closer = {"(": ")", "abs(": ")", "[": "]", "(((": ")))"}.get(opener, "")
    _check(opener * depth + "diaSource.snr > 1" + closer * depth)
    _check(opener * depth)


@_SETTINGS
@given(st.integers(1, 100_000), st.sampled_from(["9", "1e", "'", "x", "1,", " and true"]))
def test_huge_literals_and_long_inputs(size: int, unit: str) -> None:
    body = unit * size
    for text in (f"diaSource.snr > {body}", f"band == '{body}'", f"band in [{body}]", body):
        _check(text)
