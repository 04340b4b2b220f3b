"""Reading untrusted YAML within limits: regular files only, size, characters, depth, aliases.

Every limit is checked before the work it bounds: a file is `stat`ed before it is opened and
read to at most `MAX_BYTES` + 1 bytes; the composer stops at `MAX_DEPTH` levels of nesting and
once aliases would expand the document past `MAX_NODES` nodes or `MAX_CHARS` characters of
scalars. Only the plain YAML types have tags here (no `!!python/...`, `!!set`, `!!binary`).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from cryodaq.acquisition.errors import ConfigError

#: Largest campaign or rig file (the example files are a few kB).
MAX_BYTES = 1 << 20
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 64
#: Most nodes a document may hold, aliases counted as often as they are used (billion laughs).
MAX_NODES = 10_000
#: Most characters of scalars a document may hold, aliases expanded.
MAX_CHARS = 2 * MAX_BYTES
#: Tags a value may carry, explicitly or as YAML resolves a plain scalar.
PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}"
    for t in ("null", "bool", "int", "float", "str", "timestamp", "map", "seq")
}
_FILE_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


class Unreadable(ConfigError):
    """A file that cannot be read as a file at all (missing, not a regular file, denied)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(str(path), "", f"cannot read: {reason}")


def _kind(mode: int) -> str | None:
    """What a non-regular file is (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _FILE_KINDS.items() if test(mode)), "not a regular file")


def read_source(path: Path) -> str:
    """The text of a YAML file: `Unreadable` unless it is a readable regular file; a
    `ConfigError` if it exceeds `MAX_BYTES`, is not UTF-8 or holds a character YAML refuses."""
    try:
        kind = _kind(os.stat(path).st_mode)
        if kind is not None:
            raise Unreadable(path, f"{kind}, not a regular file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            kind = _kind(os.fstat(f.fileno()).st_mode)  # replaced since the stat
            if kind is not None:
                raise Unreadable(path, f"{kind}, not a regular file")
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise Unreadable(path, exc.strerror or str(exc)) from None
    if len(data) > MAX_BYTES:
        raise ConfigError(str(path), "", f"larger than the limit of {MAX_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(data[: exc.start].decode("utf-8"))
        raise ConfigError(
            f"{path}:{line}:{col}", "", f"not UTF-8: byte 0x{data[exc.start]:02x} ({exc.reason})"
        ) from None
    return text


def _line_col(before: str) -> tuple[int, int]:
    """1-based line and column of the character after `before`."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def check_characters(text: str, where: str, shift: int = 0) -> None:
    """A `ConfigError` at the first character YAML does not allow (a NUL byte, a control
    character); `where` is the file name, columns on line 1 move right by `shift`."""
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad is not None:
        line, col = _line_col(text[: bad.start()])
        col += shift if line == 1 else 0
        raise ConfigError(
            f"{where}:{line}:{col}", "",
            f"character U+{ord(bad.group()):04X} is not allowed in YAML",
        )


def tag_name(tag: str) -> str:
    """`tag:yaml.org,2002:python/name:x` -> `!!python/name:x`."""
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.") else tag


class LimitExceeded(yaml.MarkedYAMLError):
    """The document exceeds one of the limits, at the mark of the node that did."""


_FLOAT_1E5 = re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$")


class Loader(Composer):
    """Python's composer, keeping the limits; under a parser, a constructor and a resolver."""

    def __init__(self) -> None:
        Composer.__init__(self)
        SafeConstructor.__init__(self)  # type: ignore[arg-type]
        Resolver.__init__(self)  # type: ignore[arg-type]
        self.depth = 0
        self.nodes = 0
        self.chars = 0
        #: (nodes, characters) a node expands to, for the aliases that name it.
        self.sizes: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):  # type: ignore[attr-defined]
            mark = self.peek_event().start_mark  # type: ignore[attr-defined]
            node = Composer.compose_node(self, parent, index)
            nodes, chars = self.sizes.get(id(node), (1, 0))  # inside its own anchor: a cycle
            self._count(nodes, chars, mark, "an alias expands the document past")
            return node
        mark = self.peek_event().start_mark  # type: ignore[attr-defined]
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitExceeded(problem=f"nesting deeper than {MAX_DEPTH} levels",
                                problem_mark=mark)
        before = (self.nodes, self.chars)
        try:
            node = Composer.compose_node(self, parent, index)
        finally:
            self.depth -= 1
        chars = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
        self._count(1, chars, mark, "the document has more than")
        self.sizes[id(node)] = (self.nodes - before[0], self.chars - before[1])
        return node

    def _count(self, nodes: int, chars: int, mark: yaml.Mark, what: str) -> None:
        self.nodes += nodes
        self.chars += chars
        if self.nodes > MAX_NODES:
            raise LimitExceeded(problem=f"{what} {MAX_NODES} nodes", problem_mark=mark)
        if self.chars > MAX_CHARS:
            raise LimitExceeded(problem=f"{what} {MAX_CHARS} characters", problem_mark=mark)


class ExactLoader(Loader, Reader, Scanner, Parser, SafeConstructor, Resolver):
    """PyYAML's own parser: the reference for positions and messages of syntax errors."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Loader.__init__(self)


if yaml.__with_libyaml__:

    class FastLoader(Loader, yaml.cyaml.CParser, SafeConstructor, Resolver):
        """libyaml's parser: the same documents, many times faster; its syntax errors are
        reported as `ExactLoader` words them."""

        def __init__(self, text: str) -> None:
            yaml.cyaml.CParser.__init__(self, text)
            Loader.__init__(self)

    #: The loaders to try in turn: a syntax error found by one is read again by the next.
    LOADERS: tuple[type[Loader], ...] = (FastLoader, ExactLoader)
else:  # pragma: no cover - PyYAML without libyaml
    LOADERS = (ExactLoader,)

for _loader in LOADERS:  # `1e-05` (no dot, as JSON writes it) is a float
    _loader.add_implicit_resolver(  # type: ignore[attr-defined]
        "tag:yaml.org,2002:float", _FLOAT_1E5, list("-+0123456789")
    )
