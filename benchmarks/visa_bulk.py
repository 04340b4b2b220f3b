"""Bulk int16 block reads through the ADC driver, against a NumPy copy of the same bytes.

Prints one JSON object:
- bytes_per_s: FETC? blocks of 16 channels read through `Adc16.fetch` (pyvisa, the in-process
  simulated VISA library, IEEE block framing and parsing) with the ADC's inputs unwired and its
  noise off, so the figure is the data plane's, not the physics generator's;
- with_physics_bytes_per_s: the same through the maXs30 simulated rig (SQUID FLL outputs with
  detector pulses and noise on every channel): what a simulated acquisition gets;
- reference_bytes_per_s: `np.copy` of an int16 array of the same size, in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyvisa

from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.drivers.adc import Adc16
from cryodaq.sim_instruments.adc_model import AdcModel
from cryodaq.sim_instruments.library import CryoSimLibrary, SimInstrument
from cryodaq.sim_instruments.world import World

ADDRESS = "TCPIP0::127.0.0.1::5025::SOCKET"
ROOT = Path(__file__).resolve().parents[1]


def rate(fetch, samples: int, repeats: int) -> float:
    """Best-of bytes per second of `fetch(samples)` over `repeats` blocks (after a warm-up)."""
    fetch(samples)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        block = fetch(samples)
        elapsed = time.perf_counter() - start
        best = max(best, block.codes.nbytes / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=int, default=1 << 17, help="samples per channel per block"
    )
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    world = World({"seed": 1})
    model = AdcModel(world, "adc", {"noise_lsb": 0.0})
    library = CryoSimLibrary.serving([SimInstrument(ADDRESS, "adc", model)])
    adc = Adc16.open(pyvisa.ResourceManager(library), ADDRESS, name="adc")
    adc.sample_rate = 1e7
    adc.start()
    transport = rate(adc.fetch, args.samples, args.repeats)

    with Rig(load_rig(ROOT / "config" / "rigs" / "maxs30_sim.yaml")) as rig:
        rig.open("fll")
        physics_adc = rig.open("adc1")
        physics_adc.start()
        physics = rate(physics_adc.fetch, args.samples, max(3, args.repeats // 3))

    data = np.zeros((16, args.samples), dtype=np.int16)
    start = time.perf_counter()
    for _ in range(args.repeats):
        np.copy(data)
    reference = data.nbytes * args.repeats / (time.perf_counter() - start)

    print(
        json.dumps(
            {
                "benchmark": "visa_bulk",
                "block_bytes": int(data.nbytes),
                "bytes_per_s": round(transport),
                "with_physics_bytes_per_s": round(physics),
                "reference_bytes_per_s": round(reference),
                "target_bytes_per_s": 200e6,
            }
        )
    )


if __name__ == "__main__":
    main()
