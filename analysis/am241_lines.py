"""The lines of a 241Am source: what it emits (`am241_emission`, the one source of these data,
also for the simulator) and what a detector with Au absorbers sees (`am241_lines`: Np L X-rays
and the 26.3 and 59.5 keV gammas, each a `KnownLine` with its energy, energy uncertainty,
natural shape and expected relative rate, photons per 100 decays absorbed in the absorber).

Np L X-rays (xraydb, Elam et al. tables): energies (tabulated to 1 eV, so each carries a
rounding uncertainty of 1/sqrt(12) eV), relative intensities within each initial L subshell,
and natural widths as the sum of the two core-hole widths (Keski-Rahkonen and Krause). A
detector with ~10 eV FWHM resolves them (Ll, La2, La1, Ln, Lb6, Lb2,15, Lb4, Lb5, Lb1, Lb3, Lg1,
Lg2, Lg3, Lg6): each is one line. xraydb lists Lb2,15 (final level N4,5) and Lb5 (O4,5) as one
entry for two transitions; their centroid depends on an intensity ratio the table does not
give, so their energy uncertainty is the spread of the two final levels over sqrt(12) (13 eV
for Lb2,15: little weight in a calibration, but a known peak the identification must not take
for another line).

The L-subshell weights (X-ray photons per 100 decays starting from L1, L2, L3) are the
non-negative least-squares solution that gives the evaluation's group emission probabilities
(DDEP/LNHB 241Am, approx.: La 13.1, Lb 19.3, Lg 4.8 per 100 decays).

Gammas: DDEP/LNHB evaluation of 241Am (Chechev 2010; M.-M. Be and V. Chechev, Nucl. Instrum.
Meth. A 728 (2013) 157): 26.3446(2) keV, 2.31(8) %; 59.5409(1) keV, 35.92(17) %.

Absorption: photoabsorption in Au of the given thickness, xraydb mass attenuation (Elam).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xraydb
from scipy.optimize import nnls

from cryodaq.analysis.line_calibration import KnownLine
from cryodaq.analysis.line_fit import Lorentzian

#: Emitting element of the 241Am source (alpha decay to 237Np).
ELEMENT = "Np"
#: Gammas: (name, energy eV, energy uncertainty eV, photons per 100 decays), DDEP/LNHB.
GAMMAS = (("Am241g26", 26344.6, 0.2, 2.31), ("Am241g59", 59540.9, 0.1, 35.92))
#: Np L X-ray group emission probabilities per 100 decays (DDEP/LNHB 241Am, approx.) and the
#: xraydb lines that make each group.
L_GROUPS = (
    (13.1, ("La1", "La2")),
    (19.3, ("Lb1", "Lb2,15", "Lb3", "Lb4", "Lb5", "Lb6")),
    (4.8, ("Lg1", "Lg2", "Lg3", "Lg6")),
)
#: Rounding uncertainty of an energy tabulated to 1 eV.
ROUNDING_EV = 1.0 / np.sqrt(12.0)
#: Lines expected below this fraction of the strongest Np L line are not offered.
MIN_RELATIVE = 0.01


@dataclass(frozen=True)
class EmissionLine:
    """One line the source emits, before any absorption."""

    name: str
    energy_eV: float
    energy_err_eV: float
    fwhm_eV: float  # natural (Lorentzian) full width; 0 for the gammas (far below 1 eV)
    per_100_decays: float  # photons emitted per 100 decays


def au_photoabsorption(energy_eV: np.ndarray | float, thickness_um: float) -> np.ndarray:
    """Probability that a photon at normal incidence is photoabsorbed in `thickness_um` of Au
    (the full energy stays in the absorber): mu_photo / mu_total (1 - exp(-mu_total t))."""
    if not thickness_um > 0:
        raise ValueError(f"absorber thickness must be > 0 um, got {thickness_um}")
    e = np.atleast_1d(np.asarray(energy_eV, dtype=np.float64))
    if e.size == 0:
        return np.zeros(0)
    rho = xraydb.atomic_density("Au")
    total = xraydb.mu_elam("Au", e, kind="total") * rho
    photo = xraydb.mu_elam("Au", e, kind="photo") * rho
    return photo / total * (1.0 - np.exp(-total * thickness_um * 1e-4))


@lru_cache(maxsize=1)
def _level_weights() -> dict[str, float]:
    """X-ray photons per 100 decays from each L subshell (see module docstring)."""
    lines = xraydb.xray_lines(ELEMENT)
    levels = ("L1", "L2", "L3")
    design = np.array(
        [[sum(lines[n].intensity for n in names if lines[n].initial_level == lv) for lv in levels]
         for _, names in L_GROUPS]
    )  # fmt: skip
    weights, _ = nnls(design, np.array([p for p, _ in L_GROUPS]))
    return dict(zip(levels, (float(w) for w in weights), strict=True))


def _levels(final: str) -> list[str]:
    """xraydb's "N4,5" -> ["N4", "N5"]; "M5" -> ["M5"]."""
    head, *rest = final.split(",")
    return [head, *(head[:-len(r)] + r for r in rest)]


@lru_cache(maxsize=1)
def _np_l_emission() -> tuple[EmissionLine, ...]:
    """Every Np L line from an L1, L2 or L3 vacancy (see module docstring), by energy."""
    weights = _level_weights()
    edges = xraydb.xray_edges(ELEMENT)
    out = []
    for name, line in sorted(xraydb.xray_lines(ELEMENT).items(), key=lambda kv: kv[1].energy):
        lv, finals = line.initial_level, _levels(line.final_level)
        if lv not in weights:
            continue
        width = xraydb.core_width(ELEMENT, lv) + xraydb.core_width(ELEMENT, finals[0])
        spread = np.ptp([edges[f].energy for f in finals])  # 0 for a single transition
        err = float(np.hypot(ROUNDING_EV, spread / np.sqrt(12.0)))
        out.append(EmissionLine(f"Np{name.replace(',', '_')}", float(line.energy), err,
                                float(width), weights[lv] * float(line.intensity)))
    return tuple(out)


def _gamma_emission() -> tuple[EmissionLine, ...]:
    return tuple(EmissionLine(name, e, err, 0.0, p) for name, e, err, p in GAMMAS)


def am241_emission() -> tuple[EmissionLine, ...]:
    """All lines a 241Am source emits (Np L X-rays, then the gammas), by energy: unfiltered,
    without absorption."""
    return _np_l_emission() + _gamma_emission()


def _seen(line: EmissionLine, thickness_um: float) -> KnownLine:
    """`line` as the detector sees it: photons per 100 decays absorbed in the Au."""
    absorbed = line.per_100_decays * float(au_photoabsorption(line.energy_eV, thickness_um)[0])
    shape = (Lorentzian(line.energy_eV, line.fwhm_eV, 1.0),) if line.fwhm_eV > 0 else None
    return KnownLine(line.name, line.energy_eV, shape, line.energy_err_eV, absorbed)


def np_l_lines(thickness_um: float = 20.0) -> tuple[KnownLine, ...]:
    """The resolved Np L lines (see module docstring), strongest first."""
    out = [_seen(ln, thickness_um) for ln in _np_l_emission()]
    top = max(ln.intensity for ln in out)
    return tuple(sorted((ln for ln in out if ln.intensity >= MIN_RELATIVE * top),
                        key=lambda ln: -ln.intensity))  # fmt: skip


def am241_lines(thickness_um: float = 20.0) -> tuple[KnownLine, ...]:
    """Np L lines and the two gammas (Gaussian: natural widths far below 1 eV), strongest
    first by expected absorbed photons per 100 decays."""
    gammas = tuple(_seen(ln, thickness_um) for ln in _gamma_emission())
    return tuple(sorted(np_l_lines(thickness_um) + gammas, key=lambda ln: -ln.intensity))
