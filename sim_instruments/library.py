"""In-process VISA library serving cryodaq's simulated instruments.

It extends pyvisa-sim's library: devices come from the instruments' YAML files (as with
`ResourceManager("file.yaml@sim")`), each bound to a physics model of one shared World, and
replies are handed to pyvisa in chunks as large as the caller asks for, so bulk binary blocks
do not crawl through pyvisa-sim's byte-per-call read.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pyvisa import constants
from pyvisa.errors import VisaIOError
from pyvisa.rname import to_canonical_name
from pyvisa_sim import parser
from pyvisa_sim.devices import Devices
from pyvisa_sim.highlevel import SimVisaLibrary

from cryodaq.sim_instruments.device import PhysicsDevice
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.scpi_declare import declared

DEVICE_DIR = resources.files("cryodaq.sim_instruments") / "devices"


def device_file(kind: str) -> Path:
    """Path of the pyvisa-sim YAML of an instrument kind (`adc`, `squid`, ...)."""
    path = Path(str(DEVICE_DIR / f"{kind}.yaml"))
    if not path.is_file():
        known = sorted(p.stem for p in Path(str(DEVICE_DIR)).glob("*.yaml"))
        raise FileNotFoundError(f"no simulated instrument kind {kind!r} (known: {known})")
    return path


@functools.cache
def _device_dict(path: str, device_name: str) -> dict[str, Any]:
    data = parser.parse_file(path)
    try:
        return data["devices"][device_name]
    except KeyError:
        raise KeyError(f"{path} declares no device {device_name!r}") from None


def build_device(
    path: Path, device_name: str, device_class: type[PhysicsDevice] = PhysicsDevice
) -> PhysicsDevice:
    """A `device_class` device from a pyvisa-sim device file, as pyvisa-sim's parser builds
    one (the class parses the instrument's command language: SCPI, or Lake Shore's)."""
    spec, headers = declared(_device_dict(str(path), device_name))
    defaults = {name: p.get("default", "") for name, p in spec.get("properties", {}).items()}
    for ch in spec.get("channels", {}).values():
        defaults.update({n: p.get("default", "") for n, p in ch.get("properties", {}).items()})
    device = device_class(device_name, spec.get("delimiter", ";").encode(), defaults)
    device.scpi = headers
    device.add_error_handler(spec.get("error", {}))
    for itype, eom in spec.get("eom", {}).items():
        device.add_eom(itype, *parser._get_pair(eom))
    parser.update_component(device_name, device, spec)
    for ch_name, ch_spec in spec.get("channels", {}).items():
        device.add_channels(ch_name, parser.get_channel(device, ch_name, ch_spec, None, {}))
    return device


@dataclass
class SimInstrument:
    """One simulated instrument of a rig: where it answers and what answers."""

    address: str
    kind: str
    model: SimModel
    silent: bool = False


class CryoSimLibrary(SimVisaLibrary):
    """pyvisa-sim library whose devices are bound to one World's physics models."""

    _pending: dict[str, list[SimInstrument]] = {}
    _serial = itertools.count()

    @classmethod
    def serving(cls, instruments: list[SimInstrument]) -> CryoSimLibrary:
        """A fresh library (not shared with other Worlds) serving `instruments`."""
        token = f"cryodaq-sim-{next(cls._serial)}-{time.monotonic_ns()}"
        cls._pending[token] = instruments
        return cls(token)

    def _init(self) -> None:
        self.sessions = {}
        self.devices = Devices()
        self.physics: dict[str, PhysicsDevice] = {}
        for inst in self._pending.pop(str(self.library_path), []):
            model = inst.model
            device = build_device(device_file(inst.kind), model.device_name, model.device_class)
            device.bind(inst.model)
            device.silent = inst.silent
            address = to_canonical_name(inst.address)
            self.devices.add_device(address, device)
            self.physics[address] = device

    def read(self, session: Any, count: int) -> tuple[bytes, constants.StatusCode]:
        sess = self.sessions.get(session)
        if sess is None:
            return b"", constants.StatusCode.error_invalid_object
        device = getattr(sess, "device", None)
        if not isinstance(device, PhysicsDevice):
            return super().read(session, count)
        if not device.has_output():
            timeout_ms, _ = sess.get_attribute(constants.ResourceAttribute.timeout_value)
            timeout_s = min(float(timeout_ms), 60_000.0) / 1000.0
            wait = device.seconds_to_output()
            if wait is None or wait > timeout_s:  # no reply within the timeout (maybe later)
                time.sleep(timeout_s)
                raise VisaIOError(constants.VI_ERROR_TMO)
            time.sleep(wait)
        chunk, end = device.read_chunk(count)
        if end:
            return chunk, constants.StatusCode.success
        return chunk, constants.StatusCode.success_max_count_read
