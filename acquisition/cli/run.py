"""`cryodaq run`: run a campaign, or resume an interrupted run, and print its outcome."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from cryodaq.acquisition.campaign.display import Display
from cryodaq.acquisition.campaign.runner import CampaignRunner, run_directory
from cryodaq.acquisition.campaign.validate import CampaignInvalid, load_campaign
from cryodaq.acquisition.cli.output import console, errors, fail
from cryodaq.acquisition.cluster.connection import ClusterSpec
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.live.server import LOCALHOST, LiveServer
from cryodaq.acquisition.store.layout import CAMPAIGN, SUMMARY
from cryodaq.acquisition.store.summary import RunSummary

Overrides = Annotated[
    list[str], typer.Option("--set", help="Override a key: dotted.path=value (rig.* too)")
]


def run(
    campaign: Annotated[Path | None, typer.Argument(help="Campaign file")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: the campaign's)")
    ] = None,
    set_: Overrides = [],  # noqa: B006 (typer reads the default)
    resume: Annotated[
        Path | None, typer.Option(help="Continue an interrupted run in this directory")
    ] = None,
    live: Annotated[bool, typer.Option("--live", help="Serve the live view to a browser")] = False,
    no_live: Annotated[bool, typer.Option("--no-live", hidden=True)] = False,
    live_port: Annotated[int, typer.Option(help="Port of the live view (0: any free)")] = 0,
    live_host: Annotated[
        str, typer.Option(help="Address the live view listens on (default: this machine only)")
    ] = LOCALHOST,
    display: Annotated[bool, typer.Option(help="Live display on a terminal")] = True,
    workers: Annotated[
        int | None, typer.Option(help="Multi-board steps: N local Dask workers")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Multi-board steps: a running Dask scheduler")
    ] = None,
) -> None:
    """Run a campaign on its rig (simulated: on virtual time, as fast as the host allows)."""
    if no_live:
        raise fail("--no-live is gone: the terminal display is --no-display; --live serves the "
                   "browser view (off unless given)")
    if (campaign is None) == (resume is None):
        raise fail("give a campaign file, or --resume RUN_DIR")
    try:
        cluster = ClusterSpec(workers=workers, scheduler=scheduler)
        if resume is not None:
            loaded = load_campaign(resume / CAMPAIGN)
            run_dir = resume
        else:
            loaded = load_campaign(campaign, set_)
            if out is not None and (out.is_symlink() or out.exists()) and not out.is_dir():
                raise fail(f"{out}: --out names an existing file; give a new directory", 1)
            run_dir = run_directory(loaded.campaign, out, Path.cwd())
        runner = CampaignRunner(
            loaded.campaign,
            loaded.rig,
            loaded.raw,
            run_dir,
            resume=resume is not None,
            display=Display(live=display),
            cluster=cluster if cluster.wanted else None,
        )
        code = _run_watched(runner, live_host, live_port) if live else runner.run()
    except CampaignInvalid as exc:
        raise fail(str(exc), 1) from None
    except CryodaqError as exc:
        raise fail(str(exc)) from None
    print_outcome(run_dir, runner.summary if runner.unsaved else None, runner.unsaved)
    raise typer.Exit(code)


def _run_watched(runner: CampaignRunner, host: str, port: int) -> int:
    """Run the campaign while its live view is served from a background thread."""
    server = LiveServer(runner.run_dir, host, port).start()
    console.print(f"live view: {server.url}", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    try:
        return runner.run()
    finally:
        server.finish()


def print_outcome(
    run_dir: Path, summary: RunSummary | None = None, unsaved: str | None = None
) -> None:
    """The run's outcome in a few lines (from `summary`, else from its summary.json); `unsaved`
    says why summary.json is not up to date."""
    summary = summary or RunSummary.read(run_dir / SUMMARY)
    if unsaved:
        errors.print(f"[yellow]{escape(unsaved)}[/]", highlight=False, soft_wrap=True)
    style = {"completed": "green", "interrupted": "yellow"}.get(summary.status, "red")
    console.print(
        f"[{style}]{summary.status}[/]: {summary.steps_done} steps, "
        f"live {summary.live_time_s:.4g} s, "
        f"virtual {summary.virtual_time_s:.4g} s, wall {summary.wall_time_s:.4g} s",
        highlight=False,
    )
    if summary.error:
        errors.print(f"[bold red]error:[/] {escape(summary.error)}", highlight=False,
                     soft_wrap=True)
    for name, results in summary.analyze.items():
        # A pipeline's headline: its means over channels, or its fit, or its top level.
        means = (results.get("mean") or results.get("fit") or results) if results else {}
        headline = {k: v for k, v in means.items() if isinstance(v, int | float)}
        console.print(f"  {escape(name)}: {escape(_short(headline))}", highlight=False)
    if summary.status == "interrupted":
        console.print(f"  continue with: cryodaq run --resume {escape(str(run_dir))}")
    console.print(f"  run directory: {escape(str(run_dir))} (report.html, summary.json)")


def _short(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(values.items())[:6]
    )
