"""Serve simulated instruments over TCP, one SCPI socket each, on 127.0.0.1.

Unchanged drivers then reach them through pyvisa-py as `TCPIP::127.0.0.1::PORT::SOCKET`,
exactly as they reach a real instrument's raw socket.
"""

from __future__ import annotations

import logging
import socketserver
import threading
import time

from cryodaq.sim_instruments.device import PhysicsDevice
from cryodaq.sim_instruments.scpi import MAX_MESSAGE_BYTES

logger = logging.getLogger(__name__)

RECV_BYTES = 1 << 16
SEND_CHUNK = 1 << 20


class _Handler(socketserver.BaseRequestHandler):
    """One client: messages end at LF; a line longer than the parser's limit is dropped
    (-363), and no input, however malformed, ends the session or the server."""

    server: InstrumentServer

    def handle(self) -> None:
        pending = bytearray()
        overrun = False  # dropping the rest of a line longer than MAX_MESSAGE_BYTES
        while True:
            try:
                data = self.request.recv(RECV_BYTES)
            except OSError:
                return
            if not data:
                return
            pending += data
            while (end := pending.find(b"\n")) >= 0:
                line = bytes(pending[: end + 1])
                del pending[: end + 1]
                if overrun:
                    overrun = False
                    self._overrun()
                elif not self._exchange(line):
                    return
            if len(pending) > MAX_MESSAGE_BYTES:  # no line end in sight: drop, do not hoard
                pending.clear()
                overrun = True

    def _overrun(self) -> None:
        with self.server.exchange_lock:
            self.server.device.push_error(
                -363, f"Input buffer overrun; line over {MAX_MESSAGE_BYTES} bytes dropped"
            )

    def _exchange(self, message: bytes) -> bool:
        device = self.server.device
        with self.server.exchange_lock:  # one message and its reply at a time per instrument
            try:
                device.write(message)
            except Exception as exc:  # a fault of one message must not end the session
                logger.exception("%s: message %r failed", device.name, message[:80])
                device.push_error(-300, f"Device-specific error; {type(exc).__name__}")
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
