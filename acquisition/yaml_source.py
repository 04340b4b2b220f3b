"""YAML loading that remembers where every key and value stood (file:line:col)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from acquisition.errors import ConfigError

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

    def where(self, key_path: KeyPath, at_key: bool = False) -> str:
        """`file:line:col` of the value at `key_path` (or of its key), else of its parent."""
        if at_key and tuple(key_path) in self.key_marks:
            line, col = self.key_marks[tuple(key_path)]
            return f"{self.path}:{line}:{col}"
        for end in range(len(key_path), -1, -1):
            mark = self.marks.get(tuple(key_path[:end]))
            if mark is not None:
                return f"{self.path}:{mark[0]}:{mark[1]}"
        return f"{self.path}:1:1"

    def error(self, key_path: KeyPath, message: str, at_key: bool = False) -> ConfigError:
        return ConfigError(self.where(key_path, at_key), dotted(key_path), message)


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
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(where, "", f"invalid YAML: {exc.problem}") from None
    doc = YamlDocument(path, {})
    if node is not None:
        doc.data = _convert(node, (), doc)
    return doc
