"""The run-store writer's records staging: batches spread over channel slabs, full chunks
encoded as they fill, partial ones copied at each flush and encoded outside the buffer lock; a
failed flush's chunks taken again."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.acquisition.store.staging import EncodedChunk, StagedRecords

CHUNK = 7
FILL = -1


def _decode(chunk: EncodedChunk) -> np.ndarray:
    return np.frombuffer(chunk.data, np.int16).reshape(CHUNK, 3)


def _take(staged: StagedRecords) -> list[EncodedChunk]:
    """What a flush writes: every chunk it took, encoded."""
    return staged.encode(staged.take())


def _on_disk(disk: dict[int, list[np.ndarray]], chunks: list[EncodedChunk]) -> None:
    """Apply `chunks` as the writer does: a chunk replaces its index, rows past what is
    there already are added (a chunk with no new rows is skipped)."""
    for c in chunks:
        rows = disk.setdefault(c.slot, [])
        start = c.index * CHUNK
        assert start <= len(rows), "a chunk after a hole"
        decoded = _decode(c)
        assert (decoded[c.rows :] == FILL).all(), "rows after the records are fill"
        del rows[start:]
        rows.extend(decoded[: c.rows])


@pytest.mark.parametrize("seed", [1, 2])
def test_every_row_reaches_its_channel_once_in_order_through_failed_flushes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    channels = [3, 8, 9]
    staged = StagedRecords(channels, CHUNK, (3,), np.dtype(np.int16), FILL, lambda a: a.tobytes())
    sent: dict[int, list[np.ndarray]] = {s: [] for s in range(3)}
    disk: dict[int, list[np.ndarray]] = {}
    counter = 0
    failed: list[EncodedChunk] = []

    def batch() -> None:
        nonlocal counter
        n = int(rng.integers(0, 20))  # batches from empty to ~3 chunks of one channel
        chans = rng.choice(channels, n, p=[0.6, 0.3, 0.1]).astype(np.int32)
        records = np.arange(counter, counter + 3 * n, dtype=np.int16).reshape(n, 3)
        counter += 3 * n
        staged.add(chans, records)
        for ch, row in zip(chans.tolist(), records, strict=True):
            sent[staged.slot(ch)].append(row)

    for k in range(60):
        batch()
        if k % 5 == 4:
            raw = staged.take()
            batch()  # appends go on while the flush encodes and writes (slabs may fill)
            chunks = staged.encode(raw)
            if rng.random() < 0.4:  # the flush fails part way: the rest is taken again
                cut = int(rng.integers(0, len(chunks) + 1))
                _on_disk(disk, chunks[:cut])
                staged.put_back(raw)
                failed.extend(chunks[cut:])
            else:
                _on_disk(disk, chunks)
    _on_disk(disk, _take(staged))
    assert failed, "no flush failed part way: the seed tests less than it says"
    for slot, rows in sent.items():
        np.testing.assert_array_equal(np.array(disk.get(slot, [])).reshape(-1, 3),
                                      np.array(rows).reshape(-1, 3))  # fmt: skip
    assert _take(staged) == []  # nothing new: no chunk is written twice


def test_a_flush_takes_each_partial_chunk_once_and_again_only_with_new_rows() -> None:
    staged = StagedRecords([0, 1], CHUNK, (3,), np.dtype(np.int16), FILL, lambda a: a.tobytes())
    staged.add(np.array([0, 0, 1]), np.ones((3, 3), np.int16))
    raw = staged.take()
    first = staged.encode(raw)
    assert [(c.slot, c.index, c.rows) for c in first] == [(0, 0, 2), (1, 0, 1)]
    assert _take(staged) == []
    staged.put_back(raw)  # their flush failed: the next one takes them again
    assert _take(staged) == first
    staged.add(np.array([1] * 8), np.full((8, 3), 2, np.int16))  # fills chunk 0 of slot 1
    assert [(c.slot, c.index, c.rows) for c in _take(staged)] == [(1, 0, 7), (1, 1, 2)]
    staged.add(np.array([1]), np.full((1, 3), 3, np.int16))
    (last,) = _take(staged)
    assert (last.slot, last.index, last.rows) == (1, 1, 3)
    # The slab held chunk 0 before: the rows after chunk 1's records are fill again.
    np.testing.assert_array_equal(_decode(last), [[2] * 3] * 2 + [[3] * 3] + [[FILL] * 3] * 4)


def test_a_partial_chunk_is_encoded_as_the_flush_took_it() -> None:
    """The flush encodes its copy of a partial slab after releasing the buffer lock: rows
    appended meanwhile to the same slab are not in it, and the next flush takes them."""
    staged = StagedRecords([0], CHUNK, (3,), np.dtype(np.int16), FILL, lambda a: a.tobytes())
    staged.add(np.array([0, 0]), np.full((2, 3), 5, np.int16))
    raw = staged.take()
    staged.add(np.array([0]), np.full((1, 3), 6, np.int16))  # appended during the encoding
    (chunk,) = staged.encode(raw)
    assert chunk.rows == 2
    np.testing.assert_array_equal(_decode(chunk), [[5] * 3] * 2 + [[FILL] * 3] * 5)
    (later,) = _take(staged)
    np.testing.assert_array_equal(_decode(later)[:3], [[5] * 3] * 2 + [[6] * 3])


def test_a_buffered_batch_does_not_keep_its_records_alive(tmp_path) -> None:  # noqa: ANN001
    """The writer keeps a batch's other fields to the flush, not its records array (a
    zero-row view of it would have kept the whole array allocated)."""
    import gc
    import weakref

    from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch
    from cryodaq.acquisition.store.writer import RunStore

    with RunStore.create(tmp_path / "run") as run:
        acq = run.acquisition("a", [1], 64, np.int16, 1e5, 8)
        n = 50
        records = np.ones((n, 64), np.int16)
        alive = weakref.ref(records)
        si = np.arange(n, dtype=np.int64) * 64
        acq.append(EventBatch("a", 1e5, 0, int(si[-1] + 64), 8, np.ones(n, np.int32), si, si,
                              np.ones(n, np.uint8), np.ones(n, np.uint16), records,
                              np.zeros(n, SUMMARY_DTYPE)))  # fmt: skip
        del records
        gc.collect()
        assert alive() is None
        acq.close()
