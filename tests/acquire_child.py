"""Child process for the Ctrl-C test: a long acquisition on the simulated maXs30 rig."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.acquisition.stream.engine import Acquisition
from cryodaq.acquisition.stream.sources import AdcSource
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig

ROOT = Path(__file__).resolve().parents[1]


def main(store_path: str) -> None:
    with Rig(load_rig(ROOT / "config" / "rigs" / "maxs30_sim.yaml")) as rig:
        rig.open("fll")
        adc = rig.open("adc1")
        world = rig.world
        source = AdcSource(adc, 1 << 15, clock_ns=lambda: int(world.now() * 1e9))
        trigger = TriggerConfig(
            1024, 256, {c: ChannelTrigger(edge_threshold=200) for c in range(1, 17)}
        )
        run = RunStore.create(store_path, {"rig": rig.spec.doc.data})
        acq = Acquisition(source, trigger, name="adc1", store=run, duration_s=3600.0)
        print("started", flush=True)
        result = acq.run()
        run.close(end_reason=result.end_reason)
        print(json.dumps(result.as_dict()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
