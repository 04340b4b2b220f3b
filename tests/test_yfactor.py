"""Y-factor configuration of the haloscope rig (the paper's Fig. 1a): a cryogenic switch to a
black-body load. With an ideal switch the Y-factor recovers the chain's effective added noise
T_a' (Eq 9, `effective_chain`); the switch's path difference and heating bias it upwards, which
is the paper's case for calibrating with the cavity's own radiation instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.pipelines import PIPELINES
from cryodaq.analysis.cavity import effective_temperature
from cryodaq.analysis.cavity_chain import (
    ChainLosses,
    Temperatures,
    effective_chain,
    load_spectrum,
    y_factor_system_noise,
)
from cryodaq.analysis.yfactor import y_factor
from cryodaq.sim_instruments.thermal_model import ThermalPlant

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "config" / "campaigns" / "haloscope_yfactor.yaml"
RIG = ROOT / "config" / "rigs" / "haloscope_yfactor_sim.yaml"
WORLD = yaml.safe_load(RIG.read_text())["world"]
IDEAL = ("rig.world.switch.path_A=1.0", "rig.world.switch.heat_J=0.0")
NO_HEAT = ("rig.world.switch.heat_J=0.0",)


def _run(tmp_path: Path, *overrides: str) -> tuple[Path, dict[str, Any]]:
    args = ["run", str(CAMPAIGN), "--out", str(tmp_path / "run"), "--no-display"]
    for o in overrides:
        args += ["--set", o]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "run"
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def _losses() -> ChainLosses:
    c = WORLD["cables"]
    return ChainLosses(A1=c["A1"], A2=c["A2"], A3=c["A3"], A_cir=WORLD["circulator"]["A"])


def _temps(run_dir: Path, name: str) -> dict[str, float]:
    return json.loads((run_dir / "data" / f"{name}.json").read_text())["temperatures_K"]


def _injected(run_dir: Path, path_A: float = 1.0) -> tuple[float, float]:
    """The chain's T_a' (Eq 9) and the Y-factor's expected T_sys (switch at the mixing plate),
    both averaged over the two spectra's readings and the band centre."""
    t_eff, t_sys = [], []
    fc = WORLD["cavity"]["fc_Hz"]
    for name in ("yspec.0", "yspec.1"):
        t = _temps(run_dir, name)
        temps = Temperatures(att_K=t["tc.2"], cav_K=t["tc.3"], mx_K=t["tc.1"])
        _, ta = effective_chain(
            temps, _losses(), WORLD["chain"]["gain_dB"], WORLD["chain"]["added_noise_K"], fc
        )
        t_eff.append(float(ta))
        t_sys.append(
            float(
                y_factor_system_noise(
                    temps, _losses(), WORLD["chain"]["added_noise_K"], fc, path_A=path_A
                )
            )
        )
    return float(np.mean(t_eff)), float(np.mean(t_sys))


@pytest.fixture(scope="module")
def ideal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _run(tmp_path_factory.mktemp("yf"), *IDEAL)


def test_pipeline_is_registered() -> None:
    assert "yfactor" in PIPELINES


def test_ideal_switch_recovers_the_effective_added_noise(
    ideal: tuple[Path, dict[str, Any]],
) -> None:
    run_dir, summary = ideal
    assert summary["status"] == "completed" and summary["wall_time_s"] < 20
    assert _temps(run_dir, "yspec.0")["tc.4"] == pytest.approx(0.050, abs=1.5e-3)
    assert _temps(run_dir, "yspec.1")["tc.4"] == pytest.approx(1.0, abs=1.5e-3)
    res = summary["analyze"]["yfactor"]["yfactor"]
    t_a_eff, _ = _injected(run_dir)
    err = res["system_noise_K_err"]
    assert 0 < err < 0.01
    # Radiometer scatter ~2 mK; the hot load warms the mixing plate (30 -> 67 mK), so the
    # chain's own noise is ~2 mK higher in the hot spectrum, which the Y formula reads as
    # ~ -15 mK on T_sys (x 1/(Y - 1) ~ 6.4), plus the load thermometer's noise: held to 1 %.
    assert res["system_noise_K"] == pytest.approx(t_a_eff, rel=1e-2)
    gain, _ = effective_chain(
        Temperatures(0.03, 0.03, 0.03),
        _losses(),
        WORLD["chain"]["gain_dB"],
        0.0,
        WORLD["cavity"]["fc_Hz"],
    )
    assert res["gain_dB"] == pytest.approx(gain, abs=0.03)  # band-mean ripple ~0.01 dB


def test_path_difference_biases_the_y_factor_as_the_model_says(
    tmp_path: Path, ideal: tuple[Path, dict[str, Any]]
) -> None:
    run_dir, summary = _run(tmp_path, *NO_HEAT)
    path_A = WORLD["switch"]["path_A"]
    res = summary["analyze"]["yfactor"]["yfactor"]
    t_a_eff, t_sys = _injected(run_dir, path_A)
    # T_sys = (T_a' + (1 - A_p) T~_sw) / A_p: +2 % (~0.11 K) for A_p = 0.98.
    shift = t_sys - t_a_eff
    assert shift == pytest.approx((1 - path_A) / path_A * (t_a_eff + 0.12), rel=0.05)
    ideal_res = ideal[1]["analyze"]["yfactor"]["yfactor"]
    # against the ideal switch's run (same seed: the method's other systematics cancel)
    measured = res["system_noise_K"] - ideal_res["system_noise_K"]
    assert measured == pytest.approx(shift, abs=0.02)
    # and the gain is referred to the load: G' A_p
    assert res["gain_dB"] - ideal_res["gain_dB"] == pytest.approx(10 * np.log10(path_A), abs=0.01)


def test_switch_heating_adds_a_further_upward_bias(
    tmp_path: Path, ideal: tuple[Path, dict[str, Any]]
) -> None:
    """The actuation warms the switch body (tc.5) to ~1.7 K while the cold spectrum is taken;
    its path loss then adds (1 - A_p) T~_sw to P_cold only: Y drops and T_sys rises."""
    run_dir, summary = _run(tmp_path)
    path_A = WORLD["switch"]["path_A"]
    res = summary["analyze"]["yfactor"]["yfactor"]
    t_a_eff, t_sys_no_heat = _injected(run_dir, path_A)
    cold, hot = _temps(run_dir, "yspec.0"), _temps(run_dir, "yspec.1")
    assert cold["tc.5"] > 1.0 > 0.5 > hot["tc.5"]  # still warm at the cold spectrum
    # Model estimate with the switch readings at the captures' starts (an upper bound: the
    # switch cools during each 3-minute capture).
    fc, b = WORLD["cavity"]["fc_Hz"], 1e3
    p = {}
    for key, t in (("cold", cold), ("hot", hot)):
        temps = Temperatures(att_K=t["tc.2"], cav_K=t["tc.3"], mx_K=t["tc.1"])
        p[key] = load_spectrum(
            np.array([fc]),
            t["tc.4"],
            temps,
            _losses(),
            WORLD["chain"]["gain_dB"],
            WORLD["chain"]["added_noise_K"],
            b,
            path_A=path_A,
            switch_K=t["tc.5"],
        )
    est = y_factor(np.array([fc]), p["hot"], p["cold"], hot["tc.4"], cold["tc.4"], b, 0, 0)
    heating_bound = est.system_noise_K - t_sys_no_heat
    assert heating_bound > 0.03
    ideal_res = ideal[1]["analyze"]["yfactor"]["yfactor"]
    path_shift = t_sys_no_heat - t_a_eff
    measured_heating = res["system_noise_K"] - ideal_res["system_noise_K"] - path_shift
    assert 0.2 * heating_bound < measured_heating < 1.2 * heating_bound


def test_y_factor_estimator_is_exact_on_noiseless_spectra() -> None:
    f = np.linspace(4.94e9, 4.95e9, 11)
    temps = Temperatures(0.03, 0.03, 0.03)
    losses = _losses()
    hot = load_spectrum(f, 1.0, temps, losses, 90.0, 4.0, 1e3)
    cold = load_spectrum(f, 0.05, temps, losses, 90.0, 4.0, 1e3)
    res = y_factor(f, hot, cold, 1.0, 0.05, 1e3, 0.0, 0.0)
    _, ta = effective_chain(temps, losses, 90.0, 4.0, f.mean())
    # T~ is taken at the band centre: exact to ~1e-6 over a 10 MHz band
    assert res.system_noise_K == pytest.approx(float(ta), rel=1e-5)
    assert res.t_cold_eff_K == pytest.approx(float(effective_temperature(0.05, f.mean())))


def test_switch_deposit_warms_a_plate_and_the_mixing_plate() -> None:
    plant = ThermalPlant.from_params(WORLD["thermal"])
    before = plant.mixing_K
    plant.deposit("switch", 2e-3)
    assert plant.temperature("switch") == pytest.approx(2.0, rel=0.01)
    assert plant.mixing_K > before
    with pytest.raises(ValueError):
        plant.deposit("mixing", 1e-3)


def test_haloscope_pipeline_reports_the_y_factor_beside_the_cavity_fit(
    ideal: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """A run holding the cavity programme and the load spectra: `haloscope` reports both."""
    import shutil

    from cryodaq.acquisition.pipelines import PipelineInput, get_pipeline
    from cryodaq.acquisition.store.reader import RunReader

    root = Path(__file__).resolve().parents[1]
    halo = tmp_path / "halo"
    done = CliRunner().invoke(
        app,
        [
            "run",
            str(root / "config/campaigns/haloscope_cavity_calibration.yaml"),
            "--out",
            str(halo),
            "--no-display",
        ],
    )
    assert done.exit_code == 0, done.output
    for path in (ideal[0] / "data").glob("yspec.*"):
        shutil.copy(path, halo / "data" / path.name)
    options = {"reflection": "s11", "spectra": "spec", "A3": 0.95}
    out = get_pipeline("haloscope")(
        PipelineInput(halo, RunReader(halo / "store"), (), options, halo / "figures")
    )
    expected = ideal[1]["analyze"]["yfactor"]["yfactor"]
    got = out.results["yfactor"]
    for key in ("y", "system_noise_K", "gain_dB", "T_hot_K", "T_cold_K"):
        assert got[key] == pytest.approx(expected[key]), key
    assert "fit" in out.results
    off = get_pipeline("haloscope")(
        PipelineInput(
            halo, RunReader(halo / "store"), (), {**options, "yfactor": None}, halo / "figures"
        )
    )
    assert "yfactor" not in off.results
