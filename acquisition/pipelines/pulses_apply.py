"""The `pulses` pipeline's apply pass: every record of a channel, streamed from the run store in
blocks, through the cuts and the filter its learn step found (`pulses_channel.Learned`).

Per block of `BLOCK_ROWS` records, one compiled pass (`record_apply.record_features`) gives
each record's filtered amplitude, rms, largest deviation, rise after the peak and residual from
the cut template; pulse records pass when isolated (`RecordCuts.guard`, every pulse trigger
counted) and within the pile-up cuts, noise records when isolated, within the rms and deviation
cuts and, through the first filter, the amplitude cut. Only the amplitudes that pass are kept:
memory does not grow with the run. Applied to the records the learn step held, the selection
is the learn step's own (`p_ok`, `n_ok`), up to floating-point rounding of the numbers cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.pipelines.pulses_channel import (
    BLOCK_ROWS,
    Learned,
    isolation_masks,
)
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.analysis.record_apply import amplitudes, record_features


@dataclass(frozen=True)
class Applied:
    """Filtered amplitudes (record units over the template's) of the clean records of every
    part, in record order: pulses (all signs; the calibration keeps the positive ones) and
    noise records; and how many records were read."""

    pulses: np.ndarray
    noise: np.ndarray
    records: int


def apply_pass(
    reader: RunReader, parts: list[str], ch: int, learned: Learned, geo: dict[str, Any]
) -> Applied:
    """Every record of channel `ch` in acquisitions `parts` (parts without it skipped) through
    `learned`'s cuts and filter, block after block (see module docstring)."""
    length, pre = int(geo["length"]), int(geo["pre"])
    cuts, weights = learned.cuts, learned.filt.weights
    amp_p: list[np.ndarray] = []
    amp_n: list[np.ndarray] = []
    read = 0
    for part in parts:
        if ch not in reader.channels(part):
            continue
        d = reader.read(part, ch, ["trigger_kind", "sample_index"])
        kind, at = d["trigger_kind"], d["sample_index"]
        edge, auto = kind == TriggerKind.EDGE, kind == TriggerKind.AUTO
        iso_p, iso_n = isolation_masks(at[edge], at[auto], at[edge], cuts.guard, pre, length)
        wanted = np.zeros(kind.size, bool)
        wanted[np.flatnonzero(edge)[iso_p]] = True
        wanted[np.flatnonzero(auto)[iso_n]] = True
        for first, block in reader.iter_rows(part, ch, ["records"], BLOCK_ROWS, stop=kind.size):
            rec = block["records"]
            rows = slice(first, first + len(rec))
            f = record_features(rec, weights, cuts.pileup.template, pre, cuts.pileup.sign)
            p = wanted[rows] & edge[rows]
            p[p] = cuts.pileup.rise.contains(f.rise_after_peak[p]) & cuts.pileup.residual.contains(
                f.residual[p]
            )
            n = wanted[rows] & auto[rows]
            n[n] = cuts.noise.passed(f.rms[n], f.max_dev[n])
            n[n] = cuts.noise_amplitude.contains(amplitudes(rec[n], cuts.first_weights))
            amp_p.append(f.amplitude[p])
            amp_n.append(f.amplitude[n])
            read += len(rec)
    return Applied(_joined(amp_p), _joined(amp_n), read)


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0)
