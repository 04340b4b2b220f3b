"""Crash-safe Zarr v3 run store: one directory per run, written while a second process reads it.

Layout and guarantees: docs/run_store.md. In short, every array of a channel is append-only;
a flush writes the new rows (each chunk file is replaced atomically: temp file + rename), then
publishes the per-channel row counts (the *commit*) in the acquisition group's `zarr.json`,
again atomically. Readers read the commit first and never look past it, so a process killed at
any moment leaves every committed row readable and consistent. Flushes happen at most
`flush_interval_s` apart (from a background thread) or at once when the buffer exceeds its
byte budget, so what was appended more than about a second before a crash is on disk.

The writer encodes chunks itself (zarr's per-call machinery costs ~1 ms a chunk, which at 32
channels x 12 arrays per flush would take most of a core); zarr creates every array's metadata
and reads everything back, so the files are plain Zarr v3 that any zarr reader can open.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch, Gap
from cryodaq.acquisition.store.columns import ChannelColumns, Column, fill_for
from cryodaq.acquisition.store.format import (
    EVENT_CHUNK_ROWS,
    EVENT_FIELDS,
    FORMAT,
    FORMAT_VERSION,
    SUMMARY_FIELDS,
    RunStoreError,
    channel_group,
    check_json,
    check_name,
    now,
    software_versions,
    write_group,
)
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.recovery import seal_dead_run

log = logging.getLogger(__name__)


def _empty_commit(channels: Sequence[int]) -> dict[str, Any]:
    return {
        "sequence": 0,
        "time_ns": None,
        "rows": {channel_group(ch): 0 for ch in channels},
        "gaps": 0,
        "gap_samples": 0,
        "processed_samples": 0,
        "first_sample": None,
        "next_sample": None,
        "batches": 0,
        "records_lost_to_gaps": 0,
        "drops": {},
        "extra_columns": {},
        "closed": False,
    }


class AcquisitionWriter:
    """Appends the event batches of one acquisition; flushes and commits them crash-safely.

    `append` only buffers (cheap, thread-safe); a background thread flushes once
    `flush_interval_s` has passed since the last flush, and `append` itself flushes when the
    buffer exceeds `buffer_bytes` (so memory stays bounded and a slow disk applies
    back-pressure). Errors of a background flush are raised by the next call.
    """

    def __init__(
        self,
        run: RunWriter,
        name: str,
        channels: Sequence[int],
        record_length: int,
        dtype: np.dtype | str,
        sample_rate_hz: float,
        pretrigger: int,
        metadata: Mapping[str, Any] | None,
        *,
        flush_interval_s: float,
        buffer_bytes: int,
        compress_records: bool,
        background_flush: bool,
    ) -> None:
        self.run = run
        self.name = name
        self.directory = run.path / "acquisitions" / name
        self.channels = tuple(sorted({int(c) for c in channels}))
        self.record_length = int(record_length)
        self.dtype = np.dtype(dtype)
        self.sample_rate_hz = float(sample_rate_hz)
        self.pretrigger = int(pretrigger)
        self.flush_interval_s = float(flush_interval_s)
        self.buffer_bytes = int(buffer_bytes)
        where = f"{self.directory}"
        if not self.channels or min(self.channels) < 0:
            raise RunStoreError(f"{where}: channels must be a non-empty list of integers >= 0")
        if self.record_length < 1 or not 0 <= self.pretrigger < self.record_length:
            raise RunStoreError(
                f"{where}: need record_length >= 1 and 0 <= pretrigger < record_length, "
                f"got {self.record_length} and {self.pretrigger}"
            )
        if self.dtype.kind not in "iuf":
            raise RunStoreError(f"{where}: records dtype must be an integer or float, not {dtype}")
        if not (self.sample_rate_hz > 0 and math.isfinite(self.sample_rate_hz)):
            raise RunStoreError(f"{where}: sample_rate_hz must be > 0, got {sample_rate_hz}")
        self._config = {
            "name": name,
            "channels": list(self.channels),
            "record_length": self.record_length,
            "dtype": self.dtype.str,
            "sample_rate_hz": self.sample_rate_hz,
            "pretrigger": self.pretrigger,
            "metadata": check_json(dict(metadata or {}), f"{where}: acquisition metadata"),
            "start": now(),
            "stop": None,
            "live_time_s": None,
        }
        write_group(self.directory, {"acquisition": self._config, "commit": None})
        self._gaps = Column(self.directory / "gaps", np.dtype("<i8"), (2,), EVENT_CHUNK_ROWS)
        self._chans = {
            ch: ChannelColumns(
                self.directory / channel_group(ch), self.record_length, self.dtype, compress_records
            )
            for ch in self.channels
        }
        self._state = _empty_commit(self.channels)
        self._commit(self._state)
        self._buf_lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._pending: list[EventBatch] = []
        self._pending_gaps: list[Gap] = []
        self._pending_bytes = 0
        self._drops: dict[str, dict[str, int]] = {}
        self._extra_specs: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        self._last_flush = time.monotonic()
        self._error: BaseException | None = None
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background_flush:
            self._thread = threading.Thread(
                target=self._flush_loop, name=f"run-store-flush-{name}", daemon=True
            )
            self._thread.start()

    # -- public ---------------------------------------------------------------------------

    @property
    def buffered_bytes(self) -> int:
        """Bytes of appended batches not yet flushed."""
        return self._pending_bytes

    @property
    def commit(self) -> dict[str, Any]:
        """A copy of the last published commit (row counts, gaps, drops, samples processed)."""
        return copy.deepcopy(self._state)

    def committed(self, ch: int) -> int:
        """Rows of channel `ch` readable by now."""
        return int(self._state["rows"][channel_group(ch)])

    @property
    def committed_total(self) -> int:
        """Rows of all channels readable by now."""
        return int(sum(self._state["rows"].values()))

    def append(self, batch: EventBatch) -> None:
        """Buffer one engine batch (validated here, so a mismatch fails at its source).

        The batch's arrays are kept by reference until the next flush: the caller must not
        reuse them for a later block.
        """
        self._raise_pending_error()
        self._check_open()
        self._validate(batch)
        nbytes = _batch_bytes(batch)
        with self._buf_lock:
            self._pending.append(batch)
            self._pending_bytes += nbytes
            over = self._pending_bytes >= self.buffer_bytes
        if over:
            self.flush()

    def record_gaps(self, gaps: Iterable[Gap]) -> None:
        """Record gaps found outside a batch (a batch's own `gaps` are recorded by `append`)."""
        self._check_open()
        gaps = list(gaps)
        for g in gaps:
            if not (isinstance(g, Gap) and 0 <= g.first < g.stop):
                raise RunStoreError(f"{self.directory}: a gap must be Gap(first < stop), got {g}")
        with self._buf_lock:
            self._pending_gaps.extend(gaps)

    def add_drops(self, sink: str, records: int, batches: int = 0) -> None:
        """Count `records` (in `batches`) that sink `sink` dropped; committed with the next flush.

        Batches the store itself never received (its queue dropped them) count here too and do
        not add to the live time.
        """
        self._check_open()
        if records < 0 or batches < 0:
            raise RunStoreError(f"{self.directory}: drop counts must be >= 0")
        with self._buf_lock:
            entry = self._drops.setdefault(str(sink), {"records": 0, "batches": 0})
            entry["records"] += int(records)
            entry["batches"] += int(batches)

    def flush(self) -> None:
        """Write every buffered row and publish the new commit."""
        self._raise_pending_error()
        self._flush()

    def close(self) -> None:
        """Flush, trim the arrays to their final length, write stop and live time; idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._flush()  # also retries what a failed background flush kept in the buffer
        with self._io_lock:
            for chan in self._chans.values():
                chan.finish()
            self._gaps.finish()
            state = copy.deepcopy(self._state)
            state["closed"] = True
            self._config["stop"] = now()
            self._config["live_time_s"] = state["processed_samples"] / self.sample_rate_hz
            self._commit(state)
            self._state = state
            self._closed = True
        self.run._acquisition_closed(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RunStoreError(f"{self.directory}: acquisition {self.name!r} is closed")

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            err = self._error
            raise RunStoreError(f"{self.directory}: background flush failed: {err}") from err

    def _flush_loop(self) -> None:
        period = max(self.flush_interval_s / 4, 0.01)
        while not self._stop.wait(period):
            if not self._pending and not self._pending_gaps:
                continue
            if time.monotonic() - self._last_flush < self.flush_interval_s:
                continue
            try:
                self._flush()
            except Exception as exc:  # kept and raised by the next call in the owner's thread
                log.exception("run store flush of %s failed", self.directory)
                self._error = exc
                return

    def _validate(self, batch: EventBatch) -> None:
        where = f"{self.directory}: batch of block {batch.block_first_sample}"
        if batch.acquisition != self.name:
            raise RunStoreError(f"{where} belongs to acquisition {batch.acquisition!r}")
        rec = batch.records
        if rec.ndim != 2 or rec.shape[1] != self.record_length:
            raise RunStoreError(
                f"{where}: records of shape {rec.shape}, expected (n, {self.record_length})"
            )
        if rec.dtype != self.dtype:
            raise RunStoreError(f"{where}: records dtype {rec.dtype}, expected {self.dtype}")
        if batch.pretrigger != self.pretrigger:
            raise RunStoreError(
                f"{where}: pretrigger {batch.pretrigger}, expected {self.pretrigger}"
            )
        if not math.isclose(batch.sample_rate_hz, self.sample_rate_hz, rel_tol=1e-12):
            raise RunStoreError(
                f"{where}: sample rate {batch.sample_rate_hz} Hz, expected {self.sample_rate_hz}"
            )
        n = rec.shape[0]
        for field in ("channel", "sample_index", "timestamp_ns", "trigger_kind", "coincidence"):
            if getattr(batch, field).shape != (n,):
                raise RunStoreError(f"{where}: {field} has shape {getattr(batch, field).shape}")
        if batch.summaries.dtype != SUMMARY_DTYPE or batch.summaries.shape != (n,):
            raise RunStoreError(f"{where}: summaries must be ({n},) of SUMMARY_DTYPE")
        unknown = np.setdiff1d(batch.channel, self.channels)
        if unknown.size:
            raise RunStoreError(
                f"{where}: channels {unknown.tolist()} are not in the acquisition {self.channels}"
            )
        for name, values in batch.extra.items():
            check_name(name, f"{where}: extra column")
            spec = (values.dtype, values.shape[1:])
            if values.shape[:1] != (n,) or values.dtype.kind not in "iufb":
                raise RunStoreError(f"{where}: extra column {name!r} must be numeric with {n} rows")
            with self._buf_lock:
                known = self._extra_specs.setdefault(name, spec)
            if known != spec:
                raise RunStoreError(
                    f"{where}: extra column {name!r} is {spec}, earlier batches gave {known}"
                )

    def _flush(self) -> None:
        with self._io_lock:
            with self._buf_lock:
                batches, gaps = self._pending, self._pending_gaps
                drops = copy.deepcopy(self._drops)
                nbytes = self._pending_bytes
                self._pending, self._pending_gaps, self._pending_bytes = [], [], 0
            try:
                self._state = self._write(batches, gaps, drops)
            except BaseException:
                with self._buf_lock:  # keep the data: a retried flush rewrites it idempotently
                    self._pending[:0] = batches
                    self._pending_gaps[:0] = gaps
                    self._pending_bytes += nbytes
                raise
            self._last_flush = time.monotonic()

    def _write(
        self, batches: list[EventBatch], extra_gaps: list[Gap], drops: dict[str, dict[str, int]]
    ) -> dict[str, Any]:
        state = copy.deepcopy(self._state)
        if batches:
            table = _concat(batches, self._extra_specs)
            for ch, chan in self._chans.items():
                idx = np.flatnonzero(table["channel"] == ch)
                if idx.size == 0:
                    continue
                key = channel_group(ch)
                start = state["rows"][key]
                for name, col in chan.columns.items():
                    col.write(start, table[name][idx])
                for name in table["extra"]:
                    values = table["extra"][name][idx]
                    col = chan.extra_column(name, values.dtype, values.shape[1:], start)
                    col.write(start, values)
                state["rows"][key] = start + int(idx.size)
            for name, (dt, shape) in self._extra_specs.items():
                state["extra_columns"][name] = {"dtype": dt.str, "row_shape": list(shape)}
            first = min(b.block_first_sample for b in batches)
            nxt = max(b.block_first_sample + b.block_samples for b in batches)
            if state["first_sample"] is None or first < state["first_sample"]:
                state["first_sample"] = first
            state["next_sample"] = max(nxt, state["next_sample"] or nxt)
            state["processed_samples"] += sum(int(b.block_samples) for b in batches)
            state["records_lost_to_gaps"] += sum(int(b.records_lost_to_gaps) for b in batches)
            state["batches"] += len(batches)
        gaps = [g for b in batches for g in b.gaps] + extra_gaps
        if gaps:
            self._gaps.write(state["gaps"], np.array([[g.first, g.stop] for g in gaps], "<i8"))
            state["gaps"] += len(gaps)
            state["gap_samples"] += sum(g.samples for g in gaps)
        state["drops"] = drops
        state["sequence"] += 1
        state["time_ns"] = time.time_ns()
        self._commit(state)
        return state

    def _commit(self, state: dict[str, Any]) -> None:
        write_group(self.directory, {"acquisition": self._config, "commit": state})


def _batch_bytes(batch: EventBatch) -> int:
    names = (
        "channel",
        "records",
        "summaries",
        "sample_index",
        "timestamp_ns",
        "trigger_kind",
        "coincidence",
    )
    arrays = [getattr(batch, n) for n in names] + list(batch.extra.values())
    return sum(a.nbytes for a in arrays)


def _concat(
    batches: list[EventBatch], extra_specs: Mapping[str, tuple[np.dtype, tuple[int, ...]]]
) -> dict[str, Any]:
    """One table of all rows of `batches`: base fields, summary fields and extra columns."""
    table: dict[str, Any] = {
        "channel": np.concatenate([b.channel for b in batches]),
        "records": np.concatenate([b.records for b in batches]),
    }
    for name in EVENT_FIELDS:
        table[name] = np.concatenate([getattr(b, name) for b in batches])
    summaries = np.concatenate([b.summaries for b in batches])
    for name in SUMMARY_FIELDS:
        table[name] = summaries[name]
    names = {n for b in batches for n in b.extra}
    extra = {}
    for name in sorted(names):
        dt, shape = extra_specs[name]
        parts = [
            b.extra[name] if name in b.extra else np.full((len(b), *shape), fill_for(dt), dt)
            for b in batches
        ]
        extra[name] = np.concatenate(parts)
    table["extra"] = extra
    return table


class RunWriter:
    """Writes one run directory; use as a context manager so any exit still leaves it complete.

    On leaving the `with` block normally the run is closed with end_reason "completed"; on
    KeyboardInterrupt or any exception every acquisition is still flushed and closed, and the
    run records "interrupted: <exception>" as its end_reason before the exception goes on.
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
    ) -> None:
        self.path = path
        self._options = {
            "flush_interval_s": flush_interval_s,
            "buffer_bytes": buffer_bytes,
            "compress_records": compress_records,
            "background_flush": background_flush,
        }
        self._lock = threading.Lock()
        self._open: dict[str, AcquisitionWriter] = {}
        self._closed = False
        if resume:
            self._attrs = self._reopened(path)
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
    def _reopened(path: Path) -> dict[str, Any]:
        """Root attributes of a closed run, marked open again for more acquisitions; a run
        whose writer died is sealed at its last commits first (`store.recovery`)."""
        sealed = seal_dead_run(path)
        if sealed:
            log.warning("%s: its writer died; sealed %s at their last commits", path,
                        ", ".join(sealed))
        attrs = RunReader(path).metadata
        resumes = [*attrs.get("resumes", []), {"at": now(), "after": attrs.get("end_reason")}]
        return {**attrs, "complete": False, "end_reason": None, "stop": None, "resumes": resumes}

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
        buffer_bytes: int = 64 * 1024 * 1024,
        compress_records: bool = True,
        background_flush: bool = True,
    ) -> RunWriter:
        """Create a new run directory (refuses an existing non-empty one).

        `metadata` (JSON-serialisable) holds the rig and campaign snapshots, conventionally
        under the keys "rig" and "campaign".
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
        )

    @staticmethod
    def resume(path: str | os.PathLike[str], **options: Any) -> RunWriter:
        """Reopen a closed run to add acquisitions (what it holds stays as it is)."""
        options = {
            "flush_interval_s": 0.5,
            "buffer_bytes": 64 * 1024 * 1024,
            "compress_records": True,
            "background_flush": True,
            **options,
        }
        return RunWriter(Path(path), {}, resume=True, **options)

    @staticmethod
    def open(path: str | os.PathLike[str]) -> RunReader:
        """Open a run for reading (also while another process writes it)."""
        return RunReader(path)
