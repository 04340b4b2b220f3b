"""Checks of a kind's declared settings: read-back, per channel, reset, ranges refused early."""

from __future__ import annotations

import math
from typing import Any

from cryodaq.acquisition.conformance.core import (
    Check,
    CheckFailed,
    Outcome,
    Target,
    ensure,
    passed,
    refused,
)
from cryodaq.drivers.base import OneOf, Range, SCPINode, Setting
from cryodaq.drivers.errors import InstrumentError, SettingRangeError
from cryodaq.drivers.kinds import channel_protocol, declared_names

#: Relative tolerance of a read-back (instruments round to their DAC or grid).
READBACK_RTOL = 1e-3

Node = tuple[str, SCPINode, list[str]]


def same(a: Any, b: Any) -> bool:
    """Whether two setting values agree (strings in any case, numbers within READBACK_RTOL)."""
    if isinstance(a, str) or isinstance(b, str):
        return str(a).upper() == str(b).upper()
    return math.isclose(float(a), float(b), rel_tol=READBACK_RTOL, abs_tol=1e-15)


def _round_number(x: float) -> float:
    """`x` rounded to 1, 2, 2.5 or 5 times a power of ten: values instruments hold exactly
    (a rate that divides their clock, a value on their DAC grid)."""
    if x == 0:
        return 0.0
    scale = 10.0 ** math.floor(math.log10(abs(x)))
    mantissa = min((1.0, 2.0, 2.5, 5.0, 10.0), key=lambda m: abs(abs(x) / scale - m))
    return math.copysign(mantissa * scale, x)


def other_value(setting: Setting[Any], current: Any) -> Any | None:
    """An allowed value of `setting` that differs from `current` (None if there is none)."""
    allowed = setting.allowed
    if setting.kind is bool:
        return not current
    if isinstance(allowed, OneOf):
        return next((v for v in allowed.values if not same(v, current)), None)
    if isinstance(allowed, Range):
        points = [allowed.low + share * (allowed.high - allowed.low) for share in (0.25, 0.75)]
        for value in [*map(_round_number, points), *(float(f"{x:.2g}") for x in points)]:
            value = int(round(value)) if setting.kind is int else value
            if allowed.low <= value <= allowed.high and not same(value, current):
                return value
    return None


def outside_value(setting: Setting[Any]) -> Any | None:
    """A value outside `setting`'s allowed ones (None for a bool, which has none)."""
    allowed = setting.allowed
    if isinstance(allowed, Range):
        return allowed.high + max(allowed.high - allowed.low, abs(allowed.high), 1e-12)
    if isinstance(allowed, OneOf):
        if all(isinstance(v, str) for v in allowed.values):
            return "NOT" + "".join(str(v) for v in allowed.values)
        return 2 * max(abs(float(v)) for v in allowed.values) + 1
    return None


def _nodes(t: Target, protocol: type) -> tuple[list[Node], Node | None]:
    """(instrument and one channel with the settings the kind names, a neighbour channel)."""
    nodes: list[Node] = [("", t.inst, declared_names(protocol))]
    channel = channel_protocol(protocol)
    ids = list(getattr(t.inst, "channel_ids", ()))
    if channel is None or not ids:
        return nodes, None
    names = declared_names(channel)
    ch, other = ids[len(ids) // 2], ids[(len(ids) // 2 + 1) % len(ids)]
    nodes.append((f"channel {ch} ", t.inst.channel(ch), names))
    return nodes, (f"channel {other} ", t.inst.channel(other), names)


def _read(nodes: list[Node]) -> dict[str, Any]:
    return {
        label + name: node.get(node.declared_settings()[name])
        for label, node, names in nodes
        for name in names
    }


def _differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [f"{k} {after[k]!r} (was {v!r})" for k, v in before.items() if not same(v, after[k])]


def round_trip(protocol: type) -> Check:
    """Each setting the kind names takes another allowed value and reads it back; a neighbour
    channel keeps its own; `reset()` brings every one back."""

    def run(t: Target) -> Outcome:
        t.inst.reset()
        nodes, neighbour = _nodes(t, protocol)
        before = _read(nodes)
        aside = _read([neighbour]) if neighbour else {}
        for label, node, names in nodes:
            for name in names:
                setting = node.declared_settings()[name]
                value = other_value(setting, before[label + name])
                if value is None:
                    raise CheckFailed(f"{label}{name}: no second allowed value to set")
                node.set(setting, value)
                got = node.get(setting)
                ensure(same(got, value), f"{label}{name}: set {value!r}, reads back {got!r}")
        if changed := _differences(aside, _read([neighbour]) if neighbour else {}):
            raise CheckFailed(f"{nodes[-1][0]}settings changed {', '.join(changed)}")
        t.inst.reset()
        if changed := _differences(before, _read(nodes)):
            raise CheckFailed(f"reset() left {', '.join(changed)}")
        kept = "; a neighbour channel kept its own" if neighbour else ""
        return passed(f"{len(before)} settings read back what was set{kept}; reset restores")

    return Check("settings round-trip", run)


def ranges(protocol: type) -> Check:
    """Values outside a setting's declared range are refused before they are sent (a
    `SettingRangeError`) and change nothing; so is a channel id the instrument lacks."""

    def run(t: Target) -> Outcome:
        t.inst.reset()
        nodes, _ = _nodes(t, protocol)
        tried = 0
        for label, node, names in nodes:
            for name in names:
                setting = node.declared_settings()[name]
                bad = outside_value(setting)
                if bad is None:
                    ensure(setting.kind is bool, f"{label}{name} declares no allowed values: "
                           "an out-of-range value would reach the instrument")
                    continue
                before = node.get(setting)
                refused(lambda n=node, s=setting, v=bad: n.set(s, v), SettingRangeError,
                        f"{label}{name} = {bad!r}")
                ensure(same(node.get(setting), before), f"{label}{name} changed when refused")
                tried += 1
        ids = [i for i in getattr(t.inst, "channel_ids", ()) if isinstance(i, int)]
        beyond = f"; channel {max(ids) + 1} refused" if ids else ""
        if ids:
            refused(lambda: t.inst.channel(max(ids) + 1), InstrumentError, beyond[2:])
        return passed(f"{tried} out-of-range values refused client-side, nothing changed{beyond}")

    return Check("ranges refused client-side", run)


def checks(protocol: type) -> tuple[Check, ...]:
    """The settings checks of a kind with this protocol."""
    return (round_trip(protocol), ranges(protocol))
