"""LJH 2.2 files (NIST's pulse-record format) so that NIST mass/mass2 can read cryodaq data.

An LJH 2.2 file is a text header of `Key: value` lines from `#LJH Memorial File Format` to
`#End of Header`, then fixed-size little-endian records: int64 subframe (frame) count, int64
POSIX microseconds, then `Total Samples` uint16 samples (REFERENCE.md section 7).

What cryodaq writes, and why (checked against mass2's `ljhfiles.LJHFile` and mass's
`core/files.py` readers and dastard's `ljh.Writer`):
- the frame count is the record's trigger sample index (dastard writes the trigger frame; with
  `Number of rows: 1` and `Subframe divisions: 1` subframes are samples); the trigger sample
  is sample number `Presamples` of the record (EventBatch's `pretrigger`);
- POSIX microseconds are `timestamp_ns // 1000` (floor);
- samples are uint16 in the file. int16 data are stored as `value + 32768` (header
  `Sample Offset: 32768`) so that order is kept and mass sees positive pulses as positive;
  uint16 data are stored as they are (`Sample Offset: 0`). Other dtypes (the uMUX phase is
  float32) need an explicit `scale` (units per count): stored = round(value / scale) + 32768,
  refused if any value falls outside uint16; the header says `Sample Scale`;
- the timebase is written as `Timebase:` (the key mass, mass2 and dastard read) and also as
  `Timebase (s):` (REFERENCE.md's wording);
- `Software Version` contains "DASTARD-compatible": mass and mass2 add 3 to `Presamples`
  unless that version string contains "DASTARD" (a fix for old MATTER files); ours are exact;
- mass (v1) takes the channel number from the file name (`..._chan<N>.ljh`): `ljh_filename`
  gives such a name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from cryodaq.acquisition.errors import CryodaqError

if TYPE_CHECKING:
    from cryodaq.acquisition.store.reader import RunReader

LJH_VERSION = "2.2.0"
INT16_OFFSET = 32768
_FIRST_LINE = "#LJH Memorial File Format"
_END = "#End of Header"
_MAX_HEADER_LINES = 1000


class LJHError(CryodaqError):
    """An LJH file cannot be written or read; the message names the file."""


def ljh_filename(prefix: str, ch: int) -> str:
    """A file name mass can take the channel number from: `<prefix>_chan<ch>.ljh`."""
    return f"{prefix}_chan{int(ch)}.ljh"


def record_dtype(total_samples: int) -> np.dtype:
    """The binary record of LJH 2.2 (the layout mass2 memory-maps)."""
    return np.dtype(
        [("frame_count", "<i8"), ("posix_usec", "<i8"), ("data", "<u2", (total_samples,))]
    )


def _encoding(dtype: np.dtype, scale: float | None, where: str) -> tuple[int, float | None]:
    """(offset, scale) that map values of `dtype` to uint16."""
    if dtype == np.int16 and scale is None:
        return INT16_OFFSET, None
    if dtype == np.uint16 and scale is None:
        return 0, None
    if scale is None:
        raise LJHError(
            f"{where}: {dtype} records do not fit LJH's uint16 samples; give scale= (units per "
            "count), e.g. 2*pi/65536 rad for a uMUX phase"
        )
    if dtype.kind not in "iuf" or not (math.isfinite(scale) and scale > 0):
        raise LJHError(f"{where}: need a numeric dtype and a finite scale > 0, got {scale}")
    return INT16_OFFSET, float(scale)


def _encode(records: np.ndarray, offset: int, scale: float | None, where: str) -> np.ndarray:
    if scale is None:
        return (records.astype(np.int32) + offset).astype("<u2")
    counts = np.rint(records / scale) + offset
    inside = not counts.size or (
        np.all(np.isfinite(counts)) and counts.min() >= 0 and counts.max() <= 65535
    )
    if not inside:
        raise LJHError(
            f"{where}: values outside what scale={scale} maps to uint16 "
            f"([{-offset * scale}, {(65535 - offset) * scale}]); nothing is clipped silently"
        )
    return counts.astype("<u2")


def _time_text(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%d %b %Y, %H:%M:%S UTC")


class LJHWriter:
    """Writes one channel's records to an LJH 2.2 file; the header goes out with the first
    record (its time is the header's First Record Time), or at `close` if there is none."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        channel: int,
        record_length: int,
        pretrigger: int,
        sample_rate_hz: float,
        dtype: np.dtype | str,
        server_start_ns: int,
        scale: float | None = None,
        number_of_channels: int = 1,
        column: int = 0,
        data_source: str = "cryodaq",
        software_version: str = "unknown",
        extra_header: Mapping[str, object] | None = None,
    ) -> None:
        self.path = Path(path)
        self.record_length = int(record_length)
        self.dtype = np.dtype(dtype)
        if not 0 <= pretrigger < record_length:
            raise LJHError(f"{self.path}: need 0 <= pretrigger < record_length")
        if not sample_rate_hz > 0:
            raise LJHError(f"{self.path}: sample_rate_hz must be > 0, got {sample_rate_hz}")
        self.offset, self.scale = _encoding(self.dtype, scale, str(self.path))
        timebase = 1.0 / float(sample_rate_hz)
        n, col = int(number_of_channels), int(column)
        self._keys: dict[str, object] = {
            "Save File Format Version": LJH_VERSION,
            "Software Version": f"cryodaq {software_version} (DASTARD-compatible Presamples)",
            "Data source": data_source,
            "Number of rows": 1,
            "Number of columns": n,
            "Row number (from 0-0 inclusive)": 0,
            f"Column number (from 0-{n - 1} inclusive)": col,
            "Number of channels": n,
            "Channel name": f"chan{int(channel)}",
            "Channel": int(channel),
            "Subframe divisions": 1,
            "Subframe offset": 0,
            "Digitized Word Size In Bytes": 2,
            "Presamples": int(pretrigger),
            "Total Samples": self.record_length,
            "Number of samples per point": 1,
            "Timebase": repr(timebase),
            "Timebase (s)": repr(timebase),
            "Timestamp offset (s)": f"{server_start_ns / 1e9:.6f}",
            "Server Start Time": _time_text(server_start_ns),
            "First Record Time": None,
            "Sample Offset": self.offset,
            "Sample Scale": repr(self.scale) if self.scale is not None else None,
            "Sample Dtype": self.dtype.name,
            **dict(extra_header or {}),
        }
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed by close())
        self._header_written = False
        self.records_written = 0

    def _write_header(self, first_record_ns: int | None) -> None:
        keys = dict(self._keys)
        keys["First Record Time"] = (
            _time_text(first_record_ns) if first_record_ns is not None else "no records"
        )
        lines = [_FIRST_LINE] + [f"{k}: {v}" for k, v in keys.items() if v is not None] + [_END]
        for line in lines:
            if "\n" in line or "\r" in line:
                raise LJHError(f"{self.path}: header line {line!r} holds a line break")
        self._file.write(("\n".join(lines) + "\n").encode("ascii"))
        self._header_written = True

    def write(self, records: np.ndarray, frame_count: np.ndarray, timestamp_ns: np.ndarray) -> None:
        """Append records (n, Total Samples) with their trigger frame counts and times."""
        records = np.asarray(records)
        frame_count = np.asarray(frame_count, np.int64)
        timestamp_ns = np.asarray(timestamp_ns, np.int64)
        n = records.shape[0] if records.ndim == 2 else -1
        if records.shape != (n, self.record_length) or records.dtype != self.dtype:
            raise LJHError(
                f"{self.path}: records {records.dtype} {records.shape}, expected "
                f"{self.dtype} (n, {self.record_length})"
            )
        if frame_count.shape != (n,) or timestamp_ns.shape != (n,):
            raise LJHError(f"{self.path}: need one frame count and one timestamp per record")
        if n == 0:
            return
        if not self._header_written:
            self._write_header(int(timestamp_ns[0]))
        out = np.empty(n, record_dtype(self.record_length))
        out["frame_count"] = frame_count
        out["posix_usec"] = timestamp_ns // 1000
        out["data"] = _encode(records, self.offset, self.scale, str(self.path))
        self._file.write(out.tobytes())
        self.records_written += n

    def close(self) -> None:
        """Finish the file (writing the header if no record came)."""
        if self._file.closed:
            return
        if not self._header_written:
            self._write_header(None)
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_ljh(
    path: str | os.PathLike[str],
    records: np.ndarray,
    frame_count: np.ndarray,
    timestamp_ns: np.ndarray,
    *,
    channel: int,
    pretrigger: int,
    sample_rate_hz: float,
    server_start_ns: int,
    scale: float | None = None,
    **options: Any,
) -> Path:
    """Write one channel's records (n, L) in one go; `options` go to `LJHWriter`."""
    records = np.asarray(records)
    with LJHWriter(
        path,
        channel=channel,
        record_length=records.shape[-1] if records.ndim == 2 else 0,
        pretrigger=pretrigger,
        sample_rate_hz=sample_rate_hz,
        dtype=records.dtype,
        server_start_ns=server_start_ns,
        scale=scale,
        **options,
    ) as w:
        w.write(records, frame_count, timestamp_ns)
    return Path(path)


def export_ljh(
    reader: RunReader,
    acq: str,
    ch: int,
    path: str | os.PathLike[str],
    *,
    scale: float | None = None,
    rows_per_read: int = 4096,
) -> Path:
    """Export the committed records of one channel of a run to an LJH 2.2 file.

    Reads `rows_per_read` records at a time, so memory stays bounded for any run length.
    """
    info = reader.info(acq)
    channels = reader.channels(acq)
    n = reader.committed(acq, ch)
    meta = reader.metadata
    with LJHWriter(
        path,
        channel=ch,
        record_length=info["record_length"],
        pretrigger=info["pretrigger"],
        sample_rate_hz=info["sample_rate_hz"],
        dtype=info["dtype"],
        server_start_ns=info["start"]["unix_ns"],
        scale=scale,
        number_of_channels=len(channels),
        column=channels.index(ch),
        data_source=f"cryodaq run {reader.path.name}, acquisition {acq}",
        software_version=meta["versions"]["cryodaq"],
    ) as w:
        for start in range(0, n, rows_per_read):
            part = reader.read(
                acq, ch, ["records", "sample_index", "timestamp_ns"], start, start + rows_per_read
            )
            w.write(part["records"], part["sample_index"], part["timestamp_ns"])
    return Path(path)


@dataclass(frozen=True)
class LJHFile:
    """An LJH 2.2 file read back: header, per-record frame counts and times, samples."""

    path: Path
    header: dict[str, str]
    header_size: int
    frame_count: np.ndarray  # int64 (n,)
    posix_usec: np.ndarray  # int64 (n,)
    raw: np.ndarray  # uint16 (n, Total Samples), as stored
    trailing_bytes: int  # bytes after the last whole record (a file cut short)

    @property
    def records(self) -> np.ndarray:
        """Samples decoded with the header's Sample Offset/Scale/Dtype (raw if absent)."""
        offset = int(self.header.get("Sample Offset", "0"))
        if "Sample Scale" in self.header:
            values = (self.raw.astype(np.float64) - offset) * float(self.header["Sample Scale"])
            return values.astype(self.header.get("Sample Dtype", "float64"))
        if offset == INT16_OFFSET:
            return (self.raw.astype(np.int32) - offset).astype(np.int16)
        return self.raw


def read_ljh(path: str | os.PathLike[str]) -> LJHFile:
    """Read an LJH 2.2 file (header keys as text, binary section as arrays)."""
    p = Path(path)
    header: dict[str, str] = {}
    with open(p, "rb") as f:
        first = f.readline().decode("ascii", "replace").rstrip("\r\n")
        if first != _FIRST_LINE:
            raise LJHError(f"{p}: does not start with {_FIRST_LINE!r} (got {first[:40]!r})")
        for _ in range(_MAX_HEADER_LINES):
            raw_line = f.readline()
            if not raw_line:
                raise LJHError(f"{p}: ends before {_END!r}")
            line = raw_line.decode("ascii", "replace").rstrip("\r\n")
            if line.startswith(_END):
                break
            if ":" in line and not line.startswith("#"):
                key, value = line.split(":", 1)
                header[key.strip()] = value.strip()
        else:
            raise LJHError(f"{p}: no {_END!r} within {_MAX_HEADER_LINES} lines")
        header_size = f.tell()
    version = header.get("Save File Format Version", "")
    if not version.startswith("2.2"):
        raise LJHError(f"{p}: LJH version {version!r}; this reader reads 2.2 only")
    try:
        total = int(header["Total Samples"])
    except (KeyError, ValueError):
        raise LJHError(f"{p}: no valid 'Total Samples' in the header") from None
    dt = record_dtype(total)
    size = p.stat().st_size - header_size
    n = size // dt.itemsize
    data = np.fromfile(p, dtype=dt, count=n, offset=header_size)
    return LJHFile(
        path=p,
        header=header,
        header_size=header_size,
        frame_count=data["frame_count"].copy(),
        posix_usec=data["posix_usec"].copy(),
        raw=data["data"].copy(),
        trailing_bytes=size - n * dt.itemsize,
    )
