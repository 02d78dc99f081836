"""Shared by the adapter tests: a table-driven fake scorer and the documents it knows."""

from __future__ import annotations

from collections.abc import Mapping

from lychee_integrations.inputs import RerankInput
from lychee_integrations.testing import FakeScorer

TEXTS = ["alpha", "bravo", "charlie", "delta", "echo"]
SCORES = {"alpha": 0.2, "bravo": 0.9, "charlie": 0.55, "delta": 0.05, "echo": 0.75}


def table_scorer(table: Mapping[str, float]) -> FakeScorer:
    """Scores each document from ``table`` by its text, or by its first image when it has none."""

    def score(query: RerankInput, document: RerankInput, instruction: str) -> float:
        key = document.text if document.text else str(document.images[0])
        return table[key]

    return FakeScorer(score)
