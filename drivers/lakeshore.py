"""Lake Shore's command language: comma-argument commands, `*ESR?` errors, read-back checks.

Lake Shore controllers (372, 336, 350, ...) are not SCPI trees: a command is a mnemonic with
comma-separated arguments, the first usually the input or output it addresses (`SETP 0,0.05`,
`OUTMODE 0,5,1,0,0,0,1`); its query takes the address only (`SETP? 0`) and returns the other
fields. Errors are bits of the standard event status register (`*ESR?`), not an error queue.
A `Field` is one argument of such a command; setting it reads the whole command, replaces
that field and writes it back, then reads it again to check the instrument holds the value.
"""

from __future__ import annotations

import math
from typing import Any

from cryodaq.drivers.base import (
    Channel,
    Instrument,
    OneOf,
    Range,
    SCPINode,
    Setting,
    format_value,
    parse_value,
)
from cryodaq.drivers.errors import InstrumentError

#: `*ESR?` bits and what they mean (IEEE 488.2, as Lake Shore uses them).
ESR_BITS = {
    32: "command error (invalid command or query)",
    16: "execution error (not able to execute: a value out of range or not allowed now)",
    4: "query error",
}


class Field(Setting[Any]):
    """Field `position` of the `count` fields a Lake Shore command carries after its address.

    `names`: the field is an index into these names (`OUTMODE`'s mode 5 is "CLOSED_LOOP");
    `quoted`: a text field sent in double quotes (`INNAME 1,"mixing"`).
    """

    def __init__(
        self,
        mnemonic: str,
        position: int = 0,
        count: int = 1,
        kind: type = float,
        *,
        names: tuple[str, ...] | None = None,
        quoted: bool = False,
        unit: str = "",
        allowed: Range | OneOf | None = None,
        readonly: bool = False,
        doc: str = "",
    ) -> None:
        if names is not None:
            kind, allowed = str, OneOf(names)
        super().__init__(mnemonic, kind, unit=unit, allowed=allowed, readonly=readonly, doc=doc)
        self.mnemonic, self.position, self.count, self.names = mnemonic, position, count, names
        self.quoted = quoted

    @staticmethod
    def address(node: SCPINode) -> str:
        """The input or output a command addresses: the channel's `command_address` if it has
        one (a zone: "0,3"), else its id; none on the instrument."""
        if not isinstance(node, Channel):
            return ""
        return str(getattr(node, "command_address", node.ch))

    def query_text(self, node: SCPINode) -> str:
        return f"{self.mnemonic}? {self.address(node)}".rstrip()

    def parse_reply(self, node: SCPINode, reply: str) -> Any:
        fields = reply.split(",")
        if len(fields) != self.count:
            raise ValueError(f"{len(fields)} fields, expected {self.count}")
        return self.decode(node, fields[self.position].strip())

    def decode(self, node: SCPINode, text: str) -> Any:
        """This field's value from its text."""
        if self.names is not None:
            return self.names[int(text)]
        if self.kind is str:
            return text.strip().strip('"').strip()
        return parse_value(text, self.kind)

    def encode(self, node: SCPINode, value: Any) -> str:
        """This field's text for `value`."""
        if self.names is not None:
            return str(self.names.index(value))
        if self.quoted:
            return f'"{value}"'
        return format_value(value, self.kind, ".6g")

    def write_text(self, node: SCPINode, value: Any) -> str:
        fields = [self.encode(node, value)]
        if self.count > 1:  # the other fields as the instrument holds them
            command = self.query_text(node)
            fields = node._root().query(command).split(",")
            if len(fields) != self.count:
                raise InstrumentError(node._root().name, command, f"{len(fields)} fields in "
                                      f"{','.join(fields)!r}, expected {self.count}")
            fields = [f.strip() for f in fields]
            fields[self.position] = self.encode(node, value)
        args = ",".join([self.address(node), *fields] if self.address(node) else fields)
        return f"{self.mnemonic} {args}"


def same_value(expected: Any, held: Any) -> bool:
    """Whether the instrument holds what was set (floats to its 5-6 significant digits)."""
    if isinstance(expected, float | int) and not isinstance(expected, bool):
        return math.isclose(float(expected), float(held), rel_tol=2e-5, abs_tol=1e-12)
    return str(expected).upper() == str(held).upper()


class ReadBack(SCPINode):
    """A node whose settings are read back after each write: a Lake Shore controller clamps
    or ignores some values without an error, so a value it does not hold is an error here."""

    def set(self, setting: Setting[Any], value: Any) -> None:
        super().set(setting, value)
        if setting.allowed is not None:
            value = setting.allowed.check(value, setting.unit)
        held = self.get(setting)
        if not same_value(value, held):
            root = self._root()
            raise InstrumentError(root.name, self._command(setting),
                                  f"{self._label(setting)}: set {value!r}, the instrument "
                                  f"holds {held!r}")


class LakeShoreInstrument(Instrument):
    """A Lake Shore controller: CR LF line ends, errors from `*ESR?` after every command."""

    read_termination = "\r\n"
    write_termination = "\r\n"
    error_query = "*ESR?"

    def _read_error_queue(self) -> list[str]:
        """The errors `*ESR?` reports (reading it clears it)."""
        reply = self.resource.query("*ESR?").strip()
        try:
            status = int(reply)
        except ValueError:
            raise InstrumentError(self.name, "*ESR?", f"unparsable reply {reply!r}") from None
        return [f"*ESR? {status}: {text}" for bit, text in ESR_BITS.items() if status & bit]
