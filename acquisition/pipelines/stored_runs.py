"""What the record pipelines (`pulses`, `mmc`, `holmes`) share about a stored run: which
acquisitions and resumed parts to read, their common record geometry and summed live time,
the channels they hold, and results made JSON-safe."""

from __future__ import annotations

from typing import Any

import numpy as np

from cryodaq.acquisition.pipelines import PART_SEPARATOR, PipelineError, PipelineInput


def selected_parts(inp: PipelineInput, pipeline: str) -> tuple[list[str], list[str]]:
    """The acquisitions named by the step (default: every stored one that is not itself a
    resumed part) and all their parts; `PipelineError` if any named one is missing."""
    stored = inp.reader.acquisitions()
    names = list(inp.acquisitions) or [
        a for a in stored if not any(a.startswith(f"{b}{PART_SEPARATOR}") for b in stored)
    ]
    parts = [p for name in names for p in inp.parts(name)]
    missing = [name for name in names if not inp.parts(name)]
    if missing or not parts:
        raise PipelineError(
            f"{pipeline}: no acquisition {missing or names} in {inp.run_dir}; it has {stored}"
        )
    return names, parts


def selected_channels(inp: PipelineInput, parts: list[str], wanted: Any) -> list[int]:
    """The channels stored in `parts`, restricted to `wanted` (an option's list) if given."""
    chans = sorted({c for p in parts for c in inp.reader.channels(p)})
    if wanted is not None:
        chans = [c for c in chans if c in {int(x) for x in wanted}]
    return chans


def geometry(inp: PipelineInput, parts: list[str], pipeline: str) -> dict[str, Any]:
    """Record geometry, sample rate, scale and trigger holdoff shared by all parts; their
    live time summed (samples processed, from each part's last commit)."""
    first = inp.reader.info(parts[0])
    keys = ("record_length", "pretrigger", "sample_rate_hz")
    live = 0.0
    for part in parts:
        info = inp.reader.info(part)
        if any(info[k] != first[k] for k in keys):
            raise PipelineError(
                f"{pipeline}: acquisitions {parts[0]!r} and {part!r} differ in record geometry "
                "or sample rate; analyse them in separate steps"
            )
        live += inp.reader.commit(part).processed_samples / info["sample_rate_hz"]
    meta = first.get("metadata") or {}
    trigger = meta.get("trigger") if isinstance(meta.get("trigger"), dict) else {}
    holdoff = trigger.get("holdoff")
    if not isinstance(holdoff, int | float) or holdoff <= 0:
        holdoff = first["record_length"]  # the trigger engine's default
    return {
        "length": int(first["record_length"]),
        "pre": int(first["pretrigger"]),
        "fs": float(first["sample_rate_hz"]),
        "scale": float(meta.get("units_per_value") or 1.0),
        "unit": str(meta.get("unit") or "a.u."),
        "live_s": live,
        "holdoff": int(holdoff),
    }


def jsonable(value: Any) -> Any:
    """`value` with NumPy scalars as Python numbers and non-finite floats as None (nested
    dicts included), as summary.json needs."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
