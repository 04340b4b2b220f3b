"""One channel of the `pulses` pipeline: its records read from the run store, cleaned, and
turned into a pulse fit, an optimal filter, a calibration and resolutions.

Cleaning: records are kept only with no other pulse trigger from `isolation_decays` decay times
before their start to their end; pulses with a second pulse inside the record (not triggered,
being in the holdoff) are cut on their largest step after the peak and on their residual from
the scaled average pulse; noise records on their rms, largest deviation and filtered amplitude
(a pulse below the trigger threshold). Cuts are robust (median and MAD) at 5-6 sigma.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.analysis.line_fit import LineFit, dominant_peak, fit_line, histogram
from cryodaq.analysis.optimal_filter import (
    AveragePulse,
    OptimalFilter,
    average_pulse,
    noise_psd,
    optimal_filter,
)
from cryodaq.analysis.pulse_fit import PulseFit, fit_pulse
from cryodaq.analysis.record_apply import row_means, template_residuals
from cryodaq.analysis.record_cuts import (
    Band,
    isolated,
    noise_record_stats,
    rise_after_peak,
    robust_band,
    robust_sigma,
)
from cryodaq.analysis.xray_lines import LINE_SHAPES

#: Robust-sigma multiples of the record cuts.
CUT_SIGMAS = 5.0
NOISE_AMPLITUDE_SIGMAS = 6.0
#: Records read at a time (a multiple of the store's chunk rows: 64 for 4096-sample records).
BLOCK_ROWS = 4096


class ChannelSkipped(Exception):
    """A channel that cannot be analysed; the message is the reason reported."""


@dataclass
class Stream:
    """The records of one channel over all parts of the acquisitions, by trigger kind: all of
    them, or the first ones (`read_stream`'s `limit`); and every record's trigger kind and
    sample, per part, whether held or not (`parts`: the acquisitions holding the channel)."""

    pulses: np.ndarray  # EDGE records
    noise: np.ndarray  # AUTO records
    pulse_at: list[np.ndarray] = field(default_factory=list)  # per part: trigger samples
    noise_at: list[np.ndarray] = field(default_factory=list)
    edge_triggers: int = 0
    parts: list[str] = field(default_factory=list)
    kinds: list[np.ndarray] = field(default_factory=list)  # per part: every record's kind
    times: list[np.ndarray] = field(default_factory=list)  # per part: every record's sample
    limit: int | None = None  # `read_stream`'s limit, when it left records out

    def held(self, what: str) -> str:
        """`what` (e.g. "clean pulses"), saying where from when the limit left records out."""
        return f"{what} in the first {self.limit} held (learn_records)" if self.limit else what

    def edges(self) -> list[np.ndarray]:
        """Per part: the sample of every pulse trigger."""
        return [t[k == TriggerKind.EDGE] for k, t in zip(self.kinds, self.times, strict=True)]

    def isolation(self, before: int, pre: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the held pulse and noise records with no other pulse trigger from `before`
        samples ahead of the record's start to its end (per part: counters are per
        acquisition)."""
        return _isolation(self.pulse_at, self.noise_at, self.edges(), before, pre, length)

    def every_isolation(self, before: int, pre: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """`isolation` of every pulse and noise record, held or not."""
        edges = self.edges()
        autos = [t[k == TriggerKind.AUTO] for k, t in zip(self.kinds, self.times, strict=True)]
        return _isolation(edges, autos, edges, before, pre, length)


def _isolation(
    pulse_at: list[np.ndarray], noise_at: list[np.ndarray], edges: list[np.ndarray],
    before: int, pre: int, length: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    p, n = [], []
    for at_p, at_n, every in zip(pulse_at, noise_at, edges, strict=True):
        iso_p, iso_n = isolation_masks(at_p, at_n, every, before, pre, length)
        p.append(iso_p)
        n.append(iso_n)
    return joined(p, bool), joined(n, bool)


def isolation_masks(
    pulse_at: np.ndarray,
    noise_at: np.ndarray,
    edges: np.ndarray,
    before: int,
    pre: int,
    length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pulse and noise records triggered at `pulse_at`, `noise_at` (samples of one acquisition)
    with none of the pulse triggers `edges` from `before` samples ahead of their start to their
    end (a pulse record's own trigger aside)."""
    return (
        isolated(pulse_at, edges, before + pre, length - pre, own=True),
        isolated(noise_at, edges, before + pre, length - pre),
    )


@dataclass
class ChannelResult:
    """Numbers for summary.json and arrays for the figures of one channel."""

    numbers: dict[str, Any]
    avg: AveragePulse
    fit: PulseFit
    filt: OptimalFilter
    scale: float  # physical units per data unit
    line: LineFit
    edges: np.ndarray
    counts: np.ndarray
    gain: float  # eV per data unit
    energy_scale: float  # final / first calibration (the line was fitted before it)


def joined(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
    """`arrays` end to end; an empty array of `dtype` when there are none."""
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype)


def _first(mask: np.ndarray, n: int) -> np.ndarray:
    """`mask` with only its first `n` True entries left."""
    out = mask.copy()
    out[np.flatnonzero(mask)[n:]] = False
    return out


def read_stream(reader: RunReader, parts: list[str], ch: int, limit: int | None = None) -> Stream:
    """Edge and auto records of channel `ch` in acquisitions `parts` (skipping parts without it):
    all of them, or with `limit` the first `limit` of each kind (all triggers still counted).

    Records are read in blocks of `BLOCK_ROWS` and sorted into the edge and auto arrays as
    they come, so the records held are in memory once, not twice."""
    pulses, noise, p_at, n_at, n_edge = [], [], [], [], 0
    held_parts, kinds, times = [], [], []
    left_p = left_n = np.iinfo(np.int64).max if limit is None else int(limit)
    for part in parts:
        if ch not in reader.channels(part):
            continue
        d = reader.read(part, ch, ["trigger_kind", "sample_index"])
        kind, at = d["trigger_kind"], d["sample_index"]
        edge, auto = kind == TriggerKind.EDGE, kind == TriggerKind.AUTO
        n_edge += int(edge.sum())
        held_parts.append(part)
        kinds.append(kind)
        times.append(at)
        edge, auto = _first(edge, left_p), _first(auto, left_n)
        left_p, left_n = left_p - int(edge.sum()), left_n - int(auto.sum())
        info = reader.info(part)
        shape, dtype = (info["record_length"],), np.dtype(info["dtype"])
        pulses.append(np.empty((int(edge.sum()), *shape), dtype))
        noise.append(np.empty((int(auto.sum()), *shape), dtype))
        held = np.flatnonzero(edge | auto)
        ip = ia = 0
        stop = int(held[-1]) + 1 if held.size else 0
        for first, block in reader.iter_rows(part, ch, ["records"], BLOCK_ROWS, stop=stop):
            rec = block["records"]
            e, a = edge[first : first + len(rec)], auto[first : first + len(rec)]
            pulses[-1][ip : ip + e.sum()] = rec[e]
            noise[-1][ia : ia + a.sum()] = rec[a]
            ip, ia = ip + int(e.sum()), ia + int(a.sum())
        p_at.append(at[edge])
        n_at.append(at[auto])
    if not pulses:
        raise ChannelSkipped("channel not in these acquisitions")
    stream = Stream(_joined(pulses), _joined(noise), p_at, n_at, n_edge, held_parts, kinds, times)
    every = sum(int(np.isin(k, (TriggerKind.EDGE, TriggerKind.AUTO)).sum()) for k in kinds)
    if len(stream.pulses) + len(stream.noise) < every:
        stream.limit = limit
    return stream


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


@dataclass(frozen=True)
class NoiseCuts:
    """The upper cuts on noise records' rms and largest deviation (`clean_noise`)."""

    rms: Band
    max_dev: Band

    def passed(self, rms: np.ndarray, max_dev: np.ndarray) -> np.ndarray:
        return self.rms.contains(rms) & self.max_dev.contains(max_dev)


def clean_noise(records: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, NoiseCuts]:
    """`mask` narrowed by robust upper cuts on each record's rms and largest deviation, and
    those cuts; raises ChannelSkipped when `mask` selects no record."""
    out = mask.copy()
    if not mask.any():
        raise ChannelSkipped("no noise record is isolated from pulses")
    rms, dev = noise_record_stats(records[mask])
    cuts = NoiseCuts(robust_band(rms, CUT_SIGMAS, upper_only=True),
                     robust_band(dev, CUT_SIGMAS, upper_only=True))  # fmt: skip
    out[mask] = cuts.passed(rms, dev)
    return out, cuts


def need(what: str, n: int, minimum: int) -> None:
    if n < minimum:
        raise ChannelSkipped(f"only {n} {what} (need {minimum})")


@dataclass(frozen=True)
class PileupCuts:
    """The upper cuts on pulses' largest rise after the peak (`sign` times the record) and on
    their rms residual from `template` scaled to them (`without_pileup`)."""

    sign: float
    rise: Band
    template: np.ndarray
    residual: Band


def without_pileup(
    records: np.ndarray, ok: np.ndarray, pre: int, fs: float
) -> tuple[AveragePulse, PileupCuts]:
    """Narrow `ok` to pulses without a second pulse in the record (none is triggered during
    the holdoff): robust cuts on the largest step after the peak and on the rms residual from
    the scaled average pulse; returns the average of the pulses left, and the cuts."""
    sign = average_pulse(records[ok], pre, fs).sign
    rise = rise_after_peak(records[ok], sign)
    rise_band = robust_band(rise, CUT_SIGMAS, upper_only=True)
    ok[ok] = rise_band.contains(rise)
    template = average_pulse(records[ok], pre, fs).template
    x = records[ok]
    resid = template_residuals(x, row_means(x, 0, pre), template)
    resid_band = robust_band(resid, CUT_SIGMAS, upper_only=True)
    ok[ok] = resid_band.contains(resid)
    return average_pulse(records[ok], pre, fs), PileupCuts(sign, rise_band, template, resid_band)


@dataclass(frozen=True)
class RecordCuts:
    """The learned selection of clean records as numbers, to apply to records not held in
    memory (`pulses_apply`): isolation `guard` (samples before a record with no other pulse
    trigger), the pile-up and noise cuts, and the noise cut on the amplitude through the first
    filter (`first_weights`)."""

    guard: int
    pileup: PileupCuts
    noise: NoiseCuts
    first_weights: np.ndarray
    noise_amplitude: Band


@dataclass
class Learned:
    """What a channel's (or a pixel's) clean records teach: the average pulse and its fit, the
    optimal filter, which pulse and noise records were clean, and the cuts that chose them."""

    avg: AveragePulse
    fit: PulseFit
    filt: OptimalFilter
    p_ok: np.ndarray  # bool per pulse record of the stream
    n_ok: np.ndarray  # bool per noise record
    noise_rms: float  # per sample, record units
    cuts: RecordCuts


def learn_filter(
    stream: Stream, geo: dict[str, Any], opts: dict[str, Any], select: np.ndarray | None = None
) -> Learned:
    """Clean records, average pulse, pulse fit and optimal filter of a stream (see module
    docstring); `select` (bool per pulse record) restricts the pulses used, e.g. to one pixel
    of a double meander, while isolation still counts every trigger. Raises ChannelSkipped."""
    length, pre, fs = geo["length"], geo["pre"], geo["fs"]
    chosen = np.ones(len(stream.pulses), bool) if select is None else np.asarray(select, bool)
    need(stream.held("pulse (edge) triggers"), int(chosen.sum()), opts["min_pulses"])
    need(stream.held("noise (auto) records"), len(stream.noise), opts["min_noise"])
    # Pass 1: isolation by one record length; a first average pulse gives the decay time.
    p_ok, _ = stream.isolation(length, pre, length)
    p_ok &= chosen
    need(stream.held("clean pulses"), int(p_ok.sum()), opts["min_pulses"])
    avg, _ = without_pileup(stream.pulses, p_ok, pre, fs)
    fit = fit_pulse(avg.sign * avg.average, pre, fs)
    # Pass 2: isolation by `isolation_decays` decay times, so no earlier tail is left.
    guard = max(length, int(np.ceil(opts["isolation_decays"] * fit.decay_s * fs)))
    p_ok, n_ok = stream.isolation(guard, pre, length)
    p_ok &= chosen
    n_ok, noise_cuts = clean_noise(stream.noise, n_ok)
    need(stream.held("clean pulses"), int(p_ok.sum()), opts["min_pulses"])
    need(stream.held("clean noise records"), int(n_ok.sum()), opts["min_noise"])
    avg, pileup = without_pileup(stream.pulses, p_ok, pre, fs)
    need(stream.held("clean pulses"), int(p_ok.sum()), opts["min_pulses"])
    first = optimal_filter(avg.template, noise_psd(stream.noise[n_ok], fs))
    # Noise records holding a pulse below the trigger threshold; then the final filter.
    amp_n = first.apply(stream.noise[n_ok])
    amp_band = robust_band(amp_n, NOISE_AMPLITUDE_SIGMAS)
    n_ok[n_ok] = amp_band.contains(amp_n)
    need(stream.held("clean noise records"), int(n_ok.sum()), opts["min_noise"])
    filt = optimal_filter(avg.template, noise_psd(stream.noise[n_ok], fs))
    noise_rms = float(np.sqrt(np.median(noise_record_stats(stream.noise[n_ok])[0] ** 2)))
    fit = fit_pulse(
        avg.sign * avg.average, pre, fs, sigma=max(noise_rms, 1e-12) / np.sqrt(avg.n_records)
    )
    cuts = RecordCuts(guard, pileup, noise_cuts, first.weights, amp_band)
    return Learned(avg, fit, filt, p_ok, n_ok, noise_rms, cuts)


def calibrate(
    stream: Stream,
    geo: dict[str, Any],
    opts: dict[str, Any],
    learned: Learned,
    amp_p: np.ndarray,
    amp_n: np.ndarray,
) -> ChannelResult:
    """Calibration, line fit and resolutions from the filtered amplitudes of the clean pulses
    (positive ones) and noise records; raises ChannelSkipped."""
    avg, fit, filt = learned.avg, learned.fit, learned.filt
    amp_p = amp_p[amp_p > 0]
    line_eV = float(opts["line_eV"])
    gain = line_eV / dominant_peak(amp_p)
    pred_eV = gain * filt.predicted_fwhm
    window = float(opts["window_eV"] or max(50.0, 10.0 * pred_eV))
    bin_eV = float(opts["bin_eV"] or max(0.5, pred_eV / 10.0))
    counts, edges = histogram(gain * amp_p, line_eV - window, line_eV + window, bin_eV)
    shape = LINE_SHAPES.get(opts["line_shape"])
    try:
        line = fit_line(
            counts, edges, shape, reference=line_eV if shape else None,
            background=bool(opts["background"]), centre=line_eV, fwhm=max(pred_eV, bin_eV),
        )  # fmt: skip
    except ValueError as exc:
        raise ChannelSkipped(f"line fit failed: {exc}") from None
    if not (np.isfinite(line.centre) and line.centre > 0 and np.isfinite(line.fwhm_err)):
        raise ChannelSkipped("line fit did not converge")
    scale = line_eV / line.centre  # the fitted centre lands on line_eV
    gain *= scale
    base_fit = baseline_fit(gain * amp_n)
    live, n_edge = geo["live_s"], stream.edge_triggers
    rate = n_edge / live if live > 0 else float("nan")
    dead = geo["holdoff"] / geo["fs"]
    numbers = {
        "rate_hz": rate,
        "rate_err_hz": np.sqrt(n_edge) / live if live > 0 else float("nan"),
        "rate_deadtime_corrected_hz": rate / (1.0 - rate * dead) if rate * dead < 1 else None,
        "rise_s": fit.rise_s,
        "rise_err_s": fit.rise_err_s,
        "decay_s": fit.decay_s,
        "decay_err_s": fit.decay_err_s,
        "fwhm_eV": line.fwhm * scale,
        "fwhm_err_eV": line.fwhm_err * scale,
        "baseline_fwhm_eV": base_fit.fwhm,
        "baseline_fwhm_err_eV": base_fit.fwhm_err,
        "predicted_fwhm_eV": gain * filt.predicted_fwhm,
        "ideal_fwhm_eV": gain * filt.ideal_fwhm,
        "counts": int(counts.sum()),
        "pulses": int(amp_p.size),
        "pulse_triggers": int(n_edge),
        "noise_records": int(amp_n.size),
        "live_time_s": live,
        "gain_eV_per_unit": gain / geo["scale"],
        "unit": geo["unit"],
        "polarity": int(avg.sign),
        "line_cash": line.cash,
        "line_dof": line.dof,
    }
    return ChannelResult(numbers, avg, fit, filt, geo["scale"], line, edges, counts, gain, scale)


def baseline_fit(energies: np.ndarray) -> LineFit:
    """Gaussian fit of the filtered noise energies (their histogram over +-6 robust sigma)."""
    s = robust_sigma(energies)
    if not s > 0:
        raise ChannelSkipped("filtered noise records have no spread")
    med = float(np.median(energies))
    counts, edges = histogram(energies, med - 6 * s, med + 6 * s, s / 4)
    return fit_line(counts, edges, None, centre=med, fwhm=2.3548 * s)
