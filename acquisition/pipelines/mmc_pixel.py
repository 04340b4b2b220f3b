"""One pixel of the `mmc` pipeline: learned on the calibration acquisitions, applied to the
background ones. A module-level function of picklable inputs (`analyze_pixel(shared, key)`),
so a Dask worker can run it: it opens the run store itself and reads one channel.

Steps (seed paper section 4): the channel's records are split by sign (the two pixels of a
double meander have opposite polarity); clean records and the optimal filter as the `pulses`
pipeline learns them (`learn_filter`, isolation counting both pixels' triggers); the average
pulse again from Mn Ka events only, and its filter; chi2 and zeta of every record; the ellipse
cut learned on the Ka events; the temperature correction against the non-gradiometric
channels; the calibration on every line of the sources in front (option `sources`: Mn Ka and Kb,
the exact quadratic; with 241Am also the Np L lines and gammas, a cubic:
`cryodaq.analysis.multiline_calibration`); the Ka fit (Holzer shape convolved with a Gaussian,
Poisson likelihood, 0.5 eV bins); the baseline resolution from the noise records and the
filter's prediction.

Chip temperature with each trace: the non-gradiometric channels' noise records (periodic
auto triggers, isolated from their pulses) give their output level (the pretrigger mean the
trigger pass stores), smoothed over `thermometer_smoothing_s` and interpolated to each
event's time. This was chosen over fan-out records (one thermometer record per trigger of any
channel) because the chip temperature drifts over minutes while noise records come every
~0.1 s, so interpolation loses nothing, costs no extra records, works for events of any
channel of the same ADC, and uses the channel's noise records, which the analysis takes anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.pipelines.mmc_efficiency import Efficiencies, measure
from cryodaq.acquisition.pipelines.mmc_lines import KA, calibration_lines, calibration_numbers
from cryodaq.acquisition.pipelines.mmc_records import (
    PixelPulses,
    background_pulses,
    calibration_pulses,
    calibration_rise_cut,
    record_signs,
)
from cryodaq.acquisition.pipelines.pulses_apply import apply_pass, gather_pulses
from cryodaq.acquisition.pipelines.pulses_channel import (
    ChannelSkipped,
    Stream,
    baseline_fit,
    learn_filter,
    need,
    read_stream,
)
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.analysis.line_calibration import LineResult, fit_known_line
from cryodaq.analysis.line_fit import dominant_peak
from cryodaq.analysis.mmc_calibration import (
    TemperatureCorrection,
    learn_temperature,
    no_temperature_correction,
)
from cryodaq.analysis.mmc_shape import (
    Ellipse,
    ShapeParameters,
    learn_ellipse,
    shape_parameters,
    zeta_noise,
)
from cryodaq.analysis.multiline_calibration import (
    MultilineResult,
    PolynomialCalibration,
    calibrate_lines,
)
from cryodaq.analysis.optimal_filter import (
    AveragePulse,
    OptimalFilter,
    average_pulse,
    optimal_filter,
)
from cryodaq.analysis.record_cuts import isolated

#: Half-width of the Ka selection around the dominant peak, relative (Ka1-Ka2 is 0.19 %),
#: after the temperature correction, and before it (chip drifts move the gain by ~0.5 %).
KA_HALF_WIDTH = 0.006
KA_DRIFT_WIDTH = 0.03
#: Noise records whose chi2 and zeta spread size the ellipse's noise parts.
NOISE_SHAPE_RECORDS = 1000
#: Bins of the line fits (the paper's Fig. 7: 0.5 eV).
KA_BIN_EV = 0.5
#: Passes of the temperature correction, each on the Ka events the previous one selects.
TEMPERATURE_PASSES = 3


@dataclass(frozen=True)
class PartInfo:
    """One stored acquisition part: its source, start (s, clock of the run) and live time;
    `channels`: (stored channel, instrument, the instrument's own channel) of each channel
    (several instruments acquired as one stream, e.g. both ADCs; empty: all from `source`)."""

    name: str
    source: str
    start_s: float
    live_s: float
    channels: tuple[tuple[int, str, int], ...] = ()

    def origin(self, stored: int) -> tuple[str, int]:
        """(instrument, its own channel number) of stored channel `stored`."""
        for ch, inst, own in self.channels:
            if ch == stored:
                return inst, own
        return self.source, stored


@dataclass(frozen=True)
class Shared:
    """What every pixel's work needs (picklable)."""

    store: Path
    geo: dict[str, Any]
    opts: dict[str, Any]
    calibration: tuple[PartInfo, ...]
    background: dict[str, tuple[PartInfo, ...]]  # label -> parts
    first_channel: dict[str, int]  # source -> FLL channel of its channel 1
    thermometers: tuple[int, ...]  # FLL channels

    def local(self, part: PartInfo, fll: int) -> int | None:
        """The stored channel number of FLL channel `fll` in `part` (None: not there)."""
        for ch, inst, own in part.channels:
            if inst in self.first_channel and self.first_channel[inst] + own - 1 == fll:
                return ch
        if part.channels:
            return None
        ch = fll - self.first_channel[part.source] + 1
        return ch if ch >= 1 else None

    def fll(self, part: PartInfo, stored: int) -> int:
        """The FLL channel of stored channel `stored` of `part`."""
        inst, own = part.origin(stored)
        return self.first_channel[inst] + own - 1


@dataclass
class Events:
    """Per record of one pixel in one group of acquisitions."""

    part: np.ndarray  # index into the group's parts
    time_s: np.ndarray
    amplitude: np.ndarray  # optimal filter, temperature corrected
    energy_eV: np.ndarray
    chi2: np.ndarray
    zeta: np.ndarray
    inside: np.ndarray  # ellipse cut keeps it
    coincidence: np.ndarray  # channels triggering within the window (1: alone)
    clean: np.ndarray  # isolated from other triggers (calibration: used to learn)


@dataclass
class PixelOutcome:
    """Numbers for summary.json and arrays for figures and event lists of one pixel."""

    pixel: str
    channel: int
    sign: int
    numbers: dict[str, Any]
    avg: AveragePulse
    filt: OptimalFilter
    ellipse: Ellipse
    calibration: PolynomialCalibration
    temperature: TemperatureCorrection
    ka: LineResult
    lines: MultilineResult  # every calibration line's fit on the final scale
    calib_events: Events
    example: np.ndarray  # one clean Ka record, baseline-subtracted, record units
    noise_variance: float  # per sample, record units^2 (the chi2 normalisation)
    background: dict[str, Events] = field(default_factory=dict)
    #: label -> per part of the group: the channel's edge-trigger times (None: not recorded).
    triggers: dict[str, list[np.ndarray | None]] = field(default_factory=dict)
    #: label -> per part of the group: the instrument (ADC) the channel came from.
    adcs: dict[str, list[str | None]] = field(default_factory=dict)
    #: trigger and chi2-zeta cut efficiency versus energy (`mmc_efficiency`).
    efficiency: Efficiencies | None = None


def _parts_with(shared: Shared, reader: RunReader, parts: tuple[PartInfo, ...], fll: int
                ) -> list[tuple[int, PartInfo, int]]:
    out = []
    for i, part in enumerate(parts):
        ch = shared.local(part, fll)
        if ch is not None and ch in reader.channels(part.name):
            out.append((i, part, ch))
    return out


def _thermometer_series(
    reader: RunReader, shared: Shared, part: PartInfo
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(times, smoothed output level) of each non-gradiometric channel recorded in `part`."""
    geo = shared.geo
    pre, length, fs = geo["pre"], geo["length"], geo["fs"]
    guard = length + int(shared.opts["thermometer_guard_s"] * fs)
    out = []
    for fll in shared.thermometers:
        ch = shared.local(part, fll)
        if ch is None or ch not in reader.channels(part.name):
            continue
        d = reader.read(part.name, ch, ["trigger_kind", "sample_index", "pretrig_mean"])
        kind, at = d["trigger_kind"], d["sample_index"]
        auto, edge = kind == TriggerKind.AUTO, kind == TriggerKind.EDGE
        ok = isolated(at[auto], at[edge], guard + pre, length - pre)
        t = part.start_s + at[auto][ok] / fs
        v = d["pretrig_mean"][auto][ok].astype(np.float64)
        if t.size < 3:
            continue
        span = float(np.median(np.diff(t))) if t.size > 1 else 1.0
        k = max(1, int(round(shared.opts["thermometer_smoothing_s"] / max(span, 1e-9))))
        kernel = np.ones(k) / k
        padded = np.pad(v, (k // 2, k - 1 - k // 2), mode="edge")
        out.append((t, np.convolve(padded, kernel, mode="valid")))
    return out


def _temperatures(series: list[tuple[np.ndarray, np.ndarray]], t: np.ndarray) -> np.ndarray:
    """Thermometer outputs at times `t`: one column per thermometer channel."""
    cols = [np.interp(t, ts, vs) for ts, vs in series]
    return np.column_stack(cols) if cols else np.zeros((t.size, 0))


def _stream_times(stream: Stream, parts: list[tuple[int, PartInfo, int]], fs: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(part index, time_s) of each pulse record, and time_s of each noise record: every one,
    held in `stream` or not."""
    idx, t, tn = [], [], []
    autos = [tm[k == TriggerKind.AUTO] for k, tm in zip(stream.kinds, stream.times, strict=True)]
    for (i, part, _), at, at_n in zip(parts, stream.edges(), autos, strict=True):
        idx.append(np.full(at.size, i))
        t.append(part.start_s + at / fs)
        tn.append(part.start_s + at_n / fs)
    cat = np.concatenate
    return cat(idx) if idx else np.zeros(0, int), cat(t) if t else np.zeros(0), cat(tn)


def _coincidence(reader: RunReader, parts: list[tuple[int, PartInfo, int]]) -> np.ndarray:
    """The trigger engine's coincidence multiplicity of each edge record, in stream order."""
    out = []
    for _, part, ch in parts:
        d = reader.read(part.name, ch, ["trigger_kind", "coincidence"])
        out.append(d["coincidence"][d["trigger_kind"] == TriggerKind.EDGE].astype(np.int64))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def analyze_pixel(shared: Shared, key: tuple[int, int]) -> PixelOutcome:
    """Pixel (FLL channel, sign) learned on the calibration and applied to the background."""
    fll, sign = key
    reader = RunReader(shared.store)
    geo, opts = shared.geo, shared.opts
    pre, fs = geo["pre"], geo["fs"]
    pixel = shared.opts["layout"][str(fll)][0 if sign > 0 else 1]
    parts = _parts_with(shared, reader, shared.calibration, fll)
    if not parts:
        raise ChannelSkipped(f"channel {fll} is in no calibration acquisition")
    ch = parts[0][2]
    stream = read_stream(reader, [p.name for _, p, _ in parts], ch, opts["learn_records"])
    signs = record_signs(stream.pulses, pre) if len(stream.pulses) else np.zeros(0, int)
    need(f"pulses of pixel {pixel}", int((signs == sign).sum()), opts["min_pulses"])
    ln = learn_filter(stream, geo, opts, select=signs == sign)
    # The template again from Mn Ka events alone (the paper's average pulse), and its filter.
    amp = ln.filt.apply(stream.pulses)
    peak = dominant_peak(amp[ln.p_ok])
    # Ka events before the temperature correction: a window wide enough for the drift.
    ka = ln.p_ok & (np.abs(amp / peak - 1.0) <= KA_DRIFT_WIDTH)
    need(f"clean Ka pulses of pixel {pixel}", int(ka.sum()), opts["min_pulses"])
    avg = average_pulse(stream.pulses[ka], pre, fs)
    filt = optimal_filter(avg.template, ln.filt.noise)
    amp_n = filt.apply(stream.noise[ln.n_ok])
    # Every pulse record of the store through what the held ones taught.
    rise_cut = calibration_rise_cut(stream, ln, geo, opts, signs == sign)
    per_pulse = PixelPulses(sign, ln, avg, pre)
    applied = apply_pass(reader, stream, ch, ln, geo, filt.weights, also=per_pulse)
    amp, p_ok = applied.pulse_amplitude, applied.pulse_clean
    mine, rise, shape = per_pulse.result()
    p_ok &= mine
    part_idx, t, _ = _stream_times(stream, parts, fs)
    u = _calib_temperatures(reader, shared, parts, part_idx, t)
    tc, ka = _temperature(amp, u, p_ok)
    amp_c = tc.apply(amp, u)
    noise = stream.noise[np.flatnonzero(ln.n_ok)[:NOISE_SHAPE_RECORDS]]
    ellipse = learn_ellipse(
        _subset(shape, ka), zeta_noise(noise, avg.template, pre), float(opts["reject_fraction"]),
        shape_parameters(noise, avg.template, pre, ln.noise_rms**2),
    )  # fmt: skip
    inside = ellipse.inside(shape.chi2, shape.zeta, amp)
    # Calibration on every isolated pulse (the ellipse and the filter's residual cut, learned
    # at Ka, would cut the high-energy lines); the Ka resolution on the clean ones inside it.
    isolated_ok = calibration_pulses(stream, rise_cut, rise, mine) & (amp_c > 0)
    use = p_ok & (amp_c > 0) & inside
    pred_eV = max(KA.energy_eV * filt.predicted_fwhm / peak, 1.0)  # a start (peak: Ka's)
    lines = calibrate_lines(amp_c[isolated_ok], calibration_lines(opts), pred_eV)
    cal, ka_line = lines.calibration, lines.line(KA.name)
    if ka_line is None:
        raise ValueError(f"pixel {pixel}: no Mn Ka line among the calibration lines found")
    ka_fit = fit_known_line(cal.energy(amp_c[use]), KA, ka_line.fit.fwhm, bin_eV=KA_BIN_EV)
    energy = cal.energy(amp_c)
    slope0 = float(cal.slope(0.0))
    base = baseline_fit(slope0 * amp_n)
    calib_ka = ka & mine
    numbers = {
        "channel": fll,
        "polarity": int(sign),
        "fwhm_eV": ka_fit.fit.fwhm,
        "fwhm_err_eV": ka_fit.fit.fwhm_err,
        "baseline_fwhm_eV": base.fwhm,
        "baseline_fwhm_err_eV": base.fwhm_err,
        "predicted_fwhm_eV": slope0 * filt.predicted_fwhm,
        "counts": int(ka_fit.counts.sum()),
        "pulses": int(mine.sum()),
        "clean_pulses": int(p_ok.sum()),
        "noise_records": int(amp_n.size),
        "rise_s": ln.fit.rise_s,
        "decay_s": ln.fit.decay_s,
        **calibration_numbers(lines),
        "temperature_coefficients": [float(c) for c in tc.coefficients],
        "ellipse": {
            "chi2_noise_centre": ellipse.chi2_noise_centre,
            "chi2_noise_width": ellipse.chi2_noise_width,
            "chi2_centre": ellipse.chi2_centre,
            "chi2_width": ellipse.chi2_width,
            "zeta_centre": ellipse.zeta_centre,
            "zeta_width": ellipse.zeta_width,
            "k": ellipse.k,
            "rejected_ka_fraction": float(1.0 - inside[calib_ka].mean()),
        },
    }
    example = gather_pulses(reader, stream, ch, np.flatnonzero(ka)[:1], 1.0)[0]
    example -= example[:pre].mean()
    calib_events = Events(
        part_idx[mine], t[mine], amp_c[mine], energy[mine], shape.chi2[mine], shape.zeta[mine],
        inside[mine], _coincidence(reader, parts)[mine], (p_ok & ka)[mine],
    )  # fmt: skip
    out = PixelOutcome(
        pixel, fll, sign, numbers, avg, filt, ellipse, cal, tc, ka_fit, lines, calib_events,
        example, ln.noise_rms**2,
    )  # fmt: skip
    out.efficiency, expected = measure(
        stream.noise[ln.n_ok], avg, filt, ellipse, ln.noise_rms**2, cal.amplitude, slope0, pre,
        _trigger_of(reader, parts[0][1].name, parts[0][2]),
    )  # fmt: skip
    out.numbers.update(out.efficiency.numbers(expected))
    for label, group in shared.background.items():
        _apply_background(reader, shared, out, label, group, filt, avg, ellipse, tc, cal)
    return out


def _trigger_of(reader: RunReader, acq: str, ch: int) -> dict[str, Any] | None:
    """The edge trigger acquisition `acq` ran on channel `ch` (None: not stored)."""
    trig = (reader.info(acq).get("metadata") or {}).get("trigger", {})
    return trig.get("channels", {}).get(str(ch))


def _temperature(
    amp: np.ndarray, u: np.ndarray, clean: np.ndarray
) -> tuple[TemperatureCorrection, np.ndarray]:
    """The temperature correction learned on Ka events, and those events. The events are
    chosen on the corrected amplitudes and the correction learned again: choosing them on
    the drifting amplitudes would cut the extremes of the drift and bias the slope low."""
    tc = no_temperature_correction()
    ka = clean
    for _ in range(TEMPERATURE_PASSES):
        amp_c = tc.apply(amp, u) if tc.coefficients.size else amp
        peak = dominant_peak(amp_c[clean])
        ka = clean & (np.abs(amp_c / peak - 1.0) <= KA_HALF_WIDTH)
        tc = learn_temperature(amp[ka], u[ka])
    return tc, ka


def _subset(p: ShapeParameters, mask: np.ndarray) -> ShapeParameters:
    return ShapeParameters(p.amplitude[mask], p.chi2[mask], p.zeta[mask])


def _calib_temperatures(
    reader: RunReader,
    shared: Shared,
    parts: list[tuple[int, PartInfo, int]],
    part_idx: np.ndarray,
    t: np.ndarray,
) -> np.ndarray:
    """Thermometer outputs at times `t` (one column per non-gradiometric channel of the
    source: a channel's parts all come from its one ADC)."""
    per_part = {i: _thermometer_series(reader, shared, part) for i, part, _ in parts}
    width = min((len(s) for s in per_part.values()), default=0)
    u = np.zeros((t.size, width))
    for i, series in per_part.items():
        sel = part_idx == i
        u[sel] = _temperatures(series[:width], t[sel])
    return u


def _apply_background(
    reader: RunReader,
    shared: Shared,
    out: PixelOutcome,
    label: str,
    group: tuple[PartInfo, ...],
    filt: OptimalFilter,
    avg: AveragePulse,
    ellipse: Ellipse,
    tc: TemperatureCorrection,
    cal: PolynomialCalibration,
) -> None:
    """Energies, shape parameters and cut flags of this pixel's records in background group
    `label`; every edge trigger time of the channel per part (for the burst cut)."""
    pre, fs = shared.geo["pre"], shared.geo["fs"]
    parts = _parts_with(shared, reader, group, out.channel)
    out.triggers[label] = [None] * len(group)
    out.adcs[label] = [None] * len(group)
    if not parts:
        return
    stream = read_stream(reader, [p.name for _, p, _ in parts], parts[0][2], limit=0)
    part_idx, t, _ = _stream_times(stream, parts, fs)
    for i, part, ch in parts:
        out.triggers[label][i] = t[part_idx == i]
        out.adcs[label][i] = part.origin(ch)[0]
    mine, amp, shape = background_pulses(
        reader, stream, parts[0][2], out.sign, out.noise_variance, filt, avg, pre
    )
    if not mine.any():
        return
    u = _calib_temperatures(reader, shared, parts, part_idx[mine], t[mine])
    amp_c = tc.apply(amp, u) if u.shape[1] == tc.coefficients.size else amp
    out.background[label] = Events(
        part_idx[mine], t[mine], amp_c, cal.energy(amp_c), shape.chi2, shape.zeta,
        ellipse.inside(shape.chi2, shape.zeta, amp), _coincidence(reader, parts)[mine],
        np.ones(int(mine.sum()), bool),
    )  # fmt: skip
