"""Multi-board acquisition: one Dask task per uMUX board, each writing its own part of the run.

Rig `holmes_boards_sim` (seed 1) with 100 pulses/s per TES (not the rig's 5: enough pulses in a
short run of the costly uMUX simulation), 2 tones per board, 0.25 s, 1 ms records. One
in-process Dask cluster (threads) serves the tests; the SIGKILL test writes from two processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import store_writer_child as child
import yaml
import zarr
from distributed import Event

from cryodaq.acquisition.campaign.runner import CampaignRunner
from cryodaq.acquisition.campaign.steps.acquire import AcquireStep
from cryodaq.acquisition.campaign.steps.acquire_setup import StepAcquisition
from cryodaq.acquisition.campaign.validate import CampaignInvalid, load_campaign
from cryodaq.acquisition.cluster.boards import BoardTask, acquire_board, restore, snapshot
from cryodaq.acquisition.cluster.connection import ClusterSpec, connect
from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store.format import RunStoreError
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.drivers.errors import InstrumentError
from cryodaq.drivers.umux import UmuxBoard

HERE = Path(__file__).resolve().parent
RIG = HERE.parent / "config" / "rigs" / "holmes_boards_sim.yaml"
TRIGGER = {"all": {"edge_threshold": "0.05 Phi0", "noise_every": "20 ms"}}
RATE_HZ, DURATION_S, TONES, LENGTH = 100.0, 0.25, 2, 256
ACQUIRE = {"name": "pulses", "duration": DURATION_S, "record_length": LENGTH, "pretrigger": 64,
           "trigger": TRIGGER}  # fmt: skip
SAMPLES = round(DURATION_S * 250e3)


class LosingBoard(UmuxBoard):
    """A uMUX board whose connection is lost after `FETCHES_BEFORE_LOSS` blocks."""

    FETCHES_BEFORE_LOSS = 3

    def fetch(self, samples: int) -> Any:
        self._fetches = getattr(self, "_fetches", 0) + 1
        if self._fetches > self.FETCHES_BEFORE_LOSS:
            raise InstrumentError(self.name, "FETC?", "connection lost (injected)")
        return super().fetch(samples)


@pytest.fixture(scope="module")
def client() -> Any:
    with connect(ClusterSpec(workers=1, processes=False, threads_per_worker=2)) as c:
        yield c


def run_campaign(
    tmp: Path, steps: list[dict[str, Any]], client: Any, rig: Any = None, out: str = "run"
) -> tuple[int, Path]:
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump({"name": out, "rig": rig or str(RIG), "steps": steps}))
    loaded = load_campaign(path, [f"rig.world.detectors.tes.rate_hz={RATE_HZ}"])
    run_dir = tmp / out
    code = CampaignRunner(loaded.campaign, loaded.rig, loaded.raw, run_dir, client=client).run()
    return code, run_dir


def tuned(*boards: str) -> list[dict[str, Any]]:
    return [{"tune": {"instrument": b, "channels": TONES, "points": 5001}} for b in boards]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, client: Any) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("boards")
    code, multi = run_campaign(
        tmp,
        [*tuned("roach1", "roach2"), {"acquire": {**ACQUIRE, "source": "roach1",
                                                  "boards": ["roach2"]}}],
        client,
        out="multi",
    )  # fmt: skip
    assert code == 0
    code, single = run_campaign(
        tmp,
        [*tuned("roach1", "roach2"), {"acquire": {**ACQUIRE, "source": "roach2"}}],
        None,
        out="single",
    )
    assert code == 0
    return {"multi": multi, "single": single}


def test_a_board_task_records_what_the_shared_world_records(runs: dict[str, Path]) -> None:
    """The task built its own World from the seed and opened only its board with the
    campaign's settings (tones from `tune`): its records are those of roach2 acquired by the
    campaign itself, bit for bit."""
    multi, single = RunReader(runs["multi"] / "store"), RunReader(runs["single"] / "store")
    # Each run's simulated time starts at its own wall-clock start (its clock epoch).
    epochs = {k: json.loads((runs[k] / "summary.json").read_text())["clock_epoch_ns"]
              for k in ("multi", "single")}  # fmt: skip
    fields = ["records", "sample_index", "timestamp_ns", "trigger_kind"]
    for ch in range(1, TONES + 1):
        a = multi.read("pulses-part-roach2", 64 + ch, fields)
        b = single.read("pulses", ch, fields)
        a["timestamp_ns"] = a["timestamp_ns"] - epochs["multi"]
        b["timestamp_ns"] = b["timestamp_ns"] - epochs["single"]
        assert a["records"].shape[0] > 20
        for name in fields:
            assert np.array_equal(a[name], b[name]), (ch, name)


def test_parts_channels_and_merged_summary(runs: dict[str, Path]) -> None:
    reader = RunReader(runs["multi"] / "store")
    assert sorted(reader.acquisitions()) == ["pulses-part-roach1", "pulses-part-roach2"]
    assert reader.channels("pulses-part-roach1") == [1, 2]
    assert reader.channels("pulses-part-roach2") == [65, 66]  # offset: 64 channels per board
    assert reader.metadata["complete"] and reader.metadata["end_reason"] == "completed"
    summary = json.loads((runs["multi"] / "summary.json").read_text())
    result = summary["steps"][-1]["result"]
    for board in ("roach1", "roach2"):
        part = f"pulses-part-{board}"
        stored = sum(reader.committed(part, c) for c in reader.channels(part))
        b = result["boards"][board]
        assert b["records"] == stored and b["live_time_s"] == DURATION_S
        assert b["channels"] == TONES
        assert b["record_rate_hz"] == pytest.approx(stored / DURATION_S)
        assert reader.info(part)["metadata"]["board"] == board
    assert result["records"] == sum(b["records"] for b in result["boards"].values())
    # Pulses: 100 Hz on each of 4 TES for 0.25 s, every line (>= 0.45 Phi0) far above the
    # 0.05 Phi0 edge threshold; no trigger in the 1 ms holdoff after one (-9 %). Poisson
    # within 3 sigma of ~91.
    edges = 0
    for part in reader.acquisitions():
        for c in reader.channels(part):
            edges += int((reader.read(part, c, ["trigger_kind"])["trigger_kind"]
                          == TriggerKind.EDGE).sum())  # fmt: skip
    expected = 2 * TONES * DURATION_S * RATE_HZ / (1 + RATE_HZ * LENGTH / 250e3)
    assert abs(edges - expected) < 3 * np.sqrt(expected)


def test_a_failing_board_is_reported_the_other_keeps_its_data_resume_reruns_it(
    tmp_path: Path, client: Any
) -> None:
    rig = yaml.safe_load(RIG.read_text())
    rig["instruments"]["roach2"]["driver"] = "test_multiboard:LosingBoard"
    rig["instruments"]["roach2"]["sim"]["kind"] = "umux"
    steps = [
        {"set": {f"{b}.channels.1-{TONES}.enabled": True for b in ("roach1", "roach2")}},
        {"acquire": {**ACQUIRE, "source": "roach1", "boards": ["roach2"], "block": 8192}},
    ]  # fmt: skip
    code, run_dir = run_campaign(tmp_path, steps, client, rig=rig)
    assert code == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert "board roach2" in summary["error"] and "connection lost (injected)" in summary["error"]
    reader = RunReader(run_dir / "store")
    lost_at = LosingBoard.FETCHES_BEFORE_LOSS * 8192 / 250e3
    assert reader.commit("pulses-part-roach1").processed_samples == SAMPLES
    assert reader.commit("pulses-part-roach2").processed_samples / 250e3 == lost_at
    assert reader.committed("pulses-part-roach2", 65) > 0  # what it took before is kept

    # The connection is back (the rig's own driver): only what roach2 misses runs.
    loaded = load_campaign(run_dir / "campaign.json", ["rig.instruments.roach2.driver=umux"])
    runner = CampaignRunner(
        loaded.campaign, loaded.rig, loaded.raw, run_dir, resume=True, client=client
    )
    assert runner.run() == 0
    reader = RunReader(run_dir / "store")
    order = reader.acquisitions()  # start order: the boards' first parts, then the resumed one
    assert sorted(order[:2]) == ["pulses-part-roach1", "pulses-part-roach2"], order
    assert order[2:] == ["pulses-part-roach2-2"], order
    live = reader.commit("pulses-part-roach2-2").processed_samples / 250e3
    assert live + lost_at == pytest.approx(DURATION_S, abs=1 / 250e3)
    result = json.loads((run_dir / "summary.json").read_text())["steps"][-1]["result"]
    assert result["boards"]["roach1"]["parts"] == ["pulses-part-roach1"]
    assert result["boards"]["roach2"]["live_time_s"] == pytest.approx(DURATION_S, abs=1 / 250e3)


WRITER = """
import sys, time
from dataclasses import replace
import store_writer_child as child
from cryodaq.acquisition.cluster.boards import BoardStore
name = sys.argv[2]
acq = BoardStore(sys.argv[1], flush_interval_s=0.05).acquisition(
    name, child.CHANNELS, child.RECORD_LENGTH, "int16", child.RATE_HZ, child.PRETRIGGER)
print("created", flush=True)
k = 0
while True:
    acq.append(replace(child.batch(k), acquisition=name))
    k += 1
    time.sleep(0.002)
"""


def test_concurrent_board_writers_killed_leave_a_readable_run(tmp_path: Path) -> None:
    """Two processes write their parts of one run while the campaign's writer lists them; a
    SIGKILL of both leaves every committed row exact and the run closable."""
    store = RunStore.create(tmp_path / "store")
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    names = ["stream-part-a", "stream-part-b"]
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "store"), n],
                         stdout=subprocess.PIPE, text=True, env=env)
        for n in names
    ]  # fmt: skip
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "created"
        for n in names:
            store.adopt(n)
        deadline = time.monotonic() + 20
        reader = RunReader(tmp_path / "store")
        while min(reader.committed(n, 0) for n in names) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait(10)
    store.close()
    reader = RunReader(tmp_path / "store")
    # Listed in start order; both parts start at once, so either may come first.
    assert sorted(reader.acquisitions()) == names and reader.metadata["complete"]
    for n in names:
        assert not reader.commit(n).closed  # killed: never closed, still readable
        for ch in child.CHANNELS:
            rows = reader.committed(n, ch)
            assert rows >= 200
            got = reader.read(n, ch, ["records", "sample_index", "timestamp_ns"])
            want = child.expected(ch, np.arange(rows))
            for field in ("records", "sample_index", "timestamp_ns"):
                assert np.array_equal(got[field], want[field]), (n, ch, field)
        group = zarr.open_group(tmp_path / "store", mode="r")  # plain zarr sees the same rows
        rows0 = group[f"acquisitions/{n}"].attrs["commit"]["rows"]["ch000"]
        assert np.array_equal(group[f"acquisitions/{n}/ch000/sample_index"][:rows0],
                              child.expected(0, np.arange(rows0))["sample_index"])  # fmt: skip
    assert set(reader.metadata["summary"]["acquisitions"]) == set(names)


def test_settings_snapshot_restores_every_instrument_of_another_rig() -> None:
    """What a board task applies: an ADC and a temperature controller of the maXs30 rig,
    changed from their rig settings, restored on a second rig."""
    spec = load_rig(HERE.parent / "config" / "rigs" / "maxs30_sim.yaml")
    with Rig(spec) as first, Rig(spec) as second:
        adc = first.open("adc1")
        adc.channel(3).enabled = False
        adc.sample_rate = 250e3
        tc = first.open("tc")
        tc.outputs[0].setpoint = 0.031
        snaps = {"adc1": snapshot(adc), "tc": snapshot(tc)}
        assert snaps["adc1"]["channels:3"]["enabled"] is False
        assert snaps["tc"]["outputs:0"]["setpoint"] == pytest.approx(0.031)
        for name in snaps:
            inst = second.open(name)
            restore(inst, snaps[name])
            assert snapshot(inst) == snaps[name], name


def test_an_unknown_board_is_a_campaign_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    steps = [{"acquire": {**ACQUIRE, "source": "roach1", "boards": ["roach9"]}}]
    path.write_text(yaml.safe_dump({"name": "bad", "rig": str(RIG), "steps": steps}))
    with pytest.raises(CampaignInvalid) as info:
        load_campaign(path)
    assert "steps.0.acquire.boards.0: the rig has no instrument 'roach9'" in str(info.value)


def test_a_stop_event_ends_a_board_task_with_its_data_kept(tmp_path: Path, client: Any) -> None:
    """What Ctrl-C does to running board tasks: the cluster-wide event stops them after
    their current block; the part is closed and its stream time reported."""
    spec = load_rig(RIG)
    with Rig(spec) as rig:
        board = rig.open("roach1")
        board.channel(1).enabled = True
        state = {"roach1": snapshot(board)}
    store = RunStore.create(tmp_path / "store")
    step = AcquireStep.model_validate(
        {**ACQUIRE, "source": "roach1", "duration": "60 s", "block": 4096}
    )
    task = BoardTask(
        spec, "roach1", (), 0, state, 0.0, StepAcquisition(step), tmp_path / "store", "p", 60.0,
        "stop-t",
    )
    future = client.submit(acquire_board, task, pure=False)
    reader = RunReader(tmp_path / "store")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the task has committed some records
        with contextlib.suppress(RunStoreError, OSError):
            store.adopt("p")  # once the task has created it
            if reader.committed("p", 1) > 0:
                break
        time.sleep(0.1)
    Event("stop-t", client=client).set()
    outcome = future.result(timeout=60)
    store.close()
    assert outcome.error is None and outcome.result.end_reason == "interrupted"
    assert 0 < outcome.result.live_time_s < 60
    assert reader.commit("p").closed
    assert reader.commit("p").processed_samples / 250e3 == outcome.result.live_time_s
