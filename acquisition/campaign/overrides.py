"""`--set dotted.path=value`: override any key of a campaign, and of its rig under `rig.`.

The value is read as YAML (`7`, `2 MHz`, `[1, 2]`, `{seed: 7}`). A problem with an override,
or with the value it puts in, is reported in the pseudo-file `<--set dotted.path=value>`,
line 1, at the column of the path or of the value within that argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryodaq.acquisition.errors import ConfigError, did_you_mean
from cryodaq.acquisition.yaml_source import KeyPath, YamlDocument, dotted, parse_yaml


@dataclass(frozen=True)
class Override:
    """One `--set` argument, parsed."""

    arg: str
    parts: tuple[str, ...]
    value: YamlDocument

    @property
    def label(self) -> str:
        """The pseudo-file name problems caused by this override are reported in."""
        return f"<--set {self.arg}>"

    def column(self, n_parts: int) -> int:
        """Column (1-based) of part `n_parts` of the dotted path within the argument."""
        return len(".".join(self.parts[:n_parts])) + (2 if n_parts else 1)

    def error(self, n_parts: int, message: str) -> ConfigError:
        return ConfigError(f"{self.label}:1:{self.column(n_parts)}", dotted(self.parts), message)


def parse_override(arg: str) -> Override:
    """`dotted.path=value` -> an `Override`; a malformed one raises a `ConfigError`."""
    path_text, sep, value_text = arg.partition("=")
    label = f"<--set {arg}>"
    parts = tuple(path_text.strip().split("."))
    if not sep or not all(parts):
        raise ConfigError(
            f"{label}:1:1", path_text.strip(), "expected dotted.path=value, e.g. rig.world.seed=7"
        )
    value = parse_yaml(value_text, Path(label), label, shift=len(path_text) + 1)
    if not value_text.strip():
        value.data = None
        value.marks[()] = (1, len(path_text) + 2)
    return Override(arg, parts, value)


def _key_in(mapping: dict[Any, Any], parts: tuple[str, ...]) -> tuple[Any, int] | None:
    """The existing key that the first parts name (the longest dotted join wins, so that
    `set` bodies' `tc.outputs.1.setpoint` keys can be reached), and how many parts it took."""
    for n in range(len(parts), 0, -1):
        text = ".".join(parts[:n])
        for key in mapping:
            if str(key) == text:
                return key, n
    return None


def apply_override(doc: YamlDocument, override: Override) -> KeyPath:
    """Put the override's value into `doc` (its positions labelled as the override); returns
    the key path it set. A missing intermediate key raises a `ConfigError` naming the path."""
    parts = override.parts
    node: Any = doc.data
    path: list[Any] = []
    i = 0
    while i < len(parts):
        here = dotted(tuple(path)) or "the top level"
        if isinstance(node, list):
            if not parts[i].isdigit() or int(parts[i]) >= len(node):
                raise override.error(i, f"{here} is a list of {len(node)}; no item {parts[i]!r}")
            key, used = int(parts[i]), 1
        elif isinstance(node, dict):
            found = _key_in(node, parts[i:])
            if found is not None:
                key, used = found
            elif i == len(parts) - 1 or any("." in str(k) for k in node):
                key, used = ".".join(parts[i:]), len(parts) - i  # a new key
                doc.key_marks[(*path, key)] = (1, override.column(i))
                doc.key_sources[(*path, key)] = override.label
            else:
                options = [str(k) for k in node]
                raise override.error(
                    i, f"{here} has no key {parts[i]!r}{did_you_mean(parts[i], options)}; "
                    f"keys: {', '.join(options) or 'none'}",
                )
        else:
            raise override.error(
                i, f"{here} is {type(node).__name__} {node!r}, not a mapping or list"
            )
        path.append(key)
        i += used
        if i < len(parts):
            node = node[key]
    doc.graft(tuple(path), override.value, override.label)
    return tuple(path)
