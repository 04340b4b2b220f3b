"""The `ho163` pipeline end to end on a short simulated run of config/campaigns/holmes_ho163.yaml:
each detector's activity, time resolution and resolution at Q measured from its own records,
the unresolved pile-up measured above Q, the end-point fit consistent with the injected Q and
m_nu = 0, and the three figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from report_checks import check_report
from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.pipelines import PipelineInput, pipeline_options
from cryodaq.acquisition.pipelines.ho163 import plan as get_plan
from cryodaq.acquisition.pipelines.pulses_apply import apply_pass, pulse_blocks
from cryodaq.acquisition.pipelines.pulses_channel import learn_filter, read_stream
from cryodaq.acquisition.pipelines.stored_runs import geometry
from cryodaq.acquisition.store.reader import RunReader

ROOT = Path(__file__).resolve().parents[1]
ACTIVITY_BQ, Q_EV = 300.0, 2833.0  # config/rigs/holmes_ho163_sim.yaml


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("ho163") / "run"
    out = CliRunner().invoke(app, [
        "run", str(ROOT / "config" / "campaigns" / "holmes_ho163.yaml"), "--out", str(run_dir),
        "--no-display", "--set", "steps.4.acquire.duration=8 s",
    ])  # fmt: skip
    assert out.exit_code == 0, out.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    return run_dir, summary["analyze"]["ho163"]


def test_each_detector_measures_its_activity_and_resolution(result: tuple[Path, dict]) -> None:
    _, res = result
    assert len(res["channels"]) >= 3
    for ch, d in res["channels"].items():
        # 300 Bq x 8 s: 2400 decays, 2 % Poisson; the pile-up and dead-time corrections
        assert d["activity_measured_Bq"] == pytest.approx(ACTIVITY_BQ, rel=0.10), ch
        assert 0.5e-6 < d["time_resolution_s"] < 20e-6, ch
        # the resolution the calibration lines give, extrapolated to Q: a few eV to ~15 eV
        assert 2.0 < d["fwhm_at_q_eV"] < 30.0, ch


def test_pileup_and_end_point(result: tuple[Path, dict]) -> None:
    run_dir, res = result
    pile = res["pileup"]
    assert pile["fraction"] > 0 and pile["fraction_err"] > 0
    # measured above Q; the flag misses second pulses below ~350 eV, so the unresolved
    # fraction exceeds A tau_R (2.5x in the 20 s campaign), but it is of that order
    assert pile["a_tau_R"] == pytest.approx(pile["activity_Bq"] * pile["time_resolution_s"])
    assert 0.5 < pile["ratio_to_a_tau_R"] < 5.0
    # end point: the injected Q and m_nu = 0 inside the fit's errors (3 sigma)
    assert abs(res["q_eV"] - Q_EV) < 3 * res["q_err_eV"]
    err = res["m_nu_sq_err_high_eV2"] if res["m_nu_sq_eV2"] < 0 else res["m_nu_sq_err_low_eV2"]
    assert abs(res["m_nu_sq_eV2"]) < 3 * err
    assert res["sensitivity"]["exposure_for_target_detector_years"] > 0
    figures = sorted(p.name for p in (run_dir / "figures").glob("*.png"))
    assert figures == ["ho163_implant_endpoint.png", "ho163_implant_pileup.png",
                       "ho163_implant_spectrum.png"]  # fmt: skip
    check_report(run_dir, "holmes_ho163")


def test_streamed_filter_and_records_equal_the_in_memory_ones(result: tuple[Path, dict]) -> None:
    """Learned on a third of a detector's records, the filter streamed over every record in
    the store gives what it gives on all of them in memory (up to rounding), and the pulse
    blocks the pile-up flag is applied to are every pulse record in order; the pipeline
    learning from a third accepts the same events within 1 %."""
    run_dir, res = result
    reader = RunReader(run_dir / "store")
    ch = int(min(res["channels"]))
    parts = reader.acquisitions()
    assert parts == res["acquisitions"] == ["implant"]  # the campaign's step: default options
    geo = geometry(PipelineInput(run_dir, reader, ("implant",), {}, run_dir / "x"), parts, "ho163")
    opts = pipeline_options("ho163")({})
    whole = read_stream(reader, parts, ch)
    n = whole.pulses.shape[0]
    held = read_stream(reader, parts, ch, n // 3)
    ln = learn_filter(held, geo, opts)
    weights = ln.filt.weights * geo["scale"]
    applied = apply_pass(reader, held, ch, ln, geo, weights)
    x = whole.pulses.astype(float) * geo["scale"]
    np.testing.assert_allclose(applied.pulse_amplitude, x @ ln.filt.weights, rtol=1e-9)
    assert applied.pulse_clean.size == n and n // 3 < applied.pulse_clean.sum() < n
    blocks = list(pulse_blocks(reader, held, ch))
    assert len(blocks) > 1 or n < 4096
    np.testing.assert_array_equal(np.concatenate(blocks), whole.pulses)
    few = PipelineInput(run_dir, reader, ("implant",), {"learn_records": n // 3}, run_dir / "x")
    plan = get_plan(few)
    part_learned = plan.work(plan.shared, ch).numbers
    full = res["channels"][str(ch)]
    assert part_learned["pulse_triggers"] == full["pulse_triggers"] == whole.edge_triggers
    assert part_learned["accepted"] == pytest.approx(full["accepted"], rel=0.01)
    assert part_learned["fwhm_at_q_eV"] == pytest.approx(full["fwhm_at_q_eV"], rel=0.2)
