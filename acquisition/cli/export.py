"""`cryodaq export`: a stored run's records as LJH 2.2 files, for NIST mass."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cryodaq.acquisition.cli.output import console, fail
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.store.layout import STORE
from cryodaq.acquisition.store.ljh import export_ljh, ljh_filename
from cryodaq.acquisition.store.reader import RunReader


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
        raise fail(str(exc)) from None
