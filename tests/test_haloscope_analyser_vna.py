"""The haloscope calibration campaign on a rig of the instruments labs own (X-Series signal
analyser and E5071C VNA): unchanged but for its rig (the steps take the rig's only instrument
that can do them), it recovers the cavity and the chain within the tolerances of the VST rig's
tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app
from tests.test_haloscope_pipeline import CAMPAIGN, RIG, _check_cavity, _check_chain, _world

ROOT = Path(__file__).resolve().parents[1]
ANALYSER_RIG = ROOT / "config" / "rigs" / "haloscope_analyser_vna_sim.yaml"
OVERRIDES = (f"rig={ANALYSER_RIG}",)


@pytest.fixture(scope="module")
def analyser_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run_dir = tmp_path_factory.mktemp("halo") / "analyser_vna"
    args = ["run", str(CAMPAIGN), "--out", str(run_dir), "--no-display"]
    for o in OVERRIDES:
        args += ["--set", o]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def test_rig_is_the_vst_rig_with_the_vst_replaced() -> None:
    vst_rig, mine = yaml.safe_load(RIG.read_text()), yaml.safe_load(ANALYSER_RIG.read_text())
    assert mine["world"] == vst_rig["world"]
    assert mine["instruments"]["tc"] == vst_rig["instruments"]["tc"]
    assert set(mine["instruments"]) == {"analyser", "vna", "tc"}


def test_campaign_recovers_the_cavity_and_the_chain(
    analyser_run: tuple[Path, dict[str, Any]],
) -> None:
    run_dir, summary = analyser_run
    assert summary["status"] == "completed"
    spec = json.loads((run_dir / "data" / "spec.0.json").read_text())
    assert spec["bin_width_Hz"] == 1e3 and spec["integration_s"] == pytest.approx(180.0)
    result = summary["analyze"]["haloscope"]
    _check_cavity(result, _world())
    _check_chain(result, _world(), run_dir, long=False)
    assert result["fit"]["reduced_chi2"] == pytest.approx(1.0, abs=0.05)


def test_a_rig_with_no_instrument_for_a_step_is_told_to_name_one() -> None:
    rig = ROOT / "config" / "rigs" / "mmc_simple_sim.yaml"
    result = CliRunner().invoke(app, ["validate", str(CAMPAIGN), "--set", f"rig={rig}"])
    assert result.exit_code == 1
    assert "steps.0.reflection: reflection's instrument: give `instrument`: the rig has none " \
        "that can do it" in result.output  # fmt: skip
