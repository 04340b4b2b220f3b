"""The haloscope calibration campaign end to end: Table 1 programme on the simulated rig, then
the `haloscope` pipeline recovers the cavity and the chain the World was given."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from report_checks import check_report
from typer.testing import CliRunner

from cryodaq.acquisition.campaign.validate import load_campaign
from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.pipelines import PIPELINES
from cryodaq.sim_instruments import vst_model
from cryodaq.sim_instruments.world import World

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "config" / "campaigns" / "haloscope_cavity_calibration.yaml"
RIG = ROOT / "config" / "rigs" / "haloscope_sim.yaml"
#: Table 1 of the paper (mK): T_att, T_c, T_mx for a1-a5, b1-b3.
TABLE1 = [
    (342, 78, 23), (332, 202, 25), (336, 338, 30), (339, 648, 46),
    (341, 909, 63), (83, 348, 28), (108, 646, 44), (147, 910, 63),
]  # fmt: skip
#: Another chain, set through `--set rig.world....` overrides.
OTHER = {
    "chain": {"gain_dB": 90.0, "added_noise_K": 2.5},
    "cables": {"A1": 0.9, "A2": 0.97, "A3": 0.92},
    "circulator": {"A": 0.9},
    "cavity": {"kappa0_Hz": 300.0e3, "kappae_Hz": 250.0e3, "fc_Hz": 4.9446e9},
}

#: The chain checks need a World whose VST simulates the lossy chain (Eqs 5-9).
needs_lossy_sim = pytest.mark.skipif(
    "cables" not in inspect.getsource(vst_model),
    reason="cryodaq.sim_instruments.vst_model does not simulate cable and circulator losses yet",
)


def _run(tmp_path: Path, name: str, *overrides: str) -> tuple[Path, dict[str, Any]]:
    run_dir = tmp_path / name
    args = ["run", str(CAMPAIGN), "--out", str(run_dir), "--no-display"]
    for o in overrides:
        args += ["--set", o]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return run_dir, json.loads((run_dir / "summary.json").read_text())


#: The programme with 1-hour spectra (20x the paper's 3 minutes): the losses' statistical
#: errors shrink ~4.5x, to ~0.014 (A1) and ~0.006 (A_cir). The plates are regulated and stable
#: through a capture, so the simulated VST samples their temperatures every 10 min, not 10 s.
LONG = (
    "steps.2.sweep.steps.2.spectrum.integration=60 min",
    "rig.instruments.vst.sim.thermal_sample_s=600",
)


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _run(tmp_path_factory.mktemp("halo"), "paper")


@pytest.fixture(scope="module")
def paper_long(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _run(tmp_path_factory.mktemp("halo"), "paper_long", *LONG)


@pytest.fixture(scope="module")
def other_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    sets = [*LONG]
    sets += [
        f"rig.world.{group}.{key}={value}"
        for group, values in OTHER.items()
        for key, value in values.items()
    ]
    # The analysis is told cable 3's spec, as a lab would: it is not fitted.
    sets.append(f"steps.3.analyze.options.A3={OTHER['cables']['A3']}")
    return _run(tmp_path_factory.mktemp("halo"), "other", *sets)


def _world(overrides: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    world = yaml.safe_load(RIG.read_text())["world"]
    for group, values in (overrides or {}).items():
        world[group] = {**world.get(group, {}), **values}
    return world


def test_campaign_validates_and_registers_the_pipeline() -> None:
    assert "haloscope" in PIPELINES
    loaded = load_campaign(CAMPAIGN)
    assert loaded is not None


def test_table1_programme_is_reached_and_mixing_plate_warms_like_the_paper(
    paper_run: tuple[Path, dict[str, Any]],
) -> None:
    run_dir, summary = paper_run
    assert summary["status"] == "completed" and summary["simulated"]
    assert summary["wall_time_s"] < 60
    for k, (att, cav, mx) in enumerate(TABLE1):
        temps = json.loads((run_dir / "data" / f"spec.{k}.json").read_text())["temperatures_K"]
        assert temps["tc.2"] * 1e3 == pytest.approx(att, abs=1.5)
        assert temps["tc.3"] * 1e3 == pytest.approx(cav, abs=1.5)
        assert temps["tc.1"] * 1e3 == pytest.approx(mx, abs=3.0)  # the plant, not a setpoint


def _check_cavity(result: dict[str, Any], world: dict[str, Any]) -> None:
    cav = result["cavity"]
    truth = world["cavity"]
    assert cav["kappa0_Hz"] == pytest.approx(truth["kappa0_Hz"], rel=0.02)
    assert cav["kappae_Hz"] == pytest.approx(truth["kappae_Hz"], rel=0.02)
    assert abs(cav["fc_Hz"] - truth["fc_Hz"]) < 1e3
    for key in ("kappa0_Hz", "kappae_Hz", "fc_Hz"):
        assert 0 < cav[f"{key}_err"] < 0.01 * truth[key]


def _injected_chain(world: dict[str, Any], run_dir: Path) -> tuple[float, float]:
    """G' (dB) and T_a' (K) of the World's chain by Eq 9, T_a' averaged over the settings."""
    from cryodaq.analysis.cavity_chain import ChainLosses, Temperatures, effective_chain

    c = world["cables"]
    losses = ChainLosses(A1=c["A1"], A2=c["A2"], A3=c["A3"], A_cir=world["circulator"]["A"])
    gains, noises = [], []
    for meta_path in sorted((run_dir / "data").glob("spec.*.json")):
        t = json.loads(meta_path.read_text())["temperatures_K"]
        temps = Temperatures(att_K=t["tc.2"], cav_K=t["tc.3"], mx_K=t["tc.1"])
        g, ta = effective_chain(
            temps,
            losses,
            world["chain"]["gain_dB"],
            world["chain"]["added_noise_K"],
            world["cavity"]["fc_Hz"],
        )
        gains.append(g)
        noises.append(float(np.mean(ta)))
    return float(np.mean(gains)), float(np.mean(noises))


def _check_chain(
    result: dict[str, Any], world: dict[str, Any], run_dir: Path, *, long: bool
) -> None:
    fit = result["fit"]
    gain_dB, noise_K = _injected_chain(world, run_dir)
    assert fit["gain_dB"] == pytest.approx(gain_dB, abs=0.05)
    assert fit["added_noise_K"] == pytest.approx(noise_K, rel=0.03)
    for key in ("gain_dB", "added_noise_K", "A1", "A_cir", "A2"):
        assert np.isfinite(fit[f"{key}_err"]) and fit[f"{key}_err"] > 0
    truth = {"A1": world["cables"]["A1"], "A2": world["cables"]["A2"],
             "A_cir": world["circulator"]["A"]}
    assert fit["A2"] == pytest.approx(truth["A2"], abs=0.03)
    if long:  # 1-hour spectra: every loss within 0.03, and within 2.5 sigma of its error
        for key, value in truth.items():
            assert fit[key] == pytest.approx(value, abs=0.03), key
            assert abs(fit[key] - value) < 2.5 * fit[f"{key}_err"] + 1e-3, key
    else:
        # A1 and A_cir are nearly degenerate with T_mx at 23-63 mK (T~_mx ~ the half quantum
        # throughout): eight 3-minute spectra determine them only to ~0.06 and ~0.03 (1 sigma,
        # measured), so here they are held to twice their fitted errors, which must say so.
        for key in ("A1", "A_cir"):
            assert fit[f"{key}_err"] < 0.1, key
            assert abs(fit[key] - truth[key]) < 2 * fit[f"{key}_err"], key


def test_summary_has_the_issue_keys(paper_run: tuple[Path, dict[str, Any]]) -> None:
    _, summary = paper_run
    result = summary["analyze"]["haloscope"]
    assert {"kappa0_Hz", "kappae_Hz", "fc_Hz"} <= set(result["cavity"])
    for key in ("gain_dB", "added_noise_K", "A1", "A_cir", "A2"):
        assert key in result["fit"] and f"{key}_err" in result["fit"]
    assert {"gain_dB", "added_noise_K"} <= set(result["fixed_loss_fit"])
    assert {"rms_percent", "drift_percent"} <= set(result["ripple"])
    assert all(np.isfinite(result["ripple"][k]) for k in ("rms_percent", "drift_percent"))
    assert {"drift_percent_per_hour", "drift_percent_per_hour_err"} <= set(result["ripple"])
    assert set(result["fit_uncorrected"]) == set(result["fit"])


def _injected_ripple(run_dir: Path) -> tuple[float, float]:
    """The rig's gain ripple rms (percent) over the spectra's bins, and its drift (%/h)."""
    world = json.loads((run_dir / "campaign.json").read_text())["rig"]["world"]
    chain = {**vst_model.DEFAULT_CHAIN_EXTRAS, **world.get("chain", {})}
    with np.load(run_dir / "data" / "spec.0.npz") as npz:
        f = npz["frequencies_Hz"]
    phases = World(world).rng("chain.ripple").uniform(0.0, 2 * math.pi, 3)
    weights = np.asarray(vst_model.RIPPLE_WEIGHTS)
    amps = weights * chain["ripple_percent"] / 100 * math.sqrt(2 / np.sum(weights**2))
    r = np.ones_like(f)
    for amp, rel, phase in zip(amps, vst_model.RIPPLE_PERIODS, phases, strict=True):
        r += amp * np.sin(2 * math.pi * f / (rel * chain["ripple_period_Hz"]) + phase)
    return 100 * float(r.std()), float(chain["drift_percent_per_hour"])


@needs_lossy_sim
def test_ripple_correction_and_drift_match_the_rig(
    paper_run: tuple[Path, dict[str, Any]], paper_long: tuple[Path, dict[str, Any]]
) -> None:
    run_dir, summary = paper_run
    result = summary["analyze"]["haloscope"]
    rms, rate = _injected_ripple(run_dir)
    ripple = result["ripple"]
    assert ripple["rms_percent"] == pytest.approx(rms, rel=0.3)
    assert ripple["fitted_rms_percent"] == pytest.approx(rms, rel=0.3)  # the fit's own spline
    # The ripple is divided out: chi2 ~1 (the plain fit's ~1.8 is the ripple).
    assert result["fit"]["reduced_chi2"] == pytest.approx(1.0, abs=0.05)
    assert result["fit_uncorrected"]["reduced_chi2"] > 1.3
    # 0.04 %/h over the programme's ~0.6 h: the fit's error (~0.037 %/h) is as large as the
    # drift. Over the long programme (~8 h) it is measured to a few percent.
    err = ripple["drift_percent_per_hour_err"]
    assert 0.01 < err < 0.1
    assert abs(ripple["drift_percent_per_hour"] - rate) < 3 * err
    assert ripple["drift_percent"] == pytest.approx(
        ripple["drift_percent_per_hour"] * ripple["drift_span_h"]
    )
    long_ripple = paper_long[1]["analyze"]["haloscope"]["ripple"]
    long_err = long_ripple["drift_percent_per_hour_err"]
    assert 0 < long_err < 0.003
    assert abs(long_ripple["drift_percent_per_hour"] - rate) < 3 * long_err


def test_reflection_fit_recovers_the_cavity_at_both_parameter_sets(
    paper_run: tuple[Path, dict[str, Any]], other_run: tuple[Path, dict[str, Any]]
) -> None:
    _check_cavity(paper_run[1]["analyze"]["haloscope"], _world())
    run_dir, summary = other_run
    assert json.loads((run_dir / "campaign.json").read_text())["rig"]["world"]["cables"] == (
        OTHER["cables"]
    )
    _check_cavity(summary["analyze"]["haloscope"], _world(OTHER))


@needs_lossy_sim
def test_chain_fit_recovers_the_paper_rig(
    paper_run: tuple[Path, dict[str, Any]], paper_long: tuple[Path, dict[str, Any]]
) -> None:
    for (run_dir, summary), long in ((paper_run, False), (paper_long, True)):
        _check_chain(summary["analyze"]["haloscope"], _world(), run_dir, long=long)


@needs_lossy_sim
def test_chain_fit_recovers_another_chain_set_by_overrides(
    other_run: tuple[Path, dict[str, Any]],
) -> None:
    run_dir, summary = other_run
    _check_chain(summary["analyze"]["haloscope"], _world(OTHER), run_dir, long=True)


def test_figures_are_written_and_in_the_report(paper_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, summary = paper_run
    step = next(s for s in summary["steps"] if s["result"].get("pipeline") == "haloscope")
    figures = [Path(p) for p in step["result"]["figures"]]
    names = {p.name for p in figures}
    assert names == {
        "haloscope_s11.png",
        "haloscope_spectra.png",
        "haloscope_ripple.png",
        "haloscope_cable_noise.png",
    }
    report = (run_dir / "report.html").read_text()
    for p in figures:
        assert p.exists() and p.stat().st_size > 10_000
        assert p.name in report
    check_report(run_dir, "haloscope_cavity_calibration")
