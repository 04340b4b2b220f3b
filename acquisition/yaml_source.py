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

    def where(self, key_path: KeyPath) -> str:
        """`file:line:col` of the deepest known prefix of `key_path`."""
        for end in range(len(key_path), -1, -1):
            mark = self.marks.get(tuple(key_path[:end]))
            if mark is not None:
                return f"{self.path}:{mark[0]}:{mark[1]}"
        return f"{self.path}:1:1"

    def error(self, key_path: KeyPath, message: str) -> ConfigError:
        return ConfigError(self.where(key_path), dotted(key_path), message)


def _convert(node: yaml.Node, path: KeyPath, marks: dict[KeyPath, tuple[int, int]]) -> Any:
    marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _convert(value_node, (*path, key), marks)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), marks) for i, item in enumerate(node.value)]
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
    marks: dict[KeyPath, tuple[int, int]] = {}
    data = {} if node is None else _convert(node, (), marks)
    return YamlDocument(path, data, marks)
