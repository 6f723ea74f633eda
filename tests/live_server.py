"""A real server process started by tests: start it, wait until it answers, kill it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class LiveServer:
    """A server process on 127.0.0.1 started by a test, with its log."""

    process: subprocess.Popen
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Send ``sig`` and wait for the exit code (killed, and a failure, past ``timeout``)."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server did not stop within {timeout} s:\n{self.log()}") from None


def start_server(command: list[str], env: dict[str, str], folder: Path) -> LiveServer:
    """Start a real server process in ``folder`` (``command`` gets ``--host`` and ``--port``,
    the environment has no ``AGORA_*`` but ``env``'s) and wait until /health answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")} | env
    log_path = folder / f"server-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=full_env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: cleanup reaches worker processes
        )
    server = LiveServer(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 90  # two workers import the whole engine each
    while True:
        if proc.poll() is not None:
            raise AssertionError(server.log())
        try:
            httpx.get(f"{server.base_url}/health", timeout=2)
            return server
        except httpx.TransportError:
            if time.monotonic() > deadline:
                kill_server(server)
                raise AssertionError(server.log()) from None
            time.sleep(0.2)


def kill_server(server: LiveServer) -> None:
    """Kill the server's whole process group (workers outlive a killed parent otherwise)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
