"""A simulated instrument that speaks Lake Shore's command language instead of SCPI.

Messages end in LF or CR LF; their commands are separated by `;` (outside quotes), and the
replies to the queries of one message go back as one line joined by `;` (IEEE 488.2), ended
by CR LF. Common commands: `*IDN?` (the device file's dialogue), `*ESR?` (reading clears it),
`*ESE`, `*ESE?`, `*STB?`, `*SRE`, `*SRE?`, `*CLS`, `*RST`, `*OPC`, `*OPC?`, `*TST?`. Errors set
bits of the standard event status register: 32 command error (unknown or malformed), 16
execution error (out of range, not allowed now), 8 device-dependent error (a model fault).
Every other command goes to the model's `execute(mnemonic, args, query)`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from cryodaq.sim_instruments.device import PhysicsDevice

logger = logging.getLogger(__name__)

COMMAND_ERROR, EXECUTION_ERROR, DEVICE_ERROR, QUERY_ERROR, OPERATION_COMPLETE = 32, 16, 8, 4, 1
#: Longest message kept; a longer one is dropped with a command error.
MAX_MESSAGE_BYTES = 4096
_SPLIT = re.compile(r';(?=(?:[^"]*"[^"]*")*[^"]*$)')
_COMMAND = re.compile(r"\s*(\*?[A-Za-z]+\??)\s*(.*?)\s*$", re.DOTALL)


class LakeShoreError(Exception):
    """A refused command: `bit` of the event status register and the reason (logged)."""

    def __init__(self, bit: int, message: str) -> None:
        super().__init__(message)
        self.bit = bit


class LakeShoreDevice(PhysicsDevice):
    """pyvisa-sim device answering Lake Shore commands through its model's `execute`."""

    def __init__(self, name: str, delimiter: bytes, defaults: dict[str, Any]) -> None:
        super().__init__(name, b";", defaults)
        self.event_status = 0
        self.event_enable = 0
        self.service_enable = 0

    def push_error(self, code: int, message: str) -> None:
        """A SCPI-style error code as the event status bit it belongs to."""
        bit = {1: COMMAND_ERROR, 2: EXECUTION_ERROR, 3: DEVICE_ERROR, 4: QUERY_ERROR}
        self.event_status |= bit.get(abs(code) // 100, DEVICE_ERROR)
        logger.info("%s: %s", self.name, message)

    def write(self, data: bytes) -> None:
        """Collect input; at LF, run the message's commands and queue the joined replies."""
        self._input_buffer.extend(data)
        while b"\n" in self._input_buffer:
            line, _, rest = bytes(self._input_buffer).partition(b"\n")
            self._input_buffer = bytearray(rest)
            self._message(line.rstrip(b"\r"))
        if len(self._input_buffer) > MAX_MESSAGE_BYTES:
            self._input_buffer = bytearray()
            self.event_status |= COMMAND_ERROR

    def _message(self, line: bytes) -> None:
        if len(line) > MAX_MESSAGE_BYTES:
            self.event_status |= COMMAND_ERROR
            return
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            self.event_status |= COMMAND_ERROR
            return
        replies = []
        for command in _SPLIT.split(text):
            reply = self._respond_when_ready(command.strip())
            if reply is not None:
                replies.append(str(reply))
        if replies and not self.silent:
            self._queue(memoryview(";".join(replies).encode() + b"\r\n"))

    def _respond(self, command: str) -> str | None:
        if not command:
            return None
        match = _COMMAND.fullmatch(command)
        if match is None:
            self.event_status |= COMMAND_ERROR
            return None
        mnemonic, args = match.group(1).upper(), match.group(2)
        try:
            if mnemonic.startswith("*"):
                return self._common(mnemonic, args)
            if self.model is None:
                raise LakeShoreError(COMMAND_ERROR, f"no model answers {mnemonic}")
            fields = [f.strip() for f in args.split(",")] if args else []
            return self.model.execute(mnemonic.rstrip("?"), fields, mnemonic.endswith("?"))
        except LakeShoreError as exc:
            self.event_status |= exc.bit
            logger.info("%s: %r refused: %s", self.name, command, exc)
        except (ArithmeticError, LookupError, TypeError, ValueError):
            logger.exception("%s: command %r failed in the physics model", self.name, command)
            self.event_status |= DEVICE_ERROR
        return None

    def _common(self, mnemonic: str, args: str) -> str | None:
        if mnemonic == "*IDN?":
            return self._match_dialog(b"*IDN?").decode()  # type: ignore[union-attr]
        if mnemonic == "*ESR?":
            status, self.event_status = self.event_status, 0
            return str(status)
        if mnemonic == "*CLS":
            self.event_status = 0
            return None
        if mnemonic == "*RST":
            self.event_status = 0
            if self.model is not None:
                self.model.on_reset()
            return None
        if mnemonic == "*OPC":
            self.event_status |= OPERATION_COMPLETE
            return None
        if mnemonic in ("*OPC?", "*TST?"):
            return "1" if mnemonic == "*OPC?" else "0"
        if mnemonic == "*STB?":
            summary = 32 if self.event_status & self.event_enable else 0
            return str(summary)
        registers = {"*ESE": "event_enable", "*SRE": "service_enable"}
        name = registers.get(mnemonic.rstrip("?"))
        if name is None:
            raise LakeShoreError(COMMAND_ERROR, f"unknown common command {mnemonic}")
        if mnemonic.endswith("?"):
            return str(getattr(self, name))
        try:
            value = int(args)
        except ValueError:
            raise LakeShoreError(COMMAND_ERROR, f"{mnemonic} takes 0-255, got {args!r}") from None
        if not 0 <= value <= 255:
            raise LakeShoreError(EXECUTION_ERROR, f"{mnemonic} takes 0-255, got {value}")
        setattr(self, name, value)
        return None
