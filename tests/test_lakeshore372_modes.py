"""The Model 372's zone tables, warm-up heater, monitor out and scanner, on both sides of the
wire: each command table pins our driver's exchanges (a fake resource plays it) and the
simulator's answers (the same table replayed to it); then the physics the manual describes
(zone PID across a zone boundary, warm-up to a setpoint, pause and dwell on the virtual clock)
and Lake Shore's own `lakeshore` client driving the same commands over TCP.

Manual (Model 372 user's manual, chapter 6): ZONE <output>,<zone>,<upper bound>,<P>,<I>,<D>,
<mout>,<range>,<rate>,<relay 1>,<relay 2> (output 0-1, zone 1-10, P 0-1000, I 0-10000,
D 0-2500, range 0-8 / warm-up 0-1); SCAN <channel>,<autoscan>; RDGST? "000" for a valid
reading; OUTMODE modes 0 off, 1 monitor out, 2 open loop, 3 zone, 4 still, 5 closed loop,
6 warm up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cryodaq.drivers.errors import InstrumentError, SettingRangeError
from cryodaq.drivers.lakeshore372 import LakeShore372
from cryodaq.sim_instruments.lakeshore372_model import LakeShore372Model
from cryodaq.sim_instruments.library import SimInstrument
from cryodaq.sim_instruments.world import World
from tests.conftest import ADDRESS
from tests.fridge import BASE_K, PLATES, make, sample_full_W
from tests.protocol import Exchange, expected_protocol, serve

OK = ("*ESR?", "0")
#: A zone's fields at power-on: the simulator's own defaults, not taken from the manual.
ZONE_RESET = "+0.00000E+00,+1.00000E+01,+2.00000E+01,+0.00000E+00,+0.00000E+00,0,+1.00000E-01,0,0"
#: A third plate for the warm-up heater (output 1), like the attenuator's link.
STAGE = {"gamma_J_per_K2": 1e-4, "link_W_per_Kn": 5e-5, "link_exponent": 2.0}
HEATERS = {0: "attenuator", 1: {"plate": "stage", "resistance_ohm": 25.0},
           2: {"plate": "cavity", "resistance_ohm": 1e6}}  # fmt: skip
SENSORS = {1: "mixing", 2: "attenuator", 3: "cavity", 4: "stage"}


def fridge(closing: list[Any], **params: Any) -> tuple[LakeShore372, World]:
    """The 372 on the test fridge with a heater on each output (1: the warm-up heater)."""
    plates = {name: {**p, "initial_K": BASE_K} for name, p in {**PLATES, "stage": STAGE}.items()}
    return make(closing, sensors=SENSORS, plates=plates, heaters=HEATERS, **params)


def _zone(tc: LakeShore372) -> None:
    tc.zone(0, 3).upper_bound = 0.05
    tc.zone(1, 2).range_index = 1


def _warmup(tc: LakeShore372) -> None:
    tc.warmup_control = "CONTINUOUS"
    tc.warmup_current = 40.0


def _monitor(tc: LakeShore372) -> None:
    tc.analog_output.monitor_high = 0.5
    tc.monitor_source = "VDIF"


def _scanner(tc: LakeShore372) -> None:
    tc.autoscan = True
    assert tc.scan_settle == "VALID" and tc.input(1).status == 0


TABLES: dict[str, tuple[list[Exchange], Callable[[LakeShore372], None]]] = {
    "zone": ([
        ("ZONE? 0,3", ZONE_RESET),
        ("ZONE 0,3,0.05,+1.00000E+01,+2.00000E+01,+0.00000E+00,+0.00000E+00,0,+1.00000E-01,"
         "0,0", None), OK,
        ("ZONE? 0,3", ZONE_RESET.replace("+0.00000E+00", "+5.00000E-02", 1)),
        ("ZONE? 1,2", ZONE_RESET),
        ("ZONE 1,2,+0.00000E+00,+1.00000E+01,+2.00000E+01,+0.00000E+00,+0.00000E+00,1,"
         "+1.00000E-01,0,0", None), OK,
        ("ZONE? 1,2", ZONE_RESET.replace(",0,+1", ",1,+1")),
    ], _zone),
    "warmup": ([
        ("WARMUP?", "0,+0.00000E+00"), ("WARMUP 1,+0.00000E+00", None), OK,
        ("WARMUP?", "1,+0.00000E+00"),
        ("WARMUP?", "1,+0.00000E+00"), ("WARMUP 1,40", None), OK, ("WARMUP?", "1,+4.00000E+01"),
    ], _warmup),
    "monitor": ([
        ("ANALOG? 2", "0,0,1,1,+1.00000E+00,+0.00000E+00,+0.00000E+00"),
        ("ANALOG 2,0,0,1,1,0.5,+0.00000E+00,+0.00000E+00", None), OK,
        ("ANALOG? 2", "0,0,1,1,+5.00000E-01,+0.00000E+00,+0.00000E+00"),
        ("MONITOR 5", None), OK, ("MONITOR?", "5"),
    ], _monitor),
    "scanner": ([
        ("SCAN?", "1,0"), ("SCAN 1,1", None), OK, ("SCAN?", "1,1"),
        ("RDGSTL?", "0,0"), ("RDGST? 1", "000"),
    ], _scanner),
}  # fmt: skip


@pytest.mark.parametrize("name", TABLES)
def test_driver_sends_the_table(name: str) -> None:
    table, action = TABLES[name]
    with expected_protocol(LakeShore372, table) as tc:
        action(tc)


@pytest.mark.parametrize("name", TABLES)
def test_simulator_answers_the_same_table(closing: list[Any], name: str) -> None:
    tc, _ = fridge(closing)
    for message, reply in TABLES[name][0]:
        if reply is None:
            tc.resource.write(message)
        else:
            assert tc.resource.query(message) == reply, message


@pytest.mark.parametrize(
    ("message", "esr"),
    [
        ("ZONE 1,1,0.1,10,20,0,0,2,1,0,0", 16),  # the warm-up heater's range is 0 or 1
        ("ZONE 0,11,0.1,10,20,0,0,2,1,0,0", 16),  # zones 1-10
        ("ZONE 0,1,0.1,10,20,0,0,2,1,0", 32),  # a missing field
        ("OUTMODE 0,6,1,0,0,0,1", 16),  # only output 1 warms up
        ("OUTMODE 2,3,1,0,0,0,1", 16),  # output 2 has no zone table
        ("WARMUP 2,50", 16),  # 0 auto off or 1 continuous
    ],
)
def test_simulator_refuses_what_the_manual_does_not_allow(
    closing: list[Any], message: str, esr: int
) -> None:
    tc, _ = fridge(closing)
    tc.resource.write(message)
    assert tc.resource.query("*ESR?") == str(esr)


def test_zone_mode_takes_pid_and_range_from_the_setpoint_s_zone(closing: list[Any]) -> None:
    tc, world = fridge(closing)
    zones = {1: (0.03, 50.0, 5.0, 2), 2: (0.08, 30.0, 3.0, 4)}  # bound K, P, I s, range
    for k, (bound, p, i, heater_range) in zones.items():
        tc.write(f"ZONE 0,{k},{bound},{p},{i},0,0,{heater_range},1,0,0")
    tc.write("ZONE 0,3,0.2,80,2,0,0,5,1,0,0")
    heater = tc.loops[0]
    heater.input_channel = "2"
    heater.setpoint = 0.02
    heater.mode = "ZONE"
    for setpoint, (_, p, i, heater_range) in ((0.02, zones[1]), (0.05, zones[2])):
        heater.setpoint = setpoint
        assert (heater.p, heater.i) == (p, i)
        assert heater.heater_range == pytest.approx(sample_full_W(heater_range))
        world.advance(90.0)
        assert tc.temperature(2) == pytest.approx(setpoint, abs=1e-3)
    assert heater.mode == "ZONE"
    heater.setpoint = 0.25  # above every bound: the zone with the highest (3), not an unused
    assert (heater.p, heater.i) == (80.0, 2.0)  # zone 4-10 (bound 0)
    assert heater.heater_range == pytest.approx(sample_full_W(5))


def test_zone_follows_the_ramping_setpoint_not_the_final_one(closing: list[Any]) -> None:
    """Ramp 20 -> 70 mK through a zone bound at 30 mK: zone 1 (0.03 K/min) governs until the
    ramping setpoint crosses 30 mK (20 s), then zone 2's PID, range and 0.06 K/min carry the
    ramp on (40 mK more: 40 s). Picked by the final setpoint, zone 2 would rule from the start
    and the ramp would end at 50 s, not 60 s. A PID set by hand stays until the next crossing.
    (Lake Shore's zone rule, spelled out in the Model 346 manual's "Zone Settings": settings
    update each time the setpoint, ramping or not, crosses into a new zone.)"""
    tc, world = fridge(closing)
    tc.write("ZONE 0,1,0.03,50,5,0,0,2,0.03,0,0")
    tc.write("ZONE 0,2,0.08,30,3,0,0,4,0.06,0,0")
    heater = tc.loops[0]
    heater.input_channel = "2"
    heater.setpoint = 0.02
    heater.mode = "ZONE"
    world.advance(90.0)
    heater.ramp_enabled = True
    heater.setpoint = 0.07
    world.advance(10.0)  # ramping setpoint 25 mK: zone 1
    assert (heater.p, heater.i, heater.ramp_rate) == (50.0, 5.0, 0.03)
    assert heater.heater_range == pytest.approx(sample_full_W(2))
    heater.p = 45.0  # by hand, inside zone 1: kept
    world.advance(5.0)
    assert heater.p == 45.0 and heater.ramping
    world.advance(15.0)  # 30 s: ramping setpoint 40 mK, zone 2
    assert (heater.p, heater.i, heater.ramp_rate) == (30.0, 3.0, 0.06)
    assert heater.heater_range == pytest.approx(sample_full_W(4))
    world.advance(25.0)  # 55 s: 65 mK, still ramping
    assert heater.ramping
    world.advance(6.0)
    assert not heater.ramping


def test_warm_up_heats_to_the_setpoint_then_switches_itself_off(closing: list[Any]) -> None:
    """1 mA (user maximum) at 20 % into 25 ohm: 1 uW would hold the stage at 0.14 K; the
    warm-up stops when input 4 reads 0.1 K (within one 0.1 s loop period of heating) and, in
    auto off, stays off; continuous, it holds the stage at 0.1 K on and off."""
    tc, world = fridge(closing)
    tc.write("HTRSET 1,1,0,0.001,1")  # RANGE 1 stays 0 (off): warm_up() switches it on
    power_W = (0.2e-3) ** 2 * 25.0
    link_W = STAGE["link_W_per_Kn"] * (0.1**2 - BASE_K**2)
    capacity = STAGE["gamma_J_per_K2"] * 0.1  # C = gamma T at 0.1 K
    rise_per_period_K = (power_W - link_W) / capacity * 0.1
    fall_per_period_K = link_W / capacity * 0.1  # checked up to one period after it stopped
    tc.warm_up(0.1, 20.0, input_channel=4)
    assert tc.loops[1].mode == "WARM_UP"
    world.advance(0.1)  # one loop period: the rule has run
    assert tc.heater_power(1) == pytest.approx(power_W, rel=1e-3)
    for _ in range(300):
        world.advance(0.1)
        if tc.loops[1].mode == "OFF":
            break
    assert tc.loops[1].mode == "OFF"
    t_off = world.thermal.temperature("stage")
    assert 0.1 - fall_per_period_K - 1e-3 < t_off < 0.1 + rise_per_period_K + 1e-3
    world.advance(20.0)
    assert world.thermal.temperature("stage") < 0.03 and tc.heater_power(1) == 0.0
    tc.warm_up(0.1, 20.0, continuous=True)
    world.advance(30.0)
    held = []
    for _ in range(100):
        world.advance(0.1)
        held.append(world.thermal.temperature("stage"))
    assert tc.loops[1].mode == "WARM_UP"
    assert sum(held) / len(held) == pytest.approx(0.1, abs=rise_per_period_K)
    assert max(held) - min(held) < 2 * (rise_per_period_K + fall_per_period_K)


def test_monitor_out_drives_the_analog_output_from_its_input(closing: list[Any]) -> None:
    """Monitor out of input 2 (attenuator, ~12 mK): 0 V at 0 K, 10 V at 1 K: about 1.2 %
    (0.12 V into the cavity's 1 Mohm: 15 nW, too little to warm anything measurably)."""
    tc, world = fridge(closing)
    tc.write("ANALOG 2,0,1,2,1,1.0,0,0")
    tc.write("RANGE 2,1")
    world.advance(1.0)
    expected = tc.temperature(2) / 1.0 * 100.0
    assert tc.analog_output.mode == "MONITOR_OUT"
    assert tc.analog_output.output == pytest.approx(expected, rel=0.02)


def test_scanner_honours_pause_then_dwell_on_the_virtual_clock(closing: list[Any]) -> None:
    tc, world = fridge(closing, scanner="3716")
    timing = {1: (3, 5), 2: (4, 10), 4: (6, 2)}  # channel: pause, dwell (s)
    tc.input(3).enabled = False
    for ch, (pause, dwell) in timing.items():
        tc.input(ch).pause, tc.input(ch).dwell = pause, dwell
    t0 = world.now()
    tc.scan_channel = 2
    assert tc.scan_settle == "HARDWARE_SETTLING"
    assert tc.input(2).temperature == 0.0  # never measured yet
    world.advance(3.9)
    assert tc.scan_settle == "HARDWARE_SETTLING"
    world.advance(0.2)
    assert tc.scan_settle == "VALID"
    live = [tc.input(2).temperature for _ in range(3)]
    assert len(set(live)) == 3  # measured now: each reading new (noise)
    assert live[0] == pytest.approx(world.thermal.temperature("attenuator"), rel=0.05)
    tc.autoscan = True  # from channel 2 (switched at t0): 2, 4, 1, 2, ...
    schedule, t, ch = [], t0, 2
    while t < t0 + 60.0:
        schedule.append((t, ch))
        t += sum(timing[ch])
        ch = {2: 4, 4: 1, 1: 2}[ch]
    held = None
    for start, ch in schedule[1:]:
        world.advance(start + 0.5 - world.now())
        assert tc.scan_channel == ch
        if ch == 4:  # channel 2 is left: it holds its last reading
            held = tc.input(2).temperature
            assert held > 0 and tc.input(2).temperature == held
    assert held is not None


def test_lake_shore_s_client_drives_zones_warm_up_monitor_and_scanner() -> None:
    lakeshore = pytest.importorskip("lakeshore")
    world = World({"seed": 3, "thermal": {"plates": {"stage": {**STAGE, "initial_K": 0.012}}}})
    model = LakeShore372Model(world, "tc", {"sensors": {1: "mixing", 2: "stage"},
                                            "heaters": {1: "stage", 2: "stage"}})
    server = serve(SimInstrument(ADDRESS, "lakeshore372", model))
    ls = lakeshore.Model372(baud_rate=None, ip_address="127.0.0.1", tcp_port=server.port,
                            timeout=5)
    try:
        zone = lakeshore.Model372ControlLoopZoneSettings(0.05, 20, 10, 0, 0, True, 1.5, False,
                                                         True)
        ls.set_control_loop_parameters(1, 4, zone)
        read = ls.get_control_loop_zone_parameters(1, 4)
        assert (read.upper_bound, read.p_value, read.heater_range, read.relay_2) == (
            0.05, 20.0, True, True)
        ls.set_warmup_output(True, 30)
        assert ls.get_warmup_output() == {"auto_control": True, "current": 30.0}
        assert ls.get_heater_output_settings(1).output_mode == ls.OutputMode.WARMUP
        ls.configure_heater(2, lakeshore.Model372HeaterOutputSettings(
            ls.OutputMode.MONITOR_OUT, 2, False, False, 1, ls.Polarity.UNIPOLAR))
        ls.configure_analog_monitor_output_heater(ls.InputSensorUnits.KELVIN, 0.1, 0.0)
        assert ls.get_analog_monitor_output_settings() == {
            "source": ls.InputSensorUnits.KELVIN, "high_value": 0.1, "low_value": 0.0}
        ls.set_scanner_status(2, False)
        assert ls.get_scanner_status() == {"input_channel": 2, "status": False}
        assert not any(vars(ls.get_reading_status(2)).values())
    finally:
        ls.disconnect_tcp()
        server.shutdown()
        server.server_close()


def test_driver_refuses_a_warm_up_zone_range_before_sending() -> None:
    with expected_protocol(LakeShore372, []) as tc:
        with pytest.raises(SettingRangeError, match="outside the allowed range 0 .. 1"):
            tc.zone(1, 4).range_index = 3
        with pytest.raises(InstrumentError, match="only outputs 0 and 1"):
            tc.zone(2, 1)
        with pytest.raises(InstrumentError, match=r"'ZONE 0,11': .*zones 1-10"):
            tc.zone(0, 11)


def test_closed_loop_adds_the_manual_output_to_the_pid_output(closing: list[Any]) -> None:
    """Manual (372 user's manual, 4.6.1.5.5): "In closed loop control mode, Manual Output is
    added directly to the output of the PID control equation." Two identical fridges (same
    seed, same readings) in closed loop, one with MOUT 30 %: after one loop period (0.1 s)
    its output is 30 points higher; then its integral settles 30 points lower (below zero:
    the integral works about the manual output), so both hold the setpoint with the same
    output (1.9 %)."""
    outputs = []
    for manual in (0.0, 30.0):
        tc, world = fridge(closing)
        heater = tc.loops[0]
        heater.input_channel = "2"
        tc.write("PID 0,10,5,0")
        tc.write("RANGE 0,4")
        heater.manual_output = manual
        heater.setpoint = 0.03
        heater.mode = "CLOSED_LOOP"
        world.advance(0.1)
        first = heater.output
        world.advance(120.0)
        outputs.append((first, heater.output, tc.temperature(2)))
    (first_0, held_0, t_0), (first_30, held_30, t_30) = outputs
    assert 0.0 < first_0 < 70.0 and first_30 == pytest.approx(first_0 + 30.0, abs=0.01)
    assert t_0 == pytest.approx(0.03, abs=5e-4) and t_30 == pytest.approx(0.03, abs=5e-4)
    assert held_30 == pytest.approx(held_0, abs=0.05)
