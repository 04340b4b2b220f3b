"""A pyvisa-sim device whose data commands are answered by a physics model.

The control plane stays pyvisa-sim's: dialogues, properties with specs and channels, all
declared in the instrument's YAML. On top of it this device
- parses each message as SCPI instruments do (`scpi_headers`): long and short forms, any
  case, optional nodes, `;` chains, units and MIN/MAX, then hands the canonical text on,
- answers data commands (regular expressions on that text) with handlers of a `SimModel`,
- keeps the IEEE 488.2 status (`scpi_status`): error queue (`SYST:ERR?`) fed with the real
  reason of every refusal, *ESR/*ESE, *STB/*SRE, *OPC,
- tells the model when a setting changed, and restores YAML defaults on `*RST`,
- hands out replies in large chunks instead of pyvisa-sim's one byte per call.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pyvisa_sim.channels import Channels
from pyvisa_sim.component import Component, NoResponse
from pyvisa_sim.devices import Device

from cryodaq.sim_instruments.scpi import MAX_MESSAGE_BYTES, SCPIError, decode
from cryodaq.sim_instruments.scpi_headers import Command, HeaderTable
from cryodaq.sim_instruments.scpi_status import Status
from cryodaq.sim_instruments.world import NotYet

if TYPE_CHECKING:
    from cryodaq.sim_instruments.model import SimModel

__all__ = ["Handler", "PhysicsDevice", "SCPIError"]

logger = logging.getLogger(__name__)

#: A handler answers a data command: text, bytes, or None for no reply.
Handler = Callable[[re.Match[str]], "str | bytes | bytearray | None"]


class PhysicsDevice(Device):
    """pyvisa-sim `Device` bound to a physics model."""

    def __init__(self, name: str, delimiter: bytes, defaults: dict[str, Any]) -> None:
        super().__init__(name, delimiter)
        self.model: SimModel | None = None
        self.silent = False
        #: Seconds the next reply takes (one-shot: a busy instrument answering late).
        self.delay_next_reply_s = 0.0
        #: The instrument's headers (`build_device` fills it from the device file).
        self.scpi = HeaderTable()
        self.status = Status()
        self._defaults = defaults
        self._overrun = False
        self._handlers: list[tuple[re.Pattern[str], Handler]] = []
        self._out: deque[memoryview] = deque()
        self._ready_at: deque[float] = deque()  # monotonic time each reply is out (in order)

    # -- binding --------------------------------------------------------------------------

    def bind(self, model: SimModel) -> None:
        """Attach the physics model and its data commands."""
        self.model = model
        self._handlers = [(re.compile(p, re.IGNORECASE), h) for p, h in model.commands().items()]
        model.attach(self)

    # -- settings as the model sees them ------------------------------------------------------

    def value(self, name: str, ch: str | int | None = None) -> Any:
        """Current value of a property, per channel for channel properties."""
        if ch is None:
            return self._properties[name].get_value()
        for channels in self._channels.values():
            if name in channels._properties:
                return channels._properties[name]._value[str(ch)]
        raise KeyError(f"{self.name} has no channel property {name!r}")

    def channel_ids(self, group: str) -> list[str]:
        return list(self._channels[group]._ids)

    def push_error(self, code: int, message: str) -> None:
        """Queue an error and set its *ESR bit (a full queue ends in -350, `scpi_status`)."""
        self.status.push(code, message)

    # -- message processing ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Collect input; on end-of-message, process each command of it. A message longer
        than `MAX_MESSAGE_BYTES` is dropped whole, with -363 at its end."""
        if self._overrun or len(self._input_buffer) + len(data) > MAX_MESSAGE_BYTES:
            self._input_buffer = bytearray()
            self._overrun = not data.endswith(self._query_eom)
            if not self._overrun:
                self.push_error(-363, f"Input buffer overrun; message over {MAX_MESSAGE_BYTES} "
                                      "bytes dropped")
            return
        self._input_buffer.extend(data)
        if not self._input_buffer.endswith(self._query_eom):
            return
        message = bytes(self._input_buffer[: -len(self._query_eom)])
        self._input_buffer = bytearray()
        replies: list[str | bytes | bytearray] = []
        for command in self.scpi.commands(decode(message)):
            if isinstance(command, SCPIError):
                self.push_error(command.code, command.message)
                continue
            reply = self._respond_when_ready(command)
            if reply is not None and not self.silent:
                replies.append(reply)
        if len(replies) == 1 and isinstance(replies[0], bytearray):
            block = replies[0]  # a data block: terminated in place, no copy
            block += self._response_eom
            self._queue(memoryview(block))
        elif replies:  # the replies of one message go out as one, `;`-joined (IEEE 488.2)
            parts = [r.encode() if isinstance(r, str) else bytes(r) for r in replies]
            self._queue(memoryview(b";".join(parts) + self._response_eom))

    def _queue(self, reply: memoryview) -> None:
        """Queue a reply; an instrument answers in order, so none is out before the last."""
        ready = time.monotonic() + self.delay_next_reply_s
        self.delay_next_reply_s = 0.0
        self._out.append(reply)
        self._ready_at.append(max(ready, self._ready_at[-1]) if self._ready_at else ready)

    def _respond_when_ready(self, command: Any) -> str | bytes | bytearray | None:
        """Answer under the World's lock; wait outside it for data not yet acquired."""
        if self.model is None:
            return self._respond(command)
        world = self.model.world
        while True:
            try:
                with world.lock:
                    return self._respond(command)
            except NotYet as wait:
                world.clock.advance_to(wait.t)

    def _respond(self, command: Command) -> str | bytes | bytearray | None:
        if command.common:
            return self._common_command(command)
        if command.header == self.scpi.error_query:
            return self.status.next_error()
        text = command.text
        try:
            for pattern, handler in self._handlers:
                match = pattern.fullmatch(text)
                if match:
                    return handler(match)
            # the device file's commands are all declared: an undeclared one is a model's or none
            reply = self._control(text) if command.known else None
        except SCPIError as exc:
            self.push_error(exc.code, exc.message)
            return None
        except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
            # A model fault must reach the client as an instrument error, not kill the session.
            logger.exception("%s: command %r failed in the physics model", self.name, text)
            self.push_error(-300, f"Device-specific error; {type(exc).__name__}: {exc}")
            return None
        if reply is None:
            kind = "query" if command.query else "command"
            self.push_error(-113, f"Undefined header; unknown {kind} {text[:80]}")
            return None
        return None if reply is NoResponse else reply

    def _common_command(self, command: Command) -> str | bytes | None:
        """IEEE 488.2 common commands: the status ones, *RST, then the device file's."""
        name = command.header
        try:
            for pattern, handler in self._handlers:  # a model may answer one (*OPC? of a sweep)
                match = pattern.fullmatch(command.text)
                if match:
                    return handler(match)
            if name in Status.COMMANDS:
                return self.status.common(name, command.params, bool(self._out))
            if command.params:
                raise SCPIError.standard(-108, f"{name} takes no parameter")
            if name == "*RST":
                self._reset()
                return None
            if name == "*TST?":
                return "0"
            reply = self._match_dialog(name.encode())
        except SCPIError as exc:
            self.push_error(exc.code, exc.message)
            return None
        if reply is None:
            self.push_error(-113, f"Undefined header; unknown common command {name}")
            return None
        return None if reply is NoResponse else reply

    def _control(self, command: str) -> Any:
        """pyvisa-sim's dialogues and getters, then setters with real error reporting."""
        query = command.encode()
        for match in (self._match_dialog, self._match_getters):
            reply = match(query)
            if reply is not None:
                return reply
        for channels in self._channels.values():
            reply = channels._match_dialog(query, channels._dialogues["__default__"])
            if reply is None:
                for ch_id in channels._ids:
                    channels._selected = ch_id
                    reply = channels._match_getters(query, channels._getters[ch_id])
                    if reply is not None:
                        break
            if reply is not None:
                return reply
        return self._apply_setter(command)

    def _all_setters(self) -> Iterator[tuple[Component, tuple[Any, ...]]]:
        for setter in self._setters:
            yield self, setter
        for channels in self._channels.values():
            for setter in channels._setters:
                yield channels, setter

    def _apply_setter(self, command: str) -> Any:
        for component, (name, parser, response, _error) in self._all_setters():
            try:
                parsed = parser(command)
            except ValueError:
                continue
            ch: str | None = None
            if isinstance(parsed, dict):
                ch = str(parsed["ch_id"])
                if not isinstance(component, Channels) or ch not in component._ids:
                    raise SCPIError(-114, f"Header suffix out of range; no channel {ch}")
                component._selected = ch
                parsed = parsed["0"]
            prop = component._properties[name]
            try:
                value = prop.validate_value(str(parsed))
            except ValueError as exc:
                raise SCPIError(-222, f"Data out of range; {name}: {exc}") from None
            if self.model is not None:
                self.model.check_setting(name, ch, value)
            prop.set_value(str(parsed))
            if self.model is not None:
                self.model.on_setting(name, ch, component._properties[name].get_value())
            return response
        return None

    def _reset(self) -> None:
        for name, default in self._defaults.items():
            prop = self._properties.get(name)
            if prop is not None:
                prop.init_value(default)
        for channels in self._channels.values():
            for name, prop in channels._properties.items():
                prop.init_value(self._defaults[name])
        if self.model is not None:
            self.model.on_reset()

    # -- reading ----------------------------------------------------------------------------

    def has_output(self) -> bool:
        return bool(self._out) and self._ready_at[0] <= time.monotonic()

    def seconds_to_output(self) -> float | None:
        """How long until the next reply is out (None: no reply is coming)."""
        return max(0.0, self._ready_at[0] - time.monotonic()) if self._out else None

    def read_chunk(self, count: int) -> tuple[bytes, bool]:
        """Up to `count` bytes of the pending reply, and whether they end the message."""
        if not self.has_output():
            return b"", False
        head = self._out[0]
        chunk = bytes(head[:count])
        if len(head) <= count:
            self._out.popleft()
            self._ready_at.popleft()
            return chunk, True
        self._out[0] = head[count:]
        return chunk, False

    def read(self) -> tuple[bytes, bool]:
        """pyvisa-sim's byte-wise read, kept for callers that use it."""
        return self.read_chunk(1)
