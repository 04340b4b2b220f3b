"""The run directory pattern `output`: only `{name}` and `{start:...}`, with bounded widths."""

from __future__ import annotations

import re
import string
from datetime import datetime

#: The fields a pattern may name: the campaign's name and the run's start (a strftime format).
FIELDS = ("name", "start")
#: Longest pattern, widest field width or precision, longest path, longest path component.
MAX_PATTERN = 1024
MAX_WIDTH = 255
MAX_PATH = 4096
MAX_COMPONENT = 255
_NAME_WIDTHS = re.compile(r"\d+")
_STRFTIME_WIDTHS = re.compile(r"%[-_0^#]*(\d+)")
_SAMPLE_START = datetime(2000, 12, 31, 23, 59, 59, 999999)


def check_output(pattern: str, name: str = "x") -> str:
    """`pattern` if it names only `{name}` and `{start:FORMAT}`, with widths of at most
    `MAX_WIDTH`, and gives a run directory path of bounded length for campaign `name`;
    otherwise a `ValueError` saying what is wrong."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"an output pattern has at most {MAX_PATTERN} characters")
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise ValueError(f"{exc} (a literal brace is written {{{{ or }}}})") from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        shown = f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
        if field not in FIELDS or conversion or "{" in spec:
            raise ValueError(f"{shown}: an output pattern takes {{name}} and {{start:FORMAT}} "
                             "(FORMAT: strftime, e.g. %Y%m%d-%H%M%S) only")
        widths = (_NAME_WIDTHS if field == "name" else _STRFTIME_WIDTHS).findall(spec)
        if any(len(w) > 3 or int(w) > MAX_WIDTH for w in widths):
            raise ValueError(f"{shown}: a width above {MAX_WIDTH}")
    try:
        path = pattern.format(name=name, start=_SAMPLE_START)
    except ValueError as exc:
        raise ValueError(f"cannot make a run directory name from it: {exc}") from None
    if len(path) > MAX_PATH or any(len(p.encode()) > MAX_COMPONENT for p in path.split("/")):
        raise ValueError(f"gives a run directory path longer than {MAX_PATH} characters or "
                         f"a name in it longer than {MAX_COMPONENT} bytes")
    return pattern
