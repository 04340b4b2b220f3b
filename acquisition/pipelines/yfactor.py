"""Pipeline `yfactor`: the Y-factor calibration of the haloscope chain (REFERENCE.md section 4;
the paper's Fig. 1a), from power spectra of a black-body load behind the cryogenic switch.

The spectra of the step `spectra` are read with the thermometer readings stored beside them;
the coldest and the hottest load readings (`load`) give Y = P_hot / P_cold over the band,
T_sys = (T~_hot - Y T~_cold) / (Y - 1) and the gain G = P_cold / (k_B B (T~_cold + T_sys))
(`cryodaq.analysis.yfactor.y_factor`). Both are referred to the load: a path difference A_p between
the load and the cavity makes T_sys = (T_a' + (1 - A_p) T~_sw) / A_p and G = G' A_p, and a switch
still warm from its actuation adds noise to whichever spectrum it overlaps.

Options: `spectra` ("yspec"), `load` ("tc.4", the load's thermometer), `thermometers`
({cav: "tc.3", mx: "tc.1"}: readings reported beside each spectrum, any keys).
Results (`yfactor.*`): `y`, `system_noise_K`, `gain_dB`, each with `_err`, the load's
temperatures `T_hot_K`, `T_cold_K` and their Eq 3 values, and the spectra used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryodaq.acquisition.pipelines import PipelineInput, PipelineResult
from cryodaq.acquisition.pipelines.stored_data import PipelineError, StoredSpectrum, read_spectra
from cryodaq.acquisition.pipelines.yfactor_options import options
from cryodaq.analysis.yfactor import y_factor


def yfactor_results(spectra: list[StoredSpectrum], opts: dict[str, Any]) -> dict[str, Any]:
    """The Y-factor from the coldest and hottest load spectra (see module docstring)."""
    if len(spectra) < 2:
        raise PipelineError(f"yfactor: needs two load spectra, got {len(spectra)}")
    load = str(opts["load"])
    ordered = sorted(spectra, key=lambda s: s.temperature(load))
    cold, hot = ordered[0], ordered[-1]
    if cold.f_hz.shape != hot.f_hz.shape or cold.bin_width_Hz != hot.bin_width_Hz:
        raise PipelineError("yfactor: the hot and cold spectra have different bins")
    res = y_factor(
        cold.f_hz,
        hot.power_W,
        cold.power_W,
        hot.temperature(load),
        cold.temperature(load),
        cold.bin_width_Hz,
        1.0 / (hot.bin_width_Hz * hot.integration_s) ** 0.5,
        1.0 / (cold.bin_width_Hz * cold.integration_s) ** 0.5,
    )
    readings = {}
    for label, s in (("hot", hot), ("cold", cold)):
        for key, channel in (opts.get("thermometers") or {}).items():
            if channel in s.temperatures_K:
                readings[f"T_{key}_{label}_K"] = float(s.temperatures_K[channel])
    return {
        "y": res.y,
        "y_err": res.y_err,
        "system_noise_K": res.system_noise_K,
        "system_noise_K_err": res.system_noise_K_err,
        "gain_dB": res.gain_dB,
        "gain_dB_err": res.gain_dB_err,
        "T_hot_K": hot.temperature(load),
        "T_cold_K": cold.temperature(load),
        "T_hot_eff_K": res.t_hot_eff_K,
        "T_cold_eff_K": res.t_cold_eff_K,
        "spectra": {"hot": hot.name, "cold": cold.name},
        **readings,
    }


def has_spectra(data_dir: Path, name: str) -> bool:
    return (data_dir / f"{name}.npz").exists() or any(data_dir.glob(f"{name}.*.npz"))


def run(inp: PipelineInput) -> PipelineResult:
    """The `yfactor` pipeline (see module docstring)."""
    opts = options(inp.options)
    spectra = read_spectra(inp.run_dir / "data", str(opts["spectra"]))
    return PipelineResult({"yfactor": yfactor_results(spectra, opts)}, [])
