"""The Keysight E5071C VNA driver: its exact dialect as a table, and against its simulated twin
over pyvisa-py TCP (the cavity's reflection through the line, fitted back)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from cryodaq.analysis.cavity import fit_reflection
from cryodaq.drivers.errors import InstrumentError
from cryodaq.drivers.vna import NetworkAnalyser
from cryodaq.sim_instruments.haloscope_chain import DEFAULT_CAVITY
from cryodaq.sim_instruments.library import SimInstrument
from cryodaq.sim_instruments.vna_model import VnaModel
from cryodaq.sim_instruments.world import World
from tests.conftest import ADDRESS
from tests.protocol import block, expected_protocol, writes
from tests.served import driver_over_tcp

S11 = [0.1, -0.2, 0.3, -0.4]
F = [5.0e9, 5.001e9]
#: A 2-point S11 sweep at -30 dBm: E5071C trigger and data commands, the stimulus off after.
SWEEP = [
    *writes(":SENS1:FREQ:STAR 5.000000000e+09"),
    *writes(":SENS1:FREQ:STOP 5.001000000e+09"),
    *writes(":SENS1:SWE:POIN 2"),
    *writes(":SOUR1:POW -3.000000000e+01"),
    *writes(":OUTP 1"),
    *writes(":TRIG:SOUR BUS"),
    *writes(":INIT1:CONT 1"),
    *writes(":FORM:DATA REAL"),
    *writes(":FORM:BORD SWAP"),
    (":SENS1:SWE:POIN?", "+2"),
    (":SENS1:BAND?", "+1.00000000000E+003"),
    *writes(":TRIG:SING"),
    ("*OPC?", "1"),
    (":FORM:DATA?", "REAL"),
    (":FORM:BORD?", "SWAP"),
    (":CALC1:DATA:SDAT?", b"#6000032" + np.asarray(S11, "<f8").tobytes()),
    (":FORM:DATA?", "REAL"),
    (":FORM:BORD?", "SWAP"),
    (":SENS1:FREQ:DATA?", block(F, "<f8")),
    *writes(":OUTP 0"),
]


def test_reflection_exchange_is_the_e5071c_dialect() -> None:
    with expected_protocol(NetworkAnalyser, SWEEP) as vna:
        sweep = vna.reflection(5e9, 5.001e9, 2, -30.0)
    assert sweep.s11 == pytest.approx([0.1 - 0.2j, 0.3 - 0.4j])
    assert sweep.frequencies_Hz == pytest.approx(F)


def test_ascii_and_big_endian_data() -> None:
    table = [(":FORM:DATA?", "ASC"), (":SENS1:FREQ:DATA?", "+5.000000000E+009,+5.001E+009"),
             (":FORM:DATA?", "REAL32"), (":FORM:BORD?", "NORM"),
             (":CALC1:DATA:SDAT?", block(S11, ">f4"))]  # fmt: skip
    with expected_protocol(NetworkAnalyser, table) as vna:
        assert vna._values(":SENS1:FREQ:DATA?") == pytest.approx(F)
        assert vna._values(":CALC1:DATA:SDAT?") == pytest.approx(S11)


@pytest.fixture
def served() -> Iterator[tuple[NetworkAnalyser, World]]:
    world = World({"seed": 4, "thermal": {"plates": {"attenuator": {}, "cavity": {}}}})
    model = VnaModel(world, "vna")
    with driver_over_tcp(NetworkAnalyser, SimInstrument(ADDRESS, "vna", model), "vna") as vna:
        yield vna, world


def test_reflection_over_tcp_fits_back_the_cavity(served: tuple[NetworkAnalyser, World]) -> None:
    vna, world = served
    assert vna.idn.startswith("cryodaq,E5071C")
    vna.if_bandwidth = 1e3
    sweep = vna.reflection(4.9415e9, 4.9475e9, 1201, -30.0)
    assert world.now() == pytest.approx(1.201)  # points / IF bandwidth
    assert not vna.output
    assert sweep.frequencies_Hz == pytest.approx(np.linspace(4.9415e9, 4.9475e9, 1201))
    cavity = fit_reflection(sweep.frequencies_Hz, sweep.s11).cavity
    assert cavity.kappa0_Hz == pytest.approx(DEFAULT_CAVITY["kappa0_Hz"], rel=0.02)
    assert cavity.kappae_Hz == pytest.approx(DEFAULT_CAVITY["kappae_Hz"], rel=0.02)
    assert abs(cavity.fc_Hz - DEFAULT_CAVITY["fc_Hz"]) < 1e3


def test_trigger_needs_bus_source_and_the_wired_parameter(
    served: tuple[NetworkAnalyser, World],
) -> None:
    vna, _ = served
    with pytest.raises(InstrumentError, match="-211"):
        vna.write(":TRIG:SING")  # trigger source INT after *RST
    vna.parameter = "S22"
    with pytest.raises(InstrumentError, match="wired to S11"):
        vna.reflection(4.9415e9, 4.9475e9, 11, -30.0)
    assert not vna.output
