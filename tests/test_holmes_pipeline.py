"""The `holmes` pipeline end to end on the simulated HOLMES rig, against what the simulator
injected (`rig.world.detector_array("holmes")`).

Steps as in `config/campaigns/holmes_characterisation.yaml` (flux ramp, tune, bath regulation,
acquisition), run here through the step handlers (`acquisition/campaign/steps/`) so the test
keeps the rig and its truth. Non-default World: seed 11; design (a) at another alpha (32) and
a heavier absorber; (c) at its default working point, where Mn Ka needs more than 0.25 Phi0/us
and slips; both at 120 fluorescence photons/s rich in Mn Ka plus a 20 Bq 163Ho implant. Channels
1 (a) and 3 (c) of the four tones are read for a few seconds: enough for the resolutions, the
pulse shapes, the slips and the time resolution, not for a 5 % Mn Ka width (a few hundred
counts; that check is statistical here, and at 5 % in `test_holmes_analysis`). A second run
(seed 5, design (a) alone at another alpha, rich in Mn Ka) compares the line widths with the
simulator's own expected width. The TES is the electrothermal model: what the runs are held to
is what it predicts (the noise FWHM, the line widths) or, for the pulse-shape fits of large
(saturating) pulses, the same fit of the simulator's own noise-free pulse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cryodaq.acquisition.campaign.steps.acquire import AcquireStep, TriggerSpec, acquire_one
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.campaign.steps.set import SetStep, apply_settings
from cryodaq.acquisition.campaign.steps.tune import TuneHandler, TuneStep
from cryodaq.acquisition.campaign.steps.wait_stable import WaitStableStep, wait_stable
from cryodaq.acquisition.clock import WorldClock
from cryodaq.acquisition.pipelines import PipelineInput, draw_serially
from cryodaq.acquisition.pipelines.holmes import plan
from cryodaq.acquisition.pipelines.holmes_detector import analyze_stored_detector
from cryodaq.acquisition.pipelines.holmes_records import Filtering, detector_records
from cryodaq.acquisition.pipelines.pulses_channel import learn_filter, read_stream
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.analysis.arrival_phase import rising_phase
from cryodaq.analysis.optimal_filter import FWHM_PER_SIGMA
from cryodaq.analysis.pulse_fit import ThreeExponentialFit, fit_three_exponential
from cryodaq.analysis.resonator import channel_budget, guard_factor
from cryodaq.analysis.slew import find_slips
from cryodaq.sim_instruments.tes_signal import TesSignal

ROOT = Path(__file__).resolve().parents[1]
DURATION_S = 8.0
LINES = {"AlKa": 0.2, "ClKa": 0.25, "CaKa": 0.15, "MnKa": 0.35, "MnKb": 0.05}
DESIGNS = {1: "a", 3: "c"}


def _campaign(tmp: Path, seed: int, detectors: dict[str, dict[str, Any]], designs: dict[int, str],
              duration_s: float, options: dict[str, Any]) -> dict[str, Any]:
    """Flux ramp, tune four tones, bath regulation, acquisition of channels `designs` for
    `duration_s`, then the pipeline with `options`: its result, each detector's arrays, the
    truth and the injected parameters (`detectors()`, and `array`: the `TesArray`)."""
    doc = yaml.safe_load((ROOT / "config" / "rigs" / "holmes_sim.yaml").read_text())
    doc["world"]["seed"] = seed
    doc["world"]["detectors"].update(detectors)
    rig_file = tmp / "rig.yaml"
    rig_file.write_text(yaml.safe_dump(doc))
    run_dir = tmp / "run"
    run_dir.mkdir()
    with Rig(load_rig(rig_file)) as rig:
        store = RunStore.create(run_dir / "store", {"rig": rig.spec.doc.data})
        ctx = RunContext(rig, WorldClock(rig), store, run_dir)
        apply_settings(ctx, SetStep(settings={"roach.ramp_frequency": "500 kHz",
                                              "roach.ramp_amplitude": 2}).settings)
        tune = TuneStep(instrument="roach", points=40001, channels=4)
        tuned = TuneHandler().run(None, tune, "0", "", ctx)  # type: ignore[arg-type]
        off = {f"roach.channels.{ch}.enabled": False for ch in (1, 2, 3, 4) if ch not in designs}
        apply_settings(ctx, {**off, "tc.outputs.0.setpoint": "40 mK"})
        wait_stable(ctx, WaitStableStep(sensor="tc.1", tolerance=1e-4, window=30.0,
                                            timeout=1200.0))
        step = AcquireStep(name="calib", source="roach", duration=duration_s,
                           record_length=1024, pretrigger=256,
                           trigger={"all": TriggerSpec(edge_threshold="0.01 Phi0",
                                                       noise_every=0.005)})
        result = acquire_one(ctx, step, "calib", duration_s)
        store.close(result.end_reason)
        array = rig.world.detector_array("holmes")
        truth, params = array.truth(), array.detectors()
        start, rate = array.stream_start_s, array.sample_rate_hz
    reader = RunReader(run_dir / "store")
    inp = PipelineInput(run_dir, reader, ("calib",), {"designs": designs, **options},
                        run_dir / "figures")
    pieces = plan(inp)  # as `run` does, keeping each detector's arrays for the checks
    results = {ch: analyze_stored_detector(pieces.shared, ch) for ch in pieces.keys}
    out = pieces.combine(results, draw_serially)
    return {"out": out, "truth": truth, "params": params, "tuned": tuned, "start": start,
            "rate": rate, "detectors": results, "array": array, "input": inp}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    common = {"model": "tes", "rate_hz": 120.0, "ho163_activity_Bq": 20.0, "lines": LINES}
    detectors = {"a": {**common, "alpha": 32.0, "c_abs_J_per_K": 0.5e-12}, "b": {**common},
                 "c": {**common}, "d": {**common}}
    return _campaign(tmp_path_factory.mktemp("holmes"), 11, detectors, DESIGNS, DURATION_S,
                     {"activity_Bq": 20.0, "pairs": 60})


def numbers(run: dict[str, Any], ch: int) -> dict[str, Any]:
    return run["out"].results["channels"][str(ch)]


def test_channels_budget_and_figures(run: dict[str, Any]) -> None:
    res = run["out"].results
    assert sorted(res["channels"]) == ["1", "3"]
    assert all("error" not in c for c in res["channels"].values()), res["channels"]
    # Measured by the tune from the found resonators (chip: 14 MHz apart, 2 MHz wide, Q
    # scattered by 10 %): g_f within 3 % of the nominal 7, the budget the formula's on it.
    assert res["guard_factor"] == pytest.approx(guard_factor(14e6, 2e6), rel=0.03)
    assert res["channel_budget"] == channel_budget(512e6, 500e3, 2, res["guard_factor"])
    assert res["board_channel_budget"] == 36 and abs(res["channel_budget"] - 36) <= 1
    assert res["resonators_found"] == 33
    names = {p.name.removeprefix("holmes_calib_") for p in run["out"].figures}
    assert names == {"resonators.png", "pulses.png", "spectra.png", "noise_psd.png",
                     "calibration.png", "time_resolution.png", "mn_ka.png"}
    assert all(p.stat().st_size > 10_000 for p in run["out"].figures)
    for c in res["channels"].values():
        for key in ("fwhm_eV", "noise_fwhm_eV", "predicted_fwhm_eV", "calibration", "tau_rise_s",
                    "tau_fast_s", "tau_slow_s", "slow_fraction", "max_slew_phi0_per_us",
                    "slipped_events", "time_resolution_s"):
            assert key in c
    assert res["pileup_fraction"]["value"] == pytest.approx(
        20.0 * res["pileup_fraction"]["time_resolution_s"])


@pytest.mark.parametrize("ch", sorted(DESIGNS))
def test_noise_resolution_matches_injection_and_prediction(run: dict[str, Any], ch: int) -> None:
    """Noise-only FWHM (filter on empty records, through the calibration's slope at zero)
    within 5 % of the filter's prediction, and within 10 % of the model's optimal-filter
    limit (`noise_fwhm_eV` of the parameters, at the board's readout): the second-order
    calibration over 1.5-6.5 keV, as in the paper, extrapolates the saturating response's
    slope to zero only approximately (measured -6.9 % for (a) at alpha 32, within 5 % for
    (c)); `test_tes_electrothermal` holds the filter itself to the limit at 5 %."""
    n, p = numbers(run, ch), run["params"][ch]
    assert p["design"] == DESIGNS[ch]
    assert n["noise_fwhm_eV"] == pytest.approx(p["noise_fwhm_eV"], rel=0.10)
    assert n["noise_fwhm_eV"] == pytest.approx(n["predicted_fwhm_eV"], rel=0.05)


def noise_free_fit(run: dict[str, Any], ch: int, energy_eV: float) -> ThreeExponentialFit:
    """The pipeline's three-exponential fit of the simulator's own large-signal pulse at
    `energy_eV` (no noise; period-averaged as demodulated; 4096 samples, 256 before): what a
    perfect analysis of such pulses measures (saturation shapes them: not the eigenvalues,
    which `test_tes_electrothermal` checks on small pulses)."""
    det = run["array"].detector(run["params"][ch]["resonator"])
    m, rate = det.model, run["rate"]
    signal = TesSignal(m.ss, m.table, m.phi0_per_A, rate, np.random.default_rng(0))
    signal.sigma, signal.gain[:] = 0.0, 0.0  # the noise off: the pulse alone
    flux, _ = signal.block(-256 / rate, 4097, np.array([0.3 / rate]),
                           signal.energy_position(np.array([energy_eV])),
                           np.array([energy_eV]))
    return fit_three_exponential(0.5 * (flux[1:] + flux[:-1]), 256, rate, sigma=1e-5)


@pytest.mark.parametrize("ch", sorted(DESIGNS))
def test_pulse_shape_constants(run: dict[str, Any], ch: int) -> None:
    """Three-exponential fit of the Cl Ka average pulse against the same fit of the
    simulator's noise-free Cl Ka pulse: rise and fast decay within 5 %. The third exponential
    is not pinned here: on these 2 ms records of saturating pulses it is not determined (even
    without noise the fit puts it at 1-3 ms against the 0.5 ms slow mode: saturation
    stretches the head); `test_tes_electrothermal` measures the slow mode where it is."""
    n = numbers(run, ch)
    ref = noise_free_fit(run, ch, 2622.4)
    assert n["tau_rise_s"] == pytest.approx(ref.rise_s, rel=0.05)
    assert n["tau_fast_s"] == pytest.approx(ref.fast_s, rel=0.05)
    assert n["tau_slow_s"] > n["tau_fast_s"]


def _matched(run: dict[str, Any], ch: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated energy, injected energy) of the clean events of channel `ch`: each clean
    trigger matched to the injected arrival at most 5 samples before it."""
    truth, res = run["truth"], run["detectors"][ch]
    mine = truth["channel"] == ch
    arrival = np.ceil((truth["time_s"][mine] - run["start"]) * run["rate"]).astype(int)
    at = res.extra["clean_at"]
    j = np.searchsorted(arrival, at + 1) - 1
    assert np.all((j >= 0) & (at - arrival[j] <= 5))
    return res.calibration.energy(res.amplitudes), truth["energy_eV"][mine][j]


def test_calibration_and_mn_ka_width_of_design_a(run: dict[str, Any]) -> None:
    """Design (a): the calibration puts every identified line where it was injected, event by
    event (median error < 1 eV); the Mn Ka FWHM fitted with the natural shape agrees with the
    width of the events' actual errors (E - E_injected, robust sigma) within 3 fitted sigma,
    and is at least the noise broadening at Mn Ka's pulse height, where the saturating
    response is flatter (`expected_line_fwhm_eV`)."""
    n, p = numbers(run, 1), run["params"][1]
    assert {"ClKa", "CaKa", "MnKa"} <= set(n["calibration"]["lines"])
    energy, injected = _matched(run, 1)
    for e in (2622.4, 3691.7, 5898.853):
        near = np.abs(injected - e) < 15
        assert abs(np.median(energy[near] - injected[near])) < 1.0, e
    mn = np.abs(injected - 5895.0) < 15
    err = energy[mn] - injected[mn]
    actual = 2.3548 * 1.4826 * np.median(np.abs(err - np.median(err)))
    assert abs(n["fwhm_eV"] - actual) < 3 * n["fwhm_err_eV"], (n["fwhm_eV"], actual)
    detector = run["array"].detector(p["resonator"])
    noise_only = detector.expected_line_fwhm_eV(5898.853, run["rate"])
    assert noise_only > 1.1 * p["noise_fwhm_eV"]
    assert n["fwhm_eV"] > noise_only - 2 * n["fwhm_err_eV"]


def test_slipped_events_are_flagged_and_never_calibrated(run: dict[str, Any]) -> None:
    """Design (c) slips at Mn Ka: the slipped events that triggered a record are flagged, a
    flagged record always holds a slipped event, no slipped one is in the calibrated spectrum,
    and Mn Ka is mostly gone from it; design (a) neither slips nor is flagged."""
    truth = run["truth"]
    for ch, design in DESIGNS.items():
        res = run["detectors"][ch]
        mine = truth["channel"] == ch
        arrival = np.ceil((truth["time_s"][mine] - run["start"]) * run["rate"]).astype(int)
        slipped = truth["slipped"][mine]

        def near(at: np.ndarray, arrival: np.ndarray = arrival) -> np.ndarray:
            """Events whose arrival is at most 5 samples before a trigger at `at`."""
            j = np.searchsorted(arrival, np.asarray(at) + 1) - 1
            hit = np.zeros(arrival.size, dtype=bool)
            hit[j[(j >= 0) & (np.asarray(at) - arrival[np.clip(j, 0, None)] <= 5)]] = True
            return hit

        flagged, clean = near(res.extra["slipped_at"]), near(res.extra["clean_at"])
        assert not np.any(clean & slipped)
        assert np.isin(res.extra["slipped_at"], res.extra["clean_at"]).sum() == 0
        # A record flagged for an event that did not slip holds another one that did (piled
        # up after the trigger, within the record).
        slips_at = arrival[slipped]
        for at in res.extra["slipped_at"]:
            assert np.any((slips_at >= at - 256) & (slips_at < at + 768)), at
        if design == "a":
            assert not slipped.any() and not flagged.any()
            continue
        recorded = slipped & near(res.extra["pulse_at"])  # triggered: a record of its own
        assert recorded.sum() > 50
        assert flagged[recorded].mean() > 0.95, flagged[recorded].mean()
        assert numbers(run, ch)["slipped_events"] > 0.5 * recorded.sum()
        # Most Mn Ka events are lost (Table 2: no Mn Ka width for design c): against Cl Ka,
        # far fewer are left than were injected.
        injected = {k: np.sum(truth["line"][mine] == k) for k in ("MnKa", "ClKa")}
        lines = numbers(run, ch)["lines"]
        left = lines.get("MnKa", {"counts": 0.0})["counts"] / lines["ClKa"]["counts"]
        assert left < 0.3 * injected["MnKa"] / injected["ClKa"]
        assert numbers(run, ch)["max_slew_phi0_per_us"] < 0.25  # Cl Ka still follows


def test_time_resolution_at_the_papers_settings(run: dict[str, Any]) -> None:
    """Design (a) at 15 us rise and 500 kS/s: Wiener-filter pairs resolved at <= 3 us."""
    n = numbers(run, 1)
    assert 1e-6 < n["time_resolution_s"] <= 3e-6
    assert n["pileup_fraction"] == pytest.approx(20.0 * n["time_resolution_s"])


#: Design (a) at another alpha and load, alone on channel 1, rich in Mn Ka and without
#: 163Ho: enough Mn Ka events for its width at ~2 %.
WIDE = {"model": "tes", "alpha": 30.0, "load_ohm": 0.5e-3, "rate_hz": 150.0,
        "ho163_activity_Bq": 0.0, "lines": {"ClKa": 0.15, "CaKa": 0.15, "MnKa": 0.6, "MnKb": 0.1}}
WIDE_DURATION_S = 40.0


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _campaign(tmp_path_factory.mktemp("holmes_wide"), 5, {"a": WIDE}, {1: "a"},
                     WIDE_DURATION_S,
                     {"lines": ["ClKa", "CaKa", "MnKa", "MnKb"], "pairs": 20,
                      "shape_line": "MnKa"})


def _error_fwhm(err: np.ndarray) -> float:
    """FWHM of per-event energy errors: 2.3548 x their std within 5 robust sigma (the
    errors are Gaussian; the clip only drops a stray mis-matched event)."""
    dev = err - np.median(err)
    keep = np.abs(dev) < 5 * 1.4826 * np.median(np.abs(dev))
    return 2.3548 * float(np.std(err[keep]))


def test_mn_ka_width_is_the_expected(wide_run: dict[str, Any]) -> None:
    """Design (a) at alpha 30: each clean event's calibrated minus injected energy has the
    FWHM the simulator states for the line (`expected_line_fwhm_eV`: the model's noise FWHM
    through the saturating response's slope at the pulse height) within 8 % (~1400 Mn Ka
    events: statistics +-1.9 %; the stated width takes the peak's slope for the filter's and
    the pulse's shape as fixed: measured 3.28 eV against 3.51 stated, -6.8 %, the line fit
    3.42 +- 0.24 eV). Pooled over the lines (each line's
    calibration offset taken out, each error over its line's expected sigma) within 10 %.
    The fitted Mn Ka FWHM is held to 8 % plus 2 fitted sigma."""
    detector = wide_run["array"].detector(wide_run["params"][1]["resonator"])
    rate = wide_run["rate"]
    energy, injected = _matched(wide_run, 1)
    err = energy - injected
    mn = np.abs(injected - 5895.0) < 15
    expected = detector.expected_line_fwhm_eV(5898.853, rate)
    assert mn.sum() > 1200
    assert 0.92 * expected < _error_fwhm(err[mn]) < 1.08 * expected, (_error_fwhm(err[mn]),
                                                                       expected)
    grid = np.arange(2000.0, 7000.0, 50.0)
    per_e = np.array([detector.expected_line_fwhm_eV(e, rate) for e in grid])
    sigma = np.interp(injected, grid, per_e) / FWHM_PER_SIGMA
    pooled = []
    for line_eV in (2622.4, 3691.7, 5895.0, 6490.0):
        near = np.abs(injected - line_eV) < 30
        pooled.append((err[near] - np.median(err[near])) / sigma[near])
    assert 0.9 < _error_fwhm(np.concatenate(pooled)) / FWHM_PER_SIGMA < 1.1
    n = numbers(wide_run, 1)
    assert abs(n["fwhm_eV"] - expected) < 0.08 * expected + 2 * n["fwhm_err_eV"], (
        n["fwhm_eV"], n["fwhm_err_eV"], expected)


def test_time_constants_on_mn_ka(wide_run: dict[str, Any]) -> None:
    """The three-exponential fit of the Mn Ka average pulse (~1400 pulses) against the same
    fit of the simulator's noise-free Mn Ka pulse: rise and fast decay within 5 % (the third
    exponential: see `test_pulse_shape_constants`)."""
    n = numbers(wide_run, 1)
    assert n["shape_line"] == "MnKa"
    ref = noise_free_fit(wide_run, 1, 5898.853)
    for key, value in (("tau_rise_s", ref.rise_s), ("tau_fast_s", ref.fast_s)):
        assert n[key] == pytest.approx(value, rel=0.05), (key, n[key], value)


def test_streamed_records_equal_the_in_memory_ones(run: dict[str, Any]) -> None:
    """Learned on a third of design (c)'s records, the streamed pass gives for every pulse
    record of the store what the in-memory formulas give on all of them: the slip flag, the
    filtered amplitude, the arrival phase and the baseline; and the pipeline learning from a
    third counts the same slips and nearly the same clean pulses, with the same line widths
    and centres (within their errors)."""
    inp = run["input"]
    pieces = plan(inp)
    geo, scale = pieces.shared.geo, pieces.shared.geo["scale"]
    whole = read_stream(inp.reader, ["calib"], 3)
    n = whole.pulses.shape[0]
    held = read_stream(inp.reader, ["calib"], 3, n // 3)
    assert held.pulses.shape[0] == n // 3
    ln = learn_filter(held, geo, pieces.shared.opts)
    x = whole.pulses.astype(np.float64) * scale
    template = ln.avg.template  # any unit-peak template serves the comparison
    how = Filtering(template, ln.filt, 1, scale, 1000)
    rec = detector_records(inp.reader, held, 3, ln, how, geo)
    assert np.array_equal(rec.slipped, find_slips(x, geo["pre"], template).slipped)
    np.testing.assert_allclose(rec.amplitude, ln.filt.apply(x), rtol=1e-12)
    np.testing.assert_array_equal(rec.phase, rising_phase(x, geo["pre"], ln.avg.sign))
    np.testing.assert_allclose(rec.baseline, x[:, : geo["pre"]].mean(axis=1), rtol=1e-12)
    assert rec.noise_baseline.size == whole.noise.shape[0]
    assert n // 3 < rec.clean.sum() < n
    few = plan(PipelineInput(inp.run_dir, inp.reader, ("calib",),
                             {**inp.options, "learn_records": n // 3}, inp.figures_dir))
    part = analyze_stored_detector(few.shared, 3).numbers
    full = numbers(run, 3)
    assert part["slipped_flagged"] == full["slipped_flagged"] > 0
    assert part["pulse_triggers"] == full["pulse_triggers"] == whole.edge_triggers
    assert part["pulses"] == pytest.approx(full["pulses"], rel=0.03)
    assert part["noise_fwhm_eV"] == pytest.approx(full["noise_fwhm_eV"], rel=0.2)
    assert set(part["lines"]) == set(full["lines"]) and len(full["lines"]) >= 3
    for name, line in full["lines"].items():  # the same events: far closer than their errors
        other = part["lines"][name]
        assert abs(other["fwhm_eV"] - line["fwhm_eV"]) < 2 * line["fwhm_err_eV"], name
        assert abs(other["centre_eV"] - line["centre_eV"]) < 0.2 * line["fwhm_eV"], name
