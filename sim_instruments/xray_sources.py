"""Photon sources and their absorption in a gold absorber, from a maintained database (xraydb).

241Am: the Np L X-rays and two gammas. xraydb gives every Np L line's energy and its branching
within its initial subshell (L1, L2, L3); how many L vacancies of each subshell fluoresce per
decay follows from the nuclear-data group totals (photons per 100 decays, NNDC NuDat 3 / DDEP
241Am, approx.: L-alpha 13.0, L-beta 19.0, L-gamma 4.8), solved for the three subshells, so
each line's intensity is (its subshell's fluorescing vacancies) x (its branching). Gammas
(same source): 26.3446 keV 2.31 %, 59.5409 keV 35.92 %.
Absorption: a photon of energy E is absorbed in thickness t of Au with probability
1 - exp(-mu_photo(E) t), mu_photo from xraydb (`material_mu('Au', E, kind='photo')`); a
photon that is not absorbed passes through and leaves nothing.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import xraydb

#: Np L groups of 241Am, photons per 100 decays (module docstring).
AM241_L_GROUPS = {"La": 13.0, "Lb": 19.0, "Lg": 4.8}
#: 241Am gammas: (energy eV, photons per 100 decays).
AM241_GAMMAS = ((26344.6, 2.31), (59540.9, 35.92))


def au_absorption(energy_eV: np.ndarray | float, thickness_m: float) -> np.ndarray:
    """Probability that a photon of `energy_eV` is absorbed in `thickness_m` of gold."""
    e = np.atleast_1d(np.asarray(energy_eV, dtype=float))
    mu_per_cm = np.asarray(xraydb.material_mu("Au", e, kind="photo"), dtype=float)
    return 1.0 - np.exp(-mu_per_cm * thickness_m * 100.0)


@lru_cache(maxsize=1)
def am241_lines() -> tuple[tuple[str, float, float], ...]:
    """(name, energy eV, photons per 100 decays) of the Np L lines and the gammas."""
    lines = {k: v for k, v in xraydb.xray_lines("Np").items() if v.initial_level in
             ("L1", "L2", "L3")}
    shells = ("L1", "L2", "L3")
    groups = list(AM241_L_GROUPS)
    matrix = np.zeros((len(groups), len(shells)))
    for name, line in lines.items():
        for g, group in enumerate(groups):
            if name.startswith(group):
                matrix[g, shells.index(line.initial_level)] += line.intensity
    vacancies = np.linalg.solve(matrix, np.array([AM241_L_GROUPS[g] for g in groups]))
    if np.any(vacancies < 0):
        raise ValueError(f"241Am L subshell yields came out negative: {vacancies}")
    out = [(f"Np {name}", float(line.energy),
            float(vacancies[shells.index(line.initial_level)] * line.intensity))
           for name, line in sorted(lines.items(), key=lambda kv: kv[1].energy)]
    out += [(f"gamma {e / 1e3:.1f} keV", e, w) for e, w in AM241_GAMMAS]
    return tuple(out)
