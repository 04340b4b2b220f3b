"""Run store: round trips, commits seen by readers, gaps and drops, bounded memory, Ctrl-C and
SIGKILL of a real writer process."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import store_writer_child as child
import zarr

from cryodaq.acquisition import atomic
from cryodaq.acquisition.cluster.boards import BoardStore
from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch, Gap, TriggerKind
from cryodaq.acquisition.store import acquisition_writer
from cryodaq.acquisition.store import columns as store_columns
from cryodaq.acquisition.store import format as store_format
from cryodaq.acquisition.store.codecs import RECORDS_CODECS
from cryodaq.acquisition.store.commit import Commit
from cryodaq.acquisition.store.format import RunStoreError
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore

RATE = 250_000.0
PRE = 8


def record_for(si: np.ndarray, ch: np.ndarray, length: int, dtype: str) -> np.ndarray:
    """Deterministic record content: a function of sample index, channel and position."""
    x = (si[:, None] * 13 + ch[:, None] * 1009 + np.arange(length) * 7) % 60001 - 30000
    return x.astype(dtype)


def make_batch(
    channel: list[int] | np.ndarray,
    sample_index: list[int] | np.ndarray,
    *,
    length: int = 32,
    dtype: str = "int16",
    acquisition: str = "acq",
    block: tuple[int, int] = (0, 1000),
    gaps: tuple[Gap, ...] = (),
    lost: int = 0,
    extra: dict[str, np.ndarray] | None = None,
    pretrigger: int = PRE,
    rate: float = RATE,
) -> EventBatch:
    """An EventBatch whose every field is derived from (channel, sample_index)."""
    ch = np.asarray(channel, np.int32)
    si = np.asarray(sample_index, np.int64)
    summaries = np.zeros(si.size, SUMMARY_DTYPE)
    for i, name in enumerate(SUMMARY_DTYPE.names or ()):
        summaries[name] = si % 1000 + 0.25 * i
    return EventBatch(
        acquisition=acquisition,
        sample_rate_hz=rate,
        block_first_sample=block[0],
        block_samples=block[1],
        pretrigger=pretrigger,
        channel=ch,
        sample_index=si,
        timestamp_ns=1_600_000_000_000_000_000 + si * 4000,
        trigger_kind=np.full(si.size, TriggerKind.EDGE, np.uint8) + (si % 3).astype(np.uint8),
        coincidence=(1 + ch % 4).astype(np.uint16),
        records=record_for(si, ch, length, dtype),
        summaries=summaries,
        gaps=gaps,
        records_lost_to_gaps=lost,
        extra=extra or {},
    )


def rows_of(batches: list[EventBatch], ch: int) -> dict[str, np.ndarray]:
    """What the store must hold for channel `ch` after `batches`."""
    idx = [b.for_channel(ch) for b in batches]
    out = {
        name: np.concatenate([getattr(b, name)[i] for b, i in zip(batches, idx, strict=True)])
        for name in ("records", "sample_index", "timestamp_ns", "trigger_kind", "coincidence")
    }
    out["summaries"] = np.concatenate([b.summaries[i] for b, i in zip(batches, idx, strict=True)])
    return out


def open_writer(path: Path, **kw):
    kw.setdefault("background_flush", False)
    kw.setdefault("flush_interval_s", 1e9)
    return RunStore.create(path, {"rig": {"name": "bench"}, "campaign": {"name": "c1"}}, **kw)


def patch_atomic_write(monkeypatch: pytest.MonkeyPatch, fn: object) -> None:
    """Replace the store's atomic file write everywhere it is used (chunks and commits)."""
    for module in (atomic, store_columns):  # JSON: `atomic.write_json_atomic`; chunks: columns
        monkeypatch.setattr(module, "write_atomic", fn)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny chunks, so that every flush crosses chunk boundaries."""
    for module in (acquisition_writer, store_columns):
        monkeypatch.setattr(module, "EVENT_CHUNK_ROWS", 5)
    monkeypatch.setattr(store_columns, "CHUNK_BYTES", 3 * 64 * 4)


@pytest.mark.parametrize(("dtype", "compress"), [("int16", True), ("float32", False)])
def test_round_trip_several_channels_and_batches(
    tmp_path: Path, small_chunks: None, dtype: str, compress: bool
) -> None:
    rng = np.random.default_rng(1)
    channels = [0, 3, 17]
    batches = []
    first = 0
    for k in range(9):
        n = int(rng.integers(0, 14)) if k != 4 else 0  # batch 4 has no events at all
        ch = rng.choice(channels[:2] if k == 6 else channels, n)  # batch 6 misses channel 17
        si = np.sort(first + rng.integers(0, 4000, n))
        batches.append(make_batch(ch, si, length=64, dtype=dtype, block=(first, 4000)))
        first += 4000
    path = tmp_path / "run"
    with open_writer(path, compress_records=compress) as run:
        acq = run.acquisition("acq", channels, 64, dtype, RATE, PRE, {"trigger": "edge"})
        for k, b in enumerate(batches):
            acq.append(b)
            if k in (2, 3, 7):
                acq.flush()
    r = RunReader(path)
    meta = r.metadata
    assert meta["complete"] is True and meta["end_reason"] == "completed"
    assert meta["metadata"] == {"rig": {"name": "bench"}, "campaign": {"name": "c1"}}
    assert set(meta["versions"]) == {"cryodaq", "python", "numpy", "numba", "zarr"}
    assert meta["versions"]["zarr"] == zarr.__version__
    assert meta["start"]["unix_ns"] <= meta["stop"]["unix_ns"]
    assert r.acquisitions() == ["acq"] and r.channels("acq") == channels
    info = r.info("acq")
    assert (info["record_length"], info["pretrigger"], info["sample_rate_hz"]) == (64, PRE, RATE)
    assert np.dtype(info["dtype"]) == np.dtype(dtype) and info["metadata"] == {"trigger": "edge"}
    assert info["live_time_s"] == pytest.approx(9 * 4000 / RATE)
    total = 0
    for ch in channels:
        want = rows_of(batches, ch)
        got = r.read("acq", ch)
        assert r.committed("acq", ch) == want["sample_index"].size > 5
        for name, values in want.items():
            np.testing.assert_array_equal(got[name], values, err_msg=f"ch {ch} {name}")
            assert got[name].dtype == values.dtype
        part = r.read("acq", ch, ["peak_value", "records"], start=2, stop=5)
        np.testing.assert_array_equal(part["peak_value"], want["summaries"]["peak_value"][2:5])
        np.testing.assert_array_equal(part["records"], want["records"][2:5])
        # a closed store is plain zarr: arrays are trimmed to the committed length
        arr = zarr.open_array(str(path / "acquisitions/acq" / f"ch{ch:03d}" / "records"), mode="r")
        assert arr.shape == (want["sample_index"].size, 64)
        total += want["sample_index"].size
    assert r.summary()["records"] == total


def test_extra_columns_from_batches_and_added_later(tmp_path: Path, small_chunks: None) -> None:
    path = tmp_path / "run"
    b1 = make_batch([1, 2, 1], [10, 11, 12])
    b2 = make_batch([1, 2], [20, 21], extra={"energy_ev": np.array([5.0, 6.0])})
    b3 = make_batch([1, 1, 1], [30, 31, 32], extra={"energy_ev": np.array([7.0, 8.0, 9.0])})
    with open_writer(path) as run:
        acq = run.acquisition("acq", [1, 2], 32, "int16", RATE, PRE)
        acq.append(b1)
        acq.flush()
        acq.append(b2)
        acq.append(b3)
        r = RunReader(path)
        acq.flush()
        with pytest.raises(RunStoreError, match="still being written"):
            r.add_column("acq", 1, "filt_value", np.zeros(7))
        bad = make_batch([1], [40], extra={"energy_ev": np.array([1], np.int64)})
        with pytest.raises(RunStoreError, match="extra column 'energy_ev'.*earlier batches"):
            acq.append(bad)
    assert r.columns("acq", 1) == ["energy_ev"]
    np.testing.assert_array_equal(
        r.read("acq", 1, ["energy_ev"])["energy_ev"], [np.nan, np.nan, 5.0, 7.0, 8.0, 9.0]
    )
    np.testing.assert_array_equal(r.read("acq", 2, ["energy_ev"])["energy_ev"], [np.nan, 6.0])
    filt = np.arange(6, dtype=np.float64) * 1.5
    r.add_column("acq", 1, "filt_value", filt)
    quality = np.array([[1, 2], [3, 4]], np.int32)
    r.add_column("acq", 2, "quality", quality)
    assert r.columns("acq", 1) == ["energy_ev", "filt_value"]
    np.testing.assert_array_equal(r.read("acq", 1, ["filt_value"])["filt_value"], filt)
    np.testing.assert_array_equal(r.read("acq", 2, ["quality"])["quality"], quality)
    with pytest.raises(RunStoreError, match="column exists"):
        r.add_column("acq", 1, "filt_value", filt)
    r.add_column("acq", 1, "filt_value", filt * 2, overwrite=True)
    np.testing.assert_array_equal(r.read("acq", 1, ["filt_value"])["filt_value"], filt * 2)
    with pytest.raises(RunStoreError, match="must be numeric with 6 rows"):
        r.add_column("acq", 1, "short", np.zeros(5))
    assert not [p for p in (path / "acquisitions/acq/ch001/columns").iterdir() if "tmp" in p.name]


def test_reader_sees_only_committed_rows(tmp_path: Path, small_chunks: None) -> None:
    path = tmp_path / "run"
    run = open_writer(path)
    acq = run.acquisition("acq", [0], 32, "int16", RATE, PRE)
    r = RunReader(path)
    b1 = make_batch([0] * 7, range(100, 107))
    acq.append(b1)
    assert r.committed("acq", 0) == 0 and r.read("acq", 0)["records"].shape == (0, 32)
    acq.flush()
    assert r.committed("acq", 0) == 7
    acq.append(make_batch([0] * 4, range(200, 204)))
    acq.flush()
    acq.append(make_batch([0] * 6, range(300, 306)))
    # the arrays have grown past the commit (capacity), the reader must not look there
    disk = zarr.open_array(str(path / "acquisitions/acq/ch000/sample_index"), mode="r")
    assert disk.shape[0] > 11
    got = r.read("acq", 0)
    assert got["sample_index"].tolist() == list(range(100, 107)) + list(range(200, 204))
    assert r.read("acq", 0, stop=100)["records"].shape == (11, 32)
    run.close()
    assert r.committed("acq", 0) == 17


def test_a_commit_is_published_only_after_its_rows_are_on_disk(
    tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run"
    run = open_writer(path)
    acq = run.acquisition("acq", [0, 1], 64, "int16", RATE, PRE)
    commit_file = path / "acquisitions/acq/zarr.json"
    real = atomic.write_atomic
    checked = []

    def check_before_commit(p: Path, data: str | bytes, **options: bool) -> None:
        if p == commit_file:
            rows = json.loads(data)["attributes"]["commit"]["rows"]
            for key, n in rows.items():
                for field in ("sample_index", "records"):
                    arr = zarr.open_array(str(path / "acquisitions/acq" / key / field), mode="r")
                    assert arr.shape[0] >= n
                    got = np.asarray(arr[:n])
                    if field == "sample_index":  # every row the commit will claim is there
                        assert np.count_nonzero(got) == n, (key, got)
            checked.append(sum(rows.values()))
        real(p, data, **options)

    patch_atomic_write(monkeypatch, check_before_commit)
    for k in range(6):
        acq.append(make_batch([0, 1, 1] * (k + 1), np.arange(3 * k + 3) + 1 + 100 * k, length=64))
        acq.flush()
    run.close()
    assert checked[-1] == 63 and len(checked) >= 7


def test_background_flush_commits_within_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "run"
    with open_writer(path, background_flush=True, flush_interval_s=0.2) as run:
        acq = run.acquisition("acq", [0, 1], 32, "int16", RATE, PRE)
        r = RunReader(path)
        t0 = time.monotonic()
        acq.append(make_batch([0, 1, 1], [5, 6, 7]))
        while r.committed("acq", 1) < 2 and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        waited = time.monotonic() - t0
        assert r.committed("acq", 1) == 2 and waited < 1.0, waited


def test_gaps_and_drops_reach_store_and_summary(tmp_path: Path) -> None:
    path = tmp_path / "run"
    with open_writer(path) as run:
        acq = run.acquisition("acq", [0, 1], 32, "int16", RATE, PRE)
        acq.append(make_batch([0], [10], block=(0, 1000)))
        acq.append(make_batch([1], [1500], block=(1200, 800), gaps=(Gap(1000, 1200),), lost=2))
        acq.add_drops("monitor", 5, 1)
        acq.flush()
        acq.record_gaps([Gap(2000, 2100)])
        acq.add_drops("monitor", 3, 1)
        acq.add_drops("publisher", 7)
        acq.append(make_batch([0, 1], [2200, 2300], block=(2100, 900)))
        second = run.acquisition("acq2", [4], 32, "int16", RATE, PRE)
        second.append(make_batch([4], [50], acquisition="acq2", block=(0, 500)))
        second.add_drops("store", 1, 1)
    r = RunReader(path)
    assert r.gaps("acq") == [Gap(1000, 1200), Gap(2000, 2100)]
    assert r.drops("acq") == {
        "monitor": {"records": 8, "batches": 2},
        "publisher": {"records": 7, "batches": 0},
    }
    s = r.summary()
    a = s["acquisitions"]["acq"]
    assert (a["gaps"], a["gap_samples"], a["records_lost_to_gaps"]) == (2, 300, 2)
    assert a["processed_samples"] == 2700 and a["live_time_s"] == pytest.approx(2700 / RATE)
    assert a["records_per_channel"] == {0: 2, 1: 2} and a["dropped_records"] == 15
    assert s["drops"] == {"monitor": 8, "publisher": 7, "store": 1}
    assert s["dropped_records"] == 16 and s["records"] == 5 and s["gaps"] == 2
    assert s["live_time_s"] == pytest.approx(3200 / RATE)
    assert s["complete"] is True
    assert r.metadata["summary"]["drops"] == s["drops"]  # also written at close


def test_buffer_byte_budget_bounds_memory(tmp_path: Path) -> None:
    path = tmp_path / "run"
    budget = 60_000
    with open_writer(path, buffer_bytes=budget) as run:
        acq = run.acquisition("acq", [0, 1], 256, "int16", RATE, PRE)
        sequences, buffered = [], []
        for k in range(40):
            batch = make_batch([0, 1] * 10, range(k * 100, k * 100 + 20), length=256)
            acq.append(batch)
            buffered.append(acq.buffered_bytes)
            sequences.append(acq.commit.sequence)
        # ~11 kB batches: the buffer fills to just under the budget, then one append flushes it
        assert max(buffered) < budget and max(buffered) > budget - 2 * batch.records.nbytes
        flushed_at = [k for k in range(1, 40) if sequences[k] > sequences[k - 1]]
        period = flushed_at[0] + 1
        assert period == 6 and flushed_at == list(range(period - 1, 40, period))
        assert all(buffered[k] == 0 for k in flushed_at)
        assert acq.committed_total == len(flushed_at) * period * 20
    assert RunReader(path).summary()["records"] == 800


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), ValueError("boom")])
def test_interrupt_leaves_a_complete_store(tmp_path: Path, exc: BaseException) -> None:
    path = tmp_path / "run"
    batches = [make_batch([0, 2, 2], [k * 10, k * 10 + 1, k * 10 + 2]) for k in range(5)]
    with pytest.raises(type(exc)), open_writer(path) as run:
        acq = run.acquisition("acq", [0, 2], 32, "int16", RATE, PRE)
        for b in batches:
            acq.append(b)
        raise exc
    r = RunReader(path)
    meta = r.metadata
    assert meta["complete"] is True
    want = "interrupted: KeyboardInterrupt" if isinstance(exc, KeyboardInterrupt) else "boom"
    assert want in meta["end_reason"]
    assert r.commit("acq").closed is True and meta["summary"]["records"] == 15
    np.testing.assert_array_equal(r.read("acq", 2)["records"], rows_of(batches, 2)["records"])


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_interrupted_flush_is_retried_without_holes_or_duplicates(
    tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    path = tmp_path / "run"
    run = open_writer(path, records_codec=codec)
    acq = run.acquisition("acq", [0, 1], 64, "int16", RATE, PRE)
    batches = [make_batch([0, 1, 0], [k * 10, k * 10 + 1, k * 10 + 2], length=64) for k in (1, 2)]
    acq.append(batches[0])
    acq.flush()
    acq.append(batches[1])
    real = atomic.write_atomic
    calls = []

    # Channel 0's rows are written (records whole, the other arrays in place into their chunk
    # files), then Ctrl-C comes at channel 1's records chunk.
    def interrupt_on_2nd(p: Path, data: str | bytes, **options: bool) -> None:
        calls.append(p)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(p, data, **options)

    patch_atomic_write(monkeypatch, interrupt_on_2nd)
    with pytest.raises(KeyboardInterrupt):
        acq.flush()
    patch_atomic_write(monkeypatch, real)
    assert RunReader(path).committed("acq", 0) == 2  # the interrupted flush did not commit
    run.close()
    r = RunReader(path)
    for ch in (0, 1):
        want = rows_of(batches, ch)
        got = r.read("acq", ch)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


def test_errors_name_the_path_and_the_problem(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(RunStoreError, match=f"{plain}: not a cryodaq run store"):
        RunReader(plain)
    (plain / "x").write_text("x")
    with pytest.raises(RunStoreError, match="exists and is not an empty directory"):
        RunStore.create(plain)
    path = tmp_path / "run"
    run = open_writer(path)
    acq = run.acquisition("acq", [0, 1], 32, "int16", RATE, PRE)
    with pytest.raises(RunStoreError, match="acquisition 'acq' exists already"):
        run.acquisition("acq", [0], 32, "int16", RATE, PRE)
    with pytest.raises(RunStoreError, match="acquisition name 'a/b'"):
        run.acquisition("a/b", [0], 32, "int16", RATE, PRE)
    bad = {
        "records of shape \\(1, 16\\), expected \\(n, 32\\)": make_batch([0], [1], length=16),
        "records dtype float32, expected int16": make_batch([0], [1], dtype="float32"),
        "pretrigger 3, expected 8": make_batch([0], [1], pretrigger=3),
        "belongs to acquisition 'other'": make_batch([0], [1], acquisition="other"),
        "channels \\[7\\] are not in the acquisition": make_batch([0, 7], [1, 2]),
        "sample rate 1000.0 Hz": make_batch([0], [1], rate=1000.0),
    }
    for message, batch in bad.items():
        with pytest.raises(RunStoreError, match=f"{path}.*{message}"):
            acq.append(batch)
    acq.append(make_batch([1], [5]))
    run.close()
    with pytest.raises(RunStoreError, match="is closed"):
        acq.append(make_batch([1], [6]))
    r = RunReader(path)
    with pytest.raises(RunStoreError, match=f"{path}: no acquisition 'nope'; it has \\['acq'\\]"):
        r.read("nope", 0)
    with pytest.raises(RunStoreError, match="has no channel 5; it has \\[0, 1\\]"):
        r.read("acq", 5)
    with pytest.raises(RunStoreError, match="has no field 'energy'"):
        r.read("acq", 1, ["energy"])


def test_commit_is_stored_under_its_documented_keys(tmp_path: Path) -> None:
    path = tmp_path / "run"
    with open_writer(path) as run:
        acq = run.acquisition("acq", [0, 2], 32, "int16", RATE, PRE)
        acq.append(make_batch([0, 2, 2], [10, 11, 12], block=(0, 1000)))
    stored = store_format.group_attrs(path / "acquisitions/acq")["commit"]
    assert list(stored) == [
        "sequence", "time_ns", "rows", "gaps", "gap_samples", "processed_samples",
        "first_sample", "next_sample", "batches", "records_lost_to_gaps", "drops",
        "extra_columns", "closed",
    ]  # fmt: skip
    commit = RunReader(path).commit("acq")
    assert commit == Commit.from_json(stored) and commit.to_json() == stored
    assert commit.rows == {"ch000": 1, "ch002": 2} and commit.total_rows == 3 and commit.closed


def test_acquisitions_are_listed_in_start_order_whenever_they_were_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts created by board tasks are listed by their start, not by when the run's writer
    adopted them; parts started at the same moment are listed by name."""
    path = tmp_path / "run"
    boards = BoardStore(path, background_flush=False)
    with open_writer(path) as run:
        run.acquisition("own", [0], 32, "int16", RATE, PRE).close()
        for name in ("z-part", "b-part"):
            boards.acquisition(name, [0], 32, "int16", RATE, PRE).close()
        same_moment = {"unix_ns": 4 * 10**18, "iso": "2096-10-02T07:06:40+00:00"}
        monkeypatch.setattr(acquisition_writer, "now", lambda: same_moment)
        for name in ("d-part", "c-part"):
            boards.acquisition(name, [0], 32, "int16", RATE, PRE).close()
        for name in ("c-part", "b-part", "d-part", "z-part"):  # as their tasks finished
            run.adopt(name)
    assert RunReader(path).acquisitions() == ["own", "z-part", "b-part", "c-part", "d-part"]


# ---------------------------------------------------------------------------------------------
# SIGKILL of a real writer process


def _check_child_store(path: Path) -> dict[str, int]:
    """Every committed row is exactly what the child wrote; returns what was found."""
    r = RunReader(path)
    assert r.metadata["complete"] is False
    commit = r.commit(child.ACQ)
    batches = commit.batches
    uncommitted_on_disk = 0
    for ch in child.CHANNELS:
        n = r.committed(child.ACQ, ch)
        assert n == batches * child.ROWS_PER_BATCH  # one atomic commit for all channels
        got = r.read(child.ACQ, ch, [*r.fields(child.ACQ, ch)])
        want = child.expected(ch, np.arange(n))
        for name, values in want.items():
            np.testing.assert_array_equal(got[name], values, err_msg=f"{path} ch {ch} {name}")
        si = zarr.open_array(str(path / "acquisitions" / child.ACQ / f"ch{ch:03d}/sample_index"))
        uncommitted_on_disk += int(np.count_nonzero(np.asarray(si[n:])))
    assert r.gaps(child.ACQ) == child.expected_gaps(batches)
    assert commit.processed_samples == batches * child.BLOCK
    assert commit.records_lost_to_gaps == len(child.expected_gaps(batches))
    drops = commit.drops.get("monitor", {"records": 0})["records"]
    assert drops in (child.expected_drops(batches), child.expected_drops(batches + 1))
    assert r.summary()["records"] == n * len(child.CHANNELS)
    return {"committed": n * len(child.CHANNELS), "uncommitted_on_disk": uncommitted_on_disk}


def _poll_while_writing(path: Path, stop: threading.Event, seen: list[int]) -> None:
    """A reader (this process) while the child process writes: always a consistent prefix."""
    while not stop.is_set():
        if (path / "zarr.json").exists() and child.ACQ in RunReader(path).acquisitions():
            r = RunReader(path)
            for ch in child.CHANNELS[:2]:
                got = r.read(child.ACQ, ch, ["sample_index", "records"])
                n = got["sample_index"].size
                want = child.expected(ch, np.arange(n))
                assert np.array_equal(got["sample_index"], want["sample_index"])
                assert np.array_equal(got["records"], want["records"])
                seen.append(n)
        time.sleep(0.05)


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_sigkill_leaves_everything_committed_readable(tmp_path: Path, codec: str) -> None:
    script = Path(child.__file__)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = random.Random()
    delays = [1.2 + 1.6 * i / 2 + rng.uniform(0, 0.5) for i in range(3)]  # different moments
    procs = []
    for i in range(3):
        path = tmp_path / f"run{i}"
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), codec],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        lines: list[tuple[str, int, float]] = []

        def pump(p: subprocess.Popen = proc, out: list = lines) -> None:
            assert p.stdout is not None
            for line in p.stdout:
                word, rows, t = line.split()
                out.append((word, int(rows), float(t)))

        pumper = threading.Thread(target=pump, daemon=True)
        pumper.start()
        procs.append((path, proc, lines, pumper))
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            _poll_while_writing(procs[0][0], stop, seen)
        except BaseException as exc:
            errors.append(exc)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        deadline = time.monotonic() + 30
        while not all(any(w == "committed" for w, *_ in lines) for _, _, lines, _ in procs):
            assert time.monotonic() < deadline, "the writers never committed"
            assert all(p.poll() is None for _, p, _, _ in procs), "a writer died"
            time.sleep(0.02)
        started = time.monotonic()
        kills = [0.0] * len(procs)
        for i in sorted(range(len(procs)), key=lambda i: delays[i]):
            time.sleep(max(0.0, started + delays[i] - time.monotonic()))
            os.kill(procs[i][1].pid, signal.SIGKILL)
            kills[i] = time.monotonic()
            procs[i][1].wait(timeout=10)
    finally:
        stop.set()
        for _, proc, _, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    poller.join(timeout=10)
    assert not errors, errors
    assert len(seen) > 5 and seen == sorted(seen) and seen[-1] > 0  # grew while it was written
    report = []
    for (path, proc, lines, pumper), t_kill in zip(procs, kills, strict=True):
        pumper.join(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        found = _check_child_store(path)
        records = path / "acquisitions" / child.ACQ / "ch000" / "records"
        meta = json.loads((records / "zarr.json").read_text())
        assert RECORDS_CODECS[codec].matches(meta["codecs"][1])
        old = t_kill - 1.0
        reported = max((n for w, n, t in lines if w == "committed" and t < old), default=0)
        appended = max((n for w, n, t in lines if w == "appended" and t < old), default=0)
        assert found["committed"] >= reported > 0, (path, found, reported)
        assert found["committed"] >= appended > 0, (path, found, appended)
        # how long before the kill the data now on disk had been handed to the writer
        handed = [t for w, n, t in lines if w == "appended" and n <= found["committed"]]
        last_appended = max(n for w, n, t in lines if w == "appended")
        report.append(
            {
                "run": path.name,
                "lag_s": round(t_kill - max(handed), 3),
                "committed": found["committed"],
                "appended_before_kill": last_appended,
                "uncommitted_rows_on_disk": found["uncommitted_on_disk"],
            }
        )
    print("sigkill report", report)


def test_resume_refuses_an_open_run_while_its_writer_may_live(tmp_path: Path) -> None:
    """An unclosed run is sealed for a resume only when its writer is known dead: not while
    the writing process (here: this one) runs, nor when it ran on another host."""
    path = tmp_path / "run"
    store = open_writer(path)
    try:
        store.acquisition("a", [1], 8, "int16", 1e3, 2).flush()
        with pytest.raises(RunStoreError, match=f"still being written by pid {os.getpid()}"):
            RunStore.resume(path)
        attrs = store_format.group_attrs(path)
        store_format.write_group(path, {**attrs, "writer": {"pid": 1, "host": "daq-other"}})
        with pytest.raises(RunStoreError, match="pid 1 on daq-other; resume it on that host"):
            RunStore.resume(path)
        assert not RunReader(path).commit("a").closed  # nothing was sealed
    finally:
        store.close()
