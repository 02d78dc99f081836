"""Shared by the adapter tests: a table-driven fake scorer and the documents it knows."""

from __future__ import annotations

from collections.abc import Mapping

from lychee_integrations.inputs import RerankInput
from lychee_integrations.scoring import Scored, ScoreRequest
from lychee_integrations.testing import FakeScorer

TEXTS = ["alpha", "bravo", "charlie", "delta", "echo"]
SCORES = {"alpha": 0.2, "bravo": 0.9, "charlie": 0.55, "delta": 0.05, "echo": 0.75}


def table_scorer(table: Mapping[str, float]) -> FakeScorer:
    """Scores each document from ``table`` by its text, or by its first image when it has none."""

    def score(query: RerankInput, document: RerankInput, instruction: str) -> float:
        key = document.text if document.text else str(document.images[0])
        return table[key]

    return FakeScorer(score)


class RequestRecorder(FakeScorer):
    """A :class:`FakeScorer` of the ``qwen3-vl`` family that also keeps each request as the adapter sent it.

    :attr:`requests` holds the instruction before any default is applied (``None`` when the
    adapter left it to the scorer); :attr:`calls` holds the instruction actually scored with.
    The family is not Lychee's, so an adapter that filled in Lychee's default itself is caught.
    """

    def __init__(self) -> None:
        super().__init__(family="qwen3-vl")
        self.requests: list[ScoreRequest] = []

    def _score(self, request: ScoreRequest) -> Scored:
        self.requests.append(request)
        return super()._score(request)
