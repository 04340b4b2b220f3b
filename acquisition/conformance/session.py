"""Checks every kind shares: identity, reset, errors, timeouts and late replies of the session."""

from __future__ import annotations

import time

from cryodaq.acquisition.conformance.core import (
    SIM_ONLY,
    Check,
    Outcome,
    Target,
    ensure,
    passed,
    refused,
    skipped,
)
from cryodaq.drivers.errors import InstrumentError, InstrumentTimeout

#: Bad commands sent in one message to overflow an error queue (SCPI asks for >= 2 entries).
FLOOD = 40
#: The simulated instruments' error-queue depth (the last entry then says -350).
SIM_QUEUE = 32


def _no_error(t: Target) -> bool:
    reply = t.inst.query("SYST:ERR?")
    return int(float(reply.split(",", 1)[0])) == 0


def identifies(t: Target) -> Outcome:
    idn = t.inst.idn
    ensure(bool(idn.strip()), "*IDN? answered an empty string")
    t.inst.reset()
    summary = t.inst.summary()
    ensure(bool(summary) and all(isinstance(k, str) for k in summary),
           f"summary() after reset gave {summary!r}, not a mapping of names to values")
    return passed(f"*IDN? {idn}; *RST; summary of {len(summary)} entries")


def unknown_command(t: Target) -> Outcome:
    """An undefined header is an instrument error (-113, from the error queue), not a timeout,
    and the session stays in step."""
    limit = 2 * t.inst.timeout_s + 0.5
    start = time.monotonic()
    error = refused(lambda: t.inst.query("NOPE?"), InstrumentError, "query 'NOPE?'")
    elapsed = time.monotonic() - start
    ensure(not isinstance(error, InstrumentTimeout), f"query 'NOPE?' gave a timeout: {error}")
    ensure("-113" in str(error), f"query 'NOPE?' did not report -113: {error}")
    ensure(elapsed < limit, f"query 'NOPE?' took {elapsed:.2f} s (limit {limit:.2f} s)")
    error = refused(lambda: t.inst.write("NOPE 1"), InstrumentError, "write 'NOPE 1'")
    ensure("-113" in str(error), f"write 'NOPE 1' did not report -113: {error}")
    ensure(bool(t.inst.idn), "*IDN? did not answer after the refusals")
    return passed(f"-113 for 'NOPE?' within {elapsed:.2f} s and for 'NOPE 1'; still in step")


def error_queue(t: Target) -> Outcome:
    """A flooded error queue is read to its end: nothing is left for the next command."""
    t.inst.resource.write(";".join(["NOPE"] * FLOOD))
    error = refused(lambda: t.inst.check_errors(f"{FLOOD} x NOPE"), InstrumentError,
                    "error-queue check")
    text = str(error)
    ensure("-113" in text, f"{FLOOD} bad commands: no -113 reported: {text}")
    if t.sim is not None:
        kept = text.count('-113,"Undefined header')
        ensure(kept == SIM_QUEUE - 1 and text.endswith('-350,"Queue overflow"'),
               f"{FLOOD} bad commands: {kept} x -113 reported, want {SIM_QUEUE - 1} then -350")
    t.inst.check_errors("the command after")
    return passed(f"{FLOOD} bad commands reported at once; the queue is empty after")


def silent_instrument(t: Target) -> Outcome:
    if t.sim is None:
        return skipped(SIM_ONLY.format("fall silent"))
    limit = 2 * t.inst.timeout_s
    start = time.monotonic()
    with t.sim.silent():
        error = refused(lambda: t.inst.idn, InstrumentTimeout, "*IDN? to a silent instrument")
    elapsed = time.monotonic() - start
    ensure("timeout" in str(error), f"the timeout does not say so: {error}")
    ensure(elapsed < limit, f"the timeout took {elapsed:.2f} s (limit {limit:.2f} s)")
    ensure(bool(t.inst.idn), "*IDN? did not answer once the instrument spoke again")
    return passed(f"InstrumentTimeout within {elapsed:.2f} s; answers again afterwards")


def late_replies(t: Target) -> Outcome:
    """A reply after the timeout (just after it, or after the first resynchronisation probe
    gave up too, within the next exchange's) makes that query a timeout and is dropped, never
    read as the answer to a later query."""
    if t.sim is None:
        return skipped(SIM_ONLY.format("answer late"))
    identity = t.inst.idn
    timeout = t.inst.timeout_s
    soon, later = timeout + 0.3, timeout + min(0.7, timeout + 0.2)
    for query, delay in (("SYST:ERR?", soon), ("SYST:ERR?", later), ("*IDN?", soon)):
        case = f"{query} answered {delay:.2f} s late"
        t.sim.delay_next_reply(delay)
        refused(lambda q=query: t.inst.query(q), InstrumentTimeout, case)
        ensure(t.inst.idn == identity, f"{case}: the next *IDN? read a stale reply")
        ensure(_no_error(t), f"{case}: SYST:ERR? read a stale reply or an error")
        ensure(t.inst.idn == identity, f"{case}: *IDN? out of step afterwards")
    return passed("3 late replies: each a timeout, none read by a later query")


CHECKS = (
    Check("identifies and resets", identifies),
    Check("unknown command is an error", unknown_command),
    Check("error queue read to its end", error_queue),
    Check("silent instrument is a timeout", silent_instrument),
    Check("late reply never answers the next query", late_replies),
)
