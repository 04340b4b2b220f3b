"""The `cryodaq` command line: one typer app, each command registered here from its module."""

from __future__ import annotations

import typer

from cryodaq.acquisition.cli.analyze import analyze
from cryodaq.acquisition.cli.check_driver import check_driver
from cryodaq.acquisition.cli.export import export
from cryodaq.acquisition.cli.instruments import instruments, serve_sim
from cryodaq.acquisition.cli.live import live
from cryodaq.acquisition.cli.report import report
from cryodaq.acquisition.cli.run import run
from cryodaq.acquisition.cli.validate import validate

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Data acquisition for cryogenic detector rigs."
)
app.command()(instruments)
app.command("serve-sim")(serve_sim)
app.command("check-driver")(check_driver)
app.command()(validate)
app.command()(run)
app.command()(analyze)
app.command()(report)
app.command()(export)
app.command()(live)


def main() -> None:
    """Entry point of the `cryodaq` console script."""
    app()
