"""The ZeroMQ PUB sink: a subscriber decodes dastard-layout records that equal the stored ones.

Data: 3 channels of replayed int16 codes (seed 5): white noise (sigma 20 codes) with
two-exponential pulses of 3000 codes at known samples; the same acquisition feeds the run store
and the publisher, so every published record must equal its stored row, header included.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.acquisition.stream.engine import Acquisition, SinkSpec
from cryodaq.acquisition.stream.publisher import HEADER, PublisherError, RecordHeader, ZmqPublisher
from cryodaq.acquisition.stream.sources import ReplaySource
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig

RATE_HZ = 100e3
LENGTH, PRE = 256, 64
CHANNELS = (2, 5, 7)
PULSES_AT = np.arange(1000, 60_000, 2500)  # samples: 24 pulses per channel, far apart
VOLTS_PER_CODE = 1.0 / 32767


def replay_data() -> np.ndarray:
    rng = np.random.default_rng(5)
    t = np.arange(LENGTH * 2)
    pulse = 3000 * (np.exp(-t / 40.0) - np.exp(-t / 4.0))
    data = rng.normal(0, 20, (len(CHANNELS), 64_000))
    for i in range(len(CHANNELS)):
        for at in PULSES_AT + 7 * i:
            data[i, at : at + pulse.size] += pulse
    return np.rint(data).astype(np.int16)


def subscriber(address: str) -> zmq.Socket:
    """A SUB socket connected to `address`, its subscription through (ZeroMQ's slow joiner:
    a record published before that is not delivered; a fixed sleep was not enough on a
    loaded host): wait for the handshake, then a margin for the subscription message."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    monitor = sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    sub.connect(address)
    try:
        assert monitor.poll(10_000), "no ZeroMQ handshake within 10 s"
        recv_monitor_message(monitor)
    finally:
        sub.disable_monitor()
        monitor.close()
    time.sleep(0.3)
    return sub


def test_subscriber_decodes_what_was_stored(tmp_path: Path) -> None:
    publisher = ZmqPublisher("tcp://127.0.0.1:*", CHANNELS, "int16", VOLTS_PER_CODE)
    sub = subscriber(publisher.address)
    source = ReplaySource(replay_data(), RATE_HZ, 4096, CHANNELS, start_time_ns=10**18,
                          units_per_value=VOLTS_PER_CODE, unit="V")  # fmt: skip
    trigger = ChannelTrigger(edge_threshold=400)
    store = RunStore.create(tmp_path / "run")
    result = Acquisition(
        source,
        TriggerConfig(LENGTH, PRE, dict.fromkeys(CHANNELS, trigger)),
        name="live",
        store=store,
        sinks={"publish": SinkSpec(publisher, policy="block")},
    ).run()
    store.close()
    assert result.records == len(CHANNELS) * PULSES_AT.size  # each injected pulse, once
    got: dict[int, list[tuple[RecordHeader, np.ndarray]]] = {i: [] for i in range(3)}
    for _ in range(result.records):
        header_frame, samples_frame = sub.recv_multipart()
        assert len(header_frame) == 36 == HEADER.size
        header = RecordHeader.decode(header_frame)
        got[header.channel_index].append((header, header.samples(samples_frame)))
    sub.close()
    reader = RunReader(tmp_path / "run")
    for index, ch in enumerate(CHANNELS):
        stored = reader.read("live", ch, ["records", "sample_index", "timestamp_ns"])
        headers = [h for h, _ in got[index]]
        assert [h.frame_index for h in headers] == stored["sample_index"].tolist()
        assert [h.timestamp_ns for h in headers] == stored["timestamp_ns"].tolist()
        assert np.array_equal(np.stack([s for _, s in got[index]]), stored["records"])
        # Each trigger lands on an injected pulse (edge kernel: within a few samples).
        assert np.all(np.abs(stored["sample_index"] - (PULSES_AT + 7 * index)) <= 3)
        for h in headers:
            assert (h.version, h.type_code, h.presamples, h.length) == (0, 2, PRE, LENGTH)
            assert h.sample_period_s == pytest.approx(1 / RATE_HZ, rel=1e-7)  # float32
            assert h.volts_per_unit == pytest.approx(VOLTS_PER_CODE, rel=1e-7)


def test_float_records_are_counts_and_clipping_is_counted() -> None:
    publisher = ZmqPublisher("tcp://127.0.0.1:*", (1,), "float32", 0.5, units_per_count=1e-3)
    sub = subscriber(publisher.address)
    records = np.array([[0.0, 0.0012, -1.5, 2.0], [0.0, 40.0, 0.0, 0.0]], np.float32)
    batch = EventBatch(
        "x", 1e6, 0, 100, 1,
        channel=np.array([1, 1], np.int32), sample_index=np.array([10, 50]),
        timestamp_ns=np.array([1, 2]), trigger_kind=np.ones(2, np.uint8),
        coincidence=np.ones(2, np.uint16), records=records, summaries=np.zeros(2, SUMMARY_DTYPE),
    )  # fmt: skip
    publisher.consume(batch)
    first = RecordHeader.decode(sub.recv_multipart()[0])
    header, samples = sub.recv_multipart()
    h = RecordHeader.decode(header)
    assert first.frame_index == 10 and h.frame_index == 50
    assert h.type_code == 2 and h.volts_per_unit == pytest.approx(0.5e-3)
    assert h.samples(samples).tolist() == [0, 32767, 0, 0]  # 40 / 1e-3 does not fit: clipped
    assert publisher.stats() == {"published": 2, "clipped_records": 1}
    publisher.close()
    sub.close()


def test_bad_publisher_settings_are_refused() -> None:
    with pytest.raises(PublisherError, match="units_per_count"):
        ZmqPublisher("tcp://127.0.0.1:*", (1,), "float32", 1.0)
    with pytest.raises(PublisherError, match="cannot bind"):
        ZmqPublisher("nonsense://x", (1,), "int16", 1.0)
