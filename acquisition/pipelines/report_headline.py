"""Headline results of an analysis for the run report, defined by each pipeline's own module.

A pipeline `<name>` with a headline has a module `<name>_headline` (registered in HEADLINES,
as pipelines are in PIPELINES) holding:

- `tables(results) -> list[Table]`: the numbers the campaign exists for, with units and errors
  (`report_numbers.fmt`), read from the pipeline's results as summary.json holds them;
- `problems(results) -> list[str]`: what went wrong in the analysis, stated plainly (failed
  channels, cuts that removed more than expected), one sentence each;
- `CAPTIONS`: figure name ending (`spectrum` for `pulses_calib_spectrum.png`) -> one line
  saying what to look for in that figure.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: pipeline name -> module defining its headline (imported on first use).
HEADLINES: dict[str, str] = {
    name: f"cryodaq.acquisition.pipelines.{name}_headline"
    for name in ("pulses", "mmc", "holmes", "ho163", "haloscope", "yfactor")
}


@dataclass(frozen=True)
class Table:
    """A headline table: `columns` name the cells of each row (all preformatted text)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Headline:
    """What the report shows of one analysis before its figures, and its problems."""

    tables: list[Table] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    captions: Mapping[str, str] = field(default_factory=dict)


class HeadlineModule(Protocol):
    CAPTIONS: Mapping[str, str]

    def tables(self, results: Mapping[str, Any]) -> list[Table]: ...

    def problems(self, results: Mapping[str, Any]) -> list[str]: ...


def headline(pipeline: str | None, results: Any) -> Headline | None:
    """The headline of `results` of `pipeline`; None if the pipeline defines none (or the
    results are not a mapping: an analysis that failed before producing any). Results the
    headline cannot read (an entry of another kind than the pipeline writes, e.g. an edited
    summary.json) give no tables and one problem saying so; the rest of the report stands."""
    if pipeline not in HEADLINES or not isinstance(results, Mapping):
        return None
    module: HeadlineModule = importlib.import_module(HEADLINES[pipeline])  # type: ignore[assignment]
    try:
        return Headline(module.tables(results), module.problems(results), module.CAPTIONS)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        why = f"the {pipeline} headline could not read these results ({type(exc).__name__}: {exc})"
        return Headline([], [why], module.CAPTIONS)


def caption(captions: Mapping[str, str], figure: str) -> str:
    """The caption of figure file `figure` (its stem ends with a key of `captions`; the longest
    matching key wins), or "" if none matches."""
    stem = figure.rsplit("/", 1)[-1].removesuffix(".png")
    keys = sorted((k for k in captions if stem == k or stem.endswith(f"_{k}")), key=len)
    return captions[keys[-1]] if keys else ""


def ok_entries(entries: Any) -> dict[str, Mapping[str, Any]]:
    """The entries (channels, pixels) of a results mapping that hold no `error`."""
    if not isinstance(entries, Mapping):
        return {}
    return {str(k): v for k, v in entries.items() if isinstance(v, Mapping) and "error" not in v}


def failed_entries(entries: Any, what: str) -> list[str]:
    """The entries of `entries` that hold an `error`, one sentence per kind of error
    (`channel 3 failed: ...`; `12 pixels failed like A1: ...; all: A1, A2, ...`): errors that
    differ only in their numbers and the entry's name are one kind."""
    if not isinstance(entries, Mapping):
        return []
    kinds: dict[str, list[tuple[str, str]]] = {}
    for k, v in entries.items():
        if isinstance(v, Mapping) and v.get("error"):
            error = str(v["error"])
            kind = re.sub(r"\d+(\.\d+)?", "#", error.replace(str(k), "@"))
            kinds.setdefault(kind, []).append((str(k), error))
    out = []
    for failed in kinds.values():
        name, error = failed[0]
        if len(failed) == 1:
            out.append(f"{what} {name} failed: {error}")
        else:
            names = ", ".join(n for n, _ in failed)
            out.append(f"{len(failed)} {what}s failed like {name} ({error}): {names}")
    return out


def column(rows: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    """The numeric values of `key` over `rows` (missing and non-numbers left out)."""
    out = []
    for r in rows:
        v = r.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and v == v:
            out.append(float(v))
    return out
