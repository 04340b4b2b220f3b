"""The README's first command: the quickstart campaign, then `analyze` and `export` on its run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from report_checks import check_report

from cryodaq.acquisition.store.ljh import read_ljh
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.sim_instruments.mmc_pixels import PixelModel

ROOT = Path(__file__).resolve().parents[1]


def cryodaq(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cryodaq.acquisition", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("qs") / "run"
    done = cryodaq("run", "config/campaigns/quickstart.yaml", "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed: 4 steps" in done.stdout
    return run_dir


def test_quickstart_writes_summary_figures_and_report(quickstart: Path) -> None:
    summary = json.loads((quickstart / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["live_time_s"] == 30.0
    assert summary["virtual_time_s"] >= 60 and summary["versions"]["cryodaq"]
    mean = summary["analyze"]["resolution"]["mean"]
    # The rig's detector: the MMC model's rise and decay at the regulated 20 mK (~10 us and
    # ~3 ms; spread 3 % rms per channel), 5 pulses/s (4% lost to the 8 ms holdoff).
    entry = yaml.safe_load((ROOT / "config/rigs/mmc_simple_sim.yaml").read_text())["world"][
        "detectors"]["mmc"]
    nominal = {**entry, "resistance_spread": 0.0, "thickness_spread": 0.0}
    model = PixelModel(nominal, "mmc", 1, np.random.default_rng(0)).response(0.020)
    assert mean["channels"] == 8
    assert mean["rise_s"] == pytest.approx(float(model.rise_s[0]), rel=0.05)
    assert mean["decay_s"] == pytest.approx(float(model.decay_s[0]), rel=0.05)
    assert mean["rate_hz"] == pytest.approx(5.0 / (1 + 5.0 * 4096 / 500e3), rel=0.1)
    # Mono-energetic lines: the line width is the noise's, which the filter predicts.
    assert mean["fwhm_eV"] == pytest.approx(mean["predicted_fwhm_eV"], rel=0.1)
    assert mean["baseline_fwhm_eV"] == pytest.approx(mean["predicted_fwhm_eV"], rel=0.05)
    report = (quickstart / "report.html").read_text()
    for figure in summary["figures"]:
        assert (quickstart / figure).stat().st_size > 10_000
        assert figure in report
    for name in ("campaign.json", "cryodaq.log", "progress.json"):
        assert (quickstart / name).exists()


def test_report_reads_headline_first(quickstart: Path) -> None:
    check_report(quickstart, "quickstart")


def test_analyze_reproduces_the_stored_analysis(quickstart: Path) -> None:
    before = json.loads((quickstart / "summary.json").read_text())["analyze"]["resolution"]
    done = cryodaq("analyze", str(quickstart))
    assert done.returncode == 0, done.stderr
    after = json.loads((quickstart / "summary.json").read_text())["analyze"]["resolution"]
    assert after["mean"] == pytest.approx(before["mean"])


def test_export_writes_ljh_that_reads_back(quickstart: Path, tmp_path: Path) -> None:
    done = cryodaq("export", str(quickstart), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    reader = RunReader(quickstart / "store")
    for ch in reader.channels("calib"):
        ljh = read_ljh(tmp_path / f"calib_chan{ch}.ljh")
        stored = reader.read("calib", ch, ["records", "sample_index"])
        assert np.array_equal(ljh.raw.astype(np.int32) - 32768, stored["records"])
        assert np.array_equal(ljh.records, stored["records"])
        assert np.array_equal(ljh.frame_count, stored["sample_index"])


def test_unknown_pipeline_and_missing_run_dir_are_one_line(tmp_path: Path) -> None:
    done = cryodaq("analyze", str(tmp_path))
    assert done.returncode == 2 and "not a cryodaq run directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_kbeta_lands_at_its_energy_though_only_kalpha_calibrated(quickstart: Path) -> None:
    """An independent check of filter and calibration: the pipeline was told only the Ka
    energy; the simulator's (linear) detector puts Kb at 6490.45 eV."""
    from cryodaq.acquisition.events import TriggerKind
    from cryodaq.acquisition.stream.online_analysis import StoredFilter

    reader = RunReader(quickstart / "store")
    stored = StoredFilter.load(quickstart / "filters" / "calib.npz")
    kbeta = []
    for ch in reader.channels("calib"):
        data = reader.read("calib", ch, ["records", "summaries", "trigger_kind"])
        pulses = data["trigger_kind"] == TriggerKind.EDGE
        _, energy = stored.filters[ch].energies(
            data["records"][pulses], data["summaries"]["pretrig_mean"][pulses]
        )
        kbeta.extend(energy[np.abs(energy - 6490) < 40])
    assert len(kbeta) > 20  # 12 % of ~1000 pulses
    # ~4 eV FWHM per event: the median of >20 events is good to ~1 eV.
    assert np.median(kbeta) == pytest.approx(6490.45, abs=2.0)
