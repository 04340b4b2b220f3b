"""Live publication of records on ZeroMQ PUB, in dastard's record layout.

Every record is one two-frame message:
1. a 36-byte little-endian header (`HEADER`): u16 channel index, u8 version (0), u8 type code
   (2 int16, 3 uint16), u32 presamples, u32 record length, f32 sample period (s), f32 volts
   (physical units) per data unit, i64 trigger time (ns), u64 trigger frame index (sample);
2. the samples, little-endian, of that type.

The channel index is the channel's position in the list the publisher was given (dastard's
0-based index), so a subscriber filters channels by the header's first two bytes. int16 and
uint16 records go out as they are; float records (uMUX phase) are rounded to int16 counts of
`units_per_count` data units, and a record that does not fit is clipped and counted in
`clipped_records` (a live view, never the stored data). PUB never waits for subscribers: a
slow subscriber loses messages in ZeroMQ (high-water mark `hwm`), the acquisition never waits.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.events import EventBatch

HEADER = struct.Struct("<HBBIIffqQ")
HEADER_VERSION = 0
TYPE_CODES = {np.dtype("<i2"): 2, np.dtype("<u2"): 3}
INT16 = np.iinfo(np.int16)


#: How long closing waits for queued records to reach the subscribers (ms).
LINGER_MS = 2000


class PublisherError(CryodaqError):
    """The publisher cannot start (bad address, port in use, float data without a scale)."""


@dataclass(frozen=True)
class RecordHeader:
    """A decoded header frame."""

    channel_index: int
    version: int
    type_code: int
    presamples: int
    length: int
    sample_period_s: float
    volts_per_unit: float
    timestamp_ns: int
    frame_index: int

    @classmethod
    def decode(cls, frame: bytes) -> RecordHeader:
        if len(frame) != HEADER.size:
            raise ValueError(f"a header frame has {HEADER.size} bytes, got {len(frame)}")
        return cls(*HEADER.unpack(frame))

    def samples(self, frame: bytes) -> np.ndarray:
        """The record of the second frame, as its type code says."""
        dtype = next(d for d, code in TYPE_CODES.items() if code == self.type_code)
        data = np.frombuffer(frame, dtype)
        if data.size != self.length:
            raise ValueError(f"record of {data.size} samples, the header says {self.length}")
        return data


class ZmqPublisher:
    """A sink (`sinks.Sink`) publishing every record on a ZeroMQ PUB socket."""

    def __init__(
        self,
        address: str,
        channels: Sequence[int],
        dtype: np.dtype | str,
        units_per_value: float,
        *,
        units_per_count: float | None = None,
        hwm: int = 10_000,
    ) -> None:
        import zmq

        self.channels = tuple(int(c) for c in channels)
        self.index = np.full(max(self.channels) + 1, -1, np.int64)
        self.index[list(self.channels)] = np.arange(len(self.channels))
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.units_per_count = units_per_count
        if self.dtype in TYPE_CODES:
            self.volts_per_unit = float(units_per_value)
        elif self.dtype.kind == "f":
            if not (units_per_count and units_per_count > 0):
                raise PublisherError(
                    f"publish {address}: {self.dtype} records need units_per_count > 0 (data "
                    "units per int16 count)"
                )
            self.volts_per_unit = float(units_per_value * units_per_count)
        else:
            raise PublisherError(f"publish {address}: cannot publish {self.dtype} records")
        self.published = 0
        self.clipped_records = 0
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        # Records still queued at close go out for up to LINGER_MS (none wait without a
        # subscriber: PUB drops for nobody); with 0 a viewer lost the run's last records.
        self._socket.setsockopt(zmq.LINGER, LINGER_MS)
        try:
            self._socket.bind(address)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise PublisherError(f"publish {address}: cannot bind ({exc})") from None
        self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def _counts(self, records: np.ndarray) -> tuple[np.ndarray, int]:
        if self.dtype in TYPE_CODES:
            return records.astype(self.dtype, copy=False), TYPE_CODES[self.dtype]
        assert self.units_per_count is not None
        scaled = np.rint(records / self.units_per_count)
        outside = (scaled < INT16.min) | (scaled > INT16.max)
        self.clipped_records += int(outside.any(axis=1).sum())
        return np.clip(scaled, INT16.min, INT16.max).astype("<i2"), TYPE_CODES[np.dtype("<i2")]

    def consume(self, batch: EventBatch) -> None:
        import zmq

        if not len(batch):
            return
        counts, code = self._counts(batch.records)
        period = 1.0 / batch.sample_rate_hz
        index = self.index[batch.channel]
        for i in range(len(batch)):
            header = HEADER.pack(
                int(index[i]),
                HEADER_VERSION,
                code,
                batch.pretrigger,
                counts.shape[1],
                period,
                self.volts_per_unit,
                int(batch.timestamp_ns[i]),
                int(batch.sample_index[i]),
            )
            try:
                self._socket.send_multipart([header, counts[i]], flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:  # PUB at its high-water mark: ZeroMQ drops for that subscriber
                continue
            self.published += 1

    def close(self) -> None:
        self._socket.close()

    def stats(self) -> dict[str, Any]:
        return {"published": self.published, "clipped_records": self.clipped_records}
