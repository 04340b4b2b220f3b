"""The driver conformance kit pinned by the suite: each kind's contract on its simulated
instrument, the session checks on the dialect instruments, `cryodaq check-driver`, and broken
drivers that the contract must fail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError
from typer.testing import CliRunner

from conftest import open_simulated
from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.conformance import session
from cryodaq.acquisition.conformance.contracts import CONTRACTS, contracts_for, why_no_kind
from cryodaq.acquisition.conformance.core import Check, Status, Target, run_check, run_contract
from cryodaq.drivers.adc import Adc16, AdcBlock
from cryodaq.drivers.base import Instrument, Range, Setting
from cryodaq.drivers.kinds import kinds_of
from cryodaq.drivers.lakeshore372 import LakeShore372
from cryodaq.drivers.session_sync import resynchronise
from cryodaq.drivers.signal_analyser import SignalAnalyser
from cryodaq.drivers.squid import SquidChannel, SquidElectronics
from cryodaq.drivers.umux import UmuxBoard
from cryodaq.drivers.vna import NetworkAnalyser
from cryodaq.drivers.vst import VectorSignalTransceiver
from cryodaq.sim_instruments.adc_model import AdcModel
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.signal_analyser_model import SignalAnalyserModel
from cryodaq.sim_instruments.squid_model import SquidModel
from cryodaq.sim_instruments.umux_model import UmuxModel
from cryodaq.sim_instruments.vna_model import VnaModel
from cryodaq.sim_instruments.vst_model import VstModel
from cryodaq.sim_instruments.world import World

ROOT = Path(__file__).resolve().parent.parent
WORLD = {
    "seed": 3,
    "thermal": {"plates": {"attenuator": {}, "cavity": {}}},
    "detectors": {"tes": {}},
}
Simulated = tuple[type[Instrument], Callable[[World], SimModel]]
#: The kit's kinds (no industry dialect): their whole contract runs here.
KINDS: dict[str, Simulated] = {
    "adc": (Adc16, lambda w: AdcModel(w, "adc")),
    "squid": (SquidElectronics, lambda w: SquidModel(w, "fll")),
    "umux": (UmuxBoard, lambda w: UmuxModel(w, "roach")),
}
#: Instruments of an industry dialect (or the VST's own protocol), whose commands their own
#: tests pin; they share cryodaq's SCPI session, so its checks run here too. The Lake Shore
#: 372 has no SYST:ERR? (tests/test_lakeshore372.py).
DIALECTS: dict[str, Simulated] = {
    "vst": (VectorSignalTransceiver, lambda w: VstModel(w, "vst")),
    "signal_analyser": (SignalAnalyser, lambda w: SignalAnalyserModel(w, "sa")),
    "vna": (NetworkAnalyser, lambda w: VnaModel(w, "vna")),
}


def open_kind(kind: str, closing: list[Any], driver: type[Instrument] | None = None) -> Target:
    """A fresh simulated `kind` opened with its driver (or `driver`), as the kit's target."""
    default, model = {**KINDS, **DIALECTS}[kind]
    inst = open_simulated(driver or default, kind, model(World(WORLD)))
    closing.append(inst)
    inst.resource.timeout = 500.0  # the dialects' 2 s would only make the suite slower
    return Target.of(inst)


def outcome_of(kind: str, check: str, closing: list[Any],
               driver: type[Instrument] | None = None) -> Any:
    (found,) = [c for c in CONTRACTS[kind].checks if c.name == check]
    return run_check(found, open_kind(kind, closing, driver)).outcome


# -- the contracts on the simulated kinds ------------------------------------------------------


@pytest.mark.parametrize(("kind", "check"),
                         [(k, c.name) for k in KINDS for c in CONTRACTS[k].checks])
def test_simulated_kind_meets_its_contract(kind: str, check: str, closing: list[Any]) -> None:
    outcome = outcome_of(kind, check, closing)
    assert outcome.status is Status.PASS, outcome.reason


@pytest.mark.parametrize(("kind", "check"), [(k, c) for k in DIALECTS for c in session.CHECKS])
def test_dialect_instruments_keep_the_scpi_session(kind: str, check: Check,
                                                    closing: list[Any]) -> None:
    target = open_kind(kind, closing)
    assert target.inst.idn.startswith("cryodaq,")
    outcome = run_check(check, target).outcome
    assert outcome.status is Status.PASS, outcome.reason


def test_simulator_only_checks_skip_on_a_real_instrument(closing: list[Any]) -> None:
    target = replace(open_kind("adc", closing), sim=None)  # as if reached over a real wire
    results = {r.check: r.outcome for r in run_contract(CONTRACTS["adc"], target)}
    skipped = {name for name, o in results.items() if o.status is Status.SKIP}
    assert skipped == {"silent instrument is a timeout", "late reply never answers the next query",
                       "lost samples are a counted gap"}
    assert all("skipped on a real instrument" in results[name].reason for name in skipped)
    assert all(o.status is Status.PASS for name, o in results.items() if name not in skipped)


def test_each_driver_falls_under_its_kind_and_dialects_under_none() -> None:
    assert [kinds_of(d) for d, _ in KINDS.values()] == [["adc"], ["squid"], ["umux"]]
    for driver in (LakeShore372, VectorSignalTransceiver, SignalAnalyser, NetworkAnalyser):
        assert kinds_of(driver) == [] and contracts_for(driver) == []
    assert "have their own tests" in why_no_kind(LakeShore372)


# -- broken drivers fail ----------------------------------------------------------------------


class DeafAdc(Adc16):
    """Ignores the sample rate it is given (the instrument never hears it)."""

    def set(self, setting: Setting[Any], value: Any) -> None:
        if setting.name != "sample_rate":
            super().set(setting, value)


class MiscountingAdc(Adc16):
    """Reads the block counter big-endian (the preamble is little-endian)."""

    def fetch(self, samples: int) -> AdcBlock:
        block = super().fetch(samples)
        counter = int.from_bytes(block.first_sample.to_bytes(8, "little"), "big")
        return replace(block, first_sample=counter)


class LaxAdc(Adc16):
    """Declares no allowed input ranges: a wrong one reaches the instrument."""

    input_range = Setting("VOLT:RANG", float, unit="V")


class MicroampSquidChannel(SquidChannel):
    bias_current = Setting("CH{ch}:IB", float, unit="uA", allowed=Range(0.0, 180.0))


class MicroampSquid(SquidElectronics):
    """Declares its bias current in uA: a rig's "30 uA" would be sent as 3e-05."""

    channel_class = MicroampSquidChannel


@pytest.mark.parametrize(("driver", "check", "reason"), [
    (DeafAdc, "settings round-trip", r"sample_rate: set 2500000.0, reads back 1000000.0"),
    (MiscountingAdc, "consecutive counted blocks",
     r"the second block starts at sample 16718206241729413120, not 1000"),
    (LaxAdc, "ranges refused client-side", r"input_range declares no allowed values"),
])
def test_a_broken_driver_fails_with_the_reason(driver: type[Adc16], check: str, reason: str,
                                               closing: list[Any]) -> None:
    outcome = outcome_of("adc", check, closing, driver)
    assert outcome.status is Status.FAIL
    assert reason in outcome.reason


def test_a_setting_in_the_wrong_unit_is_of_no_kind() -> None:
    assert kinds_of(MicroampSquid) == []
    assert "nearest squid: channel: 'bias_current' is float in 'uA', not float in 'A'" in (
        why_no_kind(MicroampSquid)
    )


# -- cryodaq check-driver ----------------------------------------------------------------------


def check_driver(*args: str) -> Any:
    return CliRunner().invoke(app, ["check-driver", *args])


@pytest.mark.parametrize(("rig", "name", "kind", "checks"), [
    ("maxs30_sim", "fll", "squid", 8),
    ("maxs30_sim", "adc1", "adc", 10),
    ("holmes_sim", "roach", "umux", 12),
])
def test_check_driver_passes_on_the_simulated_rigs(rig: str, name: str, kind: str, checks: int
                                                   ) -> None:
    result = check_driver(str(ROOT / "config/rigs" / f"{rig}.yaml"), name)
    assert result.exit_code == 0, result.output
    assert f"as kind '{kind}'" in result.output and "in-process simulator" in result.output
    assert f"{checks} passed, 0 failed, 0 skipped" in result.output


def _rig(tmp_path: Path, driver: str, address: str, backend: str, sim: str = "") -> str:
    path = tmp_path / "rig.yaml"
    path.write_text(f"name: lab\ninstruments:\n  adc1:\n    driver: {driver}\n"
                    f"    address: {address}\n    backend: {backend}\n{sim}")
    return str(path)


def test_check_driver_fails_a_lab_driver_that_breaks_the_contract(tmp_path: Path) -> None:
    rig = _rig(tmp_path, "test_driver_contract:MiscountingAdc",
               "TCPIP0::127.0.0.1::5025::SOCKET", "sim", "    sim: {kind: adc}\n")
    result = check_driver(rig, "adc1")
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output
    assert "9 passed, 1 failed, 0 skipped" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (("holmes_sim", "roch"), "no instrument 'roch' (did you mean 'roach'?); it has roach, tc"),
    (("holmes_sim", "tc"), "is of no kind the conformance kit checks"),
])
def test_check_driver_bad_input_is_one_line(args: tuple[str, str], message: str) -> None:
    result = check_driver(str(ROOT / "config/rigs" / f"{args[0]}.yaml"), args[1])
    assert result.exit_code == 2
    assert message in result.output and result.output.count("error:") == 1


def test_check_driver_unreachable_address_is_one_line(tmp_path: Path) -> None:
    result = check_driver(_rig(tmp_path, "adc", "TCPIP::127.0.0.1::1::SOCKET", "py"), "adc1")
    assert result.exit_code == 2
    assert "adc1:" in result.output and "Connection refused" in result.output


class _LateBinary:
    """A session whose input holds the late reply of a timed-out binary fetch."""

    timeout = 2000.0

    def __init__(self) -> None:
        self.input = [b"#216\xff\xfe\x00\x80" + bytes(11) + b"\n"]

    def read_raw(self) -> bytes:
        if not self.input:
            raise VisaIOError(constants.VI_ERROR_TMO)
        return self.input.pop(0)

    def write(self, message: str) -> None:
        self.input.append(b"cryodaq,ADC16,0,1\n")


def test_a_late_binary_block_is_dropped_not_a_decoding_error() -> None:
    """The lost-instrument fault: a fetch times out, its block arrives late; back in step."""
    result = resynchronise(_LateBinary(), "cryodaq,ADC16,0,1", 0.1)  # type: ignore[arg-type]
    assert result.in_step and len(result.dropped) == 1
