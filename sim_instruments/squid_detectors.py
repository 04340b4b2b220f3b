"""The source behind a SQUID channel for a `world.detectors` entry: a thermodynamic MMC pixel
(`model: mmc`, `mmc_pixel_source`) or a pulse source of typed shape and gain (`pulse_source`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cryodaq.sim_instruments.mmc_pixel_source import MmcPixelSource
from cryodaq.sim_instruments.pulse_source import PulseSource, detector_source

if TYPE_CHECKING:
    from cryodaq.sim_instruments.world import World


def squid_source(world_params: Mapping[str, Any], kind: str, rng: np.random.Generator,
                 world: World) -> PulseSource | MmcPixelSource:
    """The source of detector `kind`: an `MmcPixelSource` at the temperature of `world`'s
    plate for an entry with `model: mmc`, else `pulse_source.detector_source`'s."""
    entry = (world_params.get("detectors") or {}).get(kind) or {}
    if str(entry.get("model", "")) == "mmc":
        return MmcPixelSource(entry, rng, f"world.detectors.{kind}", world)
    return detector_source(world_params, kind, rng)
