"""The ADC kind's contract: the session, its settings, counted blocks of the enabled channels."""

from __future__ import annotations

from cryodaq.acquisition.conformance import session, settings, streaming
from cryodaq.acquisition.conformance.core import Contract
from cryodaq.acquisition.stream.sources import AdcSource
from cryodaq.drivers.kinds import AdcKind


def prepare(inst: AdcKind) -> tuple[int, ...]:
    """Stream the first and the last channel only (the others disabled)."""
    ids = tuple(inst.channel_ids)
    keep = (ids[0], ids[-1])
    for ch in ids:
        if ch not in keep:
            inst.channel(ch).enabled = False
    return keep


CONTRACT = Contract(
    "adc",
    (*session.CHECKS, *settings.checks(AdcKind), *streaming.checks(prepare, AdcSource)),
)
