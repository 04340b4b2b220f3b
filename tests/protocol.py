"""Exact command/response exchanges of a driver, without an instrument (as PyMeasure's
`expected_protocol`): a fake VISA resource asserts each message the driver writes and answers
with the listed reply, so a table pins the dialect independently of the simulator; and a
simulated instrument served over TCP for the same driver through pyvisa-py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
from pyvisa import util
from pyvisa.rname import to_canonical_name

from cryodaq.sim_instruments.library import CryoSimLibrary, SimInstrument
from cryodaq.sim_instruments.tcp_server import InstrumentServer

#: One exchange: the message written, and the reply (None: a command with no reply; bytes: a
#: binary block as the instrument sends it, header included).
Exchange = tuple[str, str | bytes | None]
NO_ERROR = '+0,"No error"'
T = TypeVar("T")


def writes(command: str, error_query: str = "SYST:ERR?") -> list[Exchange]:
    """A setting command followed by the error-queue check every cryodaq write makes."""
    return [(command, None), (error_query, NO_ERROR)]


def block(values: Sequence[float], dtype: str) -> bytes:
    """`values` as an IEEE 488.2 definite-length block of `dtype` (e.g. '<f8')."""
    payload = np.asarray(values, dtype=dtype).tobytes()
    length = str(len(payload))
    return f"#{len(length)}{length}".encode() + payload


class ProtocolResource:
    """A fake message-based VISA resource that plays an exchange table."""

    resource_name = "PROTOCOL::TABLE"

    def __init__(self, exchanges: Sequence[Exchange]) -> None:
        self.exchanges = list(exchanges)
        self.timeout = 2000.0
        self.chunk_size = 1 << 20
        self._reply: str | bytes | None = None

    def _next(self, message: str) -> None:
        assert self.exchanges, f"unexpected message {message!r}: the table is done"
        expected, reply = self.exchanges.pop(0)
        assert message == expected, f"sent {message!r}, table expects {expected!r}"
        assert self._reply is None, f"{message!r} sent before the last reply was read"
        self._reply = reply

    def write(self, message: str) -> int:
        self._next(message)
        return len(message)

    def read(self) -> str:
        reply, self._reply = self._reply, None
        assert isinstance(reply, str), f"no text reply waiting (got {reply!r})"
        return reply

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def read_binary_values(self, datatype: str = "B", is_big_endian: bool = False,
                           container: Any = np.ndarray, **_: Any) -> Any:  # fmt: skip
        reply, self._reply = self._reply, None
        assert isinstance(reply, bytes), f"no binary block waiting (got {reply!r})"
        return util.from_ieee_block(reply, datatype, is_big_endian, container)  # type: ignore[arg-type]

    def close(self) -> None:
        """Nothing to release."""


@contextmanager
def expected_protocol(driver_cls: type[T], exchanges: Sequence[Exchange]) -> Iterator[T]:
    """A driver on a `ProtocolResource`; every listed exchange must have happened at exit."""
    resource = ProtocolResource(exchanges)
    yield driver_cls(resource, name="proto")  # type: ignore[call-arg]
    assert not resource.exchanges, f"exchanges never sent: {resource.exchanges}"


def serve(instrument: SimInstrument) -> InstrumentServer:
    """A simulated instrument on a TCP socket of any free port (as `serve-sim` does it)."""
    library = CryoSimLibrary.serving([instrument])
    server = InstrumentServer(library.physics[to_canonical_name(instrument.address)], 0)
    server.start()
    return server
