"""The reports of the example campaigns no other test runs, each from a run of it made short
(overrides): checked as `report_checks` says every campaign's report must read. `cryodaq
report` rebuilds the same page from the stored run without touching anything else in it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from report_checks import EXPECT, check_report
from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGNS = ROOT / "config" / "campaigns"
#: The maXs30 ADCs reduced to FLL channels 1-3 and the four thermometer channels (1, 8, 25,
#: 32); the pixels of channels 1 and 2 analysed.
MAXS30 = (
    'rig.instruments.adc1.settings.channels={"1-16": {enabled: false}, "1-3": {enabled: true},'
    ' "8": {enabled: true}}',
    'rig.instruments.adc2.settings.channels={"1-16": {enabled: false}, "9": {enabled: true},'
    ' "16": {enabled: true}}',
    "steps.3.acquire.duration=20 s",
)
#: campaign -> overrides; the other campaigns' reports are checked where their runs are made.
SHORT: dict[str, tuple[str, ...]] = {
    "maxs30_calibration": (*MAXS30, "steps.4.analyze.options.channels=[1, 2]"),
    "maxs30_background": (
        *MAXS30, "steps.5.acquire.duration=10 s", "steps.7.acquire.duration=10 s",
        "steps.8.analyze.options.channels=[1, 2]",
    ),
    # two TES (designs a, b) at 120 Hz each: a few seconds calibrate them
    "holmes_characterisation": (
        "steps.1.tune.channels=2", "steps.4.acquire.duration=4 s",
        "steps.5.analyze.options.pairs=30",
        *(f"rig.world.detectors.{d}.rate_hz=120" for d in "abcd"),
    ),
    "haloscope_yfactor": (),
}  # fmt: skip
#: Where the other campaigns' reports are checked (on the runs those tests make).
ELSEWHERE = {
    "quickstart": "test_quickstart.py",
    "holmes_ho163": "test_ho163_campaign.py",
    "haloscope_cavity_calibration": "test_haloscope_pipeline.py",
}


def test_every_example_campaign_has_its_report_checked() -> None:
    assert sorted(p.stem for p in CAMPAIGNS.glob("*.yaml")) == sorted(EXPECT)
    assert sorted([*SHORT, *ELSEWHERE]) == sorted(EXPECT)
    for campaign, test in ELSEWHERE.items():
        assert re.search(rf'check_report\(\w+, "{campaign}"\)', (ROOT / "tests" / test).read_text())


@pytest.fixture(scope="module", params=sorted(SHORT))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> tuple[str, Path]:  # fmt: skip
    """The campaign run short: its name and run directory."""
    name = request.param
    run_dir = tmp_path_factory.mktemp(name) / "run"
    args = ["run", str(CAMPAIGNS / f"{name}.yaml"), "--out", str(run_dir), "--no-display"]
    for override in SHORT[name]:
        args += ["--set", override]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    return name, run_dir


def test_report_reads_headline_first(run: tuple[str, Path]) -> None:
    name, run_dir = run
    check_report(run_dir, name)


def _tree(run_dir: Path) -> dict[str, str]:
    """Every file of the run but the report, with its content's hash."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != "report.html"
    }


def test_cryodaq_report_rebuilds_the_same_page_and_touches_nothing_else(
    run: tuple[str, Path],
) -> None:
    name, run_dir = run
    before, page = _tree(run_dir), (run_dir / "report.html").read_text()
    (run_dir / "report.html").unlink()
    done = CliRunner().invoke(app, ["report", str(run_dir)])
    assert done.exit_code == 0, done.output
    assert "report.html" in done.output
    rebuilt = (run_dir / "report.html").read_text()
    stamp = re.compile(r'<span class="written">[^<]*</span>')
    assert len(stamp.findall(page)) == 1
    assert stamp.sub("", rebuilt) == stamp.sub("", page)
    assert _tree(run_dir) == before
    check_report(run_dir, name)
