"""Lossy chain of the haloscope (Eqs 5-9) against its own limits and against Eqs 1-4."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.analysis.cavity import (
    K_B,
    Cavity,
    effective_temperature,
    emitted_power,
    lossless_emitted_power,
    received_power,
)
from cryodaq.analysis.cavity_chain import (
    ChainLosses,
    Temperatures,
    cable_noise_temperature,
    effective_chain,
    incoming_temperature,
    input_noise,
    output_noise,
    received_spectrum,
)

PAPER = Cavity(432e3, 149e3, 4.944458e9)
F = PAPER.fc_Hz - 2e6 + (np.arange(4000) + 0.5) * 1e3
LOSSY = ChainLosses(A1=0.96, A2=0.94, A3=0.9, A_cir=0.96)


@pytest.mark.parametrize("t_K", [0.012, 0.12, 0.5, 4.0])
@pytest.mark.parametrize("a", [0.999, 0.96, 0.8, 0.7, 0.3, 0.05, 0.005])
def test_uniform_cable_gives_one_minus_a_times_t_tilde(t_K: float, a: float) -> None:
    f = np.array([4e9, 5e9, 6e9])
    got = cable_noise_temperature(t_K, t_K, a, f)
    np.testing.assert_allclose(got, (1 - a) * effective_temperature(t_K, f), rtol=1e-9, atol=0)


def test_lossless_cable_adds_nothing_and_opaque_cable_is_its_far_end() -> None:
    f = 5e9
    assert cable_noise_temperature(0.012, 0.9, 1.0, f) == 0.0
    far = effective_temperature(0.9, f)
    assert cable_noise_temperature(0.012, 0.9, 0.0, f) == pytest.approx(far, rel=1e-12)
    # A -> 0: the noise of a thinner and thinner layer next to the far end.
    values = [float(cable_noise_temperature(0.012, 0.9, a, f)) for a in (1e-4, 1e-12, 1e-40)]
    assert values[0] < values[1] < values[2] < far
    assert values[2] == pytest.approx(far, rel=2e-2)


def test_cable_integral_matches_brute_force_and_direction_matters() -> None:
    f, a = 5e9, 0.7
    lam = -np.log(a)
    x = np.linspace(0.0, 1.0, 400001)
    for near, far in ((0.012, 0.9), (0.9, 0.012)):
        integrand = effective_temperature(near + x * (far - near), f) * lam * np.exp(-lam * (1 - x))
        expected = np.trapezoid(integrand, x)
        assert cable_noise_temperature(near, far, a, f) == pytest.approx(expected, rel=1e-8)
    forward = cable_noise_temperature(0.012, 0.9, a, f)
    backward = cable_noise_temperature(0.9, 0.012, a, f)
    assert forward > backward  # the far end weighs more (Fig. 2: T~1* follows T_cir)


def test_fig2_curves_rise_with_attenuation() -> None:
    t_cir = np.linspace(0.012, 1.0, 20)
    curves = [cable_noise_temperature(0.012, t_cir, a, 5e9) for a in (1.0, 0.8, 0.7, 0.0)]
    assert np.all(curves[0] == 0)
    assert np.all(curves[1] < curves[2]) and np.all(curves[2] < curves[3])
    np.testing.assert_allclose(curves[3], effective_temperature(t_cir, 5e9), rtol=1e-12)


def test_lossless_chain_is_eqs_1_and_4_exactly() -> None:
    temps = Temperatures(0.342, 0.078, 0.023)
    got = received_spectrum(F, PAPER, temps, ChainLosses.lossless(), 93.07, 5.28, 1e3)
    emitted = lossless_emitted_power(F, PAPER, temps.att_K, temps.cav_K, 1e3)
    expected = received_power(emitted, 1e3, 10 ** (93.07 / 10), 5.28)
    np.testing.assert_array_equal(got, expected)


def test_flat_when_attenuator_and_cavity_agree_and_lossless() -> None:
    temps = Temperatures(0.34, 0.34, 0.03)
    p = received_spectrum(F, PAPER, temps, ChainLosses.lossless(), 93.07, 5.28, 1e3)
    np.testing.assert_allclose(p, p.mean(), rtol=1e-3)  # only T~'s slope over the span
    flat_t = Temperatures(0.34, 0.34, 0.34)
    uniform = received_spectrum(F, PAPER, flat_t, LOSSY, 93.07, 5.28, 1e3)
    wing = np.abs(F - PAPER.fc_Hz) > 1.5e6
    slope = np.polyfit(F[wing], uniform[wing], 1)
    assert np.max(np.abs(uniform / np.polyval(slope, F) - 1)) < 1e-9  # all parts at one T


def test_cold_mixing_plate_turns_equal_temperatures_into_a_peak() -> None:
    """The paper's green curve: T_att ~ T_c but colder circulator lowers T_in -> a peak."""
    temps = Temperatures(0.336, 0.338, 0.030)
    p = received_spectrum(F, PAPER, temps, LOSSY, 93.07, 5.28, 1e3)
    on = np.argmin(np.abs(F - PAPER.fc_Hz))
    assert p[on] > 1.002 * p[0]


def test_eq6_and_eq9_decompositions() -> None:
    temps = Temperatures(0.147, 0.910, 0.063)
    a_in, t_hat_in = input_noise(F, temps, LOSSY)
    assert a_in == pytest.approx(0.94 * 0.96 * 0.96)
    t_in = incoming_temperature(F, temps, LOSSY)
    np.testing.assert_allclose(t_in, a_in * effective_temperature(0.147, F) + t_hat_in)
    a_r, t_hat_r = output_noise(F, temps, LOSSY)
    assert a_r == pytest.approx(0.9 * 0.96 * 0.94)
    gain_eff, ta_eff = effective_chain(temps, LOSSY, 95.0, 4.0, F)
    assert gain_eff == pytest.approx(95.0 + 10 * np.log10(a_r))
    p_c = emitted_power(F, PAPER, t_in, temps.cav_K, 1e3)
    expected = 10 ** (gain_eff / 10) * (p_c + K_B * ta_eff * 1e3)
    got = received_spectrum(F, PAPER, temps, LOSSY, 95.0, 4.0, 1e3)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_rejects_unphysical_losses() -> None:
    with pytest.raises(ValueError, match="A_cir"):
        ChainLosses(1.0, 1.0, 1.0, 1.2)
    with pytest.raises(ValueError, match="transmission"):
        cable_noise_temperature(0.1, 0.2, -0.1, 5e9)
