"""YAML loading that remembers where every key and value stood (file:line:col)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cryodaq.acquisition.errors import ConfigError
from cryodaq.acquisition.yaml_loader import (
    LOADERS,
    PLAIN_TAGS,
    LimitExceeded,
    Loader,
    check_characters,
    read_source,
    tag_name,
)

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


#: Longest number written as a scalar (a longer one is an error, not seconds of big-int work).
MAX_NUMBER_CHARS = 64
_NUMBERS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _problem(node: yaml.Node, message: str) -> LimitExceeded:
    return LimitExceeded(problem=message, problem_mark=node.start_mark)


def _scalar(loader: Loader, node: yaml.Node, role: str = "value") -> Any:
    """A scalar node's value; a mapping or list where a key stands, an unknown tag or a value
    its tag cannot read raise at the node."""
    if not isinstance(node, yaml.ScalarNode):
        raise _problem(node, f"a {role} must be a plain scalar, not a mapping or list")
    if node.tag == "tag:yaml.org,2002:merge":
        raise _problem(node, "merge keys (<<) are not supported: write the keys out")
    if node.tag not in PLAIN_TAGS:
        raise _problem(node, f"unknown YAML tag {tag_name(node.tag)!r}; only plain "
                       "mappings, lists, strings, numbers, true/false and null are allowed")
    if node.tag in _NUMBERS and len(node.value) > MAX_NUMBER_CHARS:
        raise _problem(node, f"a number of more than {MAX_NUMBER_CHARS} characters")
    try:
        return loader.construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _problem(node, f"cannot read {node.value[:40]!r} as {tag_name(node.tag)} "
                       f"({exc})") from None


def _json_key(key: Any) -> str:
    """A key as JSON writes it: `1` and `"1"` are one key in a saved campaign."""
    return key if isinstance(key, str) else json.dumps(key)


def _convert(loader: Loader, node: yaml.Node, path: KeyPath, doc: YamlDocument,
             open_nodes: set[int]) -> Any:
    doc.marks[path] = _position(node)
    if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        return _scalar(loader, node)
    if node.tag not in PLAIN_TAGS:
        raise _problem(node, f"unknown YAML tag {tag_name(node.tag)!r}; only plain "
                       "mappings, lists, strings, numbers, true/false and null are allowed")
    if id(node) in open_nodes:
        raise _problem(node, "an alias refers to a mapping or list that contains it")
    open_nodes.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        out: Any = [_convert(loader, item, (*path, i), doc, open_nodes)
                    for i, item in enumerate(node.value)]
    else:
        out, seen = {}, {}
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node, "key")
            if not isinstance(key, str | int | float | bool | type(None)):
                raise _problem(key_node, f"a key must be a string or a number, not "
                               f"{type(key).__name__} {key!r}")
            first = seen.setdefault(_json_key(key), key_node)
            if first is not key_node:
                line, col = _position(first)
                raise _problem(key_node, f"duplicate key {key!r} (first at line {line}, "
                               f"column {col})")
            doc.key_marks[(*path, key)] = _position(key_node)
            out[key] = _convert(loader, value_node, (*path, key), doc, open_nodes)
    open_nodes.discard(id(node))
    return out


def _at(exc: yaml.MarkedYAMLError, name: str, shift: int, prefix: str) -> ConfigError:
    """A YAML error as a `ConfigError` at its mark (columns on line 1 moved by `shift`)."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "unreadable"
    if problem.startswith("but ") and exc.context:  # "expected X, but found Y"
        problem = f"{exc.context}, {problem}"
    if mark is None:
        return ConfigError(name, "", f"{prefix}{problem}")
    col = mark.column + 1 + (shift if mark.line == 0 else 0)
    return ConfigError(f"{name}:{mark.line + 1}:{col}", "", f"{prefix}{problem}")


def load_yaml(path: str | Path) -> YamlDocument:
    """Load one YAML file within the limits of `yaml_loader`; a problem is a `ConfigError` at
    its line (`yaml_loader.Unreadable` if the file cannot be read at all)."""
    path = Path(path)
    return parse_yaml(read_source(path), path)


def parse_yaml(text: str, path: Path, label: str | None = None, shift: int = 0) -> YamlDocument:
    """YAML text as if read from `path`; positions on its first line move right by `shift`
    columns. A syntax error or a limit exceeded is a `ConfigError` in `label` (default:
    `path`)."""
    name = label or str(path)
    check_characters(text, name, shift)
    for loader_class in LOADERS:
        doc = YamlDocument(path, {})
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                doc.data = _convert(loader, node, (), doc, set())
            break
        except LimitExceeded as exc:
            raise _at(exc, name, shift, "") from None
        except yaml.MarkedYAMLError as exc:
            if loader_class is LOADERS[-1]:
                raise _at(exc, name, shift, "invalid YAML: ") from None
        except yaml.YAMLError as exc:
            raise ConfigError(name, "", f"invalid YAML: {exc}") from None
        finally:
            loader.dispose()
    if shift:
        for table in (doc.marks, doc.key_marks):
            for k, (line, col) in table.items():
                table[k] = (line, col + shift if line == 1 else col)
    return doc
