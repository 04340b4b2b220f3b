"""Base of the physics models behind simulated instruments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryodaq.sim_instruments.device import Handler, PhysicsDevice

if TYPE_CHECKING:
    from cryodaq.sim_instruments.world import World


class SimModel:
    """The far side of one simulated instrument.

    A model reads its instrument's settings from the device, answers data commands through
    `commands()`, and reacts to setting changes. It sees the rest of the rig only through the
    shared `World` (clock, thermal plant, signals), so a heater set on one instrument changes
    what another returns.
    """

    #: Device name in the instrument's pyvisa-sim YAML.
    device_name: str = ""
    #: The device that parses the instrument's command language.
    device_class: type[PhysicsDevice] = PhysicsDevice

    def __init__(self, world: World, name: str, params: Mapping[str, Any] | None = None) -> None:
        self.world = world
        self.name = name
        self.params = dict(params or {})
        self.device: PhysicsDevice | None = None

    def attach(self, device: PhysicsDevice) -> None:
        self.device = device

    def setting(self, name: str, ch: str | int | None = None) -> Any:
        assert self.device is not None, f"{self.name}: model not attached to a device"
        return self.device.value(name, ch)

    def commands(self) -> dict[str, Handler]:
        """Regular expression (full match, case-insensitive) -> handler."""
        return {}

    def check_setting(self, name: str, ch: str | None, value: Any) -> None:
        """Raise `SCPIError` to refuse a valid-looking value in the current state."""

    def on_setting(self, name: str, ch: str | None, value: Any) -> None:
        """Called after a property changed."""

    def on_reset(self) -> None:
        """Called after `*RST` restored the defaults."""
