"""The 163Ho spectrum analysis (`acquisition/pipelines/ho163_spectrum.py`, the code path the
`ho163` pipeline runs) on event lists drawn from the simulator's own 163Ho source
(`sim_instruments/ho163_source.py`: Poisson decays of `ho163_energies` at the injected Q and
m_nu; decays closer than tau_R recorded as one event of E1 + E2 (+ E3), those the pulse shape
resolves set aside with their neighbours, each energy smeared by a Gaussian resolution).

Checked against the injection: Q and m_nu^2 within their stated uncertainties (the pair
inside the joint 95 % likelihood region, Delta <= 5.99; m_nu^2 inside the Delta = 4 (95 %)
profile-likelihood interval the pipeline quotes), the measured unresolved pile-up fraction
within 2 sigma of the event list's truth and of A tau_R's expectation 1 - exp(-A tau_R).
Two worlds: m_nu = 200 eV at the HOLMES 300 Bq, 3 us and 4.5 eV (4 x 10^6 decays:
m_nu^2 = 40 000 eV^2 stands ~5 sigma from zero), and m_nu = 0 at other numbers (Q 2800 eV,
1000 Bq, 4 us, 3 eV; 2 x 10^6 decays).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from cryodaq.acquisition.pipelines.ho163_options import SPECTRUM_DEFAULTS
from cryodaq.acquisition.pipelines.ho163_spectrum import (
    SpectrumInput,
    SpectrumResult,
    analyze_spectrum,
)
from cryodaq.analysis.ho163 import Q_EV, ho163_bin_probabilities, ho163_density, ho163_energies
from cryodaq.analysis.ho163_fit import Resolution, deviance_at, exposure_for, m90
from cryodaq.analysis.pileup import pair_density, pileup_density
from cryodaq.sim_instruments.ho163_source import EventList, Ho163Source, record

ISOLATION_S = 50e-6


def _run(source: Ho163Source, decays: float, tau_s: float, fwhm_eV: float,
         seed: int) -> tuple[SpectrumResult, EventList]:
    rng = np.random.default_rng(seed)
    duration = decays / source.activity_Bq
    times, energies = source.decays(duration, rng)
    events = record(times, energies, tau_s, ISOLATION_S, fwhm_eV, rng)
    opts = {**SPECTRUM_DEFAULTS, "q_guess_eV": Q_EV}
    inp = SpectrumInput(events.energy_eV, duration, Resolution((fwhm_eV,), (1.0,)),
                        source.activity_Bq, tau_s)
    return analyze_spectrum(inp, opts), events


def _check(res: SpectrumResult, events: EventList, source: Ho163Source, tau_s: float
           ) -> dict[str, Any]:
    out = res.numbers
    # The injected (Q, m^2) inside the joint 95 % region of the likelihood (Q and m^2 trade
    # along a valley, so a 1-D error on each alone is not the test), and m^2 inside the 95 %
    # profile interval the pipeline quotes.
    truth = deviance_at(res.model, res.counts, source.q_eV, source.m_nu_eV**2)
    assert truth - res.fit.cash < 5.99, (truth - res.fit.cash, out)
    lo, hi = out["m_nu_sq_95_eV2"]
    assert lo <= source.m_nu_eV**2 <= hi, out
    p = out["pileup"]
    assert abs(p["fraction"] - events.pileup_fraction) < 2.0 * p["fraction_err"], (p, events)
    expected = 1.0 - math.exp(-source.activity_Bq * tau_s)  # a decay within tau_R of the next
    assert abs(p["fraction"] - expected) < 2.0 * p["fraction_err"] + 3.0 * math.sqrt(
        expected / out["events"]), p
    assert p["a_tau_R"] == pytest.approx(source.activity_Bq * tau_s)
    assert out["events"] == events.energy_eV.size
    return out


def test_large_mass_is_measured_at_holmes_numbers() -> None:
    src = Ho163Source(300.0, Q_EV, 200.0)
    out = _check(*_run(src, 4e6, 3e-6, 4.5, seed=21), src, 3e-6)
    lo, hi = out["m_nu_sq_95_eV2"]
    assert lo > 0  # resolved: zero mass excluded at 95 %
    assert out["m_nu_eV"] == pytest.approx(200.0, abs=60.0)


def test_zero_mass_and_the_sensitivity_at_other_numbers() -> None:
    src = Ho163Source(1000.0, 2800.0, 0.0)
    out = _check(*_run(src, 2e6, 4e-6, 3.0, seed=5), src, 4e-6)
    s = out["sensitivity"]
    # The reach and the exposure for 2 eV follow from sigma(m^2) at zero, ~ 1/sqrt(exposure).
    assert s["m_nu_90_eV"] == pytest.approx(m90(s["m_nu_sq_sigma_at_zero_eV2"]))
    years = out["exposure_detector_years"]
    assert s["exposure_for_target_detector_years"] == pytest.approx(
        exposure_for(2.0, s["m_nu_sq_sigma_at_zero_eV2"], years))
    assert s["exposure_for_target_detector_years"] > 1e3 * years
    # Statistical reach of a 2 x 10^6-decay exposure: tens to a few hundred eV.
    assert 30.0 < s["m_nu_90_eV"] < 400.0


# -- the models the analysis and the simulator share ------------------------------------------


def test_energies_follow_the_spectrum_with_its_mass() -> None:
    """Inverse-transform draws at Q 2800 eV, m_nu 300 eV against the integrated spectrum, and
    nothing beyond Q - m_nu."""
    rng = np.random.default_rng(3)
    e = ho163_energies(rng.uniform(size=400_000), 2800.0, 300.0)
    assert e.max() < 2500.0
    edges = np.array([0, 300, 380, 450, 1700, 1900, 2000, 2100, 2300, 2500.0])
    expected = 400_000 * ho163_bin_probabilities(edges, 2800.0, 300.0)
    counts = np.histogram(e, edges)[0]
    assert np.all(np.abs(counts - expected) < 4.0 * np.sqrt(expected) + 2), (counts, expected)
    assert ho163_density(np.array([2499.0]), 2800.0, 300.0)[0] > 0


def test_pileup_spectrum_is_the_self_convolution() -> None:
    """Sums of two independent draws against `pair_density`; triples in the share f."""
    rng = np.random.default_rng(4)
    n = 600_000
    s = ho163_energies(rng.uniform(size=n)) + ho163_energies(rng.uniform(size=n))
    grid, dens = pair_density(Q_EV)
    for lo, hi in ((0, 1700), (2400, 2520), (Q_EV, 2 * Q_EV)):
        sel = (grid >= lo) & (grid < hi)
        assert np.mean((s >= lo) & (s < hi)) == pytest.approx(dens[sel].sum() * 0.5, abs=0.002)
    grid3, both = pileup_density(Q_EV, fraction=0.1)
    assert both.sum() * 0.5 == pytest.approx(1.0)
    mean = float(np.mean(ho163_energies(rng.uniform(size=n))))  # pairs 2x it, triples 3x
    assert np.sum(grid3 * both) * 0.5 == pytest.approx((2 + 0.1 * 3) / 1.1 * mean, rel=0.01)


def test_source_parameters_name_their_range() -> None:
    with pytest.raises(ValueError, match=r"world\.detectors\.a\.ho163_m_nu_eV must be in "
                                         r"0 \.\. 1000"):
        Ho163Source.from_params({"ho163_m_nu_eV": -1}, "world.detectors.a")
    src = Ho163Source.from_params({"ho163_activity_Bq": 300, "ho163_q_eV": 2800,
                                   "ho163_m_nu_eV": 50}, "w")
    assert (src.activity_Bq, src.q_eV, src.m_nu_eV) == (300.0, 2800.0, 50.0)
    assert src.energy(0.999999999) < 2750.0
