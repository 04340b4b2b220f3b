"""The one place where unit strings ("20 mK", "3 min", "500 kHz") become SI floats."""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import pint


@functools.cache
def _registry() -> pint.UnitRegistry:
    ureg = pint.UnitRegistry()
    ureg.define("Phi0 = 2.067833848e-15 * weber = phi0")
    return ureg


#: A number and a unit, read apart: pint refuses "-40 dBm" (arithmetic on a logarithmic unit).
_NUMBER_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S.*)$")


class UnitError(ValueError):
    """A value has no unit of the expected dimension, or none at all where one is needed."""


#: The longest time span a campaign or rig may name (a duration, window, timeout, period).
MAX_SPAN_S = 365.25 * 86400.0


def to_si(value: Any, unit: str) -> float:
    """`value` (a number, already in `unit`, or a string with units) in `unit`, as a finite
    float."""
    si = _to_si(value, unit)
    if not math.isfinite(si):
        raise UnitError(f"{value!r} is not a finite quantity")
    return si


def to_span_s(value: Any, zero: bool = False) -> float:
    """A time span in seconds: finite, above 0 (or 0 if `zero`), at most `MAX_SPAN_S`."""
    si = to_si(value, "s")
    if si < 0 or (si == 0 and not zero):
        raise UnitError(f"must be {'>=' if zero else '>'} 0 s, got {si:g} s")
    if si > MAX_SPAN_S:
        raise UnitError(f"must be at most one year ({MAX_SPAN_S:g} s), got {si:g} s")
    return si


def _to_si(value: Any, unit: str) -> float:
    if isinstance(value, bool):
        raise UnitError(f"expected a quantity in {unit or 'plain numbers'}, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise UnitError(f"expected a number or a string with units, got {value!r}")
    ureg = _registry()
    try:
        quantity = ureg.Quantity(value.strip())
    except pint.errors.OffsetUnitCalculusError:
        match = _NUMBER_UNIT.match(value)
        try:
            quantity = ureg.Quantity(float(match.group(1)), match.group(2)) if match else None
        except (pint.errors.PintError, ValueError) as exc:
            raise UnitError(f"cannot read {value!r} as a quantity: {exc}") from None
        if quantity is None:
            raise UnitError(f"cannot read {value!r} as a quantity") from None
    except (pint.errors.PintError, ValueError, AttributeError, TypeError) as exc:
        raise UnitError(f"cannot read {value!r} as a quantity: {exc}") from None
    if not unit:
        if not quantity.dimensionless:
            raise UnitError(
                f"{value!r} has units {quantity.units:~} where a plain number is expected"
            )
        return float(quantity.to("dimensionless").magnitude)
    try:
        return float(quantity.to(unit).magnitude)
    except pint.errors.DimensionalityError:
        target = ureg.Unit(unit)
        expected = unit if target.dimensionless else f"{target.dimensionality} ({unit})"
        raise UnitError(
            f"{value!r} has the dimension of {quantity.dimensionality}, expected {expected}"
        ) from None
