"""ASGI middleware: request bodies over a size limit refused with 413; abandoned requests answered with 503."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ABANDONED", "AbandonedRequestMiddleware", "BodySizeLimitMiddleware", "HttpMiddleware", "send_json"]

logger = logging.getLogger(__name__)

#: The ``detail`` of the 503 a request gets when a shutdown abandons it.
ABANDONED = "the server is shutting down and abandoned this request (its graceful timeout passed); send it again"


async def send_json(send: Send, status: int, detail: str, *extra: tuple[bytes, bytes]) -> None:
    """Send a whole ``{"detail": ...}`` JSON response of ``status`` (and ``extra`` headers) through ``send``."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HttpMiddleware:
    """Wraps the ASGI ``app``: HTTP requests go through :meth:`http`, anything else (lifespan) to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope``: with :meth:`http` for an HTTP request, else with the app."""
        await (self.http if scope["type"] == "http" else self.app)(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request (each subclass says how)."""
        raise NotImplementedError


class AbandonedRequestMiddleware(HttpMiddleware):
    """Answer a request that is cancelled before its answer started with a JSON 503.

    uvicorn cancels the requests still running when ``--graceful-timeout`` passes after
    SIGTERM; without this their clients got a plain-text 500. The engine call a cancelled
    request waited for is abandoned, not awaited (see ``_EngineRunner``).

    Args:
        app: The ASGI application.

    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app; on cancellation before the answer started, send the 503."""
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except asyncio.CancelledError:
            if started:
                raise
            logger.warning("abandoned %s %s at shutdown: answered 503", scope.get("method"), scope.get("path"))
            await send_json(send, 503, ABANDONED)


class BodySizeLimitMiddleware(HttpMiddleware):
    """Answer 413 to any HTTP request whose body is larger than ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before the body is read; a
    body sent without one (chunked) is counted as it arrives and refused as soon as it
    passes the limit, so a client cannot make the server buffer an unbounded body.

    Args:
        app: The ASGI application to protect.
        max_bytes: The largest body accepted.

    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> str:
        return f"request body is {size}, over the limit of {self.max_bytes} bytes"

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app with a counting ``receive``."""
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                await send_json(send, 400, f"invalid Content-Length header {text!r}")
                return
            if int(text) > self.max_bytes:
                await send_json(send, 413, self._too_large(f"{int(text)} bytes"))
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._too_large(f"at least {received} bytes"))
            return message

        await self.app(scope, counting_receive, send)
