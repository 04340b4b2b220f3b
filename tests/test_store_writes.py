"""How the run-store writer puts rows on disk: array metadata as zarr writes it, committed bytes
never rewritten, and a replayed stream played several times over."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_run_store import make_batch, open_writer, rows_of

from cryodaq.acquisition.store import acquisition_writer
from cryodaq.acquisition.store import columns as store_columns
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.stream.sources import ReplaySource
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig, TriggerEngine


class _Forgetful(dict):
    """A template cache that keeps nothing: every array is made by zarr itself."""

    def __setitem__(self, key: object, value: object) -> None:
        pass


def _write_run(path: Path) -> None:
    """Two acquisitions of three channels (int16 and float32 records), one extra column."""
    batches = [make_batch([0, 2, 5, 2], [k * 10, k * 10 + 1, k * 10 + 2, k * 10 + 3],
                          acquisition="a") for k in range(3)]  # fmt: skip
    with open_writer(path) as run:
        acq = run.acquisition("a", [0, 2, 5], 32, "int16", 250e3, 8)
        for b in batches:
            acq.append(b)
        acq.append(make_batch([5], [99], acquisition="a", extra={"energy": np.array([1.5])}))
        acq = run.acquisition("b", [1, 3, 4], 16, "float32", 1e6, 4, {"unit": "Phi0"})
        acq.append(make_batch([1, 4], [3, 4], length=16, dtype="float32", acquisition="b",
                              pretrigger=4, rate=1e6))  # fmt: skip


def test_array_metadata_is_what_zarr_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Arrays made from a kind's template carry exactly the metadata zarr gives them."""
    monkeypatch.setattr(store_columns, "_TEMPLATES", {})
    _write_run(tmp_path / "templated")
    monkeypatch.setattr(store_columns, "_TEMPLATES", _Forgetful())
    _write_run(tmp_path / "zarr")
    arrays = sorted(
        p.relative_to(tmp_path / "zarr")
        for p in (tmp_path / "zarr").rglob("zarr.json")
        if json.loads(p.read_text())["node_type"] == "array"
    )
    assert len(arrays) == 2 * 3 * 12 + 3 + 2  # records, 4 fields, 7 summaries; energy; gaps
    for rel in arrays:
        made = json.loads((tmp_path / "templated" / rel).read_text())
        assert made == json.loads((tmp_path / "zarr" / rel).read_text()), rel


def test_committed_bytes_are_never_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flush after flush, the bytes of every committed row stay as they were in their chunk
    files (uncompressed arrays get their new rows in place), and all rows read back."""
    for module in (acquisition_writer, store_columns):
        monkeypatch.setattr(module, "EVENT_CHUNK_ROWS", 256)
    monkeypatch.setattr(store_columns, "CHUNK_BYTES", 200 * 32 * 2)  # 200 records a chunk
    path = tmp_path / "run"
    run = open_writer(path, compress_records=False)
    acq = run.acquisition("acq", [0, 1], 32, "int16", 250e3, 8)
    before: dict[Path, bytes] = {}  # chunk file -> its committed rows' bytes
    batches = []
    for k in range(8):
        batches.append(make_batch([0, 1, 0] * 50, range(k * 150, k * 150 + 150)))
        acq.append(batches[-1])
        acq.flush()
        reader = RunReader(path)
        for chunk in sorted((path / "acquisitions" / "acq").glob("ch*/**/c.*")):
            data = chunk.read_bytes()
            old = before.get(chunk, b"")
            assert data[: len(old)] == old, (k, chunk)
            meta = json.loads((chunk.parent / "zarr.json").read_text())
            rows = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
            row_bytes = len(data) // rows
            index = int(chunk.name.split(".")[1])
            ch = int(chunk.relative_to(path / "acquisitions" / "acq").parts[0][2:])
            committed = min(max(reader.committed("acq", ch) - index * rows, 0), rows)
            before[chunk] = data[: committed * row_bytes]
    assert len(before) > 2 * 12  # several chunks per array
    run.close()
    _assert_reads_back(path, batches)


def _assert_reads_back(path: Path, batches: list) -> None:
    """Every row of `batches` reads back from the run at `path`, channels 0 and 1."""
    r = RunReader(path)
    for ch in (0, 1):
        want, got = rows_of(batches, ch), r.read("acq", ch)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


class _FullDisk:
    """`os` for `store.columns` whose in-place writes fail from the `after`-th on, each after
    putting half its bytes on disk (a disk filling up mid-write)."""

    def __init__(self, after: int) -> None:
        self.after, self.calls = after, 0

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def write(self, fd: int, data: memoryview) -> int:
        self.calls += 1
        if self.calls < self.after:
            return os.write(fd, data)
        os.write(fd, data[: max(1, len(data) // 2)])
        raise OSError(errno.ENOSPC, "No space left on device")


def _chunk_bytes(path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(path.rglob("c.*")) if p.is_file()}


@pytest.mark.parametrize("after", [1, 3])
def test_a_failed_in_place_write_leaves_committed_rows_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: int
) -> None:
    """A flush whose in-place writes fail half way changes no committed byte and commits
    nothing; the retried flush then stores every row once."""
    monkeypatch.setattr(store_columns, "CHUNK_BYTES", 200 * 32 * 2)  # 200 records a chunk
    path = tmp_path / "run"
    run = open_writer(path, compress_records=False)
    acq = run.acquisition("acq", [0, 1], 32, "int16", 250e3, 8)
    batches = [make_batch([0, 1, 0] * 10, range(k * 30, k * 30 + 30)) for k in range(3)]
    acq.append(batches[0])
    acq.flush()
    committed = {ch: RunReader(path).committed("acq", ch) for ch in (0, 1)}
    before = _chunk_bytes(path)
    acq.append(batches[1])
    disk = _FullDisk(after)
    monkeypatch.setattr(store_columns, "os", disk)
    with pytest.raises(OSError, match="No space left"):
        acq.flush()
    assert disk.calls >= after
    monkeypatch.setattr(store_columns, "os", os)
    reader = RunReader(path)
    assert {ch: reader.committed("acq", ch) for ch in (0, 1)} == committed
    for chunk, data in before.items():  # bytes of committed rows: a prefix of each chunk file
        meta = json.loads((chunk.parent / "zarr.json").read_text())
        rows = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
        ch = int(chunk.relative_to(path / "acquisitions" / "acq").parts[0][2:])
        keep = min(committed[ch], rows) * (len(data) // rows)
        assert chunk.read_bytes()[:keep] == data[:keep], chunk
    acq.append(batches[2])
    run.close()
    _assert_reads_back(path, batches)


def test_replay_repeat_continues_the_stream() -> None:
    """`repeat` plays the data again with the counter running on: the engine finds what it
    finds in the data laid end to end."""
    rng = np.random.default_rng(5)
    data = rng.normal(0, 1, (3, 5000)).astype(np.float32)
    data[:, 700:720] += 40.0
    config = TriggerConfig(64, 16, {c: ChannelTrigger(edge_threshold=20.0) for c in (1, 2, 3)})

    def records(source: ReplaySource) -> np.ndarray:
        source.start()
        engine = TriggerEngine(config, (1, 2, 3), 1e5)
        batches = []
        while (block := source.read()) is not None:
            batches.append(engine.process(block))
        assert engine.samples_processed == 15000
        return np.concatenate([b.sample_index for b in batches])

    looped = records(ReplaySource(data, 1e5, 1024, repeat=3))
    tiled = records(ReplaySource(np.tile(data, 3), 1e5, 1024))
    np.testing.assert_array_equal(looped, tiled)
    assert looped.size == 9  # one pulse per channel in each of the three plays
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        ReplaySource(data, 1e5, 1024, repeat=0)


def test_a_replay_started_again_loses_the_same_samples() -> None:
    """A ReplaySource with gaps, started twice, gives the same blocks both times (a gap is
    used up as it is replayed; `start` brings it back)."""
    data = np.zeros((1, 90), np.float32)
    source = ReplaySource(data, 1e5, 15, gaps=((30, 15),))

    def firsts() -> list[int]:
        source.start()
        out = []
        while (block := source.read()) is not None:
            out.append(block.first_sample)
        return out

    assert firsts() == [0, 15, 45, 60, 75, 90]  # samples 30-44 lost: the counter jumps
    assert firsts() == [0, 15, 45, 60, 75, 90]
