"""One writer per run directory: an exclusive lock the kernel releases when the process dies."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from cryodaq.acquisition.errors import CryodaqError

LOCK_NAME = ".lock"


class RunLocked(CryodaqError):
    """Another process holds the run directory (it is writing or analysing it)."""


class RunLock:
    """`flock` on `<run_dir>/.lock`, taken without waiting; the file says who holds it.

    A process that dies (SIGKILL, power cut) releases it with its file descriptors, so a
    crashed run never stays locked; a live one is never written by two processes.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self, doing: str) -> RunLock:
        """Take the lock for `doing` (shown to a process refused it); `RunLocked` if held."""
        path = self.run_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunLocked(f"{self.run_dir}: in use by {holder}; wait until it ends") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({doing})\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go of the lock (the lock file stays; it is empty when nobody holds it)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
