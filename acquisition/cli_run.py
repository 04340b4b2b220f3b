"""`cryodaq run`, `cryodaq analyze` and `cryodaq export` (registered on the main app)."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from acquisition.campaign_display import Display
from acquisition.campaign_run import FIGURES, STORE, SUMMARY, CampaignRunner, run_directory
from acquisition.campaign_validate import CampaignInvalid, load_campaign
from acquisition.cli import app
from acquisition.cluster import ClusterSpec, connect
from acquisition.distributed_analysis import analyze as analyze_pipeline
from acquisition.errors import CryodaqError
from acquisition.ljh import export_ljh, ljh_filename
from acquisition.pipelines import ChannelFailure, PipelineInput, UnknownPipeline
from acquisition.report import write_report
from acquisition.run_reader import RunReader

console = Console()
errors = Console(stderr=True)

Overrides = Annotated[
    list[str], typer.Option("--set", help="Override a key: dotted.path=value (rig.* too)")
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.command()
def run(
    campaign: Annotated[Path | None, typer.Argument(help="Campaign file")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: the campaign's)")
    ] = None,
    set_: Overrides = [],  # noqa: B006 (typer reads the default)
    resume: Annotated[
        Path | None, typer.Option(help="Continue an interrupted run in this directory")
    ] = None,
    live: Annotated[bool, typer.Option(help="Live display on a terminal")] = True,
    workers: Annotated[
        int | None, typer.Option(help="Multi-board steps: N local Dask workers")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Multi-board steps: a running Dask scheduler")
    ] = None,
) -> None:
    """Run a campaign on its rig (simulated: on virtual time, as fast as the host allows)."""
    if (campaign is None) == (resume is None):
        raise _fail("give a campaign file, or --resume RUN_DIR")
    try:
        cluster = ClusterSpec(workers=workers, scheduler=scheduler)
        if resume is not None:
            loaded = load_campaign(resume / "campaign.json")
            run_dir = resume
        else:
            loaded = load_campaign(campaign, set_)
            run_dir = run_directory(loaded.campaign, out, Path.cwd())
        runner = CampaignRunner(
            loaded.campaign,
            loaded.rig,
            loaded.raw,
            run_dir,
            resume=resume is not None,
            display=Display(live=live),
            cluster=cluster if cluster.wanted else None,
        )
        code = runner.run()
    except CampaignInvalid as exc:
        raise _fail(str(exc), 1) from None
    except CryodaqError as exc:
        raise _fail(str(exc)) from None
    _report(run_dir)
    raise typer.Exit(code)


def _report(run_dir: Path) -> None:
    """The run's outcome in a few lines."""
    summary = json.loads((run_dir / SUMMARY).read_text())
    status = summary["status"]
    style = {"completed": "green", "interrupted": "yellow"}.get(status, "red")
    console.print(
        f"[{style}]{status}[/]: {summary['steps_done']} steps, "
        f"live {summary['live_time_s']:.4g} s, "
        f"virtual {summary['virtual_time_s']:.4g} s, wall {summary['wall_time_s']:.4g} s",
        highlight=False,
    )
    if summary.get("error"):
        errors.print(f"[bold red]error:[/] {escape(summary['error'])}", highlight=False)
    for name, results in summary.get("analyze", {}).items():
        # A pipeline's headline: its means over channels, or its fit, or its top level.
        means = (results.get("mean") or results.get("fit") or results) if results else {}
        headline = {k: v for k, v in means.items() if isinstance(v, int | float)}
        console.print(f"  {escape(name)}: {escape(_short(headline))}", highlight=False)
    if status == "interrupted":
        console.print(f"  continue with: cryodaq run --resume {escape(str(run_dir))}")
    console.print(f"  run directory: {escape(str(run_dir))} (report.html, summary.json)")


def _short(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(values.items())[:6]
    )


@app.command()
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
        raise _fail(f"{run_dir}: not a cryodaq run directory ({exc})") from None
    steps = [s["analyze"] for s in _leaf_steps(campaign["steps"]) if "analyze" in s]
    if pipeline is not None:
        steps = [s for s in steps if s["pipeline"] == pipeline] or [{"pipeline": pipeline}]
    if not steps:
        raise _fail(f"{run_dir}: the campaign has no analyze step; name a pipeline")
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
        raise _fail(str(exc.args[0] if isinstance(exc, UnknownPipeline) else exc)) from None
    summary["figures"] = sorted(
        {*summary.get("figures", []), *(str(p.relative_to(run_dir)) for p in figures)}
    )
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2))
    write_report(run_dir, summary, [run_dir / f for f in summary["figures"]])
    _report(run_dir)


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


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory")],
    out: Annotated[Path | None, typer.Option(help="Directory for the LJH files")] = None,
    acquisition: Annotated[str | None, typer.Option(help="Only this acquisition")] = None,
    scale: Annotated[float | None, typer.Option(help="Units per LJH count for float data")] = None,
) -> None:
    """Write every channel's records as LJH 2.2 files (readable by NIST mass)."""
    try:
        reader = RunReader(run_dir / STORE)
        out_dir = out or run_dir / "ljh"
        out_dir.mkdir(parents=True, exist_ok=True)
        for acq in [acquisition] if acquisition else reader.acquisitions():
            for ch in reader.channels(acq):
                path = export_ljh(reader, acq, ch, out_dir / ljh_filename(acq, ch), scale=scale)
                console.print(
                    f"{escape(str(path))}: {reader.committed(acq, ch)} records", highlight=False
                )
    except CryodaqError as exc:
        raise _fail(str(exc)) from None
