"""Dask clusters for cryodaq: a local one started on demand, or an existing scheduler.

Dask (`dask[distributed]`) is the optional extra `cryodaq[cluster]`; it is imported only here
and only when a cluster is asked for, so a plain install runs everything serially.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryodaq.acquisition.errors import CryodaqError


class ClusterError(CryodaqError):
    """No cluster: Dask is not installed, the scheduler does not answer, or bad options."""


@dataclass(frozen=True)
class ClusterSpec:
    """`workers` local workers (one process each unless `processes` is False), or the running
    scheduler at `scheduler` ("tcp://HOST:PORT"); not both. On a local cluster the tasks a
    dying worker process held are re-run `allowed_failures` times by Dask, then given up
    (`KilledWorker`): 0, as the callers re-run them themselves, alone (an analysis channel)
    or not at all (a board: `--resume`); an existing scheduler keeps its own setting."""

    workers: int | None = None
    scheduler: str | None = None
    processes: bool = True
    threads_per_worker: int = 1
    connect_timeout_s: float = 10.0
    allowed_failures: int = 0

    def __post_init__(self) -> None:
        if self.workers is not None and self.scheduler is not None:
            raise ClusterError("give --workers N (local cluster) or --scheduler ADDRESS, not both")
        if self.workers is not None and self.workers < 1:
            raise ClusterError(f"--workers must be >= 1, got {self.workers}")
        if self.threads_per_worker < 1:
            raise ClusterError(f"threads_per_worker must be >= 1, got {self.threads_per_worker}")
        if self.allowed_failures < 0:
            raise ClusterError(f"allowed_failures must be >= 0, got {self.allowed_failures}")

    @property
    def wanted(self) -> bool:
        """True if the user asked for a cluster at all."""
        return self.workers is not None or self.scheduler is not None


#: Dask settings of local workers. Dask sets MALLOC_TRIM_THRESHOLD_=65536 in every worker so
#: that freed memory goes back to the OS at once; with the pipelines' many short-lived arrays
#: it cost 7-10 % more CPU (system time 0.5-0.7 s instead of 0.1 s per 64 channels of `pulses`,
#: docs/scaling.md). Workers run with glibc's default (dynamic) trimming instead.
LOCAL_WORKER_CONFIG: dict[str, Any] = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError(
            "Dask is not installed: pip install 'cryodaq[cluster]' (dask[distributed], pyzmq)"
        ) from None
    return distributed


@contextlib.contextmanager
def connect(spec: ClusterSpec) -> Iterator[Any]:
    """A `distributed.Client` on the cluster `spec` describes; a local cluster is closed on exit
    (an existing scheduler is left running)."""
    distributed = _distributed()
    if spec.scheduler is not None:
        try:
            client = distributed.Client(spec.scheduler, timeout=spec.connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"--scheduler {spec.scheduler}: no Dask scheduler answers there ({exc})"
            ) from None
        with client:
            yield client
        return
    import dask.config  # installed with distributed

    with dask.config.set(LOCAL_WORKER_CONFIG):  # read as the worker processes start
        cluster = distributed.LocalCluster(
            n_workers=spec.workers or 1,
            threads_per_worker=spec.threads_per_worker,
            processes=spec.processes,
            dashboard_address=None,
            silence_logs=logging.WARNING,
            scheduler_kwargs={"allowed_failures": spec.allowed_failures},
        )
    with cluster, distributed.Client(cluster) as client:
        yield client
