"""Helpers for the RemoteReranker tests: a real ``lychee serve`` and loopback stand-ins for failure modes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from service_helpers import LOOPBACK, cli_server, free_port


@contextlib.contextmanager
def lychee_serve(checkpoint: Path, *extra: str) -> Iterator[str]:
    """A real ``lychee serve`` subprocess on the checkpoint, fp32 on the CPU; yields its base URL."""
    port = free_port()
    args = ["serve", "--model", str(checkpoint), "--port", str(port), "--device", "cpu", "--dtype", "float32", *extra]
    with cli_server(args, port=port) as base:
        yield base


class RequestLog:
    """An httpx event hook that counts the requests a client sends, by ``METHOD URL``."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> None:
        with self._lock:
            self.sent[f"{request.method} {request.url}"] += 1

    def count(self, method: str, suffix: str) -> int:
        return sum(n for key, n in self.sent.items() if key.startswith(method) and key.endswith(suffix))

    def by_server(self, path: str) -> Counter[str]:
        out: Counter[str] = Counter()
        for key, n in self.sent.items():
            if key.endswith(path):
                out[key.split()[1].removesuffix(path)] += n
        return out

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self]}


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    sock.listen(64)
    try:
        yield f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    finally:
        sock.close()


def dead_url() -> str:
    """A loopback URL with nothing listening."""
    return f"http://{LOOPBACK}:{free_port()}"


def scripted_app(script: list[tuple[int, dict[str, str], dict[str, Any]]]) -> Any:
    """A stand-in server that answers /v1/rerank with ``script``'s statuses first, then scores."""
    app = FastAPI()
    app.state.calls = []

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": "scripted", "limits": {"max_documents": 100, "max_body_bytes": 1 << 20}}

    @app.post("/v1/rerank")
    async def rerank(request: Request) -> Any:
        body = await request.json()
        app.state.calls.append((time.monotonic(), request.headers.get("authorization"), body))
        if script:
            status, headers, content = script.pop(0)
            return JSONResponse(content, status_code=status, headers=headers)
        n = len(body["documents"])
        return {"model": "scripted", "results": [{"index": i, "relevance_score": i / n} for i in range(n)]}

    return app
