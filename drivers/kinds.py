"""The interfaces of the instrument kinds with no industry dialect, as typed protocols."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, get_args, get_origin, get_type_hints

from cryodaq.drivers.adc import AdcBlock
from cryodaq.drivers.base import Setting
from cryodaq.drivers.umux import Sweep, UmuxBlock

# Every kind is also a `cryodaq.drivers.base.Instrument` subclass (a rig opens only those):
# that gives opening, `query`/`write` with the error-queue check, `*IDN?`, `reset`, `summary`,
# settings by name (`declared_settings`, `set`, `settings`) and channel groups. The protocols
# below list what a kind adds and what the acquisition engine, the campaign steps and the rig
# files use of it.


@dataclass(frozen=True)
class Declared:
    """Marks a protocol member that must be a declared `Setting` of this Python type, in this
    SI unit: rig files and `set` steps reach it by name and give it as "500 kHz"."""

    unit: str = ""


class SquidChannelKind(Protocol):
    """One SQUID and its flux-locked loop (`fll.channels.1-32.mode: FLL` in a rig or campaign)."""

    mode: Annotated[str, Declared()]  # "AMP" (open loop, V-Phi curve) or "FLL"
    bias_current: Annotated[float, Declared("A")]
    feedback_resistor: Annotated[float, Declared("ohm")]
    gain_bandwidth: Annotated[float, Declared("Hz")]

    @property
    def locked(self) -> bool:
        """Whether the loop holds its working point."""
        ...


class SquidKind(Protocol):
    """Multi-channel SQUID FLL electronics: per-channel settings only; its output is read by
    an ADC."""

    channel_ids: Sequence[int]

    def channel(self, ch: int) -> SquidChannelKind:
        """Channel `ch`; an `InstrumentError` for an id the electronics does not have."""
        ...


class StreamChannelKind(Protocol):
    """A channel of a streaming instrument: streamed when enabled."""

    enabled: Annotated[bool, Declared()]

    def settings(self) -> dict[str, Any]:
        """Every declared setting of the channel (stored with the data)."""
        ...


class StreamingKind(Protocol):
    """Acquires continuously into an on-board buffer from `start()`; blocks carry the counter
    of their first sample, so samples lost to a full buffer show as a counted gap."""

    channel_ids: Sequence[int]

    def channel(self, ch: int) -> StreamChannelKind:
        """Channel `ch`; an `InstrumentError` for an id the instrument does not have."""
        ...

    def start(self) -> None:
        """Start continuous acquisition; the sample counter restarts at 0."""
        ...

    def stop(self) -> None:
        """Stop acquisition (settings that shape the stream may change again)."""
        ...


class AdcKind(StreamingKind, Protocol):
    """A multi-channel digitiser: the `acquire` step's source (int16 codes)."""

    sample_rate: Annotated[float, Declared("Hz")]
    input_range: Annotated[float, Declared("V")]  # full scale: code 32767

    def fetch(self, samples: int) -> AdcBlock:
        """The next `samples` samples of every enabled channel, waiting until they exist; a
        `SettingRangeError` for a count the instrument cannot give, an `InstrumentError` when
        not running."""
        ...


class UmuxChannelKind(StreamChannelKind, Protocol):
    """One DAC tone and its demodulator."""

    frequency: Annotated[float, Declared("Hz")]  # relative to the LO


class UmuxKind(StreamingKind, Protocol):
    """A microwave SQUID multiplexing board: the `tune` step's instrument and an `acquire`
    source (float32 demodulated phase in rad, one sample per flux-ramp period)."""

    lo_frequency: Annotated[float, Declared("Hz")]
    ramp_frequency: Annotated[float, Declared("Hz")]  # = the demodulated sample rate
    ramp_amplitude: Annotated[int, Declared("Phi0")]
    ramp_on: Annotated[bool, Declared()]

    def channel(self, ch: int) -> UmuxChannelKind:
        """Channel `ch`; an `InstrumentError` for an id the board does not have."""
        ...

    @property
    def channel_budget(self) -> int:
        """Channels the board can demodulate at the present flux ramp."""
        ...

    def set_tone(self, ch: int, frequency_hz: float) -> float:
        """Put channel `ch`'s tone at `frequency_hz` from the LO and enable it; returns the
        frequency the board holds (its DAC grid)."""
        ...

    def sweep(self, start_hz: float, stop_hz: float, points: int) -> Sweep:
        """Complex S21 at `points` baseband frequencies from `start_hz` to `stop_hz`."""
        ...

    def fetch(self, samples: int) -> UmuxBlock:
        """The next `samples` demodulated samples of every enabled channel (as `AdcKind`)."""
        ...


#: The kinds of the conformance kit by the name `cryodaq check-driver` shows.
KINDS: dict[str, type] = {"squid": SquidKind, "adc": AdcKind, "umux": UmuxKind}


def _members(protocol: type) -> tuple[dict[str, Any], list[str]]:
    """A protocol's annotated attributes (name -> type) and its methods and properties."""
    hints = get_type_hints(protocol, include_extras=True)
    methods = [
        name
        for klass in protocol.__mro__
        if getattr(klass, "_is_protocol", False) and klass is not Protocol
        for name, value in vars(klass).items()
        if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, property))
    ]
    return hints, list(dict.fromkeys(methods))


def _declared(hint: Any) -> tuple[type, Declared] | None:
    if get_origin(hint) is not Annotated:
        return None
    kind, *extras = get_args(hint)
    marks = [e for e in extras if isinstance(e, Declared)]
    return (kind, marks[0]) if marks else None


def kind_problems(cls: type, protocol: type, where: str = "") -> list[str]:
    """What `cls` lacks of `protocol` (empty: it satisfies it), one short phrase each."""
    problems: list[str] = []
    hints, methods = _members(protocol)
    declared: dict[str, Setting[Any]] = getattr(cls, "declared_settings", dict)()
    for name, hint in hints.items():
        mark = _declared(hint)
        if mark is None:
            if not hasattr(cls, name):
                problems.append(f"{where}no attribute {name!r}")
            continue
        kind, spec = mark
        setting = declared.get(name)
        if setting is None:
            problems.append(f"{where}no declared setting {name!r}")
        elif setting.kind is not kind or setting.unit != spec.unit:
            problems.append(
                f"{where}{name!r} is {setting.kind.__name__} in {setting.unit!r}, "
                f"not {kind.__name__} in {spec.unit!r}"
            )
    for name in methods:
        if not hasattr(cls, name):
            problems.append(f"{where}no {name!r}")
    channel = channel_protocol(protocol)
    if channel is not None:
        problems += kind_problems(getattr(cls, "channel_class", object), channel, "channel: ")
    return problems


def channel_protocol(protocol: type) -> type | None:
    """The protocol of a kind's channels: what its `channel(ch)` returns."""
    method = getattr(protocol, "channel", None)
    channel = get_type_hints(method).get("return") if method is not None else None
    return channel if getattr(channel, "_is_protocol", False) else None


def declared_names(protocol: type) -> list[str]:
    """The members of `protocol` that must be declared settings, in declaration order."""
    return [name for name, hint in _members(protocol)[0].items() if _declared(hint)]


def kinds_of(cls: type) -> list[str]:
    """The kinds whose protocol `cls` satisfies (usually one)."""
    return [name for name, protocol in KINDS.items() if not kind_problems(cls, protocol)]
