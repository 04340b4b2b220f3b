"""A run's records codec (`store.codecs`): each choice is plain Zarr v3 (zarr reads every row and
writes the same chunk bytes), the direct reader decodes it, a bad name is one clear line, the
campaign's choice reaches its run store and its board tasks, and a killed run resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import store_writer_child as child
import zarr
from numcodecs import Zstd
from test_run_store import make_batch, open_writer, rows_of
from typer.testing import CliRunner

from cryodaq.acquisition.campaign.runner import CampaignRunner
from cryodaq.acquisition.campaign.steps.acquire import AcquireStep
from cryodaq.acquisition.campaign.steps.acquire_boards import board_tasks
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.campaign.validate import load_campaign
from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.clock import WorldClock
from cryodaq.acquisition.cluster.boards import acquire_board
from cryodaq.acquisition.live.chunks import ChunkedArray
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store import columns as store_columns
from cryodaq.acquisition.store.chunk_reader import read_rows
from cryodaq.acquisition.store.codecs import RECORDS_CODECS
from cryodaq.acquisition.store.format import RunStoreError
from cryodaq.acquisition.store.frames import blosc_sizes, zstd_content_size
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore

RIGS = Path(__file__).resolve().parents[1] / "config" / "rigs"
ACQUIRE = {"name": "p", "source": "roach1", "duration": "40 ms", "block": 4096,
           "record_length": 256, "pretrigger": 64,
           "trigger": {"all": {"edge_threshold": "0.05 Phi0", "noise_every": "5 ms"}}}  # fmt: skip


def _records(path: Path, acq: str, ch: int) -> Path:
    return path / "acquisitions" / acq / f"ch{ch:03d}" / "records"


@pytest.mark.parametrize("codec", list(RECORDS_CODECS))
def test_records_are_plain_zarr_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    """Every records chunk holds the bytes zarr itself writes for those rows, with zarr's own
    codec metadata (also for arrays made from a template); zarr and the direct reader read the
    rows back, partial chunks included."""
    monkeypatch.setattr(store_columns, "CHUNK_BYTES", 40 * 32 * 2)  # 40 records a chunk
    path = tmp_path / "run"
    rng = np.random.default_rng(5)
    a = [make_batch(rng.choice([0, 2, 5], 50), range(k * 50, k * 50 + 50)) for k in range(6)]
    b = [make_batch(rng.choice([1, 4], 50), range(k * 50, k * 50 + 50), length=16,
                    dtype="float32", acquisition="b") for k in range(3)]  # fmt: skip
    with open_writer(path, records_codec=codec) as run:
        for name, channels, length, dtype, batches in (
            ("acq", [0, 2, 5], 32, "int16", a), ("b", [1, 4], 16, "float32", b),
        ):  # fmt: skip
            acq = run.acquisition(name, channels, length, dtype, 250e3, 8)
            for batch in batches:
                acq.append(batch)
    checked = 0
    for name, channels, batches in (("acq", [0, 2, 5], a), ("b", [1, 4], b)):
        for ch in channels:
            want = rows_of(batches, ch)["records"]
            array = _records(path, name, ch)
            meta = json.loads((array / "zarr.json").read_text())
            ref = zarr.create_array(
                store=str(tmp_path / "ref" / name / str(ch)), shape=want.shape,
                chunks=(40, want.shape[1]), dtype=want.dtype,
                compressors=[RECORDS_CODECS[codec].zarr_codec()],
                chunk_key_encoding={"name": "default", "separator": "."},
            )  # fmt: skip
            ref[:] = want
            root = Path(ref.store.root)
            assert meta["codecs"] == json.loads((root / "zarr.json").read_text())["codecs"]
            assert RECORDS_CODECS[codec].matches(meta["codecs"][1], want.dtype.itemsize)
            assert np.array_equal(zarr.open_array(str(array), mode="r")[:], want)
            for index in range(-(-len(want) // 40)):
                ours = (array / f"c.{index}.0").read_bytes()
                theirs = (root / f"c.{index}.0").read_bytes()
                assert ours == theirs, (name, ch, index)
                checked += 1
            n = len(want)
            for start, stop in ((0, n), (1, n - 1), (39, 41), (n - 1, n), (5, 5)):
                got = read_rows(array, start, stop)
                assert got is not None and np.array_equal(got, want[start:stop])
                live = ChunkedArray(array)  # the live view's reader of a growing store
                assert live.direct and np.array_equal(live.rows(start, stop), want[start:stop])
            assert np.array_equal(RunReader(path).read(name, ch, ["records"])["records"], want)
    assert checked > 10


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_earlier_stores_chunk_keys_read_directly(tmp_path: Path, codec: str) -> None:
    """Arrays with chunk keys `c/<i>/0` (stores written before the flat `c.<i>.0`) are read
    straight from their chunk files too, by the reader and by the live view."""
    want = np.arange(90 * 16, dtype="int16").reshape(90, 16)
    old = zarr.create_array(
        store=str(tmp_path / "old"), shape=want.shape, chunks=(40, 16), dtype=want.dtype,
        compressors=[RECORDS_CODECS[codec].zarr_codec()],
        chunk_key_encoding={"name": "default", "separator": "/"},
    )  # fmt: skip
    old[:] = want
    array = Path(old.store.root)
    assert (array / "c" / "2" / "0").is_file()
    for start, stop in ((0, 90), (39, 41), (85, 90)):
        got = read_rows(array, start, stop)
        assert got is not None and np.array_equal(got, want[start:stop])
        live = ChunkedArray(array)
        assert live.direct and np.array_equal(live.rows(start, stop), want[start:stop])


def test_a_bad_codec_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(RunStoreError, match="records_codec: 'gzip' is not a records codec; "
                       "use one of zstd, lz4"):  # fmt: skip
        RunStore.create(tmp_path / "run", records_codec="gzip")
    assert not (tmp_path / "run").exists()  # refused before anything was written
    path = tmp_path / "campaign.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: bad
        rig: {RIGS / "mmc_simple_sim.yaml"}
        store: {{records_codec: gzip}}
        steps:
          - wait: 1 s
        """))  # fmt: skip
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert (f"{path}:3:24 store.records_codec: Input should be 'zstd' or 'lz4', got 'gzip'"
            in result.output), result.output  # fmt: skip
    for value, why in (("0 MiB", "must be > 0 byte"), ("5 s", "[time], expected byte")):
        path.write_text(path.read_text().replace("records_codec: gzip", f"buffer: {value}"))
        result = CliRunner().invoke(app, ["validate", str(path)])
        assert result.exit_code == 1 and f"{path}:3:" in result.output, result.output
        assert "store.buffer" in result.output and why in result.output, result.output
        path.write_text(path.read_text().replace(f"buffer: {value}", "records_codec: gzip"))


def test_the_campaigns_store_options_reach_its_store_and_board_tasks(tmp_path: Path) -> None:
    """`store: {records_codec: zstd, buffer: 1 MiB}` makes the campaign's run store write Zstd
    records (not the default); a board task (built as a multi-board step builds it, run here
    in-process) writes its part with the run's codec and buffer too."""
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({
        "name": "codec", "rig": str(RIGS / "holmes_boards_sim.yaml"),
        "store": {"records_codec": "zstd", "buffer": "1 MiB"},
        "steps": [{"set": {"roach1.channels.1.enabled": True}}, {"acquire": ACQUIRE}],
    }))  # fmt: skip
    loaded = load_campaign(path, [])
    assert CampaignRunner(loaded.campaign, loaded.rig, loaded.raw, tmp_path / "run").run() == 0
    stored = tmp_path / "run" / "store"
    meta = json.loads((_records(stored, "p", 1) / "zarr.json").read_text())
    assert RECORDS_CODECS["zstd"].matches(meta["codecs"][1])
    assert RunReader(stored).committed("p", 1) > 3

    with Rig(load_rig(RIGS / "holmes_boards_sim.yaml")) as rig:
        store = RunStore.create(tmp_path / "boards", records_codec="zstd", buffer_bytes=2**20)
        ctx = RunContext(rig, WorldClock(rig), store, tmp_path)
        ctx.instrument("roach1").channel(1).enabled = True
        (task,) = board_tasks(ctx, AcquireStep.model_validate(ACQUIRE), "p", {"roach1": (1, 0.04)})
        assert (task.records_codec, task.buffer_bytes) == ("zstd", 2**20)
        outcome = acquire_board(task)
        store.adopt(task.store_name)
        store.close()
    assert outcome.error is None
    records = _records(tmp_path / "boards", task.store_name, 1)
    meta = json.loads((records / "zarr.json").read_text())
    assert RECORDS_CODECS["zstd"].matches(meta["codecs"][1])
    rows = RunReader(tmp_path / "boards").read(task.store_name, 1, ["records"])["records"]
    assert len(rows) > 3 and np.array_equal(zarr.open_array(str(records), mode="r")[:], rows)


def test_a_killed_lz4_run_resumes_with_every_committed_row(tmp_path: Path) -> None:
    """SIGKILL of an lz4 writer, then a resume: the run is sealed at its last commit (arrays
    trimmed to it), plain zarr reads exactly the committed rows, and new acquisitions follow."""
    path = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, child.__file__, str(path), "lz4"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, rows, _ = line.split()
            if word == "committed" and int(rows) >= 200:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    killed = RunReader(path)
    committed = {ch: killed.committed(child.ACQ, ch) for ch in child.CHANNELS}
    with RunStore.resume(path, records_codec="lz4") as run:
        run.acquisition("after", [0], child.RECORD_LENGTH, "int16", child.RATE_HZ, 16).close()
    reader = RunReader(path)
    assert reader.acquisitions() == [child.ACQ, "after"] and reader.commit(child.ACQ).closed
    for ch, n in committed.items():
        assert n >= 200 // len(child.CHANNELS)
        stored = zarr.open_array(str(_records(path, child.ACQ, ch)), mode="r")
        assert stored.shape[0] == n
        assert np.array_equal(stored[:], child.expected(ch, np.arange(n))["records"])


@pytest.mark.parametrize("codec", [*RECORDS_CODECS, None])
def test_a_truncated_chunk_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str | None
) -> None:
    """A records chunk cut short (a full disk, a bad copy) is a RunStoreError naming the array
    and the chunk, not a numcodecs traceback nor rows of uninitialised memory."""
    monkeypatch.setattr(store_columns, "CHUNK_BYTES", 4 * 32 * 2)  # 4 records a chunk
    path = tmp_path / "run"
    options = {"records_codec": codec} if codec else {"compress_records": False}
    with open_writer(path, **options) as run:
        run.acquisition("acq", [0], 32, "int16", 250e3, 8).append(make_batch([0] * 9, range(9)))
    chunk = _records(path, "acq", 0) / "c.0.0"
    chunk.write_bytes(chunk.read_bytes()[:-7])
    for start, stop in ((0, 9), (1, 3)):  # chunk 0 whole, and part of it
        with pytest.raises(RunStoreError, match=r"records: chunk 0 is truncated or corrupt"):
            RunReader(path).read("acq", 0, ["records"], start, stop)


@pytest.mark.parametrize("codec", list(RECORDS_CODECS))
def test_a_valid_frame_of_fewer_rows_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    """A records chunk replaced by a valid frame of fewer rows (a stale or foreign file) is a
    RunStoreError, not rows of uninitialised memory after the frame's own."""
    monkeypatch.setattr(store_columns, "CHUNK_BYTES", 4 * 32 * 2)  # 4 records a chunk
    path = tmp_path / "run"
    with open_writer(path, records_codec=codec) as run:
        run.acquisition("acq", [0], 32, "int16", 250e3, 8).append(make_batch([0] * 9, range(9)))
    chunk = _records(path, "acq", 0) / "c.1.0"
    short = RECORDS_CODECS[codec].encoder().encode(np.ones((3, 32), "int16"))
    chunk.write_bytes(short)
    for start, stop in ((0, 9), (4, 8), (5, 6)):
        with pytest.raises(RunStoreError, match=r"records: chunk 1 is truncated or corrupt"):
            RunReader(path).read("acq", 0, ["records"], start, stop)
        with pytest.raises(RunStoreError, match=r"chunk 1 is truncated or corrupt"):
            ChunkedArray(_records(path, "acq", 0)).rows(start, stop)


@pytest.mark.parametrize("size", [1, 7, 255, 256, 300, 65791, 70_000, 5_000_000])
def test_the_decoded_size_a_frame_declares(size: int) -> None:
    """The sizes read from Zstd and Blosc headers (every Frame_Content_Size width) are what
    the frames decode to."""
    data = np.random.default_rng(size).integers(0, 50, size, dtype="uint8")
    zstd = Zstd(level=1).encode(data)
    assert zstd_content_size(zstd) == len(Zstd().decode(zstd)) == size
    blosc = RECORDS_CODECS["lz4"].encoder().encode(data)
    assert blosc_sizes(blosc) == (size, len(blosc))


def test_uncompressed_rows_are_read_from_their_place_in_the_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uncompressed arrays (raw records, every per-record field) read only the rows asked
    for, across chunk boundaries, exactly as written."""
    monkeypatch.setattr(store_columns, "CHUNK_BYTES", 7 * 32 * 2)  # 7 records a chunk
    monkeypatch.setattr(store_columns, "EVENT_CHUNK_ROWS", 5)
    path = tmp_path / "run"
    batches = [make_batch([0] * 12, range(k * 12, k * 12 + 12)) for k in range(3)]
    with open_writer(path, compress_records=False) as run:
        acq = run.acquisition("acq", [0], 32, "int16", 250e3, 8)
        for batch in batches:
            acq.append(batch)
    want = rows_of(batches, 0)
    reader = RunReader(path)
    for start, stop in ((0, 36), (3, 4), (4, 11), (6, 29), (35, 36)):
        got = reader.read("acq", 0, list(want), start, stop)
        for name in want:
            assert np.array_equal(got[name], want[name][start:stop]), (name, start, stop)
        direct = read_rows(_records(path, "acq", 0).parent / "sample_index", start, stop)
        assert direct is not None and np.array_equal(direct, want["sample_index"][start:stop])
