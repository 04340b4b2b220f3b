"""Atomic replacement of files and directories: readers and crashes never see half of one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: str | bytes, *, fsync: bool = True) -> None:
    """Replace `path` with `data` (str is written as UTF-8).

    The data go to a temporary file in the same directory (named after `path`, the process and
    the thread, so concurrent writers never share one), are flushed and fsynced, and the file
    is renamed over `path` (`os.replace`); the directory is then fsynced where the system allows
    it, so the rename itself survives a power cut. On any error, KeyboardInterrupt included,
    the temporary file is removed and `path` is left as it was.

    `fsync=False` skips both fsyncs: the replacement is still atomic for readers and survives
    the death of the writing process, not a power cut. The run store writes its chunks so (by
    the hundred per flush, where an fsync each would cost more than the flush itself).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_directory(path.parent)


def write_json_atomic(
    path: Path,
    obj: Any,
    *,
    indent: int = 2,
    default: Callable[[Any], Any] | None = None,
    fsync: bool = True,
) -> None:
    """Replace `path` with `obj` as JSON (`json.dumps` with `indent` and `default`)."""
    write_atomic(path, json.dumps(obj, indent=indent, default=default), fsync=fsync)


def replace_directory(new: Path, target: Path) -> None:
    """Put directory `new` in place of `target` (same parent), replacing an existing one.

    A directory cannot be renamed over a non-empty one, so an existing `target` is renamed
    aside first and removed once `new` is in place; if `new` cannot be put in place, the old
    one is put back. Between the two renames (a moment) there is no `target` at all.
    """
    old = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.old")
    replacing = target.exists()
    if replacing:
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if replacing:
            os.replace(old, target)
        raise
    _fsync_directory(target.parent)
    if replacing:
        shutil.rmtree(old)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable; a no-op where directories cannot be opened
    (Windows) or synced (some network file systems)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
