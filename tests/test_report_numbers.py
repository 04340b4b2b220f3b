"""Numbers in the run report as a physicist writes them: the error at one or two significant
digits (the Particle Data Group's rule), the value rounded to the error's last digit, a unit
chosen by the caller, a power of ten for very large or small values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryodaq.acquisition.pipelines.report_numbers import (
    count,
    error_decimals,
    fmt,
    fmt_asymmetric,
    percent,
)


@pytest.mark.parametrize(
    ("value", "err", "unit", "scale", "text"),
    [
        (5.126, 0.3162, "eV", 1.0, "5.13 ± 0.32 eV"),  # 316: two digits
        (5.7756, 0.41845, "eV", 1.0, "5.8 ± 0.4 eV"),  # 418: one digit
        (0.97, 0.0972, "", 1.0, "0.97 ± 0.10"),  # 972 rounds up to two digits of 0.1
        (1234.5, 0.996, "", 1.0, "1234.5 ± 1.0"),
        (2887.6, 535.5, "eV", 1.0, "2900 ± 500 eV"),  # rounded to the hundreds
        (-2.5, 0.13, "", 1.0, "−2.50 ± 0.13"),
        (1.0186e-5, 4.97e-9, "µs", 1e-6, "10.186 ± 0.005 µs"),
        (431997.6, 27.1, "kHz", 1e3, "431.998 ± 0.027 kHz"),
        (123456789.0, 1234.0, "", 1.0, "(1.234568 ± 0.000012) × 10⁸"),
        (-0.0001, 0.02, "", 1.0, "0.000 ± 0.020"),  # no negative zero
    ],
)
def test_value_with_error(value: float, err: float, unit: str, scale: float, text: str) -> None:
    assert fmt(value, err, unit, scale) == text


def test_value_alone_missing_and_counts() -> None:
    assert fmt(5898.75, unit="eV", digits=6) == "5898.75 eV"
    assert fmt(3.2e-7) == "3.200 × 10⁻⁷"
    assert fmt(None) == fmt(float("nan")) == fmt("x") == "–"
    assert fmt(3.0, 0.0) == "3.000"  # an error of zero is no error
    assert fmt(117) == count(117) == "117"
    assert count(35461) == "35\u2009461" and count(-1200) == "−1\u2009200"
    assert percent(0.1234) == "12.3 %" and percent(0.1234, 0.0043) == "12.3 ± 0.4 %"
    assert percent(None) == "–"


def test_asymmetric_errors_share_the_smaller_ones_decimals() -> None:
    assert fmt_asymmetric(-564074.4, 1056148.9, 704677.4, "eV²") == "(−0.6 +0.7/−1.1) × 10⁶ eV²"
    assert fmt_asymmetric(2.5, 0.31, 0.12, "eV") == "2.50 +0.12/−0.31 eV"
    assert fmt_asymmetric(2.5, None, 0.1) == "2.500"


def test_every_error_keeps_one_or_two_significant_digits() -> None:
    rng = np.random.default_rng(3)
    for err in 10.0 ** rng.uniform(-8, 8, 2000):
        decimals = error_decimals(float(err))
        shown = round(float(err), decimals)
        digits = round(shown * 10.0**decimals)  # the error's digits as an integer
        assert 1 <= digits < 100, (err, decimals, shown)
        # the shown error is the true one rounded: within half a unit of its last digit
        assert abs(shown - err) <= 0.5 * 10.0**-decimals * (1 + 1e-9)
        # two digits exactly when the leading three are 100-354 (or 950-999, rounded up)
        lead = int(f"{err:.2e}".replace(".", "")[:3])
        assert (digits >= 10) == (lead < 355 or lead >= 950), (err, lead, digits)
        assert math.isfinite(shown)


def test_halves_round_up_and_round_off_is_no_error() -> None:
    assert fmt(1.0, 0.0095) == "1.000 ± 0.010"  # 950 goes up, though the float is 0.00949...
    assert fmt(2.0, 0.0305) == "2.000 ± 0.031"  # 305: two digits, the half up
    assert fmt(9.9996) == "10.00" and fmt(999999.7) == "1.000 × 10⁶"  # rounding carries over
    assert fmt(1.0, 1e-17) == "1.000"  # a fit's round-off, not an uncertainty
    assert fmt_asymmetric(1.0, 1e-30, 0.2) == "1.000"
    assert fmt(np.float32(1.5), np.float64(0.1)) == "1.50 ± 0.10"  # numpy scalars are numbers
    assert fmt(np.int64(35461)) == count(np.int64(35461)) == "35\u2009461"
    assert fmt(True) == "–"
