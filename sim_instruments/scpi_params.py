"""SCPI parameters to the plain text a setter expects: numbers, units, MIN/MAX/DEF, booleans."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryodaq.sim_instruments.scpi import SCPIError

#: IEEE 488.2 suffix multipliers (`M` is milli, mega is `MA`; but `MHZ` and `MOHM` are mega).
MULTIPLIERS = {
    "EX": 1e18, "PE": 1e15, "T": 1e12, "G": 1e9, "MA": 1e6, "K": 1e3,
    "M": 1e-3, "U": 1e-6, "N": 1e-9, "P": 1e-12, "F": 1e-15, "A": 1e-18,
}
#: Suffixes that IEEE 488.2 reads as mega, not milli.
MEGA_SPECIALS = {"MHZ": "HZ", "MOHM": "OHM"}
#: SCPI's numeric words (9.9E37 is SCPI's infinity, 9.91E37 its not-a-number).
NUMERIC_WORDS = {"INF": 9.9e37, "INFINITY": 9.9e37, "NINF": -9.9e37, "NAN": 9.91e37}
LIMIT_WORDS = {"MIN": "min", "MINIMUM": "min", "MAX": "max", "MAXIMUM": "max",
               "DEF": "default", "DEFAULT": "default"}
BOOLEANS = {"ON": 1, "OFF": 0}

_DECIMAL = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[ \t]*[eE][ \t]*[+-]?\d+)?)[ \t]*(.*)")
_SUFFIX = re.compile(r"[A-Za-z%][A-Za-z0-9%/.]*")
_NON_DECIMAL = {"H": (16, "0123456789ABCDEF"), "Q": (8, "01234567"), "B": (2, "01")}
_FORMAT = re.compile(r"\{(?P<ch>ch_id)?(?::[^}]*?(?P<type>[a-zA-Z%])?)?\}")


def suffix_scale(suffix: str, unit: str) -> float:
    """Factor of a suffix (`GHZ`, `ms`, `DBM`) for a value in `unit`; -131/-138 if it does
    not fit."""
    s, u = suffix.upper(), unit.upper()
    if not u:
        raise SCPIError.standard(-138, f"{suffix!r} on a value without a unit")
    if s == u:
        return 1.0
    if MEGA_SPECIALS.get(s) == u:
        return 1e6
    if s.endswith(u) and not u.startswith("DB") and s[: -len(u)] in MULTIPLIERS:
        return MULTIPLIERS[s[: -len(u)]]
    raise SCPIError.standard(-131, f"{suffix!r} is not a suffix for {unit}")


def parse_number(text: str, unit: str = "") -> float:
    """A decimal or `#H/#Q/#B` number with an optional suffix, in `unit` (SI base)."""
    if text.startswith("#") and len(text) > 2 and text[1].upper() in _NON_DECIMAL:
        base, digits = _NON_DECIMAL[text[1].upper()]
        if all(c in digits for c in text[2:].upper()):
            return float(int(text[2:], base))
        raise SCPIError.standard(-120, f"bad non-decimal number {text[:40]!r}")
    match = _DECIMAL.fullmatch(text)
    if match is None:
        code = -120 if text[:1] in "+-.0123456789" else -104
        raise SCPIError.standard(code, f"{text[:40]!r} is not a number")
    value = float(re.sub(r"[ \t]", "", match[1]))
    suffix = match[2]
    if suffix:
        if not _SUFFIX.fullmatch(suffix):
            raise SCPIError.standard(-131, f"bad suffix {suffix[:40]!r}")
        value *= suffix_scale(suffix, unit)
    return value


@dataclass(frozen=True)
class Slot:
    """One parameter of a command as its device file declares it."""

    #: "float", "int", "text" (character data), "raw" (left as sent) or "literal".
    kind: str
    fmt: str = ""
    literal: str = ""
    unit: str = ""
    limits: tuple[tuple[str, Any], ...] = ()
    valid: tuple[str, ...] = ()
    boolean: bool = False

    def normalise(self, text: str) -> str:
        """The parameter as the setter template expects it; SCPIError if it cannot be."""
        if self.kind == "raw":
            return text
        if self.kind == "literal":
            return self._literal(text)
        if self.kind == "text":
            return self._text(text)
        word = text.upper()
        if word in LIMIT_WORDS:
            limits = dict(self.limits)
            value = limits.get(LIMIT_WORDS[word])
            if value is None:
                raise SCPIError.standard(-224, f"{text} is not defined for this setting")
            number = float(value)
        elif self.boolean and word in BOOLEANS:
            number = float(BOOLEANS[word])
        elif word in NUMERIC_WORDS:
            number = NUMERIC_WORDS[word]
        else:
            number = parse_number(text, self.unit)
        if not math.isfinite(number):
            raise SCPIError.standard(-222, f"{text} is not finite")
        return self.render(number)

    def render(self, number: float) -> str:
        """A number in the template's format (stringparser reads `.16e` for e/f/g)."""
        if self.kind == "int":
            return str(round(number))
        if self.fmt in ("E", "G"):
            return f"{number:.16E}"
        if self.fmt in ("f", "F"):
            return f"{number:.12f}"
        return f"{number:.16e}"

    def _text(self, text: str) -> str:
        if text[:1] in "\"'":
            return text
        for value in self.valid:
            if value.upper() == text.upper():
                return value
        if self.valid:
            raise SCPIError.standard(-224, f"{text[:40]!r} is not one of {', '.join(self.valid)}")
        return text.upper()

    def _literal(self, text: str) -> str:
        if text.upper() == self.literal.upper():
            return self.literal
        try:
            if parse_number(text) == parse_number(self.literal):
                return self.literal
        except SCPIError:
            pass
        raise SCPIError.standard(-224, f"{text[:40]!r} (expected {self.literal})")


def slots_of(template: str, specs: Mapping[str, Any] | None, default: Any = None) -> list[Slot]:
    """The slots of a q-string's parameter part (`{:e}`, `{ch_id:s},{:e}`, `REAL,64`)."""
    if not template.strip():
        return []
    out = []
    for part in (p.strip() for p in template.split(",")):
        match = _FORMAT.fullmatch(part)
        if match is None:
            out.append(Slot("literal" if "{" not in part else "raw", literal=part))
        elif match["ch"] or specs is None:
            out.append(Slot("raw"))
        else:
            out.append(_value_slot(match["type"] or "s", specs, default))
    return out


def _value_slot(fmt: str, specs: Mapping[str, Any], default: Any) -> Slot:
    kind = {"d": "int", "e": "float", "E": "float", "f": "float", "F": "float",
            "g": "float", "G": "float"}.get(fmt, "text")
    valid = tuple(str(v) for v in specs.get("valid", ()) or ())
    if kind == "text":
        return Slot("text", fmt, valid=valid)
    numbers = [float(v) for v in valid]
    low = specs.get("min", min(numbers) if numbers else None)
    high = specs.get("max", max(numbers) if numbers else None)
    limits = (("min", low), ("max", high), ("default", default if default != "" else None))
    boolean = {round(n) for n in numbers} == {0, 1} and len(numbers) == 2
    return Slot(kind, fmt, unit=str(specs.get("unit", "")), limits=limits, boolean=boolean)
