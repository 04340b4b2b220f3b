"""`cryodaq live`: the live page of a run another process is writing, or of a finished one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryodaq.acquisition.cli.output import console, fail
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.live.server import LOCALHOST, LiveServer
from cryodaq.acquisition.store.layout import CAMPAIGN, STORE


def live(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (being written, or finished)")],
    port: Annotated[int, typer.Option(help="Port (0: any free one)")] = 0,
    host: Annotated[
        str, typer.Option(help="Address to listen on (default: this machine only)")
    ] = LOCALHOST,
) -> None:
    """Serve a run's live view in the browser until Ctrl-C; it reads the run as it grows."""
    if not run_dir.is_dir():
        raise fail(f"{run_dir}: no such directory")
    if not (run_dir / CAMPAIGN).is_file() and not (run_dir / STORE).is_dir():
        raise fail(f"{run_dir}: not a cryodaq run directory (no {CAMPAIGN}, no {STORE}/)")
    try:
        server = LiveServer(run_dir, host, port, port_option="--port")
    except CryodaqError as exc:
        raise fail(str(exc)) from None
    console.print(f"live view of {run_dir}: {server.url} (Ctrl-C stops it)", highlight=False,
                  soft_wrap=True)
    server.serve_forever()
