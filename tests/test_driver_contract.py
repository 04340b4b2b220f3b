"""What every cryodaq driver promises, checked on each simulated instrument kind."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from conftest import open_simulated
from cryodaq.drivers.adc import Adc16
from cryodaq.drivers.base import Instrument
from cryodaq.drivers.errors import InstrumentError, InstrumentTimeout
from cryodaq.drivers.signal_analyser import SignalAnalyser
from cryodaq.drivers.squid import SquidElectronics
from cryodaq.drivers.thermal import TemperatureController
from cryodaq.drivers.umux import UmuxBoard
from cryodaq.drivers.vna import NetworkAnalyser
from cryodaq.drivers.vst import VectorSignalTransceiver
from cryodaq.sim_instruments.adc_model import AdcModel
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.signal_analyser_model import SignalAnalyserModel
from cryodaq.sim_instruments.squid_model import SquidModel
from cryodaq.sim_instruments.thermal_controller_model import TemperatureControllerModel
from cryodaq.sim_instruments.umux_model import UmuxModel
from cryodaq.sim_instruments.vna_model import VnaModel
from cryodaq.sim_instruments.vst_model import VstModel
from cryodaq.sim_instruments.world import World

WORLD = {
    "seed": 3,
    "thermal": {"plates": {"attenuator": {}, "cavity": {}}},
    "detectors": {"tes": {}},
}
KINDS: dict[str, tuple[type[Instrument], Callable[[World], SimModel]]] = {
    "adc": (Adc16, lambda w: AdcModel(w, "adc")),
    "squid": (SquidElectronics, lambda w: SquidModel(w, "fll")),
    "thermal": (TemperatureController,
                lambda w: TemperatureControllerModel(w, "tc", {"sensors": {1: "mixing"}})),
    "vst": (VectorSignalTransceiver, lambda w: VstModel(w, "vst")),
    "signal_analyser": (SignalAnalyser, lambda w: SignalAnalyserModel(w, "sa")),
    "vna": (NetworkAnalyser, lambda w: VnaModel(w, "vna")),
    "umux": (UmuxBoard, lambda w: UmuxModel(w, "roach")),
}


def open_kind(kind: str, closing: list[Any], silent: bool = False) -> Instrument:
    driver, model = KINDS[kind]
    inst = open_simulated(driver, kind, model(World(WORLD)), silent=silent)
    closing.append(inst)
    return inst


@pytest.mark.parametrize("kind", KINDS)
def test_identifies_resets_and_summarises(kind: str, closing: list[Any]) -> None:
    inst = open_kind(kind, closing)
    assert inst.idn.startswith("cryodaq,")
    inst.reset()
    summary = inst.summary()
    assert summary and all(isinstance(k, str) for k in summary)


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_command_is_an_instrument_error_within_a_second(
    kind: str, closing: list[Any]
) -> None:
    inst = open_kind(kind, closing)
    start = time.monotonic()
    with pytest.raises(InstrumentError, match=r"'NOPE\?'.*-113") as info:
        inst.query("NOPE?")
    assert not isinstance(info.value, InstrumentTimeout)
    assert time.monotonic() - start < 1.0
    with pytest.raises(InstrumentError, match="-113"):
        inst.write("NOPE 1")
    assert inst.idn.startswith("cryodaq,")  # the session is still in step


@pytest.mark.parametrize("kind", KINDS)
def test_silent_instrument_is_a_timeout_within_a_second(kind: str, closing: list[Any]) -> None:
    inst = open_kind(kind, closing, silent=True)
    start = time.monotonic()
    with pytest.raises(InstrumentTimeout, match=r"\*IDN\?.*timeout"):
        _ = inst.idn
    assert time.monotonic() - start < 1.0


def _device(inst: Instrument) -> Any:
    """The simulated device behind `inst` (to make it answer late)."""
    (device,) = inst.resource.visalib.physics.values()
    return device


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("late_query", "delay_s"),
                         [("SYST:ERR?", 0.8), ("SYST:ERR?", 1.2), ("*IDN?", 0.8)])
def test_a_late_reply_never_answers_the_next_query(kind: str, late_query: str, delay_s: float,
                                                   closing: list[Any]) -> None:
    """The instrument answers one query after the 0.5 s timeout (just after it, or after the
    resynchronisation gave up too): that query is a timeout, and the late reply is dropped,
    never read as the answer to a later query."""
    inst = open_kind(kind, closing)
    identity = inst.idn
    _device(inst).delay_next_reply_s = delay_s
    with pytest.raises(InstrumentTimeout, match="timeout"):
        inst.query(late_query)
    assert inst.idn == identity
    assert inst.query("SYST:ERR?") == '0,"No error"'
    assert inst.idn == identity


@pytest.mark.parametrize("kind", ["adc", "thermal"])
def test_a_full_error_queue_says_overflow_and_is_read_to_the_end(kind: str,
                                                                  closing: list[Any]) -> None:
    """40 bad commands in one message overflow the simulated 32-entry queue: the driver
    reports the 31 kept errors and -350, and the next command finds the queue empty."""
    inst = open_kind(kind, closing)
    inst.resource.write(";".join(["NOPE"] * 40))
    with pytest.raises(InstrumentError, match="-113") as info:
        inst.check_errors("40 x NOPE")
    message = str(info.value)
    assert message.count('-113,"Undefined header') == 31
    assert message.endswith('-350,"Queue overflow"')
    inst.check_errors("after")  # nothing left over
    assert inst.idn.startswith("cryodaq,")
