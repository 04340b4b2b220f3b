"""The Lake Shore Model 372 dialect, pinned on both sides of the wire.

The driver's exchanges are listed as tables (a fake resource asserts each message), the
simulator's answers too (bytes in, bytes out), so neither side is checked only against the
other. Then both meet over TCP, and Lake Shore's own `lakeshore` package (a client nobody here
wrote) drives the simulated 372 unchanged: it sets a setpoint and reads temperatures that
follow it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa
from pyvisa.rname import to_canonical_name

from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.drivers.errors import InstrumentError, SettingRangeError
from cryodaq.drivers.lakeshore372 import LakeShore372
from cryodaq.sim_instruments.lakeshore_device import LakeShoreDevice
from tests.protocol import expected_protocol
from tests.served import serve_instrument, serve_sim

RIG = Path(__file__).resolve().parents[1] / "config" / "rigs" / "mmc_simple_sim.yaml"
OK = ("*ESR?", "0")
SAMPLE_SETUP = ("HTRSET? 0", "+1.00000E+02,0,+0.00000E+00,1")


# -- the driver's side: exact exchanges ------------------------------------------------------


def test_setpoint_is_one_command_checked_by_esr_and_read_back() -> None:
    table = [("SETP 0,0.05", None), OK, ("SETP? 0", "+5.00000E-02")]
    with expected_protocol(LakeShore372, table) as tc:
        tc.loops[0].setpoint = 0.05


def test_a_field_of_outmode_rewrites_the_others_as_the_instrument_holds_them() -> None:
    table = [
        ("OUTMODE? 0", "0,1,0,0,0,1"),
        ("OUTMODE 0,5,1,0,0,0,1", None), OK,
        ("OUTMODE? 0", "5,1,0,0,0,1"),
    ]  # fmt: skip
    with expected_protocol(LakeShore372, table) as tc:
        tc.loops[0].mode = "CLOSED_LOOP"


def test_pid_gain_and_heater_range_as_power_in_the_configured_heater() -> None:
    table = [
        ("PID? 0", "+1.00000E+01,+2.00000E+01,+0.00000E+00"),
        ("PID 0,25,+2.00000E+01,+0.00000E+00", None), OK,
        ("PID? 0", "+2.50000E+01,+2.00000E+01,+0.00000E+00"),
        SAMPLE_SETUP, ("RANGE 0,3", None), OK,  # 316 uA in 100 ohm: 10 uW
        ("RANGE? 0", "3"), SAMPLE_SETUP,
    ]  # fmt: skip
    with expected_protocol(LakeShore372, table) as tc:
        tc.loops[0].p = 25
        tc.loops[0].heater_range = 10e-6


def test_scanner_heater_setup_and_sensor_units() -> None:
    table = [
        ("SCAN?", "1,0"), ("SCAN 5,0", None), OK, ("SCAN?", "5,0"),
        SAMPLE_SETUP, ("HTRSET 0,120,0,+0.00000E+00,1", None), OK,
        ("HTRSET? 0", "+1.20000E+02,0,+0.00000E+00,1"),
        ("HTRSET? 1", "1,1,+0.00000E+00,1"),  # 25 ohm (code 1), 0.45 A
        ("HTRSET 1,2,1,+0.00000E+00,1", None), OK, ("HTRSET? 1", "2,1,+0.00000E+00,1"),
        ("SRDG? 3", "+2.01234E+03"),
    ]  # fmt: skip
    with expected_protocol(LakeShore372, table) as tc:
        tc.scan_channel = 5
        tc.loops[0].heater_resistance = 120.0
        tc.loops[1].heater_resistance = 50.0
        assert tc.input(3).sensor_reading == pytest.approx(2012.34)
        with pytest.raises(SettingRangeError, match="25 or 50 ohm"):
            tc.loops[1].heater_resistance = 30.0


def test_inputs_read_kelvin_and_a_flagged_reading_is_nan() -> None:
    table = [("KRDG? 1", "+2.00010E-02"), ("KRDG? A", "+0.00000E+00"), ("RDGST? A", "16")]
    with expected_protocol(LakeShore372, table) as tc:
        assert tc.temperature(1) == pytest.approx(0.020001)
        assert math.isnan(tc.temperature("A"))


def test_an_execution_error_names_the_command() -> None:
    table = [("SETP 0,12", None), ("*ESR?", "16")]
    with (
        expected_protocol(LakeShore372, table) as tc,
        pytest.raises(InstrumentError, match=r"SETP 0,12.*execution error"),
    ):
        tc.loops[0].setpoint = 12.0


def test_a_value_the_instrument_does_not_hold_is_an_error() -> None:
    table = [("MOUT 0,40", None), OK, ("MOUT? 0", "+0.00000E+00")]
    with (
        expected_protocol(LakeShore372, table) as tc,
        pytest.raises(InstrumentError, match="holds 0.0"),
    ):
        tc.loops[0].manual_output = 40.0


def test_ranges_are_refused_before_anything_is_sent() -> None:
    with expected_protocol(LakeShore372, [SAMPLE_SETUP]) as tc:
        with pytest.raises(SettingRangeError, match=r"1e-07 W, 1e-06 W, 1e-05 W"):
            tc.loops[0].heater_range = 2e-6
        with pytest.raises(SettingRangeError, match="outside the allowed range 0 .. 1000"):
            tc.loops[0].p = 5000


# -- the simulator's side: exact answers -----------------------------------------------------


@pytest.fixture()
def device() -> Iterator[LakeShoreDevice]:
    spec = load_rig(RIG)
    with Rig(spec) as rig:
        address = to_canonical_name(spec.instruments["tc"].address)
        device = rig.library.physics[address]
        assert isinstance(device, LakeShoreDevice)
        yield device


def ask(device: LakeShoreDevice, message: str) -> bytes:
    """Send one message, as a client ends it (LF); the whole reply line, or b''."""
    device.write(message.encode() + b"\n")
    out = b""
    while device.has_output():
        chunk, end = device.read_chunk(4096)
        out += chunk
        if end:
            break
    return out


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("*IDN?", b"LSCI,MODEL372,LSASIM1/LSASIM2,1.5\r\n"),
        ("SETP 0,0.05;SETP? 0;*ESR?", b"+5.00000E-02;0\r\n"),
        ("setp 0 , 0.03;setp? 0", b"+3.00000E-02\r\n"),
        ("PID 0,20,10,0;PID? 0", b"+2.00000E+01,+1.00000E+01,+0.00000E+00\r\n"),
        ("OUTMODE? 0;RANGE? 0;HTRSET? 0", b"0,1,0,0,0,1;0;+1.00000E+02,0,+0.00000E+00,1\r\n"),
        ('INNAME 1,"mixing chamber";INNAME? 1', b'"mixing chamber"\r\n'),
        ("RDGST? 1;RDGST? 5;KRDG? 5", b"000;016;+0.00000E+00\r\n"),  # format nnn
        ("RDGK? 5;*ESR?", b"+0.00000E+00;0\r\n"),  # the manual's name for KRDG?
        ("FOO 1;*ESR?;*ESR?", b"32;0\r\n"),  # reading clears it
        ("SETP 0,500;*ESR?", b"16\r\n"),  # out of range: execution error
        ("RANGE 1,3;*ESR?", b"16\r\n"),  # the warm-up heater is off (0) or on (1)
        ("SETP 0;*ESR?", b"32\r\n"),  # a missing value: command error
        ("KRDG 1;*ESR?", b"32\r\n"),  # a query only
        ("OUTMODE 0,5,9,0,0,0,1;*ESR?", b"16\r\n"),  # input 9 has no sensor
        ("RAMPST? 2;*ESR?", b"16\r\n"),  # the analog output has no ramp
    ],
)
def test_simulator_answers_as_the_manual_says(
    device: LakeShoreDevice, message: str, reply: bytes
) -> None:
    assert ask(device, message) == reply


def test_simulator_survives_junk_and_keeps_answering(device: LakeShoreDevice) -> None:
    device.write(b"\xff\xfe\x00garbage\n")
    device.write(b"X" * 10_000 + b"\n")
    assert ask(device, "*ESR?") == b"32\r\n"
    assert ask(device, "*IDN?").startswith(b"LSCI,MODEL372")


# -- both sides over TCP, and Lake Shore's own client ---------------------------------------


@pytest.fixture()
def served() -> Iterator[tuple[Rig, int]]:
    """The simulated 372 of the MMC rig on a TCP port (power-on state), its World at hand."""
    with Rig(load_rig(RIG)) as rig, serve_instrument(rig, "tc") as port:
        yield rig, port


def test_driver_regulates_the_served_372_over_pyvisa_py(served: tuple[Rig, int]) -> None:
    rig, port = served
    rm = pyvisa.ResourceManager("@py")
    tc = LakeShore372.open(rm, f"TCPIP::127.0.0.1::{port}::SOCKET", name="tc", timeout_s=5.0)
    try:
        assert tc.idn.startswith("LSCI,MODEL372")
        out = tc.loops[0]
        out.heater_range = 1e-6
        out.p, out.i = 20.0, 10.0
        tc.regulate(0, 0.025, input_channel=1)
        rig.world.advance(600.0)
        assert tc.temperature(1) == pytest.approx(0.025, abs=2e-4)
        assert 0 < tc.heater_power(0) <= 1e-6
        with pytest.raises(InstrumentError, match="execution error"):
            tc.write("SETP 0,500")
    finally:
        tc.close()


def test_lake_shore_s_own_client_sets_a_setpoint_and_reads_it_followed(
    served: tuple[Rig, int],
) -> None:
    lakeshore = pytest.importorskip("lakeshore")
    rig, port = served
    ls = lakeshore.Model372(baud_rate=None, ip_address="127.0.0.1", tcp_port=port, timeout=5)
    try:
        assert ls.model_number == "MODEL372"
        ls.setup_sample_heater(100, ls.HeaterOutputUnits.POWER)
        settings = lakeshore.Model372HeaterOutputSettings(
            ls.OutputMode.CLOSED_LOOP, 1, False, False, 1, ls.Polarity.UNIPOLAR
        )
        ls.configure_heater(0, settings)
        ls.set_heater_output_range(0, ls.SampleHeaterOutputRange.RANGE_100_MICRO_AMPS)
        ls.set_heater_pid(0, 20, 10, 0)
        for target in (0.030, 0.022):
            ls.set_setpoint_kelvin(0, target)
            rig.world.advance(600.0)
            assert ls.get_setpoint_kelvin(0) == pytest.approx(target)
            assert ls.get_kelvin_reading(1) == pytest.approx(target, abs=2e-4)
        assert ls.get_heater_output_settings(0).output_mode == ls.OutputMode.CLOSED_LOOP
        assert 0 < ls.get_heater_output(0) <= 1e-6  # W: the heater shows power
    finally:
        ls.disconnect_tcp()


def test_lake_shore_s_client_reaches_cryodaq_serve_sim() -> None:
    """`cryodaq serve-sim` (real time, a separate process) as the 372 the client expects."""
    lakeshore = pytest.importorskip("lakeshore")
    with serve_sim(RIG, "--any-port") as served:
        ls = lakeshore.Model372(baud_rate=None, ip_address="127.0.0.1", tcp_port=served.port("tc"))
        try:
            assert ls.serial_number == "LSASIM1"
            assert 0.005 < ls.get_kelvin_reading(1) < 0.1  # the detector plate, cold
            ls.set_setpoint_kelvin(0, 0.025)
            assert ls.get_setpoint_kelvin(0) == pytest.approx(0.025)
        finally:
            ls.disconnect_tcp()
