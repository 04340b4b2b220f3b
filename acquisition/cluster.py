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

from acquisition.errors import CryodaqError


class ClusterError(CryodaqError):
    """No cluster: Dask is not installed, the scheduler does not answer, or bad options."""


@dataclass(frozen=True)
class ClusterSpec:
    """`workers` local workers (one process each unless `processes` is False), or the running
    scheduler at `scheduler` ("tcp://HOST:PORT"); not both."""

    workers: int | None = None
    scheduler: str | None = None
    processes: bool = True
    threads_per_worker: int = 1
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.scheduler is not None:
            raise ClusterError("give --workers N (local cluster) or --scheduler ADDRESS, not both")
        if self.workers is not None and self.workers < 1:
            raise ClusterError(f"--workers must be >= 1, got {self.workers}")
        if self.threads_per_worker < 1:
            raise ClusterError(f"threads_per_worker must be >= 1, got {self.threads_per_worker}")

    @property
    def wanted(self) -> bool:
        """True if the user asked for a cluster at all."""
        return self.workers is not None or self.scheduler is not None


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
    cluster = distributed.LocalCluster(
        n_workers=spec.workers or 1,
        threads_per_worker=spec.threads_per_worker,
        processes=spec.processes,
        dashboard_address=None,
        silence_logs=logging.WARNING,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client
