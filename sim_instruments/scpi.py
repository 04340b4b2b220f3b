"""SCPI program messages as instruments read them: units, headers, parameters, error codes."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Longest program message taken in; a longer one is dropped whole with -363.
MAX_MESSAGE_BYTES = 64 * 1024

#: Standard SCPI-99 / IEEE 488.2 error texts by code.
STANDARD_ERRORS = {
    -100: "Command error",
    -101: "Invalid character",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -120: "Numeric data error",
    -131: "Invalid suffix",
    -138: "Suffix not allowed",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -300: "Device-specific error",
    -350: "Queue overflow",
    -363: "Input buffer overrun",
    -410: "Query INTERRUPTED",
}

_HEADER = re.compile(
    r"(?P<common>\*[A-Za-z]+)(?P<cq>\?)?"
    r"|(?P<colon>:)?(?P<path>[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z_][A-Za-z0-9_]*)*)(?P<q>\?)?"
)
_MNEMONIC = re.compile(r"([A-Za-z_](?:[A-Za-z0-9_]*[A-Za-z_])?)(\d*)")
_WHITESPACE = " \t\r\n"


class SCPIError(Exception):
    """An instrument error: `code,"message"` goes into the error queue."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def standard(cls, code: int, detail: str = "") -> SCPIError:
        """The error with its standard text, then `; detail`."""
        text = STANDARD_ERRORS.get(code, "Error")
        return cls(code, f"{text}; {detail}" if detail else text)

    def entry(self) -> str:
        return f'{self.code},"{self.message}"'


@dataclass(frozen=True)
class Unit:
    """One program message unit as sent: header (as typed) and its parameters."""

    text: str
    header: str
    query: bool
    common: bool
    absolute: bool
    #: Mnemonics as (upper-case name, numeric suffix digits or "").
    tokens: tuple[tuple[str, str], ...]
    params: tuple[str, ...]


def decode(message: bytes) -> str:
    """Bytes as characters one to one (SCPI is ASCII; others are flagged by `lex_unit`)."""
    return message.decode("latin-1")


def _split(text: str, separator: str, nest: bool) -> list[str]:
    """Split at `separator` outside quoted strings (and parentheses if `nest`)."""
    parts: list[str] = []
    start = depth = 0
    quote = ""
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = ""  # a doubled quote closes and reopens: same result
        elif c in "\"'":
            quote = c
        elif nest and c == "(":
            depth += 1
        elif nest and c == ")":
            depth = max(0, depth - 1)
        elif c == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def split_units(message: str) -> list[str]:
    """The program message units of a message (`;`-joined), empty ones dropped."""
    return [u for u in _split(message, ";", nest=False) if u.strip(_WHITESPACE)]


def _check_characters(text: str) -> None:
    quote = ""
    for c in text:
        if quote:
            quote = "" if c == quote else quote
            continue
        if c in "\"'":
            quote = c
        elif not (" " <= c <= "~" or c in "\t\r\n"):
            raise SCPIError.standard(-101, f"character 0x{ord(c):02X} in {text.strip()[:40]!r}")
    if quote:
        raise SCPIError.standard(-102, f"unterminated string in {text.strip()[:40]!r}")


def lex_unit(raw: str) -> Unit:
    """Header and parameters of one unit; -101 for a bad character, -102 for bad syntax."""
    _check_characters(raw)
    text = raw.strip(_WHITESPACE)
    cut = len(text)
    for i, c in enumerate(text):
        if c in _WHITESPACE:
            cut = i
            break
    header, rest = text[:cut], text[cut:].strip(_WHITESPACE)
    match = _HEADER.fullmatch(header)
    if match is None:
        raise SCPIError.standard(-102, f"bad header {header[:40]!r}")
    params: tuple[str, ...] = ()
    if rest:
        parts = [p.strip(_WHITESPACE) for p in _split(rest, ",", nest=True)]
        if not all(parts):
            raise SCPIError.standard(-102, f"empty parameter in {text[:40]!r}")
        params = tuple(parts)
    if match["common"]:
        name = match["common"].upper()
        return Unit(text, header, bool(match["cq"]), True, False, ((name, ""),), params)
    tokens = []
    for mnemonic in match["path"].split(":"):
        m = _MNEMONIC.fullmatch(mnemonic)
        if m is None:  # pragma: no cover - the header pattern admits only these
            raise SCPIError.standard(-102, f"bad mnemonic {mnemonic!r}")
        tokens.append((m[1].upper(), m[2]))
    return Unit(text, header, bool(match["q"]), False, bool(match["colon"]), tuple(tokens), params)
