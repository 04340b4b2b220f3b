"""What the steps of one run share: the rig, its clock, the run store and the run directory."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.acquisition.atomic import write_atomic
from cryodaq.acquisition.campaign.steps.base import StepError
from cryodaq.acquisition.clock import RunClock
from cryodaq.acquisition.rig import Rig, RigSpec
from cryodaq.acquisition.store.writer import RunWriter
from cryodaq.drivers.base import Instrument
from cryodaq.drivers.lakeshore372 import LakeShore372


@dataclass
class RunContext:
    """Everything steps share during one run."""

    rig: Rig
    clock: RunClock
    store: RunWriter
    run_dir: Path
    on_monitor: Callable[..., None] = lambda monitor, drops=None: None
    results: dict[str, Any] = field(default_factory=dict)

    def instrument(self, name: str) -> Instrument:
        """The opened instrument `name` (opened, with its rig settings, on first use)."""
        if name not in self.rig.instruments:
            self.rig.open(name)
        return self.rig.instruments[name]

    def only_or_named(self, name: str | None, kind: type, what: str) -> Any:
        """Instrument `name`, or without a name the rig's only instrument that is a `kind`
        (a spectrum from the VST or the analyser, whichever the rig has)."""
        if name is None:
            name = only_instrument(self.rig.spec, kind, what)
        return self.typed(name, kind, what)

    def typed(self, name: str, kind: type, what: str) -> Any:
        """Instrument `name`, which `what` needs to be a `kind`."""
        inst = self.instrument(name)
        if not isinstance(inst, kind):
            raise StepError(
                f"{what}: instrument {name!r} is a {type(inst).__name__}, not a {kind.__name__}"
            )
        return inst

    def save_arrays(self, name: str, attrs: Mapping[str, Any], **arrays: np.ndarray) -> Path:
        """Write `data/<name>.npz` and its `.json` attributes, atomically."""
        out = self.run_dir / "data"
        out.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path = out / f"{name}.npz"
        write_atomic(path, buffer.getvalue())
        write_atomic(out / f"{name}.json", json.dumps(dict(attrs), indent=2, default=float))
        return path

    def temperatures(self) -> dict[str, float]:
        """Every thermometer reading of the rig's opened temperature controllers."""
        out: dict[str, float] = {}
        for name, inst in self.rig.instruments.items():
            if isinstance(inst, LakeShore372):
                for th in inst.channels:
                    if th.enabled:
                        value = inst.temperature(th.ch)
                        if np.isfinite(value):
                            out[f"{name}.{th.ch}"] = value
        return out


def only_instrument(rig: RigSpec, kind: type, what: str) -> str:
    """The name of the rig's only instrument whose driver is a `kind`; StepError naming the
    candidates if there are none or several."""
    names = [n for n, spec in rig.instruments.items() if issubclass(spec.driver, kind)]
    if len(names) != 1:
        found = f"several: {', '.join(names)}" if names else "none"
        raise StepError(f"{what}: give `instrument`: the rig has {found} that can do it")
    return names[0]
