"""Rows of a run-store array read straight from its chunk files (the run store's own layout,
`store.chunk_reader.plain_layout`: bytes, optionally zstd or blosc), without zarr's per-call
machinery (~1 ms an array); a chunk not written yet reads as the fill value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr

from cryodaq.acquisition.store.chunk_reader import key_separator, plain_layout
from cryodaq.acquisition.store.format import RunStoreError, chunk_key
from cryodaq.acquisition.store.frames import decode_chunk


class ChunkedArray:
    """One array of a run store, read by rows; any other layout is read through zarr."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        meta = json.loads((self.path / "zarr.json").read_text())
        self.shape_tail = tuple(meta["shape"][1:])
        self.chunk_rows = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
        self.dtype = np.dtype(zarr.open_array(store=str(self.path), mode="r").dtype)
        self.fill = meta.get("fill_value", 0)
        self.direct = plain_layout(meta)
        self.separator = key_separator(meta) if self.direct else "/"
        codecs = meta["codecs"]
        self.codec = codecs[1]["name"] if self.direct and len(codecs) == 2 else None

    def _chunk(self, index: int) -> np.ndarray:
        key = chunk_key(index, len(self.shape_tail), self.separator)
        shape = (self.chunk_rows, *self.shape_tail)
        try:
            raw = (self.path / key).read_bytes()
        except FileNotFoundError:
            return np.full(shape, self.fill, self.dtype)
        try:
            if self.codec is not None:
                out = np.empty(int(np.prod(shape)) * self.dtype.itemsize, np.uint8)
                decode_chunk(self.codec, raw, out)
                raw = out
            return np.frombuffer(raw, self.dtype.newbyteorder("<")).reshape(shape)
        except ValueError as exc:  # a frame cut short or corrupt, or a raw chunk cut short
            msg = f"{self.path}: chunk {index} is truncated or corrupt ({exc})"
            raise RunStoreError(msg) from None

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) (the caller keeps `stop` within the committed rows)."""
        if stop <= start:
            return np.empty((0, *self.shape_tail), self.dtype)
        if not self.direct:
            return np.asarray(zarr.open_array(store=str(self.path), mode="r")[start:stop])
        n = self.chunk_rows
        parts = [
            self._chunk(i)[max(start - i * n, 0) : min(stop - i * n, n)]
            for i in range(start // n, (stop - 1) // n + 1)
        ]
        return np.concatenate(parts).astype(self.dtype, copy=False)
