"""Reading the World's and instruments' numeric parameters with errors that name them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def number(
    params: Mapping[str, Any],
    key: str,
    default: float,
    where: str,
    low: float = -math.inf,
    high: float = math.inf,
) -> float:
    """`params[key]` (or `default`) as a float in [low, high]; else a ValueError naming
    `where.key` and the allowed range."""
    raw = params.get(key, default)
    span = f"{low:g} .. {high:g}"
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{where}.{key} must be a number in {span}, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{where}.{key} must be in {span}, got {value:g}")
    return value
