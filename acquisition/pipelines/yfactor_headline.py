"""Headline of the `yfactor` pipeline: the Y factor between the load's two temperatures and
the system noise temperature and gain it gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines.report_headline import Table
from cryodaq.acquisition.pipelines.report_numbers import fmt

CAPTIONS: dict[str, str] = {}


def yfactor_table(y: Mapping[str, Any]) -> Table:
    """The Y-factor measurement `y` (the `yfactor` entry of the results) as a table."""
    spectra = y.get("spectra") or {}
    rows = (
        ("Y factor (hot / cold power)", fmt(y.get("y"), y.get("y_err"))),
        ("system noise temperature T_sys", fmt(y.get("system_noise_K"),
                                               y.get("system_noise_K_err"), "K")),
        ("gain", fmt(y.get("gain_dB"), y.get("gain_dB_err"), "dB")),
        ("load hot / cold", f"{fmt(y.get('T_hot_K'), unit='K', digits=4)} / "
                            f"{fmt(y.get('T_cold_K'), unit='K', digits=4)}"),
        ("Eq 3 (quantum) temperatures hot / cold",
         f"{fmt(y.get('T_hot_eff_K'), unit='K', digits=4)} / "
         f"{fmt(y.get('T_cold_eff_K'), unit='K', digits=4)}"),
        ("spectra hot / cold", f"{spectra.get('hot', '–')} / {spectra.get('cold', '–')}"),
    )  # fmt: skip
    return Table("Y factor: system noise and gain", ("quantity", "value"), rows,
                 "T_sys = (T̃_hot − Y T̃_cold) / (Y − 1) and the gain, both referred to the "
                 "load.")  # fmt: skip


def tables(results: Mapping[str, Any]) -> list[Table]:
    y = results.get("yfactor")
    return [yfactor_table(y)] if isinstance(y, Mapping) else []


def problems(results: Mapping[str, Any]) -> list[str]:
    y = results.get("yfactor")
    if not isinstance(y, Mapping):
        return []
    value = y.get("y")
    if isinstance(value, float) and value <= 1.0:
        return [f"the Y factor is {fmt(value, y.get('y_err'))}: the hot load gives no more "
                "power than the cold one, so no noise temperature follows."]
    return []
