"""The real Cohere SDK (``cohere.Client`` and ``cohere.ClientV2``) against a real server on loopback."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import serve_app

from lychee_integrations.service import ServiceSettings, create_app, service_reranker

cohere = pytest.importorskip("cohere")

pytestmark = pytest.mark.timeout(300)

KEY = "cohere-test-key"
QUERY = "What is the capital of France?"
TEXTS = ["Paris is the capital of France.", "Berlin is in Germany.", "Red running shoes.", "France is in Europe."]


@pytest.fixture(scope="module", params=["open", "keyed"])
def server(request: pytest.FixtureRequest, tiny_checkpoint: Path) -> Iterator[tuple[str, str | None]]:
    key = KEY if request.param == "keyed" else None
    settings = ServiceSettings(api_key=key, served_model_name="lychee-tiny")
    engine = service_reranker(settings, model=str(tiny_checkpoint), device="cpu", dtype="float32").load()
    with serve_app(create_app(engine, settings)) as base:
        yield base, key


def _check(results: list[Any], expected: list[float], top_n: int) -> None:
    best = sorted(range(len(expected)), key=lambda i: -expected[i])[:top_n]
    assert [r.index for r in results] == best
    for result in results:
        assert math.isclose(result.relevance_score, expected[result.index], abs_tol=1e-4)


def _check_wrong_key(client_class: Any, base: str, key: str | None) -> None:
    if key is None:  # the open server takes any key
        return
    with pytest.raises(cohere.errors.UnauthorizedError) as caught:
        client_class(base_url=base, api_key="wrong").rerank(model="lychee-tiny", query=QUERY, documents=TEXTS)
    assert "invalid API key" in str(caught.value.body)


def test_cohere_client_v1(server: tuple[str, str | None], tiny_reranker: Any) -> None:
    base, key = server
    client = cohere.Client(base_url=base, api_key=key or "unused", timeout=60)
    response = client.rerank(model="lychee-tiny", query=QUERY, documents=TEXTS, top_n=3, return_documents=True)
    expected = tiny_reranker.score(QUERY, TEXTS)
    _check(response.results, expected, 3)
    assert [r.document.text for r in response.results] == [TEXTS[r.index] for r in response.results]
    tokens = tiny_reranker.score_with_usage(QUERY, TEXTS).tokens
    assert response.meta.billed_units.search_units == 1
    assert response.meta.billed_units.input_tokens == tokens
    _check_wrong_key(cohere.Client, base, key)


def test_cohere_client_v2(server: tuple[str, str | None], tiny_reranker: Any) -> None:
    base, key = server
    client = cohere.ClientV2(base_url=base, api_key=key or "unused", timeout=60)
    response = client.rerank(model="lychee-tiny", query=QUERY, documents=TEXTS, top_n=2)
    _check(response.results, tiny_reranker.score(QUERY, TEXTS), 2)
    assert response.meta.tokens.input_tokens == tiny_reranker.score_with_usage(QUERY, TEXTS)[1]
    _check_wrong_key(cohere.ClientV2, base, key)
