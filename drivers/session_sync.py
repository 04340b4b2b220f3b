"""Putting a message session back in step after a timeout.

An instrument that answers after the driver gave up leaves its late reply in the input; the
next query would read it as its own answer, and every reply after it would be one off, with
no error anywhere. So after a timeout the driver drops whatever still arrives for a short
grace time, then asks `*IDN?` and drops every line before the answer that is the instrument's
identity (an instrument answers in order, so anything before it is a late reply), and one
more line if it follows at once (the late reply of a timed-out `*IDN?` is an identity too).
If the identity never comes, the session stays out of step and the next exchange tries
again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from pyvisa.errors import VisaIOError
from pyvisa.resources import MessageBasedResource

#: After a timeout, lines that still arrive this long are dropped.
GRACE_S = 0.2
#: Lines read at most while waiting for the identity.
MAX_LINES = 64


@dataclass
class SyncResult:
    """Whether the session is in step again, and the late lines dropped on the way."""

    in_step: bool
    dropped: list[str] = field(default_factory=list)


def looks_like_identity(line: str, identity: str | None) -> bool:
    """`line` is the instrument's `*IDN?` answer: equal to `identity` when that is known, else
    four comma-separated fields with a maker's name (not a number) first."""
    if identity is not None:
        return line == identity
    fields = line.split(",")
    if len(fields) != 4 or not fields[0].strip():
        return False
    try:
        float(fields[0])
    except ValueError:
        return True
    return False


def _line(resource: MessageBasedResource) -> str:
    """One line as text; a late reply may be (part of) a binary block, so bytes that are not
    ASCII are replaced, never a decoding error."""
    return resource.read_raw().decode("ascii", errors="replace").strip()


def resynchronise(resource: MessageBasedResource, identity: str | None,
                  probe_timeout_s: float) -> SyncResult:
    """Drop late replies and find the `*IDN?` answer, waiting `probe_timeout_s` for each line
    (see module docstring); the resource's timeout is left as it was."""
    timeout_ms = resource.timeout
    out = SyncResult(False)
    try:
        resource.timeout = 1000.0 * GRACE_S
        for _ in range(MAX_LINES):
            try:
                out.dropped.append(_line(resource))
            except VisaIOError:
                break  # quiet: nothing more is coming for now
        resource.timeout = 1000.0 * probe_timeout_s
        resource.write("*IDN?")
        for _ in range(MAX_LINES):
            line = _line(resource)
            if looks_like_identity(line, identity):
                out.in_step = True
                break
            out.dropped.append(line)
        if out.in_step:  # the late reply was an identity too (a timed-out *IDN?): ours follows
            resource.timeout = 1000.0 * GRACE_S
            with contextlib.suppress(VisaIOError):
                out.dropped.append(_line(resource))
    except (VisaIOError, OSError):
        pass  # still silent: out of step
    finally:
        resource.timeout = timeout_ms
    return out
