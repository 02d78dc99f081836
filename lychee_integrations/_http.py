"""Retries, backoff and replica choice for RemoteReranker, shared by its sync and async paths.

One :class:`Attempts` object drives one HTTP exchange: it picks the replica (round robin,
skipping replicas that refused a connection or asked to wait), says how long to wait
before the next try, and decides, from each failure, whether to try again or to raise.
Every exchange ends within ``timeout`` seconds of its start, retries and waits included.
"""

from __future__ import annotations

import email.utils
import itertools
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lychee_integrations.errors import RemoteError, ServerTimeoutError, ServerUnavailableError

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({429, 503})


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
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
    """Base URLs served in turn; a replica that failed rests until a given time."""

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
        with self._lock:
            self._rest_until[index] = max(self._rest_until[index], time.monotonic() + seconds)

    def ok(self, index: int) -> None:
        with self._lock:
            self._rest_until[index] = 0.0


@dataclass
class Attempts:
    """The state of one exchange: which attempt this is, its deadline, the last failure."""

    replicas: Replicas
    timeout: float
    max_retries: int
    backoff: float
    path: str

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout
        self.retries = 0
        self.tried: set[int] = set()
        self.last: RemoteError | None = None
        self.index = 0

    def next(self) -> tuple[str, float, float]:
        """Return ``(url, seconds to wait first, timeout of the request)`` or raise the last failure."""
        self.index, wait = self.replicas.pick(self.tried)
        left = self.deadline - time.monotonic() - wait
        if self.last is not None and left <= 0.05:
            raise self.last
        return self.replicas.urls[self.index] + self.path, wait, max(0.05, min(self.timeout, left))

    def _retry(self, error: RemoteError, wait: float) -> None:
        self.last = error
        self.tried.add(self.index)
        self.replicas.rest(self.index, wait)
        if len(self.tried) >= len(self.replicas.urls):
            if self.retries >= self.max_retries:
                raise error
            self.retries += 1
            self.tried.clear()

    def _backoff(self) -> float:
        return float(self.backoff * 2**self.retries * (1 + random.random() / 4))

    def transport_failed(self, url: str, exc: httpx.TransportError) -> None:
        """Record a failed connection, or raise when it must not be retried."""
        import httpx

        if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
            raise ServerTimeoutError(
                f"the reranker server at {url} did not answer within {self.timeout:g} s "
                f"({type(exc).__name__}); raise timeout= for slow servers or large calls",
                url=url,
            ) from exc
        reason = str(exc) or type(exc).__name__
        what = "timed out connecting" if isinstance(exc, httpx.ConnectTimeout) else f"failed: {reason}"
        error = ServerUnavailableError(f"cannot reach the reranker server at {url}: connection {what}", url=url)
        error.__cause__ = exc
        self._retry(error, self._backoff())

    def status_failed(self, url: str, status: int, header: str | None, detail: str) -> None:
        """Record a 429/503 answer, or raise when the retries or the time are spent."""
        asked = retry_after(header)
        wait = asked if asked is not None else self._backoff()
        note = f"; it asks to retry after {asked:g} s" if asked is not None else ""
        error = ServerUnavailableError(
            f"the reranker server at {url} is busy or not ready (HTTP {status}{': ' + detail if detail else ''}){note}",
            url=url,
            status=status,
        )
        if time.monotonic() + wait > self.deadline and len(self.tried) + 1 >= len(self.replicas.urls):
            raise error
        self._retry(error, wait)

    def succeeded(self) -> None:
        self.replicas.ok(self.index)
