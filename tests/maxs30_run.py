"""One acquisition of both ADCs of the simulated maXs30 (the rig file as a test edited it) into a
store, with the array's truth (issue 15 tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cryodaq.acquisition.campaign.steps.acquire import AcquireStep
from cryodaq.acquisition.campaign.steps.acquire_setup import acquisition_for
from cryodaq.acquisition.clock import WorldClock
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore

RIG = Path(__file__).resolve().parents[1] / "config" / "rigs" / "maxs30_sim.yaml"


def rig_doc() -> dict[str, Any]:
    """The maXs30 simulation rig, to edit."""
    return yaml.safe_load(RIG.read_text())


def acquire_both_adcs(tmp: Path, doc: dict[str, Any], enabled: dict[str, str],
                      step: AcquireStep, settle_s: float) -> dict[str, Any]:
    """Enable only `enabled` ({"adc1": "2-3", ...}) on each ADC, let the plate settle for
    `settle_s`, run `step` on both ADCs; the run's reader, the array's truth and dead channels."""
    for adc, on in enabled.items():
        # "1-16" first: the later selector wins
        doc["instruments"][adc]["settings"]["channels"] = {
            "1-16": {"enabled": False}, on: {"enabled": True}
        }
    (tmp / "rig.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with Rig(load_rig(tmp / "rig.yaml")) as rig:
        rig.open("fll")
        rig.open("tc")
        adcs = [rig.open(adc) for adc in enabled]
        rig.world.advance(settle_s)
        store = RunStore.create(tmp / "run", {})
        acquisition_for(adcs, step, step.name, float(step.duration), store,
                        WorldClock(rig)).run()  # fmt: skip
        store.close("done")
        array = rig.world.detector_array("mmc")
        truth, dead = array.truth(), array.channels()["dead"]
    return {"reader": RunReader(tmp / "run"), "truth": truth, "dead": dead}
