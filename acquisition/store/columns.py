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
    CHUNK_KEY_SEPARATOR,
    EVENT_CHUNK_ROWS,
    EVENT_FIELDS,
    SUMMARY_FIELDS,
    RunStoreError,
    chunk_key,
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

    Committed rows' bytes never change: `write` puts the new rows of an uncompressed array in
    place (`_put_raw`); `put_chunk` puts a chunk whole (the records, whose chunks
    `store.staging` encodes; `codec` names their compression, `store.codecs`, for the array's
    metadata). Appending never reads the disk. `rows` counts the rows on disk; the array's
    `shape` runs ahead of it (`FIRST_CHUNKS`, `GROWTH`) and is trimmed to `rows` by `finish()`.
    `dims` are its Zarr v3 `dimension_names` (xarray needs them), `attrs` its attributes
    (units, long_name, ...; `store.cf`). Chunk keys are `c.<i>.0...` (`format.chunk_key`).
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
        self.capacity = self._grown(initial_rows, FIRST_CHUNKS * chunk_rows)
        self._meta = _array_metadata(
            directory, self.dtype, (self.capacity, *row_shape), chunk_rows, tuple(dims),
            codec, fill, attrs,
        )  # fmt: skip
        self._check_codecs()
        self.fill = fill
        self._row_bytes = self.dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
        self.rows = initial_rows
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
        return self.directory / chunk_key(index, len(self.row_shape))

    def put_chunk(self, index: int, data: bytes, rows: int) -> None:
        """Put chunk `index`, encoded whole as `data` (its first `rows` rows, then fill), on
        disk; skipped if those rows are there already (a retried flush).

        A compressed chunk holding earlier rows (committed ones among them) is replaced
        atomically (temporary file + rename: a reader or a crash sees the old chunk or the new
        one, both holding every committed row); one starting with the new rows holds no
        committed row: it is written straight to its file, which no reader opens before the
        commit. An uncompressed chunk gets its new rows as `write` puts them.
        """
        start = index * self.chunk_rows
        if start + rows <= self.rows:
            return
        if start > self.rows:
            raise RunStoreError(f"{self.directory}: row {start} leaves a hole after {self.rows}")
        self._ensure_capacity(start + rows)
        if self._codec is None:
            chunk = np.frombuffer(data, self.dtype).reshape(self.chunk_rows, *self.row_shape)
            self._put_raw(index, self.rows - start, chunk[self.rows - start : rows])
        elif start == self.rows:
            _write_file(self._chunk_path(index), data)
        else:
            write_atomic(self._chunk_path(index), data, fsync=False)
        self._on_disk = index
        self.rows = start + rows

    def _put_raw(self, index: int, first: int, block: np.ndarray) -> None:
        """Put `block` as rows `first...` of the uncompressed chunk `index`, never changing a
        byte of the rows before them.

        A chunk this writer made gets the rows in place (the rows being written are past the
        commit, which no reader reads). A new chunk starting with them is created at its full
        size (zarr reads whole chunks) and the rows written into it; one whose first rows are
        the fill (a column added after them) is written whole, atomically.
        """
        path = self._chunk_path(index)
        data = memoryview(np.ascontiguousarray(block)).cast("B")
        if self._on_disk == index:
            fd = os.open(path, os.O_WRONLY | _BINARY)
        elif first == 0:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _BINARY, 0o666)
        else:
            chunk = np.full((self.chunk_rows, *self.row_shape), self.fill, self.dtype)
            chunk[first : first + len(block)] = block
            write_atomic(path, chunk.tobytes(), fsync=False)
            self._on_disk = index
            return
        try:
            if self._on_disk != index:
                os.ftruncate(fd, self.chunk_rows * self._row_bytes)
            _write_at(fd, first * self._row_bytes, data)
        finally:
            os.close(fd)
        self._on_disk = index

    def write(self, start: int, values: np.ndarray, picks: np.ndarray | None = None) -> None:
        """Write `values` (or `values[picks]`) as rows `start...` of an uncompressed array;
        rows already on disk (a retried flush) are skipped."""
        if self._codec is not None:
            raise RunStoreError(f"{self.directory}: a compressed array takes whole chunks")
        if start > self.rows:
            raise RunStoreError(f"{self.directory}: row {start} leaves a hole after {self.rows}")
        n = len(values) if picks is None else len(picks)
        pos = self.rows - start
        if pos >= n:
            return
        self._ensure_capacity(start + n)
        while pos < n:
            index, offset = divmod(self.rows, self.chunk_rows)
            take = min(self.chunk_rows - offset, n - pos)
            rows = values[pos : pos + take] if picks is None else values[picks[pos : pos + take]]
            self._put_raw(index, offset, rows.astype(self.dtype, copy=False))
            self.rows += take
            pos += take

    def finish(self) -> None:
        """Trim the array's shape to the rows written."""
        if self.capacity != self.rows:
            self._set_shape(self.rows)


_BINARY = getattr(os, "O_BINARY", 0)


def _write_file(path: Path, data: bytes) -> None:
    """Create (or truncate) `path` and write `data` to it."""
    with open(path, "wb") as f:
        f.write(data)


def _write_at(fd: int, offset: int, data: memoryview) -> None:
    os.lseek(fd, offset, os.SEEK_SET)
    while data:
        data = data[os.write(fd, data) :]


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
            chunk_key_encoding={"name": "default", "separator": CHUNK_KEY_SEPARATOR},
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
        self.records = Column(
            directory / "records",
            dtype,
            (record_length,),
            records_chunk_rows(record_length, dtype),
            dims=(RECORD, SAMPLE),
            codec=codec,
            attrs=field_attrs("records", data),
        )
        #: The per-record fields besides the records (event fields, then summaries).
        self.fields: dict[str, Column] = {}
        for name, dt in EVENT_FIELDS.items():
            self.fields[name] = self._column(directory / name, dt, data)
        for name in SUMMARY_FIELDS:
            dt = SUMMARY_DTYPE.fields[name][0]
            self.fields[name] = self._column(directory / "summaries" / name, dt, data)
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
        for col in (self.records, *self.fields.values(), *self.extra.values()):
            col.finish()
