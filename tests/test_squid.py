"""SQUID FLL electronics: settings, lock behaviour and the detector signal reaching the ADC."""

from __future__ import annotations

import numpy as np
import pytest
import pyvisa

from cryodaq.drivers.adc import Adc16
from cryodaq.drivers.errors import InstrumentError, SettingRangeError
from cryodaq.drivers.squid import SquidElectronics
from cryodaq.sim_instruments.adc_model import AdcModel
from cryodaq.sim_instruments.library import CryoSimLibrary, SimInstrument
from cryodaq.sim_instruments.squid_model import SquidModel
from cryodaq.sim_instruments.world import World

DETECTOR = {
    "rate_hz": 40.0,
    "rise_s": 20e-6,
    "decay_s": 0.5e-3,
    "phi0_per_eV": 2e-5,
    "noise_phi0_per_rthz": 1e-7,
    "lines": [{"energy_eV": 3000.0}],
}


def chain(closing: list, **squid_params: object) -> tuple[SquidElectronics, Adc16, SquidModel]:
    world = World({"seed": 5, "detectors": {"tes": DETECTOR}})
    squid = SquidModel(world, "fll", {"detector": "tes", **squid_params})
    adc = AdcModel(world, "adc", {"inputs": {1: "fll.ch1", 2: "fll.ch2"}, "noise_lsb": 0.5})
    library = CryoSimLibrary.serving(
        [
            SimInstrument("TCPIP0::127.0.0.1::5030::SOCKET", "squid", squid),
            SimInstrument("TCPIP0::127.0.0.1::5025::SOCKET", "adc", adc),
        ]
    )
    rm = pyvisa.ResourceManager(library)
    fll = SquidElectronics.open(rm, "TCPIP0::127.0.0.1::5030::SOCKET", name="fll")
    digitizer = Adc16.open(rm, "TCPIP0::127.0.0.1::5025::SOCKET", name="adc")
    closing.extend([fll, digitizer])
    return fll, digitizer, squid


def test_settings_round_trip_per_channel(closing: list) -> None:
    fll, _, _ = chain(closing)
    ch = fll.channel(7)
    ch.bias_current = 31e-6
    ch.flux_bias = -12e-6
    ch.voltage_bias = 1e-4
    ch.feedback_resistor = 30e3
    ch.gain_bandwidth = 1.85e9
    ch.mode = "fll"
    assert (ch.bias_current, ch.flux_bias, ch.voltage_bias) == (31e-6, -12e-6, 1e-4)
    assert (ch.feedback_resistor, ch.gain_bandwidth, ch.mode) == (30e3, 1.85e9, "FLL")
    assert fll.channel(8).bias_current == 0.0
    fll.reset()
    assert ch.mode == "AMP" and ch.bias_current == 0.0 and not ch.locked


def test_lock_needs_fll_mode_and_bias_in_window(closing: list) -> None:
    fll, _, _ = chain(closing, critical_current_A=20e-6)
    ch = fll.channel(1)
    ch.mode = "FLL"
    assert not ch.locked  # no bias: the SQUID has no voltage swing
    ch.bias_current = 30e-6
    assert not ch.locked  # bias alone does not relock
    ch.relock()
    assert ch.locked
    ch.bias_current = 100e-6  # far above 2.5 I_c: swing gone, lock lost
    assert not ch.locked
    ch.mode = "AMP"
    with pytest.raises(InstrumentError, match="-221.*not in FLL"):
        ch.relock()


def test_locked_channel_passes_pulses_of_the_expected_height(closing: list) -> None:
    fll, adc, squid = chain(closing)
    fll.channel(1).bias_current = 30e-6
    fll.channel(1).feedback_resistor = 10e3
    fll.channel(1).mode = "FLL"
    fll.channel(2).mode = "FLL"  # no bias current: cannot lock
    adc.sample_rate = 1e6
    adc.input_range = 2.0
    adc.start()
    volts = adc.fetch(400_000).volts()
    # Expected height: E * phi0_per_eV * R_f * (1/M_f), with 1/M_f = 44 uA/Phi0 (model default).
    expected = 3000.0 * 2e-5 * 10e3 * 44e-6
    truth = [t for t, _ in squid.outputs["1"].source.history if t < 0.4 - 0.002]
    assert len(truth) > 5
    for t in truth:
        i = int(round(t * 1e6))
        peak = volts[0, i : i + 200].max() - volts[0, max(i - 20, 0) : i].mean()
        # 3 % covers pile-up tails (40 Hz, 0.5 ms decay) and the FLL's 4.6 MHz low-pass.
        assert peak == pytest.approx(expected, rel=0.03)
    # The unlocked channel passes no pulse: amplifier noise (20 uV) and ADC codes only.
    assert not fll.channel(2).locked
    assert np.abs(volts[1]).max() < 0.01 * expected


def test_client_side_and_instrument_errors(closing: list) -> None:
    fll, _, _ = chain(closing)
    with pytest.raises(SettingRangeError, match="0 A .. 0.00018 A"):
        fll.channel(1).bias_current = 1e-3
    with pytest.raises(SettingRangeError, match="AMP, FLL"):
        fll.channel(1).mode = "OPEN"
    with pytest.raises(InstrumentError, match="-222"):
        fll.write("CH1:IB 5.0e-01")
    with pytest.raises(InstrumentError, match="-113"):
        fll.query("CH1:NOPE?")


def test_amp_mode_shows_the_periodic_v_phi_curve(closing: list) -> None:
    fll, adc, squid = chain(closing)
    ch = fll.channel(1)
    ch.bias_current = 30e-6
    ch.mode = "AMP"
    # Sweep the flux bias over one flux quantum (40 uA per Phi0): output follows a sine.
    outputs = []
    adc.start()
    for ib in np.linspace(-20e-6, 20e-6, 9):
        ch.flux_bias = ib
        outputs.append(adc.fetch(200).volts()[0].mean())
    swing = squid.swing_V("1")
    assert max(outputs) - min(outputs) == pytest.approx(swing, rel=0.1)
