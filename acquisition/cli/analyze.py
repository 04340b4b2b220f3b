"""`cryodaq analyze`: analyse a stored run again, per-channel work on Dask if asked.

It runs the campaign's analyze steps (or one pipeline) through the same path as the campaign
runner (`campaign.steps.analyze.analyze_step`), and rewrites the summary atomically.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape

from cryodaq.acquisition.campaign.schema import Campaign
from cryodaq.acquisition.campaign.steps.analyze import AnalyzeHandler, AnalyzeStep, analyze_step
from cryodaq.acquisition.campaign.steps.table import leaf_steps
from cryodaq.acquisition.cli.output import console, errors, fail
from cryodaq.acquisition.cli.run import print_outcome
from cryodaq.acquisition.cluster.connection import ClusterSpec, connect
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.pipelines import ChannelFailure
from cryodaq.acquisition.pipelines.report import write_run_report
from cryodaq.acquisition.store.layout import CAMPAIGN, SUMMARY
from cryodaq.acquisition.store.lock import RunLock, RunLocked
from cryodaq.acquisition.store.summary import RunSummary


def analyze(
    run_dir: Annotated[Path, typer.Argument(help="A run directory")],
    pipeline: Annotated[str | None, typer.Argument(help="Only this pipeline")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Map per-channel steps over N local Dask workers")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Use a running Dask scheduler, tcp://HOST:PORT")
    ] = None,
) -> None:
    """Re-run the analysis of a stored run (its campaign's analyze steps, or one pipeline).
    A run another process is writing is refused (it is locked), and nothing of it changes."""
    if not run_dir.is_dir():
        raise fail(f"{run_dir}: not a cryodaq run directory (no such directory)")
    with RunLock(run_dir) as lock:
        try:
            lock.acquire("cryodaq analyze")
        except RunLocked as exc:
            raise fail(f"{exc}: analyze it once the run has ended") from None
        summary = _summary(run_dir)
        steps = _analyze_steps(run_dir, pipeline)
        try:
            spec = ClusterSpec(workers=workers, scheduler=scheduler)
            with connect(spec) if spec.wanted else contextlib.nullcontext() as client:
                for step, name in steps:
                    outcome = analyze_step(run_dir, step, name, client, on_piece=_progress(name))
                    figures = tuple(str(p.relative_to(run_dir)) for p in outcome.figures)
                    summary = summary.with_analysis(name, outcome.results, figures)
        except CryodaqError as exc:
            raise fail(str(exc)) from None
        summary.write(run_dir / SUMMARY)
        write_run_report(run_dir, summary)
    print_outcome(run_dir)


def _summary(run_dir: Path) -> RunSummary:
    try:
        return RunSummary.read(run_dir / SUMMARY)
    except CryodaqError:
        raise fail(f"{run_dir}: not a cryodaq run directory (no readable {SUMMARY})") from None


def _analyze_steps(run_dir: Path, pipeline: str | None) -> list[tuple[AnalyzeStep, str]]:
    """The run's analyze steps with their result names, as the runner named them; only
    `pipeline`'s if given (a bare one if the campaign has none)."""
    try:
        campaign = Campaign.model_validate(json.loads((run_dir / CAMPAIGN).read_text()))
    except (OSError, ValueError, ValidationError) as exc:
        reason = str(exc).splitlines()[0]
        raise fail(f"{run_dir}: not a cryodaq run directory ({CAMPAIGN}: {reason})") from None
    handler = AnalyzeHandler()
    steps = [
        (step, handler.data_name(step, suffix))
        for step, suffix in leaf_steps(campaign.steps)
        if isinstance(step, AnalyzeStep)
    ]
    if pipeline is not None:
        steps = [(s, n) for s, n in steps if s.pipeline == pipeline] or [
            (AnalyzeStep(pipeline=pipeline), pipeline)
        ]
    if not steps:
        raise fail(f"{run_dir}: the campaign has no analyze step; name a pipeline")
    return steps


def _progress(step: str) -> Callable[[Hashable, Any], None]:
    """Per-channel completion of an analysis step, one line each (failures with the error)."""
    done = itertools.count(1)

    def show(key: Hashable, outcome: Any) -> None:
        n = next(done)
        if isinstance(outcome, ChannelFailure):
            errors.print(
                f"  {escape(step)}: channel {key} [red]failed[/]: {escape(outcome.error)} ({n})",
                highlight=False,
            )
        else:
            console.print(f"  {escape(step)}: channel {key} done ({n})", highlight=False)

    return show
