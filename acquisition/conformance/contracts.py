"""Every kind's contract by name, and the contracts a driver class falls under."""

from __future__ import annotations

from cryodaq.acquisition.conformance import adc, squid, umux
from cryodaq.acquisition.conformance.core import Contract
from cryodaq.drivers.kinds import KINDS, kind_problems, kinds_of

#: A new kind: its protocol in `drivers/kinds.py`, its contract module here, one line below.
CONTRACTS: dict[str, Contract] = {c.kind: c for c in (squid.CONTRACT, adc.CONTRACT, umux.CONTRACT)}


def contracts_for(driver: type) -> list[Contract]:
    """The contracts of the kinds whose protocol `driver` satisfies."""
    return [CONTRACTS[kind] for kind in kinds_of(driver)]


def why_no_kind(driver: type) -> str:
    """Why `driver` is of no kind the kit checks: what it lacks of the nearest one."""
    lacks = {kind: kind_problems(driver, protocol) for kind, protocol in KINDS.items()}
    nearest = min(lacks, key=lambda k: len(lacks[k]))
    shown = "; ".join(lacks[nearest][:2]) + ("; ..." if len(lacks[nearest]) > 2 else "")
    return (f"{driver.__module__}:{driver.__name__} is of no kind the conformance kit checks "
            f"({', '.join(KINDS)}; nearest {nearest}: {shown}); drivers of an industry dialect "
            "(Lake Shore 372, signal analyser, VNA, VST) have their own tests")
