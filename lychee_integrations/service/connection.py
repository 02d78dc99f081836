"""The connection edge of ``lychee serve``: a deadline for a request's head, one log line when descriptors run out.

* :class:`BoundedH11Protocol` is uvicorn's h11 protocol with ``--timeout-keep-alive`` also
  applied to a connection that has not sent a complete request head yet (uvicorn applies it
  only after a response): idle connections that never speak are closed, so they cannot hold
  every file descriptor.
* :func:`quiet_accept_errors` makes the event loop log a failed ``accept()`` for lack of file
  descriptors (``EMFILE``, ``ENFILE``) as one line at most every :data:`ACCEPT_LOG_INTERVAL`
  seconds, without a traceback; asyncio retries the accept on its own.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ACCEPT_LOG_INTERVAL", "BoundedH11Protocol", "quiet_accept_errors"]

logger = logging.getLogger(__name__)

#: Seconds between two log lines about failed accepts.
ACCEPT_LOG_INTERVAL = 10.0
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not complete in time.

    The deadline is uvicorn's ``timeout_keep_alive``, counted from the connection's start or
    from the end of the previous response, until a complete request head arrives; bytes
    trickling in do not extend it.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the connection, and the deadline for its first request head."""
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        """Feed h11; the deadline ends only once a request's head is complete."""
        self.conn.receive_data(data)
        self.handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._unset_keepalive_if_required()


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log failed accepts for lack of descriptors on ``loop`` as one line per interval; others as before."""
    previous = loop.get_exception_handler()
    last = -ACCEPT_LOG_INTERVAL
    suppressed = 0

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal last, suppressed
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_DESCRIPTORS:
            now = time.monotonic()
            if now - last < ACCEPT_LOG_INTERVAL:
                suppressed += 1
                return
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            logger.error("cannot accept connections: %s; retrying%s", exc.strerror or exc, more)
            last, suppressed = now, 0
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
