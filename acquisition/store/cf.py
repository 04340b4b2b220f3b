"""Dimension names and CF attributes (units, long_name, description) of the run store's arrays."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from cryodaq.acquisition.events import TriggerKind

#: Dimension names, the same in every group: a channel's arrays share RECORD (row i of each
#: is record i), a record's samples run along SAMPLE; an acquisition's gaps along GAP, each a
#: [first, stop) pair along GAP_BOUND.
RECORD, SAMPLE, GAP, GAP_BOUND = "record", "sample", "gap", "gap_bound"
#: Units of sample counts and indices (not a CF time unit, so xarray leaves them as numbers).
SAMPLES = "samples"
#: CF time units of `timestamp_ns`: xarray decodes it to datetime64[ns], exactly.
TIMESTAMP_UNITS = "nanoseconds since 1970-01-01T00:00:00Z"
#: Stands for the source's data unit in FIELD_ATTRS: replaced by `data_units(...)`.
DATA = "data"

#: Per field of a channel: units (or DATA) and (long_name, description).
FIELD_ATTRS: dict[str, tuple[str, str, str]] = {
    "records": (DATA, "record", "samples of the record; the trigger is at sample `pretrigger`"),
    "sample_index": (SAMPLES, "trigger sample",
                     "absolute sample of the trigger in the stream; the record starts "
                     "`pretrigger` samples earlier"),
    "timestamp_ns": (TIMESTAMP_UNITS, "trigger time",
                     "wall-clock (or virtual) time of the trigger sample, UTC"),
    "trigger_kind": ("1", "trigger kind", "why the record was taken (flag_meanings)"),
    "coincidence": ("1", "coincident channels",
                    "channels that triggered within the coincidence window (1: alone)"),
    "pretrig_mean": (DATA, "pretrigger mean", "mean of the pretrigger samples"),
    "pretrig_rms": (DATA, "pretrigger rms", "rms of the pretrigger samples about their mean"),
    "peak_value": (DATA, "peak value",
                   "largest excursion after the pretrigger, baseline subtracted, times the "
                   "channel's polarity (pulses are positive)"),
    "peak_index": (SAMPLES, "peak index", "sample of the peak within the record"),
    "rise_time_s": ("s", "rise time", "10 % to 90 % of the peak on the rising edge"),
    "postpeak_deriv": (DATA, "post-peak derivative",
                       "largest rise from one sample to the next after the peak (pile-up), "
                       "times the channel's polarity"),
    "pulse_average": (DATA, "pulse average",
                      "mean excursion after the pretrigger, baseline subtracted, times the "
                      "channel's polarity"),
}  # fmt: skip


def data_units(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """CF `units` (and `scale_factor`) of values in the source's data unit, from an
    acquisition's metadata: `unit` (e.g. "V"; none: "1") and `units_per_value` (V per ADC code,
    Phi0 per radian, ...). CF readers (xarray) multiply by `scale_factor` to give `units`."""
    out: dict[str, Any] = {"units": str(metadata.get("unit") or "1")}
    scale = metadata.get("units_per_value")
    number = isinstance(scale, int | float) and not isinstance(scale, bool)
    if number and math.isfinite(scale) and scale not in (0, 1):
        out["scale_factor"] = float(scale)
    return out


def field_attrs(name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of a channel's array `name` (a FIELD_ATTRS key); `data` is what
    `data_units` gave for the acquisition."""
    units, long_name, description = FIELD_ATTRS[name]
    out: dict[str, Any] = dict(data) if units == DATA else {"units": units}
    out.update(long_name=long_name, description=description)
    if units == TIMESTAMP_UNITS:
        out.update(standard_name="time", calendar="proleptic_gregorian")
    if name == "trigger_kind":
        out.update(
            flag_values=[int(k) for k in TriggerKind],
            flag_meanings=" ".join(k.name.lower() for k in TriggerKind),
        )
    return out


GAPS_ATTRS: dict[str, Any] = {
    "units": SAMPLES,
    "long_name": "gaps",
    "description": "samples [first, stop) that never arrived: first at gap_bound 0, stop at 1",
}


def column_dims(name: str, row_shape: Sequence[int]) -> tuple[str, ...]:
    """Dimension names of a per-record array `name` whose rows have `row_shape`: RECORD, then
    `<name>_dim1`, ... (only `records` has a named second dimension, SAMPLE)."""
    return (RECORD, *(f"{name}_dim{i}" for i in range(1, len(row_shape) + 1)))
