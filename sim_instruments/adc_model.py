"""Physics behind the simulated 16-channel ADC: it digitises signals of the World."""

from __future__ import annotations

import re
from typing import Any

import numba
import numpy as np

from cryodaq.sim_instruments.blocks import stream_block
from cryodaq.sim_instruments.device import Handler, SCPIError
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.streaming import SampleStream, fetch_window
from cryodaq.sim_instruments.world import Signal, World

FULL_SCALE = 32767


@numba.njit(cache=True, nogil=True)
def _digitise(volts, scale, noise, noise_lsb, out):  # pragma: no cover - numba
    """Codes = round(volts * scale + normal * noise_lsb), normals from the Generator `noise`
    (none drawn if noise_lsb is 0), clipped to int16; empty `volts` are 0."""
    for i in range(out.shape[0]):
        x = 0.0
        if volts.shape[0]:
            x = volts[i] * scale
        if noise_lsb != 0.0:
            x += noise.standard_normal() * noise_lsb
        x = round(x)
        out[i] = min(max(x, -FULL_SCALE - 1), FULL_SCALE)


class AdcModel(SimModel):
    """Digitises, per channel, a World signal named in `inputs` (channel -> signal name).

    Samples accumulate in an on-board buffer of `buffer_samples` per channel from `ACQ:RUN 1`
    on; a reader slower than the clock loses the oldest ones, and the next block's first-sample
    counter jumps by the number lost. Unwired channels carry the ADC's own noise.
    """

    device_name = "adc16"

    def __init__(self, world: World, name: str, params: dict[str, Any] | None = None) -> None:
        super().__init__(world, name, params)
        inputs = self.params.get("inputs") or {}
        if isinstance(inputs, list):
            inputs = {i + 1: s for i, s in enumerate(inputs)}
        self.inputs = {int(ch): str(sig) for ch, sig in inputs.items() if sig}
        self.stream = SampleStream(int(self.params.get("buffer_samples", 1 << 24)))
        self.noise_lsb = float(self.params.get("noise_lsb", 0.7))
        # One stream per channel: a channel's noise does not depend on which others are on.
        self._rngs = dict(zip(range(1, 17), world.rng(f"{name}.adc_noise").spawn(16), strict=True))

    def commands(self) -> dict[str, Handler]:
        return {
            r"FETC\?\s+(\S+)": self._fetch,
            r"ACQ:COUN\?": lambda m: str(self.stream.next),
            r"ACQ:AVA\?": lambda m: str(self._available()),
        }

    def check_setting(self, name: str, ch: str | None, value: Any) -> None:
        if name == "sample_rate" and self.setting("running"):
            raise SCPIError(-221, "Settings conflict; stop acquisition (ACQ:RUN 0) first")

    def on_setting(self, name: str, ch: str | None, value: Any) -> None:
        if name == "running" and value:
            self.stream.start(self.world.now())

    def _available(self) -> int:
        if not self.setting("running"):
            return 0
        return self.stream.available(self.world.now(), self.setting("sample_rate"))

    def _signal(self, ch: int) -> Signal | None:
        name = self.inputs.get(ch)
        return None if name is None else self.world.signal(name)

    def _fetch(self, match: re.Match[str]) -> bytearray:
        if not self.setting("running"):
            raise SCPIError(-221, "Settings conflict; acquisition not running (ACQ:RUN 1)")
        rate = self.setting("sample_rate")
        first, t0, n = fetch_window(self.stream, self.world, match.group(1), rate)
        channels = [
            int(c) for c in self.device.channel_ids("channel") if self.setting("enabled", c)
        ]
        scale = FULL_SCALE / self.setting("input_range")
        codes = np.empty((len(channels), n), dtype=np.int16)
        nothing = np.zeros(0)
        for row, ch in enumerate(channels):
            signal, noise_lsb = self._signal(ch), self.noise_lsb
            digitise = getattr(signal, "digitise", None)
            if digitise is not None and digitise(t0, n, rate, scale, noise_lsb, codes[row]):
                continue  # the signal rendered its codes, with this ADC's noise, itself
            if signal is None:
                volts = nothing
            elif noise_lsb > 0 and hasattr(signal, "block_with_noise"):
                # The signal adds this ADC's input noise to its own (one normal per sample).
                volts = signal.block_with_noise(t0, n, rate, noise_lsb / scale)
                noise_lsb = 0.0
            else:
                volts = signal.block(t0, n, rate)
            _digitise(volts, scale, self._rngs[ch], noise_lsb, codes[row])
        self.stream.next = first + n
        return stream_block(first, channels, codes)
