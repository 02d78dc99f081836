"""The LangChain compressor: contract tests on a fake scorer, real pipelines on the tiny checkpoint."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from adapter_helpers import SCORES, TEXTS, RequestRecorder, table_scorer
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import ValidationError

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.errors import (
    ImageLoadError,
    InvalidDocumentsError,
    InvalidInputError,
    UnsupportedInputError,
)
from lychee_integrations.inputs import RerankInput
from lychee_integrations.instructions import DEFAULT_INSTRUCTION, get_template
from lychee_integrations.langchain import DEFAULT_IMAGE_KEYS, LycheeRerank
from lychee_integrations.recipes import get_recipe
from lychee_integrations.results import RerankResult
from lychee_integrations.testing import FakeScorer


def docs() -> list[Document]:
    return [Document(t, metadata={"source": f"{t}.txt", "tags": [t]}, id=f"id-{t}") for t in TEXTS]


def expected_order(texts: list[str]) -> list[str]:
    return sorted(texts, key=lambda t: -SCORES[t])


# ----------------------------------------------------------------------------- construction


def test_is_a_langchain_compressor() -> None:
    compressor = LycheeRerank(reranker=FakeScorer())
    assert isinstance(compressor, BaseDocumentCompressor)
    assert compressor.top_n == 3
    assert compressor.image_keys == DEFAULT_IMAGE_KEYS == ("image", "image_path", "image_url", "image_base64")
    assert compressor.model_name == "fake-lychee"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unknown_option": 1}, "Extra inputs are not permitted"),
        ({"top_n": 0}, "greater than or equal to 1"),
        ({"top_n": -1}, "greater than or equal to 1"),
        ({"score_threshold": 1.5}, "less than or equal to 1"),
        ({"score_threshold": -0.1}, "greater than or equal to 0"),
        ({"task": "factual_qa", "instruction": "x"}, "not both"),
        ({"task": "no_such_task"}, "known templates: web_search, factual_qa"),
        ({"instruction": "  "}, "non-empty string"),
        ({"model": "some/model"}, "cannot be combined with reranker="),
        ({"max_length": 512}, "cannot be combined with reranker="),
        ({"image_keys": ("image", "image")}, "duplicates"),
        ({"image_keys": ("",)}, "non-empty strings"),
        ({"text_key": "image"}, "not one of image_keys"),
        ({"page_content_type": "video"}, "'text' or 'image'"),
    ],
)
def test_invalid_configuration_is_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        LycheeRerank(reranker=FakeScorer(), **kwargs)


def test_reranker_must_be_a_scorer() -> None:
    with pytest.raises(ValidationError, match="instance of Scorer"):
        LycheeRerank(reranker="vec-ai/lychee-rerank-mm")  # type: ignore[arg-type]


def test_engine_options_are_validated_at_construction() -> None:
    with pytest.raises(ValidationError, match="device 'gpu0' is not supported"):
        LycheeRerank(model="vec-ai/lychee-rerank-mm", device="gpu0")
    with pytest.raises(ValidationError, match="unknown reranker option"):
        LycheeRerank(engine_options={"no_such_option": 1})
    with pytest.raises(ValidationError, match="give it once"):
        LycheeRerank(device="cpu", engine_options={"device": "cpu"})


# ----------------------------------------------------------------------------- ordering and copies


def test_orders_by_score_keeps_top_n_and_sets_relevance_score() -> None:
    originals = docs()
    result = LycheeRerank(reranker=table_scorer(SCORES)).compress_documents(originals, "query")
    assert [d.page_content for d in result] == expected_order(TEXTS)[:3]
    assert [d.metadata["relevance_score"] for d in result] == [SCORES[d.page_content] for d in result]
    assert [d.id for d in result] == [f"id-{d.page_content}" for d in result]
    assert all(d.metadata["source"] == f"{d.page_content}.txt" for d in result)


def test_returns_copies_and_never_mutates_inputs() -> None:
    originals = docs()
    snapshot = [(d.page_content, d.id, {**d.metadata, "tags": list(d.metadata["tags"])}) for d in originals]
    result = LycheeRerank(reranker=table_scorer(SCORES), top_n=None).compress_documents(originals, "q")
    assert [(d.page_content, d.id, d.metadata) for d in originals] == snapshot
    by_text = {d.page_content: d for d in originals}
    for copy in result:
        original = by_text[copy.page_content]
        assert copy is not original
        assert copy.metadata is not original.metadata
        copy.metadata["tags"].append("changed")
        assert original.metadata["tags"] == [original.page_content]


def test_top_n_none_keeps_all_reordered() -> None:
    result = LycheeRerank(reranker=table_scorer(SCORES), top_n=None).compress_documents(docs(), "q")
    assert [d.page_content for d in result] == expected_order(TEXTS)


def test_top_n_larger_than_input() -> None:
    result = LycheeRerank(reranker=table_scorer(SCORES), top_n=10).compress_documents(docs()[:2], "q")
    assert [d.page_content for d in result] == ["bravo", "alpha"]


def test_score_threshold_filters_after_ranking() -> None:
    compressor = LycheeRerank(reranker=table_scorer(SCORES), top_n=None, score_threshold=0.5)
    assert [d.page_content for d in compressor.compress_documents(docs(), "q")] == ["bravo", "echo", "charlie"]
    compressor = LycheeRerank(reranker=table_scorer(SCORES), top_n=2, score_threshold=0.8)
    assert [d.page_content for d in compressor.compress_documents(docs(), "q")] == ["bravo"]
    compressor = LycheeRerank(reranker=table_scorer(SCORES), score_threshold=0.95)
    assert compressor.compress_documents(docs(), "q") == []


def test_ties_keep_input_order() -> None:
    scorer = FakeScorer(lambda q, d, i: 0.5)
    result = LycheeRerank(reranker=scorer, top_n=None).compress_documents(docs(), "q")
    assert [d.page_content for d in result] == TEXTS


def test_empty_input_returns_empty_without_scoring() -> None:
    scorer = FakeScorer()
    compressor = LycheeRerank(reranker=scorer)
    assert compressor.compress_documents([], "q") == []
    assert compressor.rerank([], "q") == []
    assert scorer.calls == []


# ----------------------------------------------------------------------------- instructions


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, None),
        ({"task": "knowledge_base_guide"}, get_template("knowledge_base_guide").instruction),
        ({"instruction": "Given a bug, retrieve the fix"}, "Given a bug, retrieve the fix"),
    ],
)
def test_instruction_reaches_the_scorer(kwargs: dict[str, Any], expected: str | None) -> None:
    """The adapter passes the configured instruction, or none: the scorer applies its own family's default."""
    scorer = RequestRecorder()
    LycheeRerank(reranker=scorer, **kwargs).compress_documents(docs(), "alpha")
    assert [request.instruction for request in scorer.requests] == [expected]
    applied = get_recipe("qwen3-vl").default_instruction if expected is None else expected
    assert applied != DEFAULT_INSTRUCTION
    assert [call.instruction for call in scorer.calls] == [applied]


def test_user_registered_task() -> None:
    from lychee_integrations.instructions import default_registry, register_template

    register_template("test_lc_recipes", "Given a dish, retrieve recipes that cook it")
    try:
        scorer = FakeScorer()
        LycheeRerank(reranker=scorer, task="test_lc_recipes").compress_documents(docs(), "soup")
        assert scorer.calls[0].instruction == "Given a dish, retrieve recipes that cook it"
    finally:
        default_registry.unregister("test_lc_recipes")


# ----------------------------------------------------------------------------- document conversion


def sent_documents(compressor: LycheeRerank, documents: list[Document], query: Any = "q") -> list[RerankInput]:
    scorer = compressor.reranker
    assert isinstance(scorer, FakeScorer)
    compressor.compress_documents(documents, query)
    return list(scorer.calls[-1].documents)


def test_images_come_from_the_first_present_image_key() -> None:
    documents = [
        Document("caption one", metadata={"image": "a.png", "image_path": "ignored.png"}),
        Document("", metadata={"image": None, "image_path": "b.png", "image_url": "http://x/ignored.png"}),
        Document("", metadata={"image": "", "image_url": "https://example.com/c.png"}),
        Document("", metadata={"image_base64": "aGVsbG8="}),
        Document("just text", metadata={"other": "d.png"}),
    ]
    sent = sent_documents(LycheeRerank(reranker=FakeScorer()), documents)
    assert sent == [
        RerankInput("caption one", ("a.png",)),
        RerankInput("", ("b.png",)),
        RerankInput("", ("https://example.com/c.png",)),
        RerankInput("", ("aGVsbG8=",)),
        RerankInput("just text", ()),
    ]
    assert [s.kind for s in sent] == ["text+image", "image", "image", "image", "text"]


def test_image_values_of_every_form_and_lists(images: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    raw = b"\x89PNG..."
    documents = [
        Document("", metadata={"image": images["red"]}),
        Document("", metadata={"image": raw}),
        Document("", metadata={"image": path}),
        Document("two", metadata={"image": ["a.png", "b.png"]}),
        Document("", metadata={"image": ()}, id="falls-through"),
    ]
    documents[-1].metadata["image_path"] = "c.png"
    sent = sent_documents(LycheeRerank(reranker=FakeScorer()), documents)
    assert sent[0].images == (images["red"],)
    assert sent[1].images == (raw,)
    assert sent[2].images == (path,)
    assert sent[3] == RerankInput("two", ("a.png", "b.png"))
    assert sent[4].images == ("c.png",)


def test_custom_image_keys_and_text_key() -> None:
    compressor = LycheeRerank(reranker=FakeScorer(), image_keys=["thumbnail"], text_key="caption")  # type: ignore[arg-type]
    documents = [
        Document("long body", metadata={"thumbnail": "t.png", "caption": "short caption", "image": "x.png"}),
        Document("no caption here", metadata={"thumbnail": "u.png"}),
    ]
    assert compressor.image_keys == ("thumbnail",)
    assert sent_documents(compressor, documents) == [
        RerankInput("short caption", ("t.png",)),
        RerankInput(None, ("u.png",)),
    ]


def test_page_content_as_image() -> None:
    b64 = base64.b64encode(b"not really an image").decode()
    compressor = LycheeRerank(reranker=FakeScorer(), page_content_type="image", text_key="caption")
    documents = [Document(b64, metadata={"caption": "a cat"}), Document("photo.jpg")]
    assert sent_documents(compressor, documents) == [RerankInput("a cat", (b64,)), RerankInput(None, ("photo.jpg",))]


def test_bad_metadata_values_name_the_document() -> None:
    compressor = LycheeRerank(reranker=FakeScorer())
    with pytest.raises(UnsupportedInputError, match="document 1 image 0: image is an object of type int"):
        compressor.compress_documents([Document("fine"), Document("", metadata={"image": 42})], "q")
    compressor = LycheeRerank(reranker=FakeScorer(), text_key="caption")
    with pytest.raises(UnsupportedInputError, match="document 0: text is an object of type list") as info:
        compressor.compress_documents([Document("x", metadata={"caption": ["a"]})], "q")
    assert info.value.index == 0


def test_empty_document_is_scored_not_dropped() -> None:
    scorer = FakeScorer(lambda q, d, i: 0.0 if d.kind == "empty" else 0.5)
    result = LycheeRerank(reranker=scorer, top_n=None).compress_documents([Document(""), Document("b")], "q")
    assert [(d.page_content, d.metadata["relevance_score"]) for d in result] == [("b", 0.5), ("", 0.0)]


def test_empty_query_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="query: is empty"):
        LycheeRerank(reranker=FakeScorer()).compress_documents(docs(), "   ")


@pytest.mark.parametrize("query", [None, 3, ["a"]])
def test_bad_query_is_refused(query: Any) -> None:
    with pytest.raises(UnsupportedInputError, match="query"):
        LycheeRerank(reranker=FakeScorer()).compress_documents(docs(), query)


# ----------------------------------------------------------------------------- rerank()


def test_rerank_returns_every_index_and_score() -> None:
    compressor = LycheeRerank(reranker=table_scorer(SCORES), top_n=1, score_threshold=0.9)
    results = compressor.rerank(docs(), "q")
    assert results == [RerankResult(TEXTS.index(t), SCORES[t]) for t in expected_order(TEXTS)]


def test_rerank_accepts_image_and_mixed_queries_and_plain_inputs(images: dict[str, Any]) -> None:
    scorer = FakeScorer()
    compressor = LycheeRerank(reranker=scorer)
    red = images["red"]
    documents: list[Any] = [Document("red car"), "a red car", {"image": red}, {"text": "red", "image": red}]
    compressor.rerank(documents, red)
    assert scorer.calls[-1].query == RerankInput(None, (red,))
    compressor.rerank(documents, {"text": "red car", "image": red})
    assert scorer.calls[-1].query == RerankInput("red car", (red,))
    assert [d.kind for d in scorer.calls[-1].documents] == ["text", "text", "image", "text+image"]
    # The image query works through compress_documents too.
    best = compressor.compress_documents([Document("x"), Document("", metadata={"image": red})], red)
    assert best[0].metadata["image"] is red  # images are shared, not copied


# ----------------------------------------------------------------------------- async and concurrency


def test_acompress_runs_off_the_event_loop() -> None:
    """The scorer runs in a worker thread, and the event loop goes on while it waits."""
    release = threading.Event()
    seen: dict[str, Any] = {}

    def blocking(query: RerankInput, document: RerankInput, instruction: str) -> float:
        seen["thread"] = threading.get_ident()
        seen["loop"].call_soon_threadsafe(seen["started"].set)  # handled only if the loop is free
        if not release.wait(timeout=10):
            raise TimeoutError("the event loop was blocked")
        return SCORES[document.text or ""]

    compressor = LycheeRerank(reranker=FakeScorer(blocking))

    async def main() -> list[Document]:
        seen["loop"], seen["started"] = asyncio.get_running_loop(), asyncio.Event()
        task = asyncio.ensure_future(compressor.acompress_documents(docs(), "q"))
        await asyncio.wait_for(seen["started"].wait(), timeout=10)  # the scorer waits; the loop does not
        release.set()
        return list(await task)

    result = asyncio.run(main())
    assert [d.page_content for d in result] == expected_order(TEXTS)[:3]
    assert seen["thread"] != threading.get_ident()  # not the event loop's thread


def test_twenty_concurrent_acompress_calls() -> None:
    def score(query: RerankInput, document: RerankInput, instruction: str) -> float:
        time.sleep(0.002)
        # Each query favours a different document: results must not mix between calls.
        return 0.9 if document.text == query.text else 0.1

    compressor = LycheeRerank(reranker=FakeScorer(score), top_n=2)
    queries = [TEXTS[k % len(TEXTS)] for k in range(20)]

    async def main() -> list[list[Document]]:
        calls = [compressor.acompress_documents(docs(), q) for q in queries]
        return [list(r) for r in await asyncio.gather(*calls)]

    for query, result in zip(queries, asyncio.run(main()), strict=True):
        assert result[0].page_content == query
        assert result[0].metadata["relevance_score"] == 0.9
        assert len(result) == 2


# ----------------------------------------------------------------------------- pipelines (fake scorer)


def vector_store(documents: list[Document]) -> InMemoryVectorStore:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents(documents)
    return store


def test_contextual_compression_retriever_with_fake_scorer() -> None:
    retriever = ContextualCompressionRetriever(
        base_compressor=LycheeRerank(reranker=table_scorer(SCORES), top_n=2),
        base_retriever=vector_store(docs()).as_retriever(search_kwargs={"k": 5}),
    )
    result = retriever.invoke("which one?")
    assert [d.page_content for d in result] == ["bravo", "echo"]
    assert [d.metadata["relevance_score"] for d in result] == [0.9, 0.75]
    result = asyncio.run(retriever.ainvoke("which one?"))
    assert [d.page_content for d in result] == ["bravo", "echo"]


def test_as_runnable_in_lcel() -> None:
    compressor = LycheeRerank(reranker=table_scorer(SCORES), top_n=2)
    retriever = vector_store(docs()).as_retriever(search_kwargs={"k": 5})
    chain = {"documents": retriever, "query": RunnablePassthrough()} | compressor.as_runnable()
    assert [d.page_content for d in chain.invoke("q")] == ["bravo", "echo"]
    assert [d.page_content for d in asyncio.run(chain.ainvoke("q"))] == ["bravo", "echo"]
    with pytest.raises(ValueError, match="'query' and 'documents'"):
        compressor.as_runnable().invoke({"docs": []})


# ----------------------------------------------------------------------------- the tiny real checkpoint


def mixed_documents(image_files: dict[str, Path]) -> list[Document]:
    green_b64 = base64.b64encode(image_files["green"].read_bytes()).decode()
    return [
        Document("A red sports car parked on the street.", id="t-car"),
        Document("Bananas are rich in potassium.", id="t-banana"),
        Document("", metadata={"image_path": str(image_files["red"])}, id="i-red"),
        Document("A blue square with a stripe.", metadata={"image": str(image_files["blue"])}, id="ti-blue"),
        Document("", metadata={"image_base64": green_b64}, id="i-green"),
        Document("", metadata={"image_url": image_files["gray"].as_uri()}, id="i-gray"),
    ]


def engine_forms(image_files: dict[str, Path]) -> list[Any]:
    """The same documents as ``mixed_documents``, written independently in the engine's own forms."""
    return [
        "A red sports car parked on the street.",
        "Bananas are rich in potassium.",
        {"image": image_files["red"]},
        {"text": "A blue square with a stripe.", "image": image_files["blue"]},
        {"image": image_files["green"].read_bytes()},
        {"image": image_files["gray"]},
    ]


def test_tiny_checkpoint_scores_equal_the_engine(tiny_reranker: LycheeReranker, image_files: dict[str, Path]) -> None:
    compressor = LycheeRerank(reranker=tiny_reranker, top_n=None, task="product_search")
    query = "a red car"
    result = compressor.compress_documents(mixed_documents(image_files), query)
    expected = tiny_reranker.score(query, engine_forms(image_files), task="product_search")
    ids = [d.id for d in mixed_documents(image_files)]
    assert [d.id for d in result] == sorted(ids, key=lambda i: -expected[ids.index(i)])
    for document in result:
        assert document.metadata["relevance_score"] == pytest.approx(expected[ids.index(document.id)], abs=1e-5)
    assert all(0.0 <= d.metadata["relevance_score"] <= 1.0 for d in result)


def test_tiny_checkpoint_image_query(tiny_reranker: LycheeReranker, image_files: dict[str, Path]) -> None:
    compressor = LycheeRerank(reranker=tiny_reranker, task="image_search")
    query = {"image": str(image_files["red"])}
    results = compressor.rerank(mixed_documents(image_files), query)
    expected = tiny_reranker.score({"image": image_files["red"]}, engine_forms(image_files), task="image_search")
    assert [r.index for r in results] == sorted(range(len(expected)), key=lambda i: -expected[i])
    assert [r.score for r in results] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)


def test_tiny_checkpoint_retriever_and_lcel_chain(tiny_reranker: LycheeReranker, image_files: dict[str, Path]) -> None:
    documents = mixed_documents(image_files)
    retriever = ContextualCompressionRetriever(
        base_compressor=LycheeRerank(reranker=tiny_reranker, top_n=3),
        base_retriever=vector_store(documents).as_retriever(search_kwargs={"k": len(documents)}),
    )
    question = "Which car is red?"
    expected = tiny_reranker.score(question, engine_forms(image_files))
    ids = [d.id for d in documents]
    best_ids = sorted(ids, key=lambda i: -expected[ids.index(i)])[:3]
    assert [d.id for d in retriever.invoke(question)] == best_ids

    prompts: list[str] = []

    def record(prompt: Any) -> Any:
        prompts.append(prompt.to_string())
        return prompt

    def format_docs(found: list[Document]) -> str:
        return "\n".join(f"[{d.id}] {d.page_content}" for d in found)

    prompt = ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
    chain = (
        {"context": retriever | RunnableLambda(format_docs), "question": RunnablePassthrough()}
        | prompt
        | RunnableLambda(record)
        | FakeListChatModel(responses=["The red one.", "Still the red one."])
        | StrOutputParser()
    )
    assert chain.invoke(question) == "The red one."
    assert asyncio.run(chain.ainvoke(question)) == "Still the red one."
    for text in prompts:
        positions = [text.index(f"[{i}]") for i in best_ids]
        assert positions == sorted(positions)
        assert all(f"[{i}]" not in text for i in ids if i not in best_ids)


def test_tiny_checkpoint_concurrent_async_calls_match_sync(
    tiny_reranker: LycheeReranker, image_files: dict[str, Path]
) -> None:
    compressor = LycheeRerank(reranker=tiny_reranker, top_n=4)
    documents = mixed_documents(image_files)
    queries = [f"query number {k} about a red car" for k in range(20)]
    sync = {
        q: [(d.id, d.metadata["relevance_score"]) for d in compressor.compress_documents(documents, q)] for q in queries
    }

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(compressor.acompress_documents(documents, q) for q in queries)))

    for query, result in zip(queries, asyncio.run(main()), strict=True):
        assert [d.id for d in result] == [i for i, _ in sync[query]]
        assert [d.metadata["relevance_score"] for d in result] == pytest.approx([s for _, s in sync[query]], abs=1e-5)


def test_tiny_checkpoint_unreadable_images_raise_naming_the_document(
    tiny_reranker: LycheeReranker, image_files: dict[str, Path], tmp_path: Path
) -> None:
    compressor = LycheeRerank(reranker=tiny_reranker)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"this is not a png")
    documents = [Document("fine text"), Document("", metadata={"image_path": str(tmp_path / "missing.png")})]
    with pytest.raises(ImageLoadError, match="document 1: image file not found") as info:
        compressor.compress_documents(documents, "q")
    assert info.value.index == 1
    documents.append(Document("caption", metadata={"image": str(corrupt)}))
    with pytest.raises(InvalidDocumentsError, match="2 of 3 documents cannot be scored") as many:
        compressor.compress_documents(documents, "q")
    assert [index for index, _ in many.value.problems] == [1, 2]
    with pytest.raises(InvalidInputError, match="query: is empty"):
        compressor.compress_documents(documents[:1], "")


def test_rerank_takes_langchain_coheres_top_n() -> None:
    compressor = LycheeRerank(reranker=table_scorer(SCORES), top_n=1)
    order = [TEXTS.index(t) for t in expected_order(TEXTS)]
    assert [r.index for r in compressor.rerank(docs(), "q", top_n=2)] == order[:2]
    assert [r.index for r in compressor.rerank(docs(), "q", top_n=-1)] == order
    assert [r.index for r in compressor.rerank(docs(), "q")] == order
