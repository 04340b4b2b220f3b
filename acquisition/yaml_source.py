"""YAML loading that remembers where every key and value stood (file:line:col)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cryodaq.acquisition.errors import ConfigError

KeyPath = tuple[str | int, ...]


def dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)


@dataclass
class YamlDocument:
    """Plain Python data of a YAML file plus the position of each key path."""

    path: Path
    data: Any
    marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    #: Where a value (`sources`) or a key (`key_sources`) stands when not in `path`: a grafted
    #: file or a `--set` override, by key path.
    sources: dict[KeyPath, str] = field(default_factory=dict)
    key_sources: dict[KeyPath, str] = field(default_factory=dict)
    #: Key path of this document's root in the document it was cut from (shown in messages).
    prefix: KeyPath = ()

    def where(self, key_path: KeyPath, at_key: bool = False) -> str:
        """`file:line:col` of the value at `key_path` (or of its key), else of its parent."""
        key_path = tuple(key_path)
        if at_key and key_path in self.key_marks:
            line, col = self.key_marks[key_path]
            return f"{self.key_sources.get(key_path, self.path)}:{line}:{col}"
        for end in range(len(key_path), -1, -1):
            mark = self.marks.get(key_path[:end])
            if mark is not None:
                return f"{self.sources.get(key_path[:end], self.path)}:{mark[0]}:{mark[1]}"
        return f"{self.path}:1:1"

    def error(self, key_path: KeyPath, message: str, at_key: bool = False) -> ConfigError:
        return ConfigError(
            self.where(key_path, at_key), dotted((*self.prefix, *key_path)), message
        )

    def subdocument(self, prefix: KeyPath) -> YamlDocument:
        """The part under `prefix` (a mapping or list), keeping positions and full key paths."""
        n = len(prefix)

        def cut(table: dict[KeyPath, Any]) -> dict[KeyPath, Any]:
            return {k[n:]: v for k, v in table.items() if k[:n] == prefix}

        data = self.data
        for part in prefix:
            data = data[part]
        return YamlDocument(
            self.path,
            data,
            cut(self.marks),
            {k: v for k, v in cut(self.key_marks).items() if k},
            cut(self.sources),
            {k: v for k, v in cut(self.key_sources).items() if k},
            (*self.prefix, *prefix),
        )

    def graft(self, key_path: KeyPath, other: YamlDocument, label: str | None = None) -> None:
        """Put `other`'s data at `key_path` (whose parent exists), with its positions, which
        are reported in `label` (default: `other`'s own file)."""
        key_path = tuple(key_path)
        parent = self.data
        for part in key_path[:-1]:
            parent = parent[part]
        parent[key_path[-1]] = other.data
        n = len(key_path)
        for table in (self.marks, self.sources):  # values at and under key_path
            for stale in [k for k in table if k[:n] == key_path]:
                del table[stale]
        for table in (self.key_marks, self.key_sources):  # keys under it (its own key stays)
            for stale in [k for k in table if k[:n] == key_path and len(k) > n]:
                del table[stale]
        for k, mark in other.marks.items():
            self.marks[(*key_path, *k)] = mark
            self.sources[(*key_path, *k)] = label or other.sources.get(k, str(other.path))
        for k, mark in other.key_marks.items():
            self.key_marks[(*key_path, *k)] = mark
            self.key_sources[(*key_path, *k)] = label or other.key_sources.get(k, str(other.path))


class _Loader(yaml.SafeLoader):
    """The safe loader, also reading `1e-05` (no dot, as JSON writes it) as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _convert(node: yaml.Node, path: KeyPath, doc: YamlDocument) -> Any:
    doc.marks[path] = _position(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            doc.key_marks[(*path, key)] = _position(key_node)
            out[key] = _convert(value_node, (*path, key), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def load_yaml(path: str | Path) -> YamlDocument:
    """Load one YAML file; a syntax error becomes a `ConfigError` at its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path, label: str | None = None, shift: int = 0) -> YamlDocument:
    """YAML text as if read from `path`; positions on its first line move right by `shift`
    columns. A syntax error is a `ConfigError` in `label` (default: `path`)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        name = label or str(path)
        if mark is None:
            raise ConfigError(name, "", f"invalid YAML: {exc.problem}") from None
        col = mark.column + 1 + (shift if mark.line == 0 else 0)
        where = f"{name}:{mark.line + 1}:{col}"
        raise ConfigError(where, "", f"invalid YAML: {exc.problem}") from None
    doc = YamlDocument(path, {})
    if node is not None:
        doc.data = _convert(node, (), doc)
    if shift:
        for table in (doc.marks, doc.key_marks):
            for k, (line, col) in table.items():
                table[k] = (line, col + shift if line == 1 else col)
    return doc
