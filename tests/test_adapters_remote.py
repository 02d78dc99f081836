"""The LangChain and LlamaIndex adapters on a real ``lychee serve``: same scores as in process, async, secrets."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.load import dumps
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle, TextNode
from remote_helpers import RequestLog, lychee_serve, scripted_app
from service_helpers import png_bytes, serve_app

from lychee_integrations import RemoteReranker
from lychee_integrations.engine import LycheeReranker
from lychee_integrations.langchain import LycheeRerank as LangChainRerank
from lychee_integrations.llama_index import LycheeRerank as LlamaIndexRerank

pytestmark = pytest.mark.timeout(300)

QUERY = "a red picture of Paris"
SECRET = "sk-do-not-leak-4242"


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path) -> Iterator[str]:
    with lychee_serve(tiny_checkpoint, "--max-documents", "2") as base:
        yield base


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LYCHEE_BASE_URL", raising=False)
    monkeypatch.delenv("LYCHEE_API_KEY", raising=False)


def by_id(scored: list[tuple[str, float]]) -> dict[str, float]:
    return dict(scored)


def assert_same(got: dict[str, float], expected: dict[str, float]) -> None:
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - expected[k]) <= 1e-5 for k in got), (got, expected)


def langchain_documents(images: dict[str, Any], image_files: dict[str, Path]) -> list[Document]:
    return [
        Document("Paris is the capital of France.", metadata={"id": "text"}),
        Document("", metadata={"id": "path", "image_path": str(image_files["red"])}),
        Document("", metadata={"id": "pil", "image": images["blue"]}),
        Document("", metadata={"id": "bytes", "image": png_bytes(images["green"])}),
        Document("A gray square", metadata={"id": "text+image", "image": [image_files["gray"], images["red"]]}),
    ]


def test_langchain_remote_gives_in_process_scores_sync_and_async(
    server: str, tiny_reranker: LycheeReranker, images: dict[str, Any], image_files: dict[str, Path]
) -> None:
    documents = langchain_documents(images, image_files)
    local = LangChainRerank(reranker=tiny_reranker, top_n=None, task="product_search")
    remote = LangChainRerank(base_url=server, top_n=None, task="product_search")
    assert isinstance(remote.scorer, RemoteReranker)

    def scores(result: Any) -> dict[str, float]:
        return by_id([(d.metadata["id"], d.metadata["relevance_score"]) for d in result])

    expected = scores(local.compress_documents(documents, QUERY))
    assert_same(scores(remote.compress_documents(documents, QUERY)), expected)
    assert_same(scores(asyncio.run(remote.acompress_documents(documents, QUERY))), expected)
    image_query = {"text": "this picture", "image": image_files["blue"]}
    assert_same(
        scores(remote.compress_documents(documents, image_query)),
        scores(local.compress_documents(documents, image_query)),
    )
    assert [d.metadata.get("relevance_score") for d in documents] == [None] * 5  # inputs untouched


def test_langchain_async_path_awaits_the_client_instead_of_a_thread(server: str) -> None:
    log = RequestLog()
    threads: list[str] = []

    def record(request: Any) -> None:
        threads.append(threading.current_thread().name)
        log(request)

    reranker = RemoteReranker(server, event_hooks={"request": [record]})
    adapter = LangChainRerank(reranker=reranker, top_n=2)
    documents = [Document(t) for t in ("Paris", "Berlin", "Rome")]

    async def main() -> Any:
        return await asyncio.gather(*(adapter.acompress_documents(documents, q) for q in ("a", "b", "c")))

    results = asyncio.run(main())
    assert [len(r) for r in results] == [2, 2, 2]
    assert log.count("POST", "/v1/rerank") == 6  # three calls of 3 documents, 2 per request
    assert set(threads) == {threading.main_thread().name}  # the event loop's thread, never a worker


def llama_nodes(images: dict[str, Any], image_files: dict[str, Path]) -> list[NodeWithScore]:
    encoded = base64.b64encode(png_bytes(images["green"])).decode("ascii")
    nodes = [
        TextNode(text="Paris is the capital of France.", id_="text"),
        ImageNode(image_path=str(image_files["red"]), id_="path"),
        ImageNode(image=encoded, id_="base64"),
        ImageNode(text="A blue square", image_path=str(image_files["blue"]), id_="text+image"),
    ]
    return [NodeWithScore(node=n, score=0.1) for n in nodes]


def test_llama_index_remote_gives_in_process_scores_sync_and_async(
    server: str, tiny_reranker: LycheeReranker, images: dict[str, Any], image_files: dict[str, Path]
) -> None:
    nodes = llama_nodes(images, image_files)
    local = LlamaIndexRerank(reranker=tiny_reranker, top_n=None, instruction="Find the matching picture")
    remote = LlamaIndexRerank(base_url=server, top_n=None, instruction="Find the matching picture")

    def scores(result: list[NodeWithScore]) -> dict[str, float]:
        return by_id([(n.node.node_id, float(n.score or 0.0)) for n in result])

    expected = scores(local.postprocess_nodes(nodes, query_str=QUERY))
    assert_same(scores(remote.postprocess_nodes(nodes, query_str=QUERY)), expected)
    assert_same(scores(asyncio.run(remote.apostprocess_nodes(nodes, query_str=QUERY))), expected)
    image_query = QueryBundle(query_str="", image_path=str(image_files["green"]))
    assert_same(
        scores(asyncio.run(remote.apostprocess_nodes(nodes, query_bundle=image_query))),
        scores(local.postprocess_nodes(nodes, query_bundle=image_query)),
    )


def test_lychee_base_url_makes_a_default_adapter_remote(
    server: str, tiny_reranker: LycheeReranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LYCHEE_BASE_URL", server)
    for adapter_class in (LangChainRerank, LlamaIndexRerank):
        adapter = adapter_class(top_n=None)
        assert isinstance(adapter.scorer, RemoteReranker) and adapter.scorer.base_urls == [server]
        assert adapter.base_url == server
    docs = [Document("Paris"), Document("Berlin")]
    got = [d.metadata["relevance_score"] for d in LangChainRerank(top_n=None).compress_documents(docs, QUERY)]
    expected = [r.score for r in tiny_reranker.rerank(QUERY, ["Paris", "Berlin"])]
    assert all(abs(a - b) <= 1e-5 for a, b in zip(got, expected, strict=True))
    # Engine options or an explicit reranker keep the adapter in process.
    assert LangChainRerank(reranker=tiny_reranker).scorer is tiny_reranker


def test_api_key_is_sent_and_never_serialized() -> None:
    app = scripted_app([])
    with serve_app(app) as url:
        lc = LangChainRerank(base_url=url, api_key=SECRET, top_n=1)
        li = LlamaIndexRerank(base_url=url, api_key=SECRET, top_n=1)
        assert lc.compress_documents([Document("a"), Document("b")], "q")
        assert li.postprocess_nodes([NodeWithScore(node=TextNode(text="a"))], query_str="q")
        assert asyncio.run(li.apostprocess_nodes([NodeWithScore(node=TextNode(text="a"))], query_str="q"))
    assert [c[1] for c in app.state.calls] == [f"Bearer {SECRET}"] * 3
    forms = [
        repr(lc),
        str(lc),
        repr(lc.scorer),
        json.dumps(lc.model_dump(), default=repr),
        lc.model_dump_json(),
        dumps(lc),
        repr(li),
        json.dumps(li.to_dict(), default=repr),
        li.to_json(),
        li.model_dump_json(),
    ]
    for form in forms:
        assert SECRET not in form, form
    assert lc.model_dump()["base_url"] == url and "api_key" not in lc.model_dump()


def test_remote_options_that_conflict_are_refused(tiny_reranker: LycheeReranker) -> None:
    for adapter_class in (LangChainRerank, LlamaIndexRerank):
        with pytest.raises(ValueError, match="api_key= needs base_url="):
            adapter_class(api_key="k")
        with pytest.raises(ValueError, match="cannot be combined with reranker="):
            adapter_class(reranker=tiny_reranker, base_url="http://127.0.0.1:1")
        with pytest.raises(ValueError, match="cannot be combined with base_url="):
            adapter_class(base_url="http://127.0.0.1:1", max_length=64)
        with pytest.raises(ValueError, match="must start with http"):
            adapter_class(base_url="not-a-url")
