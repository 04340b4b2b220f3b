"""The simulated maXs30 array: what its thermodynamic model implies, measured from its signals
(the model itself: tests/test_mmc_thermo.py; resolution and gain against the analysis package:
tests/test_mmc_thermo_sim.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.signal import welch

from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.analysis import mmc_thermo as thermo
from cryodaq.analysis.xray_lines import MN_KA
from cryodaq.sim_instruments import ziggurat
from cryodaq.sim_instruments.mmc_array import MmcArray, channel_name, channel_pixels, mmc_array
from cryodaq.sim_instruments.mmc_background import (
    FE55,
    Background,
    EventGenerator,
    sample_lorentzians,
)
from cryodaq.sim_instruments.world import World

ROOT = Path(__file__).resolve().parents[1]
RATE = 500e3
QUIET = {"enabled": False}


def array(detector: dict[str, Any], background: dict[str, Any] | None = None,
          seed: int = 5, plate_K: float = 0.020, **world: Any) -> MmcArray:
    params = {
        "seed": seed,
        "thermal": {"plates": {"detector": {"initial_K": plate_K}}},
        "detector": detector,
        "background": QUIET if background is None else background,
        **world,
    }
    return mmc_array(World(params))


# -- the Gaussian generator ------------------------------------------------------------------


@pytest.mark.parametrize("fill", [ziggurat.fill_normal, ziggurat.fill_normal_pairs])
def test_ziggurat_normals_have_normal_moments_and_tails(fill: Any) -> None:
    """Both draws: one normal per 64-bit word (52-bit abscissa), two per word (23-bit)."""
    x = np.empty(4_000_000)
    fill(x, ziggurat.new_state(np.random.default_rng(3)))
    n = x.size
    # moments: standard errors 1/sqrt(n) = 5e-4 (mean), ~3.5e-4 (std), 1.2e-3 (skew),
    # 2.4e-3 (excess kurtosis); 5 sigma bounds
    assert abs(x.mean()) < 2.5e-3 and abs(x.std() - 1.0) < 1.8e-3
    assert abs(stats.skew(x)) < 6e-3 and abs(stats.kurtosis(x)) < 1.2e-2
    for k in (1.0, 2.0, 3.0, 3.654, 4.0, 4.5):  # 3.654: the ziggurat's tail boundary
        p = 2.0 * stats.norm.sf(k)
        # binomial count beyond k sigma, 5 sigma of its Poisson/binomial scatter
        assert abs(np.sum(np.abs(x) > k) - n * p) < 5.0 * math.sqrt(n * p), k
    assert stats.kstest(x[:500_000], "norm").pvalue > 1e-3
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 5 / math.sqrt(n)  # neighbours independent
    # the same state gives the same stream; streams of different seeds differ
    a = ziggurat.standard_normal(ziggurat.new_state(np.random.default_rng(9)), 5)
    b = ziggurat.standard_normal(ziggurat.new_state(np.random.default_rng(9)), 5)
    assert np.array_equal(a, b) and not np.array_equal(a, x[:5])


# -- sources ---------------------------------------------------------------------------------


def test_mn_ka_energies_follow_the_holzer_shape() -> None:
    e = sample_lorentzians(MN_KA, np.random.default_rng(1), 200_000)
    w = np.array([c.weight for c in MN_KA])
    w = w / w.sum()

    def cdf(x: float) -> float:
        return float(sum(wi * (0.5 + np.arctan((x - c.energy_eV) / (c.fwhm_eV / 2)) / np.pi)
                         for wi, c in zip(w, MN_KA, strict=True)))

    for x in (5880.0, 5887.0, 5890.0, 5895.0, 5898.0, 5899.0, 5905.0):
        # empirical CDF: binomial error <= 1.1e-3 at n = 2e5; tails cut at +-500 eV: < 1e-3
        assert np.mean(e < x) == pytest.approx(cdf(x), abs=4e-3), x
    # the Ka1/Ka2 split: components above 5892 eV carry 62 % of the intensity
    assert np.mean(e > 5892.0) == pytest.approx(cdf(1e9) - cdf(5892.0), abs=4e-3)


def test_fe55_source_gives_ka_and_kb_at_their_intensity_ratio() -> None:
    arr = array({"source": "fe55"})
    arr.generate_until(20.0)
    e = arr.truth()["energy_eV"]
    kb = np.mean(e > 6200.0)
    expected = FE55[1].weight / (FE55[0].weight + FE55[1].weight)
    n = e.size  # 64 pixels x 2.5 /s x 20 s = 3200 photons, all absorbed in 20 um of Au
    assert n == pytest.approx(3200, abs=5 * math.sqrt(3200))
    assert kb == pytest.approx(expected, abs=4 * math.sqrt(expected / n))
    assert np.median(e[e < 6200]) == pytest.approx(5897.0, abs=2.0)  # Ka1 dominates


# -- pixels, polarity, amplitudes --------------------------------------------------------------


#: No SQUID and no Er 1/f noise: the pulses on the thermodynamic noise alone (~1e-5 of them).
QUIET_READOUT = {"squid_white_phi0_per_rthz": 0.0, "squid2_white_phi0_per_rthz": 0.0,
                 "squid_onef_phi0_per_rthz": 0.0, "er_noise_muB2_per_hz": 0.0}


@pytest.fixture(scope="module")
def clean() -> dict[str, Any]:
    """241Am + 55Fe, non-default pixel (thicker sensor, other concentration, a large athermal
    loss so that its spread is measurable)."""
    arr = array({
        "source": ["fe55", "am241"], **QUIET_READOUT, "athermal_loss": 0.01,
        "drift_rms_K": 0.0, "er_ppm": 550.0, "sensor_thickness_um": 2.0,
    }, sources={"fe55": {"rate_per_pixel_hz": 0.3}, "am241": {"rate_per_pixel_hz": 6.0}},
        thermal={"mixing": {"base_K": 0.02}, "plates": {"detector": {"initial_K": 0.02}}})
    channel = 10  # C2/D2
    flux = arr.channel(channel).block(0.0, int(40 * RATE), RATE)
    return {"array": arr, "channel": channel, "flux": flux}


def isolated_peaks(flux: np.ndarray, times: np.ndarray, all_times: np.ndarray) -> np.ndarray:
    """Signed peak of each pulse at `times` with no other pulse within 40 ms before / 1 ms
    after, above the level just before it."""
    out = []
    for t in times:
        others = all_times[all_times != t]
        if np.any((others > t - 0.04) & (others < t + 0.001)) or t > flux.size / RATE - 0.001:
            out.append(np.nan)
            continue
        i = int(np.ceil(t * RATE))
        seg = flux[i : i + 100] - flux[i - 1]
        out.append(seg[np.argmax(np.abs(seg))])
    return np.array(out)


def test_two_pixels_per_channel_have_opposite_polarity(clean: dict[str, Any]) -> None:
    arr, ch = clean["array"], clean["channel"]
    truth = arr.truth()
    mine = (truth["channel"] == ch) & (truth["time_s"] < 40.0)
    up, low = (arr.pixels()["name"][i] for i in channel_pixels(ch))
    assert (up, low) == ("C2", "D2") and channel_name(16) == "C8/D8"
    peaks = isolated_peaks(clean["flux"], truth["time_s"][mine], truth["time_s"][mine])
    pixel = truth["pixel"][mine]
    ok = np.isfinite(peaks)
    assert np.sum(ok & (pixel == up)) > 10 and np.sum(ok & (pixel == low)) > 10
    assert np.all(peaks[ok & (pixel == up)] > 0) and np.all(peaks[ok & (pixel == low)] < 0)
    # the sampled peak is within ~(1 us)^2 / (2 rise decay) = 2e-5 of the true peak, plus
    # the thermodynamic noise between two samples 60 us apart (~1.6e-5 Phi_0 rms against
    # >= 0.05 Phi_0)
    ratio = peaks[ok] / truth["height_phi0"][mine][ok]
    assert np.all(np.abs(ratio - 1.0) < 1.5e-3) and np.std(ratio) < 5e-4


def test_athermal_loss_spread_and_the_models_nonlinearity(clean: dict[str, Any]) -> None:
    """Peaks over the model's small-signal height: a uniform spread of width athermal_loss
    (rms 0.01 / sqrt(12)), and the nonlinearity the model integrates (not a coefficient)."""
    arr, ch = clean["array"], clean["channel"]
    truth, pix = arr.truth(), arr.pixels()
    sel = (truth["channel"] == ch) & (truth["time_s"] < 40.0)
    t, e = truth["time_s"][sel], truth["energy_eV"][sel]
    index = {name: i for i, name in enumerate(pix["name"])}
    px = np.array([index[name] for name in truth["pixel"][sel]])
    peaks = isolated_peaks(clean["flux"], t, t)
    ok = np.isfinite(peaks)
    design = arr.model.subset(px[ok])
    nominal = thermo.peak_height_phi0(design, 0.02, e[ok])  # no athermal loss
    rel = peaks[ok] * pix["polarity"][px[ok]] / nominal
    # loss fraction 0.01 u, u uniform: mean 0.995, rms 0.01 / sqrt(12) = 2.9e-3 (~150
    # pulses: 6 % error on the rms)
    assert np.mean(rel) == pytest.approx(0.995, abs=1e-3)
    assert np.std(rel) == pytest.approx(0.01 / math.sqrt(12), rel=0.2)
    assert rel.min() > 0.988 and rel.max() < 1.0015
    # the model's nonlinearity: the 59.5 keV gamma against Mn Ka, per eV
    r = arr.model.response(0.02, px[ok])
    per_ev = peaks[ok] * pix["polarity"][px[ok]] / (r.phi0_per_eV * e[ok])
    high, low = e[ok] > 59e3, (e[ok] > 5.8e3) & (e[ok] < 5.95e3)
    assert high.sum() >= 12 and low.sum() >= 4
    drop = np.mean(per_ev[high]) / np.mean(per_ev[low])
    expected = float(np.mean(nominal[high] / (r.phi0_per_eV[high] * e[ok][high])) /
                     np.mean(nominal[low] / (r.phi0_per_eV[low] * e[ok][low])))
    assert expected < 0.995  # the model bends the response by ~0.6 % between them
    # means of >= 12 events with a 2.9e-3 rms spread: ~1e-3
    assert drop == pytest.approx(expected, abs=3e-3)


def test_chip_temperature_scales_pulses_and_moves_corner_baselines() -> None:
    """Two chips 40 uK apart, same seed (same photons): every pulse scales by the model's
    height ratio at the two temperatures; a corner channel's baseline moves by its two
    sensors' moment change (small sensor: A1)."""
    det = {"source": "fe55", **QUIET_READOUT, "athermal_loss": 0.0, "drift_rms_K": 0.0,
           "er_ppm": 300.0}
    out = {}
    for plate in (0.0200, 0.02004):
        arr = array(det, plate_K=plate,
                    thermal={"mixing": {"base_K": plate}, "plates": {"detector": {
                        "initial_K": plate}}})
        flux = arr.channel(2).block(0.0, int(4 * RATE), RATE)
        corner = arr.channel(1).block(0.0, int(4 * RATE), RATE)
        truth = arr.truth()
        sel = (truth["channel"] == 2) & (truth["time_s"] < 4.0)
        t = truth["time_s"][sel]
        out[plate] = (isolated_peaks(flux, t, t), corner[:500].mean(), arr, truth["energy_eV"][sel])
    ratio = out[0.02004][0] / out[0.0200][0]
    ok = np.isfinite(ratio)
    assert ok.sum() > 5
    arr = out[0.0200][2]
    design = arr.model.subset(np.array([channel_pixels(2)[0]]))
    e = out[0.0200][3][ok]
    model = thermo.peak_height_phi0(design, 0.02004, e) / thermo.peak_height_phi0(design, 0.02, e)
    assert float(np.median(model)) < 0.999
    np.testing.assert_allclose(ratio[ok], model, rtol=2e-4)  # both pixels scale alike here
    # the corner channel A1/B1 (loops locked at 20 mK): 40 uK move its baseline by the
    # model's coefficient (the two sensors' dm/dT) x 40 uK; the thermodynamic noise of the
    # 1 ms means is ~3e-5 Phi_0 against ~2e-2
    coef = arr.channels(0.02)["temperature_phi0_per_K"][0]
    assert coef < 0  # A1's smaller sensor: B1 (negative polarity) wins
    shift = out[0.02004][1] - out[0.0200][1]
    assert shift == pytest.approx(coef * 40e-6, rel=0.01)
    assert arr.baseline_flux(1, np.array([0.02004]))[0] == pytest.approx(coef * 40e-6, rel=2e-3)


# -- noise -----------------------------------------------------------------------------------


def noise_codes(arr: MmcArray, channel: int, seconds: float, codes_per_phi0: float = 14400.0,
                electronics: float = 5e-5) -> np.ndarray:
    n = int(seconds * RATE)
    out = np.empty(n, dtype=np.int16)
    arr.channel(channel).codes(0.0, n, RATE, codes_per_phi0, electronics, out)
    return out


def test_noise_psd_follows_the_model_and_dead_and_noisy_channels() -> None:
    """The ADC codes' PSD is the model's (both pixels' thermodynamic noise, Er 1/f, SQUID
    white and 1/f) from 40 Hz to 200 kHz, at a non-default temperature and concentration;
    a dead channel gives the electronics' noise only, a noisy one its factor on the SQUID's."""
    arr = array({"source": "none", "drift_rms_K": 0.0, "er_ppm": 250.0,
                 "dead_channels": ["A3/B3"], "noisy_channels": [21], "noisy_factor": 4.0},
                thermal={"mixing": {"base_K": 0.016}, "plates": {"detector": {
                    "initial_K": 0.016}}})
    k, electronics = 14400.0, 5e-5
    quiet = noise_codes(arr, 5, 16.0, k, electronics) / k
    f, psd = welch(quiet, RATE, nperseg=1 << 16)
    model = arr.model.channel_psd(list(channel_pixels(5)), 0.016, f)
    for band in (40.0, 100.0, 300.0, 1e3, 5e3, 50e3, 200e3):
        sel = (f > band / 1.3) & (f < band * 1.3)
        # Welch: 240 segments, several bins: ~3 % scatter; the synthesis of 1/f and the
        # slow Lorentzians ~3 %; quantisation (1/12 LSB^2) is part of the white level
        assert np.mean(psd[sel] / model[sel]) == pytest.approx(1.0, abs=0.1), band
    assert model[np.argmin(np.abs(f - 40.0))] > 3 * model[np.argmin(np.abs(f - 50e3))]
    # dead (A3/B3 = channel 3): only the electronics' white noise (and quantisation)
    ch = arr.channels()
    dead = noise_codes(arr, 3, 1.0, k, electronics).astype(float)
    assert ch["dead"][2] and not ch["dead"][4]
    assert dead.std() == pytest.approx(math.hypot(electronics * k, math.sqrt(1 / 12)), rel=0.01)
    assert np.abs(dead).max() < 6 * dead.std()
    # noisy (channel 21): 4x the SQUID's noise; at high frequency that is the whole channel
    noisy = noise_codes(arr, 21, 2.0, k, electronics) / k
    f, p_noisy = welch(noisy, RATE, nperseg=1 << 14)
    sel = f > 50e3
    expected = arr.model.channel_psd(list(channel_pixels(21)), 0.016, f[sel], factor=4.0)
    assert np.mean(p_noisy[sel] / expected) == pytest.approx(1.0, abs=0.05)
    assert ch["white_phi0_per_rthz"][20] == pytest.approx(4 * ch["white_phi0_per_rthz"][4])


# -- background ------------------------------------------------------------------------------


def generator(background: dict[str, Any]) -> EventGenerator:
    arr = array({"source": "none"}, background={"enabled": False})
    return EventGenerator([], Background.from_params(background), arr.layout)


def count(gen: EventGenerator, seconds: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    parts = [gen.chunk(float(t), 10.0, rng) for t in range(0, int(seconds), 10)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_ptfe_shield_reduces_copper_and_continuum() -> None:
    loud = {"continuum_per_keV_cm2_s": 20.0, "cu_ka_per_cm2_s": 50.0, "nb_ka_per_cm2_s": 5.0,
            "muon_per_cm2_s": 0.0, "jump_per_channel_h": 0.0, "burst_per_h": 0.0,
            "ptfe_cu_reduction": 0.8, "ptfe_continuum_reduction": 0.6}
    bare = count(generator(loud), 2000.0, 1)
    shielded = count(generator({**loud, "shield": "ptfe"}), 2000.0, 2)

    def n(ev: dict[str, np.ndarray], kind: int, lo: float, hi: float) -> int:
        e = ev["energy_eV"]
        return int(np.sum((ev["kind"] == kind) & (e > lo) & (e < hi)))

    # continuum 1-10 keV: 20 x 0.16 cm^2 x 9 keV x 2000 s = 58 k counts unshielded
    for kind, lo, hi, kept in ((1, 1e3, 10e3, 0.4), (2, 7.9e3, 8.1e3, 0.2)):
        a, b = n(bare, kind, lo, hi), n(shielded, kind, lo, hi)
        err = kept * math.sqrt(1 / a + 1 / b)
        assert b / a == pytest.approx(kept, abs=3 * err), kind
    # the continuum is flat in energy (its rate per keV in the 1-10 keV window)
    cont = bare["energy_eV"][bare["kind"] == 1]
    assert np.sum((cont > 1e3) & (cont < 10e3)) / (20.0 * 0.16 * 9 * 2000) == pytest.approx(
        1.0, abs=0.02)


def test_muon_showers_hit_several_channels_within_a_microsecond() -> None:
    gen = generator({"muon_per_cm2_s": 0.5, "jump_per_channel_h": 0.0, "burst_per_h": 0.0,
                     "continuum_per_keV_cm2_s": 0.0, "cu_ka_per_cm2_s": 0.0,
                     "nb_ka_per_cm2_s": 0.0})
    ev = count(gen, 400.0, 3)
    t = ev["time_s"][ev["kind"] == 3]
    ch = ev["channel"][ev["kind"] == 3]
    showers = np.split(np.arange(t.size), np.nonzero(np.diff(t) > 1e-3)[0] + 1)
    # 0.5 /cm^2/s x 0.64 cm^2 x 400 s = 128 showers
    assert len(showers) == pytest.approx(128, abs=5 * math.sqrt(128))
    for s in showers:
        assert np.ptp(t[s]) < 1e-6 and np.unique(ch[s]).size >= 2
    deposit = ev["deposit"][ev["kind"] == 3]
    assert set(np.unique(deposit)) == {1, 2, 3}


def test_bursts_come_at_their_rate_on_one_adc_with_tens_of_triggers_per_minute() -> None:
    gen = generator({"burst_per_h": 18.0, "burst_duration_s": 4.0, "burst_packet_hz": 5.0,
                     "muon_per_cm2_s": 0.0, "jump_per_channel_h": 0.0,
                     "continuum_per_keV_cm2_s": 0.0, "cu_ka_per_cm2_s": 0.0,
                     "nb_ka_per_cm2_s": 0.0})
    ev = count(gen, 6000.0, 4)
    sel = ev["kind"] == 5
    t, ch = ev["time_s"][sel], ev["channel"][sel]
    packets = np.unique(t)
    episodes = np.split(packets, np.nonzero(np.diff(packets) > 10.0)[0] + 1)
    # 18 /h x 6000 s = 30 bursts (two closer than ~14 s merge here: ~4 %)
    assert len(episodes) == pytest.approx(30, abs=4 * math.sqrt(30))
    for p in packets:
        group = ch[t == p]
        assert group.size == 16 and (group.max() <= 16 or group.min() >= 17)
    # each packet triggers the 16 channels of one ADC: > 30 triggers in the burst's minute
    assert all(16 * len(e) > 30 for e in episodes)
    # packets: 1 + Poisson(5 /s x exponential duration of mean 4 s) = 21 per burst; the
    # total over 30 bursts scatters by sqrt(30 x 420) = 18 %
    assert packets.size == pytest.approx(30 * 21, rel=0.45)


def test_jumps_and_muon_hits_have_their_distorted_shapes() -> None:
    """Nearly noise-free signals (thermodynamic noise only): a jump is a step within one
    sample; a sensor hit jumps within a sample and relaxes with the rise time to the model's
    share of the decay; a substrate hit rises over ~0.3 ms; an absorber hit is the pixel's
    pulse."""
    arr = array({"source": "none", **QUIET_READOUT, "athermal_loss": 0.0},
                thermal={"mixing": {"base_K": 0.02}, "plates": {"detector": {
                    "initial_K": 0.02}}},
                background={"muon_per_cm2_s": 4.0, "jump_per_channel_h": 720.0,
                            "muon_deposits": {"absorber": 1, "sensor": 1, "substrate": 1},
                            "burst_per_h": 0.0, "continuum_per_keV_cm2_s": 0.0,
                            "cu_ka_per_cm2_s": 0.0, "nb_ka_per_cm2_s": 0.0})
    flux = {ch: arr.channel(ch).block(0.0, int(20 * RATE), RATE) for ch in (12, 13, 14, 15)}
    truth = arr.truth()
    seen = set()
    for t, ch, kind, dep, h, pixel in zip(truth["time_s"], truth["channel"], truth["kind"],
                                          truth["deposit"], truth["height_phi0"],
                                          truth["pixel"], strict=True):
        others = truth["time_s"][truth["channel"] == ch]
        if ch not in flux or t > 19.9 or np.sum(np.abs(others - t) < 0.04) > 1:
            continue  # isolated hits only
        x = flux[ch]
        i = int(np.ceil(t * RATE))
        base = x[i - 1]
        rel = (x[i : i + 200] - base) / h
        if kind == "jump":
            # the whole step at once, and it stays (1 s recovery); earlier jumps' recoveries
            # move the baseline by ~1e-5 of their steps per sample
            # move the baseline by ~1e-5 of their steps per sample; the thermodynamic noise
            # between two samples is ~2e-5 Phi_0
            noise = 1e-4 / abs(h)
            assert rel[0] == pytest.approx(1.0, abs=2e-3 + noise) and rel[199] > 0.99 - noise
        elif dep == "sensor":
            # the sensor alone heated, then sharing with the absorber: b_d / (b_d + b_r)
            # after ~10 rise times (REFERENCE section 9's two bodies)
            px = list(arr.pixels()["name"]).index(pixel)
            r = arr.model.response(0.02, np.array([px]))
            b_d, b_r = (float(x[0]) for x in r.body.sensor_response())
            share = b_d / (b_d + b_r) * math.exp(-100e-6 / float(r.decay_s[0]))
            # (the first sample comes up to 2 us after the jump: ~0.2 rise times)
            assert 0.75 < rel[0] <= 1.001 and rel[0] > rel[5] > rel[50]
            assert rel[50] == pytest.approx(share, abs=0.01)
            assert share < 0.8
        elif dep == "substrate":
            # rise 0.3 ms (a pixel pulse is at 98 % after 40 us), peak after ~1 ms
            assert rel[20] < 0.2 and rel[199] > rel[100] > rel[20]
        elif dep == "absorber":
            assert 0.95 < rel[:200].max() < 1.01 and rel[0] < 0.2  # the pixel's 10 us rise
        seen.add(kind if kind == "jump" else dep)
    assert seen == {"jump", "sensor", "substrate", "absorber"}


def test_chip_drift_and_source_swap_from_a_campaign() -> None:
    """The chip wanders by drift_rms_K around the plate; `World.set_param` swaps the source:
    no 55Fe photon after the swap, the events drawn before it stay."""
    arr = array({"source": "fe55", "drift_rms_K": 20e-6, "drift_time_s": 5.0})
    world = arr.world
    arr.channel(2).block(0.0, int(1 * RATE), RATE)
    world.advance_to(400.0)  # the plate holds 20 mK (no heater: it cools slowly to mixing)
    arr.generate_until(400.0)
    t = np.arange(10.0, 400.0, 5.0)
    drift = arr.chip_temperature(t)
    # 78 samples one correlation time apart: rms within ~25 % of 20 uK
    assert np.std(np.diff(drift)) / math.sqrt(2) == pytest.approx(20e-6, rel=0.3)
    before = arr.truth()["time_s"].size
    world.set_param("detector.source", "none")
    arr.channel(2).block(400.0, int(2 * RATE), RATE)
    truth = arr.truth()
    assert truth["time_s"].size <= before and np.all(truth["time_s"][truth["kind"] == "xray"]
                                                     <= 400.0)
    assert np.sum(truth["kind"] == "xray") > 0.8 * 64 * 2.5 * 400


# -- the rig ---------------------------------------------------------------------------------


def test_maxs30_rig_serves_the_array_through_squids_and_adcs() -> None:
    """Both polarities reach the ADC at the truth's times; dead channel flat; an unlocked
    SQUID passes no pulses; truth reachable from the rig's World."""
    with Rig(load_rig(ROOT / "config" / "rigs" / "maxs30_sim.yaml")) as rig:
        fll, adc = rig.open("fll"), rig.open("adc1")
        fll.channel(2).bias_current = 100e-6  # out of the SQUID's window: unlocked
        adc.start()
        block = adc.fetch(1 << 18)
        truth = rig.world.detector_array("mmc").truth()
        channels = rig.world.detector_array("mmc").channels()
    codes = block.codes.astype(float)
    t0 = block.first_sample / RATE
    for row, ch in ((3, 4), (9, 10)):
        sel = (truth["channel"] == ch) & (truth["time_s"] > t0 + 0.001)
        sel &= truth["time_s"] < t0 + (1 << 18) / RATE - 0.001
        for t, pixel in zip(truth["time_s"][sel], truth["pixel"][sel], strict=True):
            i = int(np.ceil((t - t0) * RATE))
            step = codes[row, i + 20] - codes[row, i - 5]
            # a 5.9 keV pulse is ~850 codes; noise ~10 codes rms
            assert (step > 300) if pixel[0] in "ACEG" else (step < -300), (ch, pixel)
    assert channels["dead"][10]
    dead = codes[10]
    assert dead.std() < 5.0 and np.abs(dead - dead.mean()).max() < 30  # 0.7 LSB + amplifier
    assert codes[1].std() < 5.0  # the unlocked channel: amplifier noise only
    kinds = set(truth["kind"])
    assert "xray" in kinds and set(truth) >= {"time_s", "channel", "pixel", "kind", "energy_eV"}
