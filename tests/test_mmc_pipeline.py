"""The `mmc` pipeline end to end on the simulated maXs30 rig, against what the simulator
injected (`rig.world.detector_array("mmc")`: truth events and per-pixel parameters).

Two runs, 4 channels (8 pixels) of ADC 1 each, with a fixed seed. To get enough Mn Ka events
in a minute of simulated time the pulses are faster than maXs30's (a sensor-bath link of
14.2 instead of 85.4 mOhm: decay 0.5 ms; records of 1024 samples) and the 55Fe source is
stronger (25 Hz per pixel). The resolutions expected are the detector model's: its optimal-
filter limit for the pipeline's records (baseline) and the athermal-loss spread on top (Ka).
Run A keeps the default detector; run B a quieter SQUID (~4 eV baselines) and half the
athermal loss, and then takes background: the source swapped out (`world.detector.source: none`), a
continuum 2e4 times the paper's, more muon showers and jumps, and bursts compressed in time
with the burst cut's window (0.25 s instead of a minute, threshold scaled to 4 of 16
channels), so that a minute and a half of stream holds enough of each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cryodaq.acquisition.pipelines import PipelineError, PipelineInput, get_pipeline
from cryodaq.acquisition.pipelines.mmc_lines import calibration_lines
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.acquisition.stream.engine import Acquisition
from cryodaq.acquisition.stream.sources import AdcSource
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig
from cryodaq.acquisition.units import to_si
from cryodaq.analysis.optimal_filter import FWHM_PER_SIGMA, NoiseSpectrum, optimal_filter
from cryodaq.analysis.pulse_shapes import unit_pulse
from cryodaq.sim_instruments.mmc_array import channel_pixels

ROOT = Path(__file__).resolve().parents[1]
LENGTH, PRE = 1024, 256
FAST = {"link_resistance_mohm": 14.2}  # decay 0.5 ms at 20 mK
DECAY_S = 0.5e-3
BACKGROUND_S = 75.0
BACKGROUND = {
    "background.continuum_per_keV_cm2_s": 6.0,
    "background.muon_per_cm2_s": 4.0,
    "background.jump_per_channel_h": 600.0,
    "background.burst_per_h": 240.0,
    "background.burst_duration_s": 0.2,
    "background.burst_packet_hz": 100.0,
}
#: The burst cut's minute compressed to 0.25 s, its threshold (30 triggers of 16 channels)
#: scaled to the 4 channels recorded.
BURST_OPTIONS = {"minute_s": 0.25, "burst_per_minute": 8}
MATCH_S = 20e-6  # a record's trigger lies ~2 us after the event (rise); one sample = 2 us


def simulate(tmp: Path, seed: int, detector: dict[str, Any], channels: list[int],
             calib_s: float, background: bool) -> dict[str, Any]:  # fmt: skip
    """Calibration (and background) acquisitions of `channels` of ADC 1, then the pipeline."""
    doc = yaml.safe_load((ROOT / "config" / "rigs" / "maxs30_sim.yaml").read_text())
    doc["world"]["seed"] = seed
    doc["world"]["detector"].update({**FAST, **detector})
    doc["world"]["sources"]["fe55"]["rate_per_pixel_hz"] = 25.0
    adc = doc["instruments"]["adc1"]["settings"]
    enabled = f"{channels[0]}-{channels[-1]}"
    adc["channels"] = {"1-16": {"enabled": False}, enabled: {"enabled": True}}
    rig_file = tmp / "rig.yaml"
    rig_file.write_text(yaml.safe_dump(doc))
    with Rig(load_rig(rig_file)) as rig:
        rig.open("fll")
        rig.open("tc")  # its rig settings regulate the detector plate at 20 mK
        adc1 = rig.open("adc1")
        world = rig.world
        world.advance(300.0)
        source = AdcSource(adc1, 1 << 15, clock_ns=lambda: int(world.now() * 1e9))
        threshold = to_si("3 mV", source.unit) / source.units_per_value
        trigger = ChannelTrigger(polarity=0, edge_threshold=threshold, auto_period=25_000)
        # Coincidence window 2 samples: the trigger places a hit to +-1 sample (a sensor hit
        # rises in 0.1 us, an absorber hit in 10 us).
        config = TriggerConfig(LENGTH, PRE, dict.fromkeys(channels, trigger), coincidence_window=2)
        meta = {"trigger": {"coincidence_window": 2, "holdoff": LENGTH, "channels": {
            str(c): {"edge_threshold": threshold, "edge_width": 2, "polarity": 0}
            for c in channels}}}  # fmt: skip
        store = RunStore.create(tmp / "run", {"rig": rig.spec.doc.data})
        Acquisition(source, config, name="calib", store=store, duration_s=calib_s,
                    metadata=meta).run()  # fmt: skip
        options: dict[str, Any] = {"wiring": {"adc1": 1}}
        if background:
            world.set_param("detector.source", "none")
            for key, value in BACKGROUND.items():
                world.set_param(key, value)
            Acquisition(source, config, name="bg", store=store, duration_s=BACKGROUND_S,
                        metadata=meta).run()  # fmt: skip
            options.update(background={"no shield": ["bg"]}, **BURST_OPTIONS)
        store.close("done")
        array = world.detector_array("mmc")
        truth, pixels, chans = array.truth(), array.pixels(), array.channels()
        params = dict(world.params["detector"]), dict(world.params["background"])
    inp = PipelineInput(tmp, RunReader(tmp / "run"), ("calib",), options, tmp / "figures")
    out = get_pipeline("mmc")(inp)
    events = np.load(out.results["events_file"])
    return {"out": out, "truth": truth, "pixels": pixels, "channels": chans,
            "detector": params[0], "background": params[1], "events": events,
            "model": array.model, "chip_K": array.now_K(), "input": inp}  # fmt: skip


def implied_baseline_fwhm_eV(run: dict[str, Any], name: str) -> float:
    """The baseline FWHM (eV) the detector model implies for pixel `name`: the optimal
    filter's prediction for the model's pulse in the model's noise PSD of its channel (both
    pixels, SQUID), on the pipeline's records (REFERENCE section 6)."""
    pix, ch = run["pixels"], run["channels"]
    i = list(pix["name"]).index(name)
    c = int(pix["channel"][i]) - 1
    rate = 5e5
    freqs = np.fft.rfftfreq(LENGTH, 1.0 / rate)
    freqs[0] = freqs[1]
    factor = float(run["detector"].get("noisy_factor", 2.5)) if ch["noisy"][c] else 1.0
    psd = run["model"].channel_psd(list(channel_pixels(c + 1)), run["chip_K"], freqs, factor)
    pulse = unit_pulse((np.arange(LENGTH) - PRE) / rate, pix["rise_s"][i], pix["decay_s"][i])
    fwhm_phi0 = optimal_filter(pulse, NoiseSpectrum(freqs, psd, 1, rate)).predicted_fwhm
    return fwhm_phi0 / pix["phi0_per_eV"][i]


@pytest.fixture(scope="module")
def run_a(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return simulate(tmp_path_factory.mktemp("mmc_a"), 21, {}, [1, 2, 3, 4], 45.0, False)


@pytest.fixture(scope="module")
def run_b(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    detector = {"squid_white_phi0_per_rthz": 0.25e-6, "squid2_white_phi0_per_rthz": 1.0e-6,
                "athermal_loss": 0.5e-3}  # ~4 eV baselines
    # The Holzer widths weigh more at 4.5 eV: twice the events for the same precision.
    return simulate(tmp_path_factory.mktemp("mmc_b"), 22, detector, [5, 6, 7, 8], 90.0, True)


def matched(run: dict[str, Any], group: int) -> dict[str, np.ndarray]:
    """Event-file rows of `group` with the truth event on their channel nearest in time
    (index into truth, -1 if none within MATCH_S)."""
    ev, truth = run["events"], run["truth"]
    rows = {k: ev[k][ev["group"] == group] for k in ev.files if k not in ("groups", "pixels")}
    idx = np.full(rows["time_s"].size, -1)
    for ch in np.unique(rows["channel"]):
        mine = np.flatnonzero(truth["channel"] == ch)
        t = truth["time_s"][mine]
        sel = np.flatnonzero(rows["channel"] == ch)
        j = np.clip(np.searchsorted(t, rows["time_s"][sel] - MATCH_S), 0, max(t.size - 1, 0))
        ok = np.abs(t[j] - rows["time_s"][sel]) <= MATCH_S if t.size else np.zeros(sel.size, bool)
        idx[sel[ok]] = mine[j[ok]]
    rows["truth"] = idx
    return rows


@pytest.mark.parametrize("name", ["run_a", "run_b"])
def test_resolutions_match_the_injected_ones(name: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(name)
    res, det = run["out"].results, run["detector"]
    pixels = {k: v for k, v in res["pixels"].items() if "error" not in v}
    assert len(pixels) == 8, res["pixels"]
    # A corner's small-sensor pixel (the model gives it ~15 % smaller pulses per eV) has a
    # wider baseline, and the pipeline may leave it out of the means as it does noisy
    # channels; no other pixel may be left out.
    small = set(run["pixels"]["name"][run["pixels"]["small_sensor"]])
    assert set(res["noisy"]) <= small, res["noisy"]
    good = [n for n in pixels if n not in res["noisy"]]
    injected_base = np.array([implied_baseline_fwhm_eV(run, n) for n in good])
    # the athermal loss: a uniform spread of width athermal_loss x E (rms / sqrt(12))
    loss = float(det.get("athermal_loss", 1e-3)) * 5898.75 / np.sqrt(12.0) * FWHM_PER_SIGMA
    injected_total = np.hypot(injected_base, loss)
    # ~700 (A) and ~1400 (B) Ka events per pixel: the fits give ~6 % per pixel, ~2 % on the
    # mean of 8 (issue: 5 %).
    assert res["mean_fwhm_eV"] == pytest.approx(injected_total.mean(), rel=0.05)
    # Baseline from ~2000 noise records per channel, against what the injected noise implies
    # (issue: 5 %).
    assert res["mean_baseline_fwhm_eV"] == pytest.approx(injected_base.mean(), rel=0.05)
    assert res["mean_baseline_fwhm_eV"] == pytest.approx(res["mean_predicted_fwhm_eV"], rel=0.05)
    # Per pixel, the injected baseline within 10 % (spread of the pixels' own noise).
    base = np.array([pixels[n]["baseline_fwhm_eV"] for n in good])
    np.testing.assert_allclose(base, injected_base, rtol=0.10)


@pytest.mark.parametrize("name", ["run_a", "run_b"])
def test_ellipse_cut_keeps_clean_calibration_events(name: str,
                                                    request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(name)
    rows, truth = matched(run, 0), run["truth"]
    hit = rows["truth"] >= 0
    assert hit.mean() > 0.97  # records are the injected events
    xray = hit & (truth["kind"][np.maximum(rows["truth"], 0)] == "xray")
    # Clean: nothing else on the channel from 10 decays before to the record's end.
    t, ch = truth["time_s"], truth["channel"]
    before, after = 10 * DECAY_S, (LENGTH - PRE) / 5e5
    clean = np.zeros(rows["time_s"].size, bool)
    for i in np.flatnonzero(xray):
        k = rows["truth"][i]
        near = (ch == ch[k]) & (t > t[k] - before) & (t < t[k] + after)
        clean[i] = near.sum() == 1
    assert clean.sum() > 2500
    rejected = 1.0 - rows["inside"][clean].mean()
    assert 0.005 <= rejected <= 0.02, rejected  # sized for ~1 % (issue: 0.5-2 %)


def test_background_cuts_against_truth(run_b: dict[str, Any]) -> None:
    rows, truth = matched(run_b, 1), run_b["truth"]
    k = np.maximum(rows["truth"], 0)
    kind = np.where(rows["truth"] >= 0, truth["kind"][k], "")
    deposit = np.where(rows["truth"] >= 0, truth["deposit"][k], "")
    cuts = run_b["out"].results["cuts"]["no shield"]
    # Ellipse: traces of muons depositing in the sensor or substrate, and jumps (>= 90 %).
    # A muon's deposit in the absorber is an X-ray-like pulse: the coincidence cut takes it.
    distorted = (kind == "muon") & (deposit != "absorber")
    jumps = kind == "jump"
    assert distorted.sum() >= 20 and jumps.sum() >= 20
    assert 1.0 - rows["inside"][distorted].mean() >= 0.9
    assert 1.0 - rows["inside"][jumps].mean() >= 0.9
    # Burst cut: >= 99 % of burst triggers removed, <= 6 % of the live time lost; a burst too
    # short to pass the cut's rate (one trigger per channel) is left to the coincidence cut,
    # since it hits every channel at once.
    dropped = np.array(cuts["burst"]["dropped_intervals_s"]).reshape(-1, 2)
    in_drop = ((rows["time_s"][:, None] >= dropped[:, 0]) &
               (rows["time_s"][:, None] < dropped[:, 1])).any(axis=1)  # fmt: skip
    bursts = kind == "burst"
    assert bursts.sum() >= 50
    assert in_drop[bursts].mean() >= 0.95
    assert (in_drop | (rows["coincidence"] > 1))[bursts].mean() >= 0.99
    assert cuts["burst"]["live_time_fraction_lost"] <= 0.06
    # Coincidence: a muon shower hits 2-4 neighbouring pixels within 0.5 us. Muon records
    # with a partner record (another channel, the same shower) are flagged (>= 90 %); single
    # photons are not (random coincidences: < 1 %).
    coincident = rows["coincidence"] > 1
    t_true = np.where(kind == "muon", truth["time_s"][k], np.nan)
    partner = np.array([
        np.any((np.abs(t_true - t_true[i]) <= 1e-6) & (rows["channel"] != rows["channel"][i]))
        for i in range(k.size)
    ])  # fmt: skip
    showers = (kind == "muon") & partner
    assert showers.sum() >= 10
    assert coincident[showers].mean() >= 0.9
    assert coincident[np.isin(kind, ("continuum", "fluorescence"))].mean() < 0.01


def test_background_rate_is_the_injected_continuum(run_b: dict[str, Any]) -> None:
    bg = run_b["out"].results["background"]
    p = run_b["background"]
    # Injected between 1 and 10 keV: the flat continuum and the Cu Ka line (8.0 keV).
    expected = p["continuum_per_keV_cm2_s"] + p["cu_ka_per_cm2_s"] / 9.0
    assert bg["counts"] > 60
    assert abs(bg["rate_per_keV_cm2_s"] - expected) <= 2.0 * bg["rate_err"]  # issue: 2 sigma
    live = BACKGROUND_S * (1.0 - run_b["out"].results["cuts"]["no shield"]["burst"][
        "live_time_fraction_lost"])
    assert bg["live_time_s"] == pytest.approx(live)
    assert bg["area_cm2"] == pytest.approx(8 * 0.05**2)


def test_figures(run_b: dict[str, Any]) -> None:
    figures = run_b["out"].figures
    assert [f.name.split("_", 2)[-1] for f in figures][:5] == [
        "ka_histogram.png", "resolution_map.png", "pulse_chi2_zeta.png", "background.png",
        "efficiency.png",
    ]
    for fig in figures:
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 5000


@pytest.mark.parametrize("name", ["run_a", "run_b"])
def test_trigger_efficiency_reaches_half_where_the_threshold_says(
    name: str, request: pytest.FixtureRequest
) -> None:
    """The pipeline's trigger efficiency (its template injected in its noise records, the
    acquisition's 3 mV edge trigger applied) is 50 % within 10 % of the energy whose pulse's
    largest kernel value is the threshold; the chi2-zeta cut keeps >= 90 % of the pulses
    below 1 keV already (the background band starts there)."""
    pixels = request.getfixturevalue(name)["out"].results["pixels"]
    done = [p for p in pixels.values() if "trigger_efficiency" in p]
    assert len(done) >= 6
    for p in done:
        trig = p["trigger_efficiency"]
        assert trig["e50_eV"] == pytest.approx(trig["expected_e50_eV"], rel=0.10)
        assert trig["e50_eV"] < trig["e90_eV"] < 2.0 * trig["e50_eV"]
        assert p["cut_efficiency"]["e90_eV"] is not None
        assert p["cut_efficiency"]["e90_eV"] < 1000.0


def test_world_settings_swap_the_source_and_mount_the_shield() -> None:
    """`set: {world.KEY: v}` between acquisitions: the array draws its next events with the
    new parameters; a bad value is refused, naming the key."""
    from cryodaq.sim_instruments.mmc_array import mmc_array
    from cryodaq.sim_instruments.world import World

    doc = yaml.safe_load((ROOT / "config" / "rigs" / "maxs30_sim.yaml").read_text())
    world = World(doc["world"])
    array = mmc_array(world)
    assert array.generator.sources and array.generator.background.cu_ka_per_cm2_s > 0
    cu = array.generator.background.cu_ka_per_cm2_s
    world.set_param("detector.source", "none")
    world.set_param("background.shield", "ptfe")
    assert not array.generator.sources
    # PTFE: Cu Ka -85 % (REFERENCE section 1), as the rig's ptfe_cu_reduction says.
    assert array.generator.background.cu_ka_per_cm2_s == pytest.approx(0.15 * cu)
    assert doc["world"]["background"]["shield"] == "none"  # the rig file's mapping untouched
    with pytest.raises(ValueError, match="shield"):
        world.set_param("background.shield", "lead")


@pytest.mark.parametrize("sources", [["am241"], ["fe55", "cs137"], ["fe55", "fe55"], [], None])
def test_bad_calibration_sources_are_refused_in_one_line(sources: Any) -> None:
    with pytest.raises(PipelineError, match=r"^mmc: option sources must list the calibration "
                       r"sources once each, fe55 among them .* got ") as caught:  # fmt: skip
        calibration_lines({"sources": sources, "absorber_thickness_um": 20.0})
    assert "\n" not in str(caught.value)
    assert [ln.name for ln in calibration_lines(
        {"sources": "fe55", "absorber_thickness_um": 20.0})] == ["MnKa", "MnKb"]


def test_learning_from_the_first_records_keeps_every_event(
    run_b: dict[str, Any], tmp_path: Path
) -> None:
    """Each pixel learning from the first 1500 records of its channel (of ~4500) and streaming
    every calibration and background record through what it learned: every record's row is in
    the event list, and the pixels' Ka resolutions and calibrations agree with learning from all
    of them within their errors."""
    inp = run_b["input"]
    counts = [inp.reader.committed("calib", ch) for ch in inp.reader.channels("calib")]
    assert min(counts) > 3 * 1500
    few = PipelineInput(tmp_path, inp.reader, inp.acquisitions,
                        {**inp.options, "learn_records": 1500, "channels": [5, 6]},
                        tmp_path / "figures")  # fmt: skip
    out = get_pipeline("mmc")(few)
    events = np.load(out.results["events_file"])
    full = run_b["events"]
    for group in (0, 1):
        mine = (full["group"] == group) & np.isin(full["channel"], [5, 6])
        assert (events["group"] == group).sum() == mine.sum() > 100
    for name, part in out.results["pixels"].items():
        whole = run_b["out"].results["pixels"][name]
        err = np.hypot(part["fwhm_err_eV"], whole["fwhm_err_eV"])
        assert abs(part["fwhm_eV"] - whole["fwhm_eV"]) < 2 * err, name
        assert part["pulses"] == whole["pulses"], name
        assert part["clean_pulses"] == pytest.approx(whole["clean_pulses"], rel=0.03), name
