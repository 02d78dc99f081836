"""RemoteReranker against a real ``lychee serve`` on the tiny checkpoint, and against loopback failure modes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from remote_helpers import RequestLog, dead_url, lychee_serve, scripted_app, silent_server
from service_helpers import close, png_bytes, serve_app

from lychee_integrations import (
    AuthenticationError,
    ConfigurationError,
    ImageLoadError,
    InvalidDocumentsError,
    InvalidInputError,
    RemoteError,
    RemoteReranker,
    ServerTimeoutError,
    ServerUnavailableError,
    UnsupportedInputError,
)
from lychee_integrations.engine import LycheeReranker

pytestmark = pytest.mark.timeout(300)

QUERY = "what is the capital of France"
TEXTS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "A recipe for apple pie.",
    "France borders Spain and Italy.",
    "The Eiffel tower is in Paris.",
    "Cats sleep most of the day.",
    "Lyon is a large French city.",
]
CAP = 3  # the server's --max-documents: seven documents take three requests


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path) -> Iterator[str]:
    with lychee_serve(tiny_checkpoint, "--max-documents", str(CAP)) as base:
        yield base


@pytest.fixture()
def log() -> RequestLog:
    return RequestLog()


@pytest.fixture()
def client(server: str, log: RequestLog) -> Iterator[RemoteReranker]:
    with RemoteReranker(server, timeout=60, event_hooks=log.hooks()) as reranker:
        yield reranker


# ----------------------------------------------------------------------------- same scores as in process


def test_text_call_over_the_cap_is_split_and_gives_in_process_scores(
    client: RemoteReranker, log: RequestLog, tiny_reranker: LycheeReranker
) -> None:
    expected = tiny_reranker.score(QUERY, TEXTS)
    assert close(client.score(QUERY, TEXTS), expected)
    assert log.count("POST", "/v1/rerank") == 3  # 3 + 3 + 1 documents
    assert log.count("GET", "/health") == 1  # the cap is learnt once per client
    assert close(client.score(QUERY, TEXTS[:2]), expected[:2])
    assert log.count("GET", "/health") == 1 and log.count("POST", "/v1/rerank") == 4


def test_rerank_applies_top_n_after_merging(client: RemoteReranker, tiny_reranker: LycheeReranker) -> None:
    expected = tiny_reranker.rerank(QUERY, TEXTS, top_n=4)
    got = client.rerank(QUERY, TEXTS, top_n=4)
    assert [r.index for r in got] == [r.index for r in expected]
    assert close([r.score for r in got], [r.score for r in expected])


def test_images_in_every_form_match_in_process_sync_and_async(
    client: RemoteReranker, tiny_reranker: LycheeReranker, images: dict[str, Any], image_files: dict[str, Path]
) -> None:
    documents: list[Any] = [
        image_files["red"],  # a Path
        {"image": str(image_files["blue"])},  # a path string, in a dict
        images["green"],  # a PIL image
        png_bytes(images["gray"]),  # encoded bytes
        {"text": "a blue square with a stripe", "image": images["blue"]},  # text + image
        {"text": "two pictures", "images": [image_files["green"], images["red"]]},
        "a plain text document",
    ]
    query = {"text": "a red picture", "image": image_files["red"]}
    expected = tiny_reranker.score(query, documents, task="product_search")
    assert close(client.score(query, documents, task="product_search"), expected)
    assert close(asyncio.run(client.ascore(query, documents, task="product_search")), expected)
    image_query = images["blue"]
    assert close(client.score(image_query, documents), tiny_reranker.score(image_query, documents))


def test_instruction_travels_byte_for_byte(client: RemoteReranker, tiny_reranker: LycheeReranker) -> None:
    instruction = "  Given a question, find   the passage that answers it\u00e9 \n"
    expected = tiny_reranker.score(QUERY, TEXTS[:3], instruction=instruction)
    assert close(client.score(QUERY, TEXTS[:3], instruction=instruction), expected)
    assert not close(expected, tiny_reranker.score(QUERY, TEXTS[:3], instruction=instruction.strip()))


def test_async_calls_share_the_scores_and_run_together(
    client: RemoteReranker, log: RequestLog, tiny_reranker: LycheeReranker
) -> None:
    queries = [QUERY, "cats", "apple pie"]

    async def main() -> list[Any]:
        results = await asyncio.gather(*(client.arerank(q, TEXTS, top_n=2) for q in queries))
        await client.aclose()
        return list(results)

    for query, got in zip(queries, asyncio.run(main()), strict=True):
        expected = tiny_reranker.rerank(query, TEXTS, top_n=2)
        assert [r.index for r in got] == [r.index for r in expected]
        assert close([r.score for r in got], [r.score for r in expected])
    assert log.count("POST", "/v1/rerank") == 9
    # A second event loop gets its own pool (an AsyncClient cannot outlive its loop).
    assert close(asyncio.run(client.ascore(QUERY, TEXTS[:2])), tiny_reranker.score(QUERY, TEXTS[:2]))


def test_model_name_is_the_servers(client: RemoteReranker, server: str) -> None:
    assert client.model_name == httpx.get(f"{server}/health", timeout=10).json()["model"]
    assert RemoteReranker(server, model="my-name").model_name == "my-name"


def test_empty_calls_send_nothing(client: RemoteReranker, log: RequestLog) -> None:
    assert client.score(QUERY, []) == [] and client.rerank(QUERY, []) == []
    assert asyncio.run(client.ascore(QUERY, [])) == []
    assert sum(log.sent.values()) == 0


# ----------------------------------------------------------------------------- errors, as the engine raises them


def test_bad_local_inputs_fail_on_the_client_with_the_engines_errors(
    client: RemoteReranker, log: RequestLog, tiny_reranker: LycheeReranker, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.png"
    documents: list[Any] = ["fine", None, {"image": missing}, "fine too", {"text": "x", "colour": "red"}]
    with pytest.raises(InvalidDocumentsError) as remote:
        client.score(QUERY, documents)
    with pytest.raises(InvalidDocumentsError) as local:
        tiny_reranker.score(QUERY, documents)
    # The Scorer base checks every document's shape before any image is read (engine and client
    # alike): the malformed ones are named together; the missing file is named once they are fixed.
    assert [i for i, _ in remote.value.problems] == [i for i, _ in local.value.problems] == [1, 4]
    assert [type(e) for e in remote.value.errors] == [type(e) for e in local.value.errors]
    assert [str(e) for e in remote.value.errors] == [str(e) for e in local.value.errors]
    with pytest.raises(ImageLoadError, match="document 0"):
        client.score(QUERY, [{"image": missing}])
    with pytest.raises(UnsupportedInputError, match="query"):
        client.score(None, ["a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="query: is empty"):
        client.score("", ["a"])
    with pytest.raises(InvalidInputError, match="document 1: is empty"):
        client.score(QUERY, ["a", ""])
    with pytest.raises(ConfigurationError, match="either task"):
        client.score(QUERY, ["a"], task="product_search", instruction="x")
    with pytest.raises(ConfigurationError):
        client.score(QUERY, "not a list")
    with pytest.raises(ConfigurationError, match="top_n"):
        client.rerank(QUERY, ["a"], top_n=0)
    assert sum(log.sent.values()) == 0  # none of these reached the server


def test_server_side_refusal_names_the_document_across_split_requests(client: RemoteReranker) -> None:
    # The server refuses image URLs by default; the URL is document 5, the second of the second request.
    documents: list[Any] = [*TEXTS[:5], {"image": "http://127.0.0.1:9/picture.png"}, TEXTS[5]]
    with pytest.raises(InvalidInputError) as caught:
        client.score(QUERY, documents)
    assert caught.value.item == "document 5" and caught.value.index == 5
    assert "URLs are not allowed" in str(caught.value)
    two_bad = [*documents, {"image": "https://127.0.0.1:9/other.png"}]
    with pytest.raises(InvalidDocumentsError) as several:
        asyncio.run(client.ascore(QUERY, two_bad))
    assert [i for i, _ in several.value.problems] == [5, 7]


# ----------------------------------------------------------------------------- dead, silent and busy servers


def test_a_port_with_nothing_listening_fails_promptly_naming_the_url() -> None:
    url = dead_url()
    reranker = RemoteReranker(url, timeout=5, max_retries=2, backoff=0.05)
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError, match=url.replace(".", r"\.")) as caught:
        reranker.score(QUERY, ["a"])
    assert time.monotonic() - started < 5
    assert caught.value.url.startswith(url)
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="cannot reach"):
        asyncio.run(reranker.ascore(QUERY, ["a"]))
    assert time.monotonic() - started < 5


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_fails_within_the_timeout() -> None:
    with silent_server() as url:
        reranker = RemoteReranker(url, timeout=1.5, max_retries=3)
        started = time.monotonic()
        with pytest.raises(ServerTimeoutError, match=url.replace(".", r"\.")):
            reranker.score(QUERY, ["a", "b"])
        assert time.monotonic() - started < 1.5 + 1.0
        reranker = RemoteReranker(url, timeout=1.5, model="m", max_documents_per_request=1)
        started = time.monotonic()
        with pytest.raises(ServerTimeoutError):
            asyncio.run(reranker.ascore(QUERY, ["a", "b", "c"]))
        assert time.monotonic() - started < 1.5 + 1.0


@pytest.mark.parametrize("status", [503, 429])
def test_busy_answers_are_retried_after_retry_after(status: int) -> None:
    app = scripted_app([(status, {"Retry-After": "1"}, {"detail": "busy"})])
    with serve_app(app) as url, RemoteReranker(url, timeout=10) as reranker:
        started = time.monotonic()
        assert reranker.score(QUERY, ["a", "b"]) == [0.0, 0.5]
        elapsed = time.monotonic() - started
    calls = app.state.calls
    assert len(calls) == 2 and calls[1][0] - calls[0][0] >= 0.95 and elapsed >= 0.95


def test_busy_past_the_retries_or_the_timeout_raises_the_servers_answer() -> None:
    app = scripted_app([(503, {}, {"detail": "model loading"})] * 5)
    with serve_app(app) as url, RemoteReranker(url, timeout=10, max_retries=2, backoff=0.05) as reranker:
        with pytest.raises(ServerUnavailableError, match="HTTP 503: model loading") as caught:
            reranker.score(QUERY, ["a"])
        assert caught.value.status == 503 and len(app.state.calls) == 3
    app = scripted_app([(429, {"Retry-After": "120"}, {"detail": "slow down"})])
    with serve_app(app) as url, RemoteReranker(url, timeout=3) as reranker:
        started = time.monotonic()
        with pytest.raises(ServerUnavailableError, match="retry after 120 s"):
            reranker.score(QUERY, ["a"])
        assert time.monotonic() - started < 3 and len(app.state.calls) == 1


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (400, ConfigurationError, "unknown template"),
        (404, RemoteError, "base_url"),
        (413, RemoteError, "max_documents_per_request"),
        (422, RemoteError, "protocol"),
        (500, RemoteError, "HTTP 500"),
    ],
)
def test_other_errors_are_not_retried(status: int, error: type[Exception], message: str) -> None:
    app = scripted_app([(status, {}, {"detail": "unknown template 'x'"})])
    with serve_app(app) as url, RemoteReranker(url, timeout=10, backoff=0.01) as reranker, pytest.raises(error) as e:
        reranker.score(QUERY, ["a"])
    assert message in str(e.value)
    assert len(app.state.calls) == 1


def test_authentication_errors_say_how_to_give_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LYCHEE_API_KEY", raising=False)
    app = scripted_app([(401, {}, {"detail": "missing API key"})] * 2)
    with serve_app(app) as url:
        with pytest.raises(AuthenticationError, match=r"no API key was sent.*LYCHEE_API_KEY"):
            RemoteReranker(url).score(QUERY, ["a"])
        monkeypatch.setenv("LYCHEE_API_KEY", "from-the-env")
        with pytest.raises(AuthenticationError, match="refused"):
            asyncio.run(RemoteReranker(url).ascore(QUERY, ["a"]))
        assert RemoteReranker(url, api_key="given").score(QUERY, ["a"]) == [0.0]
    assert [c[1] for c in app.state.calls] == [None, "Bearer from-the-env", "Bearer given"]
    assert len(app.state.calls) == 3  # a 401 is never retried
    assert "given" not in repr(RemoteReranker(url, api_key="given"))


# ----------------------------------------------------------------------------- replicas


def test_two_servers_share_the_calls_and_one_dying_keeps_the_client_working(
    server: str, tiny_checkpoint: Path, tiny_reranker: LycheeReranker, log: RequestLog
) -> None:
    expected = tiny_reranker.score(QUERY, TEXTS)
    with lychee_serve(tiny_checkpoint, "--max-documents", str(CAP)) as second:
        reranker = RemoteReranker([server, second], timeout=60, event_hooks=log.hooks())
        for _ in range(2):
            assert close(reranker.score(QUERY, TEXTS), expected)
        traffic = log.by_server("/v1/rerank")
        assert traffic[server] >= 2 and traffic[second] >= 2, traffic
    # The second server is stopped now: every call still succeeds, on the first.
    before = log.by_server("/v1/rerank")[server]
    for _ in range(3):
        assert close(reranker.score(QUERY, TEXTS), expected)
    assert close(asyncio.run(reranker.ascore(QUERY, TEXTS)), expected)
    assert log.by_server("/v1/rerank")[server] - before == 12


# ----------------------------------------------------------------------------- construction


def test_bad_options_are_refused_at_construction() -> None:
    for kwargs in ({"timeout": 0}, {"max_retries": -1}, {"protocol": "grpc"}, {"max_documents_per_request": 0}):
        with pytest.raises(ConfigurationError):
            RemoteReranker("http://127.0.0.1:1", **kwargs)
    with pytest.raises(ConfigurationError, match="http"):
        RemoteReranker("127.0.0.1:8000")
    with pytest.raises(ConfigurationError):
        RemoteReranker([])
    assert RemoteReranker("http://h:1/v1/").base_urls == ["http://h:1"]


def test_importing_the_package_does_not_import_httpx() -> None:
    code = "import sys, lychee_integrations as l; l.RemoteReranker; assert 'httpx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_real_server_with_api_key(tiny_checkpoint: Path, tiny_reranker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``lychee serve --api-key``: no key and a wrong key get 401 and a clear client error; the key works."""
    monkeypatch.delenv("LYCHEE_API_KEY", raising=False)
    with lychee_serve(tiny_checkpoint, "--api-key", "s3cret-key") as base:
        with RemoteReranker(base, timeout=30) as anonymous, pytest.raises(AuthenticationError, match="LYCHEE_API_KEY"):
            anonymous.score("capital of France", TEXTS[:2])
        with RemoteReranker(base, api_key="wrong", timeout=30) as wrong, pytest.raises(AuthenticationError):
            wrong.score("capital of France", TEXTS[:2])
        monkeypatch.setenv("LYCHEE_API_KEY", "s3cret-key")
        with RemoteReranker(base, timeout=30) as keyed:
            got = keyed.score("capital of France", TEXTS[:2])
        assert close(got, tiny_reranker.score("capital of France", TEXTS[:2]))
        assert "s3cret-key" not in repr(keyed)
