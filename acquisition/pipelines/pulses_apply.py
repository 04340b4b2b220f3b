"""The `pulses` pipeline's apply pass: every record of a channel, streamed from the run store in
blocks, through the cuts and the filter its learn step found (`pulses_channel.Learned`).

Per block of `BLOCK_ROWS` records, one compiled pass (`record_apply.record_features`) gives
each record's filtered amplitude, rms, largest deviation, rise after the peak and residual from
the cut template; pulse records pass when isolated (`RecordCuts.guard`, every pulse trigger
counted) and within the pile-up cuts, noise records when isolated, within the rms and deviation
cuts and, through the first filter, the amplitude cut. What is kept are a few numbers per
record (`Applied`, ~20 bytes), never the records. Applied to the records the learn step held,
the selection is the learn step's own (`p_ok`, `n_ok`), up to floating-point rounding of the
numbers cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.pipelines.pulses_channel import BLOCK_ROWS, Learned, Stream, joined
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.analysis.record_apply import amplitudes, record_features


def record_blocks(
    reader: RunReader, stream: Stream, ch: int
) -> Iterator[tuple[np.ndarray, slice, np.ndarray]]:
    """Every record of channel `ch` in the acquisitions of `stream` (`Stream.parts`), in blocks
    of `BLOCK_ROWS`, in the order of `Stream.kinds`: (trigger kinds, rows over all parts,
    records) per block."""
    offset = 0
    for part, kind in zip(stream.parts, stream.kinds, strict=True):
        for first, block in reader.iter_rows(part, ch, ["records"], BLOCK_ROWS, stop=kind.size):
            rec = block["records"]
            start = offset + first
            yield kind[first : first + len(rec)], slice(start, start + len(rec)), rec
        offset += kind.size


def pulse_blocks(reader: RunReader, stream: Stream, ch: int) -> Iterator[np.ndarray]:
    """Every pulse (edge) record of channel `ch`, held in `stream` or not, block after block,
    in the order of `Stream.pulses`."""
    for kind, _, rec in record_blocks(reader, stream, ch):
        yield rec[kind == TriggerKind.EDGE]


@dataclass(frozen=True)
class Applied:
    """Per record of every part (in `Stream.pulses` / `Stream.noise` order, held or not): the
    filtered amplitude (record units times the weights') and whether the record is clean, for
    the pulse and for the noise records, and whether a pulse record is isolated (clean
    records are, and passed the cuts too); and how many records were read."""

    pulse_amplitude: np.ndarray
    pulse_clean: np.ndarray
    pulse_isolated: np.ndarray
    noise_amplitude: np.ndarray
    noise_clean: np.ndarray
    records: int

    def clean_pulses(self) -> np.ndarray:
        return self.pulse_amplitude[self.pulse_clean]

    def clean_noise(self) -> np.ndarray:
        return self.noise_amplitude[self.noise_clean]


def isolated_rows(stream: Stream, guard: int, geo: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Masks over every row of all parts (`Stream.kinds`) of the pulse and of the noise records
    isolated by `guard` samples (`Stream.every_isolation`)."""
    kind = np.concatenate(stream.kinds)
    iso_p, iso_n = stream.every_isolation(guard, int(geo["pre"]), int(geo["length"]))
    pulse, noise = np.zeros(kind.size, bool), np.zeros(kind.size, bool)
    pulse[np.flatnonzero(kind == TriggerKind.EDGE)[iso_p]] = True
    noise[np.flatnonzero(kind == TriggerKind.AUTO)[iso_n]] = True
    return pulse, noise


def apply_pass(
    reader: RunReader,
    stream: Stream,
    ch: int,
    learned: Learned,
    geo: dict[str, Any],
    weights: np.ndarray | None = None,
    also: Callable[[np.ndarray], None] | None = None,
) -> Applied:
    """Every record of channel `ch` in the acquisitions of `stream` through `learned`'s cuts
    and filter (or `weights`, e.g. the filter for records in physical units), block after
    block (see module docstring); `also`, if given, gets each block's pulse records too (a
    pipeline's own numbers from the same read)."""
    cuts, pre = learned.cuts, int(geo["pre"])
    w = learned.filt.weights if weights is None else weights
    iso_p, iso_n = isolated_rows(stream, cuts.guard, geo)
    out: dict[str, list[np.ndarray]] = {"amp_p": [], "ok_p": [], "iso": [], "amp_n": [], "ok_n": []}
    read = 0
    for kind, rows, rec in record_blocks(reader, stream, ch):
        f = record_features(rec, w, cuts.pileup.template, pre, cuts.pileup.sign)
        edge, auto = kind == TriggerKind.EDGE, kind == TriggerKind.AUTO
        p = iso_p[rows] & cuts.pileup.rise.contains(f.rise_after_peak)
        p &= cuts.pileup.residual.contains(f.residual)
        n = iso_n[rows] & cuts.noise.passed(f.rms, f.max_dev)
        n[n] = cuts.noise_amplitude.contains(amplitudes(rec[n], cuts.first_weights))
        if also is not None:
            also(rec[edge])
        out["amp_p"].append(f.amplitude[edge])
        out["ok_p"].append(p[edge])
        out["iso"].append(iso_p[rows][edge])
        out["amp_n"].append(f.amplitude[auto])
        out["ok_n"].append(n[auto])
        read += len(rec)
    cat = {k: joined(v, float if k[:3] == "amp" else bool) for k, v in out.items()}
    return Applied(cat["amp_p"], cat["ok_p"], cat["iso"], cat["amp_n"], cat["ok_n"], read)


def gather_pulses(
    reader: RunReader, stream: Stream, ch: int, indices: np.ndarray, scale: float
) -> np.ndarray:
    """The pulse records at `indices` (ascending, into every pulse record in `Stream.pulses`
    order) as float64 times `scale` (e.g. Phi0 per stored unit)."""
    want = np.asarray(indices, dtype=np.int64)
    out, seen = [], 0
    for kind, _, rec in record_blocks(reader, stream, ch):
        pulses = rec[kind == TriggerKind.EDGE]
        lo, hi = np.searchsorted(want, [seen, seen + len(pulses)])
        out.append(pulses[want[lo:hi] - seen])
        seen += len(pulses)
        if hi == want.size:
            break
    length = int(stream.pulses.shape[1])
    return np.concatenate(out).astype(np.float64) * scale if out else np.zeros((0, length))
