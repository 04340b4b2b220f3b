"""HOLMES analysis steps against what synthetic data were given (fixed seeds, non-default
parameters): three-exponential pulse fit, line identification and second-order calibration,
the arrival-phase correction, flux-quantum slips of the demodulator and the unwrapping of the
baselines, noise PSD components with the demodulation artefact, the device's small-signal
parameters fitted to its noise from the bias circuit alone,
the Wiener-filter time resolution and the moving average in front of the optimal filter.

Noise records are Gaussian with a prescribed one-sided PSD (independent DFT bins of variance
J L fs / 4 per real and imaginary part); TES noise from the electrothermal model's terms
(`cryodaq.analysis.tes_noise.model_shapes` of a small-signal device defined here), pulses
from `cryodaq.analysis.pulse_shapes.three_exponential`, lines from `cryodaq.analysis.xray_lines`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cryodaq.analysis.arrival_phase import learn_phase_correction
from cryodaq.analysis.line_calibration import KnownLine, calibrate, identify_lines
from cryodaq.analysis.moving_average import moving_average
from cryodaq.analysis.noise_components import (
    artefact_bins,
    fit_noise_components,
    split_component,
)
from cryodaq.analysis.optimal_filter import FWHM_PER_SIGMA, noise_psd, optimal_filter
from cryodaq.analysis.pulse_fit import fit_three_exponential
from cryodaq.analysis.pulse_shapes import three_exponential
from cryodaq.analysis.slew import find_slips, max_slew, slew_limit, unwrap_quanta
from cryodaq.analysis.tes_characterisation import CIRCUIT_KEYS, characterise, circuit_from
from cryodaq.analysis.tes_electrothermal import TesSmallSignal
from cryodaq.analysis.tes_noise import model_shapes, record_grid, resolution_fwhm
from cryodaq.analysis.time_resolution import pair_resolution, pileup_fraction
from cryodaq.analysis.triangle_mean import triangle_mean
from cryodaq.analysis.xray_lines import AL_KA, CA_KA, CL_KA, MN_KA, MN_KB

FS = 500e3  # the paper's ramp rate
LENGTH, PRE = 1024, 256
#: A small-signal TES (absorber beside the sensor, a weakly coupled tail), not a design's.
DEVICE = TesSmallSignal(
    t0_K=0.095, r0_ohm=2.2e-3, i0_A=85e-6, alpha=45.0, beta=0.7, inductance_H=45e-9,
    load_ohm=0.4e-3, load_K=0.045, heat_capacities=(0.3e-12, 0.5e-12, 0.1e-12),
    links=((0, 1, 6e-7), (1, 2, 2.5e-10)), bath_g=(650e-12, 0.0, 0.0), n=3.2, bath_K=0.045,
    deposit=1)
PHI0_PER_A = 1.0 / 11e-6
LINES = [KnownLine(n, s[0].energy_eV, s) for n, s in
         (("AlKa", AL_KA), ("ClKa", CL_KA), ("CaKa", CA_KA), ("MnKa", MN_KA), ("MnKb", MN_KB))]


def unit_height_pulse(t_s: np.ndarray, rise_s: float, fast_s: float, slow_s: float,
                      slow_fraction: float) -> np.ndarray:
    """`three_exponential` scaled to unit peak (the peak on a 20 001-point grid)."""
    fine = np.linspace(0.0, 5.0 * fast_s, 20_001)
    peak = three_exponential(fine, rise_s, fast_s, slow_s, slow_fraction).max()
    return three_exponential(t_s, rise_s, fast_s, slow_s, slow_fraction) / peak


def coloured_noise(psd: np.ndarray, n: int, length: int, fs: float, seed: int) -> np.ndarray:
    """n records of Gaussian noise with one-sided PSD `psd` on the record's rfft grid."""
    rng = np.random.default_rng(seed)
    bins = psd.size
    x = rng.standard_normal((n, bins)) + 1j * rng.standard_normal((n, bins))
    x *= np.sqrt(psd * length * fs / 4.0)
    x[:, 0] = 0.0
    x[:, -1] = x[:, -1].real * np.sqrt(2.0)
    return np.fft.irfft(x, n=length, axis=1)


# -- three-exponential fit ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fs", "taus"),
    [(500e3, (12e-6, 70e-6, 600e-6, 0.05)), (250e3, (20e-6, 110e-6, 900e-6, 0.08))],
)
def test_three_exponential_fit_recovers_the_constants(fs: float, taus: tuple) -> None:
    length, pre = 4096, 512  # holds ~4 slow decays
    t = (np.arange(length) - pre) / fs - 0.37 / fs  # arrival between samples
    rng = np.random.default_rng(11)
    sigma = 2e-3 / np.sqrt(300)  # 300 pulses of 1 Phi0 with 2 mPhi0 rms noise averaged
    pulse = 0.8 * three_exponential(t, *taus) / 1e4 + 0.1 + sigma * rng.standard_normal(length)
    fit = fit_three_exponential(pulse, pre, fs, sigma=sigma)
    # 5 % is the tolerance; errors here are ~0.1-1 %.
    assert fit.rise_s == pytest.approx(taus[0], rel=0.05)
    assert fit.fast_s == pytest.approx(taus[1], rel=0.05)
    assert fit.slow_s == pytest.approx(taus[2], rel=0.05)
    assert fit.slow_fraction == pytest.approx(taus[3], rel=0.05)
    assert fit.chi2 / fit.dof < 1.2
    # The reported errors cover the deviations (4 sigma).
    assert abs(fit.slow_s - taus[2]) < 4 * fit.slow_err_s
    # Largest slope on the rising edge: at the arrival for this shape.
    a_f, a_s = (1 - taus[3]) / taus[1], taus[3] / taus[2]
    slope0 = 0.8e-4 * ((a_f + a_s) / taus[0] - a_f / taus[1] - a_s / taus[2])
    assert fit.max_slope == pytest.approx(slope0, rel=0.02)


def test_three_exponential_fit_of_a_phase_averaged_demodulated_pulse() -> None:
    """An average pulse mixes arrival phases over a sample, and the demodulator averages each
    ramp period: the sharp start is rounded. With a 10 us rise (5 samples) a bare model would
    lengthen the rise by ~6 %; the fitted box keeps every constant within 1 %."""
    taus = (10e-6, 45e-6, 400e-6, 0.03)
    length, pre = 2048, 256
    phases = np.linspace(0.0, 1.0, 64, endpoint=False)
    t = (np.arange(length + 1) - pre) / FS
    avg = np.mean([three_exponential(t - ph / FS, *taus) for ph in phases], axis=0)
    pulse = 1e-4 * 0.5 * (avg[1:] + avg[:-1])  # each sample: the mean over its period
    fit = fit_three_exponential(pulse, pre, FS, sigma=1e-5)
    for got, want in zip((fit.rise_s, fit.fast_s, fit.slow_s, fit.slow_fraction), taus,
                         strict=True):
        assert got == pytest.approx(want, rel=0.01)


# -- calibration ---------------------------------------------------------------------------------


def _line_energies(shape: tuple, n: int, rng: np.random.Generator) -> np.ndarray:
    w = np.array([c.weight for c in shape])
    k = rng.choice(len(shape), n, p=w / w.sum())
    centre = np.array([c.energy_eV for c in shape])[k]
    half = np.array([c.fwhm_eV for c in shape])[k] / 2
    return centre + half * np.tan(np.pi * rng.uniform(-0.49, 0.49, n))


def _amplitude(e: np.ndarray, c: tuple[float, float, float]) -> np.ndarray:
    """Inverse of E = c0 + c1 A + c2 A^2."""
    return 2 * (e - c[0]) / (c[1] + np.sqrt(c[1] ** 2 + 4 * c[2] * (e - c[0])))


@pytest.fixture(scope="module")
def calibrated() -> dict:
    """A detector with a non-default curved response: E = 20 + 3100 A + 180 A^2 (eV, A in
    Phi0), amplitude noise 1.2 mPhi0 rms, the five target lines and a flat continuum."""
    rng = np.random.default_rng(5)
    coef = (20.0, 3100.0, 180.0)
    counts = {"AlKa": 1500, "ClKa": 3000, "CaKa": 3000, "MnKa": 6000, "MnKb": 900}
    shapes = {"AlKa": AL_KA, "ClKa": CL_KA, "CaKa": CA_KA, "MnKa": MN_KA, "MnKb": MN_KB}
    e = np.concatenate([_line_energies(shapes[k], n, rng) for k, n in counts.items()]
                       + [rng.uniform(500, 7000, 2000)])
    sigma_a = 1.2e-3
    amp = _amplitude(e, coef) + sigma_a * rng.standard_normal(e.size)
    cal, fits = calibrate(amp, LINES, fwhm_guess_eV=5.0)
    return {"coef": coef, "sigma": sigma_a, "cal": cal, "fits": {f.line.name: f for f in fits}}


def test_calibration_identifies_every_line_and_recovers_the_curve(calibrated: dict) -> None:
    cal, coef = calibrated["cal"], calibrated["coef"]
    assert cal.names == ("AlKa", "ClKa", "CaKa", "MnKa", "MnKb")
    a = np.linspace(0.3, 2.0, 50)
    truth = coef[0] + coef[1] * a + coef[2] * a * a
    # Line centres are known to ~0.05 eV; the curve between them to well under 1 eV.
    assert np.max(np.abs(cal.energy(a) - truth)) < 1.0
    assert np.max(np.abs(cal.residuals_eV)) < 0.5
    assert cal.amplitude(cal.energy(1.234)) == pytest.approx(1.234, rel=1e-9)


def test_line_widths_follow_the_local_slope(calibrated: dict) -> None:
    """The Gaussian broadening of each line is slope(A_line) x amplitude noise: fitted with
    the natural shapes, every FWHM is within 5 % (the issue's tolerance; statistics ~1-3 %)."""
    cal, coef, sigma = calibrated["cal"], calibrated["coef"], calibrated["sigma"]
    for name in ("ClKa", "CaKa", "MnKa"):
        r = calibrated["fits"][name]
        a = _amplitude(np.array(r.line.energy_eV), coef)
        expected = FWHM_PER_SIGMA * sigma * (coef[1] + 2 * coef[2] * a)
        assert r.fit.fwhm == pytest.approx(expected, rel=0.05), name
    assert float(cal.slope(0.0)) == pytest.approx(coef[1], rel=0.01)


def test_identification_without_the_manganese_lines() -> None:
    """Design (c): Mn events slip and are set aside; Al, Cl, Ca are still identified, and a
    spurious peak (pile-up) between them is not taken for a line."""
    coef = (0.0, 2600.0, 90.0)
    peaks = _amplitude(np.array([1486.7, 2622.4, 3050.0, 3691.7]), coef)
    pairs = identify_lines(peaks, LINES)
    assert [(i, LINES[j].name) for i, j in pairs] == [(0, "AlKa"), (1, "ClKa"), (3, "CaKa")]


# -- slips ---------------------------------------------------------------------------------------


def _demodulate(flux: np.ndarray) -> np.ndarray:
    """What the unwrapper makes of a flux waveform sampled once per ramp: each step taken
    within +-Phi0/2 (the firmware's rule)."""
    steps = np.diff(flux, axis=1)
    wrapped = steps - np.floor(steps + 0.5)
    return np.concatenate([flux[:, :1], flux[:, :1] + np.cumsum(wrapped, axis=1)], axis=1)


#: Relative height against the measured arrival phase p (x = p - 258.2, one sample wide):
#: one like the demodulated design (a) pulse (falling ~1.8e-3 across the sample) and a
#: steeper, wavier one.
PHASE_GAINS = {
    "design_a_like": lambda x, a: 1.0 - 1.8e-3 * x + 6e-4 * x**2,
    "wavy": lambda x, a: 1.0 + 1.0e-3 * x + 2e-3 * x**3 - 5e-4 * np.cos(2 * np.pi * x),
    # the slope in phase halves from Cl Ka (A ~ 0.84) to Mn Kb (A ~ 2.0), as the demodulator's
    # edge error makes it on the simulated TES
    "height_dependent": lambda x, a: 1.0 - 2.4e-3 * x * (1.0 - 0.45 * (a - 0.84)),
}


@pytest.mark.parametrize(("gain", "fwhm_eV", "seed"),
                         [("design_a_like", 3.0, 1), ("wavy", 6.0, 2),
                          ("height_dependent", 3.0, 3)])
def test_arrival_phase_correction_is_learned_from_the_line_shapes(gain: str, fwhm_eV: float,
                                                                  seed: int) -> None:
    """Heights scaled by a phase-dependent gain (p-p 1-2e-3, several times the Mn Ka noise)
    on the curved response E = 20 + 3100 A + 180 A^2: the maximum-likelihood correction on
    ~3000 events of Cl, Ca, Mn Ka/Kb (their natural shapes: the Mn Ka doublet alone spreads
    1e-3) leaves a gain error under 0.2 sigma of the Mn Ka noise (it then adds < 2 % in
    quadrature), and the Mn Ka fit after it finds the FWHM that the true gain gives within 2 %
    (against the injected FWHM the fit of 2000 Mn Ka events is only good to ~7 %: the
    natural width dominates). Also when the dependence changes with the pulse height (the
    amplitude terms; one curve for all lines leaves Cl Ka ~0.6e-3 off at the phase edges)."""
    rng = np.random.default_rng(seed)
    coef = (20.0, 3100.0, 180.0)
    shapes = {"ClKa": CL_KA, "CaKa": CA_KA, "MnKa": MN_KA, "MnKb": MN_KB}
    counts = {"ClKa": 500, "CaKa": 500, "MnKa": 2000, "MnKb": 300}
    e = np.concatenate([_line_energies(shapes[k], n, rng) for k, n in counts.items()])
    e += fwhm_eV / FWHM_PER_SIGMA * rng.standard_normal(e.size)
    phase = 258.2 + rng.uniform(-0.5, 0.5, e.size)
    true_gain = PHASE_GAINS[gain](phase - 258.2, _amplitude(e, coef))
    amp = _amplitude(e, coef) * true_gain
    lines = [ln for ln in LINES if ln.name in shapes]
    cal, fits = calibrate(amp, lines, fwhm_guess_eV=2 * fwhm_eV)
    learned = learn_phase_correction(amp, phase, cal, [(f.line, f.fit.fwhm) for f in fits])
    ratio = learned.gain(phase, amp) / true_gain
    noise_rel = fwhm_eV / FWHM_PER_SIGMA / 5898.853
    assert np.std(ratio / ratio.mean()) < 0.2 * noise_rel, np.std(ratio) / noise_rel
    fitted = {}
    for how, a in (("learned", learned.apply(amp, phase)), ("true", amp / true_gain)):
        _, after = calibrate(a, lines, fwhm_guess_eV=fwhm_eV)
        fitted[how] = next(f.fit.fwhm for f in after if f.line.name == "MnKa")
    assert fitted["learned"] == pytest.approx(fitted["true"], rel=0.02), fitted


@pytest.mark.parametrize("seed", [0, 1])
def test_triangle_mean_equals_the_direct_sum(seed: int) -> None:
    """Prefix-sum triangle means against the kernel summed directly, at times inside, between
    and beyond irregular samples (also where no sample is in reach: weight 0)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(1e6, 2e6, 400))  # large offsets: the sums must not lose digits
    v, w = rng.normal(0.37, 1e-4, t.size), rng.uniform(0.5, 2.0, t.size)
    at = np.concatenate([rng.uniform(0.9e6, 2.1e6, 50), [t[0], t[-1], 0.5e6]])
    half = 1.3e4
    mean, norm = triangle_mean(t, v, w, at, half)
    for i, a in enumerate(at):
        k = np.clip(1.0 - np.abs(t - a) / half, 0.0, None) * w
        assert norm[i] == pytest.approx(k.sum(), abs=1e-9)
        if k.sum() > 0:
            assert mean[i] == pytest.approx((k * v).sum() / k.sum(), abs=1e-12)
    assert norm[-1] == 0.0


def test_unwrap_quanta_survives_a_record_caught_halfway_through_a_slip() -> None:
    """Baselines 0.37 Phi0 with bath wander 1e-4, slips of +1 and -2 quanta, and one record
    whose pretrigger held half of a slip: every other record comes back to its bath value."""
    rng = np.random.default_rng(3)
    bath = 0.37 + 1e-4 * rng.standard_normal(300)
    quanta = np.concatenate([np.zeros(100), np.ones(100), -np.ones(100)])
    b = bath + quanta
    b[100] = bath[100] + 0.5  # halfway through the first slip
    out = unwrap_quanta(b)
    others = np.arange(300) != 100
    assert np.allclose(out[others], bath[others], atol=1e-12)


def test_slips_are_flagged_exactly_where_the_slew_limit_is_exceeded() -> None:
    fs, rise = 500e3, 9e-6  # a fast design (c)-like rise
    rng = np.random.default_rng(8)
    t = (np.arange(LENGTH) - PRE) / fs
    heights = rng.uniform(0.1, 3.0, 400)  # Phi0: the largest demand ~0.33 Phi0/us
    phase = rng.uniform(0, 1, heights.size) / fs
    unit = unit_height_pulse(t[None, :] - phase[:, None], rise, 45e-6, 400e-6, 0.03)
    true = heights[:, None] * unit + 2e-3 * rng.standard_normal((heights.size, LENGTH)) + 0.3
    steps = np.diff(true, axis=1).max(axis=1)
    truly_slipped = steps > 0.5  # half a quantum per sample
    # Small second pulses piled up late in 20 records (slow enough never to slip): the record
    # ends above its baseline, which is not a slip.
    late = rng.choice(np.flatnonzero(~truly_slipped), 20, replace=False)
    true[late] += 1.5 * unit_height_pulse(t - 1.0e-3, 30e-6, 300e-6, 400e-6, 0.03)
    assert 20 < truly_slipped.sum() < 380  # both kinds present
    records = _demodulate(true)
    template = unit_height_pulse(t, rise, 45e-6, 400e-6, 0.03)
    slips = find_slips(records, PRE, template)
    np.testing.assert_array_equal(slips.slipped, truly_slipped)
    assert np.all(slips.quanta[truly_slipped] <= -1)  # quanta lost on the rise, never gained
    ok = ~truly_slipped
    np.testing.assert_array_equal(slips.quanta[late], 1)  # along the pulse: not flagged
    ok[late] = False
    np.testing.assert_allclose(max_slew(records[ok], fs), steps[ok] * fs, rtol=1e-9)
    assert slew_limit(fs) / 1e6 == pytest.approx(0.25)  # Phi0/us at 500 kHz


# -- noise components ----------------------------------------------------------------------------


def test_noise_components_and_the_demodulation_artefact() -> None:
    """Injected: the device's thermal, TES and load Johnson terms at 1.3, 0.8 and 0.8 x what
    the model predicts, readout 1.3 uPhi0/rtHz, a 62.5 kHz line and its first harmonic; the
    fit, given the model's shapes (Johnson terms as one amplitude), recovers each amplitude
    within 5 % (600 records: each bin's periodogram scatters by 4 %)."""
    f = record_grid(LENGTH, FS)
    shapes = model_shapes(DEVICE, PHI0_PER_A, f, FS)
    inject = {"thermal": 1.3, "tes_johnson": 0.8, "load_johnson": 0.8}
    psd = sum(inject[n] * shapes[n] for n in inject) + 1.3e-6**2
    x = coloured_noise(psd, 600, LENGTH, FS, seed=21)
    rng = np.random.default_rng(22)
    tt = np.arange(LENGTH) / FS
    for k, amp in ((1, 8e-5), (2, 5e-5)):
        x += amp * np.sin(2 * np.pi * k * 62.5e3 * tt + rng.uniform(0, 2 * np.pi, (600, 1)))
    noise = noise_psd(x, FS)
    parts = {"tes_johnson": shapes["tes_johnson"], "load_johnson": shapes["load_johnson"]}
    comps = split_component(fit_noise_components(noise, {
        "thermal": shapes["thermal"], "johnson": parts["tes_johnson"] + parts["load_johnson"],
        "readout": shapes["readout"]}), "johnson", parts)
    # 5 %: the fit averages hundreds of bins; the readout sits below the TES terms at low f.
    for name, value in inject.items():
        assert comps.scales[name] == pytest.approx(value, rel=0.05), name
    assert comps.band_rms["readout"] == pytest.approx(1.3e-6, rel=0.05)
    np.testing.assert_array_equal(comps.harmonics_hz, [62.5e3, 125e3, 187.5e3])
    np.testing.assert_array_equal(comps.line_found, [True, True, False])
    # The optimal filter does not care: the lines cost < 1 % of the predicted resolution.
    template = unit_height_pulse((np.arange(LENGTH) - PRE) / FS, 12e-6, 70e-6, 500e-6, 0.04)
    with_lines = optimal_filter(template, noise).predicted_sigma
    clean = optimal_filter(template, noise_psd(x, FS).__class__(
        noise.freqs_hz, comps.without_lines(), noise.n_records, FS)).predicted_sigma
    assert with_lines == pytest.approx(clean, rel=0.01)


@pytest.mark.parametrize("changes", [{}, {"alpha": 90.0, "heat_capacities": (0.3e-12, 0.9e-12,
                                                                         0.1e-12)}])
def test_characterisation_from_the_bias_circuit_gives_the_terms(changes: dict) -> None:
    """Only the bias circuit given (T0, R0, I0, L, R_L, G, n, bath; Phi0 per A): alpha, beta,
    the heat capacities and links fitted to the noise (1500 records, a 62.5 kHz line left
    out); each term's band power from the fitted device, with free amplitudes, within 20 % of
    the truth's, at `DEVICE` and at another alpha and absorber (measured: thermal +5.4 %, TES
    Johnson -1.4 %, load Johnson -1.9 %; +5.2 %, -4.1 %, -5.0 %; readout within 0.1 %; three
    seeds each: all within 10 %). alpha itself is not identified by the noise (fitted 34 and
    40 for 45 and 90: high loop gain hides it); the terms' shapes are."""
    device = dataclasses.replace(DEVICE, **changes)
    f = record_grid(LENGTH, FS)
    truth = model_shapes(device, PHI0_PER_A, f, FS)
    psd = truth["thermal"] + truth["tes_johnson"] + truth["load_johnson"] + 0.8e-6**2
    x = coloured_noise(psd, 1500, LENGTH, FS, seed=31)
    x += 6e-5 * np.sin(2 * np.pi * 62.5e3 * np.arange(LENGTH) / FS
                       + np.random.default_rng(32).uniform(0, 2 * np.pi, (1500, 1)))
    noise = noise_psd(x, FS)
    circuit = circuit_from({**{k: getattr(device, k) for k in CIRCUIT_KEYS if hasattr(device, k)},
                            "g_W_per_K": device.bath_g[0], "phi0_per_A": PHI0_PER_A})
    fitted = characterise(circuit, noise, skip=artefact_bins(f, 62.5e3))
    assert fitted.converged and fitted.chi2_per_bin < 1.2
    model = model_shapes(fitted.device, PHI0_PER_A, f, FS)
    parts = {"tes_johnson": model["tes_johnson"], "load_johnson": model["load_johnson"]}
    comps = split_component(fit_noise_components(noise, {
        "thermal": model["thermal"], "johnson": parts["tes_johnson"] + parts["load_johnson"],
        "readout": model["readout"]}), "johnson", parts)
    for name in ("thermal", "tes_johnson", "load_johnson"):
        assert comps.components[name][1:].sum() == pytest.approx(truth[name][1:].sum(),
                                                                  rel=0.20), name
    assert comps.band_rms["readout"] == pytest.approx(0.8e-6, rel=0.05)
    with pytest.raises(ValueError, match=r"tes: missing g_W_per_K"):
        circuit_from({k: 1.0 for k in CIRCUIT_KEYS if k != "g_W_per_K"})


# -- time resolution -----------------------------------------------------------------------------


def _tes_noise_records(rise: float, fwhm_eV: float, phi0_per_eV: float, n: int,
                       seed: int, fs: float = FS) -> tuple[np.ndarray, np.ndarray]:
    """Noise records of `DEVICE` (its terms, sampled at fs, plus 1.5 uPhi0/rtHz of readout)
    scaled so that the optimal filter's noise-only FWHM of a three-exponential pulse of
    `phi0_per_eV` is `fwhm_eV`; and the unit-height template."""
    f = record_grid(LENGTH, fs)
    shapes = model_shapes(DEVICE, PHI0_PER_A, f, fs)
    psd = sum(shapes[n] for n in ("thermal", "tes_johnson", "load_johnson")) + 1.5e-6**2
    template = unit_height_pulse((np.arange(LENGTH) - PRE) / fs, rise, 75e-6, 500e-6, 0.04)
    psd = psd * (fwhm_eV / resolution_fwhm(phi0_per_eV * template, psd, fs)) ** 2
    return coloured_noise(psd, n, LENGTH, fs, seed), template


def test_time_resolution_at_the_papers_settings() -> None:
    """15 us rise at 500 kS/s, design (a)'s 3.3 eV noise and gain, pairs of Cl Ka pulses (the
    paper's timing line): half the pairs are resolved at <= 3 us (seed paper, section 7).
    The limit is the sampling (a pulse's sharp start aliases), not the noise: at 250 kS/s the
    same detector resolves pairs only about twice as far apart."""
    rise, k = 15e-6, 1.0 / 2734.5

    def pulse(t: np.ndarray) -> np.ndarray:
        return unit_height_pulse(t, rise, 75e-6, 500e-6, 0.04)

    taus = {}
    for fs, seed in ((FS, 31), (250e3, 33)):
        noise, _ = _tes_noise_records(rise, 3.3, k, 300, seed, fs)
        seps = np.arange(0.25, 4.01, 0.125) / fs
        res = pair_resolution(pulse, k * 2622.4, noise, fs, PRE, seps, n_pairs=150,
                              rng=np.random.default_rng(seed + 1))
        assert res.false_pairs <= 0.03  # 1 % by construction, plus its sampling scatter
        assert res.resolved[0] < 0.1 and res.resolved[-1] > 0.95
        taus[fs] = res.time_resolution_s
    assert 1e-6 < taus[FS] <= 3e-6  # measured 2.96 us (seed 31; 2.91 us with seed 35)
    assert 1.6 < taus[250e3] / taus[FS] < 2.4
    assert pileup_fraction(300.0, taus[FS]) == pytest.approx(300.0 * taus[FS])


# -- moving average ------------------------------------------------------------------------------


def test_moving_average_before_the_filter_keeps_the_resolution() -> None:
    """A moving average is an invertible linear filter on the band the pulse uses, so the
    optimal filter learned on smoothed records predicts (and measures) the same resolution
    within a few % (the record's first samples are averaged over fewer)."""
    rise = 12e-6
    noise, template = _tes_noise_records(rise, 4.1, 3e-4, 800, seed=41)
    plain = optimal_filter(template, noise_psd(noise, FS))
    for n in (5, 9):
        smooth_noise = moving_average(noise, n)
        smooth = optimal_filter(moving_average(template[None, :], n)[0],
                                noise_psd(smooth_noise, FS))
        assert smooth.predicted_sigma == pytest.approx(plain.predicted_sigma, rel=0.03)
        measured = np.std(smooth.apply(moving_average(
            coloured_noise(noise_psd(noise, FS).psd, 800, LENGTH, FS, seed=42), n)))
        assert measured == pytest.approx(smooth.predicted_sigma, rel=0.08)  # 2.5 % scatter x3
    np.testing.assert_allclose(moving_average(np.arange(6.0)[None, :], 3)[0],
                               [0, 0.5, 1, 2, 3, 4])
