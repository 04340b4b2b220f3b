"""What a run recorded of its instruments besides pulses: thermometer readings and setpoints
against virtual time, a haloscope's latest power spectrum against a fitted cavity model, a uMUX
board's resonator sweep with its tones."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.acquisition.campaign.thermometry import THERMOMETRY
from cryodaq.acquisition.store.layout import DATA
from cryodaq.acquisition.units import UnitError, to_si
from cryodaq.analysis.cavity import fit_reflection, transmission_power

#: Points kept per thermometry series (the oldest go first).
KEEP_POINTS = 20_000


def step_temperatures(done: list[dict[str, Any]]) -> dict[str, Any]:
    """Readings and setpoints the completed steps recorded, at the virtual time each step
    ended: wait_stable's last reading and target, spectra's readings, set steps' setpoints."""
    readings: dict[str, list[list[float]]] = {}
    setpoints: dict[str, list[list[float]]] = {}
    t = 0.0
    for entry in done:
        t += float(entry.get("virtual_time_s") or 0.0)
        result = entry.get("result") or {}
        if entry.get("kind") == "wait_stable" and "reading_K" in result:
            readings.setdefault(result["sensor"], []).append([t, result["reading_K"]])
            setpoints.setdefault(result["sensor"], []).append([t, result["target_K"]])
        for name, value in (result.get("temperatures_K") or {}).items():
            readings.setdefault(name, []).append([t, value])
        for key, value in (result.get("set") or {}).items():
            if key.endswith(".setpoint"):
                try:
                    setpoints.setdefault(key.removesuffix(".setpoint"), []).append(
                        [t, to_si(value, "K")]
                    )
                except UnitError:
                    continue
    return {"readings": readings, "setpoints": setpoints}


class Thermometry:
    """The run's thermometry log (`data/thermometry.jsonl`), read as it grows."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / DATA / THERMOMETRY
        self.offset = 0
        self.series: dict[str, dict[str, deque[list[float]]]] = {
            "readings": {}, "setpoints": {}, "heaters": {}
        }  # fmt: skip

    def _add(self, kind: str, name: str, t: float, value: float | None) -> None:
        if value is not None:
            self.series[kind].setdefault(name, deque(maxlen=KEEP_POINTS)).append([t, value])

    def look(self) -> None:
        """Read the lines appended since the last look (a line cut short waits for its end)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        for line in chunk[:end].splitlines():
            try:
                e = json.loads(line)
                t = float(e["t_s"])
            except (ValueError, KeyError, TypeError):
                continue
            self._add("readings", e.get("sensor", "?"), t, e.get("K"))
            self._add("setpoints", e.get("sensor", "?"), t, e.get("target_K"))
            for heater, watts in (e.get("heater_W") or {}).items():
                self._add("heaters", heater, t, watts)

    def merged(self, steps: dict[str, Any]) -> dict[str, Any]:
        """The log's series, with what the steps recorded of sensors the log lacks."""
        out: dict[str, Any] = {}
        for kind in ("readings", "setpoints"):
            logged = {k: list(v) for k, v in self.series[kind].items()}
            extra = {k: v for k, v in steps[kind].items() if k not in logged}
            out[kind] = {**logged, **extra}
        out["heaters"] = {k: list(v) for k, v in self.series["heaters"].items()}
        return out


class DataFiles:
    """The latest array files of a run's `data/` (spectra, reflections, resonator sweeps),
    each loaded again only when it changes."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir) / DATA
        self._cache: dict[Path, tuple[float, dict[str, np.ndarray]]] = {}
        self._fitted: tuple[tuple, dict[str, Any]] | None = None

    def _latest(self, key: str) -> tuple[Path, dict[str, np.ndarray]] | None:
        if not self.dir.is_dir():
            return None
        files = sorted(self.dir.glob("*.npz"), key=lambda p: p.stat().st_mtime)
        for path in reversed(files):
            arrays = self._load(path)
            if key in arrays:
                return path, arrays
        return None

    def _load(self, path: Path) -> dict[str, np.ndarray]:
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached is None or cached[0] != mtime:
            with np.load(path, allow_pickle=False) as npz:
                cached = (mtime, {k: npz[k] for k in npz.files})
            self._cache[path] = cached
        return cached[1]

    def haloscope(self) -> dict[str, Any] | None:
        """The latest power spectrum; with a reflection sweep, the model fitted to it: a flat
        added-noise level plus the cavity's Lorentzian (from the S11 fit) times a gain."""
        found, reflection = self._latest("power_W"), self._latest("s11")
        if found is None:
            return None
        key = (found[0], self._cache[found[0]][0], reflection and reflection[0],
               reflection and self._cache[reflection[0]][0])  # fmt: skip
        if self._fitted is None or self._fitted[0] != key:
            self._fitted = key, self._fit(found, reflection)
        return self._fitted[1]

    def _fit(
        self,
        found: tuple[Path, dict[str, np.ndarray]],
        reflection: tuple[Path, dict[str, np.ndarray]] | None,
    ) -> dict[str, Any]:
        path, arrays = found
        f, p = arrays["frequencies_Hz"].astype(float), arrays["power_W"].astype(float)
        out: dict[str, Any] = {"name": path.stem, "f_Hz": f.tolist(), "power_W": p.tolist()}
        attrs = path.with_suffix(".json")
        bin_width = (
            json.loads(attrs.read_text()).get("bin_width_Hz", 0.0) if attrs.exists() else 0.0
        )
        if reflection is None:
            out["model"], out["model_note"] = None, "no reflection sweep yet: no cavity to fit"
            return out
        try:
            fit = fit_reflection(reflection[1]["frequencies_Hz"], reflection[1]["s11"])
        except (ValueError, RuntimeError) as exc:
            out["model"], out["model_note"] = None, f"reflection fit failed: {exc}"
            return out
        shape = transmission_power(f, fit.cavity, bin_width)
        design = np.column_stack([np.ones_like(f), shape])
        coef = np.linalg.lstsq(design, p, rcond=None)[0]
        out["model"] = (design @ coef).tolist()
        out["level_W"], out["cavity_W"] = float(coef[0]), float(coef[1])
        out["model_note"] = (
            f"level {coef[0]:.4g} W + {coef[1]:.4g} W x |S_t|^2 "
            f"(f_c {fit.cavity.fc_Hz / 1e9:.6f} GHz, width {fit.cavity.linewidth_Hz / 1e3:.4g} kHz"
            f" from {reflection[0].stem})"
        )
        return out

    def umux(self) -> dict[str, Any] | None:
        """The latest resonator sweep (|S21| in dB) with the tones placed on it."""
        found = self._latest("tones_hz")
        if found is None:
            return None
        path, arrays = found
        s21_db = 20 * np.log10(np.maximum(np.abs(arrays["s21"]), 1e-12))
        return {
            "name": path.stem,
            "f_Hz": arrays["baseband_hz"].astype(float).tolist(),
            "s21_dB": s21_db.tolist(),
            "tones_Hz": arrays["tones_hz"].astype(float).tolist(),
        }
