"""The `yfactor` pipeline's options: its defaults and their checks, with no analysis imported,
so `cryodaq validate` checks a campaign's options cheaply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines import with_defaults

DEFAULTS: dict[str, Any] = {
    "spectra": "yspec",
    "load": "tc.4",
    "thermometers": {"cav": "tc.3", "mx": "tc.1"},
}


def options(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The step's options over DEFAULTS, checked (`PipelineError`)."""
    return with_defaults(given, DEFAULTS, "yfactor")
