"""One acquisition's writer: buffers event batches, writes their rows, publishes commits.

A flush writes the new rows of every array (a chunk holding committed rows replaced atomically,
a new chunk written straight to its file, uncompressed rows appended in place), then
publishes the commit (`store.commit`) in the acquisition group's `zarr.json`, again atomically;
readers never look past the commit, so a crash at any moment leaves every committed row
readable. The chunks are encoded here (records: `store.staging`, written by `store.columns`),
not by zarr, whose per-call machinery costs ~1 ms a chunk (most of a core at 32 channels x 12
arrays per flush).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np

from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch, Gap
from cryodaq.acquisition.store.cf import GAP, GAP_BOUND, GAPS_ATTRS, data_units
from cryodaq.acquisition.store.codecs import DEFAULT_RECORDS_CODEC, codec_named
from cryodaq.acquisition.store.columns import ChannelColumns, Column, fill_for
from cryodaq.acquisition.store.commit import Commit
from cryodaq.acquisition.store.format import (
    EVENT_CHUNK_ROWS,
    EVENT_FIELDS,
    SUMMARY_FIELDS,
    RunStoreError,
    channel_group,
    check_json,
    check_name,
    now,
    write_group,
)
from cryodaq.acquisition.store.recovery import STORE_FAILED, seal_acquisition
from cryodaq.acquisition.store.staging import EncodedChunk, StagedRecords

log = logging.getLogger(__name__)


class RunDirectory(Protocol):
    """What an acquisition's writer needs of its run: the run directory, and to be told when
    the acquisition is closed (a `RunWriter`, or a board task's store)."""

    path: Path

    def _acquisition_closed(self, acq: AcquisitionWriter) -> None: ...


class AcquisitionWriter:
    """Appends the event batches of one acquisition; flushes and commits them crash-safely.

    `append` only buffers (cheap, thread-safe: it copies the records into their channels'
    chunks, `store.staging`, and keeps the batch's other fields); a background thread flushes once
    `flush_interval_s` has passed since the last flush, and `append` itself flushes when the
    buffer exceeds `buffer_bytes` (so memory stays bounded and a slow disk applies
    back-pressure). Errors of a background flush are raised by the next call. Records are
    compressed with `records_codec` (`store.codecs`) unless `compress_records` is False.
    """

    def __init__(
        self,
        run: RunDirectory,
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
        records_codec: str = DEFAULT_RECORDS_CODEC,
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
        codec = codec_named(records_codec, f"{where}: records_codec")
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
        self._gaps = Column(
            self.directory / "gaps", np.dtype("<i8"), (2,), EVENT_CHUNK_ROWS,
            dims=(GAP, GAP_BOUND), attrs=GAPS_ATTRS,
        )  # fmt: skip
        data = data_units(self._config["metadata"])
        self._chans = {
            ch: ChannelColumns(
                self.directory / channel_group(ch),
                self.record_length,
                self.dtype,
                codec if compress_records else None,
                data,
                {
                    "acquisition": name,
                    "channel": ch,
                    "sample_rate_hz": self.sample_rate_hz,
                    "pretrigger": self.pretrigger,
                },
            )
            for ch in self.channels
        }
        self._known = np.zeros(max(self.channels) + 1, dtype=bool)  # channel -> in this one
        self._known[list(self.channels)] = True
        self._state = Commit.empty(self.channels)
        self._commit(self._state)
        self._buf_lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._pending: list[EventBatch] = []  # without their records, which are staged
        records = self._chans[self.channels[0]].records
        self._records = StagedRecords(
            self.channels, records.chunk_rows, (self.record_length,), records.dtype,
            records.fill, codec.encoder().encode if compress_records else _raw_bytes,
        )  # fmt: skip
        #: What a buffered batch keeps of its records (they are staged): not a view, which
        #: would keep the batch's whole records array alive to the flush.
        self._no_records = np.empty((0, self.record_length), records.dtype)
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
    def commit(self) -> Commit:
        """A copy of the last published commit (row counts, gaps, drops, samples processed)."""
        return copy.deepcopy(self._state)

    def committed(self, ch: int) -> int:
        """Rows of channel `ch` readable by now."""
        return int(self._state.rows[channel_group(ch)])

    @property
    def committed_total(self) -> int:
        """Rows of all channels readable by now."""
        return self._state.total_rows

    def append(self, batch: EventBatch) -> None:
        """Buffer one engine batch (validated here, so a mismatch fails at its source).

        The records are copied; the batch's other arrays are kept by reference until the
        next flush: the caller must not reuse them for a later block.
        """
        self._raise_pending_error()
        self._check_open()
        self._validate(batch)
        nbytes = _batch_bytes(batch)
        with self._buf_lock:
            self._records.add(batch.channel, batch.records)
            self._pending.append(replace(batch, records=self._no_records))
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
            state = replace(self._state, closed=True)
            self._config["stop"] = now()
            self._config["live_time_s"] = state.processed_samples / self.sample_rate_hz
            self._commit(state)
            self._state = state
            self._closed = True
        self.run._acquisition_closed(self)

    def abandon(self) -> None:
        """After a failed close (a full disk): drop what is buffered, so the last commit is all
        the acquisition holds, seal it there if the disk allows, and leave the run."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._buf_lock:
            self._pending, self._pending_gaps, self._pending_bytes = [], [], 0
            self._records.clear()
        self._closed = True
        with contextlib.suppress(OSError, RunStoreError):  # else sealed on resume
            seal_acquisition(self.directory, STORE_FAILED)
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
        known = self._known
        ch = batch.channel
        inside = (ch >= 0) & (ch < known.size)
        if not (inside.all() and known[ch].all()):
            unknown = np.setdiff1d(ch, self.channels)
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
                raw = self._records.take()
                drops = copy.deepcopy(self._drops)
                nbytes = self._pending_bytes
                self._pending, self._pending_gaps, self._pending_bytes = [], [], 0
            try:
                chunks = self._records.encode(raw)  # appends go on meanwhile
                self._state = self._write(batches, chunks, gaps, drops)
            except BaseException:
                with self._buf_lock:  # keep the data: a retried flush rewrites it idempotently
                    self._pending[:0] = batches
                    self._records.put_back(raw)
                    self._pending_gaps[:0] = gaps
                    self._pending_bytes += nbytes
                raise
            self._last_flush = time.monotonic()

    def _write(
        self,
        batches: list[EventBatch],
        chunks: list[EncodedChunk],
        extra_gaps: list[Gap],
        drops: dict[str, dict[str, int]],
    ) -> Commit:
        state = self._state
        rows = self._write_rows(batches, chunks) if batches else state.rows
        gaps = [g for b in batches for g in b.gaps] + extra_gaps
        if gaps:
            self._gaps.write(state.gaps, np.array([[g.first, g.stop] for g in gaps], "<i8"))
        state = replace(
            state,
            **(_progress(state, batches, self._extra_specs) if batches else {}),
            rows=rows,
            gaps=state.gaps + len(gaps),
            gap_samples=state.gap_samples + sum(g.samples for g in gaps),
            drops=drops,
            sequence=state.sequence + 1,
            time_ns=time.time_ns(),
        )
        self._commit(state)
        return state

    def _write_rows(self, batches: list[EventBatch], chunks: list[EncodedChunk]) -> dict[str, int]:
        """Write the rows of `batches` (their records: `chunks`) to their channels' arrays;
        the rows per channel after."""
        rows = dict(self._state.rows)
        records: dict[int, list[EncodedChunk]] = {}
        for c in chunks:
            records.setdefault(c.slot, []).append(c)
        table = _concat(batches, self._extra_specs)
        if table["channel"].size == 0:
            return rows
        # The rows ordered by channel (stably: each channel's rows keep their order); each
        # column takes its channel's rows straight from the table.
        order = np.argsort(table["channel"], kind="stable")
        channel = table["channel"][order]
        bounds = np.r_[np.flatnonzero(np.r_[True, channel[1:] != channel[:-1]]), channel.size]
        extra = table["extra"]
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            ch = int(channel[lo])
            chan, key, picks = self._chans[ch], channel_group(ch), order[lo:hi]
            start = rows[key]
            for c in records.get(self._records.slot(ch), ()):
                chan.records.put_chunk(c.index, c.data, c.rows)
            if chan.records.rows != start + hi - lo:
                raise RunStoreError(f"{chan.records.directory}: records out of step with the rows")
            for name, col in chan.fields.items():
                col.write(start, table[name], picks)
            for name, values in extra.items():
                col = chan.extra_column(name, values.dtype, values.shape[1:], start)
                col.write(start, values, picks)
            rows[key] = start + hi - lo
        return rows

    def _commit(self, state: Commit) -> None:
        write_group(self.directory, {"acquisition": self._config, "commit": state.to_json()})


def _progress(
    state: Commit,
    batches: list[EventBatch],
    extra_specs: Mapping[str, tuple[np.dtype, tuple[int, ...]]],
) -> dict[str, Any]:
    """The commit fields that `batches` advance (all but rows and gaps), after `state`."""
    first = min(b.block_first_sample for b in batches)
    nxt = max(b.block_first_sample + b.block_samples for b in batches)
    samples = sum(int(b.block_samples) for b in batches)
    lost = sum(int(b.records_lost_to_gaps) for b in batches)
    extra = {n: {"dtype": dt.str, "row_shape": list(sh)} for n, (dt, sh) in extra_specs.items()}
    return {
        "first_sample": first if state.first_sample is None else min(first, state.first_sample),
        "next_sample": max(nxt, state.next_sample or nxt),
        "processed_samples": state.processed_samples + samples,
        "records_lost_to_gaps": state.records_lost_to_gaps + lost,
        "batches": state.batches + len(batches),
        "extra_columns": {**state.extra_columns, **extra},
    }


def _raw_bytes(chunk: np.ndarray) -> bytes:
    return chunk.tobytes()


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
    """One table of all rows of `batches`: base fields, summary fields and extra columns (the
    records are staged apart)."""
    table: dict[str, Any] = {"channel": np.concatenate([b.channel for b in batches])}
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
