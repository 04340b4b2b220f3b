"""The conformance kit's machinery: a check, its outcome, the instrument it runs on, the runner."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pyvisa.rname import to_canonical_name

from cryodaq.drivers.base import Instrument
from cryodaq.drivers.errors import InstrumentError
from cryodaq.sim_instruments.device import PhysicsDevice
from cryodaq.sim_instruments.library import CryoSimLibrary

#: The reason of every check that needs the simulator to provoke a fault.
SIM_ONLY = "needs the simulator to {}; skipped on a real instrument"


class Status(Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Outcome:
    """A check's verdict and its one-line reason."""

    status: Status
    reason: str


def passed(reason: str) -> Outcome:
    return Outcome(Status.PASS, reason)


def skipped(reason: str) -> Outcome:
    return Outcome(Status.SKIP, reason)


class CheckFailed(Exception):
    """Raised inside a check: the driver broke the contract, for the reason given."""


def ensure(condition: bool, reason: str) -> None:
    """Fail the running check with `reason` unless `condition` holds."""
    if not condition:
        raise CheckFailed(reason)


def refused(call: Callable[[], Any], error: type[InstrumentError], what: str) -> InstrumentError:
    """The `error` that `call` raises; the check fails if it raises none or another kind."""
    try:
        call()
    except error as exc:
        return exc
    except InstrumentError as exc:
        raise CheckFailed(
            f"{what}: {type(exc).__name__} instead of {error.__name__}: {exc}"
        ) from None
    raise CheckFailed(f"{what}: accepted, expected {error.__name__}")


class SimHandle:
    """The simulated instrument behind a driver, to provoke what a real one does rarely."""

    def __init__(self, device: PhysicsDevice) -> None:
        self.device = device

    @classmethod
    def behind(cls, inst: Instrument) -> SimHandle | None:
        """The simulated device `inst` talks to in process; None for anything else (a real
        instrument, or a simulated one served over TCP)."""
        library = getattr(inst.resource, "visalib", None)
        if not isinstance(library, CryoSimLibrary):
            return None
        device = library.physics.get(to_canonical_name(inst.resource.resource_name))
        return None if device is None else cls(device)

    @contextlib.contextmanager
    def silent(self) -> Iterator[None]:
        """The instrument swallows every reply while inside."""
        self.device.silent = True
        try:
            yield
        finally:
            self.device.silent = False

    def delay_next_reply(self, seconds: float) -> None:
        self.device.delay_next_reply_s = seconds

    def buffer_samples(self) -> int | None:
        """The on-board buffer of a simulated streaming instrument, per channel."""
        stream = getattr(self.device.model, "stream", None)
        return None if stream is None else int(stream.buffer_samples)

    def let_time_pass(self, seconds: float) -> None:
        """Advance the simulated World's clock (samples keep coming, nobody reads them)."""
        assert self.device.model is not None
        world = self.device.model.world
        world.advance_to(world.now() + seconds)


@dataclass
class Target:
    """An opened instrument under test, and its simulator when it is a simulated one."""

    inst: Instrument
    sim: SimHandle | None

    @classmethod
    def of(cls, inst: Instrument) -> Target:
        return cls(inst, SimHandle.behind(inst))


@dataclass(frozen=True)
class Check:
    """One promise of a kind: `run` returns its pass or skip outcome, or raises `CheckFailed`."""

    name: str
    run: Callable[[Target], Outcome]


@dataclass(frozen=True)
class Contract:
    """The checks of one instrument kind, in the order they run."""

    kind: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class Result:
    check: str
    outcome: Outcome
    seconds: float


def run_check(check: Check, target: Target) -> Result:
    """Run one check; a broken promise, or anything a driver under test raises unasked, is a
    FAIL (a lab's driver is reported on, never allowed to end the run)."""
    start = time.monotonic()
    try:
        outcome = check.run(target)
    except CheckFailed as exc:
        outcome = Outcome(Status.FAIL, str(exc))
    except Exception as exc:  # noqa: BLE001 - whatever the driver raised is the finding
        outcome = Outcome(Status.FAIL, f"unexpected {type(exc).__name__}: {exc}")
    return Result(check.name, outcome, time.monotonic() - start)


def run_contract(contract: Contract, target: Target) -> list[Result]:
    """Every check of `contract` on `target`, in order; each leaves the instrument usable."""
    return [run_check(check, target) for check in contract.checks]
