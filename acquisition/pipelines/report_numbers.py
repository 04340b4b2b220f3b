"""Numbers as a physicist writes them: `5.13 ± 0.32 eV`, the error at one or two significant
digits (the Particle Data Group's rule) and the value rounded to the error's last digit.

Values are given in SI and shown in the unit the caller names (`scale`: SI value of one shown
unit, so `fmt(1.02e-5, 5e-9, "µs", 1e-6)` is `10.186 ± 0.005 µs`). Very large or very small
shown values take a common power of ten: `(1.23 ± 0.05) × 10⁴`. A missing value is a dash.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Context, Decimal
from numbers import Integral, Real
from typing import Any

DASH = "–"
MINUS = "−"
#: Shown values outside [SMALL, LARGE) are written with a power of ten.
SMALL, LARGE = 1e-3, 1e6
#: Whole parts from this size on have their thousands set apart (by a thin space).
GROUPED = 10_000
THIN = "\u2009"
#: Significant digits of a value given without an error.
DIGITS = 4
#: An error below this fraction of its value is round-off of a fit, not an uncertainty.
ROUNDOFF = 1e-12
_PRECISION = 800  # digits a quantized number may need (a double spans ~10^±308)
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, Real):
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _text(x: float, decimals: int) -> str:
    """`x` at `decimals` places (rounded to tens, hundreds... if negative), thousands of
    10 000 and more set apart by thin spaces. Halves round up, as written (`0.0095` at three
    places is `0.010`, though the binary float is a hair below it)."""
    place = Decimal(1).scaleb(-decimals)
    x = float(Decimal(repr(x)).quantize(place, ROUND_HALF_UP, Context(prec=_PRECISION)))
    group = "," if abs(x) >= GROUPED else ""
    out = f"{x:{group}.{max(decimals, 0)}f}".replace(",", THIN)
    if out.lstrip("-").strip("0.") == "":
        out = out.lstrip("-")
    return out.replace("-", MINUS)


def error_decimals(err: float) -> int:
    """Decimal places that keep `err` at 1 or 2 significant digits: two if its three leading
    digits are 100-354, one if 355-949, and 950-999 round up to two digits of the next decade."""
    exponent = math.floor(math.log10(err))
    leading = round(err / 10.0 ** (exponent - 2))
    if leading >= 1000:
        exponent, leading = exponent + 1, leading // 10
    digits = 2 if leading < 355 or leading >= 950 else 1
    if leading >= 950:
        exponent += 1
    return digits - 1 - exponent


def _power(shown: float) -> int:
    """The power of ten to factor out of `shown` (0 if it reads well as it is)."""
    size = abs(shown)
    if size == 0 or SMALL <= size < LARGE:
        return 0
    return max(math.floor(math.log10(size)), -300)  # 10^-324 would be 0


def _with_unit(text: str, unit: str) -> str:
    return f"{text} {unit}" if unit else text


def fmt(value: Any, err: Any = None, unit: str = "", scale: float = 1.0,
        digits: int = DIGITS) -> str:  # fmt: skip
    """`value ± err unit` (err at 1-2 significant digits), or `value unit` at `digits`
    significant digits without a usable error; a dash for a missing value."""
    v = _number(value)
    if v is None:
        return DASH
    if isinstance(value, Integral) and err is None and scale == 1.0:
        return _with_unit(count(value), unit)
    shown = v / scale
    e = _number(err)
    e = abs(e) / scale if e is not None and abs(e) > ROUNDOFF * abs(v) else None
    if e is None:  # rounded first, so that 9.99996 is 10.00, not 10.000
        shown = float(f"{shown:.{digits - 1}e}")
    power = _power(shown if e is None or abs(shown) >= e else e)
    factor = 10.0**power
    shown /= factor
    if e is None:
        size = abs(shown)
        decimals = digits - 1 - (math.floor(math.log10(size)) if size else 0)
        text = _text(shown, decimals)
    else:
        e /= factor
        decimals = error_decimals(e)
        text = f"{_text(shown, decimals)} ± {_text(e, decimals)}"
    if power:
        exp = f"10{str(power).translate(_SUPERSCRIPT)}"
        text = f"({text}) × {exp}" if e is not None else f"{text} × {exp}"
    return _with_unit(text, unit)


def fmt_asymmetric(value: Any, err_low: Any, err_high: Any, unit: str = "",
                   scale: float = 1.0) -> str:  # fmt: skip
    """`value +err_high/−err_low unit`, both errors at the decimals of the smaller one."""
    v, lo, hi = _number(value), _number(err_low), _number(err_high)
    if v is None:
        return DASH
    if lo is None or hi is None or min(lo, hi) <= ROUNDOFF * abs(v):
        return fmt(value, None, unit, scale)
    shown, lo, hi = v / scale, lo / scale, hi / scale
    power = _power(max(abs(shown), lo, hi))
    factor = 10.0**power
    decimals = error_decimals(min(lo, hi) / factor)
    text = (f"{_text(shown / factor, decimals)} +{_text(hi / factor, decimals)}"
            f"/{MINUS}{_text(lo / factor, decimals)}")
    if power:
        text = f"({text}) × 10{str(power).translate(_SUPERSCRIPT)}"
    return _with_unit(text, unit)


def count(n: Any) -> str:
    """A whole number with thin spaces between thousands (`35 461`); a dash if missing."""
    v = _number(n)
    if v is None:
        return DASH
    text = f"{round(v):,}".replace(",", THIN)
    return text.replace("-", MINUS)


def percent(fraction: Any, err: Any = None) -> str:
    """A fraction as a percentage (`12.3 %`, `12.3 ± 0.4 %`)."""
    v = _number(fraction)
    if v is None:
        return DASH
    e = _number(err)
    return fmt(v * 100.0, None if e is None else e * 100.0, "%", digits=3)
