"""The remote client's judge of each HTTP try, through public calls against real loopback servers.

No model: the servers are scripted stand-ins (``remote_helpers.scripted_app``) that answer
``/v1/rerank`` with chosen statuses first, then scores; the client is the public
:class:`RemoteReranker`, sync and async.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import time

import pytest
from remote_helpers import RequestLog, dead_url, scripted_app
from service_helpers import serve_app

from lychee_integrations import (
    AuthenticationError,
    ConfigurationError,
    RemoteError,
    RemoteReranker,
    ServerUnavailableError,
)

pytestmark = pytest.mark.timeout(120)

QUERY = "q"


def gaps(app: object) -> list[float]:
    """Seconds between the rerank requests the scripted server received."""
    times = [call[0] for call in app.state.calls]  # type: ignore[attr-defined]
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize(
    ("status", "error"), [(400, ConfigurationError), (401, AuthenticationError), (500, RemoteError)]
)
def test_answers_other_than_busy_end_the_exchange_sync_and_async(status: int, error: type[Exception]) -> None:
    app = scripted_app([(status, {}, {"detail": "nope"})] * 2)
    with serve_app(app) as url, RemoteReranker(url, timeout=10, backoff=0.01) as reranker:
        with pytest.raises(error, match="nope"):
            reranker.score(QUERY, ["a"])
        with pytest.raises(error, match="nope"):
            asyncio.run(reranker.ascore(QUERY, ["a"]))
    assert len(app.state.calls) == 2  # one try each


def test_503_without_retry_after_backs_off_then_succeeds() -> None:
    app = scripted_app([(503, {}, {"detail": "warming up"})] * 2)
    with serve_app(app) as url, RemoteReranker(url, timeout=10, backoff=0.2) as reranker:
        assert reranker.score(QUERY, ["a", "b"]) == [0.0, 0.5]
    first, second = gaps(app)
    assert 0.2 <= first < 1.0 and second >= 2 * 0.2 * 0.95  # doubled on the second retry


def test_429_retry_after_as_an_http_date_is_honoured_async() -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    app = scripted_app([(429, {"Retry-After": when}, {"detail": "slow down"})])
    with serve_app(app) as url:

        async def main() -> list[float]:
            async with RemoteReranker(url, timeout=10, backoff=0.01) as reranker:
                return await reranker.ascore(QUERY, ["a"])

        assert asyncio.run(main()) == [0.0]
    (gap,) = gaps(app)
    assert gap >= 0.9  # the date has a one-second resolution


def test_busy_past_the_retries_raises_the_last_answer_async() -> None:
    app = scripted_app([(503, {}, {"detail": "model loading"})] * 5)
    busy = pytest.raises(ServerUnavailableError, match="HTTP 503: model loading")
    with serve_app(app) as url, RemoteReranker(url, timeout=10, max_retries=1, backoff=0.01) as client, busy as caught:
        asyncio.run(client.ascore(QUERY, ["a"]))
    assert caught.value.status == 503 and len(app.state.calls) == 2


def test_a_busy_replica_is_skipped_while_another_answers() -> None:
    busy = scripted_app([(429, {"Retry-After": "60"}, {"detail": "slow down"})] * 10)
    ready = scripted_app([])
    log = RequestLog()
    with serve_app(busy) as first, serve_app(ready) as second:
        reranker = RemoteReranker([first, second], timeout=5, event_hooks=log.hooks())
        started = time.monotonic()
        for _ in range(4):
            assert reranker.score(QUERY, ["a"]) == [0.0]
        assert asyncio.run(reranker.ascore(QUERY, ["a"])) == [0.0]
        assert time.monotonic() - started < 3  # nobody waited the 60 s asked
        reranker.close()
    assert len(busy.state.calls) <= 1  # asked to wait, it rests while the other replica answers
    assert len(ready.state.calls) == 5


def test_connection_refused_moves_to_the_next_replica_and_then_gives_up() -> None:
    app = scripted_app([])
    with serve_app(app) as url:
        reranker = RemoteReranker([dead_url(), url], timeout=10, backoff=0.01, model="m")
        assert [reranker.score(QUERY, ["a"]) for _ in range(3)] == [[0.0]] * 3
        assert len(app.state.calls) == 3
    only_dead = RemoteReranker(dead_url(), timeout=10, max_retries=2, backoff=0.01, model="m")
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="cannot reach"):
        only_dead.score(QUERY, ["a"])
    assert time.monotonic() - started < 5
