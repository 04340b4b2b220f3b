"""Per-channel analysis on Dask: the same results as the serial run, worker processes reading the
run store themselves, per-channel progress, and a broken channel (an unreadable chunk, a worker
process that dies) reported while the others complete. One stored run (maXs30 rig, 4 channels,
6 s, seed 11) and one local cluster of two worker processes serve every test."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from test_quickstart import cryodaq

from cryodaq.acquisition.campaign.runner import STORE, CampaignRunner
from cryodaq.acquisition.campaign.validate import load_campaign
from cryodaq.acquisition.cluster.analyze import analyze, has_plan, run_distributed
from cryodaq.acquisition.cluster.connection import ClusterError, ClusterSpec, connect
from cryodaq.acquisition.pipelines import PipelineInput, pulses
from cryodaq.acquisition.store.reader import RunReader

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = (1, 2, 3, 4)
RATE_HZ = 20.0  # not the rig's 5 Hz: enough clean pulses in 6 s


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dist")
    campaign = {
        "name": "dist",
        "rig": str(ROOT / "config" / "rigs" / "mmc_simple_sim.yaml"),
        "steps": [
            {"set": {"adc1.channels.5-16.enabled": False}},
            {
                "acquire": {
                    "name": "calib",
                    "source": "adc1",
                    "duration": "6 s",
                    "record_length": 2048,
                    "pretrigger": 512,
                    "trigger": {"all": {"edge_threshold": "3 mV", "noise_every": "10 ms"}},
                }
            },
            {"analyze": {"name": "res", "pipeline": "pulses", "acquisitions": ["calib"]}},
        ],
    }
    path = tmp / "dist.yaml"
    path.write_text(yaml.safe_dump(campaign))
    # the detector held at 20 mK (no regulation in this campaign): the MMC model's decay
    # there is 3.0 ms
    loaded = load_campaign(
        path, ["rig.world.seed=11", f"rig.world.detectors.mmc.rate_hz={RATE_HZ}",
               "rig.world.thermal.plates.detector.initial_K=0.02",
               "rig.world.thermal.mixing.base_K=0.02"]
    )
    out = tmp / "run"
    assert CampaignRunner(loaded.campaign, loaded.rig, loaded.raw, out).run() == 0
    return out


@pytest.fixture(scope="module")
def client() -> Any:
    with connect(ClusterSpec(workers=2)) as c:  # real worker processes
        yield c


def _input(run_dir: Path) -> PipelineInput:
    return PipelineInput(
        run_dir, RunReader(run_dir / STORE), ("calib",), {}, run_dir / "figures-test"
    )


@pytest.fixture(scope="module")
def serial(run_dir: Path) -> dict[str, Any]:
    return analyze("pulses", _input(run_dir)).results


def _assert_same_channel(serial: dict[str, Any], dist: dict[str, Any], ch: int) -> None:
    a, b = serial["channels"][str(ch)], dist["channels"][str(ch)]
    assert "error" not in a, a
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, float):
            # Same code on the same stored rows: equal up to BLAS summation order.
            assert b[key] == pytest.approx(value, rel=1e-9, abs=1e-15), (ch, key)
        else:
            assert b[key] == value, (ch, key)


def test_distributed_equals_serial(run_dir: Path, client: Any, serial: dict[str, Any]) -> None:
    assert has_plan("pulses")
    worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    done: list[Any] = []
    before = time.time()
    result = analyze("pulses", _input(run_dir), client, on_piece=lambda k, o: done.append(k))
    dist = result.results
    assert sorted(done) == list(CHANNELS)  # progress: one report per channel
    # The four figures, drawn as tasks by the workers into the run directory.
    assert [p.name for p in result.figures] == [
        f"pulses_calib_{n}.png" for n in ("spectrum", "pulses", "noise_psd", "resolution")
    ]
    assert all(p.stat().st_size > 10_000 and p.stat().st_mtime >= before - 1
               for p in result.figures)
    assert list(dist["channels"]) == [str(c) for c in CHANNELS]
    for ch in CHANNELS:
        _assert_same_channel(serial, dist, ch)
    # Physics check of the shared result: the injected rate, dead-time corrected (8 ms
    # holdoff is the record length here: 4 ms), within 3 sigma of ~120 triggers per channel.
    mean = dist["mean"]
    triggers = sum(dist["channels"][str(c)]["pulse_triggers"] for c in CHANNELS)
    rates = [dist["channels"][str(c)]["rate_deadtime_corrected_hz"] for c in CHANNELS]
    assert np.mean(rates) == pytest.approx(RATE_HZ, abs=3 * np.sqrt(triggers) / (6.0 * 4))
    assert mean["channels"] == 4 and mean["decay_s"] == pytest.approx(3e-3, rel=0.05)


def test_broken_channel_is_reported_and_the_others_complete(
    run_dir: Path, client: Any, serial: dict[str, Any], tmp_path: Path
) -> None:
    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken)
    chunk = broken / STORE / "acquisitions" / "calib" / "ch002" / "records" / "c.0.0"
    chunk.write_bytes(b"not a zstd frame")
    out = analyze("pulses", _input(broken), client).results
    assert "error" in out["channels"]["2"] and out["channels"]["2"]["error"]
    for ch in (1, 3, 4):
        assert out["channels"][str(ch)]["fwhm_eV"] == pytest.approx(
            serial["channels"][str(ch)]["fwhm_eV"], rel=1e-9
        )
    assert out["mean"]["channels"] == 3


def _dies_on(shared: tuple[int, pulses.Shared], ch: int) -> Any:
    """The pulses pipeline's work, except that channel `shared[0]` kills its worker process."""
    doomed, inner = shared
    if ch == doomed:
        os._exit(13)  # as a segfault or the OOM killer would: no exception, no result
    return pulses.analyze_stored_channel(inner, ch)


def test_a_dying_worker_fails_only_its_channel(
    run_dir: Path, client: Any, serial: dict[str, Any]
) -> None:
    plan = pulses.plan(_input(run_dir))
    plan = dataclasses.replace(plan, work=_dies_on, shared=(2, plan.shared))
    done: list[Any] = []
    out: list[dict[str, Any]] = []

    def run() -> None:
        out.append(run_distributed(plan, client, lambda k, o: done.append(k)).results)

    thread = threading.Thread(target=run, daemon=True)  # a hang fails the test, not the suite
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "run_distributed hung after a worker died"
    # It killed its worker, and again when re-run alone; a channel queued on that worker
    # was re-run alone too and completed.
    assert "KilledWorker" in out[0]["channels"]["2"]["error"]
    assert sorted(done) == list(CHANNELS)  # progress reported the failed channel too
    for ch in (1, 3, 4):
        _assert_same_channel(serial, out[0], ch)
    assert out[0]["mean"]["channels"] == 3
    client.wait_for_workers(2, timeout=60)  # the nannies restarted the dead workers


def test_cli_analyze_on_an_existing_scheduler(run_dir: Path, client: Any, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    done = cryodaq("analyze", str(copy), "--scheduler", client.scheduler.address)
    assert done.returncode == 0, done.stdout + done.stderr
    for ch in CHANNELS:
        assert f"res: channel {ch} done" in done.stdout
    before = json.loads((run_dir / "summary.json").read_text())["analyze"]["res"]
    after = json.loads((copy / "summary.json").read_text())["analyze"]["res"]
    assert after["mean"]["fwhm_eV"] == pytest.approx(before["mean"]["fwhm_eV"], rel=1e-9)


def test_cluster_options_are_checked() -> None:
    with pytest.raises(ClusterError, match="not both"):
        ClusterSpec(workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ClusterError, match="--workers must be >= 1"):
        ClusterSpec(workers=0)
    with pytest.raises(ClusterError, match="allowed_failures must be >= 0"):
        ClusterSpec(workers=1, allowed_failures=-1)
    with (
        pytest.raises(ClusterError, match="no Dask scheduler"),
        connect(ClusterSpec(scheduler="tcp://127.0.0.1:9", connect_timeout_s=1.0)),
    ):
        pass
