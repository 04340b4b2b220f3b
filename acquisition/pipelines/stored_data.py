"""Stored microwave data of a run (`data/<name>.npz` + `.json`): spectra and sweeps, read
back for the haloscope and Y-factor pipelines."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.acquisition.pipelines import PipelineError


@dataclass(frozen=True)
class StoredSpectrum:
    """One stored power spectrum with the thermometer readings taken when it started."""

    name: str
    f_hz: np.ndarray
    power_W: np.ndarray
    bin_width_Hz: float
    integration_s: float
    time_s: float
    temperatures_K: dict[str, float]

    def temperature(self, key: str) -> float:
        try:
            return float(self.temperatures_K[key])
        except KeyError:
            raise PipelineError(
                f"spectrum {self.name!r} has no reading {key!r}; it has "
                f"{', '.join(sorted(self.temperatures_K)) or 'none'} (option `thermometers`)"
            ) from None


def _data_names(data_dir: Path, name: str) -> list[str]:
    """`name` itself, or its sweep/repeat points `name.0`, `name.1`, ... in numeric order."""
    if (data_dir / f"{name}.npz").exists():
        return [name]
    pattern = re.compile(rf"^{re.escape(name)}((?:\.\d+)+)\.npz$")
    found = []
    for path in data_dir.glob(f"{name}.*.npz"):
        m = pattern.match(path.name)
        if m:
            found.append((tuple(int(x) for x in m.group(1).strip(".").split(".")), path.stem))
    return [stem for _, stem in sorted(found)]


def _load(data_dir: Path, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(data_dir / f"{name}.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta_path = data_dir / f"{name}.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return arrays, meta


def read_reflection(data_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) and complex S11 of the reflection sweep `name`."""
    names = _data_names(data_dir, name)
    if not names:
        raise PipelineError(f"no reflection sweep {name!r} in {data_dir}")
    arrays, _ = _load(data_dir, names[0])
    if "s11" not in arrays:
        raise PipelineError(f"{names[0]!r} holds no S11 (is it a reflection step?)")
    return arrays["frequencies_Hz"], arrays["s11"]


def read_spectra(data_dir: Path, name: str) -> list[StoredSpectrum]:
    """Every stored spectrum of the step `name` (all its sweep points), in time order."""
    names = _data_names(data_dir, name)
    if not names:
        raise PipelineError(f"no spectrum {name!r} in {data_dir}")
    out = []
    for stem in names:
        arrays, meta = _load(data_dir, stem)
        if "power_W" not in arrays:
            raise PipelineError(f"{stem!r} holds no power spectrum")
        out.append(
            StoredSpectrum(
                name=stem,
                f_hz=arrays["frequencies_Hz"],
                power_W=arrays["power_W"],
                bin_width_Hz=float(meta["bin_width_Hz"]),
                integration_s=float(meta["integration_s"]),
                time_s=float(meta.get("time_s", 0.0)),
                temperatures_K={k: float(v) for k, v in meta.get("temperatures_K", {}).items()},
            )
        )
    return sorted(out, key=lambda s: s.time_s)
