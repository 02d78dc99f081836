"""vLLM/OpenAI habits and the network edge, on a real uvicorn on loopback: ``/v1/models``,
``/v1/score``, ``usage.prompt_tokens``, documents echoed only on request, ``truncate_prompt_tokens``,
one ``top_n``, metrics labels from a closed set, the uvicorn limits of ``lychee serve``, the first
``Authorization`` header, a blank ``$LYCHEE_API_KEY``."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import LOOPBACK, free_port, serve_app

from lychee_integrations.cli.commands import uvicorn_config
from lychee_integrations.cli.parser import build_parser
from lychee_integrations.engine import LycheeReranker
from lychee_integrations.service import ServiceSettings, create_app, service_reranker
from lychee_integrations.service.connection import BoundedH11Protocol
from lychee_integrations.service.schemas import EXAMPLE_IMAGE
from lychee_integrations.testing import FakeScorer

pytestmark = pytest.mark.timeout(300)

TOL = 1e-4
QUERY = "a red running shoe"
TEXTS = ["Red running shoes with a light sole.", "Paris is the capital of France.", "A blue backpack, 20 litres."]
KEY = "route-key-0123456789"


@pytest.fixture(scope="module")
def settings() -> ServiceSettings:
    return ServiceSettings(max_documents=8, served_model_name="lychee-tiny")


@pytest.fixture(scope="module")
def api(settings: ServiceSettings, tiny_checkpoint: Path) -> Iterator[str]:
    engine = service_reranker(settings, model=str(tiny_checkpoint), device="cpu", dtype="float32").load()
    with serve_app(create_app(engine, settings)) as base:
        yield base


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


def _max_length(reranker: LycheeReranker) -> int:
    return int(reranker._get_runtime().encoder.max_length)


# ---------------------------------------------------------------- /v1/models


def test_models_lists_the_served_model(api: str, client: httpx.Client) -> None:
    before = int(time.time())
    response = client.get(f"{api}/v1/models")
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "list" and len(data["data"]) == 1
    card = data["data"][0]
    assert set(card) == {"id", "object", "created", "owned_by"}
    assert (card["id"], card["object"], card["owned_by"]) == ("lychee-tiny", "model", "lychee-integrations")
    assert isinstance(card["created"], int) and before - 3600 < card["created"] <= before + 1


# ---------------------------------------------------------------- /v1/score


def test_score_one_query_against_a_list_matches_rerank(
    api: str, client: httpx.Client, tiny_reranker: LycheeReranker
) -> None:
    response = client.post(f"{api}/v1/score", json={"model": "x", "text_1": QUERY, "text_2": TEXTS})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["object"] == "list" and data["model"] == "lychee-tiny" and data["id"].startswith("score-")
    assert isinstance(data["created"], int)
    assert [(d["index"], d["object"]) for d in data["data"]] == [(i, "score") for i in range(len(TEXTS))]
    expected = tiny_reranker.score_with_usage(QUERY, TEXTS)
    for item, want in zip(data["data"], expected.scores, strict=True):
        assert math.isclose(item["score"], want, abs_tol=TOL)
    assert data["usage"]["prompt_tokens"] == data["usage"]["total_tokens"] == expected.tokens
    reranked = client.post(f"{api}/v1/rerank", json={"query": QUERY, "documents": TEXTS}).json()
    by_index = {r["index"]: r["relevance_score"] for r in reranked["results"]}
    assert [d["score"] for d in data["data"]] == [by_index[i] for i in range(len(TEXTS))]
    assert reranked["usage"] == data["usage"]
    # A one-item text_1 list, and a single text_2, are the same shapes.
    listed = client.post(f"{api}/v1/score", json={"text_1": [QUERY], "text_2": TEXTS}).json()
    assert [d["score"] for d in listed["data"]] == [d["score"] for d in data["data"]]
    single = client.post(f"{api}/v1/score", json={"text_1": QUERY, "text_2": TEXTS[1]}).json()
    assert len(single["data"]) == 1 and math.isclose(single["data"][0]["score"], data["data"][1]["score"], abs_tol=TOL)


def test_score_pairwise_lists_and_extensions(api: str, client: httpx.Client, tiny_reranker: LycheeReranker) -> None:
    queries = [QUERY, "the capital of France", QUERY]
    body = {"text_1": queries, "text_2": TEXTS, "task": "product_search"}
    data = client.post(f"{api}/v1/score", json=body).json()
    expected = tiny_reranker.predict(list(zip(queries, TEXTS, strict=True)), task="product_search")
    assert len(data["data"]) == 3
    for item, want in zip(data["data"], expected, strict=True):
        assert math.isclose(item["score"], want, abs_tol=TOL)
    plain = client.post(f"{api}/v1/score", json={"text_1": queries, "text_2": TEXTS}).json()
    assert [d["score"] for d in plain["data"]] != [d["score"] for d in data["data"]]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"text_1": ["a", "b"], "text_2": ["x", "y", "z"]}, 400, "text_1 has 2 items and text_2 3"),
        ({"text_1": "q", "text_2": ["d"] * 9}, 413, "the limit is 8"),
        ({"text_1": "q", "text_2": ["d", ""]}, 400, "document 1"),
        ({"text_1": "q"}, 422, "text_2"),
        ({"text_1": "q", "text_2": "d", "top_n": 1}, 422, "top_n"),
    ],
)
def test_score_refusals_name_the_problem(
    api: str, client: httpx.Client, body: dict[str, Any], status: int, fragment: str
) -> None:
    response = client.post(f"{api}/v1/score", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]


# ---------------------------------------------------------------- /v1/rerank habits


def test_rerank_echoes_documents_only_when_asked(api: str, client: httpx.Client) -> None:
    image = EXAMPLE_IMAGE
    body: dict[str, Any] = {"query": QUERY, "documents": [TEXTS[0], {"image": image}]}
    plain = client.post(f"{api}/v1/rerank", json=body)
    assert plain.status_code == 200 and "base64" not in plain.text and TEXTS[0] not in plain.text
    assert all(r.get("document") is None for r in plain.json()["results"])
    echoed = client.post(f"{api}/v1/rerank", json={**body, "return_documents": True}).json()
    documents = {r["index"]: r["document"] for r in echoed["results"]}
    assert documents == {0: {"text": TEXTS[0]}, 1: {"text": None, "images": [image]}}


def test_truncate_prompt_tokens_is_honoured_or_refused(
    api: str, client: httpx.Client, tiny_reranker: LycheeReranker
) -> None:
    limit = _max_length(tiny_reranker)
    for path, body in (
        ("/v1/rerank", {"query": QUERY, "documents": TEXTS}),
        ("/v1/score", {"text_1": QUERY, "text_2": TEXTS}),
    ):
        for accepted in (-1, limit, limit + 1, None):
            response = client.post(f"{api}{path}", json={**body, "truncate_prompt_tokens": accepted})
            assert response.status_code == 200, (path, accepted, response.text)
        refused = client.post(f"{api}{path}", json={**body, "truncate_prompt_tokens": limit - 1})
        assert refused.status_code == 400
        detail = refused.json()["detail"]
        assert "truncate_prompt_tokens" in detail and f"max_length ({limit} tokens)" in detail
        assert client.post(f"{api}{path}", json={**body, "truncate_prompt_tokens": -2}).status_code == 422


def test_top_n_zero_or_null_means_all_everywhere(api: str, client: httpx.Client) -> None:
    for path, key in (("/api/rerank", "score"), ("/v1/rerank", "relevance_score")):
        for top_n in (0, None):
            data = client.post(f"{api}{path}", json={"query": QUERY, "documents": TEXTS, "top_n": top_n}).json()
            assert len(data["results"]) == len(TEXTS), (path, top_n)
        best = client.post(f"{api}{path}", json={"query": QUERY, "documents": TEXTS, "top_n": 2}).json()
        assert len(best["results"]) == 2 and best["results"][0][key] >= best["results"][1][key]


# ---------------------------------------------------------------- metrics labels


def _raw_request(base: str, method: str, path: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        while sock.recv(65536):
            pass


def test_made_up_methods_and_paths_do_not_grow_the_metrics(client: httpx.Client) -> None:
    with serve_app(create_app(FakeScorer())) as base:
        _raw_request(base, "GET", "/health")
        before = len(client.get(f"{base}/metrics").content)
        for i in range(300):
            method = ("GET", "POST", f"BREW{i}", "PURGE", f"X-{i:04d}")[i % 5]
            _raw_request(base, method, f"/made/up/{i}/{'x' * 40}?q={i}")
        text = client.get(f"{base}/metrics").text
    assert len(text.encode()) - before < 20_000
    assert "BREW" not in text and "/made/up" not in text
    assert 'method="other",route="other"' in text and 'method="GET",route="other"' in text


# ---------------------------------------------------------------- authorization


def test_the_first_authorization_header_wins(client: httpx.Client) -> None:
    settings = ServiceSettings(api_key=KEY)
    with serve_app(create_app(FakeScorer(), settings)) as base:
        good, bad = ("Authorization", f"Bearer {KEY}"), ("Authorization", "Bearer wrong")
        body = {"query": "q", "documents": ["q"]}
        for headers, status in (([good, bad], 200), ([bad, good], 401), ([good, good], 200)):
            for _ in range(3):
                response = client.post(f"{base}/v1/rerank", json=body, headers=httpx.Headers(headers))
                assert response.status_code == status, headers


def test_a_blank_api_key_variable_refuses_to_start(tiny_checkpoint: Path) -> None:
    port = free_port()
    for blank in ("   ", ""):
        env = {**os.environ, "LYCHEE_API_KEY": blank}
        command = [sys.executable, "-m", "lychee_integrations.cli", "serve", "--model", str(tiny_checkpoint)]
        result = subprocess.run(
            [*command, "--device", "cpu", "--port", str(port)], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "$LYCHEE_API_KEY is set but blank" in result.stderr


# ---------------------------------------------------------------- uvicorn limits from the CLI


def _serve_args(*extra: str) -> Any:
    return build_parser().parse_args(["serve", "--model", "m", "--port", str(free_port()), *extra])


def test_uvicorn_limits_reach_the_config() -> None:
    defaults = uvicorn_config(FakeScorer(), _serve_args())
    assert (defaults.limit_concurrency, defaults.timeout_keep_alive, defaults.backlog) == (1024, 5.0, 2048)
    assert (defaults.h11_max_incomplete_event_size, defaults.http) == (16 * 1024, BoundedH11Protocol)
    args = _serve_args(
        "--limit-concurrency", "7", "--timeout-keep-alive", "2.5", "--max-header-size", "4KiB", "--backlog", "64"
    )
    config = uvicorn_config(FakeScorer(), args)
    assert (config.limit_concurrency, config.timeout_keep_alive, config.backlog) == (7, 2.5, 64)
    assert config.h11_max_incomplete_event_size == 4096
    assert (config.host, config.port, config.timeout_graceful_shutdown) == ("127.0.0.1", args.port, 30.0)
    for bad in (["--limit-concurrency", "0"], ["--timeout-keep-alive", "-1"], ["--max-header-size", "big"]):
        with pytest.raises(SystemExit):
            _serve_args(*bad)


def test_the_header_limit_is_enforced_by_the_server(client: httpx.Client) -> None:
    import uvicorn

    args = _serve_args("--max-header-size", "4KiB")
    server = uvicorn.Server(uvicorn_config(create_app(FakeScorer()), args))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    try:
        base = f"http://{LOOPBACK}:{args.port}"
        assert client.get(f"{base}/health", headers={"X-Small": "a" * 1000}).status_code == 200
        # h11 bounds what it holds of a request not yet complete: headers that trickle in past the limit.
        with socket.create_connection((LOOPBACK, args.port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000)
            time.sleep(0.3)
            with contextlib.suppress(OSError):
                sock.sendall(b"\r\n\r\n")
            answer = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 400") or answer == b"", answer[:200]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_openapi_describes_the_new_routes_exactly(
    api: str, client: httpx.Client, tiny_reranker: LycheeReranker
) -> None:
    spec = client.get(f"{api}/openapi.json").json()
    assert {"/v1/score", "/v1/models"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    limit = _max_length(tiny_reranker)
    for name in ("CompatRerankRequest", "ScoreV1Request"):
        branches = schemas[name]["properties"]["truncate_prompt_tokens"]["anyOf"]
        assert {"type": "integer", "minimum": limit} in branches and {"type": "integer", "enum": [-1]} in branches
    assert schemas["CompatRerankRequest"]["properties"]["return_documents"]["default"] is False
