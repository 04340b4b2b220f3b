"""The Lake Shore Model 372's stored commands as its manual defines them: what each addresses,
its fields with their allowed values, and their power-on values.

A stored command holds fields per address (`OUTMODE 0,5,1,0,0,0,1` sets output 0's six fields;
`OUTMODE? 0` returns them); `ZONE`'s address is two fields, output and zone (`ZONE? 0,3`).
Field checks raise `LakeShoreError`: a command error for text that is not a value of the
field's kind, an execution error for a value outside its range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryodaq.sim_instruments.lakeshore_device import COMMAND_ERROR, EXECUTION_ERROR, LakeShoreError

INPUTS = ("A", *(str(i) for i in range(1, 17)))
OUTPUTS = ("0", "1", "2")
HEATERS = ("0", "1")
ANALOGS = ("1", "2")
NONE = ("",)
ZONES = tuple(f"{out},{zone}" for out in HEATERS for zone in range(1, 11))
#: A field check: its text in, its canonical text out.
Check = Callable[[str], str]


def _number(text: str, kind: type) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LakeShoreError(COMMAND_ERROR, f"{text!r} is not a number") from None
    if kind is int and value != int(value):
        raise LakeShoreError(COMMAND_ERROR, f"{text!r} is not an integer")
    return value


def integer(low: int, high: int) -> Check:
    def check(text: str) -> str:
        value = int(_number(text, int))
        if not low <= value <= high:
            raise LakeShoreError(EXECUTION_ERROR, f"{value} is outside {low}..{high}")
        return str(value)

    return check


def real(low: float, high: float) -> Check:
    def check(text: str) -> str:
        value = _number(text, float)
        if not low <= value <= high:
            raise LakeShoreError(EXECUTION_ERROR, f"{value:g} is outside {low:g}..{high:g}")
        return f"{value:+.5E}"

    return check


def choice(*values: str) -> Check:
    def check(text: str) -> str:
        value = text.strip().upper()
        if value not in values:
            raise LakeShoreError(EXECUTION_ERROR, f"{text!r} is not one of {', '.join(values)}")
        return value

    return check


def name(text: str) -> str:
    value = text.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if len(value) > 15:
        raise LakeShoreError(EXECUTION_ERROR, f"name {value!r} is longer than 15 characters")
    return f'"{value}"'


FLAG = integer(0, 1)


@dataclass(frozen=True)
class Stored:
    """A command whose fields the instrument stores, per address (`NONE`: no address); the
    address is the first `address_fields` arguments, joined by commas."""

    addresses: tuple[str, ...]
    checks: tuple[Check, ...]
    defaults: tuple[str, ...]
    address_fields: int = 1


#: Outputs 0 (sample heater) and 1 (warm-up heater) set up differently: `HTRSET`.
SAMPLE_HTRSET = (real(1.0, 2000.0), integer(0, 0), real(0.0, 0.0), integer(1, 2))
WARMUP_HTRSET = (integer(1, 2), integer(0, 2), real(0.0, 0.63), integer(1, 2))

STORED: dict[str, Stored] = {
    # input/channel: enabled, dwell (s), pause (s), curve, temperature coefficient
    "INSET": Stored(INPUTS, (FLAG, integer(1, 200), integer(3, 200), integer(0, 59),
                             integer(1, 2)), ("1", "10", "3", "0", "1")),
    # mode (0 voltage, 1 current), excitation, autorange, resistance range, shunted, units
    "INTYPE": Stored(INPUTS, (FLAG, integer(1, 22), integer(0, 2), integer(1, 22), FLAG,
                              integer(1, 2)), ("0", "2", "1", "22", "0", "1")),
    "INNAME": Stored(INPUTS, (name,), ('""',)),
    # mode 0-6, control input, powerup, polarity, filtered, delay (s)
    "OUTMODE": Stored(OUTPUTS, (integer(0, 6), choice("0", *INPUTS), FLAG, FLAG, FLAG,
                                integer(1, 255)), ("0", "1", "0", "0", "0", "1")),
    "RANGE": Stored(OUTPUTS, (integer(0, 8),), ("0",)),
    "SETP": Stored(OUTPUTS, (real(0.0, 100.0),), ("+0.00000E+00",)),
    "PID": Stored(OUTPUTS, (real(0.0, 1000.0), real(0.0, 10000.0), real(0.0, 2500.0)),
                  ("+1.00000E+01", "+2.00000E+01", "+0.00000E+00")),
    "MOUT": Stored(OUTPUTS, (real(0.0, 100.0),), ("+0.00000E+00",)),
    "RAMP": Stored(HEATERS, (FLAG, real(0.001, 100.0)), ("0", "+1.00000E-01")),
    "HTRSET": Stored(HEATERS, SAMPLE_HTRSET, ("+1.00000E+02", "0", "+0.00000E+00", "1")),
    # scanner: the channel measured, autoscan on/off
    "SCAN": Stored(NONE, (integer(1, 16), FLAG), ("1", "0")),
    "EMUL": Stored(NONE, (FLAG,), ("0",)),
    # zone table of outputs 0 and 1, zones 1-10: upper bound (K), P, I, D, manual output (%),
    # heater range (sample 0-8, warm-up 0-1), ramp rate (K/min), relay 1, relay 2
    "ZONE": Stored(ZONES, (real(0.0, 100.0), real(0.0, 1000.0), real(0.0, 10000.0),
                           real(0.0, 2500.0), real(0.0, 100.0), integer(0, 8),
                           real(0.0, 100.0), FLAG, FLAG),
                   ("+0.00000E+00", "+1.00000E+01", "+2.00000E+01", "+0.00000E+00",
                    "+0.00000E+00", "0", "+1.00000E-01", "0", "0"), address_fields=2),
    # warm-up heater (output 1) in warm-up mode: 0 auto off, 1 continuous; current (%)
    "WARMUP": Stored(NONE, (FLAG, real(0.0, 100.0)), ("0", "+0.00000E+00")),
    # outputs 1 and 2: polarity, mode, input (shared with OUTMODE), source (1 K, 2 ohm),
    # high and low value (monitor out: the data at 100 % and at 0 % / -100 %), manual value (%)
    "ANALOG": Stored(ANALOGS, (FLAG, integer(0, 6), choice("0", *INPUTS), integer(1, 2),
                               real(-1e9, 1e9), real(-1e9, 1e9), real(-100.0, 100.0)),
                     ("0", "0", "1", "1", "+1.00000E+00", "+0.00000E+00", "+0.00000E+00")),
    # the rear-panel monitor BNC: 0 off, 1 CS-, 2 CS+, 3 VCM-, 4 VCM+, 5 VDIF, 6 VAD measurement,
    # 7 VAD control
    "MONITOR": Stored(NONE, (integer(0, 7),), ("0",)),
}
#: `ANALOG` fields that are `OUTMODE`'s (polarity, mode, input): ANALOG index -> OUTMODE index.
ANALOG_SHARES_OUTMODE = {0: 3, 1: 0, 2: 1}
#: Warm-up heater's `HTRSET`: 25 ohm, 0.45 A, current display.
WARMUP_HTRSET_DEFAULTS = ("1", "1", "+0.00000E+00", "1")
