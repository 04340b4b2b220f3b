"""SCPI headers (long/short forms, [optional] nodes, suffixes) and messages resolved on them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryodaq.sim_instruments.scpi import SCPIError, Unit, lex_unit, split_units
from cryodaq.sim_instruments.scpi_params import Slot, slots_of

_PART = r"(?:[^\[\]:{}]|\{[^}]*\})+"
_ELEMENT = re.compile(rf"\[:?(?P<opt>{_PART})\]|:?(?P<req>{_PART})")
_MNEMONIC = re.compile(r"(?P<name>[A-Za-z_]+)(?P<suffix>\d+|\{ch_id(?::s)?\}|#)?")
#: Standard long form of an error queue a device file declares as `SYST:ERR?`.
SYSTEM_ERROR = "SYSTem:ERRor[:NEXT]"
_CACHE_SIZE = 4096
_MISS = object()

Token = tuple[str, str]
#: (declaration, canonical header, path the next relative header continues)
Resolved = tuple["HeaderDef", str, tuple[Token, ...]]


@dataclass(frozen=True)
class Node:
    """One mnemonic of a header: `FREQuency` is short FREQ, long FREQUENCY."""

    short: str
    long: str
    optional: bool = False
    #: None (no suffix), "#" (any number), "ch" (a channel id) or fixed digits ("1").
    suffix: str | None = None

    def template(self) -> str:
        tail = {None: "", "#": "#", "ch": "{ch_id}"}.get(self.suffix, self.suffix or "")
        return self.short + tail

    def suffix_value(self, digits: str, ids: Sequence[str] | None) -> tuple[str, bool] | None:
        """(suffix as canonical text, in range) for the digits sent; None: no match."""
        if self.suffix is None:
            return None if digits else ("", True)
        value = str(int(digits)) if digits else "1"
        if self.suffix == "#":
            return value, True
        if self.suffix == "ch":
            return value, ids is None or value in ids
        return self.suffix, value == str(int(self.suffix))


def parse_notation(notation: str) -> tuple[tuple[Node, ...], bool]:
    """Nodes and query flag of `[:SENSe]:FREQuency:CENTer?`, `CH{ch_id}:ENAB`, `SYST:ERR?`."""
    text = notation.strip()
    query = text.endswith("?")
    text = text[:-1] if query else text
    nodes: list[Node] = []
    pos = 0
    for match in _ELEMENT.finditer(text):
        if match.start() != pos:
            break
        pos = match.end()
        optional = match["opt"] is not None
        mnemonic = _MNEMONIC.fullmatch(match["opt"] if optional else match["req"])
        if mnemonic is None:
            raise ValueError(f"bad SCPI header {notation!r}")
        name, suffix = mnemonic["name"], mnemonic["suffix"]
        short = name
        if any(c.islower() for c in name):  # FREQuency: short FREQ; FREQ alone: both forms
            short = name[: len(name) - len(name.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ_"))]
        if not short:
            raise ValueError(f"bad SCPI header {notation!r}: {name} has no short form")
        if suffix and suffix.startswith("{"):
            suffix = "ch"
        nodes.append(Node(short.upper(), name.upper(), optional, suffix))
    if pos != len(text) or not nodes or not any(not n.optional for n in nodes):
        raise ValueError(f"bad SCPI header {notation!r}")
    return tuple(nodes), query


def template(nodes: Sequence[Node], query: bool = False) -> str:
    """Canonical form with placeholders, as pyvisa-sim is handed it: every node (optional ones
    too) in short form, no leading colon (`SENS:FREQ:CENT?`, `CH{ch_id}:ENAB?`)."""
    return ":".join(n.template() for n in nodes) + ("?" if query else "")


def short_key(nodes: Sequence[Node]) -> str:
    """The shortest header a client may send (optional nodes left out): how a device file's
    short q-string finds its long form (`FREQ:CENT` -> `[:SENSe]:FREQuency:CENTer`)."""
    return ":".join(n.template() for n in nodes if not n.optional)


def _match(
    nodes: Sequence[Node], tokens: Sequence[Token], ids: Sequence[str] | None
) -> tuple[list[str], bool] | None:
    """Suffix value of each node (None where an optional node was left out), in range."""
    if not nodes:
        return ([], True) if not tokens else None
    node, rest = nodes[0], nodes[1:]
    if tokens and tokens[0][0] in (node.short, node.long):
        value = node.suffix_value(tokens[0][1], ids)
        if value is not None:
            tail = _match(rest, tokens[1:], ids)
            if tail is not None:
                return [value[0], *tail[0]], value[1] and tail[1]
    if node.optional:
        tail = _match(rest, tokens, ids)
        if tail is not None:
            default = node.suffix_value("", ids)
            return [default[0] if default else "", *tail[0]], tail[1]
    return None


def _sample_suffix(node: Node) -> str:
    if node.suffix is None:
        return ""
    return node.suffix if node.suffix.isdigit() else "1"


@dataclass
class HeaderDef:
    """A declared header (one form: command or query) and what its parameters may be."""

    nodes: tuple[Node, ...]
    query: bool
    ids: tuple[str, ...] | None = None
    #: One slot list per declaration (setter, dialogue); None: parameters pass as sent.
    candidates: list[list[Slot] | None] = field(default_factory=list)

    def params(self, sent: tuple[str, ...]) -> tuple[str, ...]:
        """The parameters as the declaration expects them; SCPIError if none fits."""
        if any(c is None for c in self.candidates):
            return sent
        fitting = [c for c in self.candidates if c is not None and len(c) == len(sent)]
        if not fitting:
            counts = [len(c) for c in self.candidates if c is not None]
            if len(sent) < min(counts):
                raise SCPIError.standard(-109, f"{template(self.nodes, self.query)} needs "
                                               f"{min(counts)} parameter(s)")
            raise SCPIError.standard(-108, f"{template(self.nodes, self.query)} takes "
                                           f"{max(counts)} parameter(s), got {len(sent)}")
        error: SCPIError | None = None
        for slots in fitting:
            try:
                return tuple(s.normalise(p) for s, p in zip(slots, sent, strict=True))
            except SCPIError as exc:
                error = error or exc
        assert error is not None
        raise error


@dataclass(frozen=True)
class Command:
    """One unit of a message, resolved: `text` is what models and pyvisa-sim match."""

    text: str
    header: str
    query: bool
    common: bool = False
    #: Declared in the device file (False: passed on as sent, for models' own commands).
    known: bool = True
    params: tuple[str, ...] = ()


class HeaderTable:
    """The headers of one instrument and how a program message resolves against them."""

    def __init__(self, long_forms: Iterable[str] = (), channel_ids: Iterable[str] = ()) -> None:
        self._long: dict[str, tuple[tuple[Node, ...], bool | None]] = {}
        for notation in long_forms:
            nodes, query = parse_notation(notation)
            if short_key(nodes) in self._long:
                raise ValueError(f"SCPI header {notation!r} declared twice")
            self._long[short_key(nodes)] = (nodes, True if query else None)
        self._ids = tuple(channel_ids) or None
        self._defs: dict[tuple[tuple[Node, ...], bool], HeaderDef] = {}
        self.error_query = ""
        self._cache: dict[tuple[tuple[Token, ...], bool], Any] = {}

    def declare(
        self,
        q: str,
        specs: Mapping[str, Any] | None = None,
        default: Any = None,
        ids: Sequence[str] | None = None,
    ) -> str:
        """Register a device file's q-string; returns it in canonical form for pyvisa-sim."""
        header, _, rest = q.strip().partition(" ")
        parts = [p.strip() for p in rest.split(",")] if rest.strip() else []
        tail = " " + ",".join(parts) if parts else ""
        if header.startswith("*"):
            return header.upper() + tail
        nodes, query = parse_notation(header)
        nodes = self._long_form(nodes)
        key = (nodes, query)
        if key not in self._defs:
            self._defs[key] = HeaderDef(nodes, query, tuple(ids) if ids else self._ids)
        self._defs[key].candidates.append(slots_of(",".join(parts), specs, default))
        return template(nodes, query) + tail

    def _long_form(self, nodes: tuple[Node, ...]) -> tuple[Node, ...]:
        """The declared long form a (short) q-string header is a way of sending, if any."""
        tokens = tuple((n.short, _sample_suffix(n)) for n in nodes)
        for long_nodes, _ in self._long.values():
            if _match(long_nodes, tokens, None) is not None:
                return long_nodes
        return nodes

    def declare_error_query(self, q: str) -> str:
        """Register the error-queue query (`SYST:ERR?` is read as SCPI's full form)."""
        nodes, _ = parse_notation(q)
        if short_key(nodes) == "SYST:ERR" and "SYST:ERR" not in self._long:
            nodes, _ = parse_notation(SYSTEM_ERROR)
            self._long["SYST:ERR"] = (nodes, True)
        self.error_query = self.declare(q)
        return self.error_query

    def finish(self) -> None:
        """Headers declared only in long form (data commands the model answers) take any
        parameters as sent."""
        for nodes, only_query in self._long.values():
            for query in (True,) if only_query else (False, True):
                if (nodes, query) not in self._defs:
                    self._defs[nodes, query] = HeaderDef(nodes, query, self._ids, [None])

    def resolve(self, tokens: tuple[Token, ...], query: bool) -> Resolved | None:
        """(declaration, canonical header, path for the next relative header), or None."""
        key = (tokens, query)
        result: Any = self._cache.get(key, _MISS)  # shared by devices of one file: no races
        if result is _MISS:
            result = self._search(tokens, query)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = result
        if isinstance(result, SCPIError):
            raise SCPIError(result.code, result.message)
        return result

    def _search(self, tokens: tuple[Token, ...], query: bool) -> Resolved | SCPIError | None:
        result: Any = None
        for d in self._defs.values():
            if d.query != query:
                continue
            matched = _match(d.nodes, tokens, d.ids)
            if matched is None:
                continue
            values, in_range = matched
            if not in_range:
                shown = ":".join(n + s for n, s in tokens)
                result = result or SCPIError.standard(-114, f"{shown} (no such channel)")
                continue
            canonical = ":".join(n.short + v for n, v in zip(d.nodes, values, strict=True))
            path = tuple((n.short, v) for n, v in zip(d.nodes[:-1], values[:-1], strict=True))
            return d, canonical + ("?" if query else ""), path
        return result

    def commands(self, message: str) -> Iterator[Command | SCPIError]:
        """Each unit of a message resolved, or the error it gives (SCPI's `;` path rule:
        a header without a leading colon continues the previous header's path)."""
        path: tuple[Token, ...] = ()
        for raw in split_units(message):
            try:
                unit = lex_unit(raw)
                if unit.common:
                    yield _common(unit)
                    continue
                command, path = self._resolve_unit(unit, () if unit.absolute else path)
                yield command
            except SCPIError as exc:
                path = ()
                yield exc

    def _resolve_unit(
        self, unit: Unit, path: tuple[Token, ...]
    ) -> tuple[Command, tuple[Token, ...]]:
        found = self.resolve(path + unit.tokens, unit.query)
        if found is None and path:
            shown = ":".join(n + s for n, s in path + unit.tokens) + ("?" if unit.query else "")
            raise SCPIError.standard(-113, f"{shown} (after ';' a header continues the path)")
        if found is None:  # not declared: passed on as sent, for a model's own commands
            text = unit.text[1:] if unit.absolute else unit.text
            return Command(text, unit.header.upper(), unit.query, known=False,
                           params=unit.params), ()
        declared, header, next_path = found
        params = declared.params(unit.params)
        text = header + (" " + ",".join(params) if params else "")
        return Command(text, header, unit.query, params=params), next_path


def _common(unit: Unit) -> Command:
    name = unit.tokens[0][0] + ("?" if unit.query else "")
    text = name + (" " + ",".join(unit.params) if unit.params else "")
    return Command(text, name, unit.query, common=True, params=unit.params)
