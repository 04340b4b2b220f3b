"""Campaign files: the schema of `config/campaigns/*.yaml`.

```yaml
name: quickstart
rig: ../rigs/maxs30_sim.yaml          # a rig file (relative to this file) or an inline mapping
output: runs/{name}-{start:%Y%m%d-%H%M%S}
steps:
  - set: {tc.outputs.1.setpoint: 20 mK, fll.channels.1-32.mode: FLL}
  - wait: 30 s
  - wait_stable: {sensor: tc.1, tolerance: 0.2 mK, window: 30 s, timeout: 10 min}
  - acquire: {name: calib, source: adc1, duration: 20 s, trigger: {all: {edge_threshold: 6 mV}}}
  - sweep:
      over: {tc.outputs.1.setpoint: [50 mK, 100 mK]}     # paired lists; `grid:` for products
      steps: [...]
  - repeat: {times: 3, steps: [...]}
  - analyze: {pipeline: pulses, acquisitions: [calib], options: {line_eV: 5898.75}}
```
Each step is a one-key mapping: the key names the kind. Quantities are unit strings parsed by
`cryodaq.acquisition.units` (plain numbers are SI, or data units for trigger levels).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from cryodaq.acquisition.units import to_si

STEP_KINDS = (
    "set",
    "wait",
    "wait_stable",
    "acquire",
    "spectrum",
    "reflection",
    "tune",
    "sweep",
    "analyze",
    "repeat",
)
#: The single key of a step whose body is a scalar or a plain mapping, and where it goes.
SCALAR_BODY = {"wait": "duration", "set": "settings"}


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
    model_config = ConfigDict(extra="forbid", frozen=True)


def _str_keys(value: Any) -> Any:
    """YAML reads `3:` as an int; channel selectors are strings ("3", "1-16", "all")."""
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


class TriggerSpec(Model):
    """Trigger settings of one channel (see `cryodaq.acquisition.stream.trigger.ChannelTrigger`)."""

    polarity: Literal[1, -1, 0] = 1  # 0: both (double meanders), edge triggers only
    edge_threshold: Level | None = None
    level: Level | None = None
    noise_every: Seconds | None = Field(None, description="period of auto (noise) records")


class Step(Model):
    name: str | None = None


class SetStep(Step):
    kind: Literal["set"] = "set"
    settings: dict[str, Any]


class WaitStep(Step):
    kind: Literal["wait"] = "wait"
    duration: Seconds


class WaitStableStep(Step):
    """Wait until `sensor` (INSTRUMENT.CHANNEL of a temperature controller) stays within
    `tolerance` of `target` (default: its loop's setpoint) for `window`."""

    kind: Literal["wait_stable"] = "wait_stable"
    sensor: str
    tolerance: Kelvin
    window: Seconds
    timeout: Seconds
    target: Kelvin | None = None
    poll: Seconds = 1.0


class PublishSpec(Model):
    """Live records on ZeroMQ PUB in dastard's layout (`cryodaq.acquisition.stream.publisher`)."""

    address: str = Field(description='e.g. "tcp://*:5556"')
    units_per_count: float | None = Field(None, gt=0, description="float data: units per count")


class AcquireStep(Step):
    kind: Literal["acquire"] = "acquire"
    name: str
    source: str
    #: More boards acquired at the same time as `source`, one Dask task each (multi-board).
    boards: list[str] = Field(default_factory=list)
    duration: Seconds
    block: int = Field(1 << 15, ge=64, le=1 << 22)
    record_length: int = Field(1024, ge=8, le=1 << 20)
    pretrigger: int = Field(256, ge=1)
    holdoff: int | None = Field(None, ge=1)
    trigger: Annotated[dict[str, TriggerSpec], BeforeValidator(_str_keys)] = Field(
        default_factory=dict
    )
    fanout: dict[int, list[int]] = Field(default_factory=dict)
    coincidence_window: Seconds = 0.0
    coincidence_min: int = Field(2, ge=2)
    publish: PublishSpec | None = None

    @model_validator(mode="after")
    def _geometry(self) -> AcquireStep:
        if self.pretrigger >= self.record_length:
            raise ValueError(
                f"pretrigger ({self.pretrigger}) must be < record_length ({self.record_length})"
            )
        return self


class SpectrumStep(Step):
    kind: Literal["spectrum"] = "spectrum"
    name: str
    instrument: str
    centre: Hertz | None = None
    span: Hertz | None = None
    rbw: Hertz | None = None
    integration: Seconds | None = None


class ReflectionStep(Step):
    kind: Literal["reflection"] = "reflection"
    name: str
    instrument: str
    start: Hertz
    stop: Hertz
    points: int = Field(2001, ge=2, le=100_001)
    power_dBm: float = -30.0


class TuneStep(Step):
    """Sweep the uMUX band, find the resonators, put a tone at each minimum, enable them."""

    kind: Literal["tune"] = "tune"
    instrument: str
    points: int = Field(20_001, ge=101, le=200_001)
    channels: int | None = Field(None, ge=1, description="at most this many tones")


class AnalyzeStep(Step):
    kind: Literal["analyze"] = "analyze"
    pipeline: str
    acquisitions: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


class SweepStep(Step):
    """Run `steps` once per point: `over` pairs equal-length lists, `grid` takes products."""

    kind: Literal["sweep"] = "sweep"
    over: dict[str, list[Any]] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    steps: list[AnyStep]

    @model_validator(mode="after")
    def _points(self) -> SweepStep:
        if not self.over and not self.grid:
            raise ValueError("a sweep needs `over` (paired lists) or `grid` (all combinations)")
        lengths = {len(v) for v in self.over.values()}
        if len(lengths) > 1:
            raise ValueError(f"lists under `over` must have equal lengths, got {sorted(lengths)}")
        return self


class RepeatStep(Step):
    kind: Literal["repeat"] = "repeat"
    times: int = Field(ge=1)
    steps: list[AnyStep]


#: The model of each step kind.
STEP_MODELS: dict[str, type[Step]] = {
    m.model_fields["kind"].default: m
    for m in (SetStep, WaitStep, WaitStableStep, AcquireStep, SpectrumStep, ReflectionStep,
              TuneStep, SweepStep, AnalyzeStep, RepeatStep)
}


def _tag_step(item: Any) -> Any:
    """`{kind: body}` -> the step model's fields (with `kind`)."""
    if not isinstance(item, dict) or len(item) != 1:
        raise ValueError(
            f"a step is a mapping with one key, the step kind ({', '.join(STEP_KINDS)})"
        )
    ((kind, body),) = item.items()
    if kind not in STEP_KINDS:
        return {"kind": kind}  # reported by the union as an unknown tag
    if kind in SCALAR_BODY:
        return {"kind": kind, SCALAR_BODY[kind]: body}
    if not isinstance(body, dict):
        raise ValueError(f"the body of a {kind!r} step must be a mapping")
    return {"kind": kind, **body}


AnyStep = Annotated[
    Annotated[
        SetStep
        | WaitStep
        | WaitStableStep
        | AcquireStep
        | SpectrumStep
        | ReflectionStep
        | TuneStep
        | SweepStep
        | AnalyzeStep
        | RepeatStep,
        Field(discriminator="kind"),
    ],
    BeforeValidator(_tag_step),
]


class Campaign(Model):
    """A measurement campaign: a rig and the steps to run on it."""

    name: str
    description: str = ""
    rig: str | dict[str, Any]
    output: str = "runs/{name}-{start:%Y%m%d-%H%M%S}"
    steps: list[AnyStep] = Field(min_length=1)


SweepStep.model_rebuild()
RepeatStep.model_rebuild()
Campaign.model_rebuild()
