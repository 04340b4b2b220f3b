"""The `pulses` pipeline end to end on a run of the simulated maXs30 rig, against what the
simulator injected.

The rig is maXs30 with non-default detector and ADC parameters (250 kS/s, 20 us rise, 1 ms
decay, 25 Hz, more flux noise with a 1/f knee, a line with an extra 8 eV Gaussian width), 8
channels, 10 s. The expected resolution is computed here from the simulator's own noise
parameters and the FLL and ADC scales: detector flux noise (white + 1/f), SQUID amplifier
noise, ADC noise and quantisation, through the REFERENCE section 6 integral with the pulse's
continuous Fourier transform. The FLL's low-pass (4.6 MHz) is far above the 125 kHz Nyquist
frequency and is left out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cryodaq.acquisition.pipelines import (
    PipelineError,
    PipelineInput,
    get_pipeline,
    pipeline_options,
    pulses_channel,
)
from cryodaq.acquisition.pipelines.pulses_apply import apply_pass
from cryodaq.acquisition.pipelines.report import write_report
from cryodaq.acquisition.pipelines.report_numbers import fmt
from cryodaq.acquisition.pipelines.stored_runs import geometry
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.acquisition.stream.engine import Acquisition
from cryodaq.acquisition.stream.online_analysis import StoredFilter
from cryodaq.acquisition.stream.sources import AdcSource
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig
from cryodaq.analysis.noise_models import white_plus_one_over_f
from cryodaq.analysis.optimal_filter import apply_weights
from cryodaq.analysis.pulse_shapes import peak_norm
from cryodaq.analysis.record_apply import row_means, template_residuals
from cryodaq.analysis.record_cuts import noise_record_stats, rise_after_peak
from cryodaq.sim_instruments.adc_model import FULL_SCALE

ROOT = Path(__file__).resolve().parents[1]
FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))
CHANNELS = range(1, 9)
DURATION_S = 10.0
LENGTH, PRE = 1024, 256
LINE_EV, EXTRA_FWHM_EV = 5898.75, 8.0
DETECTOR = {
    "rate_hz": 25.0,
    "rise_s": 20e-6,
    "decay_s": 1e-3,
    "phi0_per_eV": 1.2e-5,
    "noise_phi0_per_rthz": 0.8e-6,
    "noise_knee_hz": 20.0,
    "lines": [
        {"energy_eV": LINE_EV, "weight": 0.9, "fwhm_eV": EXTRA_FWHM_EV},
        {"energy_eV": 6490.45, "weight": 0.1, "fwhm_eV": EXTRA_FWHM_EV},
    ],
}


def expected_baseline_fwhm_eV(sim: dict[str, Any]) -> float:
    """Optimal-filter FWHM (eV) from the injected noise and the signal chain's scales."""
    fs, det = sim["fs"], DETECTOR
    codes_per_phi0 = sim["feedback_ohm"] * sim["feedback_A_per_phi0"] * sim["codes_per_V"]
    f = np.fft.rfftfreq(LENGTH, 1.0 / fs)[1:]
    psd = white_plus_one_over_f(
        f, det["noise_phi0_per_rthz"] * codes_per_phi0, det["noise_knee_hz"]
    )
    white_per_sample = (sim["amplifier_V"] * sim["codes_per_V"]) ** 2 + sim["adc_lsb"] ** 2 + 1 / 12
    psd = psd + 2.0 * white_per_sample / fs  # white sample noise sigma^2 -> one-sided density
    w = 2j * np.pi * f
    end = (LENGTH - PRE) / fs
    unit = sum(
        sign * (1.0 - np.exp(-(1.0 / tau + w) * end)) / (1.0 / tau + w)
        for sign, tau in ((1.0, det["decay_s"]), (-1.0, det["rise_s"]))
    ) / peak_norm(det["rise_s"], det["decay_s"])
    p = unit * det["phi0_per_eV"] * codes_per_phi0  # codes per eV
    c = np.ones(f.size)
    c[-1] = 0.5
    info = np.sum(c * 4.0 * np.abs(p) ** 2 / psd) * fs / LENGTH
    return FWHM / np.sqrt(info)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("pulses")
    doc = yaml.safe_load((ROOT / "config" / "rigs" / "mmc_simple_sim.yaml").read_text())
    doc["world"]["seed"] = 7
    doc["world"]["detectors"]["mmc"] = DETECTOR
    adc = doc["instruments"]["adc1"]["settings"]
    adc["sample_rate"] = "250 kHz"
    adc["channels"] = {"1-16": {"enabled": False}, "1-8": {"enabled": True}}
    rig_file = tmp / "rig.yaml"
    rig_file.write_text(yaml.safe_dump(doc))
    trigger = ChannelTrigger(edge_threshold=150, auto_period=LENGTH)  # contiguous noise records
    with Rig(load_rig(rig_file)) as rig:
        fll, adc1 = rig.open("fll"), rig.open("adc1")
        world = rig.world
        source = AdcSource(adc1, 1 << 15, clock_ns=lambda: int(world.now() * 1e9))
        config = TriggerConfig(LENGTH, PRE, dict.fromkeys(CHANNELS, trigger))
        store = RunStore.create(tmp / "run", {"rig": rig.spec.doc.data})
        result = Acquisition(source, config, name="calib", store=store, duration_s=DURATION_S).run()
        store.close(result.end_reason)
        squid = next(d.model for d in rig.library.physics.values() if d.model.name == "fll")
        adc_model = next(d.model for d in rig.library.physics.values() if d.model.name == "adc1")
        sim = {
            "fs": adc1.sample_rate,
            "codes_per_V": FULL_SCALE / adc1.input_range,
            "feedback_ohm": fll.channel(1).feedback_resistor,
            "feedback_A_per_phi0": squid.feedback_A_per_phi0,
            "amplifier_V": squid.amplifier_noise_V,
            "adc_lsb": adc_model.noise_lsb,
        }
    reader = RunReader(tmp / "run")
    inp = PipelineInput(tmp, reader, ("calib",), {"line_eV": LINE_EV}, tmp / "figures")
    out = get_pipeline("pulses")(inp)
    return {"dir": tmp, "reader": reader, "out": out, "sim": sim, "holdoff": LENGTH / sim["fs"]}


def channel_values(run: dict[str, Any], key: str) -> np.ndarray:
    return np.array([run["out"].results["channels"][str(c)][key] for c in CHANNELS])


def test_every_channel_is_analysed(run: dict[str, Any]) -> None:
    channels = run["out"].results["channels"]
    assert sorted(channels) == sorted(str(c) for c in CHANNELS)
    assert all("error" not in c for c in channels.values()), channels
    assert run["out"].results["mean"]["channels"] == len(CHANNELS)
    assert np.all(channel_values(run, "pulses") > 150)
    assert np.all(channel_values(run, "noise_records") > 1500)


def test_baseline_and_predicted_resolution_match_the_injected_noise(run: dict[str, Any]) -> None:
    expected = expected_baseline_fwhm_eV(run["sim"])
    baseline = channel_values(run, "baseline_fwhm_eV")
    predicted = channel_values(run, "predicted_fwhm_eV")
    # The prediction rests on the PSD estimate of the lowest bins (the first, 244 Hz, holds
    # half the information): ~1800 noise records give ~1 % per channel. The baseline width
    # from as many records: 1.7 % per channel, plus the slow (1/f) noise each channel happens
    # to get in 10 s (~2 %; predicted and baseline move together). Per channel 6 % and 8 %,
    # the means over 8 channels 3 %.
    assert np.allclose(predicted, expected, rtol=0.06)
    assert np.allclose(baseline, expected, rtol=0.08)
    assert np.mean(predicted) == pytest.approx(expected, rel=0.03)
    assert np.mean(baseline) == pytest.approx(expected, rel=0.03)
    assert np.mean(baseline) == pytest.approx(np.mean(predicted), rel=0.03)


def test_line_width_is_the_quadrature_sum(run: dict[str, Any]) -> None:
    """The fitted Gaussian width of a line injected with an extra 8 eV FWHM is the quadrature
    sum with the noise. ~170 Ka counts per channel give 5-6 % per channel (checked as pulls),
    ~2 % on the mean over 8 channels: the mean must agree within 7 % (3.5 sigma)."""
    expected = np.hypot(EXTRA_FWHM_EV, expected_baseline_fwhm_eV(run["sim"]))
    fwhm, err = channel_values(run, "fwhm_eV"), channel_values(run, "fwhm_err_eV")
    assert np.all(err < 0.1 * fwhm)
    pulls = (fwhm - expected) / err
    assert np.mean(pulls**2) < 3.0, pulls  # chi2 / 8 dof: p ~ 0.003 at 3.0
    assert np.mean(fwhm) == pytest.approx(expected, rel=0.07)


def test_rate_and_pulse_shape_match_the_injected_ones(run: dict[str, Any]) -> None:
    rate = channel_values(run, "rate_hz")
    triggers = channel_values(run, "pulse_triggers")
    live = channel_values(run, "live_time_s")
    assert np.all(live == DURATION_S)
    injected, holdoff = DETECTOR["rate_hz"], run["holdoff"]
    sigma = np.sqrt(triggers) / live
    # No trigger within the holdoff after a trigger (non-extending dead time).
    seen = injected / (1.0 + injected * holdoff)
    assert np.all(np.abs(rate - seen) < 3 * sigma)
    assert abs(rate.mean() - seen) < 3 * np.sqrt(triggers.sum()) / live.sum()
    corrected = channel_values(run, "rate_deadtime_corrected_hz")
    assert abs(corrected.mean() - injected) < 3 * np.sqrt(triggers.sum()) / live.sum()
    assert np.allclose(channel_values(run, "rise_s"), DETECTOR["rise_s"], rtol=0.05)
    assert np.allclose(channel_values(run, "decay_s"), DETECTOR["decay_s"], rtol=0.05)


def test_stored_filter_gives_energies_online(run: dict[str, Any]) -> None:
    path = Path(run["out"].results["filter_file"])
    stored = StoredFilter.load(path, CHANNELS)
    d = run["reader"].read("calib", 3, ["records", "trigger_kind", "pretrig_mean"])
    edge = d["trigger_kind"] == 1
    _, energy = stored.filters[3].energies(d["records"][edge], d["pretrig_mean"][edge])
    near = energy[np.abs(energy - LINE_EV) < 50]
    assert near.size > 100
    assert np.median(near) == pytest.approx(LINE_EV, abs=2.0)


def test_figures_and_report(run: dict[str, Any]) -> None:
    figures = run["out"].figures
    assert len(figures) == 4
    for fig in figures:
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 5000
    rels = [fig.relative_to(run["dir"]).as_posix() for fig in figures]
    summary = {
        "campaign": "pulses <test>",
        "steps": [{"kind": "analyze", "name": "analyze pulses",
                   "result": {"pipeline": "pulses", "figures": [str(f) for f in figures]}}],
        "analyze": {"analyze pulses": run["out"].results},
        "figures": rels,
    }  # fmt: skip
    report = write_report(run["dir"], summary)
    text = report.read_text()
    assert report == run["dir"] / "report.html"
    # the figures embedded in the pipeline's order, after the headline of every channel
    assert re.findall(r'<span class="name">([^<]+)</span>', text) == rels
    assert text.count('<img src="data:image/png;base64,') == len(figures)
    for ch in run["out"].results["channels"].values():
        if "error" not in ch:
            assert f"<td>{fmt(ch['fwhm_eV'], ch['fwhm_err_eV'])}</td>" in text
    assert text.find('<table class="headline">') < text.find("<figure")
    assert "pulses &lt;test&gt;" in text and "<test>" not in text
    assert "baseline_fwhm_eV" in text and "fwhm_err_eV" in text  # every result, in the facts


def test_channels_without_enough_records_are_reported(run: dict[str, Any]) -> None:
    inp = PipelineInput(
        run["dir"], run["reader"], ("calib",), {"min_pulses": 10_000, "channels": [1, 2]},
        run["dir"] / "figures-none",
    )  # fmt: skip
    out = get_pipeline("pulses")(inp)
    assert set(out.results["channels"]) == {"1", "2"}
    for ch in out.results["channels"].values():
        assert "need 10000" in ch["error"]
    assert out.results["mean"]["channels"] == 0 and out.figures == []


def test_an_option_that_must_be_a_number_is_one_clear_line() -> None:
    """What `cryodaq validate` and the analyze step say about `line_eV: [1, 2]` (before: the
    float() TypeError, naming no option); null stays allowed (`artefact_hz: null`: none)."""
    line = r"^pulses: option line_eV must be a number, got \[1, 2\]$"
    with pytest.raises(PipelineError, match=line):
        pipeline_options("pulses")({"line_eV": [1, 2]})
    with pytest.raises(PipelineError, match="holmes: option smooth_samples must be a number"):
        pipeline_options("holmes")({"smooth_samples": "two"})
    assert pipeline_options("holmes")({"artefact_hz": None, "pairs": 30})["artefact_hz"] is None


def learned_channel(
    run: dict[str, Any], ch: int, limit: int | None
) -> tuple[pulses_channel.Stream, pulses_channel.Stream, pulses_channel.Learned, dict]:
    """Channel `ch`'s whole stream, the stream the learn step holds with `limit`, what it
    learned from that, and the geometry."""
    reader = run["reader"]
    inp = PipelineInput(run["dir"], reader, ("calib",), {}, run["dir"] / "unused")
    geo = geometry(inp, ["calib"], "pulses")
    opts = pipeline_options("pulses")({"line_eV": LINE_EV})
    whole = pulses_channel.read_stream(reader, ["calib"], ch)
    held = pulses_channel.read_stream(reader, ["calib"], ch, limit)
    return whole, held, pulses_channel.learn_filter(held, geo, opts), geo


@pytest.mark.parametrize("ch", [1, 6])
def test_streamed_apply_pass_equals_the_in_memory_one(run: dict[str, Any], ch: int) -> None:
    """Every record streamed from the store through the learned cuts and filter gives the
    records and amplitudes the learn step's own selection gives in memory (up to rounding)."""
    whole, _, ln, geo = learned_channel(run, ch, None)
    applied = apply_pass(run["reader"], whole, ch, ln, geo)
    expected_p = ln.filt.apply(whole.pulses[ln.p_ok])
    expected_n = ln.filt.apply(whole.noise[ln.n_ok])
    assert 150 < applied.clean_pulses().size == expected_p.size < whole.pulses.shape[0]
    assert 1500 < applied.clean_noise().size == expected_n.size < whole.noise.shape[0]
    scale = np.abs(expected_p).max()
    np.testing.assert_allclose(applied.clean_pulses(), expected_p, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(applied.clean_noise(), expected_n, rtol=0, atol=1e-12 * scale)


def test_learning_from_the_first_records_applies_its_cuts_to_all(run: dict[str, Any]) -> None:
    """With `learn_records` below the channel's records, the learn step holds only the first
    ones (every pulse trigger still counts for isolation), and the apply pass keeps exactly the
    records of the whole run that pass the learned cuts, computed here in memory."""
    whole, held, ln, geo = learned_channel(run, 2, 80)
    assert held.pulses.shape[0] == held.noise.shape[0] == 80
    np.testing.assert_array_equal(held.pulses, whole.pulses[:80])
    np.testing.assert_array_equal(held.noise, whole.noise[:80])
    assert held.edge_triggers == whole.edge_triggers
    c, pre = ln.cuts, geo["pre"]
    iso_p, iso_n = whole.isolation(c.guard, pre, geo["length"])
    x = whole.pulses
    resid = template_residuals(x, row_means(x, 0, pre), c.pileup.template)
    p_ok = iso_p & c.pileup.rise.contains(rise_after_peak(x, c.pileup.sign))
    p_ok &= c.pileup.residual.contains(resid)
    rms, dev = noise_record_stats(whole.noise)
    n_ok = iso_n & c.noise.passed(rms, dev)
    n_ok[n_ok] = c.noise_amplitude.contains(apply_weights(whole.noise[n_ok], c.first_weights))
    applied = apply_pass(run["reader"], held, 2, ln, geo)
    assert p_ok.sum() > 150 and n_ok.sum() > 1500  # far more than the 80 learned from
    np.testing.assert_allclose(applied.clean_pulses(), ln.filt.apply(x[p_ok]), rtol=1e-9)
    np.testing.assert_allclose(applied.clean_noise(), ln.filt.apply(whole.noise[n_ok]), rtol=0,
                               atol=1e-9 * np.abs(applied.clean_pulses()).max())  # fmt: skip
    assert applied.records == run["reader"].committed("calib", 2)


def test_a_pipeline_learning_from_few_records_resolves_the_line(run: dict[str, Any]) -> None:
    """The pipeline with `learn_records: 100` counts every clean pulse of the run, and its
    resolution stays near the one learned from all records."""
    inp = PipelineInput(run["dir"], run["reader"], ("calib",),
                        {"line_eV": LINE_EV, "learn_records": 100, "channels": [3],
                         "save_filter": False}, run["dir"] / "figures-learn")  # fmt: skip
    few = get_pipeline("pulses")(inp).results["channels"]["3"]
    full = run["out"].results["channels"]["3"]
    assert few["pulses"] >= 0.95 * full["pulses"]
    assert few["fwhm_eV"] == pytest.approx(full["fwhm_eV"], rel=0.1)
    assert few["baseline_fwhm_eV"] == pytest.approx(full["baseline_fwhm_eV"], rel=0.1)


@pytest.mark.parametrize("value", [5, 20.5, "all"])
def test_learn_records_out_of_range_is_one_line(value: Any) -> None:
    with pytest.raises(PipelineError, match=r"^pulses: .*learn_records") as err:
        pipeline_options("pulses")({"learn_records": value})
    assert "\n" not in str(err.value)


def test_too_few_clean_records_among_those_held_says_learn_records(run: dict[str, Any]) -> None:
    """A channel failing its minimum only because `learn_records` held too few says so."""
    inp = PipelineInput(run["dir"], run["reader"], ("calib",),
                        {"learn_records": 30, "min_pulses": 30, "channels": [1],
                         "save_filter": False}, run["dir"] / "figures-few")  # fmt: skip
    error = get_pipeline("pulses")(inp).results["channels"]["1"]["error"]
    assert re.fullmatch(r"only \d+ clean pulses in the first 30 held \(learn_records\) "
                        r"\(need 30\)", error), error  # fmt: skip
