"""One detector of the `holmes` pipeline: its records read from the run store and turned into
the seed paper's numbers (a module-level function over picklable inputs, so Dask can map it).

Order: isolated pulse records (no other trigger from `isolation` before to the record's end);
flux-quantum slips flagged on them (`cryodaq.analysis.slew`, against the average of the smaller
half of the pulses, which never slip) and set aside; pile-up cuts and the average pulse (`pulses`
pipeline); the optimal filter on clean noise records, after an optional moving average; the
bath signal of each pulse, the baselines of the quiet records around it averaged
(weighted; whole-quantum jumps removed: each slip moves the demodulated baseline by one quantum for
good); a provisional calibration on the known lines,
the drift correction (amplitude against baseline) learned on the most intense line, the
arrival-phase correction (`cryodaq.analysis.arrival_phase`) learned on all of them, the final
second-order calibration and the line fits (Mn Ka with its full natural shape); noise-only and
predicted resolutions through the calibration's slope at zero; the three-exponential fit of
the average pulse of one line (Cl Ka); the largest slew of that pulse; the noise PSD split into
components with the demodulation's artefact lines; the Wiener-filter time resolution of
equal-energy pairs on the measured noise and the pile-up fraction A tau_R.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.pipelines.holmes_records import Filtering, detector_records
from cryodaq.acquisition.pipelines.pulses import Shared
from cryodaq.acquisition.pipelines.pulses_apply import gather_pulses
from cryodaq.acquisition.pipelines.pulses_channel import (
    ChannelSkipped,
    Stream,
    baseline_fit,
    learn_filter,
    need,
    read_stream,
)
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.analysis.arrival_phase import learn_phase_correction, no_phase_correction
from cryodaq.analysis.line_calibration import Calibration, KnownLine, LineResult, calibrate
from cryodaq.analysis.mmc_calibration import learn_temperature
from cryodaq.analysis.moving_average import moving_average
from cryodaq.analysis.noise_components import (
    NoiseComponents,
    artefact_bins,
    fit_noise_components,
    split_component,
)
from cryodaq.analysis.optimal_filter import (
    AveragePulse,
    NoiseSpectrum,
    average_pulse,
    noise_psd,
    optimal_filter,
)
from cryodaq.analysis.pulse_fit import ThreeExponentialFit, fit_three_exponential
from cryodaq.analysis.record_cuts import noise_record_stats
from cryodaq.analysis.slew import find_slips, slew_limit, unwrap_quanta
from cryodaq.analysis.tes_characterisation import characterise, circuit_from
from cryodaq.analysis.tes_noise import model_shapes, pole_shapes
from cryodaq.analysis.time_resolution import PairResolution, pair_resolution, pileup_fraction
from cryodaq.analysis.triangle_mean import triangle_mean


@dataclass
class DetectorResult:
    """Numbers for summary.json and arrays for the figures of one detector."""

    numbers: dict[str, Any]
    amplitudes: np.ndarray  # drift-corrected filtered amplitudes (Phi0) of the clean pulses
    calibration: Calibration
    lines: list[LineResult]
    noise: NoiseComponents
    shape: ThreeExponentialFit | None
    shape_pulse: np.ndarray | None  # average pulse (Phi0) of the shape line
    example: np.ndarray | None  # one record (Phi0, baseline removed) of the shape line
    pairs: PairResolution | None
    extra: dict[str, Any] = field(default_factory=dict)  # trigger samples: slipped, clean, all


def line_numbers(cal: Calibration, fits: Sequence[LineResult]) -> dict[str, Any]:
    """A detector's calibration (quadratic coefficients, lines used, residuals) and line fits
    as summary.json reports them."""
    return {
        "calibration": {
            "c0_eV": cal.coefficients[0],
            "c1_eV_per_phi0": cal.coefficients[1],
            "c2_eV_per_phi0_sq": cal.coefficients[2],
            "lines": list(cal.names),
            "residuals_eV": [float(r) for r in cal.residuals_eV],
        },
        "lines": {
            r.line.name: {
                "centre_eV": r.fit.centre, "fwhm_eV": r.fit.fwhm, "fwhm_err_eV": r.fit.fwhm_err,
                "counts": r.fit.counts,
            }
            for r in fits
        },
    }


def analyze_stored_detector(shared: Shared, ch: int) -> DetectorResult:
    """Detector `ch`, read from the run store by whoever runs it (this process or a worker);
    `shared.opts["lines"]` holds the calibration lines as `KnownLine`s."""
    reader = RunReader(shared.store)
    stream = read_stream(reader, list(shared.parts), ch, shared.opts["learn_records"])
    lines = tuple(shared.opts["lines"])
    return analyze_detector(reader, stream, ch, shared.geo, shared.opts, lines)


def _baseline_weights(b: np.ndarray, is_noise: np.ndarray) -> np.ndarray:
    """Inverse-variance weight of each baseline by its kind (pulse pretrigger or whole noise
    record), the variance from the differences between consecutive records of that kind."""
    w = np.ones(b.size)
    for kind in (False, True):
        sel = is_noise == kind
        if sel.sum() >= 3:
            var = 0.5 * float(np.mean(np.diff(b[sel]) ** 2))
            w[sel] = 1.0 / var if var > 0 else 1.0
    return w


def _baselines(stream: Stream, base_n: np.ndarray, base_p: np.ndarray,
               quiet: tuple[np.ndarray, np.ndarray], window: int) -> np.ndarray:
    """Bath signal at each pulse record: the baselines (Phi0) of the quiet pulse records
    (pretrigger mean) and noise records (whole-record mean, ~3x less noisy), weighted by
    their inverse variance and by the triangle 1 - |dt| / `window` (samples; 0: the record's
    own pretrigger mean); `quiet`: no earlier tail in them. One pretrigger holds ~100x the
    bath's drift in noise, which would both scatter the corrected heights and dilute the
    learned slope; the bath drifts over seconds. Whole quanta are taken out first
    (`cryodaq.analysis.slew.unwrap_quanta`, per part). Every record of `stream`, held or not:
    `base_p` per pulse record (pretrigger mean), `base_n` per noise record (whole mean)."""
    out = np.empty(base_p.size)
    start_p = start_n = 0
    for kind, times in zip(stream.kinds, stream.times, strict=True):
        at_p, at_n = times[kind == TriggerKind.EDGE], times[kind == TriggerKind.AUTO]
        sl_p, sl_n = slice(start_p, start_p + at_p.size), slice(start_n, start_n + at_n.size)
        b = unwrap_quanta(np.concatenate([base_p[sl_p], base_n[sl_n]]))
        out[sl_p] = b[:at_p.size]
        q = np.concatenate([quiet[0][sl_p], quiet[1][sl_n]])
        if window > 0 and q.any():
            at = np.concatenate([at_p, at_n]).astype(np.float64)[q]
            order = np.argsort(at, kind="stable")
            t, bq = at[order], b[q][order]
            kind = np.concatenate([np.zeros(at_p.size, bool), np.ones(at_n.size, bool)])[q][order]
            ref = float(np.median(bq))
            mean, norm = triangle_mean(t, bq - ref, _baseline_weights(bq, kind),
                                        at_p.astype(np.float64), float(window))
            out[sl_p] = np.where(norm > 0, mean + ref, out[sl_p])
        start_p += at_p.size
        start_n += at_n.size
    return out


def analyze_detector(
    reader: RunReader, stream: Stream, ch: int, geo: dict[str, Any], opts: dict[str, Any],
    lines: tuple[KnownLine, ...],
) -> DetectorResult:
    """The whole per-detector analysis of channel `ch` (see module docstring), learned from
    the records `stream` holds, applied to every record in the store; raises ChannelSkipped."""
    length, pre, fs, scale = geo["length"], geo["pre"], geo["fs"], geo["scale"]
    need("pulse (edge) triggers", len(stream.pulses), opts["min_pulses"])
    pulses = stream.pulses.astype(np.float64) * scale  # Phi0
    # Slips, against the average of the smaller half of the isolated pulses (far from the
    # slew limit); counted on the isolated records, left out everywhere.
    p_iso, _ = stream.isolation(length, pre, length)
    need("isolated pulses", int(p_iso.sum()), opts["min_pulses"])
    first = average_pulse(pulses[p_iso], pre, fs)
    x = first.sign * (pulses[p_iso] - pulses[p_iso, :pre].mean(axis=1, keepdims=True))
    heights = x[:, pre:].max(axis=1)
    small = average_pulse(pulses[p_iso][heights <= np.median(heights)], pre, fs)
    slipped = find_slips(pulses, pre, small.template).slipped
    # Clean pulses and noise, average pulse and optimal filter (`pulses` pipeline).
    # No other trigger within `isolation_s` before a record: the slow decay's tail is gone.
    guard = int(np.ceil(float(opts["isolation_s"]) * fs))
    quiet, quiet_noise = stream.isolation(guard, pre, length)
    ln = learn_filter(stream, geo, opts, select=~slipped & quiet)
    clean, n_ok, filt = ln.p_ok, ln.n_ok & quiet_noise, ln.filt
    need("clean noise records", int(n_ok.sum()), opts["min_noise"])
    noise = stream.noise[n_ok].astype(np.float64) * scale
    smooth = int(opts["smooth_samples"])
    if smooth > 1:  # the filter for the smoothed records, learned on the same clean records
        sp, sn = moving_average(pulses, smooth), moving_average(noise, smooth)
        filt = optimal_filter(average_pulse(sp[clean], pre, fs).template, noise_psd(sn, fs))
        amp_n = filt.apply(sn)
    else:
        filt = optimal_filter(filt.template, noise_psd(noise, fs))  # the same filter, in Phi0
        amp_n = filt.apply(noise)
    # Every record of the store through what the held ones taught.
    rec = detector_records(reader, stream, ch, ln,
                           Filtering(small.template, filt, smooth, scale, guard), geo)  # fmt: skip
    clean, slipped = rec.clean, rec.slipped
    p_iso, _ = stream.every_isolation(length, pre, length)
    amp = rec.amplitude[clean]
    window = int(round(float(opts["baseline_window_s"]) * fs))
    base = _baselines(stream, rec.noise_baseline, rec.baseline,
                      stream.every_isolation(guard, pre, length), window)[clean][:, None]
    # Provisional calibration, drift correction on the most intense line, final calibration.
    fwhm_guess = float(opts["fwhm_guess_eV"])
    try:
        cal, fits = calibrate(amp, lines, fwhm_guess)
        strongest = max(fits, key=lambda r: r.fit.counts)
        energy = cal.energy(amp)
        near = np.abs(energy - strongest.fit.centre) < max(3.0 * strongest.fit.fwhm, 10.0)
        drift = learn_temperature(amp[near], base[near])
        amp = drift.apply(amp, base)
        phase = rec.phase[clean]
        arrival = no_phase_correction()
        if opts["phase_correction"]:  # learned on the events of every line found
            found = [(r.line, r.fit.fwhm) for r in fits if np.isfinite(r.fit.fwhm)
                     and r.fit.fwhm > 0]
            arrival = learn_phase_correction(amp, phase, cal, found)
        amp = arrival.apply(amp, phase)
        cal, fits = calibrate(amp, lines, fwhm_guess)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise ChannelSkipped(f"calibration failed: {exc}") from None
    slope0 = float(cal.slope(0.0))
    base_fit = baseline_fit(slope0 * amp_n)
    energy = cal.energy(amp)
    by_name = {r.line.name: r for r in fits}
    main = by_name.get(opts["resolution_line"])
    shape, shape_pulse, example = _shape_fit(
        lambda sel: gather_pulses(reader, stream, ch, sel, scale), clean, energy, pre, fs,
        ln.avg.sign, opts, by_name, base_fit.fwhm,
    )  # fmt: skip
    numbers: dict[str, Any] = {
        "fwhm_eV": main.fit.fwhm if main else None,
        "fwhm_err_eV": main.fit.fwhm_err if main else None,
        "noise_fwhm_eV": base_fit.fwhm,
        "noise_fwhm_err_eV": base_fit.fwhm_err,
        "predicted_fwhm_eV": slope0 * filt.predicted_fwhm,
        **line_numbers(cal, fits),
        "drift_per_phi0": float(drift.coefficients[0]) if drift.coefficients.size else 0.0,
        "arrival_phase_gain_span": arrival.span(),
        "polarity": int(ln.avg.sign),
        "pulses": int(clean.sum()),
        "isolated_pulses": int(p_iso.sum()),
        "noise_records": int(n_ok.sum()),
        "pulse_triggers": int(stream.edge_triggers),
        "slipped_events": int((slipped & p_iso).sum()),
        "slipped_flagged": int(slipped.sum()),
        "slew_limit_phi0_per_us": slew_limit(fs) / 1e6,
    }
    numbers.update(_shape_numbers(shape, fs, opts))
    # Components of the unsmoothed noise; what the artefact lines cost the (unsmoothed) filter.
    raw = noise_psd(noise, fs)
    comps = _noise_components(raw, shape, opts, ch)
    numbers["noise_components_phi0_per_rthz"] = comps.band_rms
    numbers["noise_component_scales"] = comps.scales
    numbers["artefact_lines_hz"] = [float(h) for h in comps.harmonics_hz[comps.line_found]]
    smooth_psd = NoiseSpectrum(comps.freqs_hz, comps.without_lines(), raw.n_records, fs)
    numbers["artefact_resolution_cost"] = float(
        optimal_filter(ln.avg.template, raw).predicted_sigma
        / optimal_filter(ln.avg.template, smooth_psd).predicted_sigma - 1.0
    )
    pairs = _pairs(shape, cal, noise, fs, pre, opts)
    tau = pairs.time_resolution_s if pairs else float("nan")
    live = geo["live_s"]
    rate = stream.edge_triggers / live if live > 0 else float("nan")
    activity = float(opts["activity_Bq"]) if opts["activity_Bq"] is not None else rate
    numbers.update({
        "time_resolution_s": tau,
        "pair_energy_eV": float(opts["pair_energy_eV"]),
        "rate_hz": rate,
        "activity_Bq": activity,
        "pileup_fraction": pileup_fraction(activity, tau) if np.isfinite(tau) else None,
    })  # fmt: skip
    at = np.concatenate(stream.edges())
    return DetectorResult(numbers, amp, cal, fits, comps, shape, shape_pulse, example, pairs,
                          {"slipped_at": at[slipped], "clean_at": at[clean], "pulse_at": at})


def _shape_fit(
    pulses: Callable[[np.ndarray], np.ndarray], clean: np.ndarray, energy: np.ndarray, pre: int,
    fs: float, sign: float, opts: dict[str, Any], by_name: dict[str, LineResult],
    noise_fwhm: float,
) -> tuple[ThreeExponentialFit | None, np.ndarray | None, np.ndarray | None]:
    """Three-exponential fit of the average pulse of the shape line (or None without it);
    `pulses(indices)` gives those pulse records (Phi0), at most `learn_records` of them."""
    line = by_name.get(opts["shape_line"])
    if line is None:
        return None, None, None
    width = max(3.0 * line.fit.fwhm, 3.0 * noise_fwhm, 5.0)
    sel = np.flatnonzero(clean)[np.abs(energy - line.fit.centre) < width]
    if sel.size < 5:
        return None, None, None
    x = pulses(sel[: opts["learn_records"]])
    avg: AveragePulse = average_pulse(x, pre, fs)
    y = sign * avg.average
    rms = float(np.sqrt(np.median(noise_record_stats(x[:, :pre])[0] ** 2)))
    fit = fit_three_exponential(y, pre, fs, sigma=max(rms, 1e-12) / np.sqrt(avg.n_records))
    example = x[0] - x[0, :pre].mean()
    return fit, y, example


def _shape_numbers(fit: ThreeExponentialFit | None, fs: float, opts: dict[str, Any]
                   ) -> dict[str, Any]:
    if fit is None:
        keys = ("tau_rise_s", "tau_fast_s", "tau_slow_s", "slow_fraction", "max_slew_phi0_per_us")
        return dict.fromkeys(keys)
    return {
        "tau_rise_s": fit.rise_s,
        "tau_rise_err_s": fit.rise_err_s,
        "tau_fast_s": fit.fast_s,
        "tau_fast_err_s": fit.fast_err_s,
        "tau_slow_s": fit.slow_s,
        "tau_slow_err_s": fit.slow_err_s,
        "slow_fraction": fit.slow_fraction,
        "slow_fraction_err": fit.slow_fraction_err,
        "shape_line": opts["shape_line"],
        "max_slew_phi0_per_us": fit.max_slope / 1e6,
    }


def _noise_components(noise: NoiseSpectrum, shape: ThreeExponentialFit | None,
                      opts: dict[str, Any], ch: int) -> NoiseComponents:
    """Components with the shapes of the electrothermal terms of the device fitted to this
    noise from its bias circuit (`tes` option; `cryodaq.analysis.tes_characterisation`: alpha,
    beta, heat capacities and links fitted, never given; the two Johnson terms, which a PSD
    cannot tell apart, fitted as one amplitude and split as the model's shapes say), else the
    measured pulse's (a nominal TES without a fit)."""
    f, fs = noise.freqs_hz, noise.sample_rate_hz
    tes = opts.get("tes")
    if tes is not None and all(str(k).isdigit() for k in tes):  # {channel: circuit}
        tes = tes.get(ch, tes.get(str(ch)))
    if tes is not None:
        circuit = circuit_from(dict(tes), "holmes: option tes")
        slow = shape.slow_s if shape and np.isfinite(shape.slow_s) and shape.slow_s > 0 else 0.5e-3
        fitted = characterise(circuit, noise, slow, artefact_bins(f, opts["artefact_hz"]))
        model = model_shapes(fitted.device, circuit.phi0_per_A, f, fs)
        parts = {"tes_johnson": model["tes_johnson"], "load_johnson": model["load_johnson"]}
        shapes = {"thermal": model["thermal"], "johnson": parts["tes_johnson"]
                  + parts["load_johnson"], "readout": model["readout"]}
        comps = fit_noise_components(noise, shapes, opts["artefact_hz"])
        return split_component(comps, "johnson", parts)
    taus = ((shape.rise_s, shape.fast_s, shape.slow_s, shape.slow_fraction) if shape
            else (10e-6, 100e-6, 500e-6, 0.05))
    return fit_noise_components(noise, pole_shapes(*taus, f, fs), opts["artefact_hz"])


def _pairs(shape: ThreeExponentialFit | None, cal: Calibration, noise: np.ndarray, fs: float,
           pre: int, opts: dict[str, Any]) -> PairResolution | None:
    """Wiener-filter pair resolution at `pair_energy_eV` each, on the measured noise."""
    if shape is None:
        return None
    amplitude = float(cal.amplitude(float(opts["pair_energy_eV"])))
    peak = shape.height

    def pulse(t: np.ndarray) -> np.ndarray:
        return shape.pulse(t) / peak

    dt = 1.0 / fs
    seps = dt * np.arange(0.25, 8.01, 0.125)
    return pair_resolution(pulse, amplitude, noise, fs, pre, seps, n_pairs=int(opts["pairs"]),
                           rng=np.random.default_rng(int(opts["seed"])))
