"""The records of an acquisition between `append` and the flush that writes them.

Each channel's current records chunk is a slab of one array: a batch's records are copied
once, straight into their channels' slabs (the batch's own records array is not kept: they
used to be held to the flush, then concatenated and gathered into the chunks there: two more
copies, and fresh memory the system had to fault in every time). A slab that fills is copied
out whole and the slab reused; a flush takes those full chunks and a copy of every partial
slab with new rows (the rows after its records are the fill, as zarr writes them), and
encodes them outside the buffer lock: `append` only copies, never encodes. The slabs cost
`chunk_rows` records per channel (512 KiB) from the start, outside the writer's buffer budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def _place(records, slots, first, slabs, rows):  # pragma: no cover - numba
    """Copy `records[first:]` into their slots' slabs, in order, until a slab fills; the row
    after the last one copied."""
    cap = slabs.shape[1]
    for i in range(first, records.shape[0]):
        s = slots[i]
        r = rows[s]
        for j in range(records.shape[1]):  # an explicit loop: 3x numba's row assignment
            slabs[s, r, j] = records[i, j]
        rows[s] = r + 1
        if r + 1 == cap:
            return i + 1
    return records.shape[0]


@dataclass(frozen=True)
class EncodedChunk:
    """Records chunk `index` of the channel in slot `slot`, encoded whole; its first `rows`
    rows are records, the rest fill."""

    slot: int
    index: int
    data: bytes
    rows: int


@dataclass(frozen=True)
class RawChunk:
    """A copy of records chunk `index` of slot `slot` as a flush takes it (its first `rows`
    rows records, the rest fill), encoded by the flush outside the buffer lock."""

    slot: int
    index: int
    slab: np.ndarray
    rows: int


class StagedRecords:
    """Channel slabs of records not yet flushed, and the full chunks copied out of them.

    `encode` turns a slab (one chunk: `chunk_rows` rows) into its chunk file's bytes. Not
    thread-safe: the writer calls it under its buffer lock (`encode` aside).
    """

    def __init__(
        self,
        channels: Sequence[int],
        chunk_rows: int,
        row_shape: tuple[int, ...],
        dtype: np.dtype,
        fill: Any,
        encode: Callable[[np.ndarray], bytes],
    ) -> None:
        n = len(channels)
        self._slot = np.full(max(channels) + 1, -1, np.intp)
        self._slot[list(channels)] = np.arange(n)
        self._fill = fill
        self._encode = encode
        self.chunk_rows = chunk_rows
        self._slabs = np.full((n, chunk_rows, *row_shape), fill, dtype)
        self._rows = np.zeros(n, np.int64)  # rows in each slab
        self._index = np.zeros(n, np.int64)  # the chunk each slab is
        self._handed = np.zeros(n, np.int64)  # rows of each slab a flush has taken already
        self._stale = np.zeros(n, np.int64)  # rows of each slab that may hold an older chunk's
        self._full: list[RawChunk] = []

    def slot(self, ch: int) -> int:
        """The slot of channel `ch` (its position among the acquisition's channels)."""
        return int(self._slot[ch])

    def add(self, channel: np.ndarray, records: np.ndarray) -> None:
        """Stage `records` (row i of channel `channel[i]`, a channel of the acquisition)."""
        slots = self._slot[channel]
        records = records.astype(self._slabs.dtype, copy=False)  # little-endian, as stored
        done = 0
        while done < len(slots):
            done = _place(records, slots, done, self._slabs, self._rows)
            s = int(slots[done - 1])
            if self._rows[s] == self.chunk_rows:  # a full chunk: copied out, its slab reused
                slab = self._slabs[s].copy()
                self._full.append(RawChunk(s, int(self._index[s]), slab, self.chunk_rows))
                self._rows[s] = self._handed[s] = 0
                self._stale[s] = self.chunk_rows
                self._index[s] += 1

    def take(self) -> list[RawChunk]:
        """Every chunk with rows no flush has taken yet, in order per slot: the full ones,
        then a copy of each partial slab as it stands (`encode` them)."""
        chunks, self._full = self._full, []
        for s in np.flatnonzero(self._rows > self._handed).tolist():
            rows = int(self._rows[s])
            if self._stale[s] > rows:  # the rows after the records: fill, as zarr would write
                self._slabs[s, rows : self._stale[s]] = self._fill
                self._stale[s] = rows
            chunks.append(RawChunk(s, int(self._index[s]), self._slabs[s].copy(), rows))
        self._handed[:] = self._rows
        return chunks

    def encode(self, chunks: Sequence[RawChunk]) -> list[EncodedChunk]:
        """The chunks `take` gave, encoded (touches no staged state: call it without the
        buffer lock)."""
        return [EncodedChunk(c.slot, c.index, self._encode(c.slab), c.rows) for c in chunks]

    def put_back(self, chunks: Sequence[RawChunk]) -> None:
        """Chunks `take` gave whose flush failed: taken again by the next flush (the writer
        skips the rows it did write)."""
        self._full[:0] = [c for c in chunks if c.rows == self.chunk_rows]
        for c in chunks:
            if c.rows < self.chunk_rows and c.index == self._index[c.slot]:
                self._handed[c.slot] = 0  # the slab is still that chunk: copied again then

    def clear(self) -> None:
        """Forget every staged record."""
        self._full = []
        self._handed[:] = self._rows
