"""A run's progress: completed steps and the parts of interrupted ones (`progress.json`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryodaq.acquisition.atomic import write_json_atomic
from cryodaq.acquisition.store.summary import json_default


class Interrupted(Exception):
    """Ctrl-C: the campaign stops, everything done so far is kept."""


@dataclass
class Progress:
    """Completed steps by id, and what interrupted steps stored; saved atomically."""

    path: Path
    done: dict[str, dict[str, Any]]
    partial: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> Progress:
        if not path.exists():
            return cls(path, {}, {})
        data = json.loads(path.read_text())
        return cls(path, data.get("done", {}), data.get("partial", {}))

    def save(self) -> None:
        data = {"done": self.done, "partial": self.partial}
        write_json_atomic(self.path, data, default=json_default)

