"""Acquisitions end to end: simulated rig -> driver -> trigger engine -> sinks -> run store."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.events import EventBatch
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.acquisition.stream.engine import Acquisition, AcquisitionError, SinkSpec
from cryodaq.acquisition.stream.joined_source import JoinedSource, JoinedSourceError
from cryodaq.acquisition.stream.sinks import CallbackSink
from cryodaq.acquisition.stream.sources import AdcSource, Block, ReplaySource
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig, TriggerEngine
from cryodaq.drivers.errors import InstrumentError

ROOT = Path(__file__).resolve().parents[1]
MAXS30 = ROOT / "config" / "rigs" / "mmc_simple_sim.yaml"  # one positive pixel per channel
#: 1 V range: 32767 codes/V. A Mn Ka pulse: 5.9 keV x 1e-5 Phi0/eV x 10 kOhm x 44 uA/Phi0 =
#: 26 mV = 850 codes; its largest one-sample step at 500 kS/s (10 us rise) ~ 160 codes, and the
#: edge kernel sums two steps. Noise ~0.6 uPhi0/rtHz -> ~3 codes rms: threshold 200 is ~30 sigma.
EDGE = ChannelTrigger(edge_threshold=200)


def test_simulated_rig_to_store_finds_every_injected_pulse(tmp_path: Path) -> None:
    with Rig(load_rig(MAXS30)) as rig:
        squid = rig.open("fll")
        adc = rig.open("adc1")
        world = rig.world
        source = AdcSource(adc, 1 << 14, clock_ns=lambda: int(world.now() * 1e9))
        config = TriggerConfig(1024, 256, {c: EDGE for c in range(1, 17)})
        run = RunStore.create(tmp_path / "run", {"rig": rig.spec.doc.data})
        result = Acquisition(source, config, name="adc1", store=run, duration_s=4.0).run()
        run.close(result.end_reason)
        assert squid.channel(1).locked
    reader = RunReader(tmp_path / "run")
    assert result.samples_processed == 2_000_000 and result.end_reason == "completed"
    stored = sum(reader.committed("adc1", ch) for ch in reader.channels("adc1"))
    assert stored == result.records > 50
    squid_model = next(d.model for d in rig.library.physics.values() if d.model.name == "fll")
    offsets = []
    for ch in range(1, 17):
        t0 = source.start_time_ns / 1e9
        truth = np.array([t for t, _ in squid_model.outputs[str(ch)].source.history])
        arrival = np.ceil((truth - t0) * 500e3)
        # Pulses with room for a whole record; isolated from the previous by the holdoff.
        ok = (arrival > 257) & (arrival < 2_000_000 - 768)
        ok &= np.concatenate([[True], np.diff(arrival) > 1024])
        got = reader.read("adc1", ch, fields=["sample_index"])["sample_index"]
        assert got.size == ok.sum()
        # The trigger sits at the largest one-sample step. With a 10 us rise (5 samples) the
        # first two full steps differ by ~10 % (~14 codes) against ~6 codes rms of noise on
        # their difference, so ~1 % of pulses land one sample later: +-2 here, +-1 for fast
        # rises (tests/test_trigger.py).
        offsets.append(got - arrival[ok])
    offset = np.abs(np.concatenate(offsets))
    assert offset.max() <= 2 and np.mean(offset <= 1) > 0.95


def test_duration_is_exact_and_live_time_excludes_gaps(tmp_path: Path) -> None:
    data = np.zeros((2, 100_000), dtype=np.int16)
    source = ReplaySource(data, 10e3, 3000, gaps=((40_000, 5_000),))
    config = TriggerConfig(100, 20, {1: ChannelTrigger(auto_period=1000)})
    run = RunStore.create(tmp_path / "run")
    result = Acquisition(source, config, store=run, duration_s=7.0).run()
    run.close()
    assert result.samples_processed == 70_000 and result.live_time_s == 7.0
    assert (result.gaps, result.gap_samples) == (1, 5_000)
    commit = RunReader(tmp_path / "run").commit("acquisition")
    assert commit.processed_samples == 70_000 and commit.gap_samples == 5_000


def test_slow_sink_drops_are_counted_in_result_and_store(tmp_path: Path) -> None:
    data = np.zeros((1, 200_000), dtype=np.int16)
    source = ReplaySource(data, 10e3, 1000)
    config = TriggerConfig(100, 20, {1: ChannelTrigger(auto_period=500)})
    seen: list[EventBatch] = []

    def slow(batch: EventBatch) -> None:
        time.sleep(0.01)
        seen.append(batch)

    run = RunStore.create(tmp_path / "run")
    sinks = {"slow": SinkSpec(CallbackSink(slow), policy="drop", maxsize=1)}
    result = Acquisition(source, config, store=run, sinks=sinks).run()
    run.close()
    drops = result.drops["slow"]
    assert drops["batches"] > 0
    assert drops["batches"] + len(seen) == result.blocks == 200
    assert drops["records"] + sum(len(b) for b in seen) == result.records
    reader = RunReader(tmp_path / "run")
    assert reader.drops("acquisition")["slow"] == {
        "records": drops["records"],
        "batches": drops["batches"],
    }
    assert reader.committed("acquisition", 1) == result.records  # the store lost nothing


class FailingSource(ReplaySource):
    """Replays, then fails like an instrument that stopped answering."""

    def __init__(self, *args: object, fail_after: int, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.reads = 0
        self.fail_after = fail_after

    def read(self) -> Block | None:
        self.reads += 1
        if self.reads > self.fail_after:
            raise InstrumentError("adc9", "FETC? 1000", "no reply within 0.5 s (timeout)")
        return super().read()


def test_instrument_failure_keeps_what_was_acquired(tmp_path: Path) -> None:
    data = np.zeros((1, 100_000), dtype=np.int16)
    source = FailingSource(data, 10e3, 1000, fail_after=30, name="adc9")
    config = TriggerConfig(100, 20, {1: ChannelTrigger(auto_period=100)})
    run = RunStore.create(tmp_path / "run")
    with pytest.raises(AcquisitionError, match=r"source 'adc9' failed after 3 s .*FETC\? 1000"):
        Acquisition(source, config, store=run).run()
    run.close("error")
    reader = RunReader(tmp_path / "run")
    n = reader.committed("acquisition", 1)
    assert n == 299  # 30 blocks of 1000 samples, one auto record per 100 (the last incomplete)
    assert np.all(np.diff(reader.read("acquisition", 1, ["sample_index"])["sample_index"]) == 100)


def test_ctrl_c_stops_after_the_block_and_leaves_a_complete_store(tmp_path: Path) -> None:
    store = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "acquire_child.py"), str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "started", child.stderr.read()
        time.sleep(3.0)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["end_reason"] == "interrupted" and result["records"] > 0
    reader = RunReader(store)
    meta = reader.metadata
    assert meta["complete"] and meta["end_reason"] == "interrupted"
    stored = sum(reader.committed("adc1", ch) for ch in reader.channels("adc1"))
    assert stored == result["records"]
    commit = reader.commit("adc1")
    assert commit.processed_samples == result["samples_processed"]


def _store_with_faulty_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               fault: Callable[[int], None], samples: int) -> tuple:
    """A run store whose n-th append first calls `fault(n)`, and an auto-triggered replay
    acquisition of `samples` zeros (10 kS/s, blocks of 1000) into it."""
    from cryodaq.acquisition.store.acquisition_writer import AcquisitionWriter

    real = AcquisitionWriter.append
    calls = {"n": 0}

    def append(self: AcquisitionWriter, batch: EventBatch) -> None:
        calls["n"] += 1
        fault(calls["n"])
        real(self, batch)

    monkeypatch.setattr(AcquisitionWriter, "append", append)
    source = ReplaySource(np.zeros((1, samples), dtype=np.int16), 10e3, 1000)
    config = TriggerConfig(100, 20, {1: ChannelTrigger(auto_period=100)})
    run = RunStore.create(tmp_path / "run")
    return run, Acquisition(source, config, store=run)


def test_a_failing_run_store_stops_the_acquisition_as_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full: the acquisition must not run on with nothing stored and call it done."""
    import errno

    def disk_full(n: int) -> None:
        if n == 3:
            raise OSError(errno.ENOSPC, "No space left on device")

    run, acquisition = _store_with_faulty_appends(tmp_path, monkeypatch, disk_full, 100_000)
    with pytest.raises(AcquisitionError, match="could not write .*: no space left on device; "
                       r"19 records \(0.2 s\) stored") as raised:  # fmt: skip
        acquisition.run()
    run.close("failed")
    # The two batches stored before the failure: 9 + 10 auto records (the first record needs
    # 21 samples of history; one record of each block waits for the next block to complete).
    assert RunReader(tmp_path / "run").committed("acquisition", 1) == 19
    assert raised.value.result.records == 19  # what was stored, not what was processed


def test_a_stalled_run_store_fails_the_acquisition_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that takes no batch for STORE_STALL_S (here 0.3 s; one append hangs 3 s, as
    on a hung network file system, while the producer fills the queue) ends the acquisition
    with a clear error; what it had stored stays committed."""
    import cryodaq.acquisition.stream.engine as acquire_module

    monkeypatch.setattr(acquire_module, "STORE_STALL_S", 0.3)

    def stall(n: int) -> None:
        if n == 3:
            time.sleep(3.0)

    run, acquisition = _store_with_faulty_appends(tmp_path, monkeypatch, stall, 2_000_000)
    raised: list[BaseException] = []

    def target() -> None:
        try:
            acquisition.run()
        except BaseException as exc:  # handed to the test thread
            raised.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout=30)  # without the stall limit it would hang here, not pass
    assert not worker.is_alive(), "the acquisition hung on the stalled store"
    assert len(raised) == 1 and isinstance(raised[0], AcquisitionError), raised
    assert re.search("the run store failed .*no batch for 0.3 s", str(raised[0]))
    run.close("failed")
    assert RunReader(tmp_path / "run").committed("acquisition", 1) >= 19


def test_joined_sources_hand_on_aligned_samples_and_turn_a_lost_stretch_into_a_gap() -> None:
    """Two sources on one clock read as one (`JoinedSource`): the rows of one block are the
    same instants; samples one source lost (its counter jumps) are dropped from the other too,
    and the trigger engine records the jump as a gap of the joined stream."""
    n = 50_000
    ramp = np.arange(n, dtype=np.int16).reshape(1, -1) % 1000
    a = ReplaySource(np.vstack([ramp, ramp]), 1e5, 4096, name="a")
    lost = np.delete(ramp, np.s_[10_000:10_700], axis=1)  # what b delivered: a stretch lost
    b = ReplaySource(lost, 1e5, 3000, gaps=((10_000, 700),), name="b")
    joined = JoinedSource([a, b], [0, 16])
    assert joined.name == "a+b"
    engine = TriggerEngine(TriggerConfig(64, 16, {}), (1, 2, 17), 1e5)
    joined.start()
    samples = 0
    while (block := joined.read()) is not None:
        assert block.channels == (1, 2, 17)
        assert np.array_equal(block.data[0], block.data[2])  # the same instants
        samples += block.data.shape[1]
        engine.process(block)
    assert samples == n - 700
    assert [(g.first, g.samples) for g in engine.gaps] == [(10_000, 700)]
    with pytest.raises(JoinedSourceError, match="b has sample_rate_hz 50000.0, a 100000.0"):
        JoinedSource([a, ReplaySource(ramp, 5e4, 100, name="b")], [0, 16])
