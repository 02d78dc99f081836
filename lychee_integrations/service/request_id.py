"""Request ids: ``X-Request-ID`` echoed (or made up) on every response and put on every log record.

The id of the request being served lives in a context variable, which FastAPI's worker
threads inherit, so a log record made anywhere while serving a request (the app, the
engine, uvicorn's access log) carries it as ``record.request_id`` (``"-"`` outside a
request). Put ``%(request_id)s`` in a log format to show it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from lychee_integrations.service.middleware import HttpMiddleware

__all__ = ["HEADER", "SCOPE_KEY", "RequestIdMiddleware", "bound_request_id", "install_log_records"]

#: The header read and written.
HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
# An id sent by a client is echoed only if it is short and printable: it ends up in logs.
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_current: contextvars.ContextVar[str] = contextvars.ContextVar("lychee_request_id", default="-")
#: Where the id is also kept in the ASGI scope, for code that runs outside the request's context
#: (Starlette answers unhandled exceptions in its outermost middleware).
SCOPE_KEY = "lychee.request_id"


@contextlib.contextmanager
def bound_request_id(request_id: str | None) -> Iterator[None]:
    """Make ``request_id`` the current id for the duration of the block (no-op for ``None``)."""
    token = None if request_id is None else _current.set(request_id)
    try:
        yield
    finally:
        if token is not None:
            _current.reset(token)


@functools.cache
def install_log_records() -> None:
    """Give every log record of this process a ``request_id`` attribute (idempotent)."""
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = _current.get()
        return record

    logging.setLogRecordFactory(factory)


class RequestIdMiddleware(HttpMiddleware):
    """Set the request id for the duration of each HTTP request and add it to the response.

    A client's ``X-Request-ID`` is kept when it is 1 to 128 characters of
    ``[A-Za-z0-9._:/+=@-]``; otherwise a new id (32 hex digits) is made.

    Args:
        app: The ASGI application to wrap.

    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app with the request id set."""
        sent = dict(scope.get("headers") or []).get(_HEADER_KEY, b"").decode("latin-1")
        request_id = sent if _ACCEPTED.match(sent) else uuid.uuid4().hex
        scope[SCOPE_KEY] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER_KEY]
                message = {**message, "headers": [*headers, (_HEADER_KEY, request_id.encode())]}
            await send(message)

        with bound_request_id(request_id):
            await self.app(scope, receive, send_with_id)
