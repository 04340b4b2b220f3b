"""Both ADCs of the simulated maXs30 on one clock, acquired as one stream: muon showers that hit
channels of both ADCs are flagged as coincidences on every channel they hit (issue 15).

Truth: `rig.world.detector_array("mmc").truth()`, rows of kind "muon" (a shower hits 2-4
neighbouring pixels within 0.5 us). The shower rate is raised so that a few seconds hold a
dozen showers across the two ADCs (rows D and E of the chip: channels 9-16 on ADC 1 and 17-24,
ADC 2's channels 1-8). A hit within the holdoff (8 ms) of an earlier trigger on its channel (a
pulse, or the late re-trigger on a large pulse's tail) has no record of its own; such showers
are left out. The acquisition is the campaigns' one: thresholds of 6 sigma of the edge kernel
(width 24 samples) measured before it, a coincidence window of 4 us (the trigger
places a hit to about one 2 us sample).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from maxs30_run import acquire_both_adcs, rig_doc

from cryodaq.acquisition.campaign.steps.acquire import AcquireStep
from cryodaq.acquisition.campaign.steps.acquire_setup import acquisition_for
from cryodaq.acquisition.campaign.steps.base import StepError
from cryodaq.acquisition.clock import WorldClock
from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store.writer import RunStore

DURATION_S = 4.0
#: A hit is timeable to a sample when it rises fast (absorber 10 us, sensor 0.1 us; a substrate
#: deposit rises over ~0.3 ms) and stands well above the threshold (~80 eV).
MIN_HIT_EV = 1000.0
MATCH_S = 20e-6
#: Hits this soon after an earlier event on their channel may fall in a holdoff.
BUSY_S = 2 * 4096 / 500e3 + 1e-3


def _step(**extra: object) -> AcquireStep:
    return AcquireStep.model_validate({
        "name": "bg", "sources": ["adc1", "adc2"], "duration": DURATION_S,
        "record_length": 4096, "pretrigger": 1024, "coincidence_window": "4 us",
        "trigger": {"all": {"polarity": 0, "edge_threshold": "6 sigma", "edge_width": 24}},
        **extra,
    })  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("coincidence")
    doc = rig_doc()
    doc["world"]["seed"] = 15
    doc["world"]["detector"]["source"] = "none"
    doc["world"]["background"].update(muon_per_cm2_s=250.0, jump_per_channel_h=0.0,
                                      burst_per_h=0.0)  # fmt: skip
    return acquire_both_adcs(tmp, doc, {"adc1": "9-16", "adc2": "1-8"}, _step(), 30.0)


def test_channels_keep_their_adc(run: dict) -> None:
    reader = run["reader"]
    meta = reader.info("bg")["metadata"]
    assert reader.channels("bg") == [*range(9, 17), *range(17, 25)]
    assert meta["source"] == "adc1+adc2"
    assert meta["channel_sources"]["16"] == ["adc1", 16]
    assert meta["channel_sources"]["17"] == ["adc2", 1]
    trig = meta["trigger"]["channels"]["20"]
    assert trig["n_sigma"] == 6.0 and trig["edge_width"] == 24
    assert trig["edge_threshold"] == pytest.approx(6.0 * trig["sigma"])


def test_showers_across_both_adcs_are_flagged_on_every_channel(run: dict) -> None:
    reader, truth = run["reader"], run["truth"]
    fs = reader.info("bg")["sample_rate_hz"]
    t0 = reader.info("bg")["metadata"]["start_time_ns"] * 1e-9
    records = {}
    for ch in reader.channels("bg"):
        d = reader.read("bg", ch, ["trigger_kind", "sample_index", "coincidence"])
        edge = d["trigger_kind"] == TriggerKind.EDGE
        records[ch] = (t0 + d["sample_index"][edge] / fs, d["coincidence"][edge])
    t_all, ch_all = truth["time_s"], truth["channel"]
    muon = truth["kind"] == "muon"
    t, ch = truth["time_s"][muon], truth["channel"][muon]
    energy, deposit = truth["energy_eV"][muon], truth["deposit"][muon]
    inside = (t > t0 + 1e-3) & (t < t0 + DURATION_S - 3e-3)
    showers = np.split(np.arange(t.size), np.flatnonzero(np.diff(t) > 10e-6) + 1)
    checked, flagged = 0, 0
    for hits in showers:
        if hits.size == 0 or not inside[hits].all():
            continue
        timeable = hits[(energy[hits] >= MIN_HIT_EV) & (deposit[hits] != "substrate")]
        chans = ch[timeable]
        busy = [np.any((t_all[ch_all == c] > t[hits[0]] - BUSY_S)
                       & (t_all[ch_all == c] < t[hits[0]] - 1e-6)) for c in chans]  # fmt: skip
        if (
            any(busy)  # the channel was in another record's holdoff
            or np.unique(chans).size != chans.size  # two pixels of one channel: a sum of two
            or not all(c in records and not run["dead"][c - 1] for c in chans)
            or not (np.any(chans <= 16) and np.any(chans >= 17))
        ):
            continue
        assert np.ptp(t[timeable]) <= 1e-6  # the showers hit within 1 us
        for k in timeable:
            times, mult = records[int(ch[k])]
            near = np.abs(times - t[k]) <= MATCH_S
            assert near.sum() == 1, f"channel {ch[k]}: {near.sum()} records at {t[k]:.6f} s"
            checked += 1
            flagged += int(mult[near][0] >= 2)
    assert checked >= 15  # ~10 showers across the ADCs, 2-4 hits each
    assert flagged == checked


def test_bad_sources_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="either source"):
        AcquireStep.model_validate({"name": "x", "duration": 1.0})
    with pytest.raises(ValueError, match="two or more different"):
        _step(sources=["adc1", "adc1"])
    with pytest.raises(ValueError, match="do not mix"):
        _step(boards=["adc2"])


def test_sources_on_different_clocks_are_refused(tmp_path: Path) -> None:
    doc = rig_doc()
    doc["instruments"]["adc2"]["settings"]["sample_rate"] = "250 kHz"
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(doc))
    with Rig(load_rig(tmp_path / "rig.yaml")) as rig:
        rig.open("fll")
        adcs = [rig.open("adc1"), rig.open("adc2")]
        store = RunStore.create(tmp_path / "run", {})
        with pytest.raises(StepError, match="adc2 has sample_rate_hz 250000.0, adc1 500000.0"):
            acquisition_for(adcs, _step(), "bg", 1.0, store, WorldClock(rig))
        store.close("done")
