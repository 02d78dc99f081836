"""RemoteReranker and both adapters against vLLM's /v1/rerank (``lychee vllm-serve``), with one option.

The client is the package's own (``protocol="vllm"``); the scores must be the in-process engine's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = pytest.mark.vllm_server

TOLERANCE = 1e-4
INSTRUCTION = "Given a product photo or description, find the catalogue entry that matches it"


def assert_close(expected: list[float], got: list[float]) -> None:
    assert len(expected) == len(got)
    assert max(abs(a - b) for a, b in zip(expected, got, strict=True)) < TOLERANCE, (expected, got)


@pytest.fixture(scope="module")
def client(server: Any) -> Any:
    from lychee_integrations import RemoteReranker

    with RemoteReranker(server.url, protocol="vllm", timeout=120.0) as remote:
        yield remote


def test_remote_reranker_scores_like_the_engine(
    client: Any, server: Any, engine: Any, pictures: dict[str, Any]
) -> None:
    red, blue, green = pictures["red"], pictures["blue"], pictures["green"]
    documents: list[Any] = ["a red sports car", {"image": blue}, {"text": "a green field", "image": green}, "a banana"]
    for query in ("a red car", {"image": red}, {"text": "a red car", "image": red}):
        for instruction in (None, INSTRUCTION):
            expected = engine.score(query, documents, instruction=instruction)
            assert_close(expected, client.score(query, documents, instruction=instruction))
    assert client.model_name == server.model  # read from GET /v1/models


def test_remote_reranker_task_async_and_top_n(client: Any, engine: Any) -> None:
    documents = [f"document number {i} about hotels and travel" for i in range(5)]
    expected = engine.rerank("hotel policy", documents, task="product_search", top_n=2)
    got = asyncio.run(client.arerank("hotel policy", documents, task="product_search", top_n=2))
    assert [r.index for r in got] == [r.index for r in expected]
    assert_close([r.score for r in expected], [r.score for r in got])


def test_pairs_over_the_context_length_are_named(client: Any, engine: Any) -> None:
    """vLLM refuses a request with a pair over --max-model-len; the client names each such document."""
    from lychee_integrations.errors import InputTooLongError, InvalidDocumentsError

    long = "hotel " * 6000  # far over the server's 3200 tokens
    documents = ["a short document", long, "another short one", "a third", long]
    with pytest.raises(InvalidDocumentsError) as caught:
        client.score("hotel policy", documents)
    assert [index for index, _ in caught.value.problems] == [1, 4]
    assert all(isinstance(e, InputTooLongError) for e in caught.value.errors)
    assert "--max-model-len" in str(caught.value)
    with pytest.raises(InputTooLongError, match=r"document 2: .*context length") as one:
        asyncio.run(client.ascore("hotel policy", ["short", "also short", long]))
    assert one.value.index == 2
    fine = ["a short document", "another short one"]
    assert_close(engine.score("hotel policy", fine), client.score("hotel policy", fine))


def test_langchain_adapter_with_one_option(server: Any, engine: Any) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from lychee_integrations import RemoteReranker
    from lychee_integrations.langchain import LycheeRerank

    texts = ["Paris is the capital of France", "a banana", "Berlin is in Germany"]
    expected = engine.score("capital of France", texts)
    compressor = LycheeRerank(reranker=RemoteReranker(server.url, protocol="vllm", timeout=120.0), top_n=None)
    docs = compressor.compress_documents([Document(page_content=t) for t in texts], "capital of France")
    by_text = {d.page_content: d.metadata["relevance_score"] for d in docs}
    assert_close(expected, [by_text[t] for t in texts])
    adocs = asyncio.run(compressor.acompress_documents([Document(page_content=t) for t in texts], "capital of France"))
    assert_close(expected, [{d.page_content: d.metadata["relevance_score"] for d in adocs}[t] for t in texts])


def test_llama_index_adapter_with_one_option(server: Any, engine: Any) -> None:
    # llama-index-core needs a newer setuptools than vLLM pins, so the vLLM environment lacks it: CI runs
    # this module again from the main environment against a server in vLLM's (LYCHEE_VLLM_PYTHON).
    pytest.importorskip("llama_index.core", reason="llama-index-core is not installed in the vLLM environment")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from lychee_integrations import RemoteReranker
    from lychee_integrations.llama_index import LycheeRerank

    texts = ["Paris is the capital of France", "a banana", "Berlin is in Germany"]
    expected = engine.score("capital of France", texts)
    postprocessor = LycheeRerank(reranker=RemoteReranker(server.url, protocol="vllm", timeout=120.0), top_n=3)
    nodes = postprocessor.postprocess_nodes(
        [NodeWithScore(node=TextNode(text=t), score=0.0) for t in texts], QueryBundle("capital of France")
    )
    by_node = {n.node.get_content(): n.score for n in nodes}
    assert_close(expected, [float(by_node[t]) for t in texts])
