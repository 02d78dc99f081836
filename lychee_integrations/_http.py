"""Retries, backoff and replica choice for RemoteReranker: one policy for its sync and async calls.

The retry loop is tenacity's; an :class:`Exchange` gives it the policy: the replica each try goes
to (:class:`Replicas`, skipping one that rests while another is ready), which outcomes are tried
again (a connection failure, a 429 or a 503; never another status, nor a timeout while waiting for
an answer), how long to wait (``Retry-After``, else exponential backoff with jitter), when to give
up (after ``max_retries`` further rounds over the replicas, or when the next try could not start
before the deadline, raising the last failure as the package's error), and the deadline itself:
``timeout`` seconds across connecting, sending, the headers and the body. httpx's timeouts bound
each read, not the exchange, so a server that trickles its answer a byte at a time would never
trip them: :func:`send` reads the answer as a stream and stops at the deadline;
:meth:`Exchange.run` stops waiting for a sync try's worker thread (shutting its connection);
:meth:`Exchange.arun` cancels an async try.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import itertools
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from lychee_integrations.errors import RemoteError, ServerTimeoutError, ServerUnavailableError

if TYPE_CHECKING:
    import httpx
    import tenacity

__all__ = ["RETRY_STATUSES", "Exchange", "Replicas", "asend", "retry_after", "send"]

#: Statuses that mean "busy or not ready, try again": retried, honouring ``Retry-After``.
RETRY_STATUSES = frozenset({429, 503})

#: A try needs at least this many seconds before the deadline to be worth starting.
_MIN_TRY = 0.05

#: How long past the deadline a try may take to fail by itself (httpx's own timeout is the
#: time left, so it usually does) before the watchdog stops waiting for it.
_GRACE = 0.1


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Replicas:
    """Base URLs served in turn; a replica that failed rests until a given time (shared by every exchange)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self._turn = itertools.count()
        self._rest_until = [0.0] * len(urls)
        self._lock = threading.Lock()

    def pick(self, exclude: set[int]) -> tuple[int, float]:
        """Return the next replica to try and how long to wait for it (0 when one is ready)."""
        now = time.monotonic()
        with self._lock:
            start = next(self._turn)
            order = [(start + k) % len(self.urls) for k in range(len(self.urls))]
            for i in order:
                if i not in exclude and self._rest_until[i] <= now:
                    return i, 0.0
            i = min(order, key=lambda j: self._rest_until[j])
            return i, max(0.0, self._rest_until[i] - now)

    def rest(self, index: int, seconds: float) -> None:
        """Let replica ``index`` rest ``seconds`` from now (other exchanges skip it meanwhile)."""
        with self._lock:
            self._rest_until[index] = max(self._rest_until[index], time.monotonic() + seconds)

    def ok(self, index: int) -> None:
        """Mark replica ``index`` as answering."""
        with self._lock:
            self._rest_until[index] = 0.0


class Retry(Exception):
    """A try worth another: the error to raise if none is left, and the wait the server asked for."""

    def __init__(self, error: RemoteError, asked: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.asked = asked


@dataclass
class Exchange:
    """The policy of one HTTP exchange, handed to tenacity by :meth:`retrying` / :meth:`aretrying`.

    Each try calls :meth:`attempt` (the URL and timeout to use; a connection failure inside it
    is judged) and :meth:`judge` on the answer, which returns it or raises :class:`Retry`.

    Attributes:
        replicas: The servers (their rest times are shared by every exchange of the client).
        timeout: Seconds the whole exchange may take.
        max_retries: Further rounds over the replicas after the first.
        backoff: First wait, in seconds, when the server asks for none.
        path: The path requested on each replica.
        detail: Reads an error answer's detail (for the error raised when a busy server stays busy).

    """

    replicas: Replicas
    timeout: float
    max_retries: int
    backoff: float
    path: str
    detail: Callable[[httpx.Response], str]
    deadline: float = field(init=False)  # when the exchange must end (time.monotonic())
    _index: int | None = field(init=False, default=None)
    _tried: set[int] = field(init=False, default_factory=set)
    _rounds: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def _options(self) -> dict[str, Any]:
        import tenacity

        return {
            "retry": tenacity.retry_if_exception_type(Retry),
            "wait": self._wait,
            "stop": self._stop,
            "retry_error_callback": _give_up,
        }

    def retrying(self) -> tenacity.Retrying:
        """The tenacity controller for a sync exchange: ``exchange.retrying()(one_try)``."""
        import tenacity

        return tenacity.Retrying(**self._options())

    def aretrying(self) -> tenacity.AsyncRetrying:
        """The tenacity controller for an async exchange: ``await exchange.aretrying()(one_try)``."""
        import tenacity

        return tenacity.AsyncRetrying(**self._options())

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Rest the replica that failed, pick the next one, and return how long to wait for it."""
        failure = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(failure, Retry)
        assert self._index is not None
        rest = failure.asked if failure.asked is not None else self._backoff()
        self._tried.add(self._index)
        self.replicas.rest(self._index, rest)
        if len(self._tried) >= len(self.replicas.urls):  # a round over every replica ended
            self._rounds += 1
            self._tried.clear()
        self._index, wait = self.replicas.pick(self._tried)
        return wait

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        """Give up after the last round, or when the next try could not start before the deadline.

        tenacity (>= 8.3) runs ``wait`` before ``stop``: ``upcoming_sleep`` is the wait
        :meth:`_wait` just chose, and the round count is up to date.
        """
        late = time.monotonic() + state.upcoming_sleep > self.deadline - _MIN_TRY
        return self._rounds > self.max_retries or late

    def _backoff(self) -> float:
        return float(self.backoff * 2**self._rounds * (1 + random.random() / 4))

    def _late(self, url: str, why: str) -> ServerTimeoutError:
        return ServerTimeoutError(
            f"the reranker server at {url} did not answer within {self.timeout:g} s "
            f"({why}); raise timeout= for slow servers or large calls",
            url=url,
        )

    def run(self, url: str, one_try: Callable[[Callable[[httpx.Response], None]], httpx.Response]) -> httpx.Response:
        """Run a sync try on a worker thread; stop waiting for it at the deadline.

        ``one_try`` gets a callback to hand over its response as soon as the headers are in:
        at the deadline the watchdog shuts that response's connection, which ends the
        worker's read at once. The worker runs in a copy of the caller's context variables.

        Raises:
            ServerTimeoutError: The try had not ended at the deadline.

        """
        outcome: list[tuple[bool, Any]] = []
        responses: list[httpx.Response] = []
        done = threading.Event()
        context = contextvars.copy_context()

        def work() -> None:
            try:
                outcome.append((True, context.run(one_try, responses.append)))
            except BaseException as exc:  # handed to the caller's thread, raised there
                outcome.append((False, exc))
            finally:
                done.set()

        threading.Thread(target=work, name="lychee-remote-try", daemon=True).start()
        if not done.wait(max(0.0, self.deadline - time.monotonic()) + _GRACE):
            for response in responses:
                _shut(response)
            raise self._late(url, "the deadline passed while the answer was still coming")
        ok, value = outcome[0]
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    async def arun(self, url: str, one_try: Awaitable[httpx.Response]) -> httpx.Response:
        """Await an async try, cancelling it at the deadline.

        Raises:
            ServerTimeoutError: The try had not ended at the deadline.

        """
        try:
            return await asyncio.wait_for(one_try, max(0.0, self.deadline - time.monotonic()) + _GRACE)
        except asyncio.TimeoutError:
            raise self._late(url, "the deadline passed while the answer was still coming") from None

    @contextlib.contextmanager
    def attempt(self) -> Iterator[tuple[str, float]]:
        """Yield ``(url, timeout)`` for one try; a connection failure inside becomes :class:`Retry`.

        Raises:
            Retry: The connection failed (refused, reset, timed out connecting).
            ServerTimeoutError: The server did not answer in time.

        """
        import httpx

        if self._index is None:
            self._index, _ = self.replicas.pick(self._tried)
        url = self.replicas.urls[self._index] + self.path
        left = self.deadline - time.monotonic()
        try:
            yield url, max(_MIN_TRY, min(self.timeout, left))
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as exc:
            raise self._late(url, type(exc).__name__) from exc
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            what = "timed out connecting" if isinstance(exc, httpx.ConnectTimeout) else f"failed: {reason}"
            error = ServerUnavailableError(f"cannot reach the reranker server at {url}: connection {what}", url=url)
            error.__cause__ = exc
            raise Retry(error, None) from exc

    def judge(self, response: httpx.Response) -> httpx.Response:
        """Return an answer that ends the exchange (any status but 429 and 503; the caller reads it).

        Raises:
            Retry: The server is busy or not ready (429, 503).

        """
        status = response.status_code
        if status in RETRY_STATUSES:
            url = str(response.request.url)
            asked = retry_after(response.headers.get("Retry-After"))
            detail = self.detail(response)
            said = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
            note = f"; it asks to retry after {asked:g} s" if asked is not None else ""
            message = f"the reranker server at {url} is busy or not ready ({said}){note}"
            raise Retry(ServerUnavailableError(message, url=url, status=status), asked)
        if self._index is not None:
            self.replicas.ok(self._index)
        return response


def _give_up(state: tenacity.RetryCallState) -> NoReturn:
    """Raise the last failure as the package's error once tenacity stops."""
    failure = state.outcome.exception() if state.outcome is not None else None
    assert isinstance(failure, Retry)
    raise failure.error


def _shut(response: httpx.Response) -> None:
    """Shut the connection a response is read from, ending a read blocked on it in another thread."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _late_read(request: httpx.Request) -> httpx.ReadTimeout:
    import httpx

    return httpx.ReadTimeout("the deadline passed while the answer was still coming", request=request)


def _whole(response: httpx.Response, raw: bytes) -> httpx.Response:
    """The response with its body read (``raw``, still content-encoded: decoded once, here)."""
    import httpx

    kept = {k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")}
    return httpx.Response(
        response.status_code, headers=response.headers, content=raw, request=response.request, extensions=kept
    )


def send(
    client: httpx.Client,
    method: str,
    url: str,
    body: Any,
    timeout: float,
    deadline: float,
    started: Callable[[httpx.Response], None] = lambda response: None,
) -> httpx.Response:
    """Send a request and read its answer as a stream, stopping when ``deadline`` passes.

    ``started`` gets the response once its headers are in (for :meth:`Exchange.run`).

    Raises:
        httpx.ReadTimeout: The body was still coming at the deadline.
        httpx.TransportError: As httpx raises it.

    """
    request = client.build_request(method, url, json=body, timeout=timeout)
    response = client.send(request, stream=True)
    started(response)
    raw = bytearray()
    try:
        for chunk in response.iter_raw():
            raw += chunk
            if time.monotonic() > deadline:
                raise _late_read(request)
    finally:
        response.close()
    return _whole(response, bytes(raw))


async def asend(
    client: httpx.AsyncClient, method: str, url: str, body: Any, timeout: float, deadline: float
) -> httpx.Response:
    """:func:`send` for the async client (cancelled at the deadline by :meth:`Exchange.arun`)."""
    request = client.build_request(method, url, json=body, timeout=timeout)
    response = await client.send(request, stream=True)
    raw = bytearray()
    try:
        async for chunk in response.aiter_raw():
            raw += chunk
            if time.monotonic() > deadline:
                raise _late_read(request)
    finally:
        await response.aclose()
    return _whole(response, bytes(raw))
