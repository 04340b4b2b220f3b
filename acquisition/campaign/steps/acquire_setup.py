"""An `acquire` step as the acquisition engine needs it: block source, trigger configuration,
sinks and the metadata stored with the data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryodaq.acquisition.campaign.steps.base import StepError
from cryodaq.acquisition.clock import RunClock
from cryodaq.acquisition.cluster.channels import OffsetSource, shifted
from cryodaq.acquisition.pipelines.stored_runs import jsonable
from cryodaq.acquisition.rig import channel_selection
from cryodaq.acquisition.stream.engine import Acquisition, SinkSpec
from cryodaq.acquisition.stream.publisher import ZmqPublisher
from cryodaq.acquisition.stream.sources import AdcSource, BlockSource, UmuxSource
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig
from cryodaq.acquisition.units import to_si
from cryodaq.drivers.adc import Adc16
from cryodaq.drivers.base import Instrument
from cryodaq.drivers.umux import UmuxBoard

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.steps.acquire import AcquireStep, TriggerSpec


def _source(inst: Instrument, step: AcquireStep, clock: RunClock) -> BlockSource:
    if isinstance(inst, Adc16):
        return AdcSource(inst, step.block, clock.time_ns)
    if isinstance(inst, UmuxBoard):
        return UmuxSource(inst, step.block, clock.time_ns)
    raise StepError(
        f"acquire {step.name}: {inst.name!r} is a {type(inst).__name__}, not an ADC or uMUX board"
    )


def _level(value: float | str | None, source: BlockSource) -> float | None:
    """A trigger level in data units: plain numbers as they are, unit strings converted."""
    if value is None or isinstance(value, int | float):
        return value
    return to_si(value, source.unit) / source.units_per_value


def trigger_config(
    step: AcquireStep, source: BlockSource, channels: tuple[int, ...]
) -> TriggerConfig:
    """The engine's configuration for `step` on a source with `channels`."""
    rate = source.sample_rate_hz
    per_channel: dict[int, TriggerSpec] = {}
    for selector in sorted(step.trigger, key=lambda s: s != "all"):  # "all" first, then specific
        for ch in channel_selection(selector, channels):
            per_channel[int(ch)] = step.trigger[selector]
    triggers = {
        ch: ChannelTrigger(
            polarity=spec.polarity,
            edge_threshold=_level(spec.edge_threshold, source),
            level=_level(spec.level, source),
            auto_period=0 if spec.noise_every is None else max(1, round(spec.noise_every * rate)),
        )
        for ch, spec in per_channel.items()
    }
    return TriggerConfig(
        record_length=step.record_length,
        pretrigger=step.pretrigger,
        channels=triggers,
        holdoff=step.holdoff,
        fanout={int(k): [int(x) for x in v] for k, v in step.fanout.items()},
        coincidence_window=round(step.coincidence_window * rate),
        coincidence_min=step.coincidence_min,
    )


def acquisition_for(
    inst: Instrument,
    step: AcquireStep,
    store_name: str,
    duration_s: float,
    store: Any,
    clock: RunClock,
    *,
    offset: int = 0,
    sinks: Callable[[tuple[int, ...]], dict[str, SinkSpec]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Acquisition:
    """The acquisition of `step` on board `inst` into `store_name` of `store`; its channel
    numbers shifted by `offset` (a board part of a multi-board step); `sinks(channels)` gives
    further sinks."""
    source = _source(inst, step, clock)
    channels = tuple(c for c in source.device.channel_ids if source.device.channel(c).enabled)
    if not channels:
        raise StepError(f"acquire {step.name}: no channel of {inst.name!r} is enabled")
    config = trigger_config(step, source, channels)
    if offset:
        source, config = OffsetSource(source, offset), shifted(config, offset)
    extra = sinks(tuple(c + offset for c in channels)) if sinks else {}
    if step.publish is not None:
        publisher = ZmqPublisher(
            step.publish.address,
            [c + offset for c in channels],
            source.dtype,
            source.units_per_value,
            units_per_count=step.publish.units_per_count,
        )
        extra["publish"] = SinkSpec(publisher, policy="drop", maxsize=64)
    return Acquisition(
        source,
        config,
        name=store_name,
        store=store,
        duration_s=duration_s,
        sinks=extra,
        metadata={
            "step": step.name,
            # what the readout was set to: the same data mean the same only with the same settings
            "instrument": jsonable(inst.settings()),
            "channel_settings": {
                str(c + offset): jsonable(source.device.channel(c).settings())
                for c in channels
            },
            "trigger": {
                "record_length": config.record_length,
                "pretrigger": config.pretrigger,
                "holdoff": config.holdoff or config.record_length,
                "coincidence_window": config.coincidence_window,
            },
            **(metadata or {}),
        },
    )


@dataclass(frozen=True)
class StepAcquisition:
    """Builds `step`'s acquisition on one board (picklable: a board task carries it)."""

    step: AcquireStep

    def __call__(
        self,
        inst: Instrument,
        store_name: str,
        duration_s: float,
        store: Any,
        clock: RunClock,
        *,
        offset: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Acquisition:
        return acquisition_for(
            inst, self.step, store_name, duration_s, store, clock,
            offset=offset, metadata=metadata,
        )  # fmt: skip
