"""Cavity-emitted radiation model (seed paper Eqs 1-4) against independent physics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import constants, integrate

from cryodaq.analysis.cavity import (
    Cavity,
    Chain,
    effective_temperature,
    emitted_power,
    fit_reflection,
    line_reflection,
    lossless_emitted_power,
    received_power,
    reflection,
    transmission,
    transmission_power,
)

PAPER = Cavity(432e3, 149e3, 4.944458e9)
CAVITIES = [
    PAPER,  # under-coupled, the seed paper's
    Cavity(300e3, 300e3, 5.1e9),  # critically coupled
    Cavity(150e3, 400e3, 3.0e9),  # over-coupled
]


def _around(cavity: Cavity, n: int = 4001, widths: float = 20.0) -> np.ndarray:
    half = widths * cavity.linewidth_Hz
    return np.linspace(cavity.fc_Hz - half, cavity.fc_Hz + half, n)


@pytest.mark.parametrize("cavity", CAVITIES)
def test_lossless_port_conserves_power(cavity: Cavity) -> None:
    f = _around(cavity)
    total = np.abs(reflection(f, cavity)) ** 2 + np.abs(transmission(f, cavity)) ** 2
    assert np.max(np.abs(total - 1.0)) < 1e-14  # rounding only


@pytest.mark.parametrize("cavity", CAVITIES)
def test_reflection_on_and_off_resonance(cavity: Cavity) -> None:
    k0, ke = cavity.kappa0_Hz, cavity.kappae_Hz
    # On resonance S_r is real, (k0 - ke)/(k0 + ke): positive under-, negative over-coupled.
    assert complex(reflection(cavity.fc_Hz, cavity)) == pytest.approx((k0 - ke) / (k0 + ke))
    # Half a linewidth off, |S_t|^2 is half its peak (Lorentzian of full width k0 + ke).
    peak = abs(complex(transmission(cavity.fc_Hz, cavity))) ** 2
    half = abs(complex(transmission(cavity.fc_Hz + cavity.linewidth_Hz / 2, cavity))) ** 2
    assert half == pytest.approx(peak / 2, rel=1e-12)
    assert peak == pytest.approx(4 * k0 * ke / (k0 + ke) ** 2, rel=1e-12)
    # Far away the cavity is a mirror.
    assert abs(complex(reflection(cavity.fc_Hz + 1e4 * cavity.linewidth_Hz, cavity))) == (
        pytest.approx(1.0, abs=1e-7)
    )


@pytest.mark.parametrize("width", [1.0, 1e3, 1e5, 1e6, 1e7])
@pytest.mark.parametrize("detuning", [0.0, 2e5, -7e5, 3e6])
def test_bin_average_equals_numerical_integral(width: float, detuning: float) -> None:
    f = PAPER.fc_Hz + detuning

    def point(x: float) -> float:
        return float(transmission_power(x, PAPER))

    lo, hi = f - width / 2, f + width / 2
    integral, _ = integrate.quad(point, lo, hi, points=[PAPER.fc_Hz] if lo < PAPER.fc_Hz < hi
                                 else None, epsabs=0, epsrel=1e-12, limit=200)
    averaged = float(transmission_power(f, PAPER, width))
    # The closed-form bin average must equal quadrature of the point formula (1e-9: quad's
    # tolerance and the arctangent difference at a 1 Hz bin).
    assert averaged == pytest.approx(integral / width, rel=1e-9)


def test_effective_temperature_limits() -> None:
    f = 5e9
    half_quantum = constants.h * f / (2 * constants.k)
    assert half_quantum == pytest.approx(0.120, abs=0.001)  # cross-over 120 mK at 5 GHz
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # T -> 0 must not overflow or divide by zero
        cold = effective_temperature(np.array([0.0, 1e-4, 1e-3, 5e-3]), f)
    assert np.all(cold == half_quantum)  # zero-point noise only (exp(-240) is below rounding)
    # High T: T~ = T (1 + x^2/12 - x^4/720 + ...), x = h f / k T (2.4e-2 at 10 K: next term
    # x^6/30240 ~ 7e-15).
    hot = np.array([10.0, 100.0, 1000.0])
    x = constants.h * f / (constants.k * hot)
    series = hot * (1 + x**2 / 12 - x**4 / 720)
    assert effective_temperature(hot, f) == pytest.approx(series, rel=1e-13)
    # Between the limits, Eq 3 written literally (expm1 is fine there).
    mid = np.array([0.02, 0.12, 0.34, 0.9])
    literal = 2 * half_quantum * (1 / np.expm1(2 * half_quantum / mid) + 0.5)
    assert effective_temperature(mid, f) == pytest.approx(literal, rel=1e-13)


@pytest.mark.parametrize("bad", [-1e-3, np.nan, np.inf])
def test_effective_temperature_refuses_unphysical_input(bad: float) -> None:
    with pytest.raises(ValueError, match="temperature_K"):
        effective_temperature(bad, 5e9)
    with pytest.raises(ValueError, match="frequency"):
        effective_temperature(0.1, 0.0)


@pytest.mark.parametrize("temperature", [0.0, 0.02, 0.34, 2.0])
@pytest.mark.parametrize("width", [0.0, 1e3, 1e6])
@pytest.mark.parametrize("cavity", CAVITIES)
def test_flat_spectrum_when_attenuator_and_cavity_share_a_temperature(
    temperature: float, width: float, cavity: Cavity
) -> None:
    f = _around(cavity)
    bandwidth = width or 1.0  # width 0: point response times a 1 Hz bandwidth
    st2 = transmission_power(f, cavity, width)
    t_eff = effective_temperature(temperature, f)
    p_c = ((1 - st2) * t_eff + st2 * t_eff) * constants.k * bandwidth
    p_model = lossless_emitted_power(f, cavity, temperature, temperature, bandwidth)
    # The cavity leaves no imprint: the spectrum is that of a thermal load at T (white
    # apart from T~'s own slow frequency dependence), to rounding.
    reference = t_eff * constants.k * bandwidth
    assert np.max(np.abs(p_model / reference - 1)) < 1e-12
    assert np.max(np.abs(p_c / reference - 1)) < 1e-12


@pytest.mark.parametrize(
    ("t_att", "t_cav", "sign"),
    [(0.342, 0.078, -1), (0.332, 0.202, -1), (0.341, 0.909, 1), (0.083, 0.348, 1)],
)  # Table 1 curves a1, a2, a5, b1 of the seed paper
def test_peak_or_dip_at_resonance(t_att: float, t_cav: float, sign: int) -> None:
    bandwidth = 1e3
    f = _around(PAPER, widths=50)
    p_c = lossless_emitted_power(f, PAPER, t_att, t_cav, bandwidth)
    on = float(lossless_emitted_power(PAPER.fc_Hz, PAPER, t_att, t_cav, bandwidth))
    far = p_c[0]
    assert np.sign(on - far) == sign
    assert np.argmax(sign * p_c) == pytest.approx(f.size // 2, abs=1)
    # Excess on resonance = |S_t(f_c)|^2 (T~_c - T~_att) k_B B (B << kappa: point response).
    st2 = 4 * PAPER.kappa0_Hz * PAPER.kappae_Hz / PAPER.linewidth_Hz**2
    t_c, t_a = effective_temperature([t_cav, t_att], PAPER.fc_Hz)
    expected = st2 * (t_c - t_a) * constants.k * bandwidth
    background = float(effective_temperature(t_att, PAPER.fc_Hz)) * constants.k * bandwidth
    assert on - background == pytest.approx(expected, rel=1e-6)  # bin curvature ~ (B/kappa)^2


def test_emitted_power_takes_any_incoming_temperature() -> None:
    """Eq 8 form: with T_in = T~_att it is Eq 1; a hotter input line raises the off-resonance
    floor by exactly the extra incoming temperature."""
    f = _around(PAPER)
    t_in = effective_temperature(0.1, f)
    eq1 = lossless_emitted_power(f, PAPER, 0.1, 0.4, 1e3)
    assert emitted_power(f, PAPER, t_in, 0.4, 1e3) == pytest.approx(eq1, rel=1e-15)
    hotter = emitted_power(f, PAPER, t_in + 0.05, 0.4, 1e3)
    assert (hotter - eq1)[0] == pytest.approx(0.05 * constants.k * 1e3, rel=1e-6)


def test_y_factor_recovers_added_noise_and_gain() -> None:
    """Two cavity temperatures on resonance of a critically coupled cavity (|S_t|^2 = 1): the
    Y-factor formula T_a = (T~_hot - Y T~_cold)/(Y - 1) and the slope give back the chain."""
    cavity = Cavity(300e3, 300e3, 5e9)
    chain = Chain(93.07, 5.28)
    bandwidth = 10.0  # << kappa: the bin sees the point response
    p = [
        chain.received_power(
            lossless_emitted_power(cavity.fc_Hz, cavity, 0.05, t, bandwidth), bandwidth
        )
        for t in (0.1, 0.9)
    ]
    y = p[1] / p[0]
    t_cold, t_hot = effective_temperature([0.1, 0.9], cavity.fc_Hz)
    assert (t_hot - y * t_cold) / (y - 1) == pytest.approx(5.28, rel=1e-6)
    gain = (p[1] - p[0]) / ((t_hot - t_cold) * constants.k * bandwidth)
    assert 10 * np.log10(gain) == pytest.approx(93.07, abs=1e-6)
    assert received_power(0.0, 1e3, 2.0, 3.0) == pytest.approx(2 * constants.k * 3 * 1e3)


@pytest.mark.parametrize("cavity", CAVITIES)
def test_fit_reflection_recovers_noise_free_cavity(cavity: Cavity) -> None:
    f = _around(cavity, n=1001, widths=8)
    s11 = line_reflection(f, cavity, 31.0 * np.exp(-2.2j), 60e-9)
    fit = fit_reflection(f, s11)
    assert fit.cavity.kappa0_Hz == pytest.approx(cavity.kappa0_Hz, rel=1e-6)
    assert fit.cavity.kappae_Hz == pytest.approx(cavity.kappae_Hz, rel=1e-6)
    assert fit.cavity.fc_Hz == pytest.approx(cavity.fc_Hz, abs=1e-2)
    assert fit.delay_s == pytest.approx(60e-9, rel=1e-6)
    assert np.max(np.abs(fit.model(f) - s11)) < 1e-6


def test_cavity_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="kappae_Hz"):
        Cavity(432e3, -1.0, 5e9)
    with pytest.raises(ValueError, match="fc_Hz"):
        Cavity(432e3, 149e3, np.nan)
    with pytest.raises(ValueError, match="bin_width_Hz"):
        transmission_power(5e9, PAPER, -1.0)
