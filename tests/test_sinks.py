"""Fan-out to sinks: back-pressure, counted drops, failing sinks, draining; the live monitor."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from rich.console import Console

from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch, Gap, TriggerKind
from cryodaq.acquisition.stream.live_monitor import LiveMonitor
from cryodaq.acquisition.stream.sinks import CallbackSink, Drops, Fanout, SinkError

WAIT_S = 5.0  # upper bound of every wait in these tests


def make_batch(
    channel: Sequence[int],
    sample_index: Sequence[int],
    *,
    first: int = 0,
    samples: int = 1000,
    rate_hz: float = 1e5,
    kind: TriggerKind | Sequence[int] = TriggerKind.EDGE,
    gaps: Sequence[Gap] = (),
    lost: int = 0,
    record_length: int = 4,
) -> EventBatch:
    """A batch of the given triggers over block [first, first + samples) with blank records."""
    ch = np.asarray(channel, dtype=np.int32)
    idx = np.asarray(sample_index, dtype=np.int64)
    n = ch.size
    kinds = np.full(n, kind, np.uint8) if isinstance(kind, int) else np.asarray(kind, np.uint8)
    return EventBatch(
        acquisition="test",
        sample_rate_hz=rate_hz,
        block_first_sample=first,
        block_samples=samples,
        pretrigger=1,
        channel=ch,
        sample_index=idx,
        timestamp_ns=(idx * (1e9 / rate_hz)).astype(np.int64),
        trigger_kind=kinds,
        coincidence=np.ones(n, np.uint16),
        records=np.zeros((n, record_length), np.int16),
        summaries=np.zeros(n, SUMMARY_DTYPE),
        gaps=tuple(gaps),
        records_lost_to_gaps=lost,
    )


def numbered_batches(count: int) -> list[EventBatch]:
    """Batch i has i + 1 records on channel 0, in block i."""
    return [
        make_batch([0] * (i + 1), [i * 1000 + j for j in range(i + 1)], first=i * 1000)
        for i in range(count)
    ]


class Recorder:
    """Sink that records batches; optionally waits on a gate, sleeps, or raises at batch k."""

    def __init__(
        self, gate: threading.Event | None = None, delay_s: float = 0.0, fail_at: int | None = None
    ) -> None:
        self.gate = gate
        self.delay_s = delay_s
        self.fail_at = fail_at
        self.batches: list[EventBatch] = []
        self.started = threading.Event()
        self.closed = 0

    def consume(self, batch: EventBatch) -> None:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(WAIT_S)
        if self.fail_at is not None and len(self.batches) == self.fail_at:
            raise RuntimeError(f"disk full at batch {self.fail_at}")
        time.sleep(self.delay_s)
        self.batches.append(batch)

    def close(self) -> None:
        self.closed += 1


def sink_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sink-")]


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def same(got: list[EventBatch], want: list[EventBatch]) -> bool:
    return len(got) == len(want) and all(a is b for a, b in zip(got, want, strict=True))


# ---------------------------------------------------------------------------------------------
# Fan-out


def test_block_policy_makes_the_producer_wait_and_loses_nothing() -> None:
    gate = threading.Event()
    slow = Recorder(gate=gate)
    fan = Fanout()
    fan.subscribe("slow", slow, maxsize=2, policy="block")
    batches = numbered_batches(10)
    published: list[int] = []

    def produce() -> None:
        for i, b in enumerate(batches):
            fan.publish(b)
            published.append(i)

    producer = threading.Thread(target=produce)
    producer.start()
    assert slow.started.wait(WAIT_S)
    # one batch in consume(), two in the queue: the fourth publish waits (and keeps waiting)
    assert wait_until(lambda: len(published) == 3)
    time.sleep(0.2)
    assert published == [0, 1, 2]
    assert producer.is_alive()
    gate.set()
    producer.join(WAIT_S)
    assert not producer.is_alive()
    fan.close(WAIT_S)
    assert same(slow.batches, batches)
    assert fan.drops() == {"slow": Drops(0, 0)}
    s = fan.stats()["slow"]
    assert (s.published, s.consumed, s.error) == (10, 10, None)


def test_drop_policy_counts_exactly_and_never_blocks_the_producer() -> None:
    gate = threading.Event()
    lossy, keeper = Recorder(gate=gate), Recorder()
    fan = Fanout()
    fan.subscribe("keeper", keeper, maxsize=100, policy="block")
    fan.subscribe("lossy", lossy, maxsize=2, policy="drop")
    batches = numbered_batches(10)
    fan.publish(batches[0])
    assert lossy.started.wait(WAIT_S)  # batch 0 is inside consume(), which waits on the gate
    waits = []
    for b in batches[1:]:
        t0 = time.perf_counter()
        fan.publish(b)
        waits.append(time.perf_counter() - t0)
    assert max(waits) < 0.05  # while the lossy sink is stuck
    # batches 1 and 2 fill its queue; 3..9 are dropped, with 4 + ... + 10 records
    assert fan.drops()["lossy"] == Drops(7, sum(range(4, 11)))
    assert fan.drops()["keeper"] == Drops(0, 0)
    gate.set()
    fan.close(WAIT_S)
    assert same(lossy.batches, batches[:3])
    assert same(keeper.batches, batches)
    for s in fan.stats().values():
        assert s.published == s.consumed + s.dropped.batches == 10


def test_a_failing_sink_is_named_and_removed_while_the_others_get_everything() -> None:
    good, bad, lossy = Recorder(), Recorder(fail_at=3), Recorder()
    fan = Fanout()
    fan.subscribe("store", good, maxsize=2)
    # small queue: the producer may wait on it as it fails
    fan.subscribe("bad", bad, maxsize=1, block_timeout_s=WAIT_S)
    fan.subscribe("monitor", lossy, maxsize=1000, policy="drop")
    batches = numbered_batches(20)
    for b in batches:
        fan.publish(b)
    with pytest.raises(SinkError) as err:
        fan.close(WAIT_S)
    assert "'bad'" in str(err.value) and "disk full at batch 3" in str(err.value)
    assert set(err.value.failures) == {"bad"}
    assert isinstance(err.value.__cause__, RuntimeError)
    assert same(good.batches, batches) and same(lossy.batches, batches)
    assert same(bad.batches, batches[:3])
    assert (good.closed, bad.closed, lossy.closed) == (1, 1, 1)
    stats = fan.stats()["bad"]
    assert stats.consumed == 3
    # the batch it raised on and every later one count as dropped for it
    assert stats.dropped == Drops(17, sum(range(4, 21)))
    assert "disk full" in stats.error
    assert sink_threads() == []


def test_close_drains_every_queue_and_joins_the_threads() -> None:
    slow, fast = Recorder(delay_s=0.002), Recorder()
    fan = Fanout()
    fan.subscribe("slow", slow, maxsize=64)
    fan.subscribe("fast", fast, maxsize=64, policy="drop")
    batches = numbered_batches(50)
    for b in batches:
        fan.publish(b)
    assert len(slow.batches) < 50  # still queued when close() is called
    fan.close(WAIT_S)
    assert same(slow.batches, batches) and same(fast.batches, batches)
    assert slow.closed == fast.closed == 1
    assert sink_threads() == []
    with pytest.raises(RuntimeError, match="publish after close"):
        fan.publish(batches[0])
    fan.close()  # a second close does nothing


def test_close_gives_up_on_a_stuck_sink_and_names_it() -> None:
    gate = threading.Event()
    stuck = Recorder(gate=gate)
    fan = Fanout()
    fan.subscribe("stuck", stuck, maxsize=4)
    fan.publish(numbered_batches(1)[0])
    assert stuck.started.wait(WAIT_S)
    t0 = time.monotonic()
    with pytest.raises(SinkError, match="'stuck'.*within 0.2 s"):
        fan.close(timeout=0.2)
    assert time.monotonic() - t0 < 1.0
    gate.set()
    assert wait_until(lambda: sink_threads() == [])


def test_block_timeout_raises_naming_the_sink_and_counts_the_batch() -> None:
    gate = threading.Event()
    slow, after = Recorder(gate=gate), Recorder()
    fan = Fanout()
    fan.subscribe("slow", slow, maxsize=1, block_timeout_s=0.1)
    fan.subscribe("after", after)  # still offered the batch the slow sink timed out on
    b0, b1, b2 = numbered_batches(3)
    fan.publish(b0)
    assert slow.started.wait(WAIT_S)
    fan.publish(b1)
    t0 = time.monotonic()
    with pytest.raises(SinkError, match="'slow'.*queue full for 0.1 s"):
        fan.publish(b2)
    assert 0.09 < time.monotonic() - t0 < 1.0
    assert fan.drops()["slow"] == Drops(1, 3)
    gate.set()
    fan.close(WAIT_S)
    assert same(slow.batches, [b0, b1]) and same(after.batches, [b0, b1, b2])


def test_callback_sink_through_the_fanout() -> None:
    got: list[int] = []
    closed: list[bool] = []
    batches = numbered_batches(5)
    with Fanout() as fan:
        fan.subscribe(
            "user", CallbackSink(lambda b: got.append(len(b)), lambda: closed.append(True))
        )
        for b in batches:
            fan.publish(b)
    assert got == [1, 2, 3, 4, 5] and closed == [True]


def test_subscribe_rejects_bad_arguments() -> None:
    fan = Fanout()
    fan.subscribe("a", Recorder())
    with pytest.raises(ValueError, match="already subscribed"):
        fan.subscribe("a", Recorder())
    with pytest.raises(ValueError, match="policy must be one of"):
        fan.subscribe("b", Recorder(), policy="lossy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxsize must be >= 1"):
        fan.subscribe("c", Recorder(), maxsize=0)
    with pytest.raises(TypeError, match="'d' has no consume"):
        fan.subscribe("d", object())  # type: ignore[arg-type]
    assert fan.names == ["a"]
    fan.close(WAIT_S)
    with pytest.raises(RuntimeError, match="closed"):
        fan.subscribe("e", Recorder())


# ---------------------------------------------------------------------------------------------
# Live monitor


def poisson_stream(
    rates_hz: dict[int, float], duration_s: float, fs: float, block_s: float, seed: int
) -> tuple[list[EventBatch], np.ndarray, np.ndarray]:
    """Batches of Poisson triggers per channel; also every (channel, sample index) generated."""
    rng = np.random.default_rng(seed)
    total = round(duration_s * fs)
    chans, idxs = [], []
    for ch, r in rates_hz.items():
        n = rng.poisson(r * duration_s)
        idxs.append(np.sort(rng.integers(0, total, n)))
        chans.append(np.full(n, ch))
    ch, idx = np.concatenate(chans), np.concatenate(idxs)
    order = np.argsort(idx, kind="stable")
    ch, idx = ch[order], idx[order]
    step = round(block_s * fs)
    batches = []
    for first in range(0, total, step):
        sel = (idx >= first) & (idx < first + step)
        batches.append(make_batch(ch[sel], idx[sel], first=first, samples=step, rate_hz=fs))
    return batches, ch, idx


def test_monitor_rates_equal_the_injected_poisson_rates() -> None:
    fs, duration, window = 1e5, 100.0, 10.0
    batches, ch, idx = poisson_stream({1: 20.0, 2: 5.0}, duration, fs, 0.5, seed=11)
    mon = LiveMonitor(channels=[1, 2, 4], window_s=window, duration_s=200.0)
    for i, b in enumerate(batches):
        mon.consume(b)
        t_end = (i + 1) * 0.5
        if t_end in (5.0, 37.5, 100.0):  # window partly filled, sliding, at the end
            s = mon.snapshot()
            lo = max(0.0, t_end - window)
            for c in (1, 2):
                inside = np.count_nonzero((ch == c) & (idx >= lo * fs) & (idx < t_end * fs))
                assert s["channels"][c]["rate_hz"] == pytest.approx(inside / (t_end - lo))
    s = mon.snapshot()
    for c, rate in ((1, 20.0), (2, 5.0)):
        n = int(np.count_nonzero(ch == c))
        assert s["channels"][c]["triggers"] == n
        assert s["channels"][c]["mean_rate_hz"] == pytest.approx(n / duration)
        # 3 sigma of a Poisson count over 100 s (mean rate) and over the 10 s window
        assert abs(s["channels"][c]["mean_rate_hz"] - rate) < 3 * np.sqrt(rate / duration)
        assert abs(s["channels"][c]["rate_hz"] - rate) < 3 * np.sqrt(rate / window)
    assert s["channels"][4] == {"triggers": 0, "rate_hz": 0.0, "mean_rate_hz": 0.0, "by_kind": {}}
    assert s["stream_time_s"] == pytest.approx(100.0) and s["live_time_s"] == pytest.approx(100.0)
    assert s["samples_processed"] == 10_000_000 and s["batches"] == 200
    assert s["progress"] == pytest.approx(0.5)
    assert s["records"] == ch.size == s["records_by_kind"]["EDGE"]
    assert s["window_live_s"] == pytest.approx(window)


def test_monitor_counts_gaps_and_excludes_them_from_live_time() -> None:
    fs = 1000.0
    mon = LiveMonitor(window_s=5.0)
    # 1 s blocks at 0, 1, then a 2 s gap, then 4, 5, 6; three triggers on ch 0 per block
    firsts = [0, 1000, 4000, 5000, 6000]
    for f in firsts:
        gaps = [Gap(2000, 4000)] if f == 4000 else []
        mon.consume(
            make_batch(
                [0, 0, 0],
                [f + 10, f + 500, f + 900],
                first=f,
                samples=1000,
                rate_hz=fs,
                kind=[TriggerKind.EDGE, TriggerKind.EDGE, TriggerKind.AUTO],
                gaps=gaps,
                lost=2 if gaps else 0,
            )
        )
    s = mon.snapshot()
    assert (s["gaps"], s["gap_samples"], s["records_lost_to_gaps"]) == (1, 2000, 2)
    assert s["stream_time_s"] == pytest.approx(7.0) and s["live_time_s"] == pytest.approx(5.0)
    assert s["channels"][0]["mean_rate_hz"] == pytest.approx(15 / 5.0)
    # window [2 s, 7 s): the gap [2 s, 4 s) is not live time, 9 triggers over 3 s
    assert s["window_live_s"] == pytest.approx(3.0)
    assert s["channels"][0]["rate_hz"] == pytest.approx(3.0)
    assert s["records_by_kind"] == {"EDGE": 10, "AUTO": 5}
    assert s["channels"][0]["by_kind"] == {"EDGE": 10, "AUTO": 5}


def test_monitor_rejects_bad_batches_without_changing_its_counts() -> None:
    mon = LiveMonitor()
    mon.consume(make_batch([0], [5], rate_hz=1e5))
    before = mon.snapshot()
    with pytest.raises(ValueError, match="unknown trigger kind"):
        mon.consume(make_batch([0], [1005], first=1000, kind=[9]))
    with pytest.raises(ValueError, match="sample rate changed"):
        mon.consume(make_batch([0], [1005], first=1000, rate_hz=2e5))
    after = mon.snapshot()
    wall = ("wall_time_s", "speed")
    assert {k: v for k, v in after.items() if k not in wall} == {
        k: v for k, v in before.items() if k not in wall
    }


def test_monitor_snapshots_from_another_thread_are_consistent() -> None:
    batches, _, _ = poisson_stream({0: 300.0, 1: 100.0, 2: 50.0}, 20.0, 1e4, 0.01, seed=5)
    mon = LiveMonitor(window_s=1.0)
    fan = Fanout()
    fan.subscribe("monitor", mon, maxsize=8, block_timeout_s=WAIT_S)
    producer = threading.Thread(target=lambda: [fan.publish(b) for b in batches])
    producer.start()
    seen, deadline = 0, time.monotonic() + WAIT_S
    while (producer.is_alive() or seen == 0) and time.monotonic() < deadline:
        s = mon.snapshot()
        per_channel = sum(c["triggers"] for c in s["channels"].values())
        assert per_channel == s["records"] == sum(s["records_by_kind"].values())
        assert s["samples_processed"] == s["batches"] * 100
        seen += 1
        time.sleep(0.001)  # a display polls; a tight loop would only starve the GIL
    producer.join(WAIT_S)
    fan.close(WAIT_S)
    final = mon.snapshot()
    assert final["finished"] and final["batches"] == len(batches)
    assert final["records"] == sum(len(b) for b in batches)
    assert seen > 1


def test_monitor_renders_a_rich_table() -> None:
    mon = LiveMonitor(channels=[3, 7], window_s=1.0, duration_s=4.0)
    batch = make_batch([3, 3, 7], [100, 600, 700], first=50, samples=1000, rate_hz=1000.0)
    mon.consume(EventBatch(**{**batch.__dict__, "gaps": (Gap(0, 50),), "records_lost_to_gaps": 1}))
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(mon)
    text = out.getvalue()
    assert "test: 3 records" in text
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines()]
    assert ["3", "2", "2.00", "2.00", "2"] in rows
    assert ["7", "1", "1.00", "1.00", "1"] in rows
    assert mon.table().caption == (
        "stream 1.0 s (25%); 1000 samples; 1 gaps (50 samples, 1 records lost)"
    )
