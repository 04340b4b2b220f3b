"""The SQUID FLL electronics' contract: the session, per-channel settings, the lock status."""

from __future__ import annotations

from cryodaq.acquisition.conformance import session, settings
from cryodaq.acquisition.conformance.core import Check, Contract, Outcome, Target, ensure, passed
from cryodaq.drivers.kinds import SquidKind


def lock_status(t: Target) -> Outcome:
    """`locked` is a bool, False for a channel in open loop (AMP) after reset."""
    t.inst.reset()
    ch = t.inst.channel(t.inst.channel_ids[0])
    ch.mode = "AMP"
    locked = ch.locked
    ensure(isinstance(locked, bool), f"channel {ch.ch} locked is {locked!r}, not a bool")
    ensure(locked is False, f"channel {ch.ch} reports a lock in open loop (AMP)")
    return passed(f"channel {ch.ch} in AMP: locked is False")


CONTRACT = Contract(
    "squid",
    (*session.CHECKS, *settings.checks(SquidKind), Check("lock status", lock_status)),
)
