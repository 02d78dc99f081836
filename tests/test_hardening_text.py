"""Text is bounded before it costs anything: a length cap at the service, the query cut once per call.

Reproductions of issue 17: a 400 KiB query x 100 documents must cost at most 4x the same request
with a 10 KB query (counted as characters handed to the tokenizer, not timed); a text over the
service's cap is refused with a 413 naming the item, the limit and its value.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from service_helpers import serve_app

from lychee_integrations.service.app import create_app
from lychee_integrations.service.settings import ServiceSettings
from lychee_integrations.testing import FakeScorer

DOCUMENTS = [f"document {i} about running shoes and the weather" for i in range(100)]


def _words(n_chars: int) -> str:
    text = " ".join(f"word{i}" for i in range(n_chars // 5))
    return text[:n_chars]


def _tokenized_characters(reranker: Any, monkeypatch: pytest.MonkeyPatch, query: str) -> int:
    """Characters the encoder hands to the tokenizer while scoring ``query`` against the documents."""
    encoder = reranker._get_runtime().encoder
    seen: list[int] = []
    tokenize = encoder.token_ids

    def counting(text: str) -> list[int]:
        seen.append(len(text))
        return tokenize(text)

    with monkeypatch.context() as patch:
        patch.setattr(encoder, "token_ids", counting)
        scores = reranker.score(query, DOCUMENTS)
    assert len(scores) == len(DOCUMENTS)
    return sum(seen)


def test_a_400_kib_query_costs_at_most_four_times_a_10_kb_one(
    tiny_reranker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _tokenized_characters(tiny_reranker, monkeypatch, _words(10_000))
    huge = _tokenized_characters(tiny_reranker, monkeypatch, _words(400 * 1024))
    assert huge <= 4 * small, f"{huge} characters tokenized for the 400 KiB query, {small} for the 10 KB one"
    # Cut per pair (100 x 400 KiB) it would be 40 M characters, a hundred times more.
    assert huge < 100 * 400 * 1024 / 10


def test_texts_over_the_service_cap_are_refused_naming_item_limit_and_value() -> None:
    settings = ServiceSettings(max_text_chars=1000)
    with serve_app(create_app(FakeScorer(), settings)) as base, httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/health").json()["limits"]["max_text_chars"] == 1000
        body = {"query": "shoes", "documents": ["short", "x" * 1001]}
        refused = client.post("/v1/rerank", json=body)
        assert refused.status_code == 413
        assert refused.json()["detail"] == "document 1: text is 1001 characters, over max_text_chars=1000"
        query = client.post("/api/rerank", json={"query": "q" * 1001, "documents": ["a"]})
        assert query.status_code == 413 and query.json()["detail"].startswith("query: text is 1001 characters")
        pairs = client.post("/v1/score", json={"text_1": "q", "text_2": ["a", "b" * 1001]})
        assert pairs.status_code == 413 and "max_text_chars=1000" in pairs.json()["detail"]
        fits = client.post("/v1/rerank", json={"query": "shoes", "documents": ["short", "x" * 1000]})
        assert fits.status_code == 200 and len(fits.json()["results"]) == 2


def test_the_default_cap_lets_the_400_kib_query_through() -> None:
    assert ServiceSettings().max_text_chars >= 400 * 1024
    with serve_app(create_app(FakeScorer())) as base:
        response = httpx.post(
            f"{base}/v1/rerank", json={"query": _words(400 * 1024), "documents": ["a", "b"]}, timeout=30
        )
    assert response.status_code == 200, response.text
