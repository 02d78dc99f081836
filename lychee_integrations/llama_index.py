"""Lychee as a LlamaIndex node postprocessor (reranker), for text, image and mixed nodes.

:class:`LycheeRerank` is a ``BaseNodePostprocessor``: put it in ``node_postprocessors=[...]``
of any query engine, multimodal ones included. Text and image candidates get scores on one
scale, which fixes the incomparable text and image similarity scores of ``MultiModalVectorIndexRetriever``.

Example:
    >>> from lychee_integrations.llama_index import LycheeRerank
    >>> reranker = LycheeRerank(top_n=3, task="visual_document")  # doctest: +SKIP
    >>> engine = index.as_query_engine(similarity_top_k=20, node_postprocessors=[reranker])  # doctest: +SKIP

"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, ImageNode, MediaResource, MetadataMode, NodeWithScore, QueryBundle
from pydantic import Field

from lychee_integrations._adapter import RerankerFields
from lychee_integrations.errors import InvalidInputError
from lychee_integrations.inputs import ImageLike, RerankInput, to_rerank_input
from lychee_integrations.results import RerankResult

__all__ = ["LycheeRerank"]

_Nodes = list[NodeWithScore]
dispatcher = get_dispatcher(__name__)


class LycheeRerank(RerankerFields, BaseNodePostprocessor):
    """Rerank LlamaIndex nodes (text, images or both) with the Lychee multimodal reranker.

    Returns new ``NodeWithScore`` objects, best first, whose ``score`` is the reranker's
    relevance in [0, 1] (above 0.7 relevant, below 0.4 safe to filter); the input nodes
    are never modified. A node's text is ``node.get_content(metadata_mode)`` when the node
    has text of its own (metadata alone does not make an image node a text node); its
    image is its ``image_resource`` (data, path or URL) or, for an ``ImageNode``, its
    ``image``, ``image_path`` or ``image_url``, the first that is set. A query bundle's
    ``image_path`` makes an image query (``query_str`` may then be empty).

    Emits ``ReRankStartEvent``/``ReRankEndEvent`` and a ``CBEventType.RERANKING`` callback
    event per call, like LlamaIndex's own rerankers.

    Args:
        reranker: A ready reranker; excludes the engine options and ``base_url``.
        base_url: URL of a ``lychee serve`` server (or a list of replicas): score there,
            with :class:`~lychee_integrations.remote.RemoteReranker`. Without it and without
            engine options, the ``LYCHEE_BASE_URL`` environment variable applies.
        api_key: The server's API key (default: ``LYCHEE_API_KEY``); never serialized.
        model: Hub id or local directory (default ``vec-ai/lychee-rerank-mm``).
        device, dtype, attn_implementation, quantization, max_length, max_pixels, batch_size:
            Engine options (``None``: the engine's default); the same options share one
            loaded model per process.
        engine_options: Any other ``LycheeReranker`` option.
        top_n: How many nodes to return (default 3); ``None`` returns all, reordered.
        score_threshold: Drop nodes scoring below it.
        task: Instruction template name (see ``lychee_integrations.instructions.list_templates``).
        instruction: Free instruction text; excludes ``task``.
        keep_retrieval_score: Copy each node's previous score to ``metadata["retrieval_score"]``
            (on a copy of the node).
        metadata_mode: Which metadata joins a node's text (default ``MetadataMode.EMBED``).

    Raises:
        pydantic.ValidationError: (a ``ValueError``) on an unknown field, a bad value,
            ``task`` and ``instruction`` together, an unknown ``task`` (the message lists
            the known ones), or engine options together with ``reranker``.

    Example:
        >>> reranker = LycheeRerank(model="vec-ai/lychee-rerank-mm", top_n=2)  # doctest: +SKIP
        >>> best = reranker.postprocess_nodes(nodes, query_str="What does the chart show?")  # doctest: +SKIP
        >>> [(n.node.node_id, round(n.score, 2)) for n in best]  # doctest: +SKIP
        [('chart-page-3', 0.91), ('summary', 0.74)]

    """

    keep_retrieval_score: bool = Field(
        default=False, description="Keep the retriever's score in metadata['retrieval_score']."
    )
    metadata_mode: MetadataMode = Field(default=MetadataMode.EMBED, description="Which metadata joins a node's text.")

    @classmethod
    def class_name(cls) -> str:
        """Name used in LlamaIndex serialization."""
        return "LycheeRerank"

    def _query_input(self, query_bundle: QueryBundle) -> RerankInput:
        images = (_image_path(query_bundle.image_path),) if query_bundle.image_path else ()
        return to_rerank_input(RerankInput(query_bundle.query_str or None, images), item="query")

    def _node_input(self, node: BaseNode, index: int) -> RerankInput:
        """Convert one node to the engine's input: the only place that reads nodes."""
        own_text = node.get_content(metadata_mode=MetadataMode.NONE)
        text = node.get_content(metadata_mode=self.metadata_mode) if own_text.strip() else None
        return to_rerank_input(RerankInput(text, _node_images(node)), item=f"document {index}", index=index)

    def _with_score(self, original: NodeWithScore, score: float) -> NodeWithScore:
        node = original.node
        if self.keep_retrieval_score:
            metadata = {**node.metadata, "retrieval_score": original.score}
            node = node.model_copy(update={"metadata": metadata})
        return NodeWithScore(node=node, score=score)

    def _inputs(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> tuple[RerankInput, list[Any]]:
        if query_bundle is None:
            raise InvalidInputError(
                "query", "is missing: pass query_bundle=QueryBundle(...) or query_str=... to postprocess_nodes"
            )
        if not nodes:
            return RerankInput(), []
        return self._query_input(query_bundle), [self._node_input(n.node, i) for i, n in enumerate(nodes)]

    @contextmanager
    def _reranking(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle
    ) -> Iterator[Callable[[list[RerankResult]], list[NodeWithScore]]]:
        """LlamaIndex's reranking events around one call; yields what turns results into scored nodes."""
        top_n = self.top_n if self.top_n is not None else len(nodes)
        dispatcher.event(ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=top_n, model_name=self.model_name))
        payload: dict[str, Any] = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model_name,
            EventPayload.QUERY_STR: query_bundle.query_str,
            EventPayload.TOP_K: top_n,
        }
        reranked: list[NodeWithScore] = []
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:

            def finish(results: list[RerankResult]) -> list[NodeWithScore]:
                reranked.extend(self._with_score(nodes[r.index], r.score) for r in results)
                event.on_end(payload={EventPayload.NODES: reranked})
                return reranked

            yield finish
        dispatcher.event(ReRankEndEvent(nodes=reranked))

    def _postprocess_nodes(self, nodes: _Nodes, query_bundle: QueryBundle | None = None) -> _Nodes:
        query, documents = self._inputs(nodes, query_bundle)
        if not nodes or query_bundle is None:
            return []
        with self._reranking(nodes, query_bundle) as finish:
            return finish(self._rank(query, documents))

    async def _apostprocess_nodes(self, nodes: _Nodes, query_bundle: QueryBundle | None = None) -> _Nodes:
        """Await the scorer's ``arerank`` (native on every backend)."""
        query, documents = self._inputs(nodes, query_bundle)
        if not nodes or query_bundle is None:
            return []
        with self._reranking(nodes, query_bundle) as finish:
            return finish(await self._arank(query, documents))


def _node_images(node: BaseNode) -> tuple[ImageLike, ...]:
    resource = getattr(node, "image_resource", None)
    if isinstance(resource, MediaResource):
        if resource.data:
            # MediaResource keeps its data base64-encoded.
            return (_data_uri(resource.data.decode("ascii")),)
        if resource.path is not None:
            return (_image_path(str(resource.path)),)
        if resource.url is not None:
            return (str(resource.url),)
    if isinstance(node, ImageNode):
        if node.image:
            return (_data_uri(node.image),)
        if node.image_path:
            return (_image_path(node.image_path),)
        if node.image_url:
            return (node.image_url,)
    return ()


def _data_uri(base64_data: str) -> str:
    """Mark base64 image data unambiguously (the image loader would try it as a path first)."""
    return base64_data if base64_data.startswith("data:") else f"data:;base64,{base64_data}"


def _image_path(path: str) -> ImageLike:
    """Give a local path as ``Path`` (for clear 'file not found' errors); URLs stay strings."""
    return path if "://" in path[:32] else Path(path)
