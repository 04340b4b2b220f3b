"""Common machinery of cryodaq drivers: declared settings, channels, error-queue checks.

A driver is a plain pyvisa client. Each parameter is one `Setting` declaration with its SCPI
command, type, unit and allowed values (as in QCoDeS); channels are objects. Every setting is
validated before it is sent and the instrument's error queue is read after it, so a refused
value surfaces as an `InstrumentError` naming the instrument, the command and the reason.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np
import pyvisa
from pyvisa import constants
from pyvisa.errors import VisaIOError
from pyvisa.resources import MessageBasedResource
from pyvisa.rname import parse_resource_name

from cryodaq.drivers.errors import InstrumentError, InstrumentTimeout, SettingRangeError
from cryodaq.drivers.session_sync import resynchronise

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Largest read request handed to the VISA layer; bulk blocks are read in few calls.
BULK_CHUNK_BYTES = 1 << 24
#: How many entries of the error queue are drained after a command at most (instruments
#: hold 10-100); any left are reported as unread, never left for the next command.
MAX_ERROR_READS = 128
#: Reply timeout of the error-queue check that follows a timed-out command.
ERROR_QUERY_TIMEOUT_S = 0.2

def format_value(value: Any, kind: type, float_format: str = ".9e") -> str:
    """Render a value as instruments parse it: booleans 1/0, integers plain, floats in
    `float_format` (cryodaq's SCPI instruments take `%.9e`)."""
    if kind is bool:
        return "1" if value else "0"
    if kind is int:
        return f"{int(value):d}"
    if kind is float:
        return format(float(value), float_format)
    return str(value)


def parse_value(text: str, kind: type) -> Any:
    """Parse an instrument reply into the setting's Python type."""
    text = text.strip()
    if kind is bool:
        return text not in ("0", "OFF", "off", "")
    if kind is int:
        return int(float(text))
    if kind is float:
        return float(text)
    return text


def _with_unit(value: float, unit: str) -> str:
    return f"{value:g} {unit}".rstrip()


@dataclass(frozen=True)
class Range:
    """Closed interval of allowed numeric values."""

    low: float
    high: float

    def check(self, value: Any, unit: str) -> Any:
        v = float(value)
        if not np.isfinite(v) or not self.low <= v <= self.high:
            raise ValueError(
                f"{_with_unit(v, unit)} is outside the allowed range "
                f"{_with_unit(self.low, unit)} .. {_with_unit(self.high, unit)}"
            )
        return value


@dataclass(frozen=True)
class OneOf:
    """Discrete set of allowed values."""

    values: tuple[Any, ...]

    def check(self, value: Any, unit: str) -> Any:
        for allowed in self.values:
            if isinstance(allowed, str):
                if str(value).upper() == allowed.upper():
                    return allowed
            elif isinstance(value, int | float) and np.isclose(
                float(value), float(allowed), rtol=1e-9, atol=0.0
            ):
                return allowed
        shown = ", ".join(str(v) for v in self.values)
        raise ValueError(f"{value!r} is not one of the allowed values: {shown} {unit}".rstrip())


class Setting(Generic[T]):
    """One instrument parameter: `COMMAND value` sets it, `COMMAND?` reads it back.

    `{ch}` in the command is replaced by the channel id when the setting lives on a channel.
    """

    def __init__(
        self,
        command: str,
        kind: type = float,
        *,
        unit: str = "",
        allowed: Range | OneOf | None = None,
        readonly: bool = False,
        doc: str = "",
    ) -> None:
        self.command = command
        self.kind = kind
        self.unit = unit
        self.allowed = allowed
        self.readonly = readonly
        self.name = command
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: SCPINode | None, owner: type) -> Any:
        if obj is None:
            return self
        return obj.get(self)

    def __set__(self, obj: SCPINode, value: Any) -> None:
        obj.set(self, value)

    def query_text(self, node: SCPINode) -> str:
        """The query that reads this setting of `node` (SCPI: `COMMAND?`)."""
        return node._command(self) + "?"

    def parse_reply(self, node: SCPINode, reply: str) -> Any:
        """The setting's value in `reply` to `query_text`."""
        return parse_value(reply, self.kind)

    def write_text(self, node: SCPINode, value: Any) -> str:
        """The command that sets this setting of `node` to `value` (SCPI: `COMMAND value`)."""
        return f"{node._command(self)} {format_value(value, self.kind)}"

    def describe(self) -> str:
        """Human-readable allowed values, for tables and error messages."""
        if isinstance(self.allowed, Range):
            lo, hi = self.allowed.low, self.allowed.high
            return f"{_with_unit(lo, self.unit)} .. {_with_unit(hi, self.unit)}"
        if isinstance(self.allowed, OneOf):
            return ", ".join(str(v) for v in self.allowed.values) + (
                f" {self.unit}" if self.unit else ""
            )
        return self.unit


class SCPINode:
    """Something that owns settings: an instrument or one of its channels."""

    def _root(self) -> Instrument:
        raise NotImplementedError

    def _command(self, setting: Setting[Any]) -> str:
        return setting.command

    def _label(self, setting: Setting[Any]) -> str:
        return setting.name

    def get(self, setting: Setting[Any]) -> Any:
        """Query a setting's current value from the instrument."""
        command = setting.query_text(self)
        reply = self._root().query(command)
        try:
            return setting.parse_reply(self, reply)
        except (ValueError, IndexError, KeyError) as exc:
            raise InstrumentError(
                self._root().name, command, f"unparsable reply {reply!r}"
            ) from exc

    def set(self, setting: Setting[Any], value: Any) -> None:
        """Validate a value client-side, send it, then check the instrument's errors."""
        root = self._root()
        command = self._command(setting)
        if setting.readonly:
            raise InstrumentError(root.name, command, f"{self._label(setting)} is read-only")
        if setting.allowed is not None:
            try:
                value = setting.allowed.check(value, setting.unit)
            except (TypeError, ValueError) as exc:
                raise SettingRangeError(
                    root.name, command, f"{self._label(setting)}: {exc}"
                ) from None
        root.write(setting.write_text(self, value))

    @classmethod
    def declared_settings(cls) -> dict[str, Setting[Any]]:
        """Every `Setting` this node class declares (its bases' first), by name."""
        return {
            name: attr
            for klass in reversed(cls.__mro__)
            for name, attr in vars(klass).items()
            if isinstance(attr, Setting)
        }

    def settings(self) -> dict[str, Any]:
        """Read every setting this node declares, by name."""
        return {name: self.get(s) for name, s in self.declared_settings().items()}


class Channel(SCPINode):
    """A channel of an instrument; its settings' commands carry `{ch}`."""

    def __init__(self, parent: Instrument, ch: int | str) -> None:
        self.parent = parent
        self.ch = ch

    def _root(self) -> Instrument:
        return self.parent

    def _command(self, setting: Setting[Any]) -> str:
        return setting.command.format(ch=self.ch)

    def _label(self, setting: Setting[Any]) -> str:
        return f"channel {self.ch} {setting.name}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.parent.name} ch{self.ch}>"


class Instrument(SCPINode):
    """A SCPI instrument reached through pyvisa.

    Subclasses declare `Setting`s and may set `channel_ids` and `channel_class`.
    """

    #: Default reply timeout of control commands.
    default_timeout_s: float = 0.5
    #: Line ends of replies and of commands.
    read_termination: str = "\n"
    write_termination: str = "\n"
    #: The query that reports errors after a command (`_read_error_queue` reads it).
    error_query: str = "SYST:ERR?"
    channel_ids: Sequence[int | str] = ()
    channel_class: type[Channel] = Channel
    #: Further channel groups (e.g. heater outputs): name -> (ids, channel class).
    extra_channel_groups: ClassVar[dict[str, tuple[Sequence[int | str], type[Channel]]]] = {}

    def __init__(self, resource: MessageBasedResource, name: str | None = None) -> None:
        self.resource = resource
        self.name = name or resource.resource_name
        self._identity: str | None = None  # the `*IDN?` answer, once seen
        self._out_of_step = False  # a timed-out reply may still be on its way
        self._groups = {
            group: {ch: cls(self, ch) for ch in ids}
            for group, (ids, cls) in self.channel_groups().items()
        }
        self._channels = self._groups.get("channels", {})

    @classmethod
    def channel_groups(cls) -> dict[str, tuple[Sequence[int | str], type[Channel]]]:
        """Every channel group by the name rig files use for it (`channels`, `outputs`, ...)."""
        groups = {"channels": (cls.channel_ids, cls.channel_class)} if cls.channel_ids else {}
        return {**groups, **cls.extra_channel_groups}

    def group_channel(self, group: str, ch: int | str) -> Channel:
        """Channel `ch` of a group; refuses ids the instrument does not have."""
        members = self._groups.get(group, {})
        try:
            return members[ch]
        except KeyError:
            ids = ", ".join(str(c) for c in members) or "none"
            noun = "channel" if group == "channels" else group.rstrip("s")
            raise InstrumentError(
                self.name, f"{noun} {ch}", f"no such {noun} (has {ids})"
            ) from None

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        resource_manager: pyvisa.ResourceManager,
        address: str,
        *,
        name: str | None = None,
        timeout_s: float | None = None,
    ) -> Self:
        """Open `address` through `resource_manager` with cryodaq's line terminations."""
        label = name or address
        timeout_ms = 1000.0 * (cls.default_timeout_s if timeout_s is None else timeout_s)
        try:
            parse_resource_name(address)  # a typo in the address, not a backend's attribute error
            resource = resource_manager.open_resource(
                address,
                read_termination=cls.read_termination,
                write_termination=cls.write_termination,
                timeout=timeout_ms,
                open_timeout=int(max(timeout_ms, 1000)),
            )
        except VisaIOError as exc:
            raise InstrumentError(label, f"open {address}", exc.description) from None
        except (ValueError, OSError) as exc:
            raise InstrumentError(label, f"open {address}", str(exc)) from None
        if not isinstance(resource, MessageBasedResource):
            resource.close()
            raise InstrumentError(label, f"open {address}", "not a message-based resource")
        resource.chunk_size = BULK_CHUNK_BYTES
        return cls(resource, name=label)

    def close(self) -> None:
        """Release the VISA session."""
        self.resource.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _root(self) -> Instrument:
        return self

    def channel(self, ch: int | str) -> Channel:
        """The channel object `ch`; refuses ids the instrument does not have."""
        return self.group_channel("channels", ch)

    @property
    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    # -- message exchange ----------------------------------------------------------------

    @property
    def timeout_s(self) -> float:
        return float(self.resource.timeout) / 1000.0

    def _io_error(self, command: str, exc: VisaIOError) -> InstrumentError:
        if exc.error_code == constants.StatusCode.error_timeout:
            if self._resync(min(self.timeout_s, ERROR_QUERY_TIMEOUT_S)):
                reported = self._drain_errors_quietly()
                if reported:
                    return InstrumentError(self.name, command, "; ".join(reported))
            return InstrumentTimeout(
                self.name, command, f"no reply within {self.timeout_s:g} s (timeout)"
            )
        return InstrumentError(self.name, command, exc.description)

    def _resync(self, probe_timeout_s: float) -> bool:
        """After a timeout: drop late replies until `*IDN?` answers (`session_sync`);
        False leaves the session out of step, and the next exchange tries again first."""
        result = resynchronise(self.resource, self._identity, probe_timeout_s)
        if result.dropped:
            log.warning("%s: dropped %d late repl%s: %s", self.name, len(result.dropped),
                        "y" if len(result.dropped) == 1 else "ies", result.dropped[:4])
        self._out_of_step = not result.in_step
        return result.in_step

    def _in_step(self, command: str) -> None:
        """Before an exchange: a session left out of step by a timeout is resynchronised."""
        if self._out_of_step and not self._resync(self.timeout_s):
            raise InstrumentTimeout(
                self.name, command,
                f"out of step since an earlier timeout: no answer to *IDN? within "
                f"{self.timeout_s:g} s",
            )

    def _connection_error(self, command: str, exc: OSError) -> InstrumentError:
        return InstrumentError(
            self.name,
            command,
            f"connection to {self.resource.resource_name} failed: {exc.strerror or exc}",
        )

    def _drain_errors_quietly(self) -> list[str]:
        """Error-queue entries after a timeout; empty if the instrument is silent."""
        timeout = self.resource.timeout
        self.resource.timeout = min(timeout, 1000.0 * ERROR_QUERY_TIMEOUT_S)
        try:
            return self._read_error_queue()
        except (VisaIOError, InstrumentError, OSError):
            return []
        finally:
            self.resource.timeout = timeout

    def _read_error_queue(self) -> list[str]:
        """Every entry of the SCPI error queue (`SYST:ERR?` until it says 0)."""
        errors: list[str] = []
        for _ in range(MAX_ERROR_READS):
            reply = self.resource.query("SYST:ERR?").strip()
            code = reply.split(",", 1)[0].strip()
            try:
                if int(code) == 0:
                    return errors
            except ValueError:
                raise InstrumentError(
                    self.name, "SYST:ERR?", f"unparsable reply {reply!r}"
                ) from None
            errors.append(reply)
        errors.append(f"(the error queue still holds entries after {MAX_ERROR_READS} reads)")
        return errors

    def check_errors(self, command: str) -> None:
        """Read the error queue; raise if the instrument reported anything for `command`."""
        try:
            errors = self._read_error_queue()
        except VisaIOError as exc:
            raise self._io_error(self.error_query, exc) from None
        except OSError as exc:
            raise self._connection_error(self.error_query, exc) from None
        if errors:
            raise InstrumentError(self.name, command, "; ".join(errors))

    def write(self, command: str) -> None:
        """Send a command, then check the error queue."""
        self._in_step(command)
        try:
            self.resource.write(command)
        except VisaIOError as exc:
            raise self._io_error(command, exc) from None
        except OSError as exc:
            raise self._connection_error(command, exc) from None
        self.check_errors(command)

    def query(self, command: str) -> str:
        """Send a query and return its reply (stripped)."""
        self._in_step(command)
        try:
            return self.resource.query(command).strip()
        except VisaIOError as exc:
            raise self._io_error(command, exc) from None
        except OSError as exc:
            raise self._connection_error(command, exc) from None

    def query_block(self, command: str, datatype: str = "B") -> np.ndarray:
        """Send a query answered by one IEEE 488.2 definite-length block; return its values."""
        self._in_step(command)
        try:
            self.resource.write(command)
            return self.resource.read_binary_values(
                datatype=datatype,  # type: ignore[arg-type]
                is_big_endian=False,
                container=np.ndarray,
                header_fmt="ieee",
                expect_termination=True,
            )
        except VisaIOError as exc:
            raise self._io_error(command, exc) from None
        except OSError as exc:
            raise self._connection_error(command, exc) from None
        except (ValueError, struct.error) as exc:
            raise InstrumentError(self.name, command, f"malformed binary block: {exc}") from None

    # -- common SCPI -------------------------------------------------------------------------

    @property
    def idn(self) -> str:
        """The `*IDN?` identification string (kept: it marks the way back in step)."""
        self._identity = self.query("*IDN?")
        return self._identity

    def reset(self) -> None:
        """`*RST`: back to power-on settings."""
        self.write("*RST")

    def make_idle(self) -> None:
        """Bring the instrument to a known idle state before anything else is asked of it
        (what a crashed session left running is stopped): clear its status (`*CLS`)."""
        self.write("*CLS")

    def summary(self) -> dict[str, Any]:
        """Key settings for an overview table."""
        return self.settings()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
