"""`cryodaq report RUN_DIR` on bad input: one clear line naming the directory or the file, exit
code 2, nothing written; on a run, the report rebuilt from its summary alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.store.summary import RunSummary


def _report(run_dir: Path) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["report", str(run_dir)])
    return done.exit_code, done.output


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (None, "{run}: no such directory"),
        ("", "{run}: not a cryodaq run directory (no summary.json)"),
        ("{", "{run}/summary.json: not a cryodaq run summary (Expecting property name"),
        ("[1, 2]", "{run}/summary.json: not a cryodaq run summary (not a JSON object)"),
        ('{"status": "completed"}', "{run}/summary.json: not a cryodaq run summary ("),
        ('{"campaign": "c", "rig": "r", "simulated": true, "run_dir": ".", "versions": {},'
         ' "started": "2026-12-06T06:35:27+00:00", "analyze": [1]}',
         "{run}/summary.json: the report could not be built from this summary (AttributeError"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, content: str | None, line: str) -> None:
    run = tmp_path / "run"
    if content is not None:
        run.mkdir()
        if content:
            (run / "summary.json").write_text(content)
    code, output = _report(run)
    assert code == 2
    assert output.count("\n") == 1 and output.startswith("error: ")
    assert line.format(run=run) in output.replace("\n", "")
    assert not (run / "report.html").exists()


def test_a_run_with_only_its_summary_gets_its_report(tmp_path: Path) -> None:
    """No campaign.json, no figures, no analysis: the report still says what there is."""
    summary = RunSummary("quickstart", "mmc_simple_sim", True, str(tmp_path), {"cryodaq": "0"},
                         "2026-12-06T06:35:27+00:00", status="interrupted",
                         error="interrupted by the user (Ctrl-C)")  # fmt: skip
    summary.write(tmp_path / "summary.json")
    code, output = _report(tmp_path)
    assert code == 0 and f"report: {tmp_path / 'report.html'}" in output.replace("\n", "")
    page = (tmp_path / "report.html").read_text()
    assert "The run did not complete (interrupted): interrupted by the user (Ctrl-C)" in page
    assert "This run has no analysis results." in page


def test_a_run_still_running_is_said_so(tmp_path: Path) -> None:
    RunSummary("quickstart", "mmc_simple_sim", True, str(tmp_path), {"cryodaq": "0"},
               "2026-12-06T06:35:27+00:00").write(tmp_path / "summary.json")
    code, output = _report(tmp_path)
    assert code == 0 and output.count("\n") == 1
    assert "(the run is running: the report shows it so far)" in output
    header = (tmp_path / "report.html").read_text().partition("</header>")[0]
    assert "The run has not finished (still running, or it died)." in header


def test_results_a_headline_cannot_read_leave_the_rest_of_the_report(tmp_path: Path) -> None:
    """An analysis entry of another kind than its pipeline writes (an edited summary.json):
    that analysis' headline says so among the problems; the report is still written."""
    from report_checks import synthetic_summary

    summary = synthetic_summary()
    summary["analyze"]["resolution"]["channels"]["2"]["isolated_pulses"] = "many"
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    code, output = _report(tmp_path)
    assert code == 0, output
    page = (tmp_path / "report.html").read_text()
    assert "the pulses headline could not read these results (TypeError:" in page
    assert "Run facts" in page
