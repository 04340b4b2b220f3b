"""The simulated HOLMES microwave chain through the real uMUX driver: demodulation accuracy,
slips above the slew-rate limit, TES noise against the injected resolution, the 163Ho and
fluorescence sources, the bath coupling through the operating point, raw mode and the truth
API. The TES is the electrothermal model (`tes_device`); what it predicts (heights, slews,
noise FWHM, the operating point at another bath) is what these runs are held to."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats

from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.analysis.ho163 import ho163_bin_probabilities
from cryodaq.analysis.optimal_filter import FWHM_PER_SIGMA, noise_psd, optimal_filter
from cryodaq.analysis.resonator import find_dips
from cryodaq.drivers.errors import InstrumentError
from cryodaq.drivers.umux import UmuxBoard
from cryodaq.sim_instruments.tes_model import NOISE_RECORD, TesArray, TesDetector

ROOT = Path(__file__).resolve().parents[1]
RIG = ROOT / "config" / "rigs" / "holmes_sim.yaml"


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def holmes_rig(tmp: Path, update: dict[str, Any]) -> Rig:
    """The HOLMES rig file with `update` merged in (non-default parameters)."""
    data = _merge(yaml.safe_load(RIG.read_text()), update)
    path = tmp / "holmes_test.yaml"
    path.write_text(yaml.safe_dump(data))
    return Rig(load_rig(path))


def tune(board: UmuxBoard, channels: int) -> np.ndarray:
    """Sweep with the ramp running and put tones 1.. on the first dips (as `tune` does)."""
    sweep = board.sweep(-255e6, 255e6, 5101)  # 100 kHz steps
    dips = find_dips(sweep.baseband_hz, sweep.s21)
    for ch in range(1, channels + 1):
        board.set_tone(ch, float(dips.freq_hz[ch - 1]))
    return dips.freq_hz


def regulate(rig: Rig) -> None:
    """Open the temperature controller (PI loop on the holder at 40 mK) and let it settle."""
    rig.open("tc")
    assert rig.world is not None
    rig.world.advance_to(150.0)


class FluxWaveform:
    """A test-only detector: a known flux waveform (Phi0) on one SQUID."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def block(self, t0: float, n: int, rate_hz: float) -> np.ndarray:
        return self.fn(t0 + np.arange(n) / rate_hz)


def _inject(board_model: Any, resonator: int, fn: Any) -> None:
    board_model._sources[resonator] = FluxWaveform(fn)  # test-only: replaces the detector
    board_model.kinds = ["plain"]
    board_model.world.params.setdefault("detectors", {})["plain"] = {
        "rate_hz": 0.0, "noise_phi0_per_rthz": 0.0}


def _model(rig: Rig) -> Any:
    assert rig.library is not None
    return next(d.model for d in rig.library.physics.values()
                if d.model is not None and d.model.name == "roach")


# -- demodulation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("f_ramp", "n_phi0", "drop"), [(500e3, 2, 1), (250e3, 3, 2)])
def test_demodulator_recovers_an_injected_flux_waveform(tmp_path: Path, f_ramp: float,
                                                        n_phi0: int, drop: int) -> None:
    """A 1.3 Phi0 peak-to-peak sine plus a 0.4 Phi0 step train at nominal (HEMT) noise comes
    back to <= 1 % Phi0 rms (issue 6)."""
    update = {"world": {"seed": 5}, "instruments": {"roach": {
        "settings": {"ramp_frequency": f_ramp, "ramp_amplitude": n_phi0},
        "sim": {"reset_drop_samples": drop}}}}
    with holmes_rig(tmp_path, update) as rig:
        board = rig.open("roach")
        tune(board, 1)
        model = _model(rig)
        k = model.resonator_of(1)

        def wave(t: np.ndarray) -> np.ndarray:
            return 0.65 * np.sin(2 * np.pi * 700.0 * t) + 0.4 * (np.floor(t * 300.0) % 2)

        _inject(model, k, wave)
        board.start()
        block = board.fetch(int(0.02 * f_ramp))
        t = model.stream.start_s + np.arange(block.phase.shape[1] + 1) / f_ramp
        edges = wave(t)
        truth = 0.5 * (edges[:-1] + edges[1:])  # the flux, linear in each period, averaged
        err = block.flux_phi0()[0] - truth
        err -= np.median(err)  # static flux and the channel's phase offset
        # Measured 0.39 % and 0.55 % Phi0 rms (noise ~0.03 % and the flux-dependent error of
        # the samples dropped at the resets); the bound: 1 %.
        assert np.sqrt(np.mean(err**2)) < 0.01
        assert np.max(np.abs(err)) < 0.03


@pytest.mark.parametrize(("f_ramp", "limit"), [(500e3, 0.25), (250e3, 0.125)])
def test_slips_above_half_a_quantum_per_ramp_period(tmp_path: Path, f_ramp: float,
                                                    limit: float) -> None:
    """A flux rising at 0.8 x the limit (Phi0/us = f_ramp/2 per s) is followed; at 1.2 x it
    unwraps onto the wrong branch every period: the slope comes out as (r - 1 quantum per
    period), which is how the demodulator slips flux quanta."""
    update = {"instruments": {"roach": {"settings": {"ramp_frequency": f_ramp}}}}
    with holmes_rig(tmp_path, update) as rig:
        board = rig.open("roach")
        tune(board, 1)
        model = _model(rig)
        k = model.resonator_of(1)
        rates = {0.8: None, 1.2: None}
        for factor in rates:
            slope = factor * limit * 1e6  # Phi0/s

            def ramp(t: np.ndarray, slope: float = slope) -> np.ndarray:
                return slope * ((t - model.stream.start_s) % 200e-6)  # 200 us ramps, resets

            board.stop()
            _inject(model, k, ramp)
            model._tails.clear()
            board.start()
            flux = board.fetch(int(2e-3 * f_ramp)).flux_phi0()[0]
            inside = (np.arange(flux.size) % int(200e-6 * f_ramp)) > 0
            steps = np.diff(flux)[inside[1:]]
            rates[factor] = float(np.median(steps)) * f_ramp / 1e6
        assert rates[0.8] == pytest.approx(0.8 * limit, rel=0.02)
        # 1.2 x 0.5 = 0.6 quanta per period unwraps as -0.4: slipped by one quantum each time.
        assert rates[1.2] == pytest.approx(1.2 * limit - 2 * limit, rel=0.02)


def test_channel_budget_refusal_names_the_formula(tmp_path: Path) -> None:
    update = {"instruments": {"roach": {"settings": {"ramp_frequency": 400e3,
                                                      "ramp_amplitude": 3}}}}
    with holmes_rig(tmp_path, update) as rig:
        board = rig.open("roach")
        assert board.channel_budget == 30  # 512 MHz / (2 x 400 kHz x 3 x 7) = 30.5
        for ch in range(1, 31):
            board.channel(ch).enabled = True
        with pytest.raises(InstrumentError, match=r"31 channels exceed the budget "
                           r"f_ADC/\(2 f_ramp n_Phi0 g_f\) = 512 MHz/\(2 x 400 kHz x 3 x 7\) = 30"):
            board.channel(31).enabled = True


def test_random_dac_phases_keep_the_comb_below_full_scale(tmp_path: Path) -> None:
    """32 tones of 4 % full scale: in phase they would sum to 1.28 x full scale; the board's
    random phases keep the peak below it (measured 0.37). At 20 % the comb would clip
    (measured peak 1.86) and the board refuses to start."""
    with holmes_rig(tmp_path, {"world": {"seed": 2}}) as rig:
        board = rig.open("roach")
        model = _model(rig)
        for ch in range(1, 33):
            board.set_tone(ch, -250e6 + 15e6 * ch, amplitude=0.04)
        assert 32 * 0.04 > 1.0 and model.comb_peak() < 0.6
        board.start()
        board.stop()
        for ch in range(1, 33):
            board.channel(ch).amplitude = 0.2
        with pytest.raises(InstrumentError, match=r"-221.*comb peaks at [\d.]+ x full scale"):
            board.start()


# -- the TES array: one acquisition, many checks ------------------------------------------------


@pytest.fixture(scope="module")
def array_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Designs a-d on channels 1-4 (c at its default gain slips on Mn Ka), 1.2 s with both
    sources; the 8 MHz channel rate (16 samples per period) halves the cost."""
    update = {"world": {"seed": 7, "detectors": {
        "a": {"rate_hz": 60.0, "ho163_activity_Bq": 20.0},
        "b": {"rate_hz": 60.0, "ho163_activity_Bq": 20.0, "alpha": 20.0},
        "c": {"rate_hz": 60.0, "ho163_activity_Bq": 20.0},
        "d": {"rate_hz": 60.0, "ho163_activity_Bq": 20.0}}},
        "instruments": {"roach": {"sim": {"channel_rate_hz": 8e6}}}}
    with holmes_rig(tmp_path_factory.mktemp("holmes"), update) as rig:
        regulate(rig)
        board = rig.open("roach")
        tune(board, 4)
        board.start()
        rate = board.ramp_frequency
        flux = np.concatenate([board.fetch(100_000).flux_phi0() for _ in range(6)], axis=1)
        array = rig.world.detector_array("holmes")
        yield {"flux": flux, "rate": rate, "array": array, "model": _model(rig),
               "truth": array.truth(), "detectors": array.detectors()}


def test_truth_api(array_run: dict[str, Any]) -> None:
    truth, detectors = array_run["truth"], array_run["detectors"]
    n = truth["time_s"].size
    assert n > 200
    for key in ("time_s", "channel", "resonator", "design", "kind", "line", "energy_eV",
                "height_phi0", "slipped"):
        assert truth[key].shape == (n,)
    assert np.all(np.diff(truth["time_s"]) >= 0)
    assert sorted(detectors) == [1, 2, 3, 4]
    assert [detectors[ch]["design"] for ch in (1, 2, 3, 4)] == ["a", "b", "c", "d"]
    assert detectors[1]["alpha"] == 35.0 and detectors[2]["alpha"] == 20.0
    # A lower alpha: weaker feedback, smaller pulses, a worse resolution.
    assert detectors[2]["noise_fwhm_eV"] > 1.2 * detectors[1]["noise_fwhm_eV"]
    read = truth["channel"] > 0
    assert set(truth["design"][read]) == {"a", "b", "c", "d"}
    assert set(truth["kind"]) == {"line", "ho163"}
    assert set(truth["line"][truth["kind"] == "line"]) <= {"AlKa", "ClKa", "CaKa", "MnKa", "MnKb"}
    # Heights follow the integrated large-signal response (bath gain within 1 %), which
    # saturates: Mn Ka's height per eV is below Al Ka's.
    array = array_run["array"]
    for ch, det in detectors.items():
        mine = truth["channel"] == ch
        tes = array.detector(det["resonator"])
        expected = tes.height_phi0(truth["energy_eV"][mine])
        np.testing.assert_allclose(truth["height_phi0"][mine], expected, rtol=0.01)
        per_eV = tes.height_phi0(np.array([1486.7, 5898.9])) / np.array([1486.7, 5898.9])
        assert per_eV[1] < 0.97 * per_eV[0] and per_eV[0] < det["phi0_per_eV"]


def test_events_appear_in_the_demodulated_stream(array_run: dict[str, Any]) -> None:
    """Each read event lifts its channel by its height (those that did not slip)."""
    truth, flux, rate = array_run["truth"], array_run["flux"], array_run["rate"]
    start = array_run["array"].stream_start_s
    read = (truth["channel"] > 0) & ~truth["slipped"]
    times = truth["time_s"][read]
    checked = 0
    for t, ch, h in zip(times, truth["channel"][read], truth["height_phi0"][read], strict=True):
        i = int((t - start) * rate)
        others = np.abs(times - t)
        if i < 50 or i + 60 > flux.shape[1] or np.sum(others < 1e-3) > 1:
            continue
        row = flux[ch - 1]
        jump = row[i + 8: i + 30].max() - np.median(row[i - 40: i - 2])
        # Peak within 8 % of the height: pile-up tails, the bath, the 0.7 % demodulation error
        # and the noise (measured: worst 3 %).
        assert jump == pytest.approx(h, rel=0.08)
        checked += 1
    assert checked > 100


def test_design_c_slips_on_mn_but_not_on_cl(array_run: dict[str, Any]) -> None:
    """Slips come out of the demodulation where the TES asks > 0.5 quanta per period."""
    truth, detectors = array_run["truth"], array_run["detectors"]
    read = truth["channel"] > 0
    slew = np.zeros(truth["time_s"].size)
    rate = array_run["rate"]
    for ch, det in detectors.items():
        mine = np.flatnonzero(truth["channel"] == ch)
        tes = array_run["array"].detector(det["resonator"])
        grid = np.arange(0.0, 7000.0, 100.0)
        per_e = np.array([tes.max_slew_phi0_per_s(e, rate) for e in grid])
        slew[mine] = np.interp(truth["energy_eV"][mine], grid, per_e)
    limit = 0.5 * rate  # Phi0/s
    slipped = truth["slipped"] & read
    assert slipped.any()
    assert set(truth["design"][slipped]) == {"c"}
    # Measured: no slip below 0.9 x the limit; Mn Ka on design c (1.31 x) slips nearly always.
    assert not np.any(slipped & (slew < 0.9 * limit))
    mn_c = read & (truth["design"] == "c") & (truth["line"] == "MnKa")
    cl_c = read & (truth["design"] == "c") & (truth["line"] == "ClKa")
    assert mn_c.sum() > 5 and truth["slipped"][mn_c].mean() > 0.8
    assert cl_c.sum() > 5 and not truth["slipped"][cl_c].any()


# -- noise against the injected resolution ------------------------------------------------------


def test_noise_only_resolution_matches_the_model(tmp_path: Path) -> None:
    """Through the board: optimal filter on noise records (no sources) with the model's
    template: FWHM within 5 % of the model's optimal-filter limit (the TES terms sampled and
    period-averaged, plus the board's predicted readout noise), at design (a) and at design (b)
    with another alpha and heat capacity."""
    detectors: dict[str, Any] = {d: {"rate_hz": 0.0, "ho163_activity_Bq": 0.0} for d in "abcd"}
    detectors["b"].update({"alpha": 22.0, "c_abs_J_per_K": 0.6e-12})
    update = {"world": {"seed": 4, "detectors": detectors}}
    with holmes_rig(tmp_path, update) as rig:
        regulate(rig)
        board = rig.open("roach")
        tune(board, 2)
        board.start()
        rate = board.ramp_frequency
        n_rec = 1000
        flux = board.fetch(n_rec * NOISE_RECORD).flux_phi0()
        array = rig.world.detector_array("holmes")
        lines, targets = [], []
        for ch in (1, 2):
            det = array.detector(array.detectors()[ch]["resonator"])
            target = det.noise_fwhm_eV(rate)
            targets.append(target)
            records = flux[ch - 1].reshape(n_rec, NOISE_RECORD)
            filt = optimal_filter(det.template_per_eV(rate), noise_psd(records, rate))
            measured = FWHM_PER_SIGMA * np.std(filt.apply(records))
            # 1000 records: the rms is known to 2.2 %.
            assert measured == pytest.approx(target, rel=0.05)
            assert filt.predicted_fwhm == pytest.approx(target, rel=0.03)
            # The other tone leaking through the channel filter (40 dB, tones on the 62.5 kHz
            # grid of the 8192-sample DAC table) leaves lines at harmonics of 62.5 kHz
            # (measured up to ~300x the neighbouring bins), which the filter ignores.
            psd = filt.noise
            excess = []
            for m in range(1, 4):
                i = int(np.argmin(np.abs(psd.freqs_hz - m * 62.5e3)))
                excess.append(psd.psd[i] / np.median(psd.psd[i + 3: i + 12]))
            lines.append(max(excess))
        assert max(lines) > 20
        assert targets[1] > 1.3 * targets[0]


def test_bath_moves_the_operating_point(tmp_path: Path) -> None:
    """Warmer holder: at the same bias voltage the TES needs less Joule power, so its current
    falls (the flux baseline rises by M_in dI0) and its loop gain with it (pulses shrink);
    both as the operating point solved at the new bath says. The PI loop keeps the residual
    drift far below the fridge's wander."""
    with holmes_rig(tmp_path, {"world": {"seed": 4}}) as rig:
        tc = rig.open("tc")  # closed loop at 40 mK
        world = rig.world
        holder = world.thermal.plates["holder"]
        world.advance_to(120.0)  # settle the loop
        residual = []
        for _ in range(200):
            world.advance(3.0)
            residual.append(holder.temperature_K)
        residual_rms = np.std(residual)
        # Fridge wander 0.3 mK rms; regulated holder: measured 14 uK rms around 40 mK.
        assert np.mean(residual) == pytest.approx(0.040, abs=2e-4)
        assert 1e-6 < residual_rms < 1e-4
        tc.loops[0].mode = "OFF"
        array = TesArray(world, "bath_test", ["a"])
        det = array.detector(0)
        det.rate_hz, det.activity_Bq = 0.0, 0.0
        det.set_readout(5e-7, 500e3)
        t_before = world.thermal.temperature("holder")
        base = [np.mean(det.block(world.now(), 5000, 500e3))]
        holder.temperature_K += 1e-3
        world.advance(1e-6)
        t_after = world.thermal.temperature("holder")
        base.append(np.mean(det.block(world.now(), 5000, 500e3)))
        device = det.model.device
        i_before, i_after = (device.operating_point(t)[2] for t in (t_before, t_after))
        expected = det.model.phi0_per_A * (i_before - i_after)
        # 1 mK: I0 falls by ~0.3 uA -> +0.03 Phi0 (noise of the mean ~1e-4 Phi0).
        assert 0.01 < expected < 0.1
        assert base[1] - base[0] == pytest.approx(expected, rel=0.05)
        loop = [device.small_signal(t).loop_gain for t in (t_before, t_after)]
        assert loop[1] < loop[0]
        assert det.model.gain_at(t_after) < det.model.gain_at(t_before) < 1.01


# -- sources --------------------------------------------------------------------------------


def _lone_detector(tmp_path: Path, entry: dict[str, Any]) -> TesDetector:
    rig = holmes_rig(tmp_path, {"world": {"detectors": {"a": entry}}})
    assert rig.world is not None
    return TesArray(rig.world, "sources", ["a"]).detector(0)


def test_ho163_sampling_matches_the_spectrum(tmp_path: Path) -> None:
    det = _lone_detector(tmp_path, {"rate_hz": 0.0, "ho163_activity_Bq": 300.0})
    energies = np.array([det.draw_event()[2] for _ in range(40_000)])
    assert energies.min() > 0 and energies.max() < 2833.0
    edges = np.array([0, 200, 300, 320, 330, 336, 345, 380, 400, 410, 418, 440, 600, 1000,
                      1700, 1830, 1840, 1845, 1860, 2000, 2030, 2040, 2050, 2060, 2080, 2200,
                      2500, 2833.0])
    counts = np.histogram(energies, edges)[0]
    expected = ho163_bin_probabilities(edges) * energies.size
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    # Pearson chi2 with 26 dof: p > 1e-3 (fixed seed; a 1 eV shift of M1 fails it).
    assert stats.chi2.sf(chi2, edges.size - 2) > 1e-3
    # The densest bins are the N1 and M1 peaks.
    density = counts / np.diff(edges)
    top = {float(edges[i]) for i in np.argsort(density)[-2:]}
    assert top == {410.0, 2040.0}


def test_fluorescence_lines_have_their_natural_shapes(tmp_path: Path) -> None:
    det = _lone_detector(tmp_path, {"rate_hz": 10.0, "lines": {"MnKa": 1.0}})
    energies = np.array([det.draw_event()[2] for _ in range(20_000)])
    # Holzer Mn Ka: Ka1 at 5898.85 eV, Ka2 at 5887.74 eV, Ka1:Ka2 ~ 2:1 (weights 0.60 : 0.34).
    ka1 = np.sum(np.abs(energies - 5898.5) < 4.0)
    ka2 = np.sum(np.abs(energies - 5887.5) < 4.0)
    assert 1.5 < ka1 / ka2 < 2.3
    assert np.median(energies[np.abs(energies - 5898.5) < 4.0]) == pytest.approx(5898.6, abs=0.3)


# -- raw mode -------------------------------------------------------------------------------


def test_raw_mode_streams_channel_iq_that_the_demodulation_turns_into_flux(
        tmp_path: Path) -> None:
    """RAW: the channel IQ at the channel rate traces the resonator circle once per quantum;
    demodulating it offline (REFERENCE section 3) gives the injected flux."""
    with holmes_rig(tmp_path, {"world": {"seed": 9}}) as rig:
        board = rig.open("roach")
        tune(board, 1)
        model = _model(rig)
        k = model.resonator_of(1)
        _inject(model, k, lambda t: 0.3 + 0.0 * t)
        board.mode = "RAW"
        with pytest.raises(InstrumentError, match="RAW mode"):
            board.fetch(10)
        board.start()
        ratio = board.channel_rate_hz / board.ramp_frequency
        assert ratio == 32
        raw = board.fetch_raw(32 * 200)
        assert raw.iq.dtype == np.complex64 and raw.sample_rate_hz == 16e6
        z = raw.iq[0].astype(complex).reshape(200, 32)
        # Offline: centre the circle (algebraic fit), turn the arc away from the +-pi cut,
        # take the phase, demodulate per period with the plain sums (none dropped).
        x, y = z.real.ravel(), z.imag.ravel()
        a, b, _ = np.linalg.lstsq(np.column_stack([x, y, np.ones_like(x)]), x * x + y * y,
                                  rcond=None)[0]
        centred = z - complex(a / 2, b / 2)
        turn = np.mean(centred / np.abs(centred))  # the arc's middle onto the real axis
        phase = np.angle(centred * np.conj(turn) / abs(turn))
        ref = np.exp(-2j * np.pi * 2 * np.arange(32) / 32)
        theta = np.angle((phase * ref).sum(axis=1))
        # Constant flux: the same theta every period; its scatter is the readout noise the
        # board predicts (measured ratio 1.0x; 20 % allowed for 200 periods).
        expected = model.readout_density(1) * math.sqrt(board.ramp_frequency / 2) * 2 * np.pi
        assert np.std(theta) == pytest.approx(expected, rel=0.2)
        with pytest.raises(InstrumentError, match="-221.*stop acquisition"):
            board.mode = "PHASE"
