"""`cryodaq check-driver`: run the conformance contract of an instrument's kind and show it."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cryodaq.acquisition.cli.output import console, fail
from cryodaq.acquisition.conformance.contracts import contracts_for, why_no_kind
from cryodaq.acquisition.conformance.core import Result, Status, Target, run_contract
from cryodaq.acquisition.errors import CryodaqError, did_you_mean
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.drivers.errors import InstrumentError

RigPath = Annotated[Path, typer.Argument(help="Rig file, e.g. config/rigs/maxs30_sim.yaml")]
Name = Annotated[str, typer.Argument(help="The instrument's name in the rig, e.g. adc1")]
STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.SKIP: "yellow"}


def check_driver(rig: RigPath, instrument: Name) -> None:
    """Open INSTRUMENT as the rig names it (driver class, address, backend, timeout) and run
    its kind's contract. It changes settings and leaves the instrument reset. Exit 0 if every
    check passed or was skipped, 1 if one failed, 2 for bad input."""
    try:
        spec = load_rig(rig)
    except CryodaqError as exc:
        raise fail(str(exc)) from None
    inst_spec = spec.instruments.get(instrument)
    if inst_spec is None:
        names = list(spec.instruments)
        raise fail(f"{rig}: no instrument {instrument!r}{did_you_mean(instrument, names)}; "
                   f"it has {', '.join(names)}")
    contracts = contracts_for(inst_spec.driver)
    if not contracts:
        raise fail(f"{instrument}: {why_no_kind(inst_spec.driver)}")
    quiet = logging.getLogger("cryodaq")  # the late-reply checks make drivers warn on purpose
    level = quiet.level
    try:
        with Rig(spec) as opened:
            target = Target.of(opened.open(instrument))
            quiet.setLevel(logging.ERROR)
            results = {c.kind: run_contract(c, target) for c in contracts}
            with contextlib.suppress(InstrumentError):  # a failed reset is in the table
                target.inst.reset()
    except (CryodaqError, InstrumentError) as exc:
        raise fail(str(exc)) from None
    finally:
        quiet.setLevel(level)
    where = "in-process simulator" if target.sim else "over the wire: simulator-only checks skip"
    failed = False
    for kind, kind_results in results.items():
        _show(f"{instrument}: {inst_spec.driver.__name__} as kind {kind!r} at "
              f"{inst_spec.address} ({inst_spec.backend}, {where})", kind_results)
        failed |= any(r.outcome.status is Status.FAIL for r in kind_results)
    if failed:
        raise typer.Exit(1)


def _show(title: str, results: list[Result]) -> None:
    console.print(title, highlight=False, soft_wrap=True, markup=False)
    table = Table()
    for column in ("check", "result", "s", "reason"):
        table.add_column(column, overflow="fold", justify="right" if column == "s" else "left")
    for r in results:
        status = r.outcome.status
        table.add_row(escape(r.check), f"[{STYLE[status]}]{status.value.upper()}[/]",
                      f"{r.seconds:.1f}", escape(r.outcome.reason))
    console.print(table)
    counts = {s: sum(r.outcome.status is s for r in results) for s in Status}
    console.print(", ".join(f"{n} {s.value}ed" if s is not Status.SKIP else f"{n} skipped"
                            for s, n in counts.items()), highlight=False)
