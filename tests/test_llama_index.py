"""The LlamaIndex postprocessor: contract tests on a fake scorer, real query engines on the tiny checkpoint."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adapter_helpers import SCORES, TEXTS, RequestRecorder, table_scorer
from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.embeddings import MockEmbedding, MockMultiModalEmbedding
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.indices.multi_modal import MultiModalVectorIndexRetriever
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import (
    BaseNode,
    ImageDocument,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    NodeWithScore,
    QueryBundle,
    TextNode,
)
from pydantic import AnyUrl, Field, ValidationError

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.errors import ImageLoadError, InvalidInputError
from lychee_integrations.inputs import RerankInput
from lychee_integrations.instructions import DEFAULT_INSTRUCTION, get_template
from lychee_integrations.llama_index import LycheeRerank
from lychee_integrations.recipes import get_recipe
from lychee_integrations.testing import FakeScorer


def scored_nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t, id_=f"id-{t}"), score=0.5 + k / 100) for k, t in enumerate(TEXTS)]


def expected_order(texts: list[str]) -> list[str]:
    return sorted(texts, key=lambda t: -SCORES[t])


class Recorder(BaseEventHandler):
    """Collects the rerank instrumentation events."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, (ReRankStartEvent, ReRankEndEvent)):
            self.events.append(event)


@pytest.fixture()
def recorder() -> Iterator[Recorder]:
    root = get_dispatcher()
    handler = Recorder()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


# ----------------------------------------------------------------------------- construction


def test_is_a_llama_index_postprocessor() -> None:
    postprocessor = LycheeRerank(reranker=FakeScorer())
    assert isinstance(postprocessor, BaseNodePostprocessor)
    assert LycheeRerank.class_name() == "LycheeRerank"
    assert postprocessor.top_n == 3
    assert postprocessor.metadata_mode == MetadataMode.EMBED
    assert postprocessor.keep_retrieval_score is False
    assert postprocessor.model_name == "fake-lychee"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unknown_option": 1}, "Extra inputs are not permitted"),
        ({"top_n": 0}, "greater than or equal to 1"),
        ({"score_threshold": 2}, "less than or equal to 1"),
        ({"task": "factual_qa", "instruction": "x"}, "not both"),
        ({"task": "no_such_task"}, "known templates: web_search, factual_qa"),
        ({"model": "some/model"}, "cannot be combined with reranker="),
        ({"metadata_mode": "everything"}, "metadata_mode"),
    ],
)
def test_invalid_configuration_is_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        LycheeRerank(reranker=FakeScorer(), **kwargs)


def test_engine_options_are_validated_at_construction() -> None:
    with pytest.raises(ValidationError, match="dtype 'int4' is not supported"):
        LycheeRerank(dtype="int4")


def test_serialization_round_trip_rebuilds_the_shared_engine(tiny_checkpoint: Path) -> None:
    postprocessor = LycheeRerank(model=str(tiny_checkpoint), device="cpu", top_n=4, task="visual_document")
    data = postprocessor.to_dict()
    assert data["class_name"] == "LycheeRerank"
    assert "reranker" not in data
    rebuilt = LycheeRerank.from_dict(data)
    assert rebuilt.reranker is postprocessor.reranker
    assert (rebuilt.top_n, rebuilt.task) == (4, "visual_document")
    assert LycheeRerank.from_json(postprocessor.to_json()).reranker is postprocessor.reranker


# ----------------------------------------------------------------------------- ordering and copies


def test_orders_by_score_and_keeps_top_n() -> None:
    nodes = scored_nodes()
    result = LycheeRerank(reranker=table_scorer(SCORES)).postprocess_nodes(nodes, query_str="q")
    assert [n.node.get_content() for n in result] == expected_order(TEXTS)[:3]
    assert [n.score for n in result] == [SCORES[n.node.get_content()] for n in result]


def test_returns_new_node_with_scores_and_leaves_inputs_alone() -> None:
    nodes = scored_nodes()
    before = [(n.node.node_id, n.score, dict(n.node.metadata)) for n in nodes]
    result = LycheeRerank(reranker=table_scorer(SCORES), top_n=None).postprocess_nodes(nodes, query_str="q")
    assert [(n.node.node_id, n.score, dict(n.node.metadata)) for n in nodes] == before
    assert not any(r is n for r in result for n in nodes)
    assert [n.node.get_content() for n in result] == expected_order(TEXTS)


def test_keep_retrieval_score_copies_the_node() -> None:
    nodes = scored_nodes()
    result = LycheeRerank(reranker=table_scorer(SCORES), keep_retrieval_score=True).postprocess_nodes(
        nodes, query_str="q"
    )
    by_text = {n.node.get_content(): n for n in nodes}
    for reranked in result:
        original = by_text[reranked.node.get_content()]
        assert reranked.node.metadata["retrieval_score"] == original.score
        assert reranked.node is not original.node
        assert reranked.node.node_id == original.node.node_id
        assert "retrieval_score" not in original.node.metadata


def test_score_threshold() -> None:
    postprocessor = LycheeRerank(reranker=table_scorer(SCORES), top_n=None, score_threshold=0.5)
    result = postprocessor.postprocess_nodes(scored_nodes(), query_str="q")
    assert [n.node.get_content() for n in result] == ["bravo", "echo", "charlie"]


def test_empty_input_and_missing_query() -> None:
    scorer = FakeScorer()
    postprocessor = LycheeRerank(reranker=scorer)
    assert postprocessor.postprocess_nodes([], query_str="q") == []
    assert scorer.calls == []
    with pytest.raises(InvalidInputError, match="query: is missing: pass query_bundle="):
        postprocessor.postprocess_nodes(scored_nodes())
    with pytest.raises(InvalidInputError, match="query: is empty"):
        postprocessor.postprocess_nodes(scored_nodes(), query_str="")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, None),
        ({"task": "visual_document"}, get_template("visual_document").instruction),
        ({"instruction": "Given a chart question, retrieve the chart"}, "Given a chart question, retrieve the chart"),
    ],
)
def test_instruction_reaches_the_scorer(kwargs: dict[str, Any], expected: str | None) -> None:
    """The adapter passes the configured instruction, or none: the scorer applies its own family's default."""
    scorer = RequestRecorder()
    LycheeRerank(reranker=scorer, **kwargs).postprocess_nodes(scored_nodes(), query_str="q")
    assert [request.instruction for request in scorer.requests] == [expected]
    applied = get_recipe("qwen3-vl").default_instruction if expected is None else expected
    assert applied != DEFAULT_INSTRUCTION
    assert [call.instruction for call in scorer.calls] == [applied]


# ----------------------------------------------------------------------------- node and query conversion


def sent(postprocessor: LycheeRerank, nodes: list[BaseNode], query: QueryBundle | None = None) -> list[RerankInput]:
    scorer = postprocessor.reranker
    assert isinstance(scorer, FakeScorer)
    postprocessor.postprocess_nodes([NodeWithScore(node=n, score=0.1) for n in nodes], query or QueryBundle("q"))
    return list(scorer.calls[-1].documents)


def test_text_node_metadata_mode() -> None:
    node = TextNode(text="body", metadata={"title": "T", "secret": "s"}, excluded_embed_metadata_keys=["secret"])
    assert sent(LycheeRerank(reranker=FakeScorer()), [node]) == [RerankInput("title: T\n\nbody")]
    none_mode = LycheeRerank(reranker=FakeScorer(), metadata_mode=MetadataMode.NONE)
    assert sent(none_mode, [node]) == [RerankInput("body")]
    all_mode = LycheeRerank(reranker=FakeScorer(), metadata_mode=MetadataMode.ALL)
    assert sent(all_mode, [node])[0].text == "title: T\nsecret: s\n\nbody"


def test_image_nodes_of_every_kind(tmp_path: Path) -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    path = tmp_path / "x.png"
    nodes: list[BaseNode] = [
        ImageNode(image=png, metadata={"file_path": "x.png"}),
        ImageNode(image_path=str(path), text="a caption"),
        ImageNode(image_url="https://example.com/a.png"),
        ImageNode(image=f"data:image/png;base64,{png}"),
        Node(image_resource=MediaResource(data=b"\x89PNG raw bytes")),
        Node(image_resource=MediaResource(path=path)),
        Node(image_resource=MediaResource(url=AnyUrl("https://example.com/b.png"))),
        Node(image_resource=MediaResource(path=path), text_resource=MediaResource(text="caption two")),
        ImageNode(image_resource=MediaResource(path=path)),
    ]
    raw_b64 = base64.b64encode(b"\x89PNG raw bytes").decode()
    assert sent(LycheeRerank(reranker=FakeScorer()), nodes) == [
        RerankInput(None, (f"data:;base64,{png}",)),  # metadata alone is not text
        RerankInput("a caption", (path,)),
        RerankInput(None, ("https://example.com/a.png",)),
        RerankInput(None, (f"data:image/png;base64,{png}",)),
        RerankInput(None, (f"data:;base64,{raw_b64}",)),
        RerankInput(None, (path,)),
        RerankInput(None, ("https://example.com/b.png",)),
        RerankInput("caption two", (path,)),
        RerankInput(None, (path,)),
    ]


def test_image_document(images: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "doc.png"
    images["red"].save(path)
    document = ImageDocument(image_path=str(path), text="red square")
    assert sent(LycheeRerank(reranker=FakeScorer()), [document]) == [RerankInput("red square", (path,))]


@pytest.mark.parametrize(
    ("bundle", "expected"),
    [
        (QueryBundle("a red car"), RerankInput("a red car")),
        (QueryBundle("", image_path="/q.png"), RerankInput(None, (Path("/q.png"),))),
        (QueryBundle("what is this", image_path="/q.png"), RerankInput("what is this", (Path("/q.png"),))),
        (QueryBundle("", image_path="https://example.com/q.png"), RerankInput(None, ("https://example.com/q.png",))),
    ],
)
def test_query_bundle_forms(bundle: QueryBundle, expected: RerankInput) -> None:
    scorer = FakeScorer()
    LycheeRerank(reranker=scorer).postprocess_nodes(scored_nodes(), bundle)
    assert scorer.calls[-1].query == expected


# ----------------------------------------------------------------------------- events and callbacks


def test_rerank_events_are_dispatched(recorder: Recorder) -> None:
    nodes = scored_nodes()
    bundle = QueryBundle("q")
    result = LycheeRerank(reranker=table_scorer(SCORES), top_n=2).postprocess_nodes(nodes, bundle)
    start, end = recorder.events
    assert isinstance(start, ReRankStartEvent)
    assert (start.query, start.nodes, start.top_n, start.model_name) == (bundle, nodes, 2, "fake-lychee")
    assert isinstance(end, ReRankEndEvent)
    assert end.nodes == result


def test_top_n_none_reports_every_node(recorder: Recorder) -> None:
    LycheeRerank(reranker=FakeScorer(), top_n=None).postprocess_nodes(scored_nodes(), query_str="q")
    start = recorder.events[0]
    assert isinstance(start, ReRankStartEvent)
    assert start.top_n == len(TEXTS)


def test_callback_manager_is_read_at_call_time() -> None:
    postprocessor = LycheeRerank(reranker=table_scorer(SCORES), top_n=2)
    handler = LlamaDebugHandler()
    postprocessor.callback_manager = CallbackManager([handler])
    result = postprocessor.postprocess_nodes(scored_nodes(), query_str="the question")
    [(start, end)] = handler.get_event_pairs(CBEventType.RERANKING)
    assert start.payload is not None and end.payload is not None
    assert start.payload[EventPayload.QUERY_STR] == "the question"
    assert start.payload[EventPayload.MODEL_NAME] == "fake-lychee"
    assert start.payload[EventPayload.TOP_K] == 2
    assert len(start.payload[EventPayload.NODES]) == len(TEXTS)
    assert end.payload[EventPayload.NODES] == result


# ----------------------------------------------------------------------------- async


def test_apostprocess_runs_off_the_event_loop() -> None:
    """The scorer runs in a worker thread, and the event loop goes on while it waits."""
    release = threading.Event()
    seen: dict[str, Any] = {}

    def blocking(query: RerankInput, document: RerankInput, instruction: str) -> float:
        seen["thread"] = threading.get_ident()
        seen["loop"].call_soon_threadsafe(seen["started"].set)  # handled only if the loop is free
        if not release.wait(timeout=10):
            raise TimeoutError("the event loop was blocked")
        return SCORES[document.text or ""]

    postprocessor = LycheeRerank(reranker=FakeScorer(blocking))

    async def main() -> list[NodeWithScore]:
        seen["loop"], seen["started"] = asyncio.get_running_loop(), asyncio.Event()
        task = asyncio.ensure_future(postprocessor.apostprocess_nodes(scored_nodes(), query_str="q"))
        await asyncio.wait_for(seen["started"].wait(), timeout=10)  # the scorer waits; the loop does not
        release.set()
        return list(await task)

    assert [n.node.get_content() for n in asyncio.run(main())] == expected_order(TEXTS)[:3]
    assert seen["thread"] != threading.get_ident()  # not the event loop's thread


def test_twenty_concurrent_apostprocess_calls(recorder: Recorder) -> None:
    def score(query: RerankInput, document: RerankInput, instruction: str) -> float:
        time.sleep(0.002)
        return 0.9 if document.text == query.text else 0.1

    postprocessor = LycheeRerank(reranker=FakeScorer(score), top_n=2)
    queries = [TEXTS[k % len(TEXTS)] for k in range(20)]

    async def main() -> list[list[NodeWithScore]]:
        return list(
            await asyncio.gather(*(postprocessor.apostprocess_nodes(scored_nodes(), query_str=q) for q in queries))
        )

    for query, result in zip(queries, asyncio.run(main()), strict=True):
        assert result[0].node.get_content() == query
        assert [n.score for n in result] == [0.9, 0.1]
    assert sum(isinstance(e, ReRankEndEvent) for e in recorder.events) == 20


# ----------------------------------------------------------------------------- query engines


def text_index(texts: list[str]) -> VectorStoreIndex:
    return VectorStoreIndex([TextNode(text=t, id_=f"id-{t}") for t in texts], embed_model=MockEmbedding(embed_dim=8))


def test_query_engine_with_fake_scorer(recorder: Recorder) -> None:
    handler = LlamaDebugHandler()
    engine = RetrieverQueryEngine.from_args(
        text_index(TEXTS).as_retriever(similarity_top_k=5),
        llm=MockLLM(),
        node_postprocessors=[LycheeRerank(reranker=table_scorer(SCORES), top_n=2)],
        callback_manager=CallbackManager([handler]),
    )
    response = engine.query("which one?")
    assert [n.node.get_content() for n in response.source_nodes] == ["bravo", "echo"]
    assert [n.score for n in response.source_nodes] == [0.9, 0.75]
    assert len(handler.get_event_pairs(CBEventType.RERANKING)) == 1
    assert [type(e) for e in recorder.events] == [ReRankStartEvent, ReRankEndEvent]
    response = asyncio.run(engine.aquery("which one?"))
    assert [n.node.get_content() for n in response.source_nodes] == ["bravo", "echo"]
    assert len(handler.get_event_pairs(CBEventType.RERANKING)) == 2


def test_drop_in_as_query_engine() -> None:
    postprocessor = LycheeRerank(reranker=table_scorer(SCORES), top_n=3)
    engine = text_index(TEXTS).as_query_engine(llm=MockLLM(), similarity_top_k=5, node_postprocessors=[postprocessor])
    response = engine.query("which one?")
    assert [n.node.get_content() for n in response.source_nodes] == expected_order(TEXTS)[:3]
    assert str(response)


def mixed_nodes(image_files: dict[str, Path]) -> list[BaseNode]:
    green_b64 = base64.b64encode(image_files["green"].read_bytes()).decode()
    return [
        TextNode(text="A red sports car parked on the street.", id_="t-car"),
        TextNode(text="Bananas are rich in potassium.", id_="t-banana"),
        ImageNode(image_path=str(image_files["red"]), metadata={"file_path": str(image_files["red"])}, id_="i-red"),
        ImageNode(image_path=str(image_files["blue"]), text="A blue square with a stripe.", id_="ti-blue"),
        ImageNode(image=green_b64, metadata={"file_path": "green.png"}, id_="i-green"),
        ImageNode(image_resource=MediaResource(path=image_files["gray"]), metadata={"file_path": "g"}, id_="i-gray"),
    ]


def engine_forms(image_files: dict[str, Path]) -> dict[str, Any]:
    """The same nodes as ``mixed_nodes``, written independently in the engine's own forms."""
    return {
        "t-car": "A red sports car parked on the street.",
        "t-banana": "Bananas are rich in potassium.",
        "i-red": {"image": image_files["red"]},
        "ti-blue": {"text": "A blue square with a stripe.", "image": image_files["blue"]},
        "i-green": {"image": image_files["green"].read_bytes()},
        "i-gray": {"image": str(image_files["gray"])},
    }


def expected_scores(
    reranker: LycheeReranker, query: Any, ids: list[str], forms: dict[str, Any], **kw: Any
) -> dict[str, float]:
    return dict(zip(ids, reranker.score(query, [forms[i] for i in ids], **kw), strict=True))


def assert_reranked(result: list[NodeWithScore], expected: dict[str, float], top_n: int) -> None:
    best = sorted(expected, key=lambda i: -expected[i])[:top_n]
    assert [n.node.node_id for n in result] == best
    assert [n.score for n in result] == pytest.approx([expected[i] for i in best], abs=1e-5)


def test_tiny_checkpoint_text_query_engine(tiny_reranker: LycheeReranker) -> None:
    texts = ["Paris is the capital of France.", "The cat sits on the mat.", "Reset your password in settings."]
    handler = LlamaDebugHandler()
    engine = RetrieverQueryEngine.from_args(
        text_index(texts).as_retriever(similarity_top_k=3),
        llm=MockLLM(),
        node_postprocessors=[LycheeRerank(reranker=tiny_reranker, top_n=2, task="knowledge_base_guide")],
        callback_manager=CallbackManager([handler]),
    )
    question = "How do I reset my password?"
    response = engine.query(question)
    expected = expected_scores(
        tiny_reranker, question, [f"id-{t}" for t in texts], {f"id-{t}": t for t in texts}, task="knowledge_base_guide"
    )
    assert_reranked(response.source_nodes, expected, 2)
    [(start, _)] = handler.get_event_pairs(CBEventType.RERANKING)
    assert start.payload is not None
    assert start.payload[EventPayload.MODEL_NAME] == tiny_reranker.model_name


def multimodal_retriever(image_files: dict[str, Path]) -> MultiModalVectorIndexRetriever:
    index = MultiModalVectorStoreIndex(
        mixed_nodes(image_files),
        embed_model=MockEmbedding(embed_dim=8),
        image_embed_model=MockMultiModalEmbedding(embed_dim=8),
    )
    return index.as_retriever(similarity_top_k=6, image_similarity_top_k=6)


def test_tiny_checkpoint_multimodal_query_engine(
    tiny_reranker: LycheeReranker, image_files: dict[str, Path], recorder: Recorder
) -> None:
    retriever = multimodal_retriever(image_files)
    postprocessor = LycheeRerank(reranker=tiny_reranker, top_n=4, task="product_search", keep_retrieval_score=True)
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=MockLLM(is_chat_model=True), multimodal=True, node_postprocessors=[postprocessor]
    )
    question = "a red car"
    retrieved = retriever.retrieve(question)
    assert {type(n.node) for n in retrieved} == {TextNode, ImageNode}
    response = engine.query(question)
    ids = [n.node.node_id for n in retrieved]
    expected = expected_scores(tiny_reranker, question, ids, engine_forms(image_files), task="product_search")
    assert_reranked(response.source_nodes, expected, 4)
    retrieval = {n.node.node_id: n.score for n in retrieved}
    assert all(n.node.metadata["retrieval_score"] == retrieval[n.node.node_id] for n in response.source_nodes)
    assert [type(e) for e in recorder.events] == [ReRankStartEvent, ReRankEndEvent]


class ImageToImageRetriever(BaseRetriever):
    """Retrieves images for a query bundle's image, as an image-search query engine does."""

    def __init__(self, inner: MultiModalVectorIndexRetriever) -> None:
        super().__init__()
        self._inner = inner

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        assert query_bundle.image_path is not None
        return self._inner.image_to_image_retrieve(query_bundle.image_path)


def test_tiny_checkpoint_image_query(tiny_reranker: LycheeReranker, image_files: dict[str, Path]) -> None:
    inner = multimodal_retriever(image_files)
    postprocessor = LycheeRerank(reranker=tiny_reranker, top_n=2, task="image_search")
    engine = RetrieverQueryEngine.from_args(
        ImageToImageRetriever(inner),
        llm=MockLLM(is_chat_model=True),
        multimodal=True,
        node_postprocessors=[postprocessor],
    )
    bundle = QueryBundle("", image_path=str(image_files["red"]))
    retrieved = inner.image_to_image_retrieve(str(image_files["red"]))
    ids = [n.node.node_id for n in retrieved]
    assert set(ids) == {"i-red", "ti-blue", "i-green", "i-gray"}
    expected = expected_scores(
        tiny_reranker, {"image": image_files["red"]}, ids, engine_forms(image_files), task="image_search"
    )
    assert_reranked(engine.query(bundle).source_nodes, expected, 2)
    # A text+image query goes through the same path.
    both = QueryBundle("the same red square", image_path=str(image_files["red"]))
    expected = expected_scores(
        tiny_reranker,
        {"text": "the same red square", "image": image_files["red"]},
        ids,
        engine_forms(image_files),
        task="image_search",
    )
    assert_reranked(postprocessor.postprocess_nodes(retrieved, both), expected, 2)


def test_tiny_checkpoint_concurrent_async(tiny_reranker: LycheeReranker, image_files: dict[str, Path]) -> None:
    postprocessor = LycheeRerank(reranker=tiny_reranker, top_n=3)
    nodes = [NodeWithScore(node=n, score=0.0) for n in mixed_nodes(image_files)]
    queries = [f"question {k}: which picture is red?" for k in range(20)]
    sync = {
        q: [(n.node.node_id, n.score) for n in postprocessor.postprocess_nodes(nodes, query_str=q)] for q in queries
    }

    async def main() -> list[list[NodeWithScore]]:
        return list(await asyncio.gather(*(postprocessor.apostprocess_nodes(nodes, query_str=q) for q in queries)))

    for query, result in zip(queries, asyncio.run(main()), strict=True):
        assert [n.node.node_id for n in result] == [i for i, _ in sync[query]]
        assert [n.score for n in result] == pytest.approx([s for _, s in sync[query]], abs=1e-5)


def test_tiny_checkpoint_unreadable_image_names_the_document(
    tiny_reranker: LycheeReranker, image_files: dict[str, Path], tmp_path: Path
) -> None:
    nodes = [NodeWithScore(node=n, score=0.0) for n in mixed_nodes(image_files)]
    nodes.append(NodeWithScore(node=ImageNode(image_path=str(tmp_path / "gone.png")), score=0.0))
    with pytest.raises(ImageLoadError, match="document 6: image file not found") as info:
        LycheeRerank(reranker=tiny_reranker).postprocess_nodes(nodes, query_str="q")
    assert info.value.index == 6
    with pytest.raises(ImageLoadError, match="query: image file not found"):
        LycheeRerank(reranker=tiny_reranker).postprocess_nodes(nodes[:2], QueryBundle("", image_path="/nope.png"))
