"""Crash-safe Zarr v3 run store: one directory per run, written while a second process reads it.

Layout and guarantees: docs/run_store.md. In short, every array of a channel is append-only;
a flush writes the new rows (each chunk file is replaced atomically: temp file + rename), then
publishes the per-channel row counts (the *commit*) in the acquisition group's `zarr.json`,
again atomically (`store.acquisition_writer`). Readers read the commit first and never look past
it, so a process killed at any moment leaves every committed row readable and consistent.
Flushes happen at most `flush_interval_s` apart (from a background thread) or at once when the
buffer exceeds its byte budget, so what was appended more than about a second before a crash is
on disk. zarr creates every array's metadata and reads everything back, so the files are plain
Zarr v3 that any zarr reader can open.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from cryodaq.acquisition.store.acquisition_writer import AcquisitionWriter
from cryodaq.acquisition.store.codecs import DEFAULT_RECORDS_CODEC, codec_named
from cryodaq.acquisition.store.format import (
    DEFAULT_BUFFER_BYTES,
    FORMAT,
    FORMAT_VERSION,
    RunStoreError,
    check_json,
    check_name,
    now,
    software_versions,
    write_group,
)
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.recovery import seal_dead_run

log = logging.getLogger(__name__)


class RunWriter:
    """Writes one run directory; use as a context manager so any exit still leaves it complete.

    On leaving the `with` block normally the run is closed with end_reason "completed"; on
    KeyboardInterrupt or any exception every acquisition is still flushed and closed, and the
    run records "interrupted: <exception>" as its end_reason before the exception goes on.
    Its acquisitions' records are compressed with `records_codec` (`store.codecs`).
    """

    def __init__(
        self,
        path: Path,
        metadata: Mapping[str, Any],
        *,
        flush_interval_s: float,
        buffer_bytes: int,
        compress_records: bool,
        background_flush: bool,
        resume: bool = False,
        records_codec: str = DEFAULT_RECORDS_CODEC,
    ) -> None:
        self.path = path
        self.records_codec = codec_named(records_codec, f"{path}: records_codec").name
        self.buffer_bytes = int(buffer_bytes)
        self._options = {
            "flush_interval_s": flush_interval_s,
            "buffer_bytes": buffer_bytes,
            "compress_records": compress_records,
            "background_flush": background_flush,
            "records_codec": self.records_codec,
        }
        self._lock = threading.Lock()
        self._open: dict[str, AcquisitionWriter] = {}
        self._closed = False
        if resume:
            self._attrs = self._reopened(path, metadata)
        else:
            self._attrs = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "metadata": check_json(dict(metadata), f"{path}: run metadata"),
                "versions": software_versions(),
                "writer": {"pid": os.getpid(), "host": socket.gethostname()},
                "start": now(),
                "stop": None,
                "complete": False,
                "end_reason": None,
                "acquisitions": [],
                "summary": None,
            }
            write_group(path / "acquisitions", {})
        write_group(path, self._attrs)

    @staticmethod
    def _reopened(path: Path, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Root attributes of a closed run, marked open again for more acquisitions, with the
        keys of `metadata` it lacks added; a run whose writer died is sealed at its last
        commits first (`store.recovery`)."""
        metadata = check_json(dict(metadata), f"{path}: run metadata")
        sealed = seal_dead_run(path)
        if sealed:
            log.warning("%s: its writer died; sealed %s at their last commits", path,
                        ", ".join(sealed))
        attrs = RunReader(path).metadata
        resumes = [*attrs.get("resumes", []), {"at": now(), "after": attrs.get("end_reason")}]
        kept = {**metadata, **(attrs.get("metadata") or {})}
        return {
            **attrs,
            "metadata": kept,
            "complete": False,
            "end_reason": None,
            "stop": None,
            "resumes": resumes,
        }

    def acquisition(
        self,
        name: str,
        channels: Sequence[int],
        record_length: int,
        dtype: np.dtype | str,
        sample_rate_hz: float,
        pretrigger: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> AcquisitionWriter:
        """Start acquisition `name` (its channels, record shape and sample rate are fixed)."""
        check_name(name, f"{self.path}: acquisition name")
        with self._lock:
            if self._closed:
                raise RunStoreError(f"{self.path}: the run is closed")
            if name in self._attrs["acquisitions"]:
                raise RunStoreError(f"{self.path}: acquisition {name!r} exists already")
            acq = AcquisitionWriter(
                self,
                name,
                channels,
                record_length,
                dtype,
                sample_rate_hz,
                pretrigger,
                metadata,
                **self._options,
            )
            self._open[name] = acq
            self._attrs["acquisitions"].append(name)
            write_group(self.path, self._attrs)
        return acq

    def _acquisition_closed(self, acq: AcquisitionWriter) -> None:
        with self._lock:
            self._open.pop(acq.name, None)

    def adopt(self, name: str) -> None:
        """List acquisition `name`, created and written in this run's directory by another
        process (a board task: `cryodaq.acquisition.cluster.boards`). Its own commits make it
        crash-safe; only this writer writes the run's root attributes. Idempotent."""
        check_name(name, f"{self.path}: acquisition name")
        commit = RunReader(self.path)._acq_attrs(name).get("commit")
        if commit is None:
            raise RunStoreError(f"{self.path}: acquisition {name!r} is still being created")
        with self._lock:
            if self._closed:
                raise RunStoreError(f"{self.path}: the run is closed")
            if name not in self._attrs["acquisitions"]:
                self._attrs["acquisitions"].append(name)
                write_group(self.path, self._attrs)

    def close(self, end_reason: str = "completed") -> None:
        """Close every open acquisition, then mark the run complete with totals; idempotent."""
        if self._closed:
            return
        errors = []
        for acq in list(self._open.values()):
            try:
                acq.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            msg = f"{self.path}: closing acquisitions failed: {errors}"
            raise RunStoreError(msg) from errors[0]
        with self._lock:
            self._attrs["stop"] = now()
            self._attrs["complete"] = True
            self._attrs["end_reason"] = end_reason
            self._attrs["summary"] = RunReader(self.path).summary(include_run=False)
            write_group(self.path, self._attrs)
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            reason = f"interrupted: {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
            self.close(end_reason=reason)
        except Exception as close_exc:  # the original exception goes on; this one is reported
            log.exception("closing run store %s after %r failed", self.path, exc)
            exc.add_note(f"and closing the run store {self.path} failed: {close_exc}")


class RunStore:
    """Entry points: `RunStore.create(path, metadata)` (a writer), `RunStore.open(path)`."""

    @staticmethod
    def create(
        path: str | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
        *,
        flush_interval_s: float = 0.5,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        compress_records: bool = True,
        background_flush: bool = True,
        records_codec: str = DEFAULT_RECORDS_CODEC,
    ) -> RunWriter:
        """Create a new run directory (refuses an existing non-empty one).

        `metadata` (JSON-serialisable) holds the rig and campaign snapshots, conventionally
        under the keys "rig" and "campaign". `records_codec` (`store.codecs`: "zstd" or "lz4")
        compresses the records.
        """
        p = Path(path)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise RunStoreError(f"{p}: exists and is not an empty directory (runs never overwrite)")
        if flush_interval_s <= 0 or buffer_bytes <= 0:
            raise RunStoreError(f"{p}: flush_interval_s and buffer_bytes must be > 0")
        return RunWriter(
            p,
            metadata or {},
            flush_interval_s=flush_interval_s,
            buffer_bytes=buffer_bytes,
            compress_records=compress_records,
            background_flush=background_flush,
            records_codec=records_codec,
        )

    @staticmethod
    def snapshots(campaign: Mapping[str, Any]) -> dict[str, Any]:
        """The run metadata of a campaign run: the rig snapshot under "rig" and the resolved
        campaign (the rig inline, as saved in campaign.json) under "campaign"."""
        return {"rig": campaign.get("rig"), "campaign": dict(campaign)}

    @staticmethod
    def resume(
        path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None, **options: Any
    ) -> RunWriter:
        """Reopen a closed run to add acquisitions (what it holds stays as it is; keys of
        `metadata` its metadata lacks are added, e.g. the snapshots of a run written before
        cryodaq stored them)."""
        options = {
            "flush_interval_s": 0.5,
            "buffer_bytes": DEFAULT_BUFFER_BYTES,
            "compress_records": True,
            "background_flush": True,
            "records_codec": DEFAULT_RECORDS_CODEC,
            **options,
        }
        return RunWriter(Path(path), metadata or {}, resume=True, **options)

    @staticmethod
    def open(path: str | os.PathLike[str]) -> RunReader:
        """Open a run for reading (also while another process writes it)."""
        return RunReader(path)
