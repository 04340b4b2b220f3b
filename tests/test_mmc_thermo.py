"""The thermodynamic MMC model (`cryodaq.analysis.mmc_thermo`, REFERENCE section 9) against
independent calculations: heat capacities and magnetisation, the two-body system against a
direct integration of its equations, the thermodynamic noise against REFERENCE's S_Ez, the
nonlinear pulse height against the nonlinear equations integrated in time; and the 241Am
source of the simulator (xraydb lines and Au absorption)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from cryodaq.analysis import mmc_thermo as m
from cryodaq.sim_instruments.mmc_array import MmcArray, mmc_array
from cryodaq.sim_instruments.mmc_background import AM241
from cryodaq.sim_instruments.world import World
from cryodaq.sim_instruments.xray_sources import AM241_GAMMAS, AM241_L_GROUPS, au_absorption

#: A non-default design: Au:Er, thinner absorber, other current and concentration.
DESIGN = m.MmcDesign(absorber_thickness_m=12e-6, sensor_thickness_m=2e-6, er_ppm=650.0,
                     host="Au", current_A=55e-3, pitch_m=8e-6, flux_transfer=0.02)


def test_heat_capacities_and_magnetisation_follow_the_spin_model() -> None:
    t = 0.017
    c1, c2 = m.heat_capacities(DESIGN, t)
    n_au = (500e-6) ** 2 * 12e-6 / 10.21e-6
    assert c1 == pytest.approx(0.729e-3 * n_au * t, rel=1e-12)
    # C_z = -B dm/dT (the Zeeman energy is the spins' energy), by finite differences
    dm = (m.moment(DESIGN, t + 1e-8) - m.moment(DESIGN, t - 1e-8)) / 2e-8
    cz = m.spin_heat_capacity(DESIGN, t)
    assert -m.field_T(DESIGN) * dm == pytest.approx(cz, rel=1e-6)
    assert c2 == pytest.approx(cz + 0.729e-3 * (300e-6) ** 2 * 2e-6 / 10.21e-6 * t, rel=1e-12)
    # Schottky anomaly without interactions: maximum 0.4392 N k_B at y = 1.1997
    free = replace(DESIGN, weiss_K_per_ppm=0.0)
    n = m.spin_count(free)
    y_peak = 1.1997
    t_peak = m.G_ER * m.MU_B / 2 * m.field_T(free) / (m.K_B * y_peak)
    assert m.spin_heat_capacity(free, t_peak) / (n * m.K_B) == pytest.approx(0.4392, abs=1e-4)
    # full polarisation at T -> 0: N g mu_B / 2
    assert m.moment(free, 1e-5) == pytest.approx(n * m.G_ER * m.MU_B / 2, rel=1e-9)
    # the interaction (Weiss temperature) lowers dm/dT at this temperature
    assert m.spin_heat_capacity(DESIGN, t) < m.spin_heat_capacity(free, t)


def test_two_body_pulse_is_the_integrated_heat_flow() -> None:
    """Energy in the absorber, then in the sensor: the closed form against the linear
    equations integrated numerically."""
    t0 = 0.021
    body = m.two_body(DESIGN, t0)
    c1, c2, gs, gb = (float(x) for x in (body.c1, body.c2, body.g_s, body.g_b))

    def rhs(_t: float, x: np.ndarray) -> np.ndarray:
        return np.array([-gs * (x[0] - x[1]) / c1, (gs * (x[0] - x[1]) - gb * x[1]) / c2])

    times = np.array([2e-6, 10e-6, 40e-6, 300e-6, 2e-3, 8e-3])
    energy = 1e-15
    tr, td = float(body.rise_s), float(body.decay_s)
    absorbed = solve_ivp(rhs, (0, 9e-3), [energy / c1, 0.0], t_eval=times, rtol=1e-10,
                         atol=1e-20, method="LSODA").y[1]
    a = float(body.absorber_response())
    np.testing.assert_allclose(absorbed, energy * a * (np.exp(-times / td) - np.exp(-times / tr)),
                               rtol=1e-6)
    in_sensor = solve_ivp(rhs, (0, 9e-3), [0.0, energy / c2], t_eval=times, rtol=1e-10,
                          atol=1e-20, method="LSODA").y[1]
    bd, br = (float(x) for x in body.sensor_response())
    np.testing.assert_allclose(in_sensor, energy * (bd * np.exp(-times / td)
                                                    + br * np.exp(-times / tr)), rtol=1e-6)
    assert bd + br == pytest.approx(1.0 / c2)


def test_thermal_noise_is_reference_s_ez_for_the_canonical_model() -> None:
    """Electrons (bath-coupled) and spins: the spins' energy fluctuations C_z^2 S_T2 against
    REFERENCE section 9's S_Ez, and the optimal-filter limit against its approximation."""
    t = 0.02
    ce, cz = 1.0e-11, 1.2e-11
    body = m.TwoBody(np.float64(ce), np.float64(cz), np.float64(1e-6), np.float64(0.0),
                     np.float64(7e-9))
    tau0, tau1 = float(body.rise_s), float(body.decay_s)
    beta = cz / (ce + cz)
    f = np.geomspace(0.1, 1e6, 300)
    ld, lr = body.noise_levels(t)
    s_t2 = ld / (1 + (2 * np.pi * f * tau1) ** 2) + lr / (1 + (2 * np.pi * f * tau0) ** 2)
    ref = m.K_B * cz * t**2 * ((1 - beta) * 4 * tau0 / (1 + (2 * np.pi * f * tau0) ** 2)
                               + beta * 4 * tau1 / (1 + (2 * np.pi * f * tau1) ** 2))
    # the reference neglects terms of order tau0 / tau1 (here 2e-3)
    assert tau0 / tau1 < 2e-3
    np.testing.assert_allclose(cz**2 * s_t2, ref, rtol=5 * tau0 / tau1)
    # resolution: pulse per unit energy in the spins' energy, the thermal noise alone
    a = float(body.absorber_response())
    w = 2 * np.pi * f
    pulse = np.abs(a * cz * (1 / tau0 - 1 / tau1) / ((1j * w + 1 / tau1) * (1j * w + 1 / tau0)))
    integrand = 4 * pulse**2 / (cz**2 * s_t2)
    fwhm = m.FWHM_PER_SIGMA / math.sqrt(np.sum((integrand[1:] + integrand[:-1]) * np.diff(f)) / 2)
    approx = m.FWHM_PER_SIGMA * math.sqrt(4 * m.K_B * ce * t**2) * (
        tau0 / (beta * (1 - beta) * tau1)) ** 0.25
    assert fwhm == pytest.approx(approx, rel=0.1)


def test_nonlinear_height_follows_the_nonlinear_equations() -> None:
    """The peak of T_2 integrated with C(T), G(T) and read through m(T), against the model's
    height (energy conservation at the peak): the deviation from linear agrees."""
    t0 = 0.016
    d = DESIGN

    def rhs(_t: float, x: np.ndarray) -> np.ndarray:
        c1, c2 = m.heat_capacities(d, x)
        gs, _ = m.conductances(d, (x[0] + x[1]) / 2)  # a link between the two temperatures
        _, gb = m.conductances(d, (x[1] + t0) / 2)
        p = gs * (x[0] - x[1])
        return np.array([-p / c1[0], (p - gb * (x[1] - t0)) / c2[1]])

    lin = m.response(d, t0)
    for energy in (1e3, 26.3e3, 59.5e3):
        gamma = m.heat_capacities(d, 1.0)[0]
        t_start = math.sqrt(t0**2 + 2 * energy * m.E_CHARGE / gamma)  # the absorber alone
        tp = 5 * float(lin.rise_s) * math.log(float(lin.decay_s / lin.rise_s))
        sol = solve_ivp(lambda s, x: rhs(s, x), (0, tp), [t_start, t0], method="LSODA",
                        rtol=1e-9, atol=1e-12, dense_output=True)
        grid = np.linspace(0, tp, 4000)
        flux = m.meander_coupling(d) * (m.moment(d, t0) - m.moment(d, sol.sol(grid)[1]))
        peak = float(flux.max())
        model = float(m.peak_height_phi0(d, t0, energy))
        linear = float(lin.phi0_per_eV) * energy
        assert model == pytest.approx(peak, rel=1e-3), energy
        if energy > 2e4:
            assert 1 - peak / linear == pytest.approx(1 - model / linear, rel=0.1), energy
            assert peak < linear


def test_am241_lines_and_absorption_come_from_xraydb() -> None:
    e = {round(ln.energy_eV): ln.weight for ln in AM241}
    assert e[13946] > e[13761] > 0 and 17751 in e and 20784 in e  # Np La1, La2, Lb1, Lg1
    # the groups sum to the nuclear-data totals they were solved from
    for group, lo, hi in (("La", 13.5e3, 14.1e3), ("Lb", 16.0e3, 18.1e3),
                          ("Lg", 20.7e3, 21.6e3)):
        total = sum(w for k, w in e.items() if lo < k < hi)
        assert total == pytest.approx(AM241_L_GROUPS[group], rel=1e-9)
    for energy, w in AM241_GAMMAS:
        assert e[round(energy)] == w
    # 59.5 keV mostly passes 20 um of Au; Mn Ka is stopped
    p = au_absorption(np.array([5898.0, 59540.9]), 20e-6)
    assert p[0] > 0.999 and 0.1 < p[1] < 0.2
    assert au_absorption(59540.9, 40e-6)[0] == pytest.approx(1 - (1 - p[1]) ** 2, rel=1e-9)


def _counts(thickness_um: float) -> tuple[int, int]:
    arr: MmcArray = mmc_array(World({
        "seed": 7, "thermal": {"plates": {"detector": {"initial_K": 0.02}}},
        "detector": {"source": "am241", "absorber_thickness_um": thickness_um},
        "sources": {"am241": {"rate_per_pixel_hz": 20.0}}, "background": {"enabled": False}}))
    arr.generate_until(30.0)
    energy = arr.truth()["energy_eV"]
    return int(np.sum(np.abs(energy - 59540.9) < 1)), int(np.sum(np.abs(energy - 17751) < 1))


def test_simulated_am241_spectrum_follows_the_absorber_thickness() -> None:
    """Per photon in front: gammas absorbed as the thickness says, relative to Np Lb1."""
    lb1_per_decay = {round(ln.energy_eV): ln.weight for ln in AM241}[17751]
    for thickness in (8.0, 40.0):
        gamma, lb1 = _counts(thickness)
        p = au_absorption(np.array([59540.9, 17751.0]), thickness * 1e-6)
        expected = 35.92 * p[0] / (lb1_per_decay * p[1])
        ratio = gamma / lb1
        err = ratio * math.sqrt(1 / gamma + 1 / lb1)
        assert ratio == pytest.approx(expected, abs=4 * err), thickness
