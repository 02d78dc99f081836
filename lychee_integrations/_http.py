"""Retries, backoff and replica choice for RemoteReranker: one policy for its sync and async calls.

The retry loop is tenacity's (:class:`tenacity.Retrying`, :class:`tenacity.AsyncRetrying`);
what is the client's own is the policy an :class:`Exchange` gives it:

* which replica each try goes to (round robin over :class:`Replicas`, skipping replicas that
  refused a connection or asked to wait while another is ready);
* which outcomes are tried again (a connection failure, a 429 or a 503; never another
  status, nor a timeout while waiting for an answer);
* how long to wait (the server's ``Retry-After``, else exponential backoff with jitter);
* when to give up: after ``max_retries`` further rounds over the replicas, or when the next
  try could not start before the exchange's deadline (``timeout`` seconds from its start,
  retries and waits included), raising the last failure as the package's error.

The sync and async clients differ only in the transport call each try makes.
"""

from __future__ import annotations

import contextlib
import email.utils
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from lychee_integrations.errors import RemoteError, ServerTimeoutError, ServerUnavailableError

if TYPE_CHECKING:
    import httpx
    import tenacity

__all__ = ["RETRY_STATUSES", "Exchange", "Replicas", "retry_after"]

#: Statuses that mean "busy or not ready, try again": retried, honouring ``Retry-After``.
RETRY_STATUSES = frozenset({429, 503})

#: A try needs at least this many seconds before the deadline to be worth starting.
_MIN_TRY = 0.05


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
    _deadline: float = field(init=False)
    _index: int | None = field(init=False, default=None)
    _tried: set[int] = field(init=False, default_factory=set)
    _rounds: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout

    # ------------------------------------------------------------------ tenacity

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
        late = time.monotonic() + state.upcoming_sleep > self._deadline - _MIN_TRY
        return self._rounds > self.max_retries or late

    def _backoff(self) -> float:
        return float(self.backoff * 2**self._rounds * (1 + random.random() / 4))

    # ------------------------------------------------------------------ one try

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
        left = self._deadline - time.monotonic()
        try:
            yield url, max(_MIN_TRY, min(self.timeout, left))
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as exc:
            raise ServerTimeoutError(
                f"the reranker server at {url} did not answer within {self.timeout:g} s "
                f"({type(exc).__name__}); raise timeout= for slow servers or large calls",
                url=url,
            ) from exc
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
            error = ServerUnavailableError(
                f"the reranker server at {url} is busy or not ready ({said}){note}",
                url=url,
                status=status,
            )
            raise Retry(error, asked)
        if self._index is not None:
            self.replicas.ok(self._index)
        return response


def _give_up(state: tenacity.RetryCallState) -> NoReturn:
    """Raise the last failure as the package's error once tenacity stops."""
    failure = state.outcome.exception() if state.outcome is not None else None
    assert isinstance(failure, Retry)
    raise failure.error
