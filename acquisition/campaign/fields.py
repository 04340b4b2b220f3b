"""Field types shared by the step models: frozen strict models and quantities with units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from cryodaq.acquisition.store.format import RunStoreError, check_name
from cryodaq.acquisition.units import to_si, to_span_s

#: Longest name of a campaign, an acquisition or another stored result.
MAX_NAME = 128


def _quantity(convert: Callable[[Any], float]) -> Any:
    return BeforeValidator(convert)


def _positive(unit: str, zero: bool = True) -> Callable[[Any], float]:
    """A finite quantity in `unit`, >= 0 (> 0 unless `zero`)."""

    def convert(value: Any) -> float:
        v = to_si(value, unit)
        if v < 0 or (v == 0 and not zero):
            raise ValueError(f"must be {'>=' if zero else '>'} 0 {unit}, got {v:g} {unit}")
        return v

    return convert


#: A time span that may be 0 (a coincidence window: 0 is none), at most a year.
Seconds = Annotated[float, _quantity(lambda v: to_span_s(v, zero=True))]
#: A duration, window, timeout or period: above 0, at most a year.
Duration = Annotated[float, _quantity(to_span_s)]
Hertz = Annotated[float, _quantity(_positive("Hz"))]
#: A size in bytes ("64 MiB", "1 MB"), above 0.
Bytes = Annotated[float, _quantity(_positive("byte", zero=False))]
Kelvin = Annotated[float, _quantity(_positive("K"))]
#: A temperature difference that must not be 0 (a tolerance).
KelvinAboveZero = Annotated[float, _quantity(_positive("K", zero=False))]
#: A trigger level: a unit string in the source's physical unit, or a plain number in data
#: units (ADC codes, radians); converted when the source is known.
Level = float | str


def _plain_name(name: str) -> str:
    """The run store's rule for names (no `/`, no leading `.`), and at most `MAX_NAME` long."""
    try:
        check_name(name, "name")
    except RunStoreError as exc:
        raise ValueError(str(exc)) from None
    if len(name) > MAX_NAME:
        raise ValueError(f"a name has at most {MAX_NAME} characters, got {len(name)}")
    return name


#: The name of a campaign or of what a step stores: a file and group name in the run.
Name = Annotated[str, AfterValidator(_plain_name)]


class Model(BaseModel):
    """A campaign mapping: unknown keys are errors, values never change after loading, and
    floats are finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Step(Model):
    """A step of any kind; `kind` is the step's one YAML key."""

    kind: str
    name: Name | None = None


def str_keys(value: Any) -> Any:
    """YAML reads `3:` as an int; channel selectors are strings ("3", "1-16", "all")."""
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value
