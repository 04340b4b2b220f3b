"""Physics of cryodaq.analysis.resonator: notch response, rf-SQUID modulation, flux-ramp harmonic,
channel budget, dip finding."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.analysis.resonator import (
    channel_budget,
    coupling_q,
    find_dips,
    guard_factor,
    loaded_q,
    notch_s21,
    ramp_harmonic,
    squid_resonance,
    swing_centre,
)

CASES = [  # f_r (Hz), Q_i, Q_c
    (5.0e9, 5e4, 2632.0),
    (4.2e9, 1e4, 8000.0),
    (7.7e9, 2e5, 1.5e5),
]


def _power_dip_fwhm(f: np.ndarray, s21: np.ndarray) -> float:
    """Full width at half maximum of 1 - |S21|^2, by linear interpolation."""
    p = 1.0 - np.abs(s21) ** 2
    above = np.flatnonzero(p >= p.max() / 2)
    lo, hi = above[0], above[-1]
    half = p.max() / 2
    left = np.interp(half, [p[lo - 1], p[lo]], [f[lo - 1], f[lo]])
    right = np.interp(half, [p[hi + 1], p[hi]], [f[hi + 1], f[hi]])
    return right - left


@pytest.mark.parametrize(("f_r", "q_i", "q_c"), CASES)
def test_notch_depth_and_width(f_r: float, q_i: float, q_c: float) -> None:
    q_l = loaded_q(q_i, q_c)
    assert 1 / q_l == pytest.approx(1 / q_i + 1 / q_c, rel=1e-12)
    # Depth at resonance is exactly Q_L/Q_i.
    assert abs(notch_s21(f_r, f_r, q_i, q_c)) == pytest.approx(q_l / q_i, rel=1e-12)
    # FWHM of the power dip is f_r/Q_L; grid of 1e-5 widths -> 1e-4 relative tolerance.
    width = f_r / q_l
    f = f_r + np.linspace(-3, 3, 600_001) * width
    assert _power_dip_fwhm(f, notch_s21(f, f_r, q_i, q_c)) == pytest.approx(width, rel=1e-4)
    # Far from resonance the line transmits fully (to 1e-4 at 1000 widths).
    assert abs(notch_s21(f_r + 1000 * width, f_r, q_i, q_c)) == pytest.approx(1.0, abs=1e-4)


def test_coupling_q_sets_the_bandwidth() -> None:
    q_c = coupling_q(5e9, 2e6, 5e4)
    assert 5e9 / loaded_q(5e4, q_c) == pytest.approx(2e6, rel=1e-12)
    with pytest.raises(ValueError, match="Q_i must exceed"):
        coupling_q(5e9, 2e6, 2000.0)  # Q_i below the loaded Q 2500


@pytest.mark.parametrize(("swing", "lam"), [(2e6, 0.3), (0.5e6, 0.6), (3e6, 0.05)])
def test_squid_swing_is_the_configured_peak_to_peak(swing: float, lam: float) -> None:
    flux = np.linspace(-1, 1, 200_001)
    f_r = squid_resonance(flux, 5e9, swing, lam)
    # Extremes at Phi = 0 and 1/2 are on the grid: exact to float rounding.
    assert f_r.max() - f_r.min() == pytest.approx(swing, rel=1e-9)
    assert (f_r.max() + f_r.min()) / 2 == pytest.approx(swing_centre(5e9, swing, lam), abs=1e-3)
    # Periodic in one flux quantum, maximum at integer flux.
    assert squid_resonance(0.37, 5e9, swing, lam) == pytest.approx(
        squid_resonance(1.37, 5e9, swing, lam), abs=1e-3)
    assert f_r.argmax() in (0, 100_000, 200_000)
    with pytest.raises(ValueError, match="lambda"):
        squid_resonance(0.0, 5e9, swing, 1.2)


@pytest.mark.parametrize("signal_phi0", [0.0, 0.13, -0.41])
def test_ramp_harmonic_matches_reference_demodulation(signal_phi0: float) -> None:
    """REFERENCE sec. 3: S = sum y sin(w_c t), C = sum y cos(w_c t), theta = atan2(-S, C) gives
    2 pi Phi_s + arg(c1), with y the tone's S21 phase while the ramp sweeps n_Phi0 quanta."""
    f0, swing, lam, q_i = 5e9, 2e6, 0.3, 5e4
    q_c = coupling_q(f0, 2e6, q_i)
    tone = swing_centre(f0, swing, lam) + 0.3e6
    n_phi0, per_ramp = 2, 1024
    t = np.arange(per_ramp) / per_ramp  # one ramp period, in units of 1/f_ramp
    ramp_flux = n_phi0 * t
    y = np.angle(notch_s21(tone, squid_resonance(ramp_flux + signal_phi0, f0, swing, lam),
                           q_i, q_c))
    w_t = 2 * np.pi * n_phi0 * t
    theta = np.arctan2(-np.sum(y * np.sin(w_t)), np.sum(y * np.cos(w_t)))
    c1 = ramp_harmonic(tone, f0, swing, lam, q_i, q_c)
    expected = 2 * np.pi * signal_phi0 + np.angle(c1)
    # The sums differ only by aliased high harmonics of y (128 vs 512 points per quantum):
    # phase to 1e-9 rad (measured 2e-14), amplitude to 1e-5 (measured 1.6e-6).
    assert np.angle(np.exp(1j * (theta - expected))) == pytest.approx(0.0, abs=1e-9)
    # The fundamental of y has amplitude 2|c1| (y is real).
    assert 2 * np.hypot(np.sum(y * np.sin(w_t)), np.sum(y * np.cos(w_t))) / per_ramp == (
        pytest.approx(2 * abs(c1), rel=1e-5))


def test_ramp_harmonic_vanishes_far_from_resonance() -> None:
    q_c = coupling_q(5e9, 2e6, 5e4)
    centre = swing_centre(5e9, 2e6, 0.3)
    on = abs(ramp_harmonic(centre, 5e9, 2e6, 0.3, 5e4, q_c))
    tones = centre + np.array([7e6, 14e6, 50e6])
    off = np.abs(ramp_harmonic(tones, 5e9, 2e6, 0.3, 5e4, q_c))
    assert on > 0.3  # radians of S21 phase swing for a tone mid-swing
    assert np.all(np.diff(off) < 0)
    assert off[1] < 1e-2 * on  # a neighbour 7 widths away: below 1 % crosstalk
    assert off[2] < 1e-3 * on


def test_channel_budget_holmes_and_other_numbers() -> None:
    g_f = guard_factor(14e6, 2e6)
    assert g_f == pytest.approx(7.0)
    assert channel_budget(512e6, 500e3, 2, g_f) == 36  # 36.57 -> 36 (HOLMES)
    assert channel_budget(512e6, 250e3, 2, g_f) == 73  # 73.1
    assert channel_budget(512e6, 500e3, 4, g_f) == 18  # 18.3
    assert channel_budget(512e6, 500e3, 2, 8.0) == 32  # exactly 32: no float rounding down
    assert channel_budget(2e9, 1e6, 3, guard_factor(10e6, 1e6)) == 33  # 33.3
    with pytest.raises(ValueError, match="f_ramp_hz"):
        channel_budget(512e6, 0.0, 2, 7.0)


def _synthetic_sweep(rng: np.random.Generator, centres: np.ndarray, widths: np.ndarray,
                     q_i: float) -> tuple[np.ndarray, np.ndarray]:
    f = np.linspace(4.8e9, 5.2e9, 8001)  # 50 kHz steps
    s21 = np.ones_like(f, dtype=complex)
    for f_r, w in zip(centres, widths, strict=True):
        s21 *= notch_s21(f, f_r, q_i, coupling_q(f_r, w, q_i))
    s21 *= 0.3 * (1 + 0.2 * (f - 5e9) / 2e8) * np.exp(-2j * np.pi * f * 60e-9)
    s21 += 3e-4 * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    return f, s21


def test_find_dips_recovers_centres_widths_depths() -> None:
    rng = np.random.default_rng(7)
    centres = 4.85e9 + np.cumsum(rng.uniform(9e6, 15e6, 20))
    widths = rng.uniform(0.8e6, 2.5e6, 20)
    f, s21 = _synthetic_sweep(rng, centres, widths, q_i=3e4)
    dips = find_dips(f, s21)
    assert len(dips) == 20 and dips.fitted.all()
    # Tolerances: centre 5 kHz (1/10 of a 50 kHz step; fits land ~1 kHz), width 2 %,
    # depth 10 % (depth ~0.1 is read at the noisy bottom of the dip).
    assert np.max(np.abs(dips.freq_hz - centres)) < 5e3
    np.testing.assert_allclose(dips.fwhm_hz, widths, rtol=0.02)
    q_l = centres / widths
    np.testing.assert_allclose(dips.depth, q_l / 3e4, rtol=0.10)


def test_find_dips_on_a_flat_line_finds_nothing() -> None:
    rng = np.random.default_rng(3)
    f = np.linspace(4.8e9, 5.2e9, 4001)
    s21 = 1 + 1e-3 * rng.standard_normal(f.size)
    assert len(find_dips(f, s21)) == 0
    with pytest.raises(ValueError, match="increasing"):
        find_dips(f[::-1], s21)
