"""A restarted `cryodaq serve-sim` serves a new stretch of the experiment, not a replay.

Each server start derives its World seed from the rig's and the start time (printed), so a
client that reconnects after a restart never gets the first server's events again; with
`--keep-seed` it does, byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyvisa

from cryodaq.drivers.adc import Adc16
from tests.served import serve_sim

RIG = Path(__file__).resolve().parents[1] / "config" / "rigs" / "mmc_simple_sim.yaml"


def _served_block(*options: str) -> tuple[str, np.ndarray]:
    """Start serve-sim, read one block of adc1 channel 1, stop it: its serving line, the data."""
    with serve_sim(RIG, "--any-port", *options) as served:
        rm = pyvisa.ResourceManager("@py")
        adc = Adc16.open(rm, served.addresses["adc1"], name="adc1", timeout_s=5.0)
        try:
            for ch in adc.channel_ids:
                adc.channel(ch).enabled = ch == 1
            adc.start()
            data = adc.fetch(4096).codes[0].copy()
            adc.stop()
        finally:
            adc.close()
        return served.serving, data


def test_a_restarted_server_serves_new_events_unless_told_to_keep_the_seed() -> None:
    first_line, first = _served_block()
    second_line, second = _served_block()
    assert first_line.startswith("serving (world seed ") and first_line != second_line
    assert not np.array_equal(first, second)  # a new stretch: other noise, other pulses
    kept = [_served_block("--keep-seed") for _ in range(2)]
    assert kept[0][0] == kept[1][0] == "serving (world seed 1; Ctrl-C to stop)"
    assert np.array_equal(kept[0][1], kept[1][1])  # the rig's own seed: the same events
