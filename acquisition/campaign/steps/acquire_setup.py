"""An `acquire` step as the acquisition engine needs it: block source (one instrument, or
several on one sample clock joined), trigger configuration (thresholds in sigma from the
noise measured first), sinks and the metadata stored with the data."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryodaq.acquisition.campaign.steps.acquire_noise import (
    learn_sigma,
    sigma_multiple,
    trigger_metadata,
)
from cryodaq.acquisition.campaign.steps.base import StepError
from cryodaq.acquisition.clock import RunClock
from cryodaq.acquisition.cluster.channels import OffsetSource, shifted
from cryodaq.acquisition.pipelines.stored_runs import jsonable
from cryodaq.acquisition.rig import channel_selection
from cryodaq.acquisition.stream.engine import Acquisition, SinkSpec
from cryodaq.acquisition.stream.joined_source import JoinedSource, JoinedSourceError
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


def _level(value: float | str | None, source: BlockSource, sigma: float | None) -> float | None:
    """A trigger level in data units: plain numbers as they are, unit strings converted,
    `N sigma` as N times the channel's measured kernel noise `sigma`."""
    if value is None or isinstance(value, int | float):
        return value
    n = sigma_multiple(value)
    if n is not None:  # no sigma: a channel without noise (see `acquire_noise`), trigger off
        return None if sigma is None else n * sigma
    return to_si(value, source.unit) / source.units_per_value


def channel_specs(step: AcquireStep, channels: tuple[int, ...]) -> dict[int, TriggerSpec]:
    """The trigger settings of each of `channels` ("all" first, then specific selectors)."""
    per_channel: dict[int, TriggerSpec] = {}
    for selector in sorted(step.trigger, key=lambda s: s != "all"):
        for ch in channel_selection(selector, channels):
            per_channel[int(ch)] = step.trigger[selector]
    return per_channel


def trigger_config(
    step: AcquireStep,
    source: BlockSource,
    channels: tuple[int, ...],
    sigma: Mapping[int, float] | None = None,
) -> TriggerConfig:
    """The engine's configuration for `step` on a source with `channels`; `sigma`: each
    channel's measured edge-kernel noise (for thresholds given in sigma)."""
    rate = source.sample_rate_hz
    sigma = sigma or {}
    triggers = {
        ch: ChannelTrigger(
            polarity=spec.polarity,
            edge_threshold=_level(spec.edge_threshold, source, sigma.get(ch)),
            level=_level(spec.level, source, None),
            auto_period=0 if spec.noise_every is None else max(1, round(spec.noise_every * rate)),
            edge_width=spec.edge_width,
        )
        for ch, spec in channel_specs(step, channels).items()
    }
    return TriggerConfig(
        record_length=step.record_length,
        pretrigger=step.pretrigger,
        channels=triggers,
        holdoff=step.holdoff,
        fanout={int(k): [int(x) for x in v] for k, v in step.fanout.items()},
        coincidence_window=coincidence_samples(step.coincidence_window, rate),
        coincidence_min=step.coincidence_min,
    )


def coincidence_samples(window_s: float, rate_hz: float) -> int:
    """A coincidence window in whole samples: rounded up (hits 1 us apart at 2 us sampling
    may fall on neighbouring samples), 0 for none."""
    return 0 if window_s <= 0 else max(1, math.ceil(window_s * rate_hz - 1e-9))


def _joined(
    insts: Sequence[Instrument], step: AcquireStep, clock: RunClock
) -> tuple[BlockSource, tuple[int, ...], dict[int, tuple[str, int]]]:
    """The step's source (several instruments: one `JoinedSource`), its enabled channels and
    each channel's (instrument, own channel)."""
    sources, channels, origin, offset, offsets = [], [], {}, 0, []
    for inst in insts:
        source = _source(inst, step, clock)
        own = [c for c in source.device.channel_ids if source.device.channel(c).enabled]
        sources.append(source)
        offsets.append(offset)
        for c in own:
            channels.append(c + offset)
            origin[c + offset] = (inst.name, c)
        offset += max(int(c) for c in source.device.channel_ids)
    if len(sources) == 1:
        return sources[0], tuple(channels), origin
    try:
        return JoinedSource(sources, offsets), tuple(channels), origin
    except JoinedSourceError as exc:
        raise StepError(f"acquire {step.name}: {exc}") from None


def acquisition_for(
    inst: Instrument | Sequence[Instrument],
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
    """The acquisition of `step` on board `inst` (or several instruments on one sample clock,
    read as one source) into `store_name` of `store`; its channel numbers shifted by `offset`
    (a board part of a multi-board step); `sinks(channels)` gives further sinks."""
    insts = [inst] if isinstance(inst, Instrument) else list(inst)
    source, channels, origin = _joined(insts, step, clock)
    if not channels:
        names = ", ".join(repr(i.name) for i in insts)
        raise StepError(f"acquire {step.name}: no channel of {names} is enabled")
    specs = channel_specs(step, channels)
    sigma = None
    if any(sigma_multiple(s.edge_threshold) is not None for s in specs.values()):
        sigma = learn_sigma(source, channels, specs, step.noise_s, step.name)
    config = trigger_config(step, source, channels, sigma)
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
    devices = {i.name: i for i in insts}
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
            "instrument": jsonable(insts[0].settings()),
            **({"instruments": {n: jsonable(i.settings()) for n, i in devices.items()}}
               if len(insts) > 1 else {}),
            # which instrument (and its own channel number) each stored channel came from
            "channel_sources": {str(c + offset): list(origin[c]) for c in channels},
            "channel_settings": {
                str(c + offset): jsonable(devices[origin[c][0]].channel(origin[c][1]).settings())
                for c in channels
            },
            "trigger": {
                "record_length": config.record_length,
                "pretrigger": config.pretrigger,
                "holdoff": config.holdoff or config.record_length,
                "coincidence_window": config.coincidence_window,
                "channels": trigger_metadata(config, sigma, specs, offset),
                **({"noise_s": step.noise_s} if sigma is not None else {}),
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
