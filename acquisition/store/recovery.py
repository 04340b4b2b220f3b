"""Recovery of a run whose writer died (killed, out of memory, power cut) so it can be resumed.

Every committed row of such a run is readable as it is (`cryodaq.acquisition.store.writer`); what
it lacks is the close: its open acquisitions still have arrays sized ahead of their rows and no
stop, and the run is not marked complete. Sealing does what the close would have done with the last
commit: each array's shape is trimmed to its committed rows (rows written after the commit
fall outside, as if never written), the acquisition is marked closed with its live time, and
the run ends with end reason "writer died". Only when the writer is known to be dead: its
process is gone from this host; a writer on another host is left alone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryodaq.acquisition.store.commit import Commit
from cryodaq.acquisition.store.format import (
    RunStoreError,
    group_attrs,
    now,
    read_json,
    write_group,
    write_json,
)

#: End reason of a run, and stop note of its acquisitions, sealed after its writer died.
WRITER_DIED = "writer died"
#: Stop note of an acquisition sealed after the run store could not be written (a full disk).
STORE_FAILED = "store failed"


def writer_alive(writer: dict[str, Any]) -> bool | None:
    """Whether the process that wrote a run still runs: True/False on this host, None when it
    ran on another host (this one cannot tell)."""
    if writer.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(writer["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process holds that pid
        return True
    return True


def _trim_arrays(group: Path, rows: int) -> None:
    """Shape every Zarr array under `group` to `rows` rows."""
    for meta_path in sorted(group.rglob("zarr.json")):
        meta = read_json(meta_path)
        if meta.get("node_type") == "array" and meta["shape"][0] != rows:
            meta["shape"] = [rows, *meta["shape"][1:]]
            write_json(meta_path, meta)


def seal_acquisition(directory: Path, note: str = WRITER_DIED) -> bool:
    """Close one acquisition at its last commit, with stop note `note`; False if it was
    closed already."""
    attrs = group_attrs(directory)
    config, stored = attrs["acquisition"], attrs["commit"]
    commit = None if stored is None else Commit.from_json(stored)
    if commit is None or commit.closed:
        return False
    for group, rows in commit.rows.items():
        _trim_arrays(directory / group, int(rows))
    _trim_arrays(directory / "gaps", commit.gaps)
    config = {
        **config,
        "stop": now(),
        "stop_note": note,
        "live_time_s": commit.processed_samples / config["sample_rate_hz"],
    }
    closed = replace(commit, closed=True)
    write_group(directory, {"acquisition": config, "commit": closed.to_json()})
    return True


def seal_dead_run(path: Path) -> list[str]:
    """Seal the run at `path` if its writer died (see module docstring); returns the
    acquisitions it closed. Raises RunStoreError while the writer may still be writing."""
    attrs = group_attrs(path)
    if attrs.get("complete"):
        return []
    writer = attrs.get("writer") or {}
    if "pid" not in writer or "host" not in writer:
        raise RunStoreError(f"{path}: the run is open and names no writer process; cannot tell "
                            "whether it is still being written")
    alive = writer_alive(writer)
    who = f"pid {writer.get('pid')} on {writer.get('host')}"
    if alive is None:
        raise RunStoreError(
            f"{path}: the run is open, written by {who}; resume it on that host (this one "
            "cannot tell whether that writer is still alive)"
        )
    if alive:
        raise RunStoreError(f"{path}: the run is still being written by {who}; stop it first")
    sealed = [
        name for name in attrs["acquisitions"]
        if seal_acquisition(path / "acquisitions" / name)
    ]
    attrs.update(complete=True, stop=now(), end_reason=f"{WRITER_DIED} ({who})")
    write_group(path, attrs)
    return sealed
