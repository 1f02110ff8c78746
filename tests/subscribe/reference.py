"""Brute-force Python evaluation of the sample filters: the oracle the vectorized filters
and the filter service are checked against (null rules of docs/subscribe.md, by hand)."""

from __future__ import annotations

import math
from typing import Any

from alertbutler.subscribe.testing import SampleFilter


def _history(alert: dict[str, Any]) -> list[dict[str, Any]]:
    return alert["prvDiaSources"] or []


def _sep_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Spherical law of cosines (another formula than the one under test)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    c = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(r1 - r2)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def reference_keep(f: SampleFilter, alert: dict[str, Any]) -> bool:
    src = alert["diaSource"]
    p = f.params
    t = f.template
    if t == 0:
        return src["snr"] is not None and src["snr"] > p[0]
    if t == 1:
        return src["band"] == p[0] and src["psfFlux"] is not None and src["psfFlux"] > p[1]
    if t == 2:
        return sum(1 for h in _history(alert) if h["band"] == p[0]) >= p[1]
    if t == 3:
        vals = [h["psfFlux"] for h in _history(alert)
                if h["band"] == p[0] and h["psfFlux"] is not None]
        return bool(vals) and sum(vals) / len(vals) > p[1]
    if t == 4:
        return _sep_deg(src["ra"], src["dec"], p[0], p[1]) <= p[2] / 3600.0
    if t == 5:
        rel = src["reliability"]
        return (rel is not None and rel > p[0]) or src["snr"] is None
    if t == 6:
        obj = alert["diaObject"]
        return (src["band"] is not None and src["band"] not in (p[0], p[1])
                and obj is not None and obj["nDiaSources"] >= p[2])
    if t == 7:
        snrs = [h["snr"] for h in _history(alert) if h["snr"] is not None]
        return bool(snrs) and max(snrs) - min(snrs) > p[0]
    if t == 8:
        times = [h["midpointMjdTai"] for h in _history(alert)] + [src["midpointMjdTai"]]
        return src["midpointMjdTai"] - min(times) > p[0]
    if t == 9:
        flux = src["psfFlux"]
        return flux is not None and flux > 0 and -2.5 * math.log10(flux) + 31.4 < p[0]
    if t == 10:
        flux, err = src["psfFlux"], src["psfFluxErr"]
        if flux is None or err is None or err == 0 or src["snr"] is None:
            return False
        return flux / err > p[0]
    raise AssertionError(f"no reference for template {t}")


# --- numbers: the arithmetic rules of docs/subscribe.md, in plain Python -------------------
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Number = int | float | None


def reference_arith(op: str, a: Number, b: Number) -> Number:
    """``a op b`` (``b`` unused for unary ``neg``): integers are exact and give null outside
    int64; anything with a float is float64 (integers converted first); NaN is null."""
    if a is None or (b is None and op != "neg"):
        return None
    if op == "neg":
        out: Number = -a
    elif op == "/":
        if b == 0:
            return None
        out = float(a) / float(b)  # type: ignore[arg-type]
    elif isinstance(a, int) and isinstance(b, int):
        out = {"+": a + b, "-": a - b, "*": a * b}[op]
    else:
        fa, fb = float(a), float(b)  # type: ignore[arg-type]
        out = {"+": fa + fb, "-": fa - fb, "*": fa * fb}[op]
    if isinstance(out, int):
        return out if INT64_MIN <= out <= INT64_MAX else None
    return None if math.isnan(out) else out


def reference_compare(op: str, a: Number, b: Number) -> bool | None:
    """Exact comparison (Python compares an int with a float exactly); null is unknown."""
    if a is None or b is None:
        return None
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b,
            ">=": a >= b}[op]
