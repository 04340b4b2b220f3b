"""`cryodaq report`: rebuild a run's report.html from what the run stored (summary.json,
campaign.json, the figures), without running any analysis again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryodaq.acquisition.cli.output import console, fail
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.pipelines.report import write_run_report
from cryodaq.acquisition.store.layout import SUMMARY
from cryodaq.acquisition.store.summary import RunSummary


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory")],
) -> None:
    """Rebuild RUN_DIR/report.html from its summary.json, campaign.json and figures (no
    analysis is run; nothing else in the run directory changes)."""
    if not run_dir.is_dir():
        what = "not a directory" if run_dir.exists() else "no such directory"
        raise fail(f"{run_dir}: {what}")
    path = run_dir / SUMMARY
    if not path.is_file():
        raise fail(f"{run_dir}: not a cryodaq run directory (no {SUMMARY})")
    try:
        summary = RunSummary.read(path)
    except CryodaqError as exc:
        raise fail(str(exc)) from None
    except AttributeError:  # valid JSON, but not an object
        raise fail(f"{path}: not a cryodaq run summary (not a JSON object)") from None
    try:
        written = write_run_report(run_dir, summary)
    except OSError as exc:
        raise fail(f"{run_dir}: cannot write the report: {exc.strerror or exc}") from None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # an entry of the wrong kind
        raise fail(
            f"{path}: the report could not be built from this summary "
            f"({type(exc).__name__}: {exc})"
        ) from None
    status = summary.status
    note = "" if status == "completed" else f" (the run is {status}: the report shows it so far)"
    console.print(f"report: {written}{note}", highlight=False, soft_wrap=True)
