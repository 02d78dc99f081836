"""The one scorer base: every backend derives from it and validates, coerces and resolves exactly once."""

from __future__ import annotations

import asyncio

import pytest

from lychee_integrations import ConfigurationError, InvalidDocumentsError, InvalidInputError, RemoteReranker
from lychee_integrations.engine import LycheeReranker
from lychee_integrations.instructions import InstructionRegistry, get_template
from lychee_integrations.recipes import get_recipe
from lychee_integrations.results import RerankResult
from lychee_integrations.scoring import Scored, Scorer, ScoreRequest
from lychee_integrations.testing import FakeScorer
from lychee_integrations.vllm import VLLMReranker

URL = "http://127.0.0.1:9"


class Recording(Scorer):
    """A backend that records what reaches it and scores document ``i`` with ``scores[i]``."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores
        self.requests: list[ScoreRequest] = []
        self.async_requests: list[ScoreRequest] = []

    @property
    def model_name(self) -> str:
        return "recording"

    def _score(self, request: ScoreRequest) -> Scored:
        self.requests.append(request)
        return Scored(self.scores[: len(request.documents)], 7, request.instruction)

    async def _ascore(self, request: ScoreRequest) -> Scored:
        self.async_requests.append(request)
        return Scored(self.scores[: len(request.documents)], 7, request.instruction)


def test_every_backend_derives_from_the_base_and_keeps_its_public_calls() -> None:
    for cls in (LycheeReranker, RemoteReranker, VLLMReranker, FakeScorer):
        assert issubclass(cls, Scorer)
        for name in ("score", "ascore", "rerank", "arerank", "score_with_usage", "request"):
            assert getattr(cls, name) is getattr(Scorer, name), (cls, name)


def test_the_backend_gets_coerced_inputs_and_an_unset_instruction_stays_unset() -> None:
    scorer = Recording([0.2, 0.9, 0.5])
    assert scorer.rerank("q", ["a", {"text": "b"}, {"image": "x.png"}]) == [
        RerankResult(1, 0.9),
        RerankResult(2, 0.5),
        RerankResult(0, 0.2),
    ]
    [request] = scorer.requests
    assert request.instruction is None
    assert [d.kind for d in request.documents] == ["text", "text", "image"]
    assert scorer.score("q", ["a"], task="factual_qa") == [0.2]
    assert scorer.requests[-1].instruction == get_template("factual_qa").instruction


def test_async_calls_reach_the_backends_async_method() -> None:
    scorer = Recording([0.1, 0.8])
    assert asyncio.run(scorer.arerank("q", ["a", "b"], top_n=1)) == [RerankResult(1, 0.8)]
    assert scorer.requests == [] and len(scorer.async_requests) == 1
    assert asyncio.run(scorer.ascore_with_usage("q", ["a"])) == Scored([0.1], 7, None)


def test_every_bad_document_is_named_and_nothing_reaches_the_backend() -> None:
    scorer = Recording([0.5] * 4)
    with pytest.raises(InvalidDocumentsError) as caught:
        scorer.score("q", ["ok", None, {"text": 3}, {"video": "v.mp4"}])  # type: ignore[list-item]
    assert [index for index, _ in caught.value.problems] == [1, 2, 3]
    assert "document 1" in str(caught.value) and "video" in str(caught.value)
    with pytest.raises(InvalidInputError, match="query: is empty"):
        scorer.score(" ", ["a"])
    with pytest.raises(ConfigurationError, match="documents must be a list"):
        scorer.score("q", "a single string")
    with pytest.raises(ConfigurationError, match="not both"):
        scorer.score("q", ["a"], task="factual_qa", instruction="x")
    with pytest.raises(ConfigurationError, match="top_n"):
        scorer.rerank("q", ["a"], top_n=0)
    with pytest.raises(ConfigurationError, match="top_n"):
        asyncio.run(scorer.arerank("q", ["a"], top_n=0))
    assert scorer.requests == [] and scorer.async_requests == []


def test_no_documents_never_reach_the_backend() -> None:
    scorer = Recording([])
    assert scorer.score("q", []) == [] and scorer.rerank("q", [], top_n=2) == []
    assert scorer.requests == []


def test_a_backend_that_loses_a_score_is_caught() -> None:
    scorer = Recording([0.5])
    with pytest.raises(RuntimeError, match="1 scores for 2 documents"):
        scorer.score("q", ["a", "b"])


def test_a_backend_without_its_method_cannot_be_built() -> None:
    class NoScore(Scorer):
        @property
        def model_name(self) -> str:
            return "none"

    with pytest.raises(TypeError, match="_score"):
        NoScore()  # type: ignore[abstract]


def test_empty_documents_are_scored_or_refused_by_one_rule() -> None:
    scorer = Recording([0.5, 0.5])
    assert scorer.score("q", ["a", ""]) == [0.5, 0.5]
    assert scorer.requests[-1].documents[1].kind == "empty"
    remote = RemoteReranker(URL, max_retries=0)  # its server refuses them: so does the client, before any request
    with pytest.raises(InvalidDocumentsError) as caught:
        remote.score("q", ["", "a", {"text": " "}])
    assert [index for index, _ in caught.value.problems] == [0, 2]


def test_the_fake_applies_its_familys_default() -> None:
    fake = FakeScorer(family="qwen3-vl")
    fake.score("q", ["q"])
    assert fake.calls[-1].instruction == get_recipe("qwen3-vl").default_instruction
    assert FakeScorer().default_instruction == get_recipe("lychee").default_instruction


def test_a_scorers_own_registry_resolves_task() -> None:
    registry = InstructionRegistry()
    registry.register("mine", "Find mine")
    fake = FakeScorer(registry=registry)
    fake.score("q", ["a"], task="mine")
    assert fake.calls[-1].instruction == "Find mine"
    with pytest.raises(ConfigurationError):
        FakeScorer().score("q", ["a"], task="mine")


def test_predict_scores_pairs_of_several_queries_in_their_order() -> None:
    fake = FakeScorer()
    pairs = [("red car", "a red car"), ("banana", "a banana split"), ("red car", "a bus"), ({"text": "x"}, "x")]
    assert fake.predict(pairs) == [1.0, 1.0, 0.0, 1.0]
    queries = [call.query.text for call in fake.calls]
    assert queries == ["red car", "banana", "x"]  # one call per distinct query, the first pairs of "red car" together
    assert [len(call.documents) for call in fake.calls] == [2, 1, 1]
    with pytest.raises(ConfigurationError, match="pair 1"):
        fake.predict([("q", "d"), ("q",)])  # type: ignore[list-item]


def test_rank_has_sentence_transformers_shape() -> None:
    scorer = Recording([0.2, 0.9, 0.5])
    assert scorer.rank("q", ["a", "b", "c"]) == [
        {"corpus_id": 1, "score": 0.9},
        {"corpus_id": 2, "score": 0.5},
        {"corpus_id": 0, "score": 0.2},
    ]
    assert scorer.rank("q", ["a", "b", "c"], top_k=1, return_documents=True) == [
        {"corpus_id": 1, "score": 0.9, "text": "b"}
    ]


def test_a_misspelt_option_is_refused_not_ignored() -> None:
    scorer = FakeScorer()
    for call in (scorer.score, scorer.rerank, scorer.score_with_usage, scorer.request):
        with pytest.raises(TypeError, match="'instrucion'"):
            call("red car", ["a red car"], instrucion="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'top_k'"):
        asyncio.run(scorer.arerank("red car", ["a red car"], top_k=1))  # type: ignore[call-arg]
