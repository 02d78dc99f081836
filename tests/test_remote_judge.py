"""The remote client's judge of each HTTP try (``_settle``)."""

from __future__ import annotations

import httpx
import pytest

from lychee_integrations import RemoteReranker, ServerTimeoutError, ServerUnavailableError

URL = "http://127.0.0.1:9"


# ---------------------------------------------------------------- RemoteReranker._settle


def _response(status: int, headers: dict[str, str] | None = None, body: object = None) -> httpx.Response:
    request = httpx.Request("POST", URL + "/v1/rerank")
    return httpx.Response(status, headers=headers, json=body if body is not None else {}, request=request)


def _client(**options: object) -> RemoteReranker:
    return RemoteReranker(URL, timeout=30, backoff=0.01, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 500])
def test_answers_other_than_busy_end_the_exchange(status: int) -> None:
    client = _client()
    attempts = client._attempts("/v1/rerank")
    url, _, _ = attempts.next()
    response = _response(status, body={"detail": "nope"})
    assert client._settle(attempts, url, response) is response
    assert attempts.last is None


def test_429_with_retry_after_waits_as_asked() -> None:
    client = _client()
    attempts = client._attempts("/v1/rerank")
    url, _, _ = attempts.next()
    response = _response(429, {"Retry-After": "7"}, {"detail": "slow down"})
    assert client._settle(attempts, url, response) is None
    assert isinstance(attempts.last, ServerUnavailableError)
    assert attempts.last.status == 429
    assert "slow down" in str(attempts.last) and "retry after 7 s" in str(attempts.last)
    _, wait, timeout = attempts.next()
    assert 6.0 < wait <= 7.0
    assert timeout <= 30 - wait + 0.01


def test_503_without_retry_after_backs_off() -> None:
    client = _client()
    attempts = client._attempts("/v1/rerank")
    url, _, _ = attempts.next()
    assert client._settle(attempts, url, _response(503)) is None
    assert isinstance(attempts.last, ServerUnavailableError) and attempts.last.status == 503
    _, wait, _ = attempts.next()
    assert 0 < wait < 1


def test_busy_past_the_retries_raises() -> None:
    client = _client(max_retries=0)
    attempts = client._attempts("/v1/rerank")
    url, _, _ = attempts.next()
    with pytest.raises(ServerUnavailableError, match="HTTP 503: warming up"):
        client._settle(attempts, url, _response(503, body={"detail": "warming up"}))


def test_retry_after_past_the_timeout_raises_at_once() -> None:
    client = _client()
    attempts = client._attempts("/v1/rerank")
    url, _, _ = attempts.next()
    with pytest.raises(ServerUnavailableError, match="retry after 600 s"):
        client._settle(attempts, url, _response(429, {"Retry-After": "600"}))


def test_connection_failures_retry_and_read_timeouts_raise() -> None:
    client = _client()
    attempts = client._attempts("/v1/rerank")
    url, _, _ = attempts.next()
    assert client._settle(attempts, url, httpx.ConnectError("refused")) is None
    assert isinstance(attempts.last, ServerUnavailableError) and "refused" in str(attempts.last)
    with pytest.raises(ServerTimeoutError, match="did not answer within 30 s"):
        client._settle(attempts, url, httpx.ReadTimeout("slow"))
