"""Thermodynamic model of a metallic magnetic calorimeter (MMC) pixel (REFERENCE section 9).

Two bodies. Body 1: the Au absorber, electrons only, C_1 = gamma n T (gamma 0.729 mJ/(mol K^2),
molar volume 10.21 cm^3/mol). Body 2: the paramagnetic sensor, Er ions in Ag (or Au) at
concentration x, held at one temperature by the fast (Korringa) electron-spin coupling:
C_2 = C_z + gamma_host n_host T. Stems of electrical resistance R_s join the bodies and a
link of resistance R_b joins the sensor to the bath (the chip); both are normal metals, so
by Wiedemann-Franz G = L_0 T / R (L_0 = 2.44e-8 W Ohm/K^2).

Field and flux. The meander of pitch p carries the persistent current I; the sensor sees the
mean field B = mu_0 G I / p (G: the meander's dimensionless geometry factor, ~0.4 for a
sensor of thickness ~p/4). By reciprocity a moment m of the sensor puts Phi_m = mu_0 G m / p
into the meander, and the SQUID sees Phi_S = k Phi_m with the flux transfer
k = M_is / (L_m + 2 (L_i + L_w)) of two meanders in parallel with the input coil
(`flux_transfer`). So dPhi_m / dE_z = 1 / I for energy E_z = -m B given to the spins.

Spins. Er^3+ in a cubic noble metal: an effective spin-1/2 ground doublet with g = 6.8. Without
interactions m = N mu tanh(mu B / k_B T), mu = g mu_B / 2. Interactions (RKKY and dipolar)
are taken in mean field: the spins see T + theta, with a Weiss temperature proportional to
the concentration, theta = `weiss_K_per_ppm` x ppm (approx.: ~10 % less C_z and dm/dT at
20 mK and 400 ppm, as the full calculations of Fleischmann et al. give for such sensors).
C_z = -B dm/dT = N k_B y^2 / cosh^2 y, y = mu B / (k_B (T + theta)): the Schottky anomaly,
consistent with the Zeeman energy -m B being the spins' energy.

Small signal (at temperature T of chip and pixel): with A = [[-G_s/C_1, G_s/C_1],
[G_s/C_2, -(G_s + G_b)/C_2]] the eigenvalues -1/tau_r, -1/tau_d give rise and decay. Energy E
absorbed in the absorber gives T_2(t) = E G_s / (C_1 C_2) (e^{-t/tau_d} - e^{-t/tau_r}) /
(1/tau_r - 1/tau_d); energy in the sensor a jump E / C_2 relaxing to the decay with tau_r.
The flux follows T_2: Phi_S = k mu_0 G / p dm/dT T_2 (negative: heating lowers m; a
gradiometer's wiring gives each pixel its sign).

Large signal (nonlinearity): the peak keeps a fraction P of the energy (P = linear peak of
T_2 times C_1 + C_2 over E). Heights are k mu_0 G / p |m(T) - m(T_f)| P with T_f from energy
conservation, integral_T^T_f (C_1 + C_2) dT' = P E (the gold's gamma (T_f^2 - T^2)/2 plus the
Zeeman energy B (m(T) - m(T_f))): the temperature rise integrated through C(T) and M(T), not
a coefficient.

Noise (one-sided PSDs at the SQUID, Phi_0^2/Hz):
- thermodynamic energy fluctuations between the bodies: Langevin powers of 4 k_B T^2 G_s
  across the stems and 4 k_B T^2 G_b across the link through the two-body system; T_2's
  spectrum is two Lorentzians at tau_d and tau_r (`TwoBody.noise_levels`); for the canonical
  electrons-spins model this is REFERENCE's S_Ez;
- Er-spin 1/f: S_m(1 Hz) per ion (`er_noise_muB2_per_hz` mu_B^2/Hz, ~0.1, approx.) times the
  number of ions, through (k mu_0 G / p)^2, as 1/f (eta = 1);
- the two-stage SQUID: white S_1 + S_2 / G_Phi^2 (first stage, second stage referred through
  the flux gain) and the first stage's 1/f.
Resolution: sigma_E^-2 = integral 4 |P(f)|^2 / J(f) df (REFERENCE section 6) of the pulse per
eV and the total PSD (`resolution_fwhm_eV`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K_B = 1.380649e-23
MU_B = 9.2740100783e-24
MU_0 = 1.25663706212e-6
PHI_0 = 2.067833848e-15
N_A = 6.02214076e23
E_CHARGE = 1.602176634e-19
LORENZ = 2.44e-8  # W Ohm / K^2
G_ER = 6.8
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: Host metals: (Sommerfeld gamma J/(mol K^2), molar volume m^3/mol).
METALS = {"Au": (0.729e-3, 10.21e-6), "Ag": (0.646e-3, 10.27e-6)}


@dataclass(frozen=True)
class MmcDesign:
    """One pixel's physical parameters (SI). Any field may be an array (one value per pixel);
    functions broadcast."""

    absorber_side_m: float = 500e-6
    absorber_thickness_m: float = 20e-6
    sensor_side_m: float = 300e-6
    sensor_thickness_m: float = 1.5e-6
    er_ppm: float = 400.0
    host: str = "Ag"
    current_A: float = 70e-3
    pitch_m: float = 10e-6
    geometry_factor: float = 0.4
    flux_transfer: float = 0.02
    stem_resistance_ohm: float = 1.0e-3
    link_resistance_ohm: float = 0.08
    weiss_K_per_ppm: float = 2.5e-6
    er_noise_muB2_per_hz: float = 0.1

    def check(self) -> None:
        """ValueError naming a parameter out of range."""
        if self.host not in METALS:
            raise ValueError(f"sensor host must be one of {', '.join(METALS)}, got {self.host!r}")
        for name in ("absorber_side_m", "absorber_thickness_m", "sensor_side_m",
                     "sensor_thickness_m", "er_ppm", "current_A", "pitch_m", "geometry_factor",
                     "flux_transfer", "stem_resistance_ohm", "link_resistance_ohm"):
            if not np.all(np.asarray(getattr(self, name)) > 0):
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def field_T(d: MmcDesign) -> np.ndarray:
    """Mean field in the sensor, B = mu_0 G I / p."""
    return MU_0 * np.asarray(d.geometry_factor) * d.current_A / np.asarray(d.pitch_m)


def meander_coupling(d: MmcDesign) -> np.ndarray:
    """SQUID flux (Phi_0) per unit sensor moment (A m^2): k mu_0 G / p / Phi_0."""
    return d.flux_transfer * MU_0 * np.asarray(d.geometry_factor) / np.asarray(d.pitch_m) / PHI_0


def sensor_volume(d: MmcDesign) -> np.ndarray:
    return np.asarray(d.sensor_side_m) ** 2 * d.sensor_thickness_m


def spin_count(d: MmcDesign) -> np.ndarray:
    """Number of Er ions in the sensor."""
    return sensor_volume(d) / METALS[d.host][1] * N_A * np.asarray(d.er_ppm) * 1e-6


def _y(d: MmcDesign, t: np.ndarray) -> np.ndarray:
    theta = np.asarray(d.weiss_K_per_ppm) * d.er_ppm
    return G_ER * MU_B / 2.0 * field_T(d) / (K_B * (np.asarray(t) + theta))


def moment(d: MmcDesign, t: np.ndarray) -> np.ndarray:
    """Sensor moment m(T) (A m^2) along the field."""
    return spin_count(d) * G_ER * MU_B / 2.0 * np.tanh(_y(d, t))


def spin_heat_capacity(d: MmcDesign, t: np.ndarray) -> np.ndarray:
    """C_z = -B dm/dT (J/K)."""
    y = _y(d, t)
    return spin_count(d) * K_B * y**2 / np.cosh(y) ** 2


def heat_capacities(d: MmcDesign, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C_1 absorber, C_2 sensor: spins + host electrons), J/K."""
    gamma_au, vm_au = METALS["Au"]
    gamma_h, vm_h = METALS[d.host]
    t = np.asarray(t, dtype=float)
    c1 = gamma_au * np.asarray(d.absorber_side_m) ** 2 * d.absorber_thickness_m / vm_au * t
    c2 = spin_heat_capacity(d, t) + gamma_h * sensor_volume(d) / vm_h * t
    return c1, c2


def conductances(d: MmcDesign, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stems, link to the bath) in W/K, Wiedemann-Franz."""
    t = np.asarray(t, dtype=float)
    return LORENZ * t / np.asarray(d.stem_resistance_ohm), LORENZ * t / np.asarray(
        d.link_resistance_ohm)


@dataclass(frozen=True)
class TwoBody:
    """Linear two-body system: absorber (1) - stems G_s - sensor (2) - link G_b - bath, and
    an optional link G_1b of the absorber to the bath."""

    c1: np.ndarray
    c2: np.ndarray
    g_s: np.ndarray
    g_b: np.ndarray
    g_1b: np.ndarray | float = 0.0

    def _rates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a11 = -(self.g_s + self.g_1b) / self.c1
        a22 = -(self.g_s + self.g_b) / self.c2
        s = -(a11 + a22)
        det = a11 * a22 - self.g_s**2 / (self.c1 * self.c2)
        root = np.sqrt(s * s - 4.0 * det)
        return (s - root) / 2.0, (s + root) / 2.0, a11  # 1/tau_d, 1/tau_r

    @property
    def decay_s(self) -> np.ndarray:
        return 1.0 / self._rates()[0]

    @property
    def rise_s(self) -> np.ndarray:
        return 1.0 / self._rates()[1]

    def absorber_response(self) -> np.ndarray:
        """a (K/J): T_2(t) = E a (exp(-t/tau_d) - exp(-t/tau_r)) for E in the absorber."""
        rd, rr, _ = self._rates()
        return self.g_s / (self.c1 * self.c2) / (rr - rd)

    def sensor_response(self) -> tuple[np.ndarray, np.ndarray]:
        """(b_d, b_r) (K/J): T_2(t) = E (b_d exp(-t/tau_d) + b_r exp(-t/tau_r)) for E in
        the sensor."""
        rd, rr, a11 = self._rates()
        return (-rd - a11) / (self.c2 * (rr - rd)), (rr + a11) / (self.c2 * (rr - rd))

    def peak_fraction(self) -> np.ndarray:
        """Peak of T_2 for an absorber hit, times (C_1 + C_2) / E."""
        td, tr = self.decay_s, self.rise_s
        tp = tr * td / (td - tr) * np.log(td / tr)
        return self.absorber_response() * (np.exp(-tp / td) - np.exp(-tp / tr)) * (
            self.c1 + self.c2)

    def noise_levels(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """T_2's thermodynamic fluctuations as two Lorentzians, S(f) = L_d / (1 + (2 pi f
        tau_d)^2) + L_r / (1 + (2 pi f tau_r)^2): (L_d, L_r) in K^2/Hz."""
        rd, rr, _ = self._rates()
        c1, c2, gs, gb, g1 = self.c1, self.c2, self.g_s, self.g_b, self.g_1b
        scale = 4.0 * K_B * np.asarray(t, dtype=float) ** 2 / c2**2
        alpha = scale * (gs + gb)
        beta = scale / c1**2 * (gs * g1**2 + g1 * gs**2 + gb * (gs + g1) ** 2)
        a = (beta - alpha * rd**2) / (rr**2 - rd**2)
        b = (alpha * rr**2 - beta) / (rr**2 - rd**2)
        return a / rd**2, b / rr**2


def two_body(d: MmcDesign, t: np.ndarray) -> TwoBody:
    c1, c2 = heat_capacities(d, t)
    g_s, g_b = conductances(d, t)
    return TwoBody(c1, c2, g_s, g_b)


@dataclass(frozen=True)
class PixelResponse:
    """Small-signal response and noise of pixels at chip temperature `temperature_K`."""

    temperature_K: np.ndarray
    body: TwoBody
    phi0_per_K: np.ndarray  # SQUID flux per kelvin of the sensor (|k mu0 G/p dm/dT|)
    phi0_per_eV: np.ndarray  # peak height per eV, absorber hit, small signal
    er_onef_phi0sq: np.ndarray  # Er 1/f: S_Phi at 1 Hz (Phi_0^2/Hz)

    @property
    def rise_s(self) -> np.ndarray:
        return self.body.rise_s

    @property
    def decay_s(self) -> np.ndarray:
        return self.body.decay_s

    def thermal_levels(self) -> tuple[np.ndarray, np.ndarray]:
        """Thermodynamic noise at the SQUID: Lorentzian levels (Phi_0^2/Hz) at tau_d, tau_r."""
        ld, lr = self.body.noise_levels(self.temperature_K)
        return ld * self.phi0_per_K**2, lr * self.phi0_per_K**2

    def pulse_spectrum(self, f_hz: np.ndarray) -> np.ndarray:
        """|P(f)| of the pulse per eV (Phi_0 s / eV), absorber hit."""
        w = 2.0 * np.pi * np.asarray(f_hz)[..., None] if np.ndim(self.rise_s) else (
            2.0 * np.pi * np.asarray(f_hz))
        a = self.body.absorber_response() * self.phi0_per_K * E_CHARGE
        rd, rr = 1.0 / self.decay_s, 1.0 / self.rise_s
        return np.abs(a * (rr - rd) / ((1j * w + rd) * (1j * w + rr)))

    def thermal_psd(self, f_hz: np.ndarray) -> np.ndarray:
        w = 2.0 * np.pi * np.asarray(f_hz)[..., None] if np.ndim(self.rise_s) else (
            2.0 * np.pi * np.asarray(f_hz))
        ld, lr = self.thermal_levels()
        return ld / (1.0 + (w * self.decay_s) ** 2) + lr / (1.0 + (w * self.rise_s) ** 2)


def response(d: MmcDesign, t: np.ndarray) -> PixelResponse:
    """The pixels' small-signal response at temperature `t` (K)."""
    body = two_body(d, t)
    phi0_per_K = meander_coupling(d) * spin_heat_capacity(d, t) / field_T(d)
    peak = body.peak_fraction() / (body.c1 + body.c2)
    er = spin_count(d) * np.asarray(d.er_noise_muB2_per_hz) * MU_B**2 * meander_coupling(d) ** 2
    return PixelResponse(np.asarray(t, dtype=float), body, phi0_per_K,
                         phi0_per_K * peak * E_CHARGE, er)


def gain_per_K(d: MmcDesign, t: np.ndarray, dt_K: float = 1e-6) -> np.ndarray:
    """d ln(small-signal pulse height) / dT at chip temperature `t` (1/K)."""
    hi = response(d, np.asarray(t) + dt_K).phi0_per_eV
    lo = response(d, np.asarray(t) - dt_K).phi0_per_eV
    return (np.log(hi) - np.log(lo)) / (2.0 * dt_K)


def peak_height_phi0(d: MmcDesign, t: np.ndarray, energy_eV: np.ndarray,
                     iterations: int = 8) -> np.ndarray:
    """Peak flux (Phi_0, positive) of an absorber hit of `energy_eV` at chip temperature `t`,
    the temperature rise integrated through C(T) and m(T) (module docstring). Arrays
    broadcast (design fields, `t`, `energy_eV`)."""
    t = np.asarray(t, dtype=float)
    body = two_body(d, t)
    e = body.peak_fraction() * np.asarray(energy_eV, dtype=float) * E_CHARGE
    gamma = heat_capacities(d, 1.0)
    gamma_e = gamma[0] + gamma[1] - spin_heat_capacity(d, 1.0)  # electrons' C / T
    b = field_T(d)
    m0 = moment(d, t)
    tf = t + e / (body.c1 + body.c2)
    for _ in range(iterations):  # Newton on the energy balance
        f = gamma_e * (tf**2 - t**2) / 2.0 + b * (m0 - moment(d, tf)) - e
        c = gamma_e * tf + spin_heat_capacity(d, tf)
        tf = tf - f / c
    return meander_coupling(d) * (m0 - moment(d, tf))


def squid_white_density(first_phi0_per_rthz: float, second_phi0_per_rthz: float,
                        flux_gain: float) -> float:
    """White flux noise (Phi_0/rtHz) of a two-stage SQUID at the first stage's input."""
    return float(np.hypot(first_phi0_per_rthz, second_phi0_per_rthz / flux_gain))


@dataclass(frozen=True)
class ChannelNoise:
    """What a readout channel adds: SQUID white (Phi_0/rtHz) and 1/f (Phi_0^2/Hz at 1 Hz)."""

    white_phi0_per_rthz: float
    onef_phi0sq_at_1hz: float


def channel_psd(f_hz: np.ndarray, pixels: list[PixelResponse],
                readout: ChannelNoise) -> np.ndarray:
    """Total one-sided flux PSD (Phi_0^2/Hz) of a channel reading `pixels` (each a scalar
    response): their thermodynamic and Er 1/f noise plus the readout's."""
    f = np.asarray(f_hz, dtype=float)
    with np.errstate(divide="ignore"):
        onef = readout.onef_phi0sq_at_1hz + sum(float(p.er_onef_phi0sq) for p in pixels)
        out = readout.white_phi0_per_rthz**2 + onef / f
    for p in pixels:
        out = out + p.thermal_psd(f)
    return out


def resolution_fwhm_eV(pulse: PixelResponse, psd: np.ndarray, f_hz: np.ndarray) -> float:
    """Optimal-filter FWHM (eV): sigma^-2 = integral 4 |P|^2 / J df over `f_hz` (trapezoid;
    a fine grid from well below 1/(2 pi tau_d) to well above 1/(2 pi tau_r))."""
    f = np.asarray(f_hz, dtype=float)
    integrand = 4.0 * pulse.pulse_spectrum(f) ** 2 / psd
    info = float(np.sum((integrand[1:] + integrand[:-1]) * np.diff(f)) / 2.0)
    return FWHM_PER_SIGMA / np.sqrt(info)


def resolution_grid(top_hz: float) -> np.ndarray:
    """A log grid for `resolution_fwhm_eV` from 1e-3 Hz to `top_hz` (e.g. the Nyquist)."""
    return np.geomspace(1e-3, top_hz, 4000)
