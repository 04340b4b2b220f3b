"""MMC pixels from the rig's physical parameters: the keys of a detector entry turned into the
thermodynamic model of `cryodaq.analysis.mmc_thermo`, and what the simulator draws from it
per event (pulse heights and shapes at the chip temperature) and per channel (noise sections).

Keys (SI numbers, names carry units; every one has a documented default, see `KEYS`): the
absorber (`absorber_um`, `absorber_thickness_um`, Au), the sensor (`sensor_um`,
`sensor_thickness_um`, `sensor_host` Ag or Au, `er_ppm`, `weiss_uK_per_ppm`), the meander
(`persistent_current_mA`, `meander_pitch_um`, `geometry_factor`, `flux_transfer`), the
thermal links (`stem_resistance_mohm`, `link_resistance_mohm`, Wiedemann-Franz), the noise
(`er_noise_muB2_per_hz`, `squid_white_phi0_per_rthz` and `squid2_white_phi0_per_rthz` with
`squid_flux_gain` for the two stages, `squid_onef_phi0_per_rthz` at 1 Hz), the spreads from
pixel to pixel (`resistance_spread`, `thickness_spread`: relative rms of the link resistances
and of the sensor thickness) and the broadening that grows with energy: `athermal_loss`, the
fraction of a photon's energy that escapes as athermal phonons through the stems when it is
absorbed right above them; the hit position relative to the stems is uniform, so a photon
loses athermal_loss x u of its energy, u uniform in [0, 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cryodaq.analysis import mmc_thermo as thermo
from cryodaq.sim_instruments.params import number

#: key: (default, low, high, MmcDesign field, factor to SI).
KEYS: dict[str, tuple[float, float, float, str, float]] = {
    "absorber_um": (500.0, 1.0, 1e4, "absorber_side_m", 1e-6),
    "absorber_thickness_um": (20.0, 0.01, 1e3, "absorber_thickness_m", 1e-6),
    "sensor_um": (300.0, 1.0, 1e4, "sensor_side_m", 1e-6),
    "sensor_thickness_um": (1.5, 0.01, 100.0, "sensor_thickness_m", 1e-6),
    "er_ppm": (400.0, 1.0, 1e4, "er_ppm", 1.0),
    "weiss_uK_per_ppm": (2.5, 0.0, 100.0, "weiss_K_per_ppm", 1e-6),
    "persistent_current_mA": (70.0, 0.01, 1e3, "current_A", 1e-3),
    "meander_pitch_um": (7.0, 0.1, 1e3, "pitch_m", 1e-6),
    "geometry_factor": (0.4, 1e-3, 1.0, "geometry_factor", 1.0),
    "flux_transfer": (0.016, 1e-5, 1.0, "flux_transfer", 1.0),
    "stem_resistance_mohm": (1.18, 1e-4, 1e6, "stem_resistance_ohm", 1e-3),
    "link_resistance_mohm": (85.4, 1e-3, 1e8, "link_resistance_ohm", 1e-3),
    "er_noise_muB2_per_hz": (0.1, 0.0, 1e3, "er_noise_muB2_per_hz", 1.0),
}
#: The slow Lorentzians of a channel's two pixels are merged if their decay times are this
#: close (ratio); a corner's small and large pixels are not.
MERGE_SPREAD = 1.1
#: Rise of a hit in the sensor itself (electron-spin relaxation, Korringa: ~100 ns).
SENSOR_RISE_S = 1e-7


def _merged(levels: np.ndarray, taus: np.ndarray) -> tuple[float, float]:
    """Lorentzians of close time constants as one (level, tau) of the same low-frequency
    level and variance: an error of order (relative spread of tau)^2 in its shape."""
    level = float(np.sum(levels))
    return level, (level / float(np.sum(levels / taus)) if level > 0 else 0.0)


def peak_norm(rise: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """Maximum of exp(-t/decay) - exp(-t/rise) (numpy, elementwise)."""
    tp = rise * decay / (decay - rise) * np.log(decay / rise)
    return np.exp(-tp / decay) - np.exp(-tp / rise)


class PixelModel:
    """`n` pixels of one design (per-pixel spreads drawn from `rng`), `sensor_um` per pixel
    optionally overridden by `sensor_side_um`."""

    def __init__(self, p: Mapping[str, Any], where: str, n: int, rng: np.random.Generator,
                 sensor_side_um: np.ndarray | None = None) -> None:
        fields: dict[str, Any] = {}
        for key, (default, lo, hi, field, si) in KEYS.items():
            fields[field] = np.full(n, number(p, key, default, where, lo, hi) * si)
        host = str(p.get("sensor_host", "Ag"))
        if host not in thermo.METALS:
            raise ValueError(f"{where}.sensor_host must be one of Ag, Au, got {host!r}")
        if sensor_side_um is not None:
            fields["sensor_side_m"] = np.asarray(sensor_side_um, dtype=float) * 1e-6
        spread_r = number(p, "resistance_spread", 0.03, where, 0.0, 0.3)
        spread_t = number(p, "thickness_spread", 0.02, where, 0.0, 0.3)
        for field in ("stem_resistance_ohm", "link_resistance_ohm"):
            fields[field] = fields[field] * np.exp(spread_r * rng.standard_normal(n))
        fields["sensor_thickness_m"] = fields["sensor_thickness_m"] * np.exp(
            spread_t * rng.standard_normal(n))
        self.design = thermo.MmcDesign(host=host, **fields)
        self.n = n
        self.athermal_loss = number(p, "athermal_loss", 1.0e-3, where, 0.0, 0.5)
        white = thermo.squid_white_density(
            number(p, "squid_white_phi0_per_rthz", 0.4e-6, where, 0.0),
            number(p, "squid2_white_phi0_per_rthz", 1.5e-6, where, 0.0),
            number(p, "squid_flux_gain", 4.0, where, 1e-3))
        onef = number(p, "squid_onef_phi0_per_rthz", 1.0e-6, where, 0.0) ** 2
        self.readout = thermo.ChannelNoise(white, onef)

    def subset(self, idx: np.ndarray) -> thermo.MmcDesign:
        """The design of pixels `idx` (arrays of the same length as idx)."""
        d = self.design
        return thermo.MmcDesign(**{
            f: (getattr(d, f)[idx] if isinstance(getattr(d, f), np.ndarray) else getattr(d, f))
            for f in d.__dataclass_fields__
        })

    def response(self, chip_K: float | np.ndarray, idx: np.ndarray | None = None
                 ) -> thermo.PixelResponse:
        """Small-signal responses of pixels `idx` (all) at `chip_K` (scalar or per pixel)."""
        d = self.design if idx is None else self.subset(idx)
        return thermo.response(d, chip_K)

    def absorber_hits(self, px: np.ndarray, energy_eV: np.ndarray, chip_K: np.ndarray,
                      position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(peak height Phi_0 > 0, rise s, decay s) of photons absorbed in the absorbers of
        pixels `px` at the chip temperatures `chip_K`; `position` u in [0, 1) (athermal
        loss, module docstring)."""
        d = self.subset(px)
        body = thermo.two_body(d, chip_K)
        deposited = energy_eV * (1.0 - self.athermal_loss * position)
        return thermo.peak_height_phi0(d, chip_K, deposited), body.rise_s, body.decay_s

    def sensor_hits(self, px: np.ndarray, energy_eV: np.ndarray, chip_K: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Energy deposited in the sensors themselves: T_2 jumps, then relaxes with the rise
        to the decay. Returns (coefficient of exp(-t/decay), of exp(-t/rise) in Phi_0,
        rise, decay), the nonlinearity of an absorber hit of that energy applied."""
        d = self.subset(px)
        r = thermo.response(d, chip_K)
        b_d, b_r = r.body.sensor_response()
        e = np.maximum(energy_eV, 1e-9)
        ratio = thermo.peak_height_phi0(d, chip_K, e) / (r.phi0_per_eV * e)
        scale = e * thermo.E_CHARGE * r.phi0_per_K * ratio
        return scale * b_d, scale * b_r, r.rise_s, r.decay_s

    def moment_flux(self, chip_K: float | np.ndarray) -> np.ndarray:
        """SQUID flux (Phi_0) of each pixel's sensor moment at `chip_K` (absolute)."""
        return thermo.meander_coupling(self.design) * thermo.moment(self.design, chip_K)

    def channel_noise(self, pixels: list[int], chip_K: float, factor: float = 1.0
                      ) -> tuple[float, float, list[tuple[float, float]], tuple[float, float]]:
        """(white Phi_0/rtHz, 1/f Phi_0^2/Hz at 1 Hz, slow Lorentzians [(level, tau)], the
        fast Lorentzians merged (level, tau)) of a channel reading `pixels`; `factor` scales
        the SQUID's noise (a noisy channel)."""
        r = self.response(chip_K, np.asarray(pixels))
        ld, lr = r.thermal_levels()
        onef = self.readout.onef_phi0sq_at_1hz * factor**2 + float(np.sum(r.er_onef_phi0sq))
        decay = np.asarray(r.decay_s, dtype=float)
        if decay.max() <= MERGE_SPREAD * decay.min():  # one Lorentzian for both (cheaper)
            slow = [_merged(ld, decay)]
        else:
            slow = [(float(level), float(tau)) for level, tau in zip(ld, decay, strict=True)]
        return self.readout.white_phi0_per_rthz * factor, onef, slow, _merged(lr, r.rise_s)

    def channel_psd(self, pixels: list[int], chip_K: float, f_hz: np.ndarray,
                    factor: float = 1.0) -> np.ndarray:
        """The model's total flux PSD (Phi_0^2/Hz) of a channel reading `pixels`."""
        readout = thermo.ChannelNoise(self.readout.white_phi0_per_rthz * factor,
                                      self.readout.onef_phi0sq_at_1hz * factor**2)
        rs = [self.response(chip_K, np.array([i])) for i in pixels]
        return thermo.channel_psd(f_hz, [_scalar(r) for r in rs], readout)

    def baseline_fwhm_eV(self, pixel: int, pixels: list[int], chip_K: float,
                         factor: float = 1.0, top_hz: float = 250e3) -> float:
        """The model's optimal-filter limit (eV FWHM, infinite record, frequencies up to
        `top_hz`) of `pixel` in the noise of its channel reading `pixels`."""
        f = thermo.resolution_grid(top_hz)
        psd = self.channel_psd(pixels, chip_K, f, factor)
        return thermo.resolution_fwhm_eV(_scalar(self.response(chip_K, np.array([pixel]))),
                                         psd, f)


def _scalar(r: thermo.PixelResponse) -> thermo.PixelResponse:
    """A one-pixel response with scalar fields."""
    b = r.body
    one = thermo.TwoBody(*(float(np.ravel(x)[0]) for x in (b.c1, b.c2, b.g_s, b.g_b)))
    return thermo.PixelResponse(float(np.ravel(r.temperature_K)[0]), one,
                                float(np.ravel(r.phi0_per_K)[0]),
                                float(np.ravel(r.phi0_per_eV)[0]),
                                float(np.ravel(r.er_onef_phi0sq)[0]))
