"""A full disk ends a run in a state `--resume` continues from, with exactly what the store holds.

A campaign writes its run onto a small tmpfs the test mounts until the disk is full (after some
commits: the store's buffer is small): the run
fails with one line naming the path, "no space left on device" and how to continue (exit 1, no
traceback, no logging errors). Once the filesystem is grown, `--resume` completes the run, and
the summary, the progress and the store agree: the parts hold exactly the duration, in order,
never overlapping. Skipped where mounting a filesystem is not permitted (not root).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryodaq.acquisition.store.reader import RunReader
from tests.runs import assert_parts_exact

RIGS = Path(__file__).resolve().parents[1] / "config" / "rigs"
DURATION_S = 4.0
CAMPAIGN = f"""\
name: full
rig: {RIGS / "maxs30_sim.yaml"}
store: {{buffer: 256 KiB}}  # commits every 256 KiB of batches, however fast the simulation
steps:
  - set: {{adc1.channels.5-16.enabled: false}}
  - acquire:
      name: noise
      source: adc1
      duration: {DURATION_S} s
      block: 32768
      trigger: {{all: {{edge_threshold: 3 mV, noise_every: 1 ms}}}}
"""


@contextlib.contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` (the test is skipped where mounting is refused)."""
    where.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           capture_output=True, text=True)  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mount.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _cryodaq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cryodaq.acquisition", *args, "--no-display"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_a_full_disk_fails_in_one_line_and_the_run_resumes_exactly(tmp_path: Path) -> None:
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(CAMPAIGN)
    with small_filesystem(tmp_path / "disk", "5m") as disk:
        run_dir = disk / "run"
        failed = _cryodaq("run", str(campaign), "--out", str(run_dir))
        output = failed.stdout + failed.stderr
        assert failed.returncode == 1, output
        assert "Traceback" not in output and "Logging error" not in output, output
        lines = [line for line in output.splitlines() if "no space left on device" in line]
        assert len(lines) == 1 and "--resume" in lines[0] and str(disk) in lines[0], output

        subprocess.run(["mount", "-o", "remount,size=512m", str(disk)], check=True)
        progress = json.loads((run_dir / "progress.json").read_text())
        reader = RunReader(run_dir / "store")
        (part,) = progress["partial"]["1"]["parts"]
        rate = reader.info(part)["sample_rate_hz"]
        committed = reader.commit(part)
        assert progress["partial"]["1"]["live_s"] == committed.processed_samples / rate
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "failed" and "no space left on device" in summary["error"]
        entry = summary["acquisitions"][part]
        assert entry["records"] == committed.total_rows
        assert entry["live_time_s"] == committed.processed_samples / rate
        print(f"at the failure: {committed.total_rows} records, "
              f"{committed.processed_samples / rate:.6g} s committed and reported")

        resumed = _cryodaq("run", "--resume", str(run_dir))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        summary = json.loads((run_dir / "summary.json").read_text())
        progress = json.loads((run_dir / "progress.json").read_text())
        assert summary["status"] == "completed" and not progress["partial"]
        parts = progress["done"]["1"]["result"]["parts"]
        reader = RunReader(run_dir / "store")
        assert parts == [a for a in reader.acquisitions() if a.startswith("noise")]
        assert len(parts) == 2
        assert_parts_exact(reader, parts, DURATION_S)
        assert summary["live_time_s"] == pytest.approx(DURATION_S, abs=1 / rate)
        for p in parts:
            assert summary["acquisitions"][p]["records"] == reader.commit(p).total_rows
