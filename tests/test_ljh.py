"""LJH 2.2 export: header keys and values, record layout as NIST mass2 reads it, round trips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch
from cryodaq.acquisition.store.ljh import (
    LJHError,
    LJHWriter,
    export_ljh,
    ljh_filename,
    read_ljh,
    write_ljh,
)
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore

START_NS = 1_700_000_000_250_000_000
RATE = 500_000.0


def int16_records(n: int, length: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    rec = rng.integers(-32768, 32768, (n, length)).astype(np.int16)
    rec[0, :3] = [-32768, 0, 32767]  # the extremes survive the +32768 offset
    return rec


def test_round_trip_int16_with_every_header_value(tmp_path: Path) -> None:
    n, length = 25, 96
    records = int16_records(n, length)
    sample_index = (1 << 40) + np.arange(n, dtype=np.int64) * 12_345
    timestamp_ns = START_NS + 1_000_000 + sample_index * 2000 + 789  # sub-microsecond part
    path = write_ljh(
        tmp_path / ljh_filename("run_acq", 3),
        records,
        sample_index,
        timestamp_ns,
        channel=3,
        pretrigger=20,
        sample_rate_hz=RATE,
        server_start_ns=START_NS,
        number_of_channels=4,
        column=1,
        software_version="0.1.0",
    )
    text = path.read_bytes()
    lines = text.split(b"#End of Header\n")[0].decode().splitlines()
    assert lines[0] == "#LJH Memorial File Format"
    f = read_ljh(path)
    h = f.header
    assert h["Save File Format Version"] == "2.2.0"
    assert h["Software Version"].startswith("cryodaq 0.1.0")
    assert h["Data source"] == "cryodaq"
    assert (h["Number of rows"], h["Number of columns"], h["Number of channels"]) == ("1", "4", "4")
    assert h["Row number (from 0-0 inclusive)"] == "0"
    assert h["Column number (from 0-3 inclusive)"] == "1"
    assert (h["Channel name"], h["Channel"]) == ("chan3", "3")
    assert h["Digitized Word Size In Bytes"] == "2"
    assert (h["Presamples"], h["Total Samples"]) == ("20", "96")
    assert float(h["Timebase"]) == float(h["Timebase (s)"]) == 1 / RATE
    assert float(h["Timestamp offset (s)"]) == pytest.approx(START_NS / 1e9, abs=1e-6)
    assert h["Server Start Time"] == "14 Nov 2023, 22:13:20 UTC"
    assert h["First Record Time"] == "10 Dec 2023, 09:03:43 UTC"  # + 2**40 samples at 2 us
    assert h["Sample Offset"] == "32768" and h["Sample Dtype"] == "int16"
    assert f.header_size == text.index(b"#End of Header\n") + len(b"#End of Header\n")
    assert len(text) == f.header_size + n * (16 + 2 * length) and f.trailing_bytes == 0
    np.testing.assert_array_equal(f.frame_count, sample_index)
    np.testing.assert_array_equal(f.posix_usec, timestamp_ns // 1000)
    np.testing.assert_array_equal(f.raw, records.astype(np.int32) + 32768)
    np.testing.assert_array_equal(f.records, records)
    assert f.records.dtype == np.int16


def mass2_open(path: Path) -> dict:
    """What mass2's LJHFile.open (mass2/core/ljhfiles.py) derives from a file, re-done here."""
    header: dict = {}
    with open(path, "rb") as fp:
        while True:
            line = fp.readline().decode()
            if line.startswith("#End of Header"):
                break
            if ":" in line:
                a, b = line.split(":", maxsplit=1)
                header[a.strip()] = b.strip()
        header_size = fp.tell()
    for name, kind in (("Channel", int), ("Timebase", float), ("Total Samples", int)):
        header[name] = kind(float(header.get(name, -1)))
    npresamples = int(header["Presamples"])
    if "DASTARD" not in header.get("Software Version", "UNKNOWN"):
        npresamples += 3  # mass2's fix for MATTER files
    nsamples = header["Total Samples"]
    dtype = np.dtype(
        [("subframecount", np.int64), ("posix_usec", np.int64), ("data", np.uint16, nsamples)]
    )
    npulses = (path.stat().st_size - header_size) // dtype.itemsize
    mm = np.memmap(path, dtype, mode="r", offset=header_size, shape=(npulses,))
    return {
        "channum": header["Channel"],
        "timebase": header["Timebase"],
        "npresamples": npresamples,
        "nsamples": nsamples,
        "subframediv": int(header.get("Subframe divisions", header.get("Number of rows"))),
        "mm": mm,
        "mass1_channum": int(str(path).split("_chan")[1].split(".")[0]),
    }


def test_mass2_reads_what_cryodaq_writes(tmp_path: Path) -> None:
    records = int16_records(10, 64)
    si = np.arange(10, dtype=np.int64) * 1000 + 5
    ts = START_NS + si * 2000
    path = write_ljh(
        tmp_path / ljh_filename("x", 12),
        records,
        si,
        ts,
        channel=12,
        pretrigger=16,
        sample_rate_hz=RATE,
        server_start_ns=START_NS,
    )
    m = mass2_open(path)
    assert (m["channum"], m["mass1_channum"], m["nsamples"]) == (12, 12, 64)
    assert m["npresamples"] == 16  # no +3: the version string says DASTARD-compatible
    assert m["timebase"] == 1 / RATE and m["subframediv"] == 1
    np.testing.assert_array_equal(m["mm"]["subframecount"], si)
    np.testing.assert_array_equal(m["mm"]["posix_usec"], ts // 1000)
    # mass treats samples as unsigned: the offset keeps a positive pulse above its baseline
    np.testing.assert_array_equal(m["mm"]["data"].astype(np.int32) - 32768, records)


def test_export_of_a_run_store_channel_round_trips(tmp_path: Path) -> None:
    run_path = tmp_path / "run"
    rng = np.random.default_rng(3)
    with RunStore.create(run_path, {"rig": {"name": "r"}}, background_flush=False) as run:
        acq = run.acquisition("pulses", [2, 5], 48, "int16", RATE, 12)
        for k in range(4):
            n = 9
            ch = np.array([2, 5] * 4 + [5], np.int32)
            si = np.sort(k * 10_000 + rng.integers(0, 10_000, n)).astype(np.int64)
            acq.append(
                EventBatch(
                    "pulses", RATE, k * 10_000, 10_000, 12, ch, si, START_NS + si * 2000 + 999,
                    np.ones(n, np.uint8), np.ones(n, np.uint16),
                    rng.integers(-32768, 32768, (n, 48)).astype(np.int16),
                    np.zeros(n, SUMMARY_DTYPE),
                )
            )  # fmt: skip
            acq.flush()
    reader = RunReader(run_path)
    path = export_ljh(reader, "pulses", 5, tmp_path / ljh_filename("pulses", 5), rows_per_read=7)
    want = reader.read("pulses", 5)
    f = read_ljh(path)
    assert f.records.shape == (20, 48)
    np.testing.assert_array_equal(f.records, want["records"])
    np.testing.assert_array_equal(f.frame_count, want["sample_index"])
    np.testing.assert_array_equal(f.posix_usec, want["timestamp_ns"] // 1000)
    h = f.header
    assert (h["Channel"], h["Presamples"], h["Total Samples"]) == ("5", "12", "48")
    assert h["Number of channels"] == "2" and h["Column number (from 0-1 inclusive)"] == "1"
    start_ns = reader.info("pulses")["start"]["unix_ns"]
    assert float(h["Timestamp offset (s)"]) == pytest.approx(start_ns / 1e9, abs=1e-6)
    assert h["Software Version"].startswith(f"cryodaq {reader.metadata['versions']['cryodaq']}")
    assert "acquisition pulses" in h["Data source"]


def test_float_records_need_an_explicit_scale(tmp_path: Path) -> None:
    phase = np.linspace(-3.0, 3.0, 5 * 32, dtype=np.float32).reshape(5, 32)
    args = dict(channel=1, pretrigger=4, sample_rate_hz=RATE, server_start_ns=START_NS)
    with pytest.raises(LJHError, match=f"{tmp_path / 'a.ljh'}: float32 records .* give scale="):
        write_ljh(tmp_path / "a.ljh", phase, np.arange(5), np.arange(5), **args)
    scale = 2 * math.pi / 65536
    f = read_ljh(
        write_ljh(tmp_path / "b.ljh", phase, np.arange(5), np.arange(5), scale=scale, **args)
    )
    assert float(f.header["Sample Scale"]) == scale and f.records.dtype == np.float32
    assert np.max(np.abs(f.records - phase)) <= scale / 2 + 1e-6
    with pytest.raises(LJHError, match="nothing is clipped silently"):
        write_ljh(tmp_path / "c.ljh", phase * 2, np.arange(5), np.arange(5), scale=scale, **args)
    nan = phase.copy()
    nan[0, 0] = np.nan
    with pytest.raises(LJHError, match="values outside"):
        write_ljh(tmp_path / "d.ljh", nan, np.arange(5), np.arange(5), scale=scale, **args)


def test_uint16_records_are_stored_as_they_are(tmp_path: Path) -> None:
    records = np.array([[0, 1, 65535, 40000]], np.uint16)
    f = read_ljh(
        write_ljh(
            tmp_path / "u.ljh", records, [7], [START_NS], channel=0, pretrigger=1,
            sample_rate_hz=RATE, server_start_ns=START_NS,
        )
    )  # fmt: skip
    assert f.header["Sample Offset"] == "0"
    np.testing.assert_array_equal(f.raw, records)
    np.testing.assert_array_equal(f.records, records)


def test_a_channel_without_records_still_gets_a_header(tmp_path: Path) -> None:
    f = read_ljh(
        write_ljh(
            tmp_path / "e.ljh", np.zeros((0, 16), np.int16), [], [], channel=0, pretrigger=2,
            sample_rate_hz=RATE, server_start_ns=START_NS,
        )
    )  # fmt: skip
    assert f.header["First Record Time"] == "no records" and f.raw.shape == (0, 16)


def test_reader_refuses_what_is_not_ljh_and_tolerates_a_cut_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ljh"
    bad.write_bytes(b"hello\n")
    with pytest.raises(LJHError, match=f"{bad}: does not start with '#LJH Memorial File Format'"):
        read_ljh(bad)
    bad.write_bytes(b"#LJH Memorial File Format\nSave File Format Version: 2.2.0\n")
    with pytest.raises(LJHError, match="ends before '#End of Header'"):
        read_ljh(bad)
    good = write_ljh(
        tmp_path / "g.ljh", int16_records(3, 8), [1, 2, 3], [START_NS] * 3, channel=0,
        pretrigger=2, sample_rate_hz=RATE, server_start_ns=START_NS,
    )  # fmt: skip
    data = good.read_bytes()
    good.write_bytes(data[:-5])  # a writer died mid-record
    f = read_ljh(good)
    assert f.raw.shape == (2, 8) and f.trailing_bytes == 16 + 16 - 5
    with (
        pytest.raises(LJHError, match="records int16 \\(2, 9\\), expected int16 \\(n, 8\\)"),
        LJHWriter(
            tmp_path / "h.ljh", channel=0, record_length=8, pretrigger=2, sample_rate_hz=RATE,
            dtype="int16", server_start_ns=START_NS,
        ) as w,
    ):  # fmt: skip
        w.write(int16_records(2, 9), [1, 2], [1, 2])
