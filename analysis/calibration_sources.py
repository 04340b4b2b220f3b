"""The lines of the maXs30 calibration sources as `KnownLine`s, by source name.

- `fe55`: Mn Ka and Kb with their natural (Holzer) shapes, at the energy of each shape's
  tallest component; photons per 100 decays Ka 25.02, Kb 3.40 (DDEP/LNHB 55Fe, approx.).
- `am241`: `cryodaq.analysis.am241_lines` (Np L lines from xraydb, the 26.3 and 59.5 keV gammas).
Expected rates include the photoabsorption in the Au absorber of the given thickness.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cryodaq.analysis.am241_lines import am241_lines, au_photoabsorption
from cryodaq.analysis.line_calibration import KnownLine
from cryodaq.analysis.line_fit import reference_energy
from cryodaq.analysis.xray_lines import MN_KA, MN_KB

#: Holzer et al. (1997) quote the component energies to ~0.01 eV.
HOLZER_ERR_EV = 0.01


def fe55_lines(thickness_um: float = 20.0) -> tuple[KnownLine, ...]:
    """Mn Ka then Kb."""
    out = []
    for name, shape, per_decay in (("MnKa", MN_KA, 25.02), ("MnKb", MN_KB, 3.40)):
        e = reference_energy(shape)
        absorbed = per_decay * float(au_photoabsorption(e, thickness_um)[0])
        out.append(KnownLine(name, e, shape, HOLZER_ERR_EV, absorbed))
    return tuple(out)


SOURCES: dict[str, Callable[[float], tuple[KnownLine, ...]]] = {
    "fe55": fe55_lines,
    "am241": am241_lines,
}


def source_lines(names: Sequence[str], thickness_um: float = 20.0) -> tuple[KnownLine, ...]:
    """The lines of the named sources, in the order named (each source strongest first)."""
    unknown = [n for n in names if n not in SOURCES]
    if unknown or not names:
        raise ValueError(
            f"calibration sources must be a non-empty list of {', '.join(SOURCES)}; got "
            f"{list(names)}"
        )
    return tuple(ln for n in names for ln in SOURCES[n](thickness_um))
