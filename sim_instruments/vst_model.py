"""Physics behind the simulated vector signal transceiver (VST) of a haloscope chain.

The VST looks through a cryogenic amplification chain at a microwave cavity whose antenna
also sees the noise of an attenuator (Chang et al. 2024, Fig. 1b). Its power spectrum and its
reflection sweep are those of `haloscope_chain` (the cavity-emitted radiation through the
lossy chain: cables 1-3, circulator, HEMT plate; S11 through the input line, the circulator
and the chain), shared with the simulated signal analyser and VNA of the same World. Beside
them the VST has a CW source whose tone lands in its spectrum, and the Y-factor
configuration's cryogenic switch. A capture takes its integration time on the World's clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.analysis.cavity_chain import load_spectrum
from cryodaq.sim_instruments.blocks import array_block
from cryodaq.sim_instruments.device import Handler, SCPIError
from cryodaq.sim_instruments.haloscope_chain import (
    DEFAULT_CAVITY,
    DEFAULT_CHAIN,
    DEFAULT_CHAIN_EXTRAS,
    RIPPLE_PERIODS,
    RIPPLE_WEIGHTS,
    Capture,
    HaloscopeChain,
    radiometer_draw,
)
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.params import number
from cryodaq.sim_instruments.world import World

__all__ = [
    "DEFAULT_CAVITY", "DEFAULT_CHAIN", "DEFAULT_CHAIN_EXTRAS", "RIPPLE_PERIODS",
    "RIPPLE_WEIGHTS", "VstModel",
]  # fmt: skip
#: Cryogenic switch of the Y-factor configuration (Fig. 1a): relative transmission of the load's
#: path, heat (J) dissipated per actuation into the switch's plate.
DEFAULT_SWITCH = {"path_A": 1.0, "heat_J": 0.0}
SWITCH_POSITIONS = ("CAVITY", "LOAD")
#: Frequency coverage of the instrument and the largest spectrum one capture returns.
F_MIN_HZ, F_MAX_HZ = 9e3, 6e9
MAX_BINS = 1 << 20


@dataclass
class _ToneCapture:
    """A spectrum capture in progress and the source's tone in it."""

    capture: Capture
    tone_bin: int = -1
    tone_W: float = 0.0


@dataclass(frozen=True)
class _Sweep:
    """An S11 sweep in progress."""

    start_s: float
    f: np.ndarray
    rbw_Hz: float
    source_W: float


class VstModel(SimModel, HaloscopeChain):
    """Power spectra and S11 of a haloscope cavity behind an amplification chain.

    World and instrument params: those of `HaloscopeChain` (cavity, chain, cables and
    circulator; attenuator and cavity plates, input line, thermal sampling). `switch` {path_A,
    heat_J, plate} is the Y-factor configuration's cryogenic switch at the cavity's port
    (setting `switch` CAVITY | LOAD): on LOAD the chain sees a black-body load (plate
    `load_plate`, default "load") through an extra path of transmission `path_A` at the switch
    body's temperature (plate `plate` if given, else the mixing plate); each actuation dumps
    `heat_J` into the switch's plate.
    """

    device_name = "vst"

    def __init__(self, world: World, name: str, params: Mapping[str, Any] | None = None) -> None:
        SimModel.__init__(self, world, name, params)
        HaloscopeChain.__init__(self, world, name, self.params)
        sw = world.params.get("switch") or {}
        ds = DEFAULT_SWITCH
        self.switch_path_A = number(sw, "path_A", ds["path_A"], "world.switch", 1e-6, 1.0)
        self.switch_heat_J = number(sw, "heat_J", ds["heat_J"], "world.switch", 0.0, 10.0)
        self.switch_plate: str | None = None
        if sw.get("plate") is not None:
            self.switch_plate = str(sw["plate"])
            if self.switch_plate not in world.thermal.names():
                raise ValueError(
                    f"world.switch.plate: no plate {self.switch_plate!r} in world.thermal "
                    f"(plates: {', '.join(world.thermal.names())})"
                )
        if self.switch_heat_J > 0.0 and self.switch_plate in (None, "mixing"):
            raise ValueError("world.switch.heat_J > 0 needs world.switch.plate (a thermal plate)")
        self._switch_position = SWITCH_POSITIONS[0]
        self.load_plate = str(self.params.get("load_plate", "load"))
        self._spectrum_rng = world.rng(f"{name}.spectrum")
        self._s11_rng = world.rng(f"{name}.s11")
        self._capture: _ToneCapture | None = None
        self._sweep: _Sweep | None = None

    # -- SCPI -------------------------------------------------------------------------------

    def commands(self) -> dict[str, Handler]:
        return {
            r"INIT:SPEC": self._init_spectrum,
            r"FETC:SPEC\?": self._fetch_spectrum,
            r"INIT:SWE": self._init_sweep,
            r"FETC:SWE\?": self._fetch_sweep,
        }

    def on_reset(self) -> None:
        self._capture = None
        self._sweep = None
        self._actuate(str(self.setting("switch")))

    def check_setting(self, name: str, ch: str | None, value: Any) -> None:
        if (
            name == "switch"
            and str(value).upper() == "LOAD"
            and self.load_plate not in self.world.thermal.names()
        ):
            raise SCPIError(
                -221, f"Settings conflict; no load plate {self.load_plate!r} in world.thermal"
            )
        super().check_setting(name, ch, value)

    def on_setting(self, name: str, ch: str | None, value: Any) -> None:
        if name == "switch":
            self._actuate(str(value))

    def _actuate(self, position: str) -> None:
        """Move the switch; a real move dissipates `heat_J` into the switch's plate."""
        position = position.upper()
        if position == self._switch_position:
            return
        self._switch_position = position
        if self.switch_heat_J > 0.0 and self.switch_plate is not None:
            self.world.thermal.deposit(self.switch_plate, self.switch_heat_J)

    @property
    def switch_position(self) -> str:
        return self._switch_position

    # -- physics ------------------------------------------------------------------------------

    def noise_power(self, f: np.ndarray, bin_Hz: float) -> np.ndarray:
        """Eqs 5-9: received noise power (W) per bin (`cavity_noise`); with the switch on
        LOAD, the load's black body through the path difference instead (`load_spectrum`)."""
        if self._switch_position != "LOAD":
            return self.cavity_noise(f, bin_Hz)
        thermal = self.world.thermal
        switch_K = None if self.switch_plate is None else thermal.temperature(self.switch_plate)
        power = load_spectrum(
            f, thermal.temperature(self.load_plate), self.temperatures(), self.losses,
            self.chain.gain_dB, self.chain.added_noise_K, bin_Hz,
            path_A=self.switch_path_A, switch_K=switch_K,
        )  # fmt: skip
        return self.varied(f, power)

    def _source_W(self) -> float:
        return 1e-3 * 10.0 ** (self.setting("source_power") / 10.0)

    # -- spectrum -----------------------------------------------------------------------------

    def _init_spectrum(self, match: re.Match[str]) -> None:
        """Start a capture of `integration_time` now, with the present settings."""
        centre, span = self.setting("centre_frequency"), self.setting("span")
        rbw, tau = self.setting("rbw"), self.setting("integration_time")
        n = round(span / rbw)
        if n < 1:
            raise SCPIError(-221, f"Settings conflict; span {span:g} Hz below RBW {rbw:g} Hz")
        if n > MAX_BINS:
            raise SCPIError(-221, f"Settings conflict; span/RBW = {n} bins > {MAX_BINS}")
        if centre - span / 2 < F_MIN_HZ or centre + span / 2 > F_MAX_HZ:
            raise SCPIError(
                -221, f"Settings conflict; span leaves {F_MIN_HZ:g} .. {F_MAX_HZ:g} Hz"
            )
        bin_hz = span / n
        if bin_hz * tau < 1.0:
            raise SCPIError(
                -221, f"Settings conflict; integration {tau:g} s below 1/RBW = {1 / bin_hz:g} s"
            )
        f = centre - span / 2 + (np.arange(n) + 0.5) * bin_hz
        cap = _ToneCapture(self.capture(tau, f, bin_hz))
        if self.setting("output"):
            f_src = self.setting("source_frequency")
            cap.tone_bin = math.floor((f_src - (centre - span / 2)) / bin_hz)
            cap.tone_W = self.tone_power(f_src, self._source_W())
        self._capture = cap

    def _fetch_spectrum(self, match: re.Match[str]) -> bytearray:
        """Average power per bin over the integration time (W, float64 block).

        The mean follows the temperatures sampled through the capture; the scatter is that of
        B tau averaged periodograms (`radiometer_draw`). A CW tone from the source lands in
        its bin.
        """
        tone = self._capture
        if tone is None:
            raise SCPIError(-230, "Data stale; no spectrum initiated (INIT:SPEC first)")
        cap = tone.capture
        mean = cap.mean_power(self.world, self.noise_power)
        self._capture = None
        power = radiometer_draw(self._spectrum_rng, mean, cap.bin_Hz * cap.duration_s)
        if 0 <= tone.tone_bin < power.size:
            power[tone.tone_bin] += tone.tone_W
        return array_block(power)

    # -- reflection ---------------------------------------------------------------------------

    def _init_sweep(self, match: re.Match[str]) -> None:
        """Start an S11 sweep now: `sweep_points` from start to stop, 1/RBW per point."""
        if not self.setting("output"):
            raise SCPIError(-221, "Settings conflict; source output off (OUTP 1 first)")
        start, stop = self.setting("sweep_start"), self.setting("sweep_stop")
        if not stop > start:
            raise SCPIError(-221, f"Settings conflict; sweep stop {stop:g} <= start {start:g} Hz")
        f = np.linspace(start, stop, int(self.setting("sweep_points")))
        self._sweep = _Sweep(self.world.now(), f, self.setting("rbw"), self._source_W())

    def _fetch_sweep(self, match: re.Match[str]) -> bytearray:
        """S11 interleaved re/im float64 (`noisy_reflection`, the receiver's noise in the RBW)."""
        sweep = self._sweep
        if sweep is None:
            raise SCPIError(-230, "Data stale; no sweep initiated (INIT:SWE first)")
        self.world.reach(sweep.start_s + sweep.f.size / sweep.rbw_Hz)
        self._sweep = None
        noise = self.noise_power(sweep.f, sweep.rbw_Hz)
        s11 = self.noisy_reflection(sweep.f, noise, sweep.source_W, self._s11_rng)
        out = np.empty(2 * s11.size)
        out[0::2], out[1::2] = s11.real, s11.imag
        return array_block(out)
