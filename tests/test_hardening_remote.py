"""Hardening of RemoteReranker: one deadline for the whole exchange, and blank API keys refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from service_helpers import LOOPBACK

from lychee_integrations import ConfigurationError, RemoteReranker, ServerTimeoutError

HEALTH = json.dumps({"status": "ok", "model": "drip", "limits": {"max_documents": 100}}).encode()


@contextlib.contextmanager
def trickling_server(
    head: bytes, drip_every: float = 0.5, for_at_most: float = 40.0, *, health_drips: bool = False
) -> Iterator[str]:
    """A raw loopback HTTP server that sends ``head``, then one more byte every ``drip_every`` seconds.

    A body that never ends, or headers that never do; ``GET /health`` answers at once unless
    ``health_drips``.
    """
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(16)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(65536)
                if not data:
                    return
                request += data
            if request.startswith(b"GET /health") and not health_drips:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(HEALTH), HEALTH)
                )
                return
            conn.sendall(head)
            ends = time.monotonic() + for_at_most
            while not stop.is_set() and time.monotonic() < ends:
                conn.sendall(b" ")
                stop.wait(drip_every)

    def serve() -> None:
        listener.settimeout(0.2)  # wakes up to see ``stop``
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


BODY_DRIPS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
HEADERS_DRIP = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: "


@pytest.mark.timeout(120)
@pytest.mark.parametrize("head", [BODY_DRIPS, HEADERS_DRIP], ids=["body-drips", "headers-drip"])
def test_a_trickling_server_fails_at_the_timeout_sync_and_async(head: bytes) -> None:
    with trickling_server(head) as url:
        reranker = RemoteReranker(url, timeout=2)
        started = time.monotonic()
        with pytest.raises(ServerTimeoutError, match=r"did not answer within 2 s") as caught:
            reranker.score("q", ["a", "b"])
        assert time.monotonic() - started < 10  # 2 s and a loaded machine's slack, not the 40 s of drip
        assert caught.value.url is not None and caught.value.url.startswith(url)
        started = time.monotonic()
        with pytest.raises(ServerTimeoutError, match=r"did not answer within 2 s"):
            asyncio.run(RemoteReranker(url, timeout=2).ascore("q", ["a", "b"]))
        assert time.monotonic() - started < 10


@pytest.mark.timeout(120)
def test_a_trickling_health_check_is_bounded_too() -> None:
    with trickling_server(BODY_DRIPS, health_drips=True) as url:
        started = time.monotonic()
        with pytest.raises(ServerTimeoutError):
            RemoteReranker(url, timeout=2, max_retries=3).score("q", ["a"])
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("key", ["", "   ", "\t\n"])
def test_a_blank_api_key_is_refused_at_construction(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LYCHEE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="api_key is blank"):
        RemoteReranker("http://127.0.0.1:1", api_key=key)
    monkeypatch.setenv("LYCHEE_API_KEY", key)
    with pytest.raises(ConfigurationError, match=r"\$LYCHEE_API_KEY is blank"):
        RemoteReranker("http://127.0.0.1:1")


def test_an_api_key_that_cannot_be_a_header_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LYCHEE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="line break"):
        RemoteReranker("http://127.0.0.1:1", api_key="key\r\nX-Injected: 1")


def test_a_real_key_given_or_from_the_environment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LYCHEE_API_KEY", "from-env")
    assert RemoteReranker("http://127.0.0.1:1")._headers["Authorization"] == "Bearer from-env"
    assert RemoteReranker("http://127.0.0.1:1", api_key="given")._headers["Authorization"] == "Bearer given"
    monkeypatch.delenv("LYCHEE_API_KEY")
    assert "Authorization" not in RemoteReranker("http://127.0.0.1:1")._headers
