"""Reading a run store, complete or still being written, never past the last commit."""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from cryodaq.acquisition.atomic import replace_directory
from cryodaq.acquisition.events import SUMMARY_DTYPE, Gap
from cryodaq.acquisition.store.cf import column_dims
from cryodaq.acquisition.store.chunk_reader import read_rows
from cryodaq.acquisition.store.columns import Column, fill_for
from cryodaq.acquisition.store.commit import Commit
from cryodaq.acquisition.store.format import (
    EVENT_FIELDS,
    FORMAT,
    FORMAT_VERSION,
    NAME_RE,
    SUMMARY_FIELDS,
    RunStoreError,
    channel_group,
    check_json,
    check_name,
    group_attrs,
    now,
)

log = logging.getLogger(__name__)


class RunReader:
    """Reads a run, complete or still being written, never past the last commit."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            attrs = group_attrs(self.path)
        except (OSError, ValueError, KeyError) as exc:
            raise RunStoreError(f"{self.path}: not a cryodaq run store ({exc})") from None
        if attrs.get("format") != FORMAT:
            raise RunStoreError(f"{self.path}: not a cryodaq run store (no format={FORMAT!r})")
        if attrs.get("format_version") != FORMAT_VERSION:
            raise RunStoreError(
                f"{self.path}: run store format version {attrs.get('format_version')}, "
                f"this cryodaq reads {FORMAT_VERSION}"
            )

    @property
    def metadata(self) -> dict[str, Any]:
        """The run's root attributes (metadata, versions, start/stop, complete, summary)."""
        return group_attrs(self.path)

    def acquisitions(self) -> list[str]:
        """Names of the acquisitions in the order they were started, equal starts by name.

        The start is the wall-clock time each acquisition's writer recorded when creating it
        (its `start`), so parts written by board tasks (listed by `RunWriter.adopt`) take
        their place by when they started, never by when they were listed or finished. Parts
        started at once on different boards are ordered by their own start times (as exact
        as the hosts' clocks agree). An acquisition without a readable start comes last.
        """
        return sorted(self.metadata["acquisitions"], key=lambda n: (self._start_ns(n), n))

    def _start_ns(self, acq: str) -> float:
        try:
            return self.info(acq)["start"]["unix_ns"]
        except (RunStoreError, KeyError, TypeError):
            return math.inf

    def _acq_attrs(self, acq: str) -> dict[str, Any]:
        try:
            return group_attrs(self.path / "acquisitions" / acq)
        except (OSError, ValueError, KeyError):
            listed = self.metadata["acquisitions"]
            raise RunStoreError(f"{self.path}: no acquisition {acq!r}; it has {listed}") from None

    def info(self, acq: str) -> dict[str, Any]:
        """Acquisition settings: channels, record_length, dtype, sample rate, pretrigger, ..."""
        return self._acq_attrs(acq)["acquisition"]

    def commit(self, acq: str) -> Commit:
        """The acquisition's last commit (rows per channel, gaps, drops, samples processed)."""
        commit = self._acq_attrs(acq)["commit"]
        if commit is None:  # its arrays are being created; it is listed once they exist
            raise RunStoreError(f"{self.path}: acquisition {acq!r} is still being created")
        return Commit.from_json(commit)

    def channels(self, acq: str) -> list[int]:
        """Channel numbers of acquisition `acq`."""
        return list(self.info(acq)["channels"])

    def committed(self, acq: str, ch: int) -> int:
        """Rows of channel `ch` that are committed (safe to read)."""
        rows = self.commit(acq).rows
        key = channel_group(ch)
        if key not in rows:
            raise RunStoreError(
                f"{self.path}: acquisition {acq!r} has no channel {ch}; it has {self.channels(acq)}"
            )
        return int(rows[key])

    def columns(self, acq: str, ch: int) -> list[str]:
        """Extra columns of a channel (from sinks or added by analysis)."""
        self.committed(acq, ch)
        cdir = self.path / "acquisitions" / acq / channel_group(ch) / "columns"
        return sorted(
            p.name for p in cdir.iterdir() if (p / "zarr.json").exists() and NAME_RE.match(p.name)
        )

    def fields(self, acq: str, ch: int) -> list[str]:
        """Every name `read` accepts for this channel."""
        base = ["records", *EVENT_FIELDS, *SUMMARY_FIELDS, "summaries"]
        return base + self.columns(acq, ch)

    def _array_path(self, acq: str, ch: int, field: str) -> Path:
        cdir = self.path / "acquisitions" / acq / channel_group(ch)
        if field == "records" or field in EVENT_FIELDS:
            return cdir / field
        if field in SUMMARY_FIELDS:
            return cdir / "summaries" / field
        if (cdir / "columns" / field / "zarr.json").exists():
            return cdir / "columns" / field
        raise RunStoreError(
            f"{self.path}: acquisition {acq!r} channel {ch} has no field {field!r}; "
            f"it has {self.fields(acq, ch)}"
        )

    def read(
        self,
        acq: str,
        ch: int,
        fields: Sequence[str] | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Committed rows [start, stop) of channel `ch` as numpy arrays, one per field.

        "summaries" gives one structured array of SUMMARY_DTYPE; the default fields are
        records, the event fields and "summaries".
        """
        n = self.committed(acq, ch)
        stop = n if stop is None else min(int(stop), n)
        start = min(max(int(start), 0), stop)
        names = list(fields) if fields is not None else ["records", *EVENT_FIELDS, "summaries"]
        out: dict[str, np.ndarray] = {}
        for name in names:
            if name == "summaries":
                s = np.zeros(stop - start, SUMMARY_DTYPE)
                for f in SUMMARY_FIELDS:
                    s[f] = self._read_array(acq, ch, f, start, stop)
                out[name] = s
            else:
                out[name] = self._read_array(acq, ch, name, start, stop)
        return out

    def iter_rows(
        self,
        acq: str,
        ch: int,
        fields: Sequence[str] | None = None,
        rows: int = 4096,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """`read` in blocks of `rows` committed rows: (first row, fields) per block, so a
        channel's records are never all in memory at once (use a multiple of the store's
        chunk rows, 64 for 4096-sample int16 records, 32768 for the event fields)."""
        if rows < 1:
            raise RunStoreError(f"{self.path}: rows per block must be >= 1, got {rows}")
        n = self.committed(acq, ch)
        stop = n if stop is None else min(int(stop), n)
        for first in range(max(int(start), 0), stop, rows):
            yield first, self.read(acq, ch, fields, first, min(first + rows, stop))

    def _read_array(self, acq: str, ch: int, field: str, start: int, stop: int) -> np.ndarray:
        path = self._array_path(acq, ch, field)
        direct = read_rows(path, start, stop)
        if direct is not None:
            return direct
        arr = zarr.open_array(store=str(path), mode="r")
        if arr.shape[0] < stop:
            raise RunStoreError(
                f"{path}: holds {arr.shape[0]} rows but {stop} are committed (store damaged)"
            )
        return np.asarray(arr[start:stop])

    def gaps(self, acq: str) -> list[Gap]:
        """Committed gaps of the acquisition, in the order they were found."""
        n = self.commit(acq).gaps
        if n == 0:
            return []
        arr = zarr.open_array(store=str(self.path / "acquisitions" / acq / "gaps"), mode="r")
        return [Gap(int(a), int(b)) for a, b in np.asarray(arr[:n])]

    def drops(self, acq: str) -> dict[str, dict[str, int]]:
        """Records and batches each sink dropped, as last committed."""
        return self.commit(acq).drops

    def add_column(
        self,
        acq: str,
        ch: int,
        name: str,
        values: np.ndarray,
        *,
        overwrite: bool = False,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Store an analysis column (one value or row per committed record) for a channel.

        Only for a closed acquisition. The column appears atomically (written under a
        temporary name, then renamed), so a crash never leaves half a column. `attrs`
        (JSON-serialisable: units, long_name, description, ...) become its attributes.
        """
        check_name(name, f"{self.path}: column name")
        if not self.commit(acq).closed:
            raise RunStoreError(f"{self.path}: acquisition {acq!r} is still being written")
        n = self.committed(acq, ch)
        values = np.asarray(values)
        if values.shape[:1] != (n,) or values.dtype.kind not in "iufb":
            raise RunStoreError(
                f"{self.path}: column {name!r} for {acq}/{channel_group(ch)} must be numeric "
                f"with {n} rows, got {values.dtype} {values.shape}"
            )
        cdir = self.path / "acquisitions" / acq / channel_group(ch) / "columns"
        final = cdir / name
        if final.exists() and not overwrite:
            raise RunStoreError(f"{final}: column exists; pass overwrite=True to replace it")
        tmp = cdir / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        rows = int(max(1, min(1 << 16, (1 << 20) // max(1, values[:1].nbytes))))
        col = Column(
            tmp,
            values.dtype,
            values.shape[1:],
            rows,
            dims=column_dims(name, values.shape[1:]),
            fill=fill_for(values.dtype),
            attrs={
                **check_json(dict(attrs or {}), f"{self.path}: attributes of column {name!r}"),
                "source": "analysis",
                "written": now(),
            },
        )
        col.write(0, values)
        col.finish()
        replace_directory(tmp, final)

    def summary(self, include_run: bool = True) -> dict[str, Any]:
        """Totals per acquisition and for the run: records, live time, gaps, drops."""
        acqs: dict[str, Any] = {}
        for name in self.acquisitions():
            info, c = self.info(name), self.commit(name)
            dropped = sum(d["records"] for d in c.drops.values())
            acqs[name] = {
                "records": c.total_rows,
                "records_per_channel": {int(k[2:]): int(v) for k, v in c.rows.items()},
                "live_time_s": c.processed_samples / info["sample_rate_hz"],
                "processed_samples": c.processed_samples,
                "gaps": c.gaps,
                "gap_samples": c.gap_samples,
                "records_lost_to_gaps": c.records_lost_to_gaps,
                "drops": c.drops,
                "dropped_records": dropped,
                "closed": c.closed,
            }
        total = {
            key: sum(a[key] for a in acqs.values())
            for key in (
                "records",
                "live_time_s",
                "gaps",
                "gap_samples",
                "records_lost_to_gaps",
                "dropped_records",
            )
        }
        drops: dict[str, int] = {}
        for a in acqs.values():
            for sink, d in a["drops"].items():
                drops[sink] = drops.get(sink, 0) + d["records"]
        out: dict[str, Any] = {"acquisitions": acqs, **total, "drops": drops}
        if include_run:
            meta = self.metadata
            out = {
                "path": str(self.path),
                "complete": meta["complete"],
                "end_reason": meta["end_reason"],
                "start": meta["start"],
                "stop": meta["stop"],
                **out,
            }
        return out
