"""Serve simulated instruments over TCP, one SCPI socket each, on 127.0.0.1.

Unchanged drivers then reach them through pyvisa-py as `TCPIP::127.0.0.1::PORT::SOCKET`,
exactly as they reach a real instrument's raw socket.
"""

from __future__ import annotations

import socketserver
import threading
import time

from cryodaq.sim_instruments.device import PhysicsDevice

RECV_BYTES = 1 << 16
SEND_CHUNK = 1 << 20


class _Handler(socketserver.BaseRequestHandler):
    server: InstrumentServer

    def handle(self) -> None:
        pending = b""
        while True:
            try:
                data = self.request.recv(RECV_BYTES)
            except OSError:
                return
            if not data:
                return
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if not self._exchange(line + b"\n"):
                    return

    def _exchange(self, message: bytes) -> bool:
        device = self.server.device
        with self.server.exchange_lock:  # one message and its reply at a time per instrument
            device.write(message)
            try:
                while (wait := device.seconds_to_output()) is not None:
                    time.sleep(wait)  # a late reply goes out late, still before the next one
                    chunk, _ = device.read_chunk(SEND_CHUNK)
                    self.request.sendall(chunk)
            except OSError:
                return False
        return True


class InstrumentServer(socketserver.ThreadingTCPServer):
    """A TCP server for one simulated instrument."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, device: PhysicsDevice, port: int, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), _Handler)
        self.device = device
        self.exchange_lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name=f"sim-{self.port}", daemon=True)
        thread.start()
        return thread
