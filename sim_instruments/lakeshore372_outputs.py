"""How the Model 372's output modes other than PID set an output: the zone table, the warm-up
heater's rule and the monitor-out scaling.

Zone mode (OUTMODE mode 3): when the control setpoint (while a ramp runs, the ramping
setpoint) crosses into a zone, that zone supplies P, I, D, manual output, heater range and
ramp rate (`ZONE`); zone k spans (upper bound of the zone below it, upper bound k]. Warm-up
mode (mode 6, output 1): while the control input reads below the setpoint the output applies
`WARMUP`'s percentage of its full current; at the setpoint it stops, and with auto off
(control 0) it switches itself off for good. Monitor out (mode 1):
the output follows the input's data linearly, `ANALOG`'s low value at 0 % (-100 % bipolar)
and its high value at 100 %.
"""

from __future__ import annotations

from collections.abc import Mapping


def zone_for(
    setpoint_K: float, table: Mapping[int, tuple[str, ...]]
) -> tuple[int, tuple[str, ...]]:
    """The zone for `setpoint_K` and its fields (`ZONE?`'s reply fields): the lowest zone whose
    upper bound is at or above it; above every bound, the zone with the highest bound."""
    ordered = sorted(table.items(), key=lambda item: (float(item[1][0]), item[0]))
    for k, fields in ordered:
        if setpoint_K <= float(fields[0]):
            return k, fields
    return ordered[-1]


def warmup_level(reading_K: float, setpoint_K: float, percent: float) -> float:
    """Warm-up heater level (fraction of full current): on below the setpoint, off at it."""
    return percent / 100.0 if reading_K < setpoint_K else 0.0


def monitor_level(value: float, low: float, high: float, bipolar: bool) -> float:
    """Monitor-out level for the input's `value`: 0 at `low` (-1 if bipolar), 1 at `high`;
    a unipolar output is clipped at 0 (a heater output cannot go negative)."""
    if high == low:
        return 0.0
    fraction = (value - low) / (high - low)
    if bipolar:
        fraction = 2.0 * fraction - 1.0
    return min(max(fraction, -1.0 if bipolar else 0.0), 1.0)
