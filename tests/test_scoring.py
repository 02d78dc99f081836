"""The Scorer protocol, the shared engine behind every adapter, and the fake scorer used in tests."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.errors import ConfigurationError, InvalidInputError, UnsupportedInputError
from lychee_integrations.inputs import RerankInput
from lychee_integrations.instructions import DEFAULT_INSTRUCTION, get_template
from lychee_integrations.results import RerankResult, rank
from lychee_integrations.scoring import Scorer
from lychee_integrations.testing import FakeScorer, lexical_overlap


def test_rank_orders_best_first_with_stable_ties() -> None:
    assert rank([0.2, 0.9, 0.5, 0.9]) == [
        RerankResult(1, 0.9),
        RerankResult(3, 0.9),
        RerankResult(2, 0.5),
        RerankResult(0, 0.2),
    ]
    assert rank([0.2, 0.9, 0.5], top_n=1) == [RerankResult(1, 0.9)]
    assert rank([], top_n=3) == []


@pytest.mark.parametrize("top_n", [0, -2, 1.5, True])
def test_rank_refuses_bad_top_n(top_n: object) -> None:
    with pytest.raises(ConfigurationError, match="top_n must be a positive integer"):
        rank([0.1], top_n=top_n)  # type: ignore[arg-type]


def test_lexical_overlap() -> None:
    assert lexical_overlap(RerankInput("Red car"), RerankInput("a red bus"), "") == 0.5
    assert lexical_overlap(RerankInput(None, ("a.png",)), RerankInput("x", ("a.png",)), "") == 1.0
    assert lexical_overlap(RerankInput("q", ("a.png",)), RerankInput("q", ("b.png",)), "") == 0.5
    assert lexical_overlap(RerankInput(""), RerankInput("anything"), "") == 0.0


def test_fake_scorer_scores_and_records_calls() -> None:
    scorer = FakeScorer(model_name="my-fake")
    assert isinstance(scorer, Scorer)
    assert scorer.model_name == "my-fake"
    assert scorer.score("red car", ["a red car", "a banana", {"text": "red"}], task="factual_qa") == [1.0, 0.0, 0.5]
    [call] = scorer.calls
    assert call.query == RerankInput("red car")
    assert call.documents == (RerankInput("a red car"), RerankInput("a banana"), RerankInput("red"))
    assert call.instruction == get_template("factual_qa").instruction
    assert scorer.rerank("red car", ["a banana", "a red car"], top_n=1) == [RerankResult(1, 1.0)]
    assert scorer.calls[-1].instruction == DEFAULT_INSTRUCTION


def test_fake_scorer_validates_like_the_engine() -> None:
    scorer = FakeScorer()
    with pytest.raises(InvalidInputError, match="query: is empty"):
        scorer.score("  ", ["x"])
    with pytest.raises(UnsupportedInputError, match="document 1"):
        scorer.score("q", ["x", None])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="not both"):
        scorer.score("q", ["x"], task="factual_qa", instruction="y")
    with pytest.raises(ValueError, match="must lie in"):
        FakeScorer(lambda q, d, i: 1.5).score("q", ["x"])
    assert scorer.calls == []


def test_fake_scorer_is_thread_safe() -> None:
    scorer = FakeScorer()

    def work() -> None:
        for _ in range(50):
            scorer.score("a b", ["a", "b", "c"])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(scorer.calls) == 400


def test_engine_satisfies_the_protocol(tiny_reranker: LycheeReranker) -> None:
    scorer: Scorer = tiny_reranker  # checked statically by mypy as well
    assert isinstance(scorer, Scorer)


def test_one_model_shared_by_every_adapter(tiny_checkpoint: Path, tiny_reranker: LycheeReranker) -> None:
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, TextNode

    from lychee_integrations.langchain import LycheeRerank as LangChainRerank
    from lychee_integrations.llama_index import LycheeRerank as LlamaIndexRerank

    options = {"model": str(tiny_checkpoint), "device": "cpu", "dtype": "float32"}
    compressor = LangChainRerank(**options, top_n=None, task="factual_qa")  # type: ignore[arg-type]
    other_compressor = LangChainRerank(**options, top_n=1)  # type: ignore[arg-type]
    postprocessor = LlamaIndexRerank(**options, top_n=None, task="factual_qa")  # type: ignore[arg-type]
    engine = LycheeReranker.shared(**options)
    assert compressor.reranker is other_compressor.reranker is postprocessor.reranker is engine
    assert LangChainRerank(**options, max_length=2048).reranker is not engine  # type: ignore[arg-type]

    texts = ["Paris is the capital of France.", "Berlin is the capital of Germany.", "A cat sits on the mat."]
    question = "What is the capital of France?"
    expected = tiny_reranker.score(question, texts, task="factual_qa")
    from_langchain = {
        d.page_content: d.metadata["relevance_score"]
        for d in compressor.compress_documents([Document(t) for t in texts], question)
    }
    from_llama_index = {
        n.node.get_content(): n.score
        for n in postprocessor.postprocess_nodes(
            [NodeWithScore(node=TextNode(text=t)) for t in texts], query_str=question
        )
    }
    assert [from_langchain[t] for t in texts] == pytest.approx(expected, abs=1e-5)
    assert [from_llama_index[t] for t in texts] == pytest.approx(expected, abs=1e-5)


def test_importing_the_package_loads_no_framework() -> None:
    code = (
        "import sys, lychee_integrations, lychee_integrations.scoring, lychee_integrations.instructions\n"
        "heavy = ('torch', 'transformers', 'langchain_core', 'llama_index', 'pydantic')\n"
        "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]\n"
        "import lychee_integrations.langchain\n"
        "assert 'llama_index' not in sys.modules and 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
