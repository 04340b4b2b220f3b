"""The thermodynamic MMC model (`cryodaq.analysis.mmc_thermo`, REFERENCE section 9) against
independent calculations: heat capacities and magnetisation, the two-body system against a
direct integration of its equations, the thermodynamic noise against REFERENCE's S_Ez, the
nonlinear pulse height against the nonlinear equations integrated in time; and the 241Am
source the simulator shares with the analysis (xraydb lines and Au photoabsorption)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import xraydb
from scipy.integrate import solve_ivp

from cryodaq.analysis import mmc_thermo as m
from cryodaq.analysis.am241_lines import GAMMAS, L_GROUPS, am241_emission, au_photoabsorption
from cryodaq.analysis.line_fit import Lorentzian
from cryodaq.sim_instruments.mmc_array import MmcArray, mmc_array
from cryodaq.sim_instruments.mmc_background import AM241, Source
from cryodaq.sim_instruments.world import World

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
    """One set of 241Am data for the analysis and the simulator: xraydb energies and
    core-hole widths, group totals of the evaluation, Au photoabsorption from xraydb."""
    emitted = {ln.name: ln for ln in am241_emission()}
    for name, line in xraydb.xray_lines("Np").items():
        if line.initial_level in ("L1", "L2", "L3"):
            ln = emitted[f"Np{name.replace(',', '_')}"]
            assert ln.energy_eV == line.energy, name
    la1 = emitted["NpLa1"]
    assert la1.per_100_decays > emitted["NpLa2"].per_100_decays > 0
    assert la1.fwhm_eV == pytest.approx(xraydb.core_width("Np", "L3")
                                        + xraydb.core_width("Np", "M5"), rel=1e-12)
    # the groups sum to the evaluation's totals they were fitted to
    for total, names in L_GROUPS:
        group = sum(emitted[f"Np{n.replace(',', '_')}"].per_100_decays for n in names)
        assert group == pytest.approx(total, rel=1e-9)
    for name, energy, _, per_100 in GAMMAS:
        assert (emitted[name].energy_eV, emitted[name].fwhm_eV) == (energy, 0.0)
        assert emitted[name].per_100_decays == per_100
    # the simulator's source is these lines: natural Lorentzians, the gammas sharp
    assert len(AM241) == len(emitted)
    for sim, ln in zip(AM241, am241_emission(), strict=True):
        assert (sim.weight, sim.energy_eV) == (ln.per_100_decays, ln.energy_eV)
        if ln.fwhm_eV > 0:
            assert sim.shape == (Lorentzian(ln.energy_eV, ln.fwhm_eV, 1.0),)
        else:
            assert sim.shape == ()
    # ... and it draws them with the natural width: median |E - E0| of a Lorentzian is its
    # HWHM (0.99 HWHM with the tails cut at 500 eV); 2e4 draws: +-1.1 % (1 sigma)
    lb1 = next(s for s in AM241 if s.energy_eV == emitted["NpLb1"].energy_eV)
    e, _ = Source("lb1", 1.0, (lb1,)).sample(np.random.default_rng(5), 20_000)
    assert np.median(np.abs(e - lb1.energy_eV)) == pytest.approx(0.99 * lb1.shape[0].fwhm_eV / 2,
                                                               rel=0.05)
    # photoabsorption: xraydb's photo / total attenuation of Au; 59.5 keV mostly passes
    # 20 um of Au, Mn Ka is stopped (1.6 % scatters)
    energy = np.array([5898.0, 59540.9])
    photo = xraydb.material_mu("Au", energy, kind="photo")
    total = xraydb.material_mu("Au", energy, kind="total")
    p = au_photoabsorption(energy, 20.0)
    np.testing.assert_allclose(p, photo / total * (1 - np.exp(-total * 20e-4)), rtol=1e-9)
    assert p[0] > 0.98 and 0.1 < p[1] < 0.2
    # twice the thickness: the photons that pass the first layer, (1 - p / r), pass the
    # second with the same probability (r = photo / total, the photoabsorbed share)
    r = photo[1] / total[1]
    assert au_photoabsorption(59540.9, 40.0)[0] == pytest.approx(
        r * (1 - (1 - p[1] / r) ** 2), rel=1e-9)


#: Window of the Np Lb group and Ln (15.86-17.99 keV; every line's tails, cut at +-500 eV,
#: stay inside, and no other line's reach it).
LB_WINDOW_EV = (15.3e3, 18.6e3)


def _counts(thickness_um: float) -> tuple[int, int]:
    arr: MmcArray = mmc_array(World({
        "seed": 7, "thermal": {"plates": {"detector": {"initial_K": 0.02}}},
        "detector": {"source": "am241", "absorber_thickness_um": thickness_um},
        "sources": {"am241": {"rate_per_pixel_hz": 20.0}}, "background": {"enabled": False}}))
    arr.generate_until(30.0)
    energy = arr.truth()["energy_eV"]
    lo, hi = LB_WINDOW_EV
    return int(np.sum(np.abs(energy - 59540.9) < 1)), int(np.sum((energy > lo) & (energy < hi)))


def test_simulated_am241_spectrum_follows_the_absorber_thickness() -> None:
    """Per photon in front: gammas absorbed as the thickness says, relative to the Np Lb
    group (and Ln)."""
    lo, hi = LB_WINDOW_EV
    lb = [ln for ln in am241_emission() if lo < ln.energy_eV < hi]
    for thickness in (8.0, 40.0):
        gamma, lb_counts = _counts(thickness)
        p_lb = au_photoabsorption(np.array([ln.energy_eV for ln in lb]), thickness)
        expected = 35.92 * au_photoabsorption(59540.9, thickness)[0] / sum(
            ln.per_100_decays * p for ln, p in zip(lb, p_lb, strict=True))
        ratio = gamma / lb_counts
        err = ratio * math.sqrt(1 / gamma + 1 / lb_counts)
        assert ratio == pytest.approx(expected, abs=4 * err), thickness
