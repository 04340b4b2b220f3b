"""A TCP instrument that dies mid-run and comes back: the run fails in one line, keeps what
was committed, and `--resume` against the restarted instrument acquires exactly the rest.

The instruments are `cryodaq serve-sim` (a real process on real sockets, real time); the
campaign's rig reaches them through pyvisa-py as a lab rig would. serve-sim is SIGKILLed
while `calib` acquires, then started again on the same ports.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.store.reader import RunReader
from tests.runs import assert_parts_exact
from tests.served import serve_sim

RIG = Path(__file__).resolve().parents[1] / "config" / "rigs" / "mmc_simple_sim.yaml"
DURATION_S = 6.0


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _committed(run_dir: Path) -> bool:
    try:
        return sum(RunReader(run_dir / "store").commit("calib").rows.values()) > 0
    except Exception:  # not made yet, or between two writes
        return False


def test_an_instrument_lost_and_restarted_mid_run_resumes_exactly(tmp_path: Path) -> None:
    served = yaml.safe_load(RIG.read_text())
    lab = {"name": "lab", "instruments": {}}
    for (name, inst), port in zip(served["instruments"].items(), _free_ports(4), strict=True):
        inst["address"] = f"TCPIP0::127.0.0.1::{port}::SOCKET"
        lab["instruments"][name] = {
            "driver": inst["driver"], "address": f"TCPIP::127.0.0.1::{port}::SOCKET",
            "backend": "py", "timeout": "2 s",
        }  # fmt: skip
    (tmp_path / "served.yaml").write_text(yaml.safe_dump(served))
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(lab))
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(yaml.safe_dump({"name": "lost", "rig": "lab.yaml", "steps": [
        {"set": {"adc1.channels.3-16.enabled": False, "adc1.sample_rate": "100 kHz"}},
        {"acquire": {"name": "calib", "source": "adc1", "duration": f"{DURATION_S} s",
                     "block": 8192,
                     "trigger": {"all": {"edge_threshold": "3 mV", "noise_every": "10 ms"}}}},
    ]}))  # fmt: skip
    run_dir = tmp_path / "run"

    with serve_sim(tmp_path / "served.yaml") as server:
        run = subprocess.Popen(
            [sys.executable, "-m", "cryodaq.acquisition", "run", str(campaign), "--out",
             str(run_dir), "--no-display"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not _committed(run_dir):
                assert run.poll() is None and time.monotonic() < deadline, run.communicate()
                time.sleep(0.02)
            server.proc.send_signal(signal.SIGKILL)  # the instruments die mid-acquisition
            server.proc.wait(timeout=30)
            out, err = run.communicate(timeout=120)
        finally:
            run.kill()
    assert run.returncode == 1, out + err
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "adc1" in lines[0], err
    assert f"get 'adc1' answering again, then `cryodaq run --resume {run_dir}`" in lines[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"

    with serve_sim(tmp_path / "served.yaml"):  # back, on the same ports
        resumed = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--no-display"])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads((run_dir / "summary.json").read_text())
    progress = json.loads((run_dir / "progress.json").read_text())
    assert summary["status"] == "completed" and not progress["partial"]
    reader = RunReader(run_dir / "store")
    parts = progress["done"]["1"]["result"]["parts"]
    assert len(parts) == 2 and parts == [a for a in reader.acquisitions()]
    assert_parts_exact(reader, parts, DURATION_S)
    assert summary["live_time_s"] == pytest.approx(DURATION_S)
