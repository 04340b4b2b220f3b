"""The 163Ho implant of a simulated detector: its World parameters, the decay energies it
draws, and event lists of decays as a detector with a time resolution records them.

World parameters (in a detector's entry): `ho163_activity_Bq` (decays per second),
`ho163_q_eV` (end point Q, default `cryodaq.analysis.ho163.Q_EV`) and `ho163_m_nu_eV` (the
neutrino mass; the spectrum ends at Q - m_nu). Energies are drawn by inverse transform of
`ho163_energies` (one uniform number per decay), as the TES source draws them.

Event lists (`record`): a detector whose pulses add sees two decays closer than `resolve_s`
as one event of energy E1 + E2 (unresolved pile-up, REFERENCE.md section 10); decays closer
than `isolation_s` but not closer than `resolve_s` are told apart by the pulse shape and set
aside with their neighbours; each recorded energy is then smeared by the detector's Gaussian
resolution. The truth per recorded event: how many decays it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.analysis.ho163 import Q_EV, ho163_energies
from cryodaq.sim_instruments.params import number

#: Largest neutrino mass (eV) a source accepts (the spectrum must keep most of its lines).
MAX_M_NU_EV = 1000.0


@dataclass(frozen=True)
class Ho163Source:
    """A 163Ho implant: activity (Bq), end point Q (eV) and neutrino mass (eV)."""

    activity_Bq: float = 0.0
    q_eV: float = Q_EV
    m_nu_eV: float = 0.0

    @classmethod
    def from_params(cls, p: Mapping[str, Any], where: str) -> Ho163Source:
        """From a detector's World entry; a `ValueError` names `where.key` and its range."""
        q = number(p, "ho163_q_eV", Q_EV, where, 2500.0, 3200.0)
        return cls(number(p, "ho163_activity_Bq", 0.0, where, 0.0, 1e5), q,
                   number(p, "ho163_m_nu_eV", 0.0, where, 0.0, MAX_M_NU_EV))

    def energy(self, u: float) -> float:
        """The decay energy (eV) for one uniform number `u`."""
        return float(ho163_energies(u, self.q_eV, self.m_nu_eV))

    def decays(self, duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                           np.ndarray]:
        """(arrival times in s, energies in eV) of the decays within `duration_s`."""
        if not self.activity_Bq > 0:
            return np.zeros(0), np.zeros(0)
        mean = self.activity_Bq * duration_s
        times = np.cumsum(rng.exponential(1.0 / self.activity_Bq,
                                          int(mean + 6.0 * np.sqrt(mean) + 10.0)))
        times = times[times < duration_s]
        return times, ho163_energies(rng.uniform(0.0, 1.0, times.size), self.q_eV,
                                     self.m_nu_eV)


@dataclass(frozen=True)
class EventList:
    """Recorded events: energies (eV, smeared) and how many decays each holds (truth)."""

    energy_eV: np.ndarray
    decays: np.ndarray
    set_aside: int  # decays in groups the pulse shape resolved

    @property
    def pileup_fraction(self) -> float:
        """Truth: fraction of the recorded events that hold two or more decays."""
        return float(np.mean(self.decays >= 2)) if self.decays.size else float("nan")


def record(times_s: np.ndarray, energies_eV: np.ndarray, resolve_s: float, isolation_s: float,
           fwhm_eV: float, rng: np.random.Generator) -> EventList:
    """The events a detector records from these decays (see module docstring)."""
    if not 0.0 <= resolve_s <= isolation_s:
        raise ValueError(f"need 0 <= resolve_s <= isolation_s, got {resolve_s}, {isolation_s}")
    t = np.asarray(times_s, dtype=float)
    e = np.asarray(energies_eV, dtype=float)
    gap = np.diff(t)
    group = np.concatenate([[0], np.cumsum(gap >= resolve_s)])  # merge closer than resolve
    sums = np.bincount(group, weights=e)
    counts = np.bincount(group)
    starts = t[np.concatenate([[0], np.flatnonzero(gap >= resolve_s) + 1])] if t.size else t
    ends = t[np.concatenate([np.flatnonzero(gap >= resolve_s), [t.size - 1]])] if t.size else t
    before = np.concatenate([[np.inf], starts[1:] - ends[:-1]])
    after = np.concatenate([starts[1:] - ends[:-1], [np.inf]])
    keep = (before >= isolation_s) & (after >= isolation_s)
    smeared = sums[keep] + fwhm_eV / 2.3548200450309493 * rng.standard_normal(int(keep.sum()))
    return EventList(smeared, counts[keep], int(counts[~keep].sum()))
