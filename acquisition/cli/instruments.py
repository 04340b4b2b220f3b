"""`cryodaq instruments` and `cryodaq serve-sim`: a rig's instruments, opened or served."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from pyvisa.rname import to_canonical_name
from rich.markup import escape
from rich.table import Table

from cryodaq.acquisition.cli.output import console, errors, fail
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.rig import Rig, derived_seed, load_rig
from cryodaq.drivers.errors import InstrumentError
from cryodaq.drivers.streaming import StreamingInstrument
from cryodaq.sim_instruments.tcp_server import InstrumentServer

RigPath = Annotated[Path, typer.Argument(help="Rig file, e.g. config/rigs/maxs30_sim.yaml")]


def instruments(rig: RigPath) -> None:
    """Open every instrument of a rig and show its identity and key settings."""
    try:
        spec = load_rig(rig)
        opened = Rig(spec)
    except CryodaqError as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"rig {spec.name} ({rig})")
    for column in ("name", "driver", "address", "backend", "IDN", "settings"):
        table.add_column(column, overflow="fold")
    problems = []
    with opened:
        for name, inst_spec in spec.instruments.items():
            try:
                inst = opened.open(name)
                idn, summary = inst.idn, inst.summary()
            except (InstrumentError, CryodaqError) as exc:
                problems.append(str(exc))
                idn, summary = "[red]unavailable[/]", {}
            settings = ", ".join(f"{k}={v}" for k, v in summary.items())
            table.add_row(
                name,
                inst_spec.driver.__name__,
                inst_spec.address,
                inst_spec.backend,
                escape(idn) if summary else idn,
                escape(settings),
            )
    console.print(table)
    for line in problems:
        errors.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)


def serve_sim(
    rig: RigPath,
    any_port: Annotated[bool, typer.Option(help="Let the OS choose free ports")] = False,
    keep_seed: Annotated[
        bool, typer.Option(help="Serve the rig's own seed (replay the same events)")
    ] = False,
) -> None:
    """Serve a rig's simulated instruments over TCP on 127.0.0.1 (one SCPI socket each).

    A served World runs in real time: each server start is a new stretch of the experiment,
    its seed derived from the rig's and the start time, so a restarted server never replays
    the last one's events (the seed is printed, to serve the same stretch again)."""
    try:
        spec = load_rig(rig)
        if spec.simulated and not keep_seed:
            base = spec.world.get("seed", 0)
            spec.world["seed"] = derived_seed(base, f"served{time.time_ns()}")
        _compile_streams(rig)  # first: the served World's clock starts when it is opened
        opened = Rig(spec, realtime=True)
    except (CryodaqError, InstrumentError) as exc:
        raise fail(str(exc)) from None
    if opened.library is None:
        raise fail(f"{rig}: no instrument has backend 'sim'; nothing to serve")
    servers = []
    for inst_spec in spec.simulated:
        device = opened.library.physics[to_canonical_name(inst_spec.address)]
        port = 0 if any_port else _socket_port(inst_spec.address)
        try:
            server = InstrumentServer(device, port)
        except OSError as exc:
            raise fail(
                f"{inst_spec.name}: cannot listen on 127.0.0.1:{port}: {exc.strerror}"
            ) from None
        servers.append((inst_spec.name, server))
    for name, server in servers:
        server.start()
        console.print(f"{name}\tTCPIP::127.0.0.1::{server.port}::SOCKET", highlight=False)
    seed = f"world seed {spec.world.get('seed', 0)}; " if spec.simulated else ""
    console.print(f"serving ({seed}Ctrl-C to stop)", highlight=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    for _, server in servers:
        server.shutdown()
        server.server_close()


def _compile_streams(rig: Path) -> None:
    """Stream a short block from every streaming instrument of a throwaway copy of the rig
    (virtual time), so the physics kernels are compiled before the first client's fetch: a
    served instrument then answers its first fetch as fast as the later ones."""
    spec = load_rig(rig)
    if not spec.simulated:
        return
    with Rig(spec) as scratch:
        for inst_spec in spec.simulated:
            inst = scratch.open(inst_spec.name)
            if isinstance(inst, StreamingInstrument):
                inst.start()
                inst.fetch(256)
                inst.stop()


def _socket_port(address: str) -> int:
    parts = address.split("::")
    if len(parts) >= 4 and parts[-1].upper() == "SOCKET":
        return int(parts[-2])
    return 0
