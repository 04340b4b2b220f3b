"""A run is resumable from the moment its directory exists, and only one process writes it.

A campaign is SIGKILLed at moments before its first acquisition completes (right after its
directory appears, once its store exists, once records are committed); `--resume` then completes
it, and the summary, the progress and the store agree: the acquisition's parts hold exactly its
duration, in order, with no overlap, stamped with real dates. A process holding the run's lock
makes `analyze` and `--resume` refuse without changing a byte; once that process is killed, the
kernel has released the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.store.format import write_group
from cryodaq.acquisition.store.reader import RunReader
from tests.runs import assert_parts_exact

RIGS = Path(__file__).resolve().parents[1] / "config" / "rigs"
DURATION_S = 60.0
CAMPAIGN = f"""\
name: killed
rig: {RIGS / "maxs30_sim.yaml"}
steps:
  - set: {{adc1.channels.3-16.enabled: false}}
  - acquire:
      name: calib
      source: adc1
      duration: {DURATION_S} s
      block: 32768
      trigger: {{all: {{edge_threshold: 3 mV}}}}
  - wait: 1 s
"""
#: What must exist when the child is killed: moments before the acquisition completes.
MOMENTS = {
    "directory made": "summary.json",
    "store made": "store/zarr.json",
    "records committed": "store/acquisitions/calib/zarr.json",
}


def _committed(run_dir: Path) -> bool:
    """Whether acquisition `calib` has committed records (read as another process would)."""
    try:
        return sum(RunReader(run_dir / "store").commit("calib").rows.values()) > 0
    except Exception:  # not made yet, or caught between two writes: look again
        return False


#: A further condition on the child before it is killed.
READY = {"records committed": _committed}


def _run_until(campaign: Path, run_dir: Path, marker: str, ready: Any = None) -> None:
    """Start `cryodaq run` in a child and SIGKILL it as soon as `marker` exists (and
    `ready(run_dir)` holds, if given)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "cryodaq.acquisition", "run", str(campaign), "--out",
         str(run_dir), "--no-display"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not ((run_dir / marker).exists() and (ready is None or ready(run_dir))):
        assert child.poll() is None, child.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"{marker} never appeared"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_run_killed_before_its_first_acquisition_completes_resumes(
    tmp_path: Path, moment: str
) -> None:
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(CAMPAIGN)
    run_dir = tmp_path / "run"
    _run_until(campaign, run_dir, MOMENTS[moment], READY.get(moment))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"
    _check_resume(run_dir)


def test_a_run_killed_while_its_store_was_being_made_resumes(tmp_path: Path) -> None:
    """The store's root is written last: killed before it, the store holds only its
    `acquisitions` group (made here as the writer makes it first) and is made again."""
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(CAMPAIGN)
    run_dir = tmp_path / "run"
    _run_until(campaign, run_dir, MOMENTS["directory made"])
    shutil.rmtree(run_dir / "store", ignore_errors=True)
    write_group(run_dir / "store" / "acquisitions", {})
    _check_resume(run_dir)


def _check_resume(run_dir: Path) -> None:
    """`--resume` completes the killed run; progress, summary and store agree."""

    result = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--no-display"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    progress = json.loads((run_dir / "progress.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 3
    assert sorted(progress["done"]) == ["0", "1", "2"] and not progress["partial"]
    reader = RunReader(run_dir / "store")
    parts = progress["done"]["1"]["result"]["parts"]
    assert parts == [a for a in reader.acquisitions() if a.startswith("calib")]
    times = assert_parts_exact(reader, parts, DURATION_S)
    assert summary["live_time_s"] == pytest.approx(DURATION_S)
    # Simulated time starts at the run's wall-clock start: records carry real dates.
    assert abs(times[0][0] / 1e9 - time.time()) < 3600


HOLDER = """
import sys, time
from pathlib import Path
from typing import Any
from cryodaq.acquisition.store.lock import RunLock
RunLock(Path(sys.argv[1])).acquire("a test holding it")
print("held", flush=True)
time.sleep(600)
"""


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"
    }  # fmt: skip


def test_a_locked_run_is_refused_untouched_and_freed_when_its_holder_dies(tmp_path: Path) -> None:
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(textwrap.dedent(CAMPAIGN).replace(f"{DURATION_S} s", "1 s"))
    run_dir = tmp_path / "run"
    done = CliRunner().invoke(app, ["run", str(campaign), "--out", str(run_dir), "--no-display"])
    assert done.exit_code == 0, done.output
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"  # type: ignore[union-attr]
        before = _snapshot(run_dir)
        for args in (["analyze", str(run_dir), "pulses"], ["run", "--resume", str(run_dir)]):
            refused = CliRunner().invoke(app, args)
            assert refused.exit_code == 2, refused.output
            assert f"in use by pid {holder.pid} (a test holding it)" in refused.output
            assert _snapshot(run_dir) == before  # not a byte changed, no log written
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    after = CliRunner().invoke(app, ["run", "--resume", str(run_dir)])
    assert after.exit_code == 2 and "the campaign completed; nothing to resume" in after.output
