"""Shared fixtures: simulated instruments opened through the real drivers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pyvisa

from cryodaq.sim_instruments.library import CryoSimLibrary, SimInstrument
from cryodaq.sim_instruments.model import SimModel

ADDRESS = "TCPIP0::127.0.0.1::5025::SOCKET"


def open_simulated(driver_cls: type, kind: str, model: SimModel, silent: bool = False) -> Any:
    """Serve `model` as a simulated `kind` instrument and open it with `driver_cls`."""
    library = CryoSimLibrary.serving([SimInstrument(ADDRESS, kind, model, silent=silent)])
    return driver_cls.open(pyvisa.ResourceManager(library), ADDRESS, name=model.name)


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Instruments appended here are closed after the test."""
    opened: list[Any] = []
    yield opened
    for inst in opened:
        inst.close()
