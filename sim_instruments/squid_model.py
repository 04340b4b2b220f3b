"""Physics behind the simulated SQUID FLL electronics.

Each channel reads one SQUID whose input flux comes from a detector of the World. In FLL mode
and locked, the output is V = Phi * R_f * (1/M_f), low-passed at the loop's bandwidth
(gain-bandwidth product times `bandwidth_per_gbp`). In AMP mode the output is the SQUID's
periodic V-Phi characteristic. An unlocked loop passes no signal, only amplifier noise.
A loop locks when it is put into FLL mode or reset (`CH<n>:RES`) with the bias current inside
the SQUID's working window; moving the bias out of the window loses lock.
"""

from __future__ import annotations

import re
from typing import Any

import numba
import numpy as np

from cryodaq.sim_instruments.device import Handler, SCPIError
from cryodaq.sim_instruments.mmc_array import MmcChannel, mmc_array
from cryodaq.sim_instruments.mmc_pixel_source import MmcPixelSource
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.pulse_source import PulseSource
from cryodaq.sim_instruments.squid_detectors import squid_source
from cryodaq.sim_instruments.world import World


@numba.njit(cache=True, nogil=True)
def _fll_output(flux, gain, a, state, noise, sigma):  # pragma: no cover - numba
    """In place: flux -> V = flux * gain through the one-pole low-pass y = (1 - a) x + a y[-1]
    (filter state `state[0]` = a y[-1], updated), plus `sigma` times normals of `noise`."""
    z = state[0]
    b = 1.0 - a
    for i in range(flux.shape[0]):
        y = b * (flux[i] * gain) + z
        z = a * y
        flux[i] = y + noise.standard_normal() * sigma
    state[0] = z


@numba.njit(cache=True, nogil=True)
def _add_normal(out, noise, sigma):  # pragma: no cover - numba
    for i in range(out.shape[0]):
        out[i] += noise.standard_normal() * sigma


class SquidChannelOutput:
    """The analog output of one FLL channel, as the World's signal `<instrument>.ch<n>`."""

    def __init__(self, model: SquidModel, ch: str) -> None:
        self.model = model
        self.ch = ch
        self.source: PulseSource | MmcChannel | MmcPixelSource | None = None
        self._filter_state: np.ndarray | None = None
        self._rate = 0.0
        self._noise = model.world.rng(f"{model.name}.ch{ch}.amplifier")

    def reset_loop(self) -> None:
        self._filter_state = None

    def _flux(self, t0: float, n: int, rate_hz: float) -> np.ndarray:
        if self.source is None:
            return np.zeros(n)
        return self.source.block(t0, n, rate_hz)

    def _fll(self, rate_hz: float) -> tuple[float, float]:
        """(V per Phi0, pole a of the loop's low-pass at `rate_hz`)."""
        m = self.model
        gain = m.setting("feedback_resistor", self.ch) * m.feedback_A_per_phi0
        f3db = m.setting("gain_bandwidth", self.ch) * m.bandwidth_per_gbp
        return gain, float(np.exp(-2 * np.pi * f3db / rate_hz))

    def digitise(
        self, t0: float, n: int, rate_hz: float, codes_per_V: float, noise_lsb: float,
        out: np.ndarray,
    ) -> bool:
        """Fill `out` (int16) with an ADC's codes of this output in one pass, if the source
        renders codes itself (`MmcChannel`, `MmcPixelSource`) and the loop is locked with a
        bandwidth far above `rate_hz`; the amplifier's and the ADC's (`noise_lsb`) white
        noise are part of the channel's total. Returns False (nothing done) otherwise."""
        m = self.model
        source = self.source
        if not isinstance(source, MmcChannel | MmcPixelSource) or m.setting(
                "mode", self.ch) != "FLL":
            return False
        gain, a = self._fll(rate_hz)
        if not m.locked[self.ch] or gain <= 0 or 1.0 - a != 1.0:
            return False
        electronics = float(np.hypot(m.amplifier_noise_V, noise_lsb / codes_per_V)) / gain
        source.codes(t0, n, rate_hz, gain * codes_per_V, electronics, out)
        if n:
            self._filter_state = np.array([a * out[-1] / codes_per_V])
            self._rate = rate_hz
        return True

    def block_with_noise(self, t0: float, n: int, rate_hz: float, sigma_V: float) -> np.ndarray:
        """`block` plus independent white Gaussian noise of rms `sigma_V` (a digitiser's).

        Locked, with the loop's bandwidth so far above the sample rate that its low-pass is the
        identity in float64 (1 - a == 1), the output is gain x (pulses + 1/f + white flux
        noise) + amplifier noise + `sigma_V` noise: the three white terms are independent
        Gaussians, so one normal per sample of their summed variance (from the amplifier's
        stream) has the same distribution, at a third of the cost."""
        m = self.model
        if self.source is not None and m.setting("mode", self.ch) == "FLL" and m.locked[self.ch]:
            gain, a = self._fll(rate_hz)
            if gain > 0 and 1.0 - a == 1.0:
                white = self.source.white_sigma(rate_hz) ** 2
                sigma = np.sqrt(white + (m.amplifier_noise_V**2 + sigma_V**2) / gain**2)
                out = self.source.block(t0, n, rate_hz, self._noise, float(sigma))
                out *= gain
                if n:
                    self._filter_state = np.array([a * out[-1]])
                    self._rate = rate_hz
                return out
        out = self.block(t0, n, rate_hz)
        _add_normal(out, self._noise, sigma_V)
        return out

    def block(self, t0: float, n: int, rate_hz: float) -> np.ndarray:
        """Output voltage at t0 + i / rate_hz."""
        m = self.model
        flux = self._flux(t0, n, rate_hz)
        mode = m.setting("mode", self.ch)
        if mode == "AMP" or not m.locked[self.ch]:
            noise = self._noise.standard_normal(n) * m.amplifier_noise_V
        if mode == "AMP":
            phi_bias = m.setting("flux_bias", self.ch) * m.phi0_per_A_bias
            swing = m.swing_V(self.ch)
            return (
                swing / 2 * np.sin(2 * np.pi * (flux + phi_bias))
                - m.setting("voltage_bias", self.ch) * m.amp_gain
                + noise
            )
        if not m.locked[self.ch]:
            return noise
        gain, a = self._fll(rate_hz)
        if self._filter_state is None or self._rate != rate_hz:
            self._filter_state = np.array([a * flux[0] * gain if n else 0.0])
            self._rate = rate_hz
        _fll_output(flux, gain, a, self._filter_state, self._noise, m.amplifier_noise_V)
        return flux


class SquidModel(SimModel):
    """Multi-channel FLL electronics; channel n reads detector `detectors[n]` (or `detector`),
    or channel n of the World's detector array `array` (e.g. `mmc`, `mmc_array`)."""

    device_name = "squid32"

    def __init__(self, world: World, name: str, params: dict[str, Any] | None = None) -> None:
        super().__init__(world, name, params)
        p = self.params
        self.feedback_A_per_phi0 = float(p.get("feedback_A_per_phi0", 44e-6))
        self.phi0_per_A_bias = float(p.get("phi0_per_A_flux_bias", 1 / 40e-6))
        self.amp_gain = float(p.get("amplifier_gain", 1000.0))
        self.amplifier_noise_V = float(p.get("amplifier_noise_V", 2e-5))
        self.bandwidth_per_gbp = float(p.get("bandwidth_per_gbp", 5e-3))
        rng = world.rng(f"{name}.squids")
        ic_nominal = float(p.get("critical_current_A", 20e-6))
        if not 0 < ic_nominal < 1.8e-4 / 2.5:
            raise ValueError(
                f"{name}.critical_current_A must be in (0, 72 uA) so the bias window fits the "
                f"0..180 uA bias range, got {ic_nominal:g} A"
            )
        self.ids = [str(i) for i in range(1, 33)]
        self.critical_current = {
            ch: ic_nominal * (1 + 0.05 * rng.standard_normal()) for ch in self.ids
        }
        self.locked = dict.fromkeys(self.ids, False)
        self.outputs = {ch: SquidChannelOutput(self, ch) for ch in self.ids}
        default_kind = p.get("detector")
        per_channel = {str(k): v for k, v in (p.get("detectors") or {}).items()}
        for ch, output in self.outputs.items():
            kind = per_channel.get(ch, default_kind)
            if kind:
                output.source = squid_source(world.params, kind, world.rng(f"{name}.ch{ch}"),
                                             world)
            world.register_signal(f"{name}.ch{ch}", output)
        if p.get("array"):
            array = mmc_array(world, str(p["array"]))
            for ch, output in self.outputs.items():
                output.source = array.channel(int(ch))

    def swing_V(self, ch: str) -> float:
        """Peak-to-peak of the V-Phi curve: largest at 1.5 I_c, zero outside the window."""
        x = self.setting("bias_current", ch) / self.critical_current[ch]
        return 0.0 if not 1.0 < x < 2.5 else self.amp_gain * 50e-6 * (1 - abs(x - 1.5) / 1.0)

    def _in_window(self, ch: str) -> bool:
        return self.swing_V(ch) > 0

    def _try_lock(self, ch: str) -> None:
        self.locked[ch] = self.setting("mode", ch) == "FLL" and self._in_window(ch)
        self.outputs[ch].reset_loop()

    def commands(self) -> dict[str, Handler]:
        return {
            r"CH(\d+):LOCK\?": lambda m: "1" if self.locked[self._ch(m)] else "0",
            r"CH(\d+):RES": self._reset_channel,
        }

    def _ch(self, match: re.Match[str]) -> str:
        ch = match.group(1)
        if ch not in self.locked:
            raise SCPIError(-114, f"Header suffix out of range; no channel {ch}")
        return ch

    def _reset_channel(self, match: re.Match[str]) -> None:
        ch = self._ch(match)
        if self.setting("mode", ch) != "FLL":
            raise SCPIError(-221, f"Settings conflict; channel {ch} is not in FLL mode")
        self._try_lock(ch)

    def on_setting(self, name: str, ch: str | None, value: Any) -> None:
        if ch is None:
            return
        if name == "mode":
            self._try_lock(ch)
        elif name == "bias_current" and not self._in_window(ch):
            self.locked[ch] = False

    def on_reset(self) -> None:
        for ch in self.ids:
            self.locked[ch] = False
            self.outputs[ch].reset_loop()
