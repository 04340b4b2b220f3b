"""Calorimetric spectrum of 163Ho electron capture (REFERENCE.md section 2).

dN/dE = (Q - E)^2 sqrt(1 - m_nu^2 / (Q - E)^2) sum_i I_i (G_i / 2 pi) / ((E - E_i)^2 + G_i^2 / 4)
for 0 < E < Q - m_nu: Breit-Wigner lines of the 163Dy hole states (energy E_i, width G_i,
capture strength I_i) times the neutrino phase space. The strengths are the relative
squared wave functions at the nucleus times the exchange corrections *(approx.)*; the phase
space then makes M1 the highest peak and suppresses everything near the end point Q.

A fit needs m_nu^2 on both sides of zero: the phase space is written x sqrt(x^2 - m^2) with
x = Q - E (the same for m^2 >= 0), which continues smoothly to m^2 < 0, with the same slope
-1/2 in m^2 at m^2 = 0 (`phase_space`). A simulator draws energies by inverse transform
(`ho163_energies`, on a cached `ho163_cdf` table, so any Q and m_nu cost one table each).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

#: Q value of the decay (eV).
Q_EV = 2833.0


@dataclass(frozen=True)
class HoLine:
    """One capture line: hole state, energy (eV), Breit-Wigner FWHM (eV), capture strength."""

    name: str
    energy_eV: float
    width_eV: float
    strength: float


#: M1, M2, N1, N2 (REFERENCE.md section 2); strengths relative to M1 *(approx.)*.
HO163_LINES = (
    HoLine("M1", 2047.0, 13.2, 1.0),
    HoLine("M2", 1842.0, 6.0, 0.0526),
    HoLine("N1", 414.0, 5.4, 0.2329),
    HoLine("N2", 333.0, 5.3, 0.0119),
)


def phase_space(x_eV: np.ndarray, m2_eV2: float) -> np.ndarray:
    """Neutrino phase space x sqrt(x^2 - m^2) at x = Q - E; zero where x^2 <= max(m^2, 0) or
    x <= 0 (m^2 may be negative: the usual continuation for fits)."""
    x = np.asarray(x_eV, dtype=float)
    arg = x * x - m2_eV2
    ok = (x > 0.0) & (arg > 0.0)
    return np.where(ok, x * np.sqrt(np.where(ok, arg, 0.0)), 0.0)


def line_sum(energy_eV: np.ndarray, lines: tuple[HoLine, ...] = HO163_LINES) -> np.ndarray:
    """sum_i I_i (G_i / 2 pi) / ((E - E_i)^2 + G_i^2 / 4): the Breit-Wigner lines."""
    e = np.asarray(energy_eV, dtype=float)
    bw = np.zeros_like(e)
    for line in lines:
        g = line.width_eV
        bw += line.strength * (g / (2.0 * np.pi)) / ((e - line.energy_eV) ** 2 + g * g / 4.0)
    return bw


def ho163_density_m2(energy_eV: np.ndarray, q_eV: float = Q_EV, m2_eV2: float = 0.0,
                     lines: tuple[HoLine, ...] = HO163_LINES) -> np.ndarray:
    """Unnormalised dN/dE (per eV) with the signed m_nu^2 of `phase_space`; zero for E <= 0."""
    if not q_eV > 0:
        raise ValueError(f"need Q > 0, got {q_eV:g} eV")
    e = np.asarray(energy_eV, dtype=float)
    return np.where(e > 0.0, phase_space(q_eV - e, m2_eV2) * line_sum(e, lines), 0.0)


def ho163_density(energy_eV: np.ndarray, q_eV: float = Q_EV, m_nu_eV: float = 0.0,
                  lines: tuple[HoLine, ...] = HO163_LINES) -> np.ndarray:
    """Unnormalised dN/dE (per eV) at `energy_eV`; zero outside 0 < E < Q - m_nu."""
    if not q_eV > 0 or not 0.0 <= m_nu_eV < q_eV:
        raise ValueError(f"need Q > 0 and 0 <= m_nu < Q, got {q_eV:g}, {m_nu_eV:g} eV")
    return ho163_density_m2(energy_eV, q_eV, m_nu_eV**2, lines)


def ho163_cdf(q_eV: float = Q_EV, m_nu_eV: float = 0.0, lines: tuple[HoLine, ...] = HO163_LINES,
              step_eV: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(energy grid, normalised cumulative distribution) on a `step_eV` grid from 0 to Q - m_nu,
    integrated by the trapezoid rule: what inverse-transform sampling and binned tests need."""
    top = q_eV - m_nu_eV
    grid = np.linspace(0.0, top, int(np.ceil(top / step_eV)) + 1)
    density = ho163_density(grid, q_eV, m_nu_eV, lines)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    return grid, cdf / cdf[-1]


def ho163_bin_probabilities(edges_eV: np.ndarray, q_eV: float = Q_EV, m_nu_eV: float = 0.0,
                            lines: tuple[HoLine, ...] = HO163_LINES) -> np.ndarray:
    """Probability of each bin [edges[i], edges[i+1]) under the normalised spectrum."""
    grid, cdf = ho163_cdf(q_eV, m_nu_eV, lines)
    return np.diff(np.interp(np.asarray(edges_eV, dtype=float), grid, cdf))


@functools.lru_cache(maxsize=8)
def _table(q_eV: float, m_nu_eV: float) -> tuple[np.ndarray, np.ndarray]:
    grid, cdf = ho163_cdf(q_eV, m_nu_eV)
    grid.flags.writeable = False
    cdf.flags.writeable = False
    return grid, cdf


def ho163_energies(u: np.ndarray | float, q_eV: float = Q_EV,
                   m_nu_eV: float = 0.0) -> np.ndarray:
    """Energies (eV) of decays for uniform numbers `u` in [0, 1): the inverse of `ho163_cdf`
    (linear between its 0.05 eV grid points), from a table cached per (Q, m_nu)."""
    grid, cdf = _table(float(q_eV), float(m_nu_eV))
    return np.interp(u, cdf, grid)
