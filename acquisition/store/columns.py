"""Append-only Zarr v3 arrays whose chunks the run-store writer encodes and replaces atomically."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numcodecs.zstd import Zstd

from cryodaq.acquisition.atomic import write_atomic
from cryodaq.acquisition.events import SUMMARY_DTYPE
from cryodaq.acquisition.store.cf import RECORD, SAMPLE, column_dims, field_attrs
from cryodaq.acquisition.store.format import (
    CHUNK_BYTES,
    EVENT_CHUNK_ROWS,
    EVENT_FIELDS,
    SUMMARY_FIELDS,
    RunStoreError,
    read_json,
    write_group,
    write_json,
)

log = logging.getLogger(__name__)


class Column:
    """An append-only Zarr v3 array whose chunks the writer encodes and replaces atomically.

    The current (partial) chunk is kept in memory, so appending never reads the disk. `rows`
    counts the rows on disk; the array's `shape` grows ahead of it in doubling steps and is
    trimmed to `rows` by `finish()`. `dims` are its Zarr v3 `dimension_names` (xarray needs
    them), `attrs` its attributes (units, long_name, ...; `store.cf`).
    """

    def __init__(
        self,
        directory: Path,
        dtype: np.dtype,
        row_shape: tuple[int, ...],
        chunk_rows: int,
        *,
        dims: Sequence[str],
        compress: bool = False,
        fill: Any = 0,
        initial_rows: int = 0,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        if len(dims) != 1 + len(row_shape):
            raise RunStoreError(f"{directory}: dimension names {dims} for rows of {row_shape}")
        dt = np.dtype(dtype)
        self.dtype = dt.newbyteorder("<") if dt.itemsize > 1 else dt
        self.row_shape = row_shape
        self.chunk_rows = chunk_rows
        self._zstd = Zstd(level=1) if compress else None
        zarr.create_array(
            store=str(directory),
            shape=(0, *row_shape),
            chunks=(chunk_rows, *row_shape),
            dtype=self.dtype,
            compressors=[zarr.codecs.ZstdCodec(level=1)] if compress else None,
            filters=None,
            chunk_key_encoding={"name": "default", "separator": "/"},
            fill_value=fill,
            attributes=dict(attrs or {}),
            dimension_names=tuple(dims),
        )
        self._meta = read_json(directory / "zarr.json")
        self._check_codecs()
        self._fill = fill
        self._tail = np.full((chunk_rows, *row_shape), fill, dtype=self.dtype)
        self.rows = initial_rows
        self.capacity = 0
        self._made_dirs: set[Path] = set()
        self._ensure_capacity(initial_rows)

    def _check_codecs(self) -> None:
        codecs = self._meta["codecs"]
        ok = (
            codecs[0]["name"] == "bytes"
            and codecs[0].get("configuration", {}).get("endian", "little") == "little"
        )
        expected = ["zstd"] if self._zstd else []
        if not ok or [c["name"] for c in codecs[1:]] != expected:
            raise RunStoreError(f"{self.directory}: unexpected zarr codecs {codecs}")

    def _ensure_capacity(self, rows: int) -> None:
        if rows <= self.capacity:
            return
        grown = max(rows, 2 * self.capacity, self.chunk_rows)
        self._set_shape(-(-grown // self.chunk_rows) * self.chunk_rows)

    def _set_shape(self, rows: int) -> None:
        self._meta["shape"] = [rows, *self.row_shape]
        write_json(self.directory / "zarr.json", self._meta)
        self.capacity = rows

    def _chunk_path(self, index: int) -> Path:
        return self.directory.joinpath("c", str(index), *["0"] * len(self.row_shape))

    def _write_chunk(self, index: int) -> None:
        path = self._chunk_path(index)
        if path.parent not in self._made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(path.parent)
        data = self._tail.tobytes()
        write_atomic(path, self._zstd.encode(data) if self._zstd else data, fsync=False)

    def write(self, start: int, values: np.ndarray) -> None:
        """Write `values` as rows `start...`; rows already on disk (a retried flush) are skipped."""
        if start > self.rows:
            raise RunStoreError(f"{self.directory}: row {start} leaves a hole after {self.rows}")
        values = values[self.rows - start :]
        if len(values) == 0:
            return
        self._ensure_capacity(self.rows + len(values))
        pos = 0
        while pos < len(values):
            index, offset = divmod(self.rows, self.chunk_rows)
            take = min(self.chunk_rows - offset, len(values) - pos)
            self._tail[offset : offset + take] = values[pos : pos + take]
            self._write_chunk(index)
            self.rows += take
            pos += take
            if offset + take == self.chunk_rows:
                self._tail[...] = self._fill

    def finish(self) -> None:
        """Trim the array's shape to the rows written."""
        if self.capacity != self.rows:
            self._set_shape(self.rows)


def records_chunk_rows(record_length: int, dtype: np.dtype) -> int:
    return int(min(4096, max(1, CHUNK_BYTES // (record_length * dtype.itemsize))))


def fill_for(dtype: np.dtype) -> Any:
    return float("nan") if dtype.kind == "f" else 0


class ChannelColumns:
    """The columns of one channel of an acquisition; `data` holds the units (and scale) of the
    source's values (`cf.data_units`), given to the records and their summaries."""

    def __init__(
        self,
        directory: Path,
        record_length: int,
        dtype: np.dtype,
        compress: bool,
        data: Mapping[str, Any],
        group_attrs: Mapping[str, Any],
    ) -> None:
        self.directory = directory
        write_group(directory, group_attrs)
        write_group(directory / "summaries", {})
        write_group(directory / "columns", {})
        self.columns: dict[str, Column] = {
            "records": Column(
                directory / "records",
                dtype,
                (record_length,),
                records_chunk_rows(record_length, dtype),
                dims=(RECORD, SAMPLE),
                compress=compress,
                attrs=field_attrs("records", data),
            )
        }
        for name, dt in EVENT_FIELDS.items():
            self.columns[name] = self._column(directory / name, dt, data)
        for name in SUMMARY_FIELDS:
            dt = SUMMARY_DTYPE.fields[name][0]
            self.columns[name] = self._column(directory / "summaries" / name, dt, data)
        self.extra: dict[str, Column] = {}

    @staticmethod
    def _column(directory: Path, dtype: np.dtype, data: Mapping[str, Any]) -> Column:
        name = directory.name
        return Column(
            directory, dtype, (), EVENT_CHUNK_ROWS,
            dims=column_dims(name, ()), attrs=field_attrs(name, data),
        )  # fmt: skip

    def extra_column(
        self, name: str, dtype: np.dtype, row_shape: tuple[int, ...], rows: int
    ) -> Column:
        if name not in self.extra:
            self.extra[name] = Column(
                self.directory / "columns" / name,
                dtype,
                row_shape,
                EVENT_CHUNK_ROWS,
                dims=column_dims(name, row_shape),
                fill=fill_for(dtype),
                initial_rows=rows,
                attrs={
                    "source": "acquisition",
                    "long_name": name,
                    "description": "a column a sink added to the acquisition's batches",
                },
            )
        return self.extra[name]

    def finish(self) -> None:
        for col in (*self.columns.values(), *self.extra.values()):
            col.finish()
