"""Real-time factor of the simulated maXs30 rig: 32 channels through both ADC drivers.

Prints one JSON object:
- realtime_factor: virtual seconds of data produced per wall-clock second, reading FETC?
  blocks of all 16 channels from `adc1` and `adc2` in turn through `Adc16.fetch` (pyvisa, the
  in-process simulated VISA library, the 64-pixel maXs30 array behind locked FLL channels
  with all its physics: the thermodynamic MMC model's 55Fe pulses of both polarities at the
  chip temperature, background, the chip temperature's baseline, the model's noise
  (thermodynamic, Er 1/f, SQUID white and 1/f) with the electronics' and ADC's share,
  digitisation fused into one numba pass per channel and block) on the virtual clock, the
  detector plate regulated at 20 mK by the temperature controller (as in an acquisition);
- realtime_factor_cpu: the same per second of this process's CPU time (what a host to itself
  would give; the wall-clock figure drops when other processes share the cores);
- samples_per_s: channel-samples produced per wall-clock second (32 x rate x realtime_factor);
- reference_samples_per_s: `numpy.random.Generator.standard_normal` of the same number of
  samples, in the same run (one Gaussian per channel-sample, nothing else);
- target_realtime_factor: what the virtual clock should reach (issue 5);
- load_avg_1min: the host's load while it ran (other processes slow both figures).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from cryodaq.acquisition.rig import Rig, load_rig

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=int, default=1 << 16, help="samples per channel per block"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (best one kept)")
    parser.add_argument("--blocks", type=int, default=4, help="blocks per ADC per round")
    parser.add_argument(
        "--source", default="fe55", help="world.detector.source: fe55, am241 or none (background)"
    )
    args = parser.parse_args()

    with Rig(load_rig(ROOT / "config" / "rigs" / "maxs30_sim.yaml")) as rig:
        rig.open("fll")
        rig.open("tc")  # regulates the detector plate at 20 mK, as in a campaign's acquire
        rig.world.advance(300.0)
        rig.world.set_param("detector.source", args.source)
        adcs = [rig.open("adc1"), rig.open("adc2")]
        for adc in adcs:
            adc.start()
        rate = adcs[0].sample_rate
        channels = 0
        for adc in adcs:  # warm-up (JIT compilation, caches)
            channels += adc.fetch(args.samples).codes.shape[0]
        best = best_cpu = float("inf")
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(args.blocks):
                for adc in adcs:
                    adc.fetch(args.samples)
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.process_time() - start_cpu)
    virtual_s = args.blocks * args.samples / rate
    factor = virtual_s / best
    samples = channels * args.blocks * args.samples

    gen = np.random.default_rng(1)
    gen.standard_normal(1 << 16)
    start = time.perf_counter()
    for _ in range(channels * args.blocks):
        gen.standard_normal(args.samples)
    reference = samples / (time.perf_counter() - start)

    print(
        json.dumps(
            {
                "benchmark": "sim_rig",
                "source": args.source,
                "channels": channels,
                "sample_rate_hz": rate,
                "realtime_factor": round(factor, 2),
                "realtime_factor_cpu": round(virtual_s / best_cpu, 2),
                "samples_per_s": round(samples / best),
                "reference_samples_per_s": round(reference),
                "target_realtime_factor": 10.0,
                "load_avg_1min": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
