"""The simulator's SCPI parser: forms, numbers and units, status, errors, and a hardened server."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from cryodaq.sim_instruments.device import PhysicsDevice
from cryodaq.sim_instruments.library import build_device, device_file
from cryodaq.sim_instruments.scpi import MAX_MESSAGE_BYTES, SCPIError
from cryodaq.sim_instruments.scpi_headers import parse_notation
from cryodaq.sim_instruments.scpi_params import parse_number
from cryodaq.sim_instruments.tcp_server import InstrumentServer

#: A made-up instrument in the notation device files may use: long forms, optional nodes,
#: channel suffixes, a fixed suffix, literal dialogue parameters, units, a model's header.
DEVICE_FILE = """
spec: "1.1"
devices:
  box:
    eom:
      TCPIP SOCKET: {q: "\\n", r: "\\n"}
    error:
      error_queue:
        - q: "SYST:ERR?"
          default: '0,"No error"'
    scpi:
      headers:
        - "[:SENSe]:FREQuency:SPAN"
        - "FETCh?"
    dialogues:
      - q: "*IDN?"
        r: "cryodaq,BOX,SIM00001,1.0"
      - q: ":FORMat[:DATA] REAL,64"
      - q: ":INSTrument:CATalog?"
        r: '"SA 1"'
    properties:
      centre:
        default: 5.0e+9
        getter: {q: "[:SENSe]:FREQuency:CENTer?", r: "{:.9e}"}
        setter: {q: "[:SENSe]:FREQuency:CENTer {:e}"}
        specs: {type: float, min: 9.0e+3, max: 6.0e+9, unit: HZ}
      span:
        default: 1.0e+6
        getter: {q: "FREQ:SPAN?", r: "{:.9e}"}
        setter: {q: "FREQ:SPAN {:e}"}
        specs: {type: float, min: 10.0, max: 6.0e+9, unit: HZ}
      dwell:
        default: 1.0e-3
        getter: {q: "SWEep:DWELl?", r: "{:.9e}"}
        setter: {q: "SWEep:DWELl {:e}"}
        specs: {type: float, min: 1.0e-6, max: 10.0, unit: S}
      level:
        default: -30.0
        getter: {q: ":SOURce:POWer[:LEVel]?", r: "{:.9e}"}
        setter: {q: ":SOURce:POWer[:LEVel] {:e}"}
        specs: {type: float, min: -120.0, max: 10.0, unit: DBM}
      points:
        default: 101
        getter: {q: "SWEep:POINts?", r: "{:d}"}
        setter: {q: "SWEep:POINts {:d}"}
        specs: {type: int, min: 2, max: 1001}
      output:
        default: 0
        getter: {q: "OUTPut[:STATe]?", r: "{:d}"}
        setter: {q: "OUTPut[:STATe] {:d}"}
        specs: {type: int, valid: [0, 1]}
      parameter:
        default: "S11"
        getter: {q: ":CALCulate1:PARameter1:DEFine?", r: "{:s}"}
        setter: {q: ":CALCulate1:PARameter1:DEFine {:s}"}
        specs: {type: str, valid: ["S11", "S21"]}
    channels:
      channel:
        ids: ["1", "2", "3", "4"]
        can_select: True
        properties:
          bias:
            default: 0.0
            getter: {q: "CHannel{ch_id}:BIAS?", r: "{:.9e}"}
            setter: {q: "CHannel{ch_id}:BIAS {:e}"}
            specs: {type: float, min: 0.0, max: 2.0e-3, unit: A}
          mode:
            default: AMP
            getter: {q: "CH{ch_id:s}:MODE?", r: "{:s}"}
            setter: {q: "CH{ch_id:s}:MODE {:s}"}
            specs: {type: str, valid: [AMP, FLL]}
resources:
  TCPIP0::127.0.0.1::5025::SOCKET:
    device: box
"""


class Box:
    """A device built from `DEVICE_FILE`, spoken to message by message."""

    def __init__(self, device: PhysicsDevice) -> None:
        self.device = device
        device.resource_name = "TCPIP0::127.0.0.1::5025::SOCKET"

    def send(self, message: str | bytes) -> str:
        data = message.encode() if isinstance(message, str) else message
        self.device.write(data + b"\n")
        out = []
        while self.device.has_output():
            chunk, _ = self.device.read_chunk(1 << 20)
            out.append(chunk)
        return b"".join(out).decode("ascii").rstrip("\n")

    def error(self) -> str:
        return self.send(":SYST:ERR?")

    def errors(self) -> list[int]:
        codes = []
        while (entry := self.error()) != '0,"No error"':
            codes.append(int(entry.split(",", 1)[0]))
        return codes


@pytest.fixture
def box(tmp_path: Path) -> Box:
    path = tmp_path / "box.yaml"
    path.write_text(DEVICE_FILE, encoding="utf-8")
    return Box(build_device(path, "box"))


# -- headers ------------------------------------------------------------------------------


def test_notation_gives_short_and_long_forms() -> None:
    nodes, query = parse_notation("[:SENSe]:FREQuency:CENTer?")
    assert query and [(n.short, n.long, n.optional) for n in nodes] == [
        ("SENS", "SENSE", True), ("FREQ", "FREQUENCY", False), ("CENT", "CENTER", False)]
    (node,), _ = parse_notation("SYST")  # no lower case: the one form is short and long
    assert node.short == node.long == "SYST"


@pytest.mark.parametrize("query", [
    "FREQ:CENT?", ":FREQ:CENT?", "SENS:FREQ:CENT?", ":SENSe:FREQuency:CENTer?", "freq:cent?",
    ":sense:frequency:center?", "SENSE:FREQ:CENTER?", "  FREQ:CENT?  ",
])
def test_every_form_of_a_header_answers(box: Box, query: str) -> None:
    assert float(box.send(query)) == 5e9
    assert box.errors() == []


@pytest.mark.parametrize("query", ["FREQU:CENT?", "FREQ:CENTE?", "SENS:SENS:FREQ:CENT?",
                                   "FREQ:CENT:X?", "SENS?"])
def test_neither_short_nor_long_form_is_undefined(box: Box, query: str) -> None:
    assert box.send(query) == ""  # a query that errors gives no reply
    assert box.errors() == [-113]


def test_short_q_strings_take_their_long_form_from_the_headers_list(box: Box) -> None:
    box.send(":SENSe:FREQuency:SPAN 2 MHZ")
    assert float(box.send("freq:span?")) == 2e6
    assert box.send("OUTPUT:STATE ON;:OUTP?") == "1"


def test_semicolon_chains_continue_the_previous_path(box: Box) -> None:
    # FREQ:CENT sets the path to [SENS:]FREQ; SPAN is then FREQ:SPAN; *CLS keeps the path
    box.send("FREQ:CENT 4.2E+09;SPAN 3E6;*CLS;SPAN?")
    assert float(box.send("SENS:FREQ:SPAN?")) == 3e6
    assert box.send("FREQ:CENT?;SPAN?;:SWE:POIN?") == "4.200000000e+09;3.000000000e+06;101"
    # a header after `;` without colon is relative: SWE:POIN under FREQ is undefined
    assert box.send("FREQ:SPAN?;SWE:POIN?") == "3.000000000e+06"
    assert box.errors() == [-113]
    assert box.send("SWE:POIN 11;DWEL 2 MS;:SWE:POIN?;DWEL?") == "11;2.000000000e-03"


def test_channel_suffixes(box: Box) -> None:
    box.send("CHANNEL3:BIAS 5 UA;:CH3:MODE fll;:CHAN3:MODE AMP")
    assert float(box.send("channel3:bias?")) == pytest.approx(5e-6)
    assert box.send("CH3:MODE?;:CH2:MODE?") == "FLL;AMP"
    box.send("CH:MODE FLL")  # no suffix: channel 1
    assert box.send("CH1:MODE?") == "FLL"
    assert box.send("CH9:MODE?") == ""
    box.send("CH0:BIAS 0")
    assert box.errors() == [-113, -114, -114]  # CHAN is neither CH nor CHANNEL


def test_fixed_suffix_and_literal_parameters(box: Box) -> None:
    box.send(":CALC:PAR:DEF s21")
    assert box.send(":CALCulate1:PARameter1:DEFine?") == "S21"
    box.send(":CALC2:PAR1:DEF S11")
    box.send("form:data real, 6.4E1;:FORM REAL,64")
    box.send(":FORM REAL,32")
    assert box.errors() == [-114, -224]
    assert box.send(":INST:CAT?") == '"SA 1"'


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "unit", "value"), [
    ("4.2E+09", "HZ", 4.2e9), ("4.2e9", "HZ", 4.2e9), ("4200000000", "HZ", 4.2e9),
    ("+4.2E9", "HZ", 4.2e9), (".5", "", 0.5), ("-1.5e-3", "", -1.5e-3), ("4.2 E 9", "", 4.2e9),
    ("4.2 GHZ", "HZ", 4.2e9), ("4.2GHz", "HZ", 4.2e9), ("30 KHZ", "HZ", 3e4),
    ("10 MHZ", "HZ", 1e7), ("10 MAHZ", "HZ", 1e7), ("10 MS", "S", 1e-2), ("10 US", "S", 1e-5),
    ("2 MOHM", "OHM", 2e6), ("2 KOHM", "OHM", 2e3), ("5 MV", "V", 5e-3), ("5 MAV", "V", 5e6),
    ("-20 DBM", "DBM", -20.0), ("3 MA", "A", 3e-3), ("3 UA", "A", 3e-6), ("3 A", "A", 3.0),
    ("#H1F", "", 31.0), ("#B101", "", 5.0), ("#q17", "", 15.0),
])
def test_numbers_and_suffix_multipliers(text: str, unit: str, value: float) -> None:
    assert parse_number(text, unit) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize(("text", "unit", "code"), [
    ("4.2 GV", "HZ", -131), ("4.2 XHZ", "HZ", -131), ("4 HZ", "", -138), ("4 MDBM", "DBM", -131),
    ("abc", "HZ", -104), ('"4"', "HZ", -104), ("4.2.1", "HZ", -131), ("-", "HZ", -120),
    ("#H1G", "", -120),
])
def test_bad_numbers_have_their_codes(text: str, unit: str, code: int) -> None:
    with pytest.raises(SCPIError) as info:
        parse_number(text, unit)
    assert info.value.code == code


def test_setters_take_units_limits_and_booleans(box: Box) -> None:
    box.send("FREQ:CENT 4.4 GHZ")
    assert float(box.send("FREQ:CENT?")) == 4.4e9
    box.send("SOUR:POW -20 DBM;LEV?")
    assert float(box.send(":SOUR:POW?")) == -20.0
    box.send("FREQ:CENT MIN;:SWE:POIN MAXIMUM;:SOUR:POW max;:OUTP on")
    assert box.send("FREQ:CENT?;:SWE:POIN?;:SOUR:POW?;:OUTP?") == (
        "9.000000000e+03;1001;1.000000000e+01;1")
    box.send("FREQ:CENT DEF;:OUTP OFF;:SWE:POIN 1.01E2")
    assert box.send("FREQ:CENT?;:OUTP?;:SWE:POIN?") == "5.000000000e+09;0;101"
    assert box.errors() == []


@pytest.mark.parametrize(("command", "code"), [
    ("FREQ:CENT 7 GHZ", -222), ("FREQ:CENT", -109), ("FREQ:CENT 1,2", -108),
    ("FREQ:CENT ON", -104), ("FREQ:CENT 4 GV", -131), ("SWE:POIN 5 HZ", -138),
    ("FREQ:CENT? 5", -108), ("FREQ:CENT 9.9E37", -222), ("CH1:MODE OPEN", -224),
    ("FREQ:CENT,5", -102), ("FREQ::CENT 5", -102), ("FREQ:CENT 1,", -102),
    ('FREQ:CENT "5', -102), ("*ESE", -109), ("*ESE 300", -222), ("*IDN? 1", -108),
    ("*NOPE", -113), ("NOPE", -113), ("FRE\u00e9Q 5", -101), ("FREQ:CENT 5\x00", -101),
])
def test_malformed_input_gives_the_standard_code(box: Box, command: str, code: int) -> None:
    assert box.send(command) == ""
    assert box.errors() == [code]
    assert float(box.send("FREQ:CENT?")) == 5e9  # nothing was changed


def test_invalid_utf8_and_binary_junk(box: Box) -> None:
    assert box.send(b"\xff\xfe\x00FREQ?\x80") == ""
    assert box.send(bytes(range(256)).replace(b"\n", b"")) == ""
    assert box.errors() == [-101, -101]
    assert box.send("*IDN?") == "cryodaq,BOX,SIM00001,1.0"


def test_an_overlong_message_is_dropped_whole(box: Box) -> None:
    box.device.write(b"FREQ:CENT 1;" * (MAX_MESSAGE_BYTES // 12 + 10))
    box.device.write(b"FREQ:CENT 2\n")
    assert box.errors() == [-363]
    assert float(box.send("FREQ:CENT?")) == 5e9


# -- status -------------------------------------------------------------------------------


def test_event_status_register_bits_and_clearing(box: Box) -> None:
    assert box.send("*ESR?") == "0"
    box.send("NOPE")  # command error
    assert box.send("*ESR?") == "32"
    assert box.send("*ESR?") == "0"  # reading clears it
    box.send("FREQ:CENT 1E12")  # execution error
    box.send("*OPC")
    assert box.send("*ESR?") == str(16 + 1)
    box.device.push_error(-300, "Device-specific error; model fault")
    box.device.push_error(-410, "Query INTERRUPTED")
    assert box.send("*ESR?") == str(8 + 4)
    assert box.send("*OPC?;*WAI") == "1"


def test_status_byte_enable_registers_and_cls(box: Box) -> None:
    box.send("*ESE 36;*SRE 32")
    assert box.send("*ESE?;*SRE?") == "36;32"
    box.send("NOPE")
    assert int(box.send("*STB?")) == 4 | 32 | 64  # error queue, event summary, MSS
    box.send("*CLS")
    assert box.send("*STB?;*ESR?") == "0;0"
    assert box.errors() == []


def test_error_queue_overflows_with_350(box: Box) -> None:
    box.send(";".join(["NOPE"] * 40))
    codes = box.errors()
    assert len(codes) == 32 and codes[:31] == [-113] * 31 and codes[31] == -350


def test_rst_restores_defaults_but_keeps_the_error_queue(box: Box) -> None:
    box.send("FREQ:CENT 1 GHZ;:NOPE")
    box.send("*RST")
    assert float(box.send("FREQ:CENT?")) == 5e9
    assert box.errors() == [-113]


def test_error_query_forms(box: Box) -> None:
    for query in ("SYST:ERR?", "SYSTem:ERRor?", ":system:error:next?", "SYST:ERR:NEXT?"):
        box.send("NOPE")
        assert box.send(query).startswith('-113,"Undefined header')


# -- the shipped instruments --------------------------------------------------------------


def test_vst_takes_long_forms_and_units() -> None:
    vst = Box(build_device(device_file("vst"), "vst"))
    vst.send(":SENSe:FREQuency:CENTer 4.4 GHZ")
    assert float(vst.send("freq:cent?")) == 4.4e9
    vst.send("sens:band 30 khz;:SPECtrum:TIME 10 MS;:SOURce:POWer -20 DBM")
    assert vst.send("BAND:RES?;:SPEC:TIME?;:SOUR:POW?") == (
        "3.000000000e+04;1.000000000e-02;-2.000000000e+01")
    assert vst.errors() == []


def test_model_headers_see_the_canonical_form() -> None:
    """Data commands answered by a model (regular expressions on the canonical text) take
    every form too, and the drivers' own short forms are unchanged."""
    squid = Box(build_device(device_file("squid"), "squid32"))
    calls: list[str] = []
    squid.device._handlers = [(__import__("re").compile(r"CH(\d+):LOCK\?"),
                               lambda m: calls.append(m[1]) or "1")]
    assert squid.send(":ch7:lock?;:CH12:LOCK?") == "1;1"
    assert calls == ["7", "12"]
    assert squid.send("CH33:LOCK?") == ""
    assert squid.errors() == [-114]


# -- over TCP -----------------------------------------------------------------------------


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    return data


def _ask(sock: socket.socket, message: bytes) -> bytes:
    sock.sendall(message + b"\n")
    return _read_line(sock)


def test_server_survives_junk_overlong_lines_and_invalid_utf8() -> None:
    device = build_device(device_file("vst"), "vst")
    device.resource_name = "TCPIP0::127.0.0.1::5025::SOCKET"
    server = InstrumentServer(device, 0)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
            idn = _ask(sock, b"*IDN?")
            assert idn.startswith(b"cryodaq,VST6")
            sock.sendall(b"\xff\xfe\xfd\x00\x01junk\x80\n")  # invalid UTF-8, control bytes
            sock.sendall(bytes(range(256)) * 8 + b"\n")  # binary junk with line ends inside
            sock.sendall(b"A" * (3 * MAX_MESSAGE_BYTES) + b"\n")  # overlong, no line end
            sock.sendall(b"FREQ:CENT " + b"9" * (MAX_MESSAGE_BYTES + 10) + b"\n")
            sock.sendall(b":SENSe:FREQuency:CENTer 4.4 GHZ\r\n")
            assert _ask(sock, b"*IDN?") == idn
            assert _ask(sock, b"freq:cent?") == b"4.400000000e+09\n"
            codes = []
            while (entry := _ask(sock, b"SYST:ERR?")) != b'0,"No error"\n':
                codes.append(int(entry.split(b",")[0]))
            assert -101 in codes and codes.count(-363) == 2
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
            sock.sendall(b"\x00" * 1000)  # then hang up mid-line
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
            start = time.monotonic()
            assert _ask(sock, b"*idn?") == idn
            assert time.monotonic() - start < 2.0
    finally:
        server.shutdown()
        server.server_close()


def test_units_need_no_spec_unit_to_be_refused(box: Box) -> Any:
    box.send("SWE:POIN 10 KHZ")
    assert box.errors() == [-138]
