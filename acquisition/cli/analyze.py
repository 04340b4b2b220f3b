"""`cryodaq analyze`: analyse a stored run again, per-channel work on Dask if asked."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from cryodaq.acquisition.campaign.runner import FIGURES, STORE, SUMMARY
from cryodaq.acquisition.cli.output import console, errors, fail
from cryodaq.acquisition.cli.run import print_outcome
from cryodaq.acquisition.cluster.analyze import analyze as analyze_pipeline
from cryodaq.acquisition.cluster.connection import ClusterSpec, connect
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.pipelines import ChannelFailure, PipelineInput, UnknownPipeline
from cryodaq.acquisition.pipelines.report import write_report
from cryodaq.acquisition.store.reader import RunReader


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
    """Re-run the analysis of a stored run (its campaign's analyze steps, or one pipeline)."""
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
        campaign = json.loads((run_dir / "campaign.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise fail(f"{run_dir}: not a cryodaq run directory ({exc})") from None
    steps = [s["analyze"] for s in _leaf_steps(campaign["steps"]) if "analyze" in s]
    if pipeline is not None:
        steps = [s for s in steps if s["pipeline"] == pipeline] or [{"pipeline": pipeline}]
    if not steps:
        raise fail(f"{run_dir}: the campaign has no analyze step; name a pipeline")
    reader = RunReader(run_dir / STORE)
    figures: list[Path] = []
    try:
        spec = ClusterSpec(workers=workers, scheduler=scheduler)
        with connect(spec) if spec.wanted else contextlib.nullcontext() as client:
            for step in steps:
                name = step.get("name") or step["pipeline"]
                outcome = analyze_pipeline(
                    step["pipeline"],
                    PipelineInput(
                        run_dir,
                        reader,
                        tuple(step.get("acquisitions", ())),
                        dict(step.get("options", {})),
                        run_dir / FIGURES,
                    ),
                    client,
                    on_piece=_progress(name),
                )
                summary.setdefault("analyze", {})[name] = outcome.results
                figures.extend(outcome.figures)
    except (UnknownPipeline, CryodaqError) as exc:
        raise fail(str(exc.args[0] if isinstance(exc, UnknownPipeline) else exc)) from None
    summary["figures"] = sorted(
        {*summary.get("figures", []), *(str(p.relative_to(run_dir)) for p in figures)}
    )
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2))
    write_report(run_dir, summary, [run_dir / f for f in summary["figures"]])
    print_outcome(run_dir)


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


def _leaf_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for step in steps:
        ((kind, body),) = step.items()
        out.extend(_leaf_steps(body["steps"]) if kind in ("sweep", "repeat") else [step])
    return out
