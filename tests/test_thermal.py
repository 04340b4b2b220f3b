"""Temperature controller: driver round trips and errors, RuO2 readings, heater and PID physics.

Physics expectations are computed here from the plant's laws (plate link P = k (T^n - T_mx^n),
mixing plate T_mx = sqrt(T_base^2 + P_load / c)) and the RuO2 law R = R_inf exp(sqrt(T0 / T)),
independently of the simulator's code.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest
import pyvisa
from scipy.optimize import brentq

from cryodaq.drivers.errors import InstrumentError, SettingRangeError
from cryodaq.drivers.thermal import TemperatureController
from cryodaq.sim_instruments.library import device_file
from cryodaq.sim_instruments.thermal_controller_model import TemperatureControllerModel
from cryodaq.sim_instruments.world import World
from tests.conftest import open_simulated

BASE_K = 0.012
COOLING_W_PER_K2 = 1.5e-3
#: Two plates with different links: attenuator (n = 2, tau = gamma / (n k) = 1 s),
#: cavity (n = 3, tau = gamma / (3 k T) = 0.33 s at 250 mK).
PLATES = {
    "attenuator": {"gamma_J_per_K2": 1e-4, "link_W_per_Kn": 5e-5, "link_exponent": 2.0},
    "cavity": {"gamma_J_per_K2": 5e-5, "link_W_per_Kn": 2e-4, "link_exponent": 3.0},
}


def make(
    closing: list[Any],
    sensors: dict[int, Any] | None = None,
    plates: dict[str, dict[str, float]] | None = None,
    seed: int = 7,
    **params: Any,
) -> tuple[TemperatureController, World]:
    """A controller on a two-plate fridge; heaters 1 -> attenuator, 2 -> cavity by default."""
    plates = plates or {name: {**p, "initial_K": BASE_K} for name, p in PLATES.items()}
    world = World({
        "seed": seed,
        "thermal": {
            "mixing": {"base_K": BASE_K, "cooling_W_per_K2": COOLING_W_PER_K2},
            "plates": plates,
        },
    })
    params.setdefault("heaters", {1: "attenuator", 2: "cavity"})
    sensors = sensors or {1: "mixing", 2: "attenuator", 3: "cavity"}
    model = TemperatureControllerModel(world, "tc", {"sensors": sensors, **params})
    tc = open_simulated(TemperatureController, "thermal", model)
    closing.append(tc)
    return tc, world


def link_power(plate: str, t: float, t_mx: float) -> float:
    p = PLATES[plate]
    n = p["link_exponent"]
    return p["link_W_per_Kn"] * (t**n - t_mx**n)


def mixing_K(load_W: float) -> float:
    return math.sqrt(BASE_K**2 + load_W / COOLING_W_PER_K2)


def steady_temperature(plate: str, power_W: float) -> float:
    """Plate temperature where the link carries `power_W` to the mixing plate it warms."""
    p = PLATES[plate]
    n = p["link_exponent"]
    return (mixing_K(power_W) ** n + power_W / p["link_W_per_Kn"]) ** (1.0 / n)


def held_power(plate: str, t: float) -> float:
    """Heater power that holds `plate` at `t` in steady state."""
    return brentq(lambda w: w - link_power(plate, t, mixing_K(w)), 0.0, 1.0, xtol=1e-15)


def loop_conductance(plate: str, t: float) -> float:
    """d(heater power)/dT in steady state at `t`: the link's n k T^(n-1), reduced because the
    mixing plate warms with the load (dT_mx/dP = 1 / (2 c T_mx))."""
    p = PLATES[plate]
    n, k = p["link_exponent"], p["link_W_per_Kn"]
    t_mx = mixing_K(held_power(plate, t))
    return n * k * t ** (n - 1) / (1 + n * k * t_mx ** (n - 2) / (2 * COOLING_W_PER_K2))


def ramp_lag(plate: str, t: np.ndarray, rate_K_per_s: float, p: float, i_s: float,
             heater_range: float) -> np.ndarray:
    """Steady lag of a PI loop behind a ramp: the integral term must grow as fast as the
    power the link needs, P e / I = G r / range, so e = r I G / (P range)."""
    g = np.array([loop_conductance(plate, x) for x in t])
    return rate_K_per_s * i_s * g / (p * heater_range)


def record(tc: TemperatureController, world: World, plate: str, out: int, ch: int,
           t0: float, t1: float, dt: float) -> dict[str, np.ndarray]:
    """True plate temperature, controller reading and heater power sampled on [t0, t1]."""
    rows = []
    for t in np.arange(t0, t1 + dt / 2, dt):
        world.advance_to(t)
        rows.append((t, world.thermal.temperature(plate), tc.temperature(ch), tc.heater_power(out)))
    a = np.array(rows)
    return {"t": a[:, 0], "true": a[:, 1], "read": a[:, 2], "power": a[:, 3]}


# -- driver ------------------------------------------------------------------------------------


def test_identity_and_settings_round_trip(closing: list[Any]) -> None:
    tc, _ = make(closing)
    assert tc.idn.startswith("cryodaq,TC372")
    out = tc.output(2)
    values = {"heater_range": 1e-3, "manual_power": 2.5e-4, "setpoint": 0.125, "ramp_rate": 0.03,
              "ramp_enabled": True, "p": 12.5, "i": 7.0, "d": 0.5, "input_channel": 3}
    for name, value in values.items():
        setattr(out, name, value)
    out.mode = "manual"  # OneOf is case-insensitive and sends the canonical spelling
    got = out.settings()
    for name, value in values.items():
        assert got[name] == pytest.approx(value, rel=1e-9), name
    assert got["mode"] == "MANUAL"
    assert tc.output(1).heater_range == pytest.approx(1e-5)  # the other output is untouched
    tc.thermometer(5).enabled = False
    assert tc.thermometer(5).enabled is False and tc.thermometer(4).enabled is True
    tc.set_pid(1, 33.0, 4.0, 0.25)
    assert (tc.output(1).p, tc.output(1).i, tc.output(1).d) == (33.0, 4.0, 0.25)


def test_client_side_range_errors_name_the_allowed_values(closing: list[Any]) -> None:
    tc, _ = make(closing)
    with pytest.raises(SettingRangeError, match=r"0 K \.\. 10 K"):
        tc.output(1).setpoint = 12.0
    with pytest.raises(SettingRangeError, match=r"1e-06, 1e-05, .*0\.1 W"):
        tc.output(1).heater_range = 3e-6
    with pytest.raises(SettingRangeError, match="OFF, MANUAL, PID"):
        tc.output(1).mode = "AUTO"
    with pytest.raises(InstrumentError, match="no such output"):
        tc.output(3)
    with pytest.raises(InstrumentError, match="read-only"):
        tc.thermometer(1).temperature = 0.1


def test_instrument_side_refusals_reach_the_client(closing: list[Any]) -> None:
    tc, world = make(closing, heaters={1: "attenuator"})
    with pytest.raises(InstrumentError, match="-222"):
        tc.write("OUT1:SETP 9.9e+99")
    with pytest.raises(InstrumentError, match="-114"):
        tc.write("OUT3:SETP 1.0e-01")
    # output 2 drives no heater: MANUAL and PID are a settings conflict
    for mode in ("MANUAL", "PID"):
        with pytest.raises(InstrumentError, match="-221.*output 2 drives no heater"):
            tc.output(2).mode = mode
    assert tc.output(2).mode == "OFF"
    # PID needs a wired, enabled input channel
    tc.output(1).input_channel = 6
    with pytest.raises(InstrumentError, match="-221.*input channel 6 has no sensor"):
        tc.output(1).mode = "PID"
    tc.output(1).heater_range = 1e-6
    tc.set_pid(1, 10.0, 5.0, 0.0)
    tc.regulate(1, 0.05, input_channel=2)
    with pytest.raises(InstrumentError, match="-221.*channel 2 is the input of output 1"):
        tc.thermometer(2).enabled = False
    with pytest.raises(InstrumentError, match="-221.*input channel 7 has no sensor"):
        tc.output(1).input_channel = 7
    tc.thermometer(3).enabled = False
    start = time.monotonic()
    with pytest.raises(InstrumentError, match="-221.*channel 3 is disabled"):
        tc.temperature(3)
    assert time.monotonic() - start < 1.0
    assert tc.query("SYST:ERR?").startswith("0,")  # every refusal was reported once
    world.advance_to(1.0)  # the loop kept running through all of this
    assert tc.output(1).mode == "PID" and tc.heater_power(1) > 0
    assert world.thermal.temperature("attenuator") > 0.03


def test_reset_restores_defaults_and_switches_heaters_off(closing: list[Any]) -> None:
    tc, world = make(closing)
    defaults = {o.ch: o.settings() for o in tc.outputs}
    defaults_enabled = tc.thermometer(4).enabled
    out = tc.output(1)
    out.heater_range, out.manual_power, out.mode = 1e-4, 5e-5, "MANUAL"
    tc.set_pid(2, 1.0, 2.0, 3.0)
    tc.regulate(2, 0.2, input_channel=3)
    tc.thermometer(4).enabled = False
    world.advance_to(2.0)
    assert world.thermal.heater("attenuator") == pytest.approx(5e-5)
    tc.reset()
    assert {o.ch: o.settings() for o in tc.outputs} == defaults
    assert tc.thermometer(4).enabled == defaults_enabled
    assert defaults[1]["mode"] == "OFF" and defaults[1]["power"] == 0.0
    assert world.thermal.heater("attenuator") == 0.0 and world.thermal.heater("cavity") == 0.0
    world.advance_to(60.0)  # no loop left running: the plates cool back towards the base
    assert world.thermal.temperature("cavity") < 0.02


def test_plain_pyvisa_sim_opens_the_device_file() -> None:
    rm = pyvisa.ResourceManager(f"{device_file('thermal')}@sim")
    try:
        (address,) = rm.list_resources("?*")
        assert address == "TCPIP0::127.0.0.1::7372::SOCKET"
        inst = rm.open_resource(address, read_termination="\n", write_termination="\n")
        assert inst.query("*IDN?").startswith("cryodaq,TC372")
        inst.write("OUT2:RANG 1.000000000e-03")
        assert float(inst.query("OUT2:RANG?")) == pytest.approx(1e-3)
        assert inst.query("OUT1:MODE?") == "OFF"
        inst.close()
    finally:
        rm.close()


def test_model_parameters_are_validated() -> None:
    world = World({"thermal": {"plates": {"attenuator": {}}}})
    with pytest.raises(ValueError, match=r"'still'.*plates: mixing, attenuator"):
        TemperatureControllerModel(world, "tc", {"sensors": {1: "still"}})
    with pytest.raises(ValueError, match=r"heaters.2.*'cavity'.*plates: mixing, attenuator"):
        TemperatureControllerModel(world, "tc", {"heaters": {2: "cavity"}})
    with pytest.raises(ValueError, match=r"sensors: 9 is not one of 1, 2"):
        TemperatureControllerModel(world, "tc", {"sensors": {9: "mixing"}})
    with pytest.raises(ValueError, match=r"calibration_error must be in -0.5 \.\. 0.5"):
        TemperatureControllerModel(
            world, "tc", {"sensors": {1: {"plate": "mixing", "calibration_error": 2}}}
        )
    with pytest.raises(ValueError, match=r"loop_period_s must be in 0.001 \.\. 10"):
        TemperatureControllerModel(world, "tc", {"loop_period_s": 0})
    with pytest.raises(ValueError, match=r"two outputs drive the same plate"):
        TemperatureControllerModel(world, "tc", {"heaters": ["attenuator", "attenuator"]})
    listed = TemperatureControllerModel(world, "tc", {"sensors": ["mixing", "attenuator"]})
    assert [s.plate for s in listed.sensors.values()] == ["mixing", "attenuator"]


# -- thermometers ------------------------------------------------------------------------------


def test_ruo2_readings_follow_the_sensor_curve(closing: list[Any]) -> None:
    r_inf, t0, noise = 2200.0, 0.6, 3e-4  # non-default sensor
    tc, world = make(closing, sensors={
        2: {"plate": "attenuator", "r_inf_ohm": r_inf, "t0_K": t0, "noise_rel": noise},
        3: "cavity",
    })
    tc.output(1).heater_range = 1e-5
    tc.output(1).manual_power = 2e-6
    tc.output(1).mode = "MANUAL"
    world.advance_to(40.0)
    true_t = world.thermal.temperature("attenuator")
    assert true_t == pytest.approx(steady_temperature("attenuator", 2e-6), rel=1e-3)
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
    # default sensor (R_inf 1 kohm, T0 0.3 K, noise 1e-4) on the cavity, and open inputs
    t_cav = world.thermal.temperature("cavity")
    assert tc.resistance(3) == pytest.approx(1000 * math.exp(math.sqrt(0.3 / t_cav)), rel=5e-4)
    assert math.isinf(tc.resistance(8)) and math.isnan(tc.temperature(8))


def test_calibration_error_scales_the_reading_not_the_plate(closing: list[Any]) -> None:
    error = 0.04
    tc, world = make(closing, sensors={
        2: "attenuator", 3: {"plate": "cavity", "calibration_error": error},
    })
    out = tc.output(2)
    out.heater_range = 1e-5
    out.manual_power = 3e-6
    out.mode = "MANUAL"
    world.advance_to(40.0)
    true_t = world.thermal.temperature("cavity")
    assert true_t == pytest.approx(steady_temperature("cavity", 3e-6), rel=1e-3)
    readings = np.array([tc.temperature(3) for _ in range(50)])
    # sigma_T/T = 2e-4 / sqrt(T0/T) ~ 2e-4 per reading; the mean of 50 to 1e-4
    assert np.mean(readings) / true_t == pytest.approx(1 + error, abs=1e-4)
    # the resistance is what the sensor really has: unaffected by the controller's curve
    true_r = 1000 * math.exp(math.sqrt(0.3 / true_t))
    assert np.mean([tc.resistance(3) for _ in range(50)]) == pytest.approx(true_r, rel=1e-4)
    # regulating on the miscalibrated thermometer puts the true plate at setpoint / (1 + e)
    out.input_channel = 3
    tc.set_pid(2, 10.0, 1.0, 0.0)
    tc.regulate(2, 0.25)
    held = record(tc, world, "cavity", 2, 3, 80.0, 120.0, 1.0)
    assert np.mean(held["true"]) == pytest.approx(0.25 / (1 + error), abs=1e-4)
    assert np.mean(held["read"]) == pytest.approx(0.25, abs=1e-4)


# -- heaters and loops -------------------------------------------------------------------------


@pytest.mark.parametrize(("out", "plate", "heater_range", "power"), [
    (1, "attenuator", 1e-6, 3e-7),
    (2, "cavity", 1e-5, 4e-6),
    (1, "attenuator", 1e-4, 4e-5),
])
def test_manual_power_gives_the_physical_steady_state(
    closing: list[Any], out: int, plate: str, heater_range: float, power: float
) -> None:
    tc, world = make(closing)
    o = tc.output(out)
    o.heater_range, o.manual_power, o.mode = heater_range, power, "MANUAL"
    assert tc.heater_power(out) == pytest.approx(power)
    world.advance_to(60.0)  # >= 15 plate time constants
    expected = steady_temperature(plate, power)
    # 1 %: the steady state the plant's laws predict (true plate and controller reading)
    assert world.thermal.temperature(plate) == pytest.approx(expected, rel=0.01)
    assert tc.temperature(out + 1) == pytest.approx(expected, rel=0.01)
    assert tc.temperature(1) == pytest.approx(mixing_K(power), rel=0.01)


def test_manual_power_is_clipped_to_the_range_and_off_is_zero(closing: list[Any]) -> None:
    tc, world = make(closing)
    o = tc.output(1)
    o.heater_range, o.manual_power, o.mode = 1e-5, 5e-5, "MANUAL"
    assert tc.heater_power(1) == pytest.approx(1e-5)
    assert world.thermal.heater("attenuator") == pytest.approx(1e-5)
    o.heater_range = 1e-4
    assert tc.heater_power(1) == pytest.approx(5e-5)
    o.mode = "OFF"
    assert tc.heater_power(1) == 0.0 and world.thermal.heater("attenuator") == 0.0
    # PID far below its setpoint saturates at the range; a smaller range clips at once
    o.heater_range = 1e-5
    tc.set_pid(1, 10.0, 1.0, 0.0)
    tc.regulate(1, 1.0, input_channel=2)
    world.advance_to(world.now() + 1.0)
    assert tc.heater_power(1) == pytest.approx(1e-5)
    o.heater_range = 1e-6
    assert tc.heater_power(1) == pytest.approx(1e-6)
    assert world.thermal.heater("attenuator") == pytest.approx(1e-6)


@pytest.mark.parametrize(("out", "ch", "plate", "setpoint", "heater_range", "pid"), [
    (1, 2, "attenuator", 0.100, 1e-6, (50.0, 2.0, 0.0)),
    (2, 3, "cavity", 0.250, 1e-5, (10.0, 1.0, 0.05)),
    (1, 2, "attenuator", 0.060, 1e-6, (20.0, 3.0, 0.1)),
])
def test_pid_regulates_a_plate_at_its_setpoint(
    closing: list[Any], out: int, ch: int, plate: str, setpoint: float, heater_range: float,
    pid: tuple[float, float, float],
) -> None:
    tc, world = make(closing)
    tc.output(out).heater_range = heater_range
    tc.set_pid(out, *pid)
    tc.regulate(out, setpoint, input_channel=ch)
    assert setpoint - world.thermal.temperature(plate) > 0.04  # starts far below
    held = record(tc, world, plate, out, ch, 60.0, 180.0, 0.5)
    error = held["true"] - setpoint
    # held within 0.5 mK rms (spec); integral action leaves no offset (< 20 uK)
    assert np.sqrt(np.mean(error**2)) < 0.5e-3
    assert abs(np.mean(error)) < 2e-5
    # the loop settles on the power the link needs at the setpoint (within 1 %)
    assert np.mean(held["power"]) == pytest.approx(held_power(plate, setpoint), rel=0.01)
    assert tc.summary()[f"out{out}"].startswith("PID")


def test_proportional_only_loop_droops_by_the_predicted_offset(closing: list[Any]) -> None:
    tc, world = make(closing)
    gain, heater_range, setpoint = 100.0, 1e-6, 0.1
    tc.output(1).heater_range = heater_range
    tc.set_pid(1, gain, 0.0, 0.0)
    tc.regulate(1, setpoint, input_channel=2)
    held = record(tc, world, "attenuator", 1, 2, 30.0, 60.0, 0.5)
    # P only: range * P (T_set - T) = k (T^n - T_mx^n) with T_mx warmed by that power
    def balance(t: float) -> float:
        power = heater_range * gain * (setpoint - t)
        return power - link_power("attenuator", t, mixing_K(power))

    expected = brentq(balance, 0.05, setpoint)
    droop = setpoint - expected
    assert droop > 3e-3
    assert setpoint - np.mean(held["true"]) == pytest.approx(droop, rel=0.01)


def test_setpoint_ramp_is_followed_at_the_ramp_rate(closing: list[Any]) -> None:
    tc, world = make(closing)
    out = tc.output(1)
    out.heater_range = 1e-5
    tc.set_pid(1, 10.0, 2.0, 0.0)
    tc.regulate(1, 0.1, input_channel=2)
    world.advance_to(60.0)
    rate = 0.04  # K/min: 100 mK -> 200 mK in 150 s
    out.ramp_rate, out.ramp_enabled = rate, True
    out.setpoint = 0.2
    start = world.now()
    assert out.ramping
    ramp = record(tc, world, "attenuator", 1, 2, start + 1.0, start + 145.0, 1.0)
    ideal = 0.1 + rate / 60.0 * (ramp["t"] - start)
    # slope of the reading: the ramp rate within 1 %
    following = ramp["t"] > start + 20.0
    slope = np.polyfit(ramp["t"][following], ramp["read"][following], 1)[0] * 60.0
    assert slope == pytest.approx(rate, rel=0.01)
    # the reading lags the ramp line by r I G / (P range) (0.15 .. 0.25 mK here): to 5 % on
    # average; each reading within 0.15 mK (reading noise + loop jitter: ~27 uK rms)
    lag = ideal[following] - ramp["read"][following]
    expected = ramp_lag("attenuator", ramp["read"][following], rate / 60.0, 10.0, 2.0, 1e-5)
    assert np.mean(lag) == pytest.approx(np.mean(expected), rel=0.05)
    assert np.abs(lag - expected).max() < 1.5e-4
    world.advance_to(start + 180.0)
    assert not out.ramping
    assert world.thermal.temperature("attenuator") == pytest.approx(0.2, abs=2e-4)


def test_entering_pid_with_ramp_enabled_ramps_from_the_reading(closing: list[Any]) -> None:
    tc, world = make(closing)
    out = tc.output(1)
    out.heater_range, out.ramp_rate, out.ramp_enabled = 1e-6, 0.1, True
    tc.set_pid(1, 10.0, 1.0, 0.0)
    tc.regulate(1, 0.12, input_channel=2)  # from ~12 mK at 0.1 K/min: ~65 s
    readings = []
    for t in (15.0, 30.0, 45.0):
        world.advance_to(t)
        assert out.ramping
        readings.append(tc.temperature(2))
    # on the ramp line from the reading at the start (~12 mK), lagging by r I G / (P range)
    # (0.6 .. 1.4 mK here) within 0.1 mK (noise ~10 uK rms at these temperatures)
    line = BASE_K + 0.1 / 60.0 * np.array([15.0, 30.0, 45.0])
    lag = ramp_lag("attenuator", np.array(readings), 0.1 / 60.0, 10.0, 1.0, 1e-6)
    assert np.abs(line - lag - readings).max() < 1e-4
    world.advance_to(120.0)
    assert not out.ramping and tc.temperature(2) == pytest.approx(0.12, abs=3e-4)


def test_anti_windup_limits_the_overshoot_after_a_saturated_step(closing: list[Any]) -> None:
    # a slow plate (tau = gamma / (n k) = 50 s): a 50 -> 300 mK step saturates the heater ~20 s
    slow = {"gamma_J_per_K2": 5e-3, "link_W_per_Kn": 5e-5, "link_exponent": 2.0,
            "initial_K": 0.05}
    tc, world = make(closing, sensors={1: "slow"}, plates={"slow": slow}, heaters={1: "slow"})
    tc.output(1).heater_range = 1e-5
    tc.set_pid(1, 30.0, 10.0, 0.0)
    tc.regulate(1, 0.05, input_channel=1)
    world.advance_to(300.0)
    tc.output(1).setpoint = 0.3
    step = record(tc, world, "slow", 1, 1, 300.5, 500.0, 0.5)
    saturated = step["t"][step["power"] >= 1e-5 * (1 - 1e-9)]
    assert saturated.size and saturated.max() - saturated.min() > 10.0
    # integrating through the saturation would overshoot by ~11 mK; held integral: ~1.5 mK
    assert step["true"].max() - 0.3 < 4e-3
    assert step["true"][-1] == pytest.approx(0.3, abs=1e-4)


def test_derivative_action_during_a_ramp(closing: list[Any]) -> None:
    # PD loop (I = 0) on a slow plate while the setpoint ramps: the output follows
    # u = P (sp - T - D dT/dt), and the heater power feeds link + heat capacity
    slow = {"gamma_J_per_K2": 5e-3, "link_W_per_Kn": 5e-5, "link_exponent": 2.0,
            "initial_K": 0.1}
    tc, world = make(closing, sensors={1: "slow"}, plates={"slow": slow}, heaters={1: "slow"})
    gain, d_s, heater_range, rate = 10.0, 2.0, 1e-5, 0.05  # rate in K/min
    out = tc.output(1)
    out.heater_range = heater_range
    tc.set_pid(1, gain, 0.0, d_s)
    tc.regulate(1, 0.1, input_channel=1)
    world.advance_to(200.0)
    out.ramp_rate, out.ramp_enabled = rate, True
    out.setpoint = 0.2
    start = world.now()
    ramp = record(tc, world, "slow", 1, 1, start + 60.0, start + 110.0, 0.5)
    setpoint = 0.1 + rate / 60.0 * (ramp["t"] - start)
    t = ramp["true"]
    dt_dt = np.gradient(t, ramp["t"])
    # it rises, a bit slower than the ramp: without integral action the droop grows with the load
    assert 0.7 * rate / 60.0 < np.mean(dt_dt) < rate / 60.0
    # the PD law, averaged over reading noise (D dT/dt is ~15 % of the output here)
    law = heater_range * gain * (setpoint - t - d_s * dt_dt)
    assert np.mean(ramp["power"]) == pytest.approx(np.mean(law), rel=0.01)
    # energy balance of the plate: heater = link + gamma T dT/dt, where the link warms the
    # mixing plate: L = k (T^2 - T_mx^2), T_mx^2 = T_base^2 + L / c  =>  L = k (T^2 - T_base^2)
    # / (1 + k / c)
    k = slow["link_W_per_Kn"]
    link = k * (t**2 - BASE_K**2) / (1 + k / COOLING_W_PER_K2)
    demand = link + slow["gamma_J_per_K2"] * t * dt_dt
    assert np.mean(ramp["power"]) == pytest.approx(np.mean(demand), rel=0.01)
