"""Run-store format: names, constants and JSON attributes (docs/run_store.md)."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import platform
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from cryodaq.acquisition.atomic import write_json_atomic
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.events import SUMMARY_DTYPE

log = logging.getLogger(__name__)


FORMAT = "cryodaq-run"
FORMAT_VERSION = 1
#: Per-record fields every channel stores, besides `records` and the summaries.
EVENT_FIELDS: dict[str, np.dtype] = {
    "sample_index": np.dtype("<i8"),
    "timestamp_ns": np.dtype("<i8"),
    "trigger_kind": np.dtype("u1"),
    "coincidence": np.dtype("<u2"),
}
SUMMARY_FIELDS: tuple[str, ...] = tuple(SUMMARY_DTYPE.names or ())
CHUNK_BYTES = 512 * 1024  # target size of a records chunk
#: The most acquired data (bytes) an acquisition's writer buffers before it flushes.
DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024
#: Rows per chunk of the uncompressed per-record arrays (appended in place: a larger chunk
#: costs no rewriting, only fewer files).
EVENT_CHUNK_ROWS = 32768
#: The separator of the writer's chunk keys (Zarr v3 `default` encoding): "." keeps every chunk
#: of an array in the array's directory (`c.12.0`), no directory per chunk. Stores written with
#: "/" (`c/12/0`) read alike.
CHUNK_KEY_SEPARATOR = "."
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RunStoreError(CryodaqError):
    """A run store cannot be created, written or read as asked; the message names the path."""


# ---------------------------------------------------------------------------------------------
# files


def write_json(path: Path, obj: Any) -> None:
    """Replace a JSON file of the store atomically, as its chunks are (safe from a dying writer,
    no fsync: see `write_atomic`); indent 1, as commits are rewritten at every flush."""
    write_json_atomic(path, obj, indent=1, fsync=False)


def read_json(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return json.load(f)


def write_group(directory: Path, attrs: Mapping[str, Any]) -> None:
    """Write a Zarr v3 group's `zarr.json` (creating the directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"zarr_format": 3, "node_type": "group", "attributes": dict(attrs)}
    write_json(directory / "zarr.json", meta)


def group_attrs(directory: Path) -> dict[str, Any]:
    return read_json(directory / "zarr.json")["attributes"]


def check_json(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise RunStoreError(f"{what} must be JSON-serialisable: {exc}") from None


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RunStoreError(f"{what} {name!r}: use letters, digits, '_', '.', '-' only")
    return name


def now() -> dict[str, Any]:
    ns = time.time_ns()
    return {"unix_ns": ns, "iso": datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()}


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def software_versions() -> dict[str, str]:
    """Versions of cryodaq and of the libraries that shape the data."""
    return {
        "cryodaq": _version("cryodaq"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": _version("numba"),
        "zarr": zarr.__version__,
    }


def chunk_key(index: int, tail_dims: int, separator: str = CHUNK_KEY_SEPARATOR) -> str:
    """The key (file path below the array's directory) of row-chunk `index` of an array whose
    rows have `tail_dims` dimensions, in Zarr v3's `default` chunk key encoding."""
    return separator.join(["c", str(index), *["0"] * tail_dims])


def channel_group(ch: int) -> str:
    """Name of channel `ch`'s group inside an acquisition (`ch003`)."""
    return f"ch{int(ch):03d}"
