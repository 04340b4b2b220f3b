"""Analysis pipelines by name, for `analyze` steps and `cryodaq analyze`.

A pipeline reads a stored run, calls the pure functions of `analysis`, writes its figures
(PNG) and returns JSON-serialisable results that go into `summary.json` under the step.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acquisition.run_reader import RunReader

#: An acquisition interrupted and resumed continues as `<name>-part2`, `<name>-part3`, ...
PART_SEPARATOR = "-part"

#: name -> "module:function" (imported on first use, so a slow import costs only its users).
PIPELINES: dict[str, str] = {
    "pulses": "acquisition.pipelines.pulses:run",
    "haloscope": "acquisition.pipelines.haloscope:run",
    "yfactor": "acquisition.pipelines.yfactor:run",
}


@dataclass(frozen=True)
class PipelineInput:
    """What a pipeline gets: the run, which acquisitions, its options, where figures go."""

    run_dir: Path
    reader: RunReader
    acquisitions: tuple[str, ...]
    options: dict[str, Any]
    figures_dir: Path

    def parts(self, name: str) -> list[str]:
        """Stored acquisitions of `name`: itself and the parts a resumed run added."""
        stored = self.reader.acquisitions()
        return [a for a in stored if a == name or a.startswith(f"{name}{PART_SEPARATOR}")]


@dataclass
class PipelineResult:
    results: dict[str, Any]
    figures: list[Path] = field(default_factory=list)


Pipeline = Callable[[PipelineInput], PipelineResult]


class UnknownPipeline(KeyError):
    pass


def get_pipeline(name: str) -> Pipeline:
    """The pipeline called `name`; `UnknownPipeline` lists the known ones."""
    try:
        ref = PIPELINES[name]
    except KeyError:
        raise UnknownPipeline(
            f"no analysis pipeline {name!r}; known: {', '.join(sorted(PIPELINES)) or 'none'}"
        ) from None
    module, _, function = ref.partition(":")
    return getattr(importlib.import_module(module), function)
