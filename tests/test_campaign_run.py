"""`cryodaq run` end to end: steps on simulated rigs, run directory, interrupt and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.store.format import RunStoreError
from cryodaq.acquisition.store.reader import RunReader

ROOT = Path(__file__).resolve().parents[1]
RIGS = ROOT / "config" / "rigs"


def campaign(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.yaml"
    path.write_text(textwrap.dedent(text).replace("RIGS", str(RIGS)))
    return path


def cryodaq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cryodaq.acquisition", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_haloscope_sweep_sees_peak_and_dip_where_the_cavity_model_puts_them(tmp_path: Path) -> None:
    path = campaign(
        tmp_path,
        """\
        name: halo-mini
        rig: RIGS/haloscope_sim.yaml
        steps:
          - reflection: {name: s11, instrument: vst, start: 4.9430 GHz, stop: 4.9460 GHz,
                         points: 601}
          - sweep:
              over:
                tc.outputs.0.setpoint: [100 mK, 300 mK]
                tc.analog.2.setpoint: [300 mK, 100 mK]
                tc.outputs.0.mode: [CLOSED_LOOP, CLOSED_LOOP]
                tc.analog.2.mode: [CLOSED_LOOP, CLOSED_LOOP]
              steps:
                - wait_stable: {sensor: tc.2, tolerance: 2 mK, window: 20 s, timeout: 30 min}
                - wait_stable: {sensor: tc.3, tolerance: 2 mK, window: 20 s, timeout: 30 min}
                - spectrum: {name: spec, instrument: vst, span: 4 MHz, integration: 60 s}
        """,
    )
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(run_dir), "--no-display"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["simulated"]
    assert summary["virtual_time_s"] > 120 and summary["wall_time_s"] < summary["virtual_time_s"]
    assert [s["id"] for s in summary["steps"]] == [
        "0",
        "1.0.0",
        "1.0.1",
        "1.0.2",
        "1.1.0",
        "1.1.1",
        "1.1.2",
    ]
    contrast = []
    for k in (0, 1):
        data = np.load(run_dir / "data" / f"spec.{k}.npz")
        f, p = data["frequencies_Hz"], data["power_W"]
        centre = np.abs(f - 4.944458e9) < 100e3
        wings = np.abs(f - 4.944458e9) > 1.5e6
        contrast.append(p[centre].mean() / p[wings].mean() - 1)
        meta = json.loads((run_dir / "data" / f"spec.{k}.json").read_text())
        att, cav = meta["temperatures_K"]["tc.2"], meta["temperatures_K"]["tc.3"]
        assert abs(att - (0.1, 0.3)[k]) < 2e-3 and abs(cav - (0.3, 0.1)[k]) < 2e-3
    # T_c > T_att: the cavity's own radiation shows a peak; T_att > T_c: a dip (Eqs 1-4).
    # Per-bin scatter 1/sqrt(1 kHz x 60 s) = 0.4 %, averaged over ~200 bins: ~0.03 %.
    assert contrast[0] > 0.005 and contrast[1] < -0.005
    s11 = np.load(run_dir / "data" / "s11.npz")
    assert s11["s11"].size == 601
    assert (run_dir / "report.html").exists() and (run_dir / "cryodaq.log").exists()
    assert json.loads((run_dir / "campaign.json").read_text())["rig"]["name"] == "haloscope_sim"


MAXS30_LONG = """\
    name: long
    rig: RIGS/maxs30_sim.yaml
    steps:
      - set: {adc1.channels.3-16.enabled: false, tc.outputs.0.setpoint: 20 mK}
      - wait: 5 s
      - acquire:
          name: calib
          source: adc1
          duration: 300 s
          block: 32768
          trigger: {all: {edge_threshold: 3 mV}}
      - wait: 1 s
    """


#: Committed records of channel 1 after which a test interrupts `acquire calib`.
MID_ROWS = 30


def _wait_for_committed(store: Path, acq: str, rows: int, deadline_s: float) -> None:
    """Wait until acquisition `acq` has committed at least `rows` records of channel 1."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if RunReader(store).committed(acq, 1) >= rows:
                return
        except (RunStoreError, OSError, ValueError, KeyError):
            pass  # the store or the acquisition is still being made
        time.sleep(0.2)
    raise AssertionError(f"{acq}: fewer than {rows} records committed in {deadline_s} s")


def _signal_mid_acquisition(path: Path, run_dir: Path, sig: int) -> tuple[int, str]:
    """Run campaign `path` in a child process and send it `sig` once `acquire calib` has
    committed `MID_ROWS` records of channel 1 (whatever the machine's load); its exit code and
    output."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cryodaq.acquisition",
            "run",
            str(path),
            "--out",
            str(run_dir),
            "--no-display",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in child.stderr:  # step lines go to stderr when there is no terminal
            if "acquire calib" in line:
                break
        _wait_for_committed(run_dir / "store", "calib", MID_ROWS, deadline_s=120.0)
        child.send_signal(sig)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    return child.returncode, out + err


def _resume_completes_once(run_dir: Path) -> tuple[dict, RunReader]:
    """Resume the run: every step exactly once, 300 s of data in two parts, nothing twice."""
    resumed = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--no-display"])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert [s["id"] for s in summary["steps"]] == ["0", "1", "2", "3"]  # each exactly once
    reader = RunReader(run_dir / "store")
    assert reader.acquisitions() == ["calib", "calib-part2"]
    live = sum(reader.commit(a).processed_samples for a in reader.acquisitions()) / 500e3
    assert live == pytest.approx(300.0, abs=1 / 500e3)  # nothing missing, nothing twice
    assert summary["steps"][2]["result"]["parts"] == ["calib", "calib-part2"]
    assert summary["live_time_s"] == pytest.approx(300.0, abs=1 / 500e3)
    return summary, reader


def test_resume_after_ctrl_c_mid_acquisition_completes_every_step_once(tmp_path: Path) -> None:
    path = campaign(tmp_path, MAXS30_LONG)
    run_dir = tmp_path / "run"
    code, output = _signal_mid_acquisition(path, run_dir, signal.SIGINT)
    assert code == 130, output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    first = summary["acquisitions"]["calib"]["live_time_s"]
    assert 0 < first < 300
    summary, reader = _resume_completes_once(run_dir)
    # The resumed simulated rig is a later stretch of the experiment: new events, later times.
    first = reader.read("calib", 1, ["records", "timestamp_ns"])
    second = reader.read("calib-part2", 1, ["records", "timestamp_ns"])
    assert second["timestamp_ns"].min() > first["timestamp_ns"].max()
    assert not np.array_equal(first["records"][:3], second["records"][:3])


def test_resume_after_sigkill_keeps_what_was_committed(tmp_path: Path) -> None:
    """A killed run (no close, no progress for the step) is sealed at its last commit on
    resume; that part is kept (marked "writer died") and the step acquires only the rest."""
    path = campaign(tmp_path, MAXS30_LONG)
    run_dir = tmp_path / "run"
    code, output = _signal_mid_acquisition(path, run_dir, signal.SIGKILL)
    assert code == -signal.SIGKILL, output
    killed = RunReader(run_dir / "store")
    assert not killed.metadata["complete"]
    kept = killed.read("calib", 1, ["records", "sample_index"])
    committed = killed.commit("calib").processed_samples / 500e3
    assert 0 < committed < 300
    summary, reader = _resume_completes_once(run_dir)
    assert summary["acquisitions"]["calib"]["end_reason"] == "writer died"
    assert summary["acquisitions"]["calib"]["live_time_s"] == pytest.approx(committed)
    assert reader.metadata["resumes"][0]["after"].startswith("writer died (pid ")
    again = reader.read("calib", 1, ["records", "sample_index"])  # the same rows, trimmed to them
    assert np.array_equal(again["records"], kept["records"])
    assert np.array_equal(again["sample_index"], kept["sample_index"])
    stored = zarr.open_array(
        str(run_dir / "store" / "acquisitions" / "calib" / "ch001" / "records")
    )
    assert stored.shape[0] == kept["records"].shape[0]


HOLMES_TUNED = """\
    name: tuned
    rig: RIGS/holmes_sim.yaml
    steps:
      - set: {roach.ramp_frequency: 500 kHz, roach.ramp_amplitude: 2, roach.ramp_on: true}
      - tune: {name: tune, instrument: roach, points: 40001, channels: 1}
      - acquire:
          name: calib
          source: roach
          duration: 30 s
          record_length: 1024
          pretrigger: 256
          trigger: {all: {edge_threshold: 0.01 Phi0}}
    """


def test_resume_after_a_tune_puts_its_tones_back(tmp_path: Path) -> None:
    """Ctrl-C in the acquisition after a tune: the resumed run (a new board session) gets the
    tune's tone back without sweeping again: both parts of the acquisition were read with
    the tone the tune placed (the settings stored with each part), and both see pulses."""
    path = campaign(tmp_path, HOLMES_TUNED)
    run_dir = tmp_path / "run"
    code, output = _signal_mid_acquisition(path, run_dir, signal.SIGINT)
    assert code == 130, output
    resumed = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--no-display"])
    assert resumed.exit_code == 0, resumed.output
    assert "restoring tones" in resumed.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [s["id"] for s in summary["steps"]] == ["0", "1", "2"]  # the tune ran once
    reader = RunReader(run_dir / "store")
    tone = float(np.load(run_dir / "data" / "tune.npz")["tones_hz"][0])
    assert reader.acquisitions() == ["calib", "calib-part2"]
    for part in reader.acquisitions():
        channel = reader.info(part)["metadata"]["channel_settings"]["1"]
        assert channel["enabled"] is True and channel["frequency"] == pytest.approx(tone), part
        d = reader.read(part, 1, ["trigger_kind"])
        assert np.sum(d["trigger_kind"] == 1) > 10, part


def test_failing_step_stops_the_campaign_with_one_clear_line(tmp_path: Path) -> None:
    path = campaign(
        tmp_path,
        """\
        name: too-cold
        rig: RIGS/maxs30_sim.yaml
        steps:
          - set: {tc.outputs.0.setpoint: 5 mK}
          - wait_stable: {sensor: tc.1, tolerance: 0.1 mK, window: 10 s, timeout: 2 min}
          - wait: 1 s
        """,
    )
    run_dir = tmp_path / "run"
    done = cryodaq("run", str(path), "--out", str(run_dir), "--no-display")
    assert done.returncode == 1
    assert "wait_stable tc.1: not within 0.1 mK of 5 mK for 10 s after 120 s" in done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and [s["id"] for s in summary["steps"]] == ["0"]


def test_an_unexpected_error_fails_the_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug-like exception inside a step (here the analysis raising KeyError) must never be
    recorded as completed: the run fails in one line naming it, the store is closed."""

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("line_eV")

    monkeypatch.setattr("cryodaq.acquisition.campaign.steps.analyze.analyze", broken)
    path = campaign(
        tmp_path,
        """\
        name: bad-option
        rig: RIGS/maxs30_sim.yaml
        steps:
          - set: {adc1.channels.3-16.enabled: false}
          - acquire: {name: calib, source: adc1, duration: 2 s,
                      trigger: {all: {edge_threshold: 3 mV}}}
          - analyze: {pipeline: pulses, acquisitions: [calib]}
          - wait: 1 s
        """,
    )
    run_dir = tmp_path / "run"
    done = CliRunner().invoke(app, ["run", str(path), "--out", str(run_dir), "--no-display"])
    assert done.exit_code == 1, done.output
    assert "Traceback" not in done.output and "unexpected KeyError" in done.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and [s["id"] for s in summary["steps"]] == ["0", "1"]
    assert RunReader(run_dir / "store").metadata["end_reason"].startswith("failed")
