"""Simulated instruments on real TCP sockets: `cryodaq serve-sim` as a child process, one
instrument of an opened simulated rig served in this process, and a driver reaching a served
instrument through pyvisa-py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyvisa
from pyvisa.rname import to_canonical_name

from cryodaq.acquisition.rig import Rig
from cryodaq.sim_instruments.library import SimInstrument
from cryodaq.sim_instruments.tcp_server import InstrumentServer
from tests.protocol import serve


@dataclass
class ServeSim:
    """A running `cryodaq serve-sim`: its process, each instrument's address, its serving line."""

    proc: subprocess.Popen[str]
    addresses: dict[str, str]
    serving: str

    def port(self, name: str) -> int:
        return int(self.addresses[name].split("::")[2])


@contextmanager
def serve_sim(rig: Path, *options: str) -> Iterator[ServeSim]:
    """`cryodaq serve-sim RIG OPTIONS` until its serving line; terminated at exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryodaq.acquisition", "serve-sim", str(rig), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        addresses = {}
        for line in iter(proc.stdout.readline, ""):  # type: ignore[union-attr]
            if line.startswith("serving"):
                break
            name, address = line.split()
            addresses[name] = address
        else:
            stderr = proc.stderr.read()  # type: ignore[union-attr]
            raise AssertionError(f"serve-sim {rig} exited: {stderr}")
        yield ServeSim(proc, addresses, line.strip())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def serve_instrument(rig: Rig, name: str) -> Iterator[int]:
    """Instrument `name` of an opened simulated rig on a TCP port of 127.0.0.1 (yielded)."""
    device = rig.library.physics[to_canonical_name(rig.spec.instruments[name].address)]
    server = InstrumentServer(device, 0)
    server.start()
    try:
        yield server.port
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def driver_over_tcp(driver_cls: Any, instrument: SimInstrument, name: str) -> Iterator[Any]:
    """`driver_cls` opened through pyvisa-py on `instrument` served on a TCP socket."""
    server = serve(instrument)
    rm = pyvisa.ResourceManager("@py")
    try:
        inst = driver_cls.open(rm, f"TCPIP::127.0.0.1::{server.port}::SOCKET", name=name)
        try:
            yield inst
        finally:
            inst.close()
    finally:
        rm.close()
        server.shutdown()
        server.server_close()
