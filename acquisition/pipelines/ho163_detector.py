"""One implanted detector of the `ho163` pipeline: its records read from the run store and
turned into calibrated energies of the events the pile-up flag accepts (a module-level
function over picklable inputs, so Dask can map it).

Order: the average pulse and optimal filter on the clean, isolated records among the first
`learn_records` (`pulses` pipeline, `learn_filter`); the filter and the learned cuts applied to
every pulse record, streamed from the store (`pulses_apply`); the second-order
calibration on the fluorescence lines (`cryodaq.analysis.line_calibration`, fitted on the
clean records; the 163Ho peaks help identify them, not calibrate); the
three-exponential fit of the average pulse; the pile-up flag (`cryodaq.analysis.pileup`:
Wiener filter, second spike) learned at pairs of Q/2 each on the measured noise, applied to
every record, and its time resolution tau_R from pairs on the measured noise; records with
another trigger less than `isolation_s` before them (an earlier pulse's tail under the
baseline) are set aside as dead time. The energy resolution at Q is interpolated between the
fitted lines; the 163Ho activity is the dead-time corrected trigger rate less the share of
events on the fluorescence lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.acquisition.pipelines.holmes_detector import line_numbers
from cryodaq.acquisition.pipelines.pulses import Shared
from cryodaq.acquisition.pipelines.pulses_apply import apply_pass, pulse_blocks
from cryodaq.acquisition.pipelines.pulses_channel import (
    ChannelSkipped,
    Stream,
    joined,
    learn_filter,
    need,
    read_stream,
)
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.analysis.ho163 import HO163_LINES
from cryodaq.analysis.line_calibration import (
    Calibration,
    KnownLine,
    LineResult,
    find_peaks_in,
    fit_known_line,
    identify_lines,
    polynomial_calibration,
)
from cryodaq.analysis.line_fit import Lorentzian
from cryodaq.analysis.optimal_filter import noise_psd, optimal_filter
from cryodaq.analysis.pileup import FlagResolution, flag_time_resolution, learn_pileup_flag
from cryodaq.analysis.pulse_fit import fit_three_exponential
from cryodaq.analysis.record_cuts import noise_record_stats


@dataclass
class Ho163Detector:
    """Numbers for summary.json and arrays for the spectrum of one detector."""

    numbers: dict[str, Any]
    energies: np.ndarray  # calibrated energies (eV) of the accepted events
    flagged: np.ndarray  # calibrated energies of the records flagged as resolved pile-up
    calibration: Calibration
    lines: list[LineResult]
    pairs: FlagResolution


def analyze_stored_ho163_detector(shared: Shared, ch: int) -> Ho163Detector:
    """Detector `ch`, read from the run store by whoever runs it; `shared.opts["lines"]`
    holds the calibration lines as `KnownLine`s."""
    reader = RunReader(shared.store)
    stream = read_stream(reader, list(shared.parts), ch, shared.opts["learn_records"])
    return analyze_ho163_detector(
        reader, stream, ch, shared.geo, shared.opts, tuple(shared.opts["lines"])
    )


#: The 163Ho peaks the fluorescence lines are told apart from (identification only).
HO_PEAKS = tuple(KnownLine(h.name, h.energy_eV, (Lorentzian(h.energy_eV, h.width_eV, 1.0),))
                 for h in HO163_LINES)


def calibrate_among_ho(amplitudes: np.ndarray, lines: tuple[KnownLine, ...],
                       fwhm_guess_eV: float) -> tuple[Calibration, list[LineResult]]:
    """Second-order calibration on the fluorescence `lines`, identified among the peaks of a
    spectrum that also holds the strong 163Ho peaks (used to identify, not to
    calibrate: their shape is the phase space's); then as `line_calibration.calibrate`: each
    line fitted on the provisional scale, the calibration through the fitted centres, twice
    (through zero with only two lines)."""
    a = np.asarray(amplitudes, dtype=np.float64)
    peaks = find_peaks_in(a)
    known = (*lines, *HO_PEAKS)
    pairs = [(i, j) for i, j in identify_lines(peaks, known, min_lines=min(4, len(known)))
             if j < len(lines)]
    if len(pairs) < 2:
        raise ValueError(f"could not identify 2 calibration lines among {peaks.size} peaks at "
                         f"{np.array2string(peaks, precision=4)}")
    found = [lines[j] for _, j in pairs]
    energies = np.array([ln.energy_eV for ln in found])
    names = [ln.name for ln in found]
    cal = polynomial_calibration(peaks[[i for i, _ in pairs]], energies, names)
    for _ in range(2):
        fits = [fit_known_line(cal.energy(a), ln, fwhm_guess_eV) for ln in found]
        cal = polynomial_calibration(cal.amplitude(np.array([f.fit.centre for f in fits])),
                                     energies, names)
    return cal, [fit_known_line(cal.energy(a), ln, fwhm_guess_eV) for ln in found]


def fwhm_at(lines: list[LineResult], energy_eV: float) -> float:
    """Instrumental FWHM at `energy_eV`, linear between the fitted lines (nearest outside)."""
    pts = sorted((r.fit.centre, r.fit.fwhm) for r in lines
                 if np.isfinite(r.fit.fwhm) and r.fit.fwhm > 0)
    if not pts:
        raise ChannelSkipped("no calibration line has a fitted width")
    centres, widths = zip(*pts, strict=True)
    return float(np.interp(energy_eV, centres, widths))


def analyze_ho163_detector(reader: RunReader, stream: Stream, ch: int, geo: dict[str, Any],
                           opts: dict[str, Any], lines: tuple[KnownLine, ...]) -> Ho163Detector:
    """The whole per-detector analysis of channel `ch` (see module docstring), learned from
    the records `stream` holds, applied to every record in the store; raises ChannelSkipped."""
    length, pre, fs, scale = geo["length"], geo["pre"], geo["fs"], geo["scale"]
    ln = learn_filter(stream, geo, opts)
    sign = float(ln.avg.sign)
    noise = stream.noise[ln.n_ok].astype(np.float64) * scale
    filt = optimal_filter(ln.filt.template, noise_psd(noise, fs))
    applied = apply_pass(reader, stream, ch, ln, geo, filt.weights * scale)
    amp = applied.pulse_amplitude
    try:
        cal, fits = calibrate_among_ho(applied.clean_pulses(), lines,
                                       float(opts["fwhm_guess_eV"]))
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise ChannelSkipped(f"calibration failed: {exc}") from None
    energy = cal.energy(amp)
    pre_rms = noise_record_stats(stream.pulses[ln.p_ok, :pre])[0] * scale
    rms = float(np.sqrt(np.median(pre_rms**2)))
    shape = fit_three_exponential(sign * ln.avg.average * scale, pre, fs,
                                  sigma=max(rms, 1e-12) / np.sqrt(ln.avg.n_records))
    peak = shape.height

    def pulse(t: np.ndarray) -> np.ndarray:
        return shape.pulse(t) / peak

    q = float(opts["q_guess_eV"])
    pair_amp = float(cal.amplitude(q / 2.0))
    rng = np.random.default_rng(int(opts["seed"]) + int(1000 * ln.avg.n_records))
    flag = learn_pileup_flag(pulse, pair_amp, noise, fs, pre, rng=rng)
    flagged = joined([flag.apply(sign * scale * b.astype(np.float64))
                       for b in pulse_blocks(reader, stream, ch)], bool)
    seps = np.arange(0.25, 8.01, 0.25) / fs
    pairs = flag_time_resolution(flag, pulse, pair_amp, noise, fs, seps,
                                 n_pairs=int(opts["pairs"]), rng=rng)
    isolation = int(np.ceil(float(opts["isolation_s"]) * fs))
    quiet, _ = stream.every_isolation(isolation, pre, length)
    accepted = quiet & ~flagged & np.isfinite(energy)
    need("accepted events", int(accepted.sum()), int(opts["min_pulses"]))
    live = float(geo["live_s"])
    rate = stream.edge_triggers / live if live > 0 else float("nan")
    dead = geo["holdoff"] / fs
    rate = rate / (1.0 - rate * dead) if rate * dead < 1 else float("nan")
    on_lines = np.zeros(int(accepted.sum()), dtype=bool)
    for line in lines:
        on_lines |= np.abs(energy[accepted] - line.energy_eV) < float(opts["exclude_eV"])
    activity = rate * (1.0 - float(np.mean(on_lines)))
    fwhm_q = fwhm_at(fits, q)
    numbers: dict[str, Any] = {
        "pulse_triggers": int(stream.edge_triggers),
        "accepted": int(accepted.sum()),
        "flagged_pileup": int((flagged & quiet).sum()),
        "dead_time_set_aside": int((~quiet).sum()),
        "live_time_s": live,
        "trigger_rate_corrected_hz": rate,
        "activity_Bq": activity if opts["activity_Bq"] is None else float(opts["activity_Bq"]),
        "activity_measured_Bq": activity,
        "time_resolution_s": pairs.time_resolution_s,
        "false_flag_fraction": pairs.false_flags,
        "fwhm_at_q_eV": fwhm_q,
        **line_numbers(cal, fits),
        "tau_rise_s": shape.rise_s,
        "tau_fast_s": shape.fast_s,
    }
    return Ho163Detector(numbers, energy[accepted], energy[flagged & quiet], cal, fits, pairs)

