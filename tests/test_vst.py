"""Simulated vector signal transceiver through its driver: radiometer statistics, the cavity's
noise spectrum at the World's plate temperatures, S11 fits, and the standard driver behaviour."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import pyvisa
from scipy import constants

from cryodaq.analysis.cavity import (
    Cavity,
    Chain,
    effective_temperature,
    fit_reflection,
    lossless_emitted_power,
    reflection,
)
from cryodaq.analysis.cavity_chain import ChainLosses, Temperatures, received_spectrum
from cryodaq.drivers.errors import InstrumentError, SettingRangeError
from cryodaq.drivers.vst import VectorSignalTransceiver
from cryodaq.sim_instruments.library import device_file
from cryodaq.sim_instruments.vst_model import DEFAULT_CAVITY, DEFAULT_CHAIN, VstModel
from cryodaq.sim_instruments.world import World
from tests.conftest import ADDRESS, open_simulated

PAPER = Cavity(**DEFAULT_CAVITY)
CHAIN = Chain(**DEFAULT_CHAIN)
#: World params of a lossless chain without ripple or drift: the model of Eqs 1-4.
LOSSLESS: dict[str, Any] = {
    "cables": {"A1": 1.0, "A2": 1.0, "A3": 1.0},
    "circulator": {"A": 1.0},
    "chain": {"ripple_percent": 0.0, "drift_percent_per_hour": 0.0},
}
#: Heater powers (W) that hold a plate of the default thermal plant near 0.34 K and 0.9 K.
WARM_W, HOT_W = 5.7e-6, 4.0e-5


def make_vst(
    closing: list[Any],
    world_params: dict[str, Any] | None = None,
    sim: dict[str, Any] | None = None,
    silent: bool = False,
    lossless: bool = True,
) -> tuple[VectorSignalTransceiver, World, VstModel]:
    params: dict[str, Any] = {"seed": 7, "thermal": {"plates": {"attenuator": {}, "cavity": {}}}}
    if lossless:
        params.update(LOSSLESS)
    params.update(world_params or {})
    world = World(params)
    model = VstModel(world, "vst", sim)
    vst = open_simulated(VectorSignalTransceiver, "vst", model, silent=silent)
    closing.append(vst)
    return vst, world, model


def settle(world: World, attenuator_W: float, cavity_W: float, for_s: float = 30.0) -> None:
    """Heat the plates and wait ~30 thermal time constants (1 s each) for a steady state."""
    world.thermal.set_heater("attenuator", attenuator_W)
    world.thermal.set_heater("cavity", cavity_W)
    world.advance_to(world.now() + for_s)


def expected_power(world: World, f: np.ndarray, bin_Hz: float, cavity: Cavity = PAPER) -> Any:
    """Eqs 1-4 at the plates' present temperatures."""
    t_att = world.thermal.temperature("attenuator")
    t_cav = world.thermal.temperature("cavity")
    return CHAIN.received_power(lossless_emitted_power(f, cavity, t_att, t_cav, bin_Hz), bin_Hz)


def on_resonance(f: np.ndarray, cavity: Cavity = PAPER) -> np.ndarray:
    return np.abs(f - cavity.fc_Hz) < cavity.linewidth_Hz / 2


# -- spectrum physics -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attenuator_W", "cavity_W", "sign"),
    [(WARM_W, 0.0, -1), (0.0, HOT_W, 1), (1e-5, 1e-5, 0)],
    ids=["dip", "peak", "flat"],
)
def test_spectrum_mean_matches_model(
    closing: list[Any], attenuator_W: float, cavity_W: float, sign: int
) -> None:
    vst, world, _ = make_vst(closing)
    settle(world, attenuator_W, cavity_W)
    # The paper's B = 1 kHz and 3 min: relative scatter 1/sqrt(B tau) = 0.24 % per bin, so the
    # means below resolve 0.02 % (all bins) and 0.05 % (on resonance) of the received power.
    vst.centre_frequency, vst.span, vst.rbw, vst.integration_time = PAPER.fc_Hz, 4e6, 1e3, 180.0
    s = vst.spectrum()
    assert s.power_W.size == 4000 and s.bin_width_Hz == pytest.approx(1e3)
    assert s.frequencies_Hz[0] == pytest.approx(PAPER.fc_Hz - 2e6 + 500)
    ratio = s.power_W / expected_power(world, s.frequencies_Hz, s.bin_width_Hz)
    sigma = s.relative_scatter
    on = on_resonance(s.frequencies_Hz)
    # Means over all 4000 bins and over the ~580 bins on resonance agree with the model within
    # 5 standard errors of the mean (sigma/sqrt(n)).
    assert abs(ratio.mean() - 1) < 5 * sigma / np.sqrt(ratio.size)
    assert abs(ratio[on].mean() - 1) < 5 * sigma / np.sqrt(on.sum())
    # Peak, dip or flat, seen in the data alone.
    far = np.abs(s.frequencies_Hz - PAPER.fc_Hz) > 1.5e6
    contrast = s.power_W[on].mean() / s.power_W[far].mean() - 1
    noise = 5 * sigma * np.sqrt(1 / on.sum() + 1 / far.sum())
    if sign == 0:
        assert abs(contrast) < noise
    else:
        assert sign * contrast > noise


def test_default_chain_is_lossy_with_ripple_and_drift(closing: list[Any]) -> None:
    """Default World: Eqs 5-9 with the specs' losses, mixing plate from the thermal plant,
    times the gain ripple r(f) and a linear drift in virtual time."""
    vst, world, model = make_vst(closing, lossless=False)
    assert model.losses == ChainLosses(A1=0.96, A2=0.94, A3=0.9, A_cir=0.96)
    settle(world, 0.0, HOT_W)
    vst.centre_frequency, vst.span, vst.rbw, vst.integration_time = PAPER.fc_Hz, 4e6, 1e3, 180.0
    start = world.now()
    s = vst.spectrum()
    f = s.frequencies_Hz
    temps = Temperatures(
        world.thermal.temperature("attenuator"),
        world.thermal.temperature("cavity"),
        world.thermal.temperature("mixing"),
        4.0,
    )
    lossy = received_spectrum(f, PAPER, temps, model.losses, 93.07, 5.28, 1e3)
    r = model.gain_ripple(f)
    assert 100 * np.std(r) == pytest.approx(0.3, rel=0.5)
    drift = 1 + 0.04 / 100 * (start + 90.0) / 3600  # mid-capture
    ratio = s.power_W / (lossy * r * drift)
    assert abs(ratio.mean() - 1) < 5 * s.relative_scatter / np.sqrt(ratio.size)
    # Without the ripple the data would be off by it: the ripple is really there.
    plain = s.power_W / (lossy * drift)
    assert np.polyfit(r - 1, plain - 1, 1)[0] == pytest.approx(1.0, abs=0.1)
    # The lossy chain differs from the lossless one by much more than the scatter.
    lossless = expected_power(world, f, 1e3)
    assert abs(np.mean(lossy / lossless) - 1) > 0.01


@pytest.mark.parametrize(("rbw", "tau"), [(1e3, 1.0), (1e4, 0.01)])
def test_relative_scatter_is_radiometer_equation(
    closing: list[Any], rbw: float, tau: float
) -> None:
    vst, world, _ = make_vst(closing)
    settle(world, WARM_W, WARM_W)
    vst.centre_frequency, vst.span, vst.rbw, vst.integration_time = 5.5e9, 2000 * rbw, rbw, tau
    s = vst.spectrum()
    ratio = s.power_W / expected_power(world, s.frequencies_Hz, s.bin_width_Hz)
    expected = 1 / np.sqrt(rbw * tau)  # 0.0316 and 0.1
    # 2000 bins estimate the scatter to 1.6 %; 10 % is a > 6 sigma bound.
    assert np.std(ratio, ddof=1) == pytest.approx(expected, rel=0.10)
    assert s.relative_scatter == pytest.approx(expected)


def test_heating_the_cavity_raises_on_resonance_power(closing: list[Any]) -> None:
    vst, world, _ = make_vst(closing)
    settle(world, WARM_W, 0.0)
    vst.centre_frequency, vst.span, vst.rbw, vst.integration_time = PAPER.fc_Hz, 10e6, 1e3, 1.0
    cold = vst.spectrum()
    cold_model = expected_power(world, cold.frequencies_Hz, cold.bin_width_Hz)
    t_cold = world.thermal.temperature("cavity")
    world.thermal.set_heater("cavity", HOT_W)
    world.advance_to(world.now() + 30.0)
    assert world.thermal.temperature("cavity") > 0.8 > 5 * t_cold
    hot = vst.spectrum()
    hot_model = expected_power(world, hot.frequencies_Hz, hot.bin_width_Hz)
    f = hot.frequencies_Hz
    on, wings = on_resonance(f), np.abs(f - PAPER.fc_Hz) > 4e6
    sigma = hot.relative_scatter
    rise = hot.power_W[on].mean() / cold.power_W[on].mean()
    model_rise = hot_model[on].mean() / cold_model[on].mean()
    assert model_rise > 1.05  # T_c 0.05 K -> 0.9 K beside T_att 0.34 K: dip turns into a peak
    assert rise == pytest.approx(model_rise, abs=5 * sigma * np.sqrt(2 / on.sum()))
    # Far from resonance the antenna sees the attenuator only: its floor moves by 0.6 % only
    # because the heat load warms the mixing plate and with it the attenuator plate.
    wing_rise = hot.power_W[wings].mean() / cold.power_W[wings].mean()
    model_wing_rise = hot_model[wings].mean() / cold_model[wings].mean()
    assert wing_rise == pytest.approx(model_wing_rise, abs=5 * sigma * np.sqrt(2 / wings.sum()))
    assert wing_rise - 1 < (rise - 1) / 5


def test_capture_takes_integration_time_and_follows_temperature(closing: list[Any]) -> None:
    plates = {"thermal": {"plates": {"attenuator": {}, "cavity": {}}}}
    vst, world, _ = make_vst(closing, sim={"thermal_sample_s": 0.05})
    twin, cold = World(plates), World(plates)  # same cryostat, no instrument
    for w in (world, twin):
        # Fine thermal steps: the plant's linearised step overshoots for a big heater step
        # from base temperature at its default 0.1 s.
        w.thermal.max_step_s = 0.002
        w.thermal.set_heater("cavity", HOT_W)
    vst.centre_frequency, vst.span, vst.rbw, vst.integration_time = PAPER.fc_Hz, 2e6, 1e3, 5.0
    start = world.now()
    assert start == 0.0
    s = vst.spectrum()
    assert world.now() - start == pytest.approx(5.0, abs=1e-9)
    f_on = s.frequencies_Hz[on_resonance(s.frequencies_Hz)]
    # The time average of the model while the cavity warms (twin World sampled every 10 ms).
    averaged = 0.0
    for k in range(500):
        twin.advance_to((k + 0.5) * 0.01)
        averaged += expected_power(twin, f_on, s.bin_width_Hz).mean() / 500
    at_start = expected_power(cold, f_on, s.bin_width_Hz).mean()
    at_end = expected_power(world, f_on, s.bin_width_Hz).mean()
    measured = s.power_W[on_resonance(s.frequencies_Hz)].mean()
    # Noise 0.014/sqrt(580) = 0.06 %, the simulator's 50 ms temperature sampling < 0.1 %.
    assert measured / averaged == pytest.approx(1.0, abs=3e-3)
    # ... and it is neither the power before heating nor the one at the end (5 sigma apart).
    err = 5 * s.relative_scatter / np.sqrt(f_on.size)
    assert at_start * (1 + err) < measured < at_end * (1 - err)


def test_cw_tone_lands_in_its_bin_reflected_by_the_cavity(closing: list[Any]) -> None:
    vst, world, model = make_vst(closing)
    vst.centre_frequency, vst.span, vst.rbw, vst.integration_time = PAPER.fc_Hz, 4e6, 1e3, 1.0
    vst.source_power, vst.output = -50.0, True
    tones = {}
    for f_src in (PAPER.fc_Hz, PAPER.fc_Hz + 1.7e6):
        vst.source_frequency = f_src
        s = vst.spectrum()
        k = int(np.argmax(s.power_W))
        assert abs(s.frequencies_Hz[k] - f_src) <= s.bin_width_Hz / 2
        tones[f_src] = s.power_W[k] - expected_power(world, s.frequencies_Hz[k], s.bin_width_Hz)
    # Tone = P_source x input attenuation (60 dB) x G x |S_r|^2, noise ~1e-10 W besides 1e-5 W.
    for f_src, p in tones.items():
        s_r2 = abs(complex(reflection(f_src, PAPER))) ** 2
        assert p == pytest.approx(1e-8 * 1e-6 * CHAIN.gain * s_r2, rel=1e-4)
    assert model.line_baseline == pytest.approx(np.sqrt(1e-6 * CHAIN.gain) * np.exp(0.6j))


# -- reflection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cavity",
    [PAPER, Cavity(300e3, 250e3, 5.1e9), Cavity(150e3, 400e3, 3.0e9)],
    ids=["paper", "undercoupled-5.1GHz", "overcoupled-3GHz"],
)
def test_s11_fit_recovers_cavity(closing: list[Any], cavity: Cavity) -> None:
    world_params = {"cavity": {"kappa0_Hz": cavity.kappa0_Hz, "kappae_Hz": cavity.kappae_Hz,
                               "fc_Hz": cavity.fc_Hz}}
    vst, world, _ = make_vst(closing, world_params)
    vst.source_power, vst.output, vst.rbw = -50.0, True, 1e3
    half = 8 * cavity.linewidth_Hz
    sweep = vst.reflection_sweep(cavity.fc_Hz - half, cavity.fc_Hz + half, 2001)
    assert sweep.s11.dtype == np.complex128 and sweep.s11.size == 2001
    fit = fit_reflection(sweep.frequencies_Hz, sweep.s11)
    assert fit.cavity.kappa0_Hz == pytest.approx(cavity.kappa0_Hz, rel=0.02)
    assert fit.cavity.kappae_Hz == pytest.approx(cavity.kappae_Hz, rel=0.02)
    assert fit.cavity.fc_Hz == pytest.approx(cavity.fc_Hz, abs=1e3)
    # The fit's own errors are honest: the truth lies within 5 of them.
    assert abs(fit.cavity.kappa0_Hz - cavity.kappa0_Hz) < 5 * fit.kappa0_err_Hz
    assert abs(fit.cavity.fc_Hz - cavity.fc_Hz) < 5 * fit.fc_err_Hz
    # Line: |baseline| = sqrt(A_in G), delay 45 ns (sim defaults).
    assert abs(fit.baseline) == pytest.approx(np.sqrt(1e-6 * CHAIN.gain), rel=1e-3)
    assert fit.delay_s == pytest.approx(45e-9, rel=1e-3)
    # Residual scatter per quadrature = sqrt(P_noise / 2 P_source): receiver noise in the RBW
    # (cavity at base 15 mK: T~ = hf/2k_B plus T_a) relative to the -50 dBm tone.
    t_sys = effective_temperature(0.015, cavity.fc_Hz) + CHAIN.added_noise_K
    sigma = np.sqrt(CHAIN.gain * constants.k * t_sys * 1e3 / (2 * 1e-8))
    assert fit.residual_rms == pytest.approx(sigma, rel=0.05)  # 4000 values: 1.1 % precision


def test_sweep_takes_points_over_rbw_and_needs_the_source(closing: list[Any]) -> None:
    vst, world, _ = make_vst(closing)
    with pytest.raises(InstrumentError, match="-221.*output off"):
        vst.reflection_sweep()
    vst.output, vst.rbw = True, 500.0
    start = world.now()
    sweep = vst.reflection_sweep(points=1001)
    assert world.now() - start == pytest.approx(1001 / 500.0, abs=1e-9)
    assert sweep.frequencies_Hz[0] == 4.99e9 and sweep.frequencies_Hz[-1] == 5.01e9
    vst.sweep_start, vst.sweep_stop = 5.0e9, 4.9e9
    with pytest.raises(InstrumentError, match="-221.*stop"):
        vst.reflection_sweep()


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"span": 6e8, "rbw": 1.0}, "bins"),
        ({"rbw": 10.0, "integration_time": 1e-3}, "1/RBW"),
        ({"centre_frequency": 1e4, "span": 1e6}, "span leaves"),
        ({"span": 100.0, "rbw": 1e3}, "below RBW"),
    ],
)
def test_spectrum_refuses_impossible_settings(
    closing: list[Any], settings: dict[str, float], reason: str
) -> None:
    vst, world, _ = make_vst(closing)
    for name, value in settings.items():
        setattr(vst, name, value)
    with pytest.raises(InstrumentError, match=f"-221.*{reason}"):
        vst.spectrum()
    assert world.now() == 0.0  # a refused capture takes no time
    assert vst.query("SYST:ERR?").startswith("0,")


def test_fetch_without_init_is_refused(closing: list[Any]) -> None:
    vst, _, _ = make_vst(closing)
    for command in ("FETC:SPEC?", "FETC:SWE?"):
        with pytest.raises(InstrumentError, match="-230.*INIT"):
            vst.query_block(command)


# -- model parameters -----------------------------------------------------------------------------


def test_model_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="attenuator_plate.*'attenuator'"):
        VstModel(World({"thermal": {"plates": {"cavity": {}}}}), "vst")
    with pytest.raises(ValueError, match="cavity_plate.*'cold'"):
        VstModel(World({"thermal": {"plates": {"attenuator": {}}}}), "vst",
                 {"cavity_plate": "cold"})
    plates = {"thermal": {"plates": {"attenuator": {}, "cavity": {}}}}
    with pytest.raises(ValueError, match=r"world\.cavity\.kappa0_Hz.*0\.001 \.\. 1e\+09"):
        VstModel(World({**plates, "cavity": {"kappa0_Hz": -5}}), "vst")
    with pytest.raises(ValueError, match=r"world\.chain\.added_noise_K"):
        VstModel(World({**plates, "chain": {"added_noise_K": "hot"}}), "vst")
    with pytest.raises(ValueError, match=r"vst\.sim\.delay_s"):
        VstModel(World(plates), "vst", {"delay_s": 1.0})
    model = VstModel(World({"thermal": {}}), "vst", {"attenuator_plate": "mixing",
                                                      "cavity_plate": "mixing"})
    assert model.attenuator_plate == model.cavity_plate == "mixing"


# -- standard driver behaviour --------------------------------------------------------------------

NEW_VALUES = {
    "centre_frequency": 4.944458e9,
    "span": 3.5e6,
    "rbw": 250.0,
    "integration_time": 180.0,
    "source_frequency": 4.9445e9,
    "source_power": -62.5,
    "output": True,
    "sweep_start": 4.94e9,
    "sweep_stop": 4.95e9,
    "sweep_points": 4001,
}


def test_settings_round_trip(closing: list[Any]) -> None:
    vst, _, _ = make_vst(closing)
    for name, value in NEW_VALUES.items():
        setattr(vst, name, value)
    got = vst.settings()
    for name, value in NEW_VALUES.items():
        assert got[name] == pytest.approx(value, rel=1e-9), name
    assert vst.summary() == {
        "centre": "4.944458 GHz",
        "span": "3.5 MHz",
        "rbw": "250 Hz",
        "integration": "180 s",
        "source": "4.944500 GHz, -62.5 dBm, on",
    }


def test_out_of_range_is_refused_client_side(closing: list[Any]) -> None:
    vst, _, _ = make_vst(closing)
    with pytest.raises(SettingRangeError, match=r"1 Hz \.\. 1e\+07 Hz"):
        vst.rbw = 1e8
    with pytest.raises(SettingRangeError, match=r"2 \.\. 100001"):
        vst.sweep_points = 1
    with pytest.raises(SettingRangeError, match=r"-120 dBm \.\. 10 dBm"):
        vst.source_power = 20.0
    assert vst.rbw == 1e3


def test_instrument_side_refusal_reaches_the_client(closing: list[Any]) -> None:
    vst, _, _ = make_vst(closing)
    with pytest.raises(InstrumentError, match="-222.*Data out of range"):
        vst.write("BAND:RES 9.9e+99")
    assert vst.rbw == 1e3


def test_reset_restores_defaults(closing: list[Any]) -> None:
    vst, _, _ = make_vst(closing)
    defaults = vst.settings()
    for name, value in NEW_VALUES.items():
        setattr(vst, name, value)
    vst.reset()
    assert vst.settings() == defaults
    assert defaults["output"] is False and defaults["rbw"] == 1e3


def test_plain_pyvisa_sim_control(closing: list[Any]) -> None:
    rm = pyvisa.ResourceManager(f"{device_file('vst')}@sim")
    vst = VectorSignalTransceiver.open(rm, ADDRESS)
    closing.append(vst)
    assert vst.idn.startswith("cryodaq,VST6")
    vst.centre_frequency = 4.944458e9
    assert vst.centre_frequency == pytest.approx(4.944458e9, rel=1e-9)
    with pytest.raises(InstrumentError):  # plain pyvisa-sim answers -113 for bad values
        vst.write("SOUR:POW 9.9e+99")
    assert vst.summary()["rbw"] == "1000 Hz"
