"""Calorimetric spectrum of 163Ho electron capture (REFERENCE.md section 2).

dN/dE = (Q - E)^2 sqrt(1 - m_nu^2 / (Q - E)^2) sum_i I_i (G_i / 2 pi) / ((E - E_i)^2 + G_i^2 / 4)
for 0 < E < Q - m_nu: Breit-Wigner lines of the 163Dy hole states (energy E_i, width G_i,
capture strength I_i) times the neutrino phase space. The strengths are the relative
squared wave functions at the nucleus times the exchange corrections *(approx.)*; the phase
space then makes M1 the highest peak and suppresses everything near the end point Q.
"""

from __future__ import annotations

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


def ho163_density(energy_eV: np.ndarray, q_eV: float = Q_EV, m_nu_eV: float = 0.0,
                  lines: tuple[HoLine, ...] = HO163_LINES) -> np.ndarray:
    """Unnormalised dN/dE (per eV) at `energy_eV`; zero outside 0 < E < Q - m_nu."""
    if not q_eV > 0 or not 0.0 <= m_nu_eV < q_eV:
        raise ValueError(f"need Q > 0 and 0 <= m_nu < Q, got {q_eV:g}, {m_nu_eV:g} eV")
    e = np.asarray(energy_eV, dtype=float)
    x = q_eV - e
    ok = (e > 0.0) & (x > m_nu_eV)
    xs = np.where(ok, x, 1.0)
    phase = np.where(ok, xs**2 * np.sqrt(np.clip(1.0 - (m_nu_eV / xs) ** 2, 0.0, None)), 0.0)
    bw = np.zeros_like(e)
    for line in lines:
        g = line.width_eV
        bw += line.strength * (g / (2.0 * np.pi)) / ((e - line.energy_eV) ** 2 + g * g / 4.0)
    return phase * bw


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
