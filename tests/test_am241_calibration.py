"""The multi-line energy calibration (`cryodaq.analysis.multiline_calibration`) on the lines of
55Fe and 241Am (`cryodaq.analysis.calibration_sources`: Np L lines from xraydb, the DDEP
gammas): synthetic amplitudes drawn from the lines through a known response recover it within
the calibration's stated uncertainty; and a short simulated maXs30 run with both sources in
front through the `mmc` pipeline, whose residuals must agree with the stated uncertainties.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cryodaq.analysis import mmc_thermo as thermo
from cryodaq.analysis.am241_lines import am241_lines, au_photoabsorption
from cryodaq.analysis.calibration_sources import fe55_lines, source_lines
from cryodaq.analysis.line_calibration import KnownLine
from cryodaq.analysis.multiline_calibration import calibrate_lines, fit_polynomial

ROOT = Path(__file__).resolve().parents[1]


def draw(rng: np.random.Generator, lines: Sequence[KnownLine], n: int) -> np.ndarray:
    """`n` photon energies from `lines` at their expected rates, natural shapes included
    (Lorentzian tails cut at +-500 eV, as the simulator cuts them)."""
    p = np.array([ln.intensity for ln in lines])
    which = rng.choice(len(lines), n, p=p / p.sum())
    out = np.empty(n)
    for i, ln in enumerate(lines):
        sel = np.flatnonzero(which == i)
        if not ln.shape:
            out[sel] = ln.energy_eV
            continue
        w = np.array([c.weight for c in ln.shape])
        k = rng.choice(w.size, sel.size, p=w / w.sum())
        half = np.array([c.fwhm_eV for c in ln.shape])[k] / 2.0
        x = half * np.tan(np.pi * (rng.random(sel.size) - 0.5))
        out[sel] = np.array([c.energy_eV for c in ln.shape])[k] + np.clip(x, -500.0, 500.0)
    return out


def amplitudes(energies: np.ndarray, coef: Sequence[float]) -> np.ndarray:
    """A with E = sum_k coef[k] A^k (increasing over the range), by interpolation."""
    a_max = 2.0 * energies.max() / coef[1]
    grid = np.linspace(0.0, a_max, 400_001)
    return np.interp(energies, np.polynomial.polynomial.polyval(grid, coef), grid)


def test_line_list_from_xraydb_and_the_evaluation() -> None:
    lines = {ln.name: ln for ln in am241_lines(20.0)}
    # Np La1, Lb1, Lg1 (xraydb, to 1 eV) and the DDEP gammas; xraydb's Lb2,15 stands for two
    # transitions to N4 and N5 (45 eV apart): its energy is uncertain by 45 / sqrt(12) eV.
    assert lines["NpLa1"].energy_eV == pytest.approx(13946.0, abs=2.0)
    assert lines["NpLb1"].energy_eV == pytest.approx(17751.0, abs=2.0)
    assert lines["Am241g59"].energy_eV == 59540.9 and lines["Am241g26"].energy_eV == 26344.6
    assert lines["NpLa1"].energy_err_eV == pytest.approx(1 / np.sqrt(12))
    assert 10.0 < lines["NpLb2_15"].energy_err_eV < 16.0
    # The natural widths are the two core holes' (Np L3 ~7.6 eV + M5 ~4 eV for La1).
    assert 9.0 < lines["NpLa1"].shape[0].fwhm_eV < 14.0
    # 20 um Au photoabsorbs ~98 % of the L photons (2 % scatter) and ~16 % of the 59.5 keV
    # gammas (Elam mu/rho).
    absorbed = au_photoabsorption(13946.0, 20.0)[0]
    assert 0.97 < absorbed < 0.99
    assert 0.12 < au_photoabsorption(59540.9, 20.0)[0] < 0.2
    thick = {ln.name: ln for ln in am241_lines(100.0)}
    assert thick["Am241g59"].intensity > 3 * lines["Am241g59"].intensity
    # Group sums reproduce the evaluation's La (13.1 per 100 decays), times the absorption.
    la = lines["NpLa1"].intensity + lines["NpLa2"].intensity
    assert la == pytest.approx(13.1 * absorbed, rel=0.01)
    with pytest.raises(ValueError, match="fe55, am241"):
        source_lines(["co57"])


@pytest.mark.parametrize(
    "nl59, cubic, fwhm, seed",
    [(0.010, 0.003, 8.0, 3), (-0.004, 0.0, 12.0, 4)],  # bends down / up, two resolutions
)
def test_recovers_a_known_nonlinear_response(nl59: float, cubic: float, fwhm: float,
                                             seed: int) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    lines = source_lines(["fe55", "am241"])
    e = np.concatenate([draw(rng, lines[:2], 25000), draw(rng, lines[2:], 25000)])
    e = e + rng.normal(0.0, fwhm / 2.3548, e.size)
    e = np.concatenate([e, rng.uniform(1000.0, 65000.0, 3000)])  # a flat background
    # E = g A (1 + b A + c A^2): E / (c1 A) - 1 = nl59 at 59.5 keV, `cubic` of it cubic.
    g, a59 = 2.0e5, 59540.9 / 2.0e5
    coef = [0.0, g, g * (nl59 - cubic) / a59, g * cubic / a59**2]
    res = calibrate_lines(amplitudes(e, coef), lines, fwhm)
    cal = res.calibration
    # Every line with >= ~150 expected events is found; a cubic through them.
    assert {"MnKa", "MnKb", "NpLa1", "NpLa2", "NpLb1", "NpLb3", "NpLb4", "NpLg1", "Am241g26",
            "Am241g59"} <= set(cal.names), res.missing  # fmt: skip
    assert cal.degree == 3 and cal.coefficients[0] == 0.0
    # The residuals agree with the stated errors: chi2 within 4 sigma of its dof.
    assert abs(cal.chi2 - cal.dof) < 4.0 * np.sqrt(2.0 * cal.dof), (cal.chi2, cal.dof)
    # The true energy of the calibrated amplitude is within 3 sigma of the band everywhere.
    grid = np.linspace(3000.0, 60000.0, 58)
    a = cal.amplitude(grid)
    truth = np.polynomial.polynomial.polyval(a, coef)
    assert np.all(np.abs(cal.energy(a) - truth) <= 3.0 * cal.energy_err(a) + 1e-3)
    assert np.all(cal.band(grid) < 1.0)  # and it is a sub-eV calibration
    # The measured nonlinearity at 59.5 keV and at Mn Ka, within 3 sigma of the truth.
    for energy in (59540.9, 5898.853):
        value, err = cal.nonlinearity(energy)
        a_e = cal.amplitude(energy)
        true = np.polynomial.polynomial.polyval(a_e, coef) / (g * a_e) - 1.0
        assert value == pytest.approx(true, abs=3.0 * err), energy
    assert cal.nonlinearity(59540.9)[1] < 0.1 * abs(nl59)
    # The line fits measure the injected resolution (3 sigma).
    for name in ("MnKa", "NpLb1", "Am241g59"):
        fit = res.line(name).fit
        assert fit.fwhm == pytest.approx(fwhm, abs=3.0 * fit.fwhm_err + 0.05), name


def test_am241_alone_and_the_two_line_case() -> None:
    rng = np.random.default_rng(5)
    lines = am241_lines()
    e = draw(rng, lines, 30000) + rng.normal(0.0, 9.0 / 2.3548, 30000)
    coef = [0.0, 1.0e5, -300.0]
    res = calibrate_lines(amplitudes(e, coef), lines, 9.0)
    # Anchored on the dominant peak without knowing which line it is (La1 and Lb1 compete).
    assert {"NpLa1", "NpLb1", "NpLg1", "Am241g59"} <= set(res.calibration.names)
    a = res.calibration.amplitude(np.array([13946.0, 59540.9]))
    truth = np.polynomial.polynomial.polyval(a, coef)
    assert np.all(np.abs(res.calibration.energy(a) - truth)
                  <= 3.0 * res.calibration.energy_err(a))  # fmt: skip
    # Mn Ka and Kb only: the exact quadratic through both, its band the lines' errors there.
    e = draw(rng, fe55_lines(), 20000) + rng.normal(0.0, 7.0 / 2.3548, 20000)
    two = calibrate_lines(amplitudes(e, coef), fe55_lines(), 7.0)
    cal = two.calibration
    assert cal.names == ("MnKa", "MnKb") and cal.degree == 2 and cal.dof == 0
    np.testing.assert_allclose(cal.residuals_eV, 0.0, atol=1e-6)
    np.testing.assert_allclose(cal.energy_err(cal.amplitudes), cal.errors_eV, rtol=1e-6)


def test_polynomial_fit_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="degree must be in 1..2"):
        fit_polynomial(np.ones(2), np.ones(2), np.ones(2), ["a", "b"], degree=3)
    with pytest.raises(ValueError, match="errors must be > 0"):
        fit_polynomial(np.ones(2), np.ones(2), np.zeros(2), ["a", "b"])


# --- a short simulated run through the `mmc` pipeline --------------------------------------

LENGTH, PRE = 512, 128
#: Energies between the calibration lines (Np L 14-21 keV, 26.3 and 59.5 keV gammas), where
#: the calibration is an interpolation: its nonlinearity there must be the detector model's.
HELD_OUT_EV = (10000.0, 23000.0, 40000.0, 50000.0)
THICK_UM = 50.0
MATCH_S = 20e-6


def simulate(tmp: Path, seed: int, channels: list[int], seconds: float) -> dict[str, Any]:
    """One acquisition of `channels` of ADC 1 with 55Fe and 241Am in front, then the `mmc`
    pipeline. As in tests/test_mmc_pipeline.py the pulses are faster than maXs30's (a
    sensor-bath link of 8.5 instead of 85.4 mOhm: decay 0.3 ms; records of 512 samples) and
    the sources stronger, so that ~15 s of stream hold a few tens of 59.5 keV photons per
    pixel (the simulator costs ~1 s per stream second); the absorbers are 50 um thick instead
    of 20 (2.3 times the 59.5 keV absorption)."""
    from cryodaq.acquisition.pipelines import PipelineInput, get_pipeline
    from cryodaq.acquisition.rig import Rig, load_rig
    from cryodaq.acquisition.store.reader import RunReader
    from cryodaq.acquisition.store.writer import RunStore
    from cryodaq.acquisition.stream.engine import Acquisition
    from cryodaq.acquisition.stream.sources import AdcSource
    from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig
    from cryodaq.acquisition.units import to_si

    doc = yaml.safe_load((ROOT / "config" / "rigs" / "maxs30_sim.yaml").read_text())
    doc["world"]["seed"] = seed
    doc["world"]["detector"].update(
        {"link_resistance_mohm": 8.5, "source": ["fe55", "am241"],
         "absorber_thickness_um": THICK_UM}
    )
    doc["world"]["sources"]["fe55"]["rate_per_pixel_hz"] = 8.0
    doc["world"]["sources"]["am241"]["rate_per_pixel_hz"] = 60.0
    doc["world"]["background"]["enabled"] = False
    adc = doc["instruments"]["adc1"]["settings"]
    enabled = f"{channels[0]}-{channels[-1]}" if len(channels) > 1 else str(channels[0])
    adc["channels"] = {"1-16": {"enabled": False}, enabled: {"enabled": True}}
    (tmp / "rig.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))  # "1-16" first
    with Rig(load_rig(tmp / "rig.yaml")) as rig:
        rig.open("fll")
        rig.open("tc")
        adc1 = rig.open("adc1")
        world = rig.world
        world.advance(60.0)  # the plate regulated at 20 mK
        source = AdcSource(adc1, 1 << 15, clock_ns=lambda: int(world.now() * 1e9))
        threshold = to_si("3 mV", source.unit) / source.units_per_value
        trigger = ChannelTrigger(polarity=0, edge_threshold=threshold, auto_period=10_000)
        config = TriggerConfig(LENGTH, PRE, dict.fromkeys(channels, trigger), coincidence_window=2)
        store = RunStore.create(tmp / "run", {"rig": rig.spec.doc.data})
        Acquisition(source, config, name="calib", store=store, duration_s=seconds,
                    metadata={"trigger": {"coincidence_window": 2}}).run()  # fmt: skip
        store.close("done")
        array = world.detector_array("mmc")
        truth, names = array.truth(), list(array.pixels()["name"])
        # The detector model's nonlinearity at 59.5 keV, E / (E dPhi/dE|_0 / Phi(E)) - 1,
        # per pixel at the chip's temperature (its peak heights through C(T) and m(T)).
        chip = array.now_K()
        small = array.model.response(chip).phi0_per_eV
        model_nl = {
            e: dict(zip(names, e * small / thermo.peak_height_phi0(array.model.design, chip, e)
                        - 1.0, strict=True))
            for e in (*HELD_OUT_EV, 59540.9)
        }  # fmt: skip
    options = {"wiring": {"adc1": 1}, "sources": ["fe55", "am241"],
               "absorber_thickness_um": THICK_UM}
    inp = PipelineInput(tmp, RunReader(tmp / "run"), ("calib",), options, tmp / "figures")
    out = get_pipeline("mmc")(inp)
    return {"out": out, "truth": truth, "events": np.load(out.results["events_file"]),
            "model_nl": model_nl}


@pytest.fixture(scope="module")
def am_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # Channel 1 (A1/B1): a non-gradiometric corner channel, the chip thermometer itself.
    return simulate(tmp_path_factory.mktemp("am241"), 31, [1], 15.0)


def test_pipeline_calibrates_every_pixel_on_the_am241_lines(am_run: dict[str, Any]) -> None:
    res = am_run["out"].results
    pixels = {k: v for k, v in res["pixels"].items() if "error" not in v}
    assert len(pixels) == 2, res["pixels"]
    for name, p in pixels.items():
        seen = set(p["calibration_lines"])
        assert {"MnKa", "NpLa1", "NpLb1", "Am241g59"} <= seen, (name, seen)
        assert p["calibration_degree"] == 3
    summary = res["calibration_lines"]
    # Residuals against the stated uncertainties: chi2 over all pixels within 4 sigma.
    assert abs(summary["chi2"] - summary["dof"]) < 4.0 * np.sqrt(2.0 * summary["dof"]), summary
    # Calibrated energies of the simulated 59.5 keV photons (truth-matched; piled-up records,
    # hundreds of eV off, left out): their median within 3 sigma of the line (band and the
    # median's statistical error), pixel by pixel.
    ev, truth = am_run["events"], am_run["truth"]
    names = list(ev["pixels"])
    for pi, name in enumerate(names):
        sel = ev["pixel"] == pi
        t = ev["time_s"][sel]
        mine = np.flatnonzero(truth["pixel"] == name)
        j = np.clip(np.searchsorted(truth["time_s"][mine], t - MATCH_S), 0, mine.size - 1)
        k = mine[j]
        ok = np.abs(truth["time_s"][k] - t) <= MATCH_S
        gamma = ok & (np.abs(truth["energy_eV"][k] - 59540.9) < 5.0)
        e = ev["energy_eV"][sel][gamma]
        e = e[np.abs(e - 59540.9) < 300.0]
        assert e.size >= 20, name
        line = pixels[name]["calibration_lines"]["Am241g59"]
        err = np.hypot(line["band_eV"], 1.2533 * np.std(e) / np.sqrt(e.size))
        assert abs(np.median(e) - 59540.9) < 3.0 * err + 0.5, (name, np.median(e), err)
        # The nonlinearity it measures is the detector model's (~1.7 % at 59.5 keV with
        # 50 um absorbers), within 3 sigma of its stated error.
        nl = pixels[name]["nonlinearity_top"]
        assert nl["energy_eV"] == 59540.9
        assert nl["value"] == pytest.approx(am_run["model_nl"][59540.9][name],
                                            abs=3.0 * nl["err"])
        assert nl["err"] < 0.1 * nl["value"]
        # Between the lines, E / (c1 A(E)) - 1 of the calibration polynomial against the
        # model's, within 3 sigma of the top's relative error (the interpolation is no worse
        # there; an absolute 3 sigma would exceed half the effect at 10 keV).
        coef = np.array(pixels[name]["calibration_eV"])
        for e_held in HELD_OUT_EV:
            roots = np.polynomial.polynomial.polyroots([coef[0] - e_held, *coef[1:]])
            a = min(r.real for r in roots if abs(r.imag) < 1e-12 and r.real > 0)
            got = e_held / (coef[1] * a) - 1.0
            want = am_run["model_nl"][e_held][name]
            assert got == pytest.approx(want, rel=3.0 * nl["err"] / nl["value"]), (name, e_held)
    figures = [f.name.split("_", 2)[-1] for f in am_run["out"].figures]
    assert "calibration_lines.png" in figures and "calibration_spectrum.png" in figures
