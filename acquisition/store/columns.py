"""Append-only Zarr v3 arrays whose chunks the run-store writer encodes and writes itself,
never changing a byte of a committed row."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from cryodaq.acquisition.atomic import write_atomic
from cryodaq.acquisition.events import SUMMARY_DTYPE
from cryodaq.acquisition.store.cf import RECORD, SAMPLE, column_dims, field_attrs
from cryodaq.acquisition.store.codecs import RecordsCodec
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

#: An array's `shape` starts at this many chunks and grows by this factor, ahead of its rows
#: (each growth rewrites its `zarr.json`; rows past the commit are never read).
FIRST_CHUNKS = 16
GROWTH = 8


class Column:
    """An append-only Zarr v3 array whose chunks the writer encodes and writes itself.

    Committed rows' bytes never change (`_write_chunk`): compressed chunks are replaced whole,
    uncompressed ones get their new rows in place. The current (partial) chunk is kept in
    memory, so appending never reads the disk. `codec` compresses the chunks (`store.codecs`;
    None: raw bytes). `rows` counts the rows on disk; the array's `shape` runs ahead of it
    (`FIRST_CHUNKS`, `GROWTH`) and is trimmed to `rows` by `finish()`. `dims` are its Zarr v3
    `dimension_names` (xarray needs them), `attrs` its attributes (units, long_name, ...;
    `store.cf`).
    """

    def __init__(
        self,
        directory: Path,
        dtype: np.dtype,
        row_shape: tuple[int, ...],
        chunk_rows: int,
        *,
        dims: Sequence[str],
        codec: RecordsCodec | None = None,
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
        self._codec = codec
        self._encoder = codec.encoder() if codec else None
        self.capacity = self._grown(initial_rows, FIRST_CHUNKS * chunk_rows)
        self._meta = _array_metadata(
            directory, self.dtype, (self.capacity, *row_shape), chunk_rows, tuple(dims),
            codec, fill, attrs,
        )  # fmt: skip
        self._check_codecs()
        self._fill = fill
        self._tail = np.full((chunk_rows, *row_shape), fill, dtype=self.dtype)
        self._row_bytes = self._tail[:1].nbytes
        self.rows = initial_rows
        self._made_dirs: set[Path] = set()
        self._on_disk: int | None = None  # the chunk whose whole file this writer wrote

    def _check_codecs(self) -> None:
        codecs = self._meta["codecs"]
        ok = (
            codecs[0]["name"] == "bytes"
            and codecs[0].get("configuration", {}).get("endian", "little") == "little"
        )
        if self._codec is None:
            ok = ok and len(codecs) == 1
        else:
            ok = ok and len(codecs) == 2 and self._codec.matches(codecs[1], self.dtype.itemsize)
        if not ok:
            raise RunStoreError(f"{self.directory}: unexpected zarr codecs {codecs}")

    def _grown(self, rows: int, at_least: int) -> int:
        """Whole chunks for `rows`, and at least `at_least` rows."""
        return -(-max(rows, at_least) // self.chunk_rows) * self.chunk_rows

    def _ensure_capacity(self, rows: int) -> None:
        if rows > self.capacity:
            self._set_shape(self._grown(rows, GROWTH * self.capacity))

    def _set_shape(self, rows: int) -> None:
        self._meta["shape"] = [rows, *self.row_shape]
        write_json(self.directory / "zarr.json", self._meta)
        self.capacity = rows

    def _chunk_path(self, index: int) -> Path:
        return self.directory.joinpath("c", str(index), *["0"] * len(self.row_shape))

    def _write_chunk(self, index: int, first: int, stop: int) -> None:
        """Put rows `first:stop` of the tail chunk `index` on disk, never changing a byte of
        the rows before them (every committed row is among those).

        A compressed chunk, or a new one, is written whole (temporary file + rename: a reader
        or a crash sees the old chunk or the new one, both holding every committed row). An
        uncompressed chunk this writer has written before gets only the new rows' bytes, in
        place: the rows before them stay as they are; the rows being written are past the
        commit, which no reader reads.
        """
        path = self._chunk_path(index)
        if self._encoder is None and self._on_disk == index:
            fd = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
            try:
                os.lseek(fd, first * self._row_bytes, os.SEEK_SET)
                left = memoryview(self._tail[first:stop]).cast("B")
                while left:
                    left = left[os.write(fd, left) :]
            finally:
                os.close(fd)
            return
        if path.parent not in self._made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(path.parent)
        data = self._encoder.encode(self._tail) if self._encoder else self._tail.tobytes()
        write_atomic(path, data, fsync=False)
        self._on_disk = index

    def write(self, start: int, values: np.ndarray, picks: np.ndarray | None = None) -> None:
        """Write `values` (or `values[picks]`) as rows `start...`; rows already on disk (a
        retried flush) are skipped."""
        if start > self.rows:
            raise RunStoreError(f"{self.directory}: row {start} leaves a hole after {self.rows}")
        n = len(values) if picks is None else len(picks)
        pos = self.rows - start
        if pos >= n:
            return
        self._ensure_capacity(start + n)
        gather = picks is not None and values.dtype == self.dtype
        while pos < n:
            index, offset = divmod(self.rows, self.chunk_rows)
            take = min(self.chunk_rows - offset, n - pos)
            dest = self._tail[offset : offset + take]
            if gather:  # straight into the chunk, no intermediate copy
                np.take(values, picks[pos : pos + take], axis=0, out=dest, mode="clip")
            elif picks is not None:
                dest[...] = values[picks[pos : pos + take]]
            else:
                dest[...] = values[pos : pos + take]
            self._write_chunk(index, offset, offset + take)
            self.rows += take
            pos += take
            if offset + take == self.chunk_rows:
                self._tail[...] = self._fill

    def finish(self) -> None:
        """Trim the array's shape to the rows written."""
        if self.capacity != self.rows:
            self._set_shape(self.rows)


#: zarr's metadata of each kind of array made so far (dtype, row shape, chunks, codecs, fill,
#: dimension names), without attributes: arrays of a kind already made get a copy.
_TEMPLATES: dict[tuple[Any, ...], dict[str, Any]] = {}


def _array_metadata(
    directory: Path,
    dtype: np.dtype,
    shape: tuple[int, ...],
    chunk_rows: int,
    dims: tuple[str, ...],
    codec: RecordsCodec | None,
    fill: Any,
    attrs: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Create an array of `shape` (no chunk written) in `directory`; its `zarr.json` metadata.

    zarr creates the first array of each kind; later ones get a copy of its metadata with
    their own attributes (what zarr would write for them: a test compares). A zarr call costs
    ~1.5 ms of asyncio machinery, ~0.6 s of a core for the 384 arrays of 32 channels.
    """
    if (directory / "zarr.json").exists():
        raise RunStoreError(f"{directory}: an array or group exists there already")
    key = (dtype.str, shape[1:], chunk_rows, dims, codec and codec.name, repr(fill))
    template = _TEMPLATES.get(key)
    if template is None:
        zarr.create_array(
            store=str(directory),
            shape=shape,
            chunks=(chunk_rows, *shape[1:]),
            dtype=dtype,
            compressors=[codec.zarr_codec()] if codec else None,
            filters=None,
            chunk_key_encoding={"name": "default", "separator": "/"},
            fill_value=fill,
            attributes=dict(attrs or {}),
            dimension_names=dims,
        )
        meta = read_json(directory / "zarr.json")
        _TEMPLATES[key] = copy.deepcopy({**meta, "attributes": {}})
        return meta
    meta = copy.deepcopy(template)
    meta["shape"] = list(shape)
    meta["attributes"] = dict(attrs or {})
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "zarr.json", meta)
    return meta


def records_chunk_rows(record_length: int, dtype: np.dtype) -> int:
    return int(min(4096, max(1, CHUNK_BYTES // (record_length * dtype.itemsize))))


def fill_for(dtype: np.dtype) -> Any:
    return float("nan") if dtype.kind == "f" else 0


class ChannelColumns:
    """The columns of one channel of an acquisition; `data` holds the units (and scale) of the
    source's values (`cf.data_units`), given to the records and their summaries; `codec`
    compresses the records (None: raw)."""

    def __init__(
        self,
        directory: Path,
        record_length: int,
        dtype: np.dtype,
        codec: RecordsCodec | None,
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
                codec=codec,
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
