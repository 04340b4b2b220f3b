"""Field types shared by the step models: frozen strict models and quantities with units."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from cryodaq.acquisition.units import to_si


def _quantity(unit: str, low: float = 0.0) -> Any:
    def convert(value: Any) -> float:
        v = to_si(value, unit)
        if v < low:
            raise ValueError(f"must be >= {low:g} {unit}, got {v:g} {unit}")
        return v

    return BeforeValidator(convert)


Seconds = Annotated[float, _quantity("s")]
Hertz = Annotated[float, _quantity("Hz")]
Kelvin = Annotated[float, _quantity("K")]
#: A trigger level: a unit string in the source's physical unit, or a plain number in data
#: units (ADC codes, radians); converted when the source is known.
Level = float | str


class Model(BaseModel):
    """A campaign mapping: unknown keys are errors, values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(Model):
    """A step of any kind; `kind` is the step's one YAML key."""

    kind: str
    name: str | None = None


def str_keys(value: Any) -> Any:
    """YAML reads `3:` as an int; channel selectors are strings ("3", "1-16", "all")."""
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value
