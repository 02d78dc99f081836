"""Lychee as a LangChain document compressor (reranker), for text and image documents.

:class:`LycheeRerank` is a ``BaseDocumentCompressor``: put it in a ``ContextualCompressionRetriever``
or call it from an LCEL chain (:meth:`LycheeRerank.as_runnable`); text and image documents score on one scale.

Example:
    >>> from langchain_classic.retrievers import ContextualCompressionRetriever
    >>> from lychee_integrations.langchain import LycheeRerank
    >>> reranker = LycheeRerank(top_n=3, task="factual_qa")  # doctest: +SKIP
    >>> retriever = ContextualCompressionRetriever(  # doctest: +SKIP
    ...     base_compressor=reranker, base_retriever=vector_store.as_retriever(search_kwargs={"k": 20})
    ... )

"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from copy import deepcopy
from typing import Any, Literal

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from lychee_integrations._adapter import RerankerFields
from lychee_integrations.errors import ConfigurationError
from lychee_integrations.inputs import InputLike, RerankInput, to_rerank_input
from lychee_integrations.results import RerankResult

__all__ = ["DEFAULT_IMAGE_KEYS", "LycheeRerank"]


#: Metadata keys searched, in order, for a document's image(s).
DEFAULT_IMAGE_KEYS = ("image", "image_path", "image_url", "image_base64")


class LycheeRerank(RerankerFields, BaseDocumentCompressor):
    """Rerank LangChain documents (text, images or both) with the Lychee multimodal reranker.

    Returns copies of the best documents, best first, each with its score in
    ``metadata["relevance_score"]`` (in [0, 1]: above 0.7 relevant, below 0.4 safe to
    filter). The input documents are never modified: the copies' metadata is deep-copied,
    except the image values, which are shared (treated as read-only).

    A document's text is its ``page_content`` (or ``metadata[text_key]``). Its images
    come from the first key of ``image_keys`` present in its metadata; the value is a
    path, URL, data URI, base64 string, bytes, PIL image, or a list of those. With
    ``page_content_type="image"`` the ``page_content`` itself is the image (as vector
    stores' ``add_images`` store it).

    The engine is either given (``reranker=LycheeReranker(...)`` or
    ``RemoteReranker(...)``), or a ``lychee serve`` server (``base_url=``, ``api_key=``;
    or the ``LYCHEE_BASE_URL`` environment variable when no engine option is given), or
    built from the engine options (``model``, ``device``, ``dtype``, ``max_length``, ...):
    adapters with the same options share one loaded model, or one connection pool, per
    process. The API key never appears in ``repr`` or serialized forms.

    Args:
        reranker: A ready reranker; excludes the engine options and ``base_url``.
        base_url: URL of a ``lychee serve`` server (or a list of replicas): score there.
        api_key: The server's API key (default: ``LYCHEE_API_KEY``).
        model: Hub id or local directory (default ``vec-ai/lychee-rerank-mm``).
        device, dtype, attn_implementation, quantization, max_length, max_pixels, batch_size:
            Engine options (``None``: the engine's default).
        engine_options: Any other ``LycheeReranker`` option.
        top_n: How many documents to return (default 3); ``None`` returns all, reordered.
        score_threshold: Drop documents scoring below it.
        task: Instruction template name (see ``lychee_integrations.instructions.list_templates``).
        instruction: Free instruction text; excludes ``task``.
        image_keys: Metadata keys searched, in order, for the document's images.
        text_key: Metadata key holding the text to score instead of ``page_content``.
        page_content_type: ``"text"`` (default) or ``"image"``.

    Raises:
        pydantic.ValidationError: (a ``ValueError``) on an unknown field, a bad value,
            ``task`` and ``instruction`` together, an unknown ``task`` (the message lists
            the known ones), or engine options together with ``reranker``.

    Example:
        >>> reranker = LycheeRerank(model="vec-ai/lychee-rerank-mm", top_n=2)  # doctest: +SKIP
        >>> docs = [Document("Paris is in France."), Document("", metadata={"image": "eiffel.jpg"})]
        >>> best = reranker.compress_documents(docs, "Paris")  # doctest: +SKIP
        >>> [d.metadata["relevance_score"] for d in best]  # doctest: +SKIP
        [0.93, 0.88]

    """

    image_keys: tuple[str, ...] = Field(
        default=DEFAULT_IMAGE_KEYS, description="Metadata keys searched, in order, for images."
    )
    text_key: str | None = Field(default=None, description="Metadata key of the text to score; None: page_content")
    page_content_type: Literal["text", "image"] = Field(
        default="text", description="Whether page_content holds text or an image reference."
    )

    @field_validator("image_keys", mode="after")
    @classmethod
    def _check_image_keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        if any(not isinstance(k, str) or not k.strip() for k in keys):
            raise ConfigurationError(f"image_keys must be non-empty strings, got {keys!r}")
        if len(set(keys)) != len(keys):
            raise ConfigurationError(f"image_keys has duplicates: {keys!r}")
        return keys

    @model_validator(mode="after")
    def _check_text_key(self) -> Self:
        if self.text_key is not None and (not self.text_key.strip() or self.text_key in self.image_keys):
            raise ConfigurationError(
                f"text_key {self.text_key!r} must be a non-empty metadata key that is not one of image_keys"
            )
        return self

    def _document_input(self, document: Document | InputLike, index: int) -> RerankInput:
        """Convert one LangChain document (or a plain input) to the engine's input: the only place."""
        item = f"document {index}"
        if not isinstance(document, Document):
            return to_rerank_input(document, item=item, index=index)
        as_image, content = self.page_content_type == "image", document.page_content
        text = document.metadata.get(self.text_key) if self.text_key else None if as_image else content
        images = [content] if as_image and content.strip() else []
        images += self._metadata_images(document.metadata)
        return to_rerank_input({"text": text, "images": images}, item=item, index=index)

    def _metadata_images(self, metadata: Mapping[str, Any]) -> list[Any]:
        """Return the image value(s) under the first key of ``image_keys`` that holds any."""
        for key in self.image_keys:
            value = metadata.get(key)
            if value is None or (isinstance(value, (str, list, tuple)) and not value):
                continue
            return list(value) if isinstance(value, (list, tuple)) else [value]
        return []

    def rerank(
        self, documents: Sequence[Document | InputLike], query: InputLike, *, top_n: int | None = -1
    ) -> list[RerankResult]:
        """Score every document; return each one's index and score, best first (langchain-cohere's call).

        Ignores the compressor's ``top_n`` and ``score_threshold``: the ``top_n`` given here
        applies (``-1`` or ``None``: every document, as in langchain-cohere).

        Args:
            documents: LangChain documents, or any input the engine reads (text, image,
                ``{"text": ..., "image": ...}``).
            query: Text, an image (PIL image, bytes, Path), ``{"text": ..., "image": ...}``
                or ``RerankInput``.
            top_n: Keep the best ``top_n``; ``-1`` or ``None`` keeps all.

        Returns:
            One :class:`~lychee_integrations.results.RerankResult` per document, best first.

        Raises:
            InvalidInputError: The query or a document cannot be scored (empty, malformed,
                unreadable image); the message names it (``document 3: ...``).

        Example:
            >>> reranker.rerank([Document("a cat"), Document("a car")], "cats")  # doctest: +SKIP
            [RerankResult(index=0, score=0.91), RerankResult(index=1, score=0.02)]

        """
        if not documents:
            return []
        inputs = [self._document_input(doc, i) for i, doc in enumerate(documents)]
        keep = None if top_n is None or top_n == -1 else top_n
        query_input = to_rerank_input(query, item="query")
        return self.scorer.rerank(query_input, inputs, task=self.task, instruction=self.instruction, top_n=keep)

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: InputLike,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank documents and return copies of the best, with ``metadata["relevance_score"]``.

        Args:
            documents: The retrieved documents.
            query: The query: a string in retriever pipelines, but any query form
                :meth:`rerank` accepts works.
            callbacks: Accepted for the interface; not used.

        Returns:
            At most ``top_n`` copies scoring at least ``score_threshold``, best first.

        Raises:
            InvalidInputError: The query or a document cannot be scored; names the document.

        """
        if not documents:
            return []
        query_input = to_rerank_input(query, item="query")
        inputs = [self._document_input(doc, i) for i, doc in enumerate(documents)]
        return [self._with_score(documents[r.index], r.score) for r in self._rank(query_input, inputs)]

    def _with_score(self, document: Document, score: float) -> Document:
        """Copy ``document`` with its score; metadata is deep-copied except image values (shared)."""
        shared = {id(image): image for image in self._metadata_images(document.metadata)}
        metadata = deepcopy(document.metadata, shared)
        metadata["relevance_score"] = score
        return document.model_copy(update={"metadata": metadata})

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: InputLike,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Like :meth:`compress_documents`, without blocking the event loop.

        It awaits the scorer's ``arerank`` (native on every backend). Concurrent calls are
        safe: the shared engine is thread-safe and combines them into shared batches.
        """
        if not documents:
            return []
        query_input = to_rerank_input(query, item="query")
        inputs = [self._document_input(doc, i) for i, doc in enumerate(documents)]
        return [self._with_score(documents[r.index], r.score) for r in await self._arank(query_input, inputs)]

    def as_runnable(self) -> Runnable[Mapping[str, Any], list[Document]]:
        """Wrap this reranker as an LCEL runnable over ``{"query": ..., "documents": [...]}``.

        Returns:
            A runnable (sync and async) returning what :meth:`compress_documents` returns.

        Example:
            >>> from langchain_core.runnables import RunnablePassthrough
            >>> step = {"documents": retriever, "query": RunnablePassthrough()}  # doctest: +SKIP
            >>> chain = step | reranker.as_runnable()  # doctest: +SKIP
            >>> chain.invoke("What is the capital of France?")  # doctest: +SKIP

        """

        def rerank_step(inputs: Mapping[str, Any]) -> list[Document]:
            return list(self.compress_documents(*_step_inputs(inputs)))

        async def arerank_step(inputs: Mapping[str, Any]) -> list[Document]:
            return list(await self.acompress_documents(*_step_inputs(inputs)))

        return RunnableLambda(rerank_step, afunc=arerank_step, name="LycheeRerank")


def _step_inputs(inputs: Mapping[str, Any]) -> tuple[Sequence[Document], Any]:
    if not isinstance(inputs, Mapping) or not {"query", "documents"} <= set(inputs):
        raise ConfigurationError(
            "LycheeRerank.as_runnable() takes a dict with 'query' and 'documents', e.g. "
            "{'documents': retriever, 'query': RunnablePassthrough()} | reranker.as_runnable()"
        )
    return inputs["documents"], inputs["query"]
