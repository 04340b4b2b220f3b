"""Natural X-ray line shapes as sums of Lorentzians (REFERENCE section 5, Holzer et al. 1997)."""

from __future__ import annotations

from cryodaq.analysis.line_fit import Lorentzian

#: Mn Ka1/Ka2 (energy eV, FWHM eV, relative integrated intensity).
MN_KA = tuple(
    Lorentzian(*row)
    for row in (
        (5898.853, 1.715, 0.3528),
        (5897.867, 2.043, 0.1405),
        (5894.829, 4.499, 0.0797),
        (5896.532, 2.663, 0.0666),
        (5899.417, 0.969, 0.0179),
        (5902.712, 1.553, 0.0040),
        (5887.743, 2.361, 0.2287),
        (5886.495, 4.216, 0.1098),
    )
)
#: Mn Kb.
MN_KB = tuple(
    Lorentzian(*row)
    for row in (
        (6490.89, 1.83, 0.2547),
        (6486.31, 9.40, 0.2346),
        (6477.73, 13.22, 0.2330),
        (6490.06, 1.81, 0.1645),
        (6488.83, 2.81, 0.1132),
    )
)
#: Ka1/Ka2 doublets of the HOLMES fluorescence target (REFERENCE section 5 energies; natural
#: widths after Krause & Oliver 1979 and Ka1:Ka2 = 2:1 *(approx.)*).
AL_KA = (Lorentzian(1486.7, 0.43, 2.0 / 3.0), Lorentzian(1486.3, 0.43, 1.0 / 3.0))
CL_KA = (Lorentzian(2622.4, 0.69, 2.0 / 3.0), Lorentzian(2620.8, 0.69, 1.0 / 3.0))
CA_KA = (Lorentzian(3691.7, 0.87, 2.0 / 3.0), Lorentzian(3688.1, 0.87, 1.0 / 3.0))
#: Line shapes by name, for pipeline options.
LINE_SHAPES: dict[str, tuple[Lorentzian, ...]] = {
    "AlKa": AL_KA, "ClKa": CL_KA, "CaKa": CA_KA, "MnKa": MN_KA, "MnKb": MN_KB,
}
