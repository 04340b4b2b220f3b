"""The `holmes` pipeline's pass over every record of a detector, streamed from the run store in
blocks: per pulse record the flux-quantum slip flag, whether it is clean (the learned
isolation, pile-up cuts and `isolation_s`, and not slipped), the filtered amplitude (after the
optional moving average), the arrival phase and the baseline; per noise record its baseline.
What follows (bath signal, drift and phase corrections, calibration) works on these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.pipelines.pulses_apply import isolated_rows, record_blocks
from cryodaq.acquisition.pipelines.pulses_channel import Learned, Stream, joined
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.analysis.arrival_phase import rising_phase
from cryodaq.analysis.moving_average import moving_average
from cryodaq.analysis.optimal_filter import OptimalFilter
from cryodaq.analysis.record_apply import record_features
from cryodaq.analysis.slew import find_slips


@dataclass(frozen=True)
class DetectorRecords:
    """Per pulse record (every one, in `Stream.pulses` order) and per noise record."""

    slipped: np.ndarray
    clean: np.ndarray
    amplitude: np.ndarray  # Phi0 over the filter's template
    phase: np.ndarray  # arrival phase (fractional sample of the half-height crossing)
    baseline: np.ndarray  # pretrigger mean, Phi0
    noise_baseline: np.ndarray  # whole-record mean of each noise record, Phi0


@dataclass(frozen=True)
class Filtering:
    """How pulse records become numbers: the slip template (unit peak, from pulses that do
    not slip), the filter (Phi0, for records smoothed over `smooth` samples when > 1), the
    records' scale (Phi0 per stored unit) and the isolation `quiet` asks for (samples)."""

    slip_template: np.ndarray
    filt: OptimalFilter
    smooth: int
    scale: float
    quiet: int


def detector_records(
    reader: RunReader,
    stream: Stream,
    ch: int,
    learned: Learned,
    how: Filtering,
    geo: dict[str, Any],
) -> DetectorRecords:
    """Every record of channel `ch` in the acquisitions of `stream`, block after block (see
    module docstring)."""
    pre, cuts = int(geo["pre"]), learned.cuts
    iso, _ = isolated_rows(stream, cuts.guard, geo)
    quiet, _ = isolated_rows(stream, how.quiet, geo)
    out: dict[str, list[np.ndarray]] = {k: [] for k in DetectorRecords.__dataclass_fields__}
    for kind, rows, rec in record_blocks(reader, stream, ch):
        edge, auto = kind == TriggerKind.EDGE, kind == TriggerKind.AUTO
        raw = rec[edge]
        x = raw.astype(np.float64) * how.scale
        f = record_features(raw, learned.filt.weights, cuts.pileup.template, pre, cuts.pileup.sign)
        slipped = find_slips(x, pre, how.slip_template).slipped
        clean = iso[rows][edge] & quiet[rows][edge] & ~slipped
        clean &= cuts.pileup.rise.contains(f.rise_after_peak)
        clean &= cuts.pileup.residual.contains(f.residual)
        smoothed = moving_average(x, how.smooth) if how.smooth > 1 else x
        out["slipped"].append(slipped)
        out["clean"].append(clean)
        out["amplitude"].append(how.filt.apply(smoothed))
        out["phase"].append(rising_phase(x, pre, learned.avg.sign))
        out["baseline"].append(x[:, :pre].mean(axis=1))
        out["noise_baseline"].append((rec[auto].astype(np.float64) * how.scale).mean(axis=1))
    flags = ("slipped", "clean")
    return DetectorRecords(**{k: joined(v, bool if k in flags else float) for k, v in out.items()})
