"""The run's thermometry log: thermometer readings, their targets and the heater powers that
hold them, against the run clock, as the campaign polls (`data/thermometry.jsonl`, one JSON
object a line, appended; a reader skips a last line cut short)."""

from __future__ import annotations

import json
import logging
import math

from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.store.layout import DATA
from cryodaq.drivers.lakeshore372 import HEATER_IDS, LakeShore372, LoopOutput

log = logging.getLogger(__name__)

THERMOMETRY = "thermometry.jsonl"


def log_reading(
    ctx: RunContext,
    tc: LakeShore372,
    sensor: str,
    reading_K: float,
    target_K: float | None,
    loops: list[LoopOutput],
) -> None:
    """Append one poll of `sensor`: its reading, its target and the power of the heaters of
    `loops` (those that regulate it). A full disk loses the line, never the run."""
    heaters = {
        f"{tc.name}.{loop.ch}": tc.heater_power(loop.ch) for loop in loops if loop.ch in HEATER_IDS
    }
    entry = {
        "t_s": ctx.clock.now(),
        "sensor": sensor,
        "K": reading_K if math.isfinite(reading_K) else None,
        "target_K": target_K,
        "heater_W": heaters,
    }
    try:
        (ctx.run_dir / DATA).mkdir(exist_ok=True)
        with (ctx.run_dir / DATA / THERMOMETRY).open("a") as f:
            f.write(json.dumps(entry) + "\n")
    except OSError as exc:
        log.warning("thermometry log: %s", exc)
