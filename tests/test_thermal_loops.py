"""Lake Shore 372 heater outputs and control loops on the simulated fridge: heater power from
the output's current or voltage, PID regulation, ramps, anti-windup, derivative action.

Expectations come from the plant's laws and the 372's output laws (tests/fridge.py): the loop
level u (0..1 of full scale) gives the sample heater (u I_k)^2 R and the analog output
(u 10 V)^2 / R, so the heater power is quadratic in the level.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.optimize import brentq

from tests.fridge import (
    BASE_K,
    CAVITY_FULL_W,
    CAVITY_OHM,
    COOLING_W_PER_K2,
    SAMPLE_OHM,
    SAMPLE_RANGES_A,
    held_power,
    link_power,
    make,
    mixing_K,
    ramp_lag,
    record,
    sample_full_W,
    steady_temperature,
)

# -- heaters and loops -------------------------------------------------------------------------


@pytest.mark.parametrize(("out", "plate", "range_index", "ohm", "percent"), [
    (0, "attenuator", 1, SAMPLE_OHM, 60.0),  # 31.6 uA: 100 nW full, 36 nW
    (0, "attenuator", 4, SAMPLE_OHM, 20.0),  # 1 mA: 100 uW full, 4 uW
    (0, "attenuator", 2, 250.0, 45.0),  # a 250 ohm heater behind HTRSET's 100 ohm
    (2, "cavity", None, CAVITY_OHM, 30.0),  # 3 V into 1 Mohm: 9 uW
])
def test_manual_output_gives_the_heater_power_of_its_current_or_voltage(
    closing: list[Any], out: int, plate: str, range_index: int | None, ohm: float,
    percent: float,
) -> None:
    tc, world = make(closing, heaters={out: {"plate": plate, "resistance_ohm": ohm}})
    o = tc.loops[out]
    if range_index is None:  # analog output: (u 10 V)^2 / R
        o.enabled = True
        power = (percent / 100.0 * 10.0) ** 2 / ohm
    else:  # sample heater: (u I_k)^2 R; the driver shows the range in HTRSET's 100 ohm
        o.heater_range = sample_full_W(range_index)
        assert int(tc.query("RANGE? 0")) == range_index
        power = (percent / 100.0 * SAMPLE_RANGES_A[range_index - 1]) ** 2 * ohm
    o.manual_output, o.mode = percent, "OPEN_LOOP"
    assert world.thermal.heater(plate) == pytest.approx(power, rel=1e-9)
    assert o.output == pytest.approx(percent)
    if out == 0:  # the driver's view: the configured 100 ohm, not the true one
        assert tc.heater_power(0) == pytest.approx(power * SAMPLE_OHM / ohm, rel=1e-6)
    world.advance_to(60.0)  # >= 15 plate time constants
    expected = steady_temperature(plate, power)
    # 1 %: the steady state the plant's laws predict (true plate and controller reading)
    assert world.thermal.temperature(plate) == pytest.approx(expected, rel=0.01)
    assert tc.temperature(2 if plate == "attenuator" else 3) == pytest.approx(expected, rel=0.01)
    assert tc.temperature(1) == pytest.approx(mixing_K(power), rel=0.01)


def test_range_changes_scale_the_power_and_off_is_zero(closing: list[Any]) -> None:
    tc, world = make(closing)
    o = tc.loops[0]
    o.heater_range, o.manual_output, o.mode = sample_full_W(3), 50.0, "OPEN_LOOP"
    assert tc.heater_power(0) == pytest.approx(0.25 * 1e-5)
    o.heater_range = sample_full_W(4)  # the current range scales the current: P x 10
    assert world.thermal.heater("attenuator") == pytest.approx(0.25 * 1e-4)
    o.heater_range = 0.0  # range off: no current whatever the mode
    assert tc.heater_power(0) == 0.0 and world.thermal.heater("attenuator") == 0.0
    o.heater_range = sample_full_W(3)
    o.mode = "OFF"
    assert tc.heater_power(0) == 0.0 and world.thermal.heater("attenuator") == 0.0
    # closed loop far below its setpoint saturates at full current; a smaller range clips at once
    o.p, o.i, o.d = 10.0, 1.0, 0.0
    tc.regulate(0, 1.0, input_channel=2)
    world.advance_to(world.now() + 1.0)
    assert o.output == pytest.approx(100.0) and tc.heater_power(0) == pytest.approx(1e-5)
    o.heater_range = sample_full_W(2)
    assert tc.heater_power(0) == pytest.approx(1e-6)
    assert world.thermal.heater("attenuator") == pytest.approx(1e-6)
    tc.loops[2].mode = "OPEN_LOOP"  # analog output still off (RANGE 2,0): no voltage
    tc.loops[2].manual_output = 80.0
    assert world.thermal.heater("cavity") == 0.0
    tc.loops[2].enabled = True
    assert world.thermal.heater("cavity") == pytest.approx(0.64 * CAVITY_FULL_W)


@pytest.mark.parametrize(("out", "ch", "plate", "setpoint", "full_W", "pid"), [
    (0, 2, "attenuator", 0.100, 1e-6, (50.0, 2.0, 0.0)),
    (2, 3, "cavity", 0.250, CAVITY_FULL_W, (3.0, 1.0, 0.05)),
    (0, 2, "attenuator", 0.060, 1e-6, (20.0, 3.0, 0.1)),
])
def test_pid_regulates_a_plate_at_its_setpoint(
    closing: list[Any], out: int, ch: int, plate: str, setpoint: float, full_W: float,
    pid: tuple[float, float, float],
) -> None:
    tc, world = make(closing)
    loop = tc.loops[out]
    if out == 2:
        loop.enabled = True
    else:
        loop.heater_range = full_W
    loop.p, loop.i, loop.d = pid
    tc.regulate(out, setpoint, input_channel=ch)
    assert setpoint - world.thermal.temperature(plate) > 0.04  # starts far below
    held = record(tc, world, plate, ch, 60.0, 180.0, 0.5)
    error = held["true"] - setpoint
    # held within 0.5 mK rms (spec); integral action leaves no offset (< 20 uK)
    assert np.sqrt(np.mean(error**2)) < 0.5e-3
    assert abs(np.mean(error)) < 2e-5
    # the loop settles on the power the link needs at the setpoint (within 1 %), and the
    # output level the instrument shows is the square root of its share of full scale
    assert np.mean(held["power"]) == pytest.approx(held_power(plate, setpoint), rel=0.01)
    level = math.sqrt(held_power(plate, setpoint) / full_W)
    assert loop.output / 100.0 == pytest.approx(level, rel=0.02)
    assert tc.summary()[f"out{out}"].startswith("CLOSED_LOOP")


def test_proportional_only_loop_droops_by_the_predicted_offset(closing: list[Any]) -> None:
    tc, world = make(closing)
    gain, full_W, setpoint = 100.0, 1e-6, 0.1
    loop = tc.loops[0]
    loop.heater_range = full_W
    loop.p, loop.i, loop.d = gain, 0.0, 0.0
    tc.regulate(0, setpoint, input_channel=2)
    held = record(tc, world, "attenuator", 2, 30.0, 60.0, 0.5)

    # P only: the level u = P (T_set - T) drives (u I)^2 R = full (P (T_set - T))^2, which
    # balances the link k (T^n - T_mx^n) with T_mx warmed by that power
    def balance(t: float) -> float:
        power = full_W * (gain * (setpoint - t)) ** 2
        return power - link_power("attenuator", t, mixing_K(power))

    expected = brentq(balance, setpoint - 1.0 / gain, setpoint)
    droop = setpoint - expected
    assert droop > 5e-3
    assert setpoint - np.mean(held["true"]) == pytest.approx(droop, rel=0.01)


def test_setpoint_ramp_is_followed_at_the_ramp_rate(closing: list[Any]) -> None:
    tc, world = make(closing)
    out = tc.loops[0]
    out.heater_range = 1e-5
    out.p, out.i, out.d = 10.0, 2.0, 0.0
    tc.regulate(0, 0.1, input_channel=2)
    world.advance_to(60.0)
    rate = 0.04  # K/min: 100 mK -> 200 mK in 150 s
    out.ramp_rate, out.ramp_enabled = rate, True
    out.setpoint = 0.2
    start = world.now()
    assert out.ramping
    ramp = record(tc, world, "attenuator", 2, start + 1.0, start + 145.0, 1.0)
    ideal = 0.1 + rate / 60.0 * (ramp["t"] - start)
    # slope of the reading: the ramp rate within 1 %
    following = ramp["t"] > start + 20.0
    slope = np.polyfit(ramp["t"][following], ramp["read"][following], 1)[0] * 60.0
    assert slope == pytest.approx(rate, rel=0.01)
    # the reading lags the ramp line by r I G / (2 P sqrt(P_held P_full)): to 5 % on average;
    # each reading within 0.15 mK (reading noise + loop jitter)
    lag = ideal[following] - ramp["read"][following]
    expected = ramp_lag("attenuator", ramp["read"][following], rate / 60.0, 10.0, 2.0, 1e-5)
    assert np.mean(lag) == pytest.approx(np.mean(expected), rel=0.05)
    assert np.abs(lag - expected).max() < 1.5e-4
    world.advance_to(start + 180.0)
    assert not out.ramping
    assert world.thermal.temperature("attenuator") == pytest.approx(0.2, abs=2e-4)


def test_entering_closed_loop_with_ramp_enabled_ramps_from_the_reading(
    closing: list[Any],
) -> None:
    tc, world = make(closing)
    out = tc.loops[0]
    out.heater_range, out.ramp_rate, out.ramp_enabled = 1e-6, 0.1, True
    out.p, out.i, out.d = 10.0, 1.0, 0.0
    tc.regulate(0, 0.12, input_channel=2)  # from ~12 mK at 0.1 K/min: ~65 s
    times = np.array([15.0, 30.0, 45.0])
    readings = []
    for t in times:
        world.advance_to(t)
        assert out.ramping
        readings.append(tc.temperature(2))
    # on the ramp line from the reading at the start (~12 mK), lagging by the PI loop's
    # ramp lag within 0.2 mK (noise ~10 uK rms at these temperatures)
    line = BASE_K + 0.1 / 60.0 * times
    lag = ramp_lag("attenuator", np.array(readings), 0.1 / 60.0, 10.0, 1.0, 1e-6)
    assert np.abs(line - lag - readings).max() < 2e-4
    world.advance_to(120.0)
    assert not out.ramping and tc.temperature(2) == pytest.approx(0.12, abs=3e-4)


def test_anti_windup_limits_the_overshoot_after_a_saturated_step(closing: list[Any]) -> None:
    # a slow plate (tau = gamma / (n k) = 50 s): a 50 -> 300 mK step saturates the heater ~20 s
    slow = {"gamma_J_per_K2": 5e-3, "link_W_per_Kn": 5e-5, "link_exponent": 2.0,
            "initial_K": 0.05}
    tc, world = make(closing, sensors={1: "slow"}, plates={"slow": slow}, heaters={0: "slow"})
    loop = tc.loops[0]
    loop.heater_range = 1e-5
    loop.p, loop.i, loop.d = 30.0, 10.0, 0.0
    tc.regulate(0, 0.05, input_channel=1)
    world.advance_to(300.0)
    loop.setpoint = 0.3
    step = record(tc, world, "slow", 1, 300.5, 500.0, 0.5)
    saturated = step["t"][step["power"] >= 1e-5 * (1 - 1e-9)]
    assert saturated.size and saturated.max() - saturated.min() > 10.0
    # integrating through the saturation would overshoot by ~10 mK; held integral: a few mK
    assert step["true"].max() - 0.3 < 4e-3
    assert step["true"][-1] == pytest.approx(0.3, abs=1e-4)


def test_derivative_action_during_a_ramp(closing: list[Any]) -> None:
    # PD loop (I = 0) on a slow plate while the setpoint ramps: the level follows
    # u = P (sp - T - D dT/dt), the heater gets u^2 of full scale, and that power feeds the
    # link and the heat capacity
    slow = {"gamma_J_per_K2": 5e-3, "link_W_per_Kn": 5e-5, "link_exponent": 2.0,
            "initial_K": 0.1}
    tc, world = make(closing, sensors={1: "slow"}, plates={"slow": slow}, heaters={0: "slow"})
    gain, d_s, full_W, rate = 10.0, 2.0, 1e-5, 0.05  # rate in K/min
    out = tc.loops[0]
    out.heater_range = full_W
    out.p, out.i, out.d = gain, 0.0, d_s
    tc.regulate(0, 0.1, input_channel=1)
    world.advance_to(200.0)
    out.ramp_rate, out.ramp_enabled = rate, True
    out.setpoint = 0.2
    start = world.now()
    ramp = record(tc, world, "slow", 1, start + 60.0, start + 110.0, 0.5)
    setpoint = 0.1 + rate / 60.0 * (ramp["t"] - start)
    t = ramp["true"]
    dt_dt = np.gradient(t, ramp["t"])
    # it rises, a bit slower than the ramp: without integral action the droop grows with the load
    assert 0.7 * rate / 60.0 < np.mean(dt_dt) < rate / 60.0
    # the PD law, averaged over reading noise (D dT/dt is a noticeable part of the level here)
    law = full_W * (gain * (setpoint - t - d_s * dt_dt)) ** 2
    assert np.mean(ramp["power"]) == pytest.approx(np.mean(law), rel=0.01)
    # energy balance of the plate: heater = link + gamma T dT/dt, where the link warms the
    # mixing plate: L = k (T^2 - T_mx^2), T_mx^2 = T_base^2 + L / c  =>  L = k (T^2 - T_base^2)
    # / (1 + k / c)
    k = slow["link_W_per_Kn"]
    link = k * (t**2 - BASE_K**2) / (1 + k / COOLING_W_PER_K2)
    demand = link + slow["gamma_J_per_K2"] * t * dt_dt
    assert np.mean(ramp["power"]) == pytest.approx(np.mean(demand), rel=0.01)
