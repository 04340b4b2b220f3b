"""Serving the live page with uvicorn: on 127.0.0.1 unless another address is named, in a
background thread beside a running campaign or in the foreground for `cryodaq live`."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn

from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.live.app import create_app
from cryodaq.acquisition.live.hub import LiveHub
from cryodaq.acquisition.live.watcher import RunWatcher

LOCALHOST = "127.0.0.1"


def bind(host: str, port: int, option: str = "--live-port") -> socket.socket:
    """A listening socket on `host`:`port` (0: any free port); one clear error naming the
    command line `option` that gave the port if it cannot."""
    if not 0 <= port <= 65535:
        raise CryodaqError(f"{option} {port}: a port is 0 (any free one) to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as exc:
        raise CryodaqError(f"live view on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class LiveServer:
    """The live page of `run_dir` on `host`:`port`."""

    def __init__(
        self,
        run_dir: Path,
        host: str = LOCALHOST,
        port: int = 0,
        interval_s: float = 1.0,
        port_option: str = "--live-port",
    ) -> None:
        self.socket = bind(host, port, port_option)
        self.hub = LiveHub(RunWatcher(Path(run_dir)), interval_s)
        self.host = host
        self.port = int(self.socket.getsockname()[1])
        config = uvicorn.Config(
            create_app(self.hub), log_level="warning", lifespan="off",
            timeout_graceful_shutdown=1, access_log=False,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> LiveServer:
        """Serve from a background thread (returns once it serves)."""
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name="live-server",
            daemon=True,
        )  # fmt: skip
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise CryodaqError(f"live view on {self.url}: the server did not start")
            time.sleep(0.02)
        return self

    def finish(self, wait_s: float = 3.0) -> None:
        """The run ended: let the browsers get its end, then stop serving."""
        self.hub.finish(wait_s)
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C."""
        self.server.run(sockets=[self.socket])
