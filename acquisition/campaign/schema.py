"""Campaign files: the schema of `config/campaigns/*.yaml`.

```yaml
name: quickstart
rig: ../rigs/maxs30_sim.yaml          # a rig file (relative to this file) or an inline mapping
output: runs/{name}-{start:%Y%m%d-%H%M%S}
store: {records_codec: lz4, buffer: 64 MiB}  # optional (defaults; docs/run_store.md)
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
Each step is a one-key mapping: the key names the kind, one of `steps.table.HANDLERS`, whose
module holds the step's model. Quantities are unit strings parsed by
`cryodaq.acquisition.units` (plain numbers are SI, or data units for trigger levels).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from cryodaq.acquisition.campaign.fields import Bytes, Model, Name
from cryodaq.acquisition.campaign.output_pattern import check_output
from cryodaq.acquisition.campaign.steps.table import HANDLERS, STEP_KINDS
from cryodaq.acquisition.store.codecs import DEFAULT_RECORDS_CODEC, RECORDS_CODECS
from cryodaq.acquisition.store.format import DEFAULT_BUFFER_BYTES

#: The model of each step kind.
STEP_MODELS = {kind: handler.model for kind, handler in HANDLERS.items()}
#: The single key of a step whose body is a scalar or a plain mapping, and where it goes.
SCALAR_BODY = {kind: h.scalar_body for kind, h in HANDLERS.items() if h.scalar_body}


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
    Annotated[Union[tuple(STEP_MODELS.values())], Field(discriminator="kind")],  # noqa: UP007
    BeforeValidator(_tag_step),
]


class StoreSpec(Model):
    """How the run store writes this campaign's run."""

    #: What the records chunks are compressed with (`store.codecs`): lz4 stores less and costs
    #: less CPU; zstd is for readers without Blosc.
    records_codec: Literal[tuple(RECORDS_CODECS)] = DEFAULT_RECORDS_CODEC  # type: ignore[valid-type]
    #: The most acquired data the store holds in memory before it writes and commits it (it
    #: also commits every 0.5 s): what a crash can lose, at most.
    buffer: Bytes = DEFAULT_BUFFER_BYTES


class Campaign(Model):
    """A measurement campaign: a rig and the steps to run on it."""

    name: Name
    description: str = ""
    rig: str | dict[str, Any]
    output: str = "runs/{name}-{start:%Y%m%d-%H%M%S}"
    store: StoreSpec = Field(default_factory=StoreSpec)
    steps: list[AnyStep] = Field(min_length=1)

    @field_validator("output")
    @classmethod
    def _output(cls, pattern: str, info: ValidationInfo) -> str:
        return check_output(pattern, info.data.get("name", "x"))


for _model in STEP_MODELS.values():  # containers name AnyStep before it exists
    _model.model_rebuild(_types_namespace={"AnyStep": AnyStep})
Campaign.model_rebuild()
