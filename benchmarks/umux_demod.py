"""Simulated HOLMES uMUX readout speed: the numba demodulators, the whole board through the
driver, and a plain NumPy implementation of the same per-sample physics.

Prints one JSON object: `kernel_ns_per_channel_sample` and `kernel_realtime_per_channel`
(`umux_demod.demodulate`, sample by sample: 3 resonators per tone, 32 channel samples per
2 us ramp period), `numpy_ns_per_channel_sample` (the same channel signal, phase and
reference sums vectorised in NumPy: the in-run reference), `period_kernel_ns_per_period` and
`period_kernel_realtime_per_channel` (`umux_period.demodulate_periods` on the same chain
with two other tones leaking 40 dB down, from the tables of `period_tables`, whose build
time is `period_tables_ms`), `board_realtime` (virtual seconds per wall second of the
holmes_sim rig streaming `--channels` TES channels through the driver, sources and noise
included), `board_cpu_per_s` (CPU seconds per virtual second: all threads, and the main
thread that generates the detector signals) and the machine's load average before and
after, since other jobs share the cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.analysis.resonator import coupling_q, find_dips, swing_centre
from cryodaq.sim_instruments import ziggurat
from cryodaq.sim_instruments.umux_demod import (
    calibration,
    demodulate,
    reference_weights,
    response_table,
    tone_leak,
)
from cryodaq.sim_instruments.umux_period import demodulate_periods, period_tables

ROOT = Path(__file__).resolve().parents[1]
RATIO, N_PHI0, DROP = 32, 2, 1


def _chain() -> tuple[np.ndarray, np.ndarray, complex, complex, float]:
    f0 = np.array([5.0e9, 5.014e9, 4.986e9])
    q_i = np.full(3, 5e4)
    q_c = coupling_q(f0, 2e6, q_i)
    luts = response_table(float(swing_centre(f0[0], 2e6, 0.3)), f0, 2e6, 0.3, q_i, q_c)
    static = np.array([0.1, 0.3, -0.2])
    centre, rot = calibration(luts, static, N_PHI0)
    return luts, static, centre, rot, 2e-3


def kernel(periods: int) -> float:
    """ns per channel sample of the numba demodulator."""
    luts, static, centre, rot, sigma = _chain()
    wa, wb = reference_weights(RATIO, N_PHI0, DROP)
    signal = np.zeros((3, periods + 1))
    signal[0] = 0.3 * np.sin(np.arange(periods + 1) * 1e-3)
    out = np.empty(periods)
    state = ziggurat.new_state(np.random.default_rng(1))
    leak = np.zeros(1, dtype=complex)
    demodulate(0, luts, static, signal[:, :11].copy(), RATIO, N_PHI0, wa, wb, DROP, centre,
               rot, leak, sigma, state, math.nan, out[:10])  # compile
    t = time.perf_counter()
    demodulate(0, luts, static, signal, RATIO, N_PHI0, wa, wb, DROP, centre, rot, leak, sigma,
               state, math.nan, out)
    return (time.perf_counter() - t) / (periods * (RATIO - DROP)) * 1e9


def period_kernel(periods: int) -> tuple[float, float]:
    """(ns per ramp period of the per-period demodulator, ms to build its tables)."""
    luts, static, centre, rot, sigma = _chain()
    weights = reference_weights(RATIO, N_PHI0, DROP)
    others = np.array([-14e6, 14e6]) + 62.5e3 * np.array([3, -5])
    leak = tone_leak(0.0, others, np.full(2, 0.01), np.array([0.3, 2.1]), 16e6, 256)
    build = (luts, centre, rot, sigma, leak, RATIO, N_PHI0, DROP, weights)
    period_tables(*build)  # compile
    t = time.perf_counter()
    tables = period_tables(*build)
    build_ms = (time.perf_counter() - t) * 1e3
    assert tables is not None
    signal = np.zeros((3, periods + 1))
    signal[0] = 0.3 * np.sin(np.arange(periods + 1) * 1e-3)
    out = np.empty(periods)
    state = ziggurat.new_state(np.random.default_rng(1))

    def run(n: int) -> None:
        demodulate_periods(0, tables.main, tables.cross, tables.slow, tables.leak_stride,
                           tables.centre_of_mass, luts, static, signal[:, :n + 1].copy(),
                           RATIO, N_PHI0, *weights, DROP, centre, rot, leak, sigma, state,
                           math.nan, out[:n])

    run(10)  # compile
    t = time.perf_counter()
    run(periods)
    return (time.perf_counter() - t) / periods * 1e9, build_ms


def numpy_reference(periods: int) -> float:
    """ns per channel sample of the same computation vectorised in NumPy."""
    luts, static, centre, rot, sigma = _chain()
    wa, wb = reference_weights(RATIO, N_PHI0, DROP)
    rng = np.random.default_rng(1)
    signal = 0.3 * np.sin(np.arange(periods + 1) * 1e-3)
    t = time.perf_counter()
    frac = np.arange(DROP, RATIO) / RATIO
    sig = signal[:-1, None] + (signal[1:] - signal[:-1])[:, None] * frac[None, :]
    size = luts.shape[1] - 1
    z = np.ones(sig.shape, dtype=complex)
    for k in range(luts.shape[0]):
        flux = static[k] + (sig if k == 0 else 0.0) + N_PHI0 * frac[None, :]
        u = (flux % 1.0) * size
        i = np.minimum(u.astype(int), size - 1)
        z *= luts[k, i] + (luts[k, i + 1] - luts[k, i]) * (u - i)
    z = (z - centre) * rot + sigma * (rng.standard_normal(z.shape)
                                      + 1j * rng.standard_normal(z.shape))
    y = np.angle(z)
    theta = np.unwrap(np.arctan2(-(y @ wb[DROP:]), y @ wa[DROP:]))
    elapsed = time.perf_counter() - t
    assert theta.size == periods
    return elapsed / (periods * (RATIO - DROP)) * 1e9


def board(channels: int, seconds: float) -> tuple[float, float, float]:
    """(virtual seconds per wall second, CPU seconds per virtual second of all threads and of
    the main thread) of the holmes_sim board streaming `channels` TESs."""
    with Rig(load_rig(ROOT / "config" / "rigs" / "holmes_sim.yaml")) as rig:
        roach = rig.open("roach")
        sweep = roach.sweep(-255e6, 255e6, 5101)
        dips = find_dips(sweep.baseband_hz, sweep.s21)
        for ch in range(1, channels + 1):
            roach.set_tone(ch, float(dips.freq_hz[ch - 1]))
        roach.start()
        roach.fetch(1000)  # compile
        block = 50_000
        n = max(1, int(seconds * roach.ramp_frequency / block))
        t, cpu, main_cpu = time.perf_counter(), time.process_time(), time.thread_time()
        for _ in range(n):
            roach.fetch(block)
        virtual = n * block / roach.ramp_frequency
        return (virtual / (time.perf_counter() - t), (time.process_time() - cpu) / virtual,
                (time.thread_time() - main_cpu) / virtual)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--periods", type=int, default=200_000)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    ns = kernel(args.periods // 4)
    ref = numpy_reference(args.periods // 4)
    period_ns, build_ms = period_kernel(args.periods)
    realtime, cpu, main_cpu = board(args.channels, args.seconds)
    result = {
        "kernel_ns_per_channel_sample": round(ns, 2),
        "kernel_realtime_per_channel": round(1e9 / (ns * (RATIO - DROP) * 500e3), 3),
        "numpy_ns_per_channel_sample": round(ref, 2),
        "speedup_vs_numpy": round(ref / ns, 2),
        "period_kernel_ns_per_period": round(period_ns, 2),
        "period_kernel_realtime_per_channel": round(1e9 / (period_ns * 500e3), 2),
        "period_speedup_vs_sample_kernel": round(ns * (RATIO - DROP) / period_ns, 1),
        "period_tables_ms": round(build_ms, 1),
        "board_channels": args.channels,
        "board_realtime": round(realtime, 3),
        "board_cpu_per_s": {"all_threads": round(cpu, 3), "main_thread": round(main_cpu, 3)},
        "load_average_before": load_before,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
