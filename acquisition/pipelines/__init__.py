"""Analysis pipelines by name, for `analyze` steps and `cryodaq analyze`.

A pipeline reads a stored run, calls the pure functions of `analysis`, writes its figures
(PNG) and returns JSON-serialisable results that go into `summary.json` under the step.

Every pipeline has a light `<module>_options` module beside it with `DEFAULTS` and
`options(given) -> dict` (the step's options over the defaults, checked: `PipelineError`), so
`cryodaq validate` finds a bad option before a run without importing the analysis.

Per-channel pipelines (the distribution protocol). A pipeline module whose work splits into
independent per-channel pieces exposes, besides `run`, a function

    plan(inp: PipelineInput) -> ChannelPlan(keys, work, shared, combine, expected)

- `keys`: one hashable per piece (normally the channel number), in result order;
- `work(shared, key) -> value`: a MODULE-LEVEL function (so it pickles by reference), run once
  per key, possibly in another process or on another machine. `shared` is a small picklable
  object (paths, options, geometry: never a reader or an open file); `work` opens the run
  store itself (`RunReader(shared.run_dir / "store")` or the path it was given), reads only
  its channel and returns a picklable value;
- `combine(outcomes, draw) -> PipelineResult`: runs where the plan was made, with
  `outcomes: dict[key, value | ChannelFailure]` in `keys` order; it builds the results (a
  failed channel is reported with its error, the others complete) and has its figures drawn
  by `draw(jobs)`: each job a module-level function and its picklable arguments, returning
  the PNG's path (`draw_serially` here; on Dask each figure is a task of its own);
- `expected`: exception types that mean "this channel cannot be analysed" (reported by their
  message alone); any other exception is reported as `Type: message` and logged with its
  traceback.

`run_plan(plan)` executes a plan serially; `cryodaq.acquisition.cluster.analyze.run_distributed`
maps the same `work` over Dask workers and calls the same `combine`, so the serial and the
distributed results come from the same code. A pipeline's `run` is then just
`run_plan(plan(inp))`. Pipelines without `plan` run serially everywhere.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryodaq.acquisition.errors import CryodaqError, did_you_mean
from cryodaq.acquisition.store.reader import RunReader

log = logging.getLogger(__name__)

#: An acquisition interrupted and resumed continues as `<name>-part2`, `<name>-part3`, ...
PART_SEPARATOR = "-part"

#: name -> "module:function" (imported on first use, so a slow import costs only its users).
PIPELINES: dict[str, str] = {
    "pulses": "cryodaq.acquisition.pipelines.pulses:run",
    "haloscope": "cryodaq.acquisition.pipelines.haloscope:run",
    "yfactor": "cryodaq.acquisition.pipelines.yfactor:run",
    "holmes": "cryodaq.acquisition.pipelines.holmes:run",
    "mmc": "cryodaq.acquisition.pipelines.mmc:run",
    "ho163": "cryodaq.acquisition.pipelines.ho163:run",
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


class PipelineError(CryodaqError):
    """A pipeline cannot run at all (bad options, missing acquisition or data)."""


def with_defaults(
    given: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
    pipeline: str,
    nullable: Sequence[str] = (),
    numbers: Sequence[str] = (),
) -> dict[str, Any]:
    """A step's `options` over `defaults`; `PipelineError` names any unknown option, and any
    option given as another kind of value than its default: a number, true or false, a list,
    a mapping; null only for the options in `nullable` and those whose default is null, of
    which `numbers` must be numbers when given. `channels` (a list of channel numbers) may be
    one number: it becomes a list of one. Other options whose default is null or a string are
    checked by the pipeline's own options module."""
    given = dict(given or {})
    unknown = set(given) - set(defaults)
    if unknown:
        hint = did_you_mean(min(unknown), list(defaults)) if len(unknown) == 1 else ""
        raise PipelineError(
            f"{pipeline}: unknown option(s) {', '.join(sorted(unknown))}{hint}; "
            f"allowed: {', '.join(sorted(defaults))}"
        )
    if "channels" in defaults and _whole(given.get("channels")):
        given["channels"] = [given["channels"]]
    for key, value in given.items():
        if value is None and (key in nullable or defaults[key] is None):
            continue
        kind = _kind_error(0.0 if key in numbers else defaults[key], value)
        if key == "channels" and not (isinstance(value, list) and all(map(_whole, value))):
            kind = "a channel number or a list of them"
        if kind:
            raise PipelineError(f"{pipeline}: option {key} must be {kind}, got {value!r}")
    return {**defaults, **given}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind_error(default: Any, value: Any) -> str | None:
    """What `value` must be to stand for an option whose default is `default` (None: it is)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if _number(default):
        return None if _number(value) else "a number"
    if isinstance(default, list | tuple):
        return None if isinstance(value, list | tuple) else "a list"
    if isinstance(default, Mapping):
        return None if isinstance(value, Mapping) else "a mapping"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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


def pipeline_options(name: str) -> Callable[[Mapping[str, Any] | None], dict[str, Any]]:
    """The option check of pipeline `name` (`options` of its `<module>_options`), imported
    without the pipeline's analysis; `UnknownPipeline` lists the known ones."""
    if name not in PIPELINES:
        get_pipeline(name)
    module = PIPELINES[name].partition(":")[0]
    return importlib.import_module(f"{module}_options").options


def pipeline_module(name: str) -> Any:
    """The module of pipeline `name` (for its optional `plan`)."""
    get_pipeline(name)
    return importlib.import_module(PIPELINES[name].partition(":")[0])


@dataclass(frozen=True)
class ChannelFailure:
    """A piece of a plan that raised: its key and the reason reported."""

    key: Hashable
    error: str


#: A figure to draw: a module-level function (it pickles by reference) and its arguments.
FigureJob = tuple[Callable[..., Path], tuple[Any, ...]]
#: Draws figure jobs (here, or as tasks on a cluster); their paths in job order.
Draw = Callable[[Sequence[FigureJob]], list[Path]]


def draw_serially(jobs: Sequence[FigureJob]) -> list[Path]:
    """Draw the figures one after the other, in this process."""
    return [fn(*args) for fn, args in jobs]


@dataclass(frozen=True)
class ChannelPlan:
    """A pipeline split into independent per-channel pieces (see the module docstring)."""

    keys: tuple[Hashable, ...]
    work: Callable[[Any, Any], Any]
    shared: Any
    combine: Callable[[Mapping[Any, Any], Draw], PipelineResult]
    expected: tuple[type[BaseException], ...] = ()


def guarded(
    work: Callable[[Any, Any], Any],
    shared: Any,
    key: Hashable,
    expected: tuple[type[BaseException], ...] = (),
) -> Any:
    """`work(shared, key)`; an exception becomes a `ChannelFailure` (so the others go on)."""
    try:
        return work(shared, key)
    except expected as exc:
        log.warning("channel %s skipped: %s", key, exc)
        return ChannelFailure(key, str(exc))
    except Exception as exc:
        log.exception("channel %s failed", key)
        return ChannelFailure(key, f"{type(exc).__name__}: {exc}")


def run_plan(
    plan: ChannelPlan, on_piece: Callable[[Hashable, Any], None] | None = None
) -> PipelineResult:
    """Execute a plan serially, in key order; `on_piece(key, outcome)` after each."""
    outcomes: dict[Hashable, Any] = {}
    for key in plan.keys:
        outcomes[key] = guarded(plan.work, plan.shared, key, plan.expected)
        if on_piece is not None:
            on_piece(key, outcomes[key])
    return plan.combine(outcomes, draw_serially)
