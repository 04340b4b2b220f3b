"""Lake Shore 372 on the simulated fridge: settings, refusals, reset, RuO2 readings.

Readings are compared with the RuO2 law R = R_inf exp(sqrt(T0 / T)) and the plant's steady
states (tests/fridge.py), independently of the simulator's code; heater and PID physics are in
test_thermal_loops.py.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import numpy as np
import pytest
import pyvisa

from cryodaq.drivers.errors import InstrumentError, SettingRangeError
from cryodaq.sim_instruments.lakeshore372_model import LakeShore372Model
from cryodaq.sim_instruments.library import device_file
from cryodaq.sim_instruments.world import World
from tests.fridge import CAVITY_OHM, make, record, sample_full_W, steady_temperature

#: `*ESR?` bits as the driver reports them: execution error (16), command error (32).
ESR_EXECUTION, ESR_COMMAND = re.escape("*ESR? 16"), re.escape("*ESR? 32")


# -- driver ------------------------------------------------------------------------------------


def test_identity_and_settings_round_trip(closing: list[Any]) -> None:
    tc, _ = make(closing)
    assert tc.idn.startswith("LSCI,MODEL372")
    out = tc.loops[0]
    values = {"heater_range": 1e-5, "manual_output": 25.0, "setpoint": 0.125, "ramp_rate": 0.03,
              "ramp_enabled": True, "p": 12.5, "i": 7.0, "d": 0.5, "input_channel": "3"}
    for name, value in values.items():
        setattr(out, name, value)
    out.mode = "open_loop"  # OneOf is case-insensitive and sends the canonical index
    got = out.settings()
    for name, value in values.items():
        assert got[name] == (value if isinstance(value, str) else pytest.approx(value)), name
    assert got["mode"] == "OPEN_LOOP" and got["output"] == pytest.approx(25.0)
    # the other outputs are untouched
    assert tc.loops[1].heater_range == 0.0 and tc.loops[1].p == 10.0
    analog = tc.loops[2]
    analog.enabled, analog.manual_output, analog.mode = True, 40.0, "STILL"
    assert (analog.enabled, analog.manual_output, analog.mode) == (True, 40.0, "STILL")
    assert analog.output == pytest.approx(40.0)
    tc.input(5).enabled = True
    tc.input(5).label = "still"
    assert tc.input(5).enabled is True and tc.input(5).label == "still"
    tc.input(5).enabled = False
    assert tc.input(5).enabled is False and tc.input(4).enabled is False
    assert tc.input(2).enabled is True  # a wired sensor is in the scan at power-on
    tc.regulate(0, 0.05, input_channel=2)
    assert (out.mode, out.input_channel, out.setpoint) == ("CLOSED_LOOP", "2", 0.05)


def test_client_side_range_errors_name_the_allowed_values(closing: list[Any]) -> None:
    tc, _ = make(closing)
    with pytest.raises(SettingRangeError, match=r"0 K \.\. 100 K"):
        tc.loops[0].setpoint = 120.0
    # 100 ohm: 31.6 uA .. 100 mA is 100 nW .. 1 W in decades
    with pytest.raises(SettingRangeError, match=r"RANGE 0.*0 W, 1e-07 W, 1e-06 W, .*, 1 W"):
        tc.loops[0].heater_range = 3e-6
    with pytest.raises(SettingRangeError, match="OFF, MONITOR_OUT, OPEN_LOOP, .*CLOSED_LOOP"):
        tc.loops[0].mode = "PID"
    with pytest.raises(SettingRangeError, match="input_channel"):
        tc.loops[0].input_channel = "17"
    with pytest.raises(SettingRangeError, match=r"0 % \.\. 100 %"):
        tc.loops[0].manual_output = 150.0
    with pytest.raises(InstrumentError, match=r"no such output \(has 0, 1\)"):
        tc.group_channel("outputs", 3)
    with pytest.raises(InstrumentError, match="no such channel"):
        tc.input(17)
    with pytest.raises(InstrumentError, match="read-only"):
        tc.input(1).temperature = 0.1


def test_instrument_side_refusals_set_esr_bits_and_name_the_command(closing: list[Any]) -> None:
    tc, world = make(closing, heaters={0: "attenuator"})
    with pytest.raises(InstrumentError, match=rf"'SETP 0,150'.*{ESR_EXECUTION}"):
        tc.write("SETP 0,150")
    with pytest.raises(InstrumentError, match=rf"'SETP 3,0.1'.*{ESR_EXECUTION}"):
        tc.write("SETP 3,0.1")
    with pytest.raises(InstrumentError, match=rf"'INSET 17,1,10,3,0,1'.*{ESR_EXECUTION}"):
        tc.write("INSET 17,1,10,3,0,1")
    with pytest.raises(InstrumentError, match=rf"'TEMP 0,1'.*{ESR_COMMAND}"):
        tc.write("TEMP 0,1")
    with pytest.raises(InstrumentError, match=rf"'SETP 0,cold'.*{ESR_COMMAND}"):
        tc.write("SETP 0,cold")
    # output 2 drives no heater here: open or closed loop is refused, the mode stays OFF
    for mode in ("OPEN_LOOP", "CLOSED_LOOP"):
        with pytest.raises(InstrumentError, match=rf"'OUTMODE 2,\d.*{ESR_EXECUTION}"):
            tc.loops[2].mode = mode
    assert tc.loops[2].mode == "OFF"
    # closed loop needs an enabled input with a sensor
    tc.loops[0].input_channel = "6"  # allowed as a field: the loop is not running
    with pytest.raises(InstrumentError, match=rf"'OUTMODE 0,5,6,.*{ESR_EXECUTION}"):
        tc.loops[0].mode = "CLOSED_LOOP"
    tc.input(3).enabled = False
    with pytest.raises(InstrumentError, match=rf"'OUTMODE 0,5,3,.*{ESR_EXECUTION}"):
        tc.regulate(0, 0.05, input_channel=3)
    assert tc.loops[0].mode == "OFF"
    tc.loops[0].heater_range = 1e-6
    tc.loops[0].p, tc.loops[0].i = 30.0, 5.0
    tc.regulate(0, 0.05, input_channel=2)
    with pytest.raises(InstrumentError, match=rf"'INSET 2,0,.*{ESR_EXECUTION}"):
        tc.input(2).enabled = False
    with pytest.raises(InstrumentError, match=rf"'OUTMODE 0,5,7,.*{ESR_EXECUTION}"):
        tc.loops[0].input_channel = "7"
    # the warm-up heater has ranges off and on only
    with pytest.raises(InstrumentError, match=rf"'RANGE 1,2'.*{ESR_EXECUTION}"):
        tc.write("RANGE 1,2")
    start = time.monotonic()
    assert math.isnan(tc.temperature(3))  # a disabled input: no reading, at once
    assert time.monotonic() - start < 1.0
    assert tc.query("*ESR?") == "0"  # every refusal was reported once
    world.advance_to(20.0)  # the loop kept running through all of this
    assert tc.loops[0].mode == "CLOSED_LOOP" and tc.heater_power(0) > 0
    assert tc.input(2).enabled and tc.loops[0].input_channel == "2"
    assert world.thermal.temperature("attenuator") == pytest.approx(0.05, abs=1e-3)


def test_reset_restores_defaults_and_switches_heaters_off(closing: list[Any]) -> None:
    tc, world = make(closing)
    defaults = {o.ch: o.settings() for o in tc.loops}
    inputs = {c.ch: c.enabled for c in tc.channels}
    out = tc.loops[0]
    out.heater_range, out.manual_output, out.mode = 1e-4, 50.0, "OPEN_LOOP"
    tc.loops[2].p, tc.loops[2].i, tc.loops[2].enabled = 1.0, 2.0, True
    tc.regulate(2, 0.2, input_channel=3)
    tc.input(4).enabled = True
    world.advance_to(2.0)
    assert world.thermal.heater("attenuator") == pytest.approx(0.25 * 1e-4)
    tc.reset()
    assert {o.ch: o.settings() for o in tc.loops} == defaults
    assert {c.ch: c.enabled for c in tc.channels} == inputs
    assert defaults[0]["mode"] == "OFF" and defaults[0]["heater_range"] == 0.0
    assert world.thermal.heater("attenuator") == 0.0 and world.thermal.heater("cavity") == 0.0
    world.advance_to(60.0)  # no loop left running: the plates cool back towards the base
    assert world.thermal.temperature("cavity") < 0.02


def test_plain_pyvisa_sim_opens_the_device_file() -> None:
    rm = pyvisa.ResourceManager(f"{device_file('lakeshore372')}@sim")
    try:
        (address,) = rm.list_resources("?*")
        assert address == "TCPIP0::127.0.0.1::7777::SOCKET"
        inst = rm.open_resource(address, read_termination="\r\n", write_termination="\r\n")
        assert inst.query("*IDN?").startswith("LSCI,MODEL372,")
        inst.close()
    finally:
        rm.close()


def test_model_parameters_are_validated() -> None:
    world = World({"thermal": {"plates": {"attenuator": {}}}})
    with pytest.raises(ValueError, match=r"'still'.*plates: mixing, attenuator"):
        LakeShore372Model(world, "tc", {"sensors": {1: "still"}})
    with pytest.raises(ValueError, match=r"heaters.0.*'cavity'.*plates: mixing, attenuator"):
        LakeShore372Model(world, "tc", {"heaters": {0: "cavity"}})
    with pytest.raises(ValueError, match=r"outputs are 0, 1 and 2"):
        LakeShore372Model(world, "tc", {"heaters": {3: "attenuator"}})
    for wrong in (17, 0):  # inputs are 1-16 and A; 0 is an output
        with pytest.raises(ValueError, match=rf"sensors: no input or output \['{wrong}'\]"):
            LakeShore372Model(world, "tc", {"sensors": {wrong: "mixing"}})
    with pytest.raises(ValueError, match=r"calibration_error must be in -0.5 \.\. 0.5"):
        LakeShore372Model(
            world, "tc", {"sensors": {1: {"plate": "mixing", "calibration_error": 2}}}
        )
    with pytest.raises(ValueError, match=r"resistance_ohm must be in 1 \.\. 1e\+08"):
        LakeShore372Model(
            world, "tc", {"heaters": {0: {"plate": "attenuator", "resistance_ohm": 0}}}
        )
    with pytest.raises(ValueError, match=r"loop_period_s must be in 0.001 \.\. 10"):
        LakeShore372Model(world, "tc", {"loop_period_s": 0})
    model = LakeShore372Model(world, "tc", {"sensors": {"a": "mixing", 2: "attenuator"}})
    assert {ch: s.plate for ch, s in model.sensors.items()} == {"A": "mixing", "2": "attenuator"}


# -- thermometers ------------------------------------------------------------------------------


def test_ruo2_readings_follow_the_sensor_curve(closing: list[Any]) -> None:
    r_inf, t0, noise = 2200.0, 0.6, 3e-4  # non-default sensor
    tc, world = make(closing, sensors={
        2: {"plate": "attenuator", "r_inf_ohm": r_inf, "t0_K": t0, "noise_rel": noise},
        3: "cavity",
    })
    power = 0.5**2 * sample_full_W(2)  # 50 % of 100 uA in 100 ohm: 250 nW
    tc.loops[0].heater_range = sample_full_W(2)
    tc.loops[0].manual_output = 50.0
    tc.loops[0].mode = "OPEN_LOOP"
    world.advance_to(40.0)
    true_t = world.thermal.temperature("attenuator")
    assert true_t == pytest.approx(steady_temperature("attenuator", power), rel=1e-3)
    n = 300
    r = np.array([tc.resistance(2) for _ in range(n)])
    t = np.array([tc.temperature(2) for _ in range(n)])
    true_r = r_inf * math.exp(math.sqrt(t0 / true_t))
    # relative noise: mean within 4 standard errors, scatter within 20 % (4 sigma for n = 300)
    assert np.mean(r) / true_r - 1 == pytest.approx(0, abs=4 * noise / math.sqrt(n))
    assert np.std(r) / true_r == pytest.approx(noise, rel=0.2)
    # T = T0 / ln(R/R_inf)^2 carries sigma_T/T = 2 sigma_R/R / ln(R/R_inf)
    sigma_t = 2 * noise / math.log(true_r / r_inf)
    assert np.mean(t) / true_t - 1 == pytest.approx(0, abs=4 * sigma_t / math.sqrt(n))
    assert np.std(t) / true_t == pytest.approx(sigma_t, rel=0.2)
    # default sensor (R_inf 1 kohm, T0 0.3 K, noise 1e-4) on the cavity
    t_cav = world.thermal.temperature("cavity")
    assert tc.resistance(3) == pytest.approx(1000 * math.exp(math.sqrt(0.3 / t_cav)), rel=5e-4)
    # an input in the scan with no sensor: 0 K and 0 ohm, flagged by RDGST?; the driver: nan
    tc.input(8).enabled = True
    assert tc.query("KRDG? 8") == tc.query("RDGR? 8") == "+0.00000E+00"
    assert int(tc.query("RDGST? 8")) & 16  # R. OVER
    assert math.isnan(tc.resistance(8)) and math.isnan(tc.temperature(8))
    assert tc.summary()["in8"] == "no reading"
    assert tc.input(3).status == 0


def test_calibration_error_scales_the_reading_not_the_plate(closing: list[Any]) -> None:
    error = 0.04
    tc, world = make(closing, sensors={
        2: "attenuator", 3: {"plate": "cavity", "calibration_error": error},
    })
    out = tc.loops[2]
    out.enabled, out.manual_output, out.mode = True, 20.0, "OPEN_LOOP"
    power = (0.2 * 10.0) ** 2 / CAVITY_OHM  # 2 V into 1 Mohm: 4 uW
    world.advance_to(40.0)
    true_t = world.thermal.temperature("cavity")
    assert true_t == pytest.approx(steady_temperature("cavity", power), rel=1e-3)
    readings = np.array([tc.temperature(3) for _ in range(50)])
    # sigma_T/T = 2e-4 / sqrt(T0/T) ~ 2e-4 per reading; the mean of 50 to 1e-4
    assert np.mean(readings) / true_t == pytest.approx(1 + error, abs=1e-4)
    # the resistance is what the sensor really has: unaffected by the controller's curve
    true_r = 1000 * math.exp(math.sqrt(0.3 / true_t))
    assert np.mean([tc.resistance(3) for _ in range(50)]) == pytest.approx(true_r, rel=1e-4)
    # regulating on the miscalibrated thermometer puts the true plate at setpoint / (1 + e)
    out.p, out.i, out.d = 3.0, 1.0, 0.0
    tc.regulate(2, 0.25, input_channel=3)
    held = record(tc, world, "cavity", 3, 80.0, 120.0, 1.0)
    assert np.mean(held["true"]) == pytest.approx(0.25 / (1 + error), abs=1e-4)
    assert np.mean(held["read"]) == pytest.approx(0.25, abs=1e-4)
