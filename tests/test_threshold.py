"""Trigger thresholds in units of the measured noise on the default simulated maXs30 (issue 15).

One acquisition of both ADCs (three gradiometric channels), thresholds `6 sigma` of the edge
kernel (half-width 24 samples) measured before it, noise records every 10 ms, with the 55Fe
source made stronger (a source strength, not a detector parameter). Then:
- the 50 % point of the trigger efficiency measured as the `mmc` pipeline measures it (the
  pixel's average Mn Ka pulse, scaled to energy E, added in software to its noise records,
  `mmc_efficiency.measure`) agrees within 10 % with the one expected from the noise and the
  threshold alone (the pulse in white Gaussian noise of the kernel rms measured on the noise
  records; a little below the noise-free step, where the pulse's largest kernel value is the
  threshold), and lies below 100 eV;
- the trigger engine itself agrees: the same pulses added to the noise records, replayed as
  a stream through the numba engine with the stored threshold, trigger half the time within
  10 % of the same energy.
Truth (`detector_array("mmc").truth()`) picks the clean Ka events and the pixel of each.
"""

from __future__ import annotations

import numpy as np
import pytest
from maxs30_run import acquire_both_adcs, rig_doc

from cryodaq.acquisition.campaign.steps.acquire import AcquireStep
from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.pipelines.mmc_efficiency import measure
from cryodaq.acquisition.stream.sources import ReplaySource
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig, TriggerEngine
from cryodaq.analysis.mmc_shape import learn_ellipse, shape_parameters, zeta_noise
from cryodaq.analysis.optimal_filter import average_pulse, noise_psd, optimal_filter
from cryodaq.analysis.trigger_efficiency import edge_kernel

DURATION_S = 4.0
LENGTH, PRE, WIDTH = 4096, 1024, 24
KA_EV = (5870.0, 5920.0)
#: Stored channels (= FLL channels): 2 of ADC 1, 2 of ADC 2 (18); neither dead nor a corner.
CHANNELS = (2, 18)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("threshold")
    doc = rig_doc()
    doc["world"]["seed"] = 7
    doc["world"]["sources"]["fe55"]["rate_per_pixel_hz"] = 20.0
    step = AcquireStep.model_validate({
        "name": "calib", "sources": ["adc1", "adc2"], "duration": DURATION_S,
        "record_length": LENGTH, "pretrigger": PRE,
        "trigger": {"all": {"polarity": 0, "edge_threshold": "6 sigma", "edge_width": WIDTH,
                            "noise_every": "10 ms"}},
    })  # fmt: skip
    return acquire_both_adcs(tmp, doc, {"adc1": "2-3", "adc2": "2"}, step, 60.0)


def _channel(run: dict, ch: int) -> dict:
    """Noise records, the average pulse of clean Ka events of the channel's positive pixel and
    its scale (template units per eV), and the trigger stored for the channel."""
    reader, truth = run["reader"], run["truth"]
    info = reader.info("calib")
    fs, t0 = info["sample_rate_hz"], info["metadata"]["start_time_ns"] * 1e-9
    d = reader.read("calib", ch, ["records", "trigger_kind", "sample_index"])
    edge_at = d["sample_index"][d["trigger_kind"] == TriggerKind.EDGE]
    mine = truth["channel"] == ch  # stored channel = FLL channel (adc1 1-16, adc2 17-32)
    tt = truth["time_s"][mine]
    # noise records: no truth event (of any energy) within the record
    auto = np.flatnonzero(d["trigger_kind"] == TriggerKind.AUTO)
    start = t0 + (d["sample_index"][auto] - PRE) / fs
    quiet = [i for i, s in zip(auto, start, strict=True)
             if not np.any((tt > s - 5e-3) & (tt < s + LENGTH / fs))]  # fmt: skip
    # clean Ka pulses of the upper (positive) pixel: alone within -5 ms .. record end
    ka = []
    in_ka = (truth["energy_eV"] > KA_EV[0]) & (truth["energy_eV"] < KA_EV[1])
    for k in np.flatnonzero(mine & in_ka):
        others = np.abs(tt - truth["time_s"][k]) < LENGTH / fs + 5e-3
        if others.sum() != 1 or truth["height_phi0"][k] <= 0:
            continue
        at = round((truth["time_s"][k] - t0) * fs)
        j = np.flatnonzero(np.abs(d["sample_index"] - at) <= 3)
        if j.size == 1 and d["trigger_kind"][j[0]] == TriggerKind.EDGE:
            ka.append((j[0], truth["energy_eV"][k]))
    assert len(quiet) >= 100 and len(ka) >= 20, (len(quiet), len(ka))
    idx, energy = np.array([j for j, _ in ka]), np.array([e for _, e in ka])
    avg = average_pulse(d["records"][idx], PRE, fs)
    rec = d["records"][idx].astype(np.float64)
    rec -= rec[:, :PRE].mean(axis=1, keepdims=True)
    amp = rec @ avg.template / (avg.template @ avg.template)
    per_eV = float(np.median(amp / energy))  # template units per eV
    trig = info["metadata"]["trigger"]["channels"][str(ch)]
    assert edge_at.size > len(ka)
    return {"noise": d["records"][quiet].astype(np.float64), "avg": avg, "per_eV": per_eV,
            "trigger": trig, "fs": fs, "ka": d["records"][idx]}  # fmt: skip


@pytest.mark.parametrize("ch", CHANNELS)
def test_threshold_in_sigma_gives_the_expected_50_percent_point(run: dict, ch: int) -> None:
    c = _channel(run, ch)
    noise, avg, trig = c["noise"], c["avg"], c["trigger"]
    assert trig["n_sigma"] == 6.0 and trig["edge_threshold"] == pytest.approx(6 * trig["sigma"])
    # sigma, measured on the stream before the acquisition, is the kernel's rms on noise
    d = edge_kernel(noise - noise.mean(axis=1, keepdims=True), WIDTH)
    assert trig["sigma"] == pytest.approx(float(np.std(d)), rel=0.10)
    filt = optimal_filter(avg.template, noise_psd(noise, c["fs"]))
    var = float(np.var(noise - noise.mean(axis=1, keepdims=True)))
    shape_n = shape_parameters(noise[:100], avg.template, PRE, var)
    shape_ka = shape_parameters(c["ka"], avg.template, PRE, var)
    ellipse = learn_ellipse(shape_ka, zeta_noise(noise[:100], avg.template, PRE), 0.01, shape_n)
    eff, expected = measure(
        noise, avg, filt, ellipse, var, lambda e: np.asarray(e) * c["per_eV"],
        1.0 / c["per_eV"], PRE, trig,
    )  # fmt: skip
    e50, e50_expected = eff.trigger.crossing(0.5), expected["expected_e50_eV"]
    assert e50 == pytest.approx(e50_expected, rel=0.10)
    assert e50 < 100.0
    assert e50_expected < expected["noise_free_step_eV"] < 1.3 * e50_expected
    assert eff.trigger.crossing(0.9) > e50
    # The numba engine on the same pulses in the same noise, as one replayed stream.
    energies = np.array([0.8, 0.9, 1.0, 1.1, 1.2]) * e50_expected
    n = noise.shape[0]
    fired = []
    for e in energies:
        stream = noise - noise.mean(axis=1, keepdims=True) + e * c["per_eV"] * avg.template
        src = ReplaySource(np.round(stream).reshape(1, -1).astype(np.int16), c["fs"], 1 << 15)
        cfg = TriggerConfig(64, 16, {1: ChannelTrigger(
            polarity=0, edge_threshold=trig["edge_threshold"], edge_width=WIDTH)}, holdoff=8)
        engine = TriggerEngine(cfg, (1,), c["fs"])
        src.start()
        hits = []
        while (block := src.read()) is not None:
            hits.append(engine.process(block).sample_index)
        at = np.concatenate(hits)
        inj = np.arange(n) * LENGTH + PRE
        fired.append(np.mean([np.any((at >= i - 2) & (at <= i + 2 * WIDTH + 24)) for i in inj]))
    e50_engine = float(np.interp(0.5, fired, energies))
    assert fired[0] < 0.5 < fired[-1] and np.all(np.diff(fired) >= -0.05)
    assert e50_engine == pytest.approx(e50_expected, rel=0.10)
    assert e50_engine == pytest.approx(e50, rel=0.05)
