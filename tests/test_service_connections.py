"""The connection edge under descriptor exhaustion: one log line, idle connections closed, service back after.

Reproduction of issue 17: with a 256-file limit, 300 idle connections made normal requests time
out (no idle limit) and the log filled with "Too many open files" tracebacks.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from pathlib import Path

import httpx
from service_helpers import LOOPBACK, cli_process, free_port

FILE_LIMIT = 256
IDLE_CONNECTIONS = 300


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:  # reset: closed too
        return True


def test_idle_connections_past_the_file_limit_are_closed_logged_once_and_the_server_recovers(
    tiny_checkpoint: Path,
) -> None:
    port = free_port()
    args = ["serve", "--model", str(tiny_checkpoint), "--device", "cpu", "--port", str(port)]
    args += ["--timeout-keep-alive", "2"]
    lines: list[str] = []
    with cli_process(args, port=port, preexec_fn=_limit_files) as (process, base):
        assert process.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
        reader.start()
        idle: list[socket.socket] = []
        try:
            for _ in range(IDLE_CONNECTIONS):  # connected by the kernel, never a byte sent
                idle.append(socket.create_connection((LOOPBACK, port), timeout=5))
            time.sleep(5)  # the server runs out of descriptors and retries its accepts meanwhile
            deadline = time.monotonic() + 60
            still_open = [s for s in idle if not _closed_by_server(s, deadline)]
            assert not still_open, f"{len(still_open)} idle connections were never closed by the server"
        finally:
            for sock in idle:
                with contextlib.suppress(OSError):
                    sock.close()
        response = httpx.post(f"{base}/v1/rerank", json={"query": "red", "documents": ["a red shoe", "b"]}, timeout=60)
        assert response.status_code == 200, response.text
        assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "ok"
        process.terminate()
        process.wait(timeout=30)
        reader.join(10)
    log = "".join(lines)
    about_files = [line for line in lines if "open files" in line or "accept" in line.lower()]
    assert "Traceback" not in log, log[-3000:]
    assert 1 <= len(about_files) <= 3, about_files
