"""Optimal filter, pulse fit and line fit checked against the physics they were given.

Pulses (`cryodaq.analysis.pulse_shapes`) on noise (`cryodaq.sim_instruments.noise.ColoredNoise`,
white + 1/f) at known parameters; the expected resolution is computed here, independently of the
filter code, from the injected PSD (`cryodaq.analysis.noise_models`) and the pulse's continuous
Fourier transform (REFERENCE section 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import cauchy

from cryodaq.analysis.line_fit import fit_line, histogram
from cryodaq.analysis.noise_models import white_plus_one_over_f
from cryodaq.analysis.optimal_filter import (
    average_pulse,
    learn_optimal_filter,
    noise_psd,
    optimal_filter,
)
from cryodaq.analysis.pulse_fit import fit_pulse
from cryodaq.analysis.pulse_shapes import peak_norm, unit_pulse
from cryodaq.analysis.xray_lines import MN_KA
from cryodaq.sim_instruments.noise import ColoredNoise

FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))
N_RECORDS = 4000  # std of a std from n Gaussian values: 1/sqrt(2n) = 1.1 %


@dataclass(frozen=True)
class Case:
    """A detector: sampling, record, pulse shape and height, noise (units/rtHz, 1/f knee)."""

    fs: float
    length: int
    rise_s: float
    decay_s: float
    height: float
    white: float
    knee_hz: float

    @property
    def pre(self) -> int:
        return self.length // 4


CASES = {
    # maXs30 MMC (REFERENCE 1): 10 us rise at 500 kS/s, 3 ms decay longer than the record.
    "mmc": Case(500e3, 1024, 10e-6, 3e-3, 850.0, 0.0088, 5.0),
    # Slower TES-like pulse; its 1/f noise (knee 200 Hz) costs ~30 % of the resolution.
    "tes_1f": Case(200e3, 1024, 30e-6, 2e-3, 400.0, 0.01, 200.0),
    # White noise only, short record holding ~4 decays.
    "white": Case(100e3, 512, 50e-6, 1e-3, 300.0, 0.02, 0.0),
}


def noise(case: Case, n: int, seed: int) -> np.ndarray:
    """n consecutive records of one continuous noise stream."""
    gen = ColoredNoise(case.white, case.knee_hz, case.fs, np.random.default_rng(seed))
    return gen.block(n * case.length).reshape(n, case.length)


def pulses(case: Case, n: int, seed: int, heights: np.ndarray | None = None) -> np.ndarray:
    """Pulses arriving at a uniformly random phase within the sample after the pretrigger
    (what an edge trigger on sampled data gives), on noise."""
    rng = np.random.default_rng(seed)
    t = (np.arange(case.length) - case.pre) / case.fs
    phase = rng.uniform(0.0, 1.0, n) / case.fs
    h = np.full(n, case.height) if heights is None else heights
    clean = h[:, None] * unit_pulse(t[None, :] - phase[:, None], case.rise_s, case.decay_s)
    return clean + noise(case, n, seed + 1)


def expected_sigma(case: Case) -> float:
    """sigma^-2 = sum_k 4 |P(f_k)|^2 / J(f_k) df over the record's frequencies (DC left out,
    Nyquist halved), P the continuous FT of the unit-height pulse cut at the record's end."""
    f = np.fft.rfftfreq(case.length, 1.0 / case.fs)[1:]
    w = 2j * np.pi * f
    end = (case.length - case.pre) / case.fs
    p = sum(
        sign * (1.0 - np.exp(-(1.0 / tau + w) * end)) / (1.0 / tau + w)
        for sign, tau in ((1.0, case.decay_s), (-1.0, case.rise_s))
    ) / peak_norm(case.rise_s, case.decay_s)
    psd = white_plus_one_over_f(f, case.white, case.knee_hz)
    c = np.ones(f.size)
    c[-1] = 0.5
    return float(np.sum(c * 4.0 * np.abs(p) ** 2 / psd) * case.fs / case.length) ** -0.5


@pytest.fixture(scope="module", params=sorted(CASES))
def learned(request: pytest.FixtureRequest) -> tuple:
    case = CASES[request.param]
    pulse_records = pulses(case, N_RECORDS, 11)
    avg, filt = learn_optimal_filter(pulse_records, noise(case, N_RECORDS, 21), case.pre, case.fs)
    return case, pulse_records, avg, filt


def test_filter_prediction_equals_the_injected_psd_integral(learned: tuple) -> None:
    case, _, _, filt = learned
    expected = expected_sigma(case)
    assert filt.ideal_sigma == pytest.approx(expected, rel=0.05)
    # The arrival-time constraint costs (much) less than 1 %.
    assert filt.ideal_sigma <= filt.predicted_sigma < 1.01 * filt.ideal_sigma


def test_filtered_amplitudes_scatter_as_predicted(learned: tuple) -> None:
    case, pulse_records, _, filt = learned
    noise_amp = filt.apply(noise(case, N_RECORDS, 31))  # records the filter never saw
    pulse_amp = filt.apply(pulses(case, N_RECORDS, 41))
    assert np.std(noise_amp) * FWHM == pytest.approx(filt.predicted_fwhm, rel=0.05)
    assert np.std(pulse_amp) * FWHM == pytest.approx(filt.predicted_fwhm, rel=0.05)
    assert abs(np.mean(noise_amp)) < 4 * filt.predicted_sigma / np.sqrt(N_RECORDS)
    assert np.mean(pulse_amp) == pytest.approx(case.height, rel=1e-3)
    # Pulses on the very records the filter learned from scatter alike.
    assert np.std(filt.apply(pulse_records)) * FWHM == pytest.approx(filt.predicted_fwhm, rel=0.05)


def test_without_arrival_safety_a_cut_tail_broadens_the_line() -> None:
    """The reason for the arrival-safe filter: the maXs30 pulse's decay outlasts the record,
    and a plain optimal filter's amplitude then follows the sub-sample arrival phase."""
    case = CASES["mmc"]
    records = pulses(case, N_RECORDS, 11)
    avg = average_pulse(records, case.pre, case.fs)
    spectrum = noise_psd(noise(case, N_RECORDS, 21), case.fs)
    plain = optimal_filter(avg.template, spectrum, arrival_safe=False)
    safe = optimal_filter(avg.template, spectrum)
    assert np.std(plain.apply(records)) > 1.1 * plain.predicted_sigma
    assert np.std(safe.apply(records)) < 1.05 * safe.predicted_sigma


def test_baseline_offsets_do_not_leak(learned: tuple) -> None:
    case, pulse_records, _, filt = learned
    assert abs(filt.weights.sum()) < 1e-12 * np.abs(filt.weights).sum()
    offsets = np.random.default_rng(5).normal(0.0, 1e4, len(pulse_records))[:, None]
    shifted = filt.apply(pulse_records + offsets)
    assert np.allclose(shifted, filt.apply(pulse_records), rtol=0, atol=1e-6 * case.height)


def test_noise_psd_is_one_sided_units2_per_hz() -> None:
    case = CASES["white"]
    spectrum = noise_psd(noise(case, N_RECORDS, 3), case.fs)
    inner = spectrum.psd[1:]
    assert np.mean(inner) == pytest.approx(case.white**2, rel=0.01)
    # Parseval: the PSD integrates to the variance of the (mean-free) records.
    assert np.sum(inner) * case.fs / case.length == pytest.approx(
        case.white**2 * case.fs / 2, rel=0.01
    )


def test_negative_pulses_give_positive_amplitudes() -> None:
    case = CASES["white"]
    records = -pulses(case, 500, 7)
    avg, filt = learn_optimal_filter(records, noise(case, 500, 8), case.pre, case.fs)
    assert avg.sign == -1.0 and avg.template.min() == pytest.approx(-1.0)
    assert np.mean(filt.apply(records)) == pytest.approx(case.height, rel=2e-3)


def test_pulse_fit_recovers_rise_and_decay(learned: tuple) -> None:
    case, _, avg, _ = learned
    sigma = case.white * np.sqrt(case.fs / 2) / np.sqrt(avg.n_records)
    fit = fit_pulse(avg.sign * avg.average, case.pre, case.fs, sigma=sigma)
    assert fit.rise_s == pytest.approx(case.rise_s, rel=0.05)
    assert fit.decay_s == pytest.approx(case.decay_s, rel=0.05)
    assert fit.amplitude == pytest.approx(case.height, rel=0.01)
    assert 0 < fit.rise_err_s < 0.01 * fit.rise_s and 0 < fit.decay_err_s < 0.01 * fit.decay_s
    # The average of phases spread over one sample arrives half a sample late.
    assert fit.t0_s * case.fs == pytest.approx(0.5, abs=0.1)
    assert fit.chi2 / fit.dof == pytest.approx(1.0, abs=0.3)


def test_pulse_fit_errors_cover_the_truth_on_single_noisy_pulses() -> None:
    """Pulls of rise and decay over noisy single pulses are ~N(0, 1)."""
    case = CASES["white"]
    t = (np.arange(case.length) - case.pre) / case.fs
    rng = np.random.default_rng(17)
    sigma = 3.0
    pulls = []
    for _ in range(100):
        y = case.height * unit_pulse(t, case.rise_s, case.decay_s)
        fit = fit_pulse(y + rng.normal(0.0, sigma, y.size), case.pre, case.fs, sigma=sigma)
        pulls.append(
            [
                (fit.rise_s - case.rise_s) / fit.rise_err_s,
                (fit.decay_s - case.decay_s) / fit.decay_err_s,
            ]
        )
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.35)  # 3.5 standard errors of 100 pulls
    assert np.all((pulls.std(axis=0) > 0.8) & (pulls.std(axis=0) < 1.2))


def test_gaussian_line_fit_pulls_are_standard_normal() -> None:
    rng = np.random.default_rng(2024)
    centre, fwhm, n_rep = 5898.75, 6.0, 300
    pulls = []
    for _ in range(n_rep):
        counts, edges = histogram(rng.normal(centre, fwhm / FWHM, 1500), 5860.0, 5940.0, 0.5)
        fit = fit_line(counts, edges)
        pulls.append([(fit.centre - centre) / fit.centre_err, (fit.fwhm - fwhm) / fit.fwhm_err])
    pulls = np.array(pulls)
    # Standard errors over 300 repetitions: 0.058 on the mean, 0.041 on the std.
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.2)
    assert np.all(np.abs(pulls.std(axis=0) - 1.0) < 0.13)


def mn_ka_events(rng: np.random.Generator, n: int, fwhm: float) -> np.ndarray:
    """Mn Ka (Holzer Lorentzians) broadened by a Gaussian of `fwhm`."""
    weights = np.array([c.weight for c in MN_KA])
    k = rng.choice(len(MN_KA), n, p=weights / weights.sum())
    energy = np.array([c.energy_eV for c in MN_KA])[k]
    gamma = np.array([c.fwhm_eV for c in MN_KA])[k] / 2
    return energy + gamma * rng.standard_cauchy(n) + rng.normal(0.0, fwhm / FWHM, n)


def test_holzer_line_fit_recovers_width_on_a_background() -> None:
    rng = np.random.default_rng(99)
    flat = rng.uniform(5840.0, 5960.0, 1200)  # 10 counts / eV
    events = np.concatenate([mn_ka_events(rng, 8000, 5.0), flat])
    counts, edges = histogram(events, 5840.0, 5960.0, 0.5)
    fit = fit_line(counts, edges, MN_KA, background=True)
    assert abs(fit.fwhm - 5.0) < 3 * fit.fwhm_err and fit.fwhm_err < 0.2
    assert abs(fit.centre - 5898.853) < 3 * fit.centre_err
    assert abs(fit.background - 10.0) < 3 * fit.background_err
    # The same shape as a callable density (offsets from the reference) gives the same fit.
    ref = 5898.853
    weights = np.array([c.weight for c in MN_KA]) / sum(c.weight for c in MN_KA)

    def density(x: np.ndarray) -> np.ndarray:
        return sum(
            w * cauchy.pdf(x - (c.energy_eV - ref), scale=c.fwhm_eV / 2)
            for w, c in zip(weights, MN_KA, strict=True)
        )

    same = fit_line(counts, edges, density, background=True)
    assert same.fwhm == pytest.approx(fit.fwhm, abs=0.05 * fit.fwhm_err)
    assert same.centre == pytest.approx(fit.centre, abs=0.05 * fit.centre_err)
    assert same.fwhm_err == pytest.approx(fit.fwhm_err, rel=0.02)
