"""Child process of tests/test_bad_input.py: `cryodaq validate` or `run` on each case given on
stdin (JSON), one JSON line per case: exit code, output, seconds and peak memory."""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from typing import Any

from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.rig import Rig

#: Address space the child may grow by after its imports: a runaway ends in MemoryError.
HEADROOM = 1 << 30


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the rig was built: run went past validation")


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmSize, VmHWM, ...)."""
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith(f"{field}:"))
    return int(line.split()[1]) * 1024


def main(mode: str) -> None:
    cases = json.loads(sys.stdin.read())
    if mode == "run":
        Rig.__init__ = _refuse  # type: ignore[method-assign]
    runner = CliRunner()
    runner.invoke(app, cases[0]["args"])  # the warm-up: a valid campaign, lazy imports done
    resource.setrlimit(
        resource.RLIMIT_AS, (_status_bytes("VmSize") + HEADROOM, resource.RLIM_INFINITY)
    )
    for case in cases[1:]:
        print(json.dumps({"id": case["id"], "started": True}), flush=True)
        start = time.perf_counter()
        result = runner.invoke(app, case["args"])
        seconds = time.perf_counter() - start
        output = result.output
        if result.exc_info is not None and not isinstance(result.exception, SystemExit):
            output += "".join(traceback.format_exception(*result.exc_info))
        # Peak RSS of this process image: VmHWM (getrusage's ru_maxrss survives exec, so it
        # would report the parent's peak at fork time).
        maxrss_mb = _status_bytes("VmHWM") / 2**20
        print(json.dumps({"id": case["id"], "code": result.exit_code, "output": output,
                          "seconds": seconds, "maxrss_mb": maxrss_mb}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
