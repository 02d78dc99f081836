"""The one seam between callers and backends: :class:`Scorer`.

Every backend (the in-process engine, :class:`~lychee_integrations.remote.RemoteReranker`,
:class:`~lychee_integrations.vllm.VLLMReranker`, the model-free :class:`~lychee_integrations.testing.FakeScorer`)
derives from :class:`Scorer`, whose public calls validate the arguments, coerce the query and documents
to :class:`~lychee_integrations.inputs.RerankInput` and resolve ``task``/``instruction`` exactly once, into
one :class:`ScoreRequest` for the backend's :meth:`~Scorer._score` (or :meth:`~Scorer._ascore`, when it can
do better than a worker thread). An unset instruction stays ``None`` down to the backend, which applies
its model family's default (a remote scorer leaves it to the server). This module imports no backend.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from typing_extensions import Self, TypedDict, Unpack

from lychee_integrations.errors import ConfigurationError, InvalidInputError
from lychee_integrations.inputs import InputLike, RerankInput, map_documents, to_query_input, to_rerank_input
from lychee_integrations.instructions import InstructionRegistry, default_registry
from lychee_integrations.results import RerankResult, rank

__all__ = ["CallOptions", "ScoreRequest", "Scored", "Scorer", "refuse_empty"]


@dataclass(frozen=True)
class ScoreRequest:
    """One validated call, as a backend receives it.

    Attributes:
        query: The query (never empty).
        documents: The documents (at least one, none empty), in the caller's order.
        instruction: The instruction text, or ``None`` for the backend's family default.
        batch_size: Most pairs per forward pass for this call, or ``None`` for the backend's setting.
            The engine honours it; vLLM and a remote server schedule their own batches.
        show_progress: Show a progress bar over this call's pairs (``None``: the backend's setting).

    """

    query: RerankInput
    documents: tuple[RerankInput, ...]
    instruction: str | None
    batch_size: int | None = None
    show_progress: bool | None = None


class Scored(NamedTuple):
    """What a backend returns for a :class:`ScoreRequest`.

    Attributes:
        scores: One score in [0, 1] per document, in input order.
        tokens: Prompt tokens the model read (visual tokens included, padding excluded),
            or ``None`` when the backend cannot tell.
        instruction: The instruction text applied, or ``None`` when the backend cannot tell
            (a remote server's own default).

    """

    scores: list[float]
    tokens: int | None
    instruction: str | None


class CallOptions(TypedDict, total=False):
    """The keyword options every scoring call takes (:meth:`Scorer.score` describes each)."""

    instruction: str | None
    task: str | None
    batch_size: int | None
    show_progress: bool | None


_OPTION_NAMES = sorted(CallOptions.__optional_keys__)


def _document(value: object, item: str, index: int) -> RerankInput:
    return to_rerank_input(value, item=item, index=index)


def _non_empty(value: object, item: str, index: int) -> RerankInput:
    document = to_rerank_input(value, item=item, index=index)
    if document.kind == "empty":
        raise InvalidInputError(item, "is empty: give text, an image, or both", index=index)
    return document


def _checked_batch_size(batch_size: object) -> int | None:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    return batch_size


def _checked_progress(show_progress: object) -> bool | None:
    if show_progress is not None and not isinstance(show_progress, bool):
        raise ConfigurationError(f"show_progress must be True, False or None, got {show_progress!r}")
    return show_progress


def refuse_empty(documents: Sequence[RerankInput]) -> None:
    """Refuse documents with neither text nor image (the HTTP API's rule), naming each.

    Raises:
        InvalidInputError: The one empty document; :class:`~lychee_integrations.errors.InvalidDocumentsError`
            for several.

    """
    map_documents(documents, _non_empty)


class Scorer(ABC):
    """Base of every reranker backend; callers (adapters, CLI, service, eval) take any Scorer.

    A subclass implements :attr:`model_name` and :meth:`_score`; it may override
    :meth:`_ascore` (native async), :meth:`load` and :meth:`close`. Implementations must be
    safe to call from several threads at once.

    Example:
        >>> from lychee_integrations.testing import FakeScorer
        >>> FakeScorer().rerank("red car", ["a banana", "a red car"], top_n=1)
        [RerankResult(index=1, score=1.0)]

    """

    #: Instruction templates that ``task`` names are looked up in.
    registry: InstructionRegistry = default_registry
    #: Whether a document with neither text nor image is scored (the recipe's empty side) or refused.
    scores_empty_documents: ClassVar[bool] = True

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The model's name (hub id, directory, or the name a server publishes)."""

    @property
    def default_instruction(self) -> str | None:
        """The instruction applied when a call gives none (its family's), or ``None`` when unknown here."""
        return None

    @abstractmethod
    def _score(self, request: ScoreRequest) -> Scored:
        """Score a validated request (the one method a backend must write)."""

    async def _ascore(self, request: ScoreRequest) -> Scored:
        """Score without blocking the event loop; by default :meth:`_score` in a worker thread."""
        return await asyncio.to_thread(self._score, request)

    # ------------------------------------------------------------------ validation, once

    def request(self, query: InputLike, documents: Sequence[InputLike], **options: Unpack[CallOptions]) -> ScoreRequest:
        """Validate and coerce a call's arguments into the :class:`ScoreRequest` a backend scores.

        Arguments and errors are those of :meth:`score`; no model or server is touched.

        Example:
            >>> from lychee_integrations.testing import FakeScorer
            >>> FakeScorer().request("q", ["a", {"text": "b"}]).documents[1].text
            'b'

        """
        if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
            raise ConfigurationError(
                f"documents must be a list of texts, images, dicts or RerankInput, not {type(documents).__name__}"
            )
        unknown = sorted(set(options) - CallOptions.__optional_keys__)
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r} (options: {', '.join(_OPTION_NAMES)})")
        task, instruction = options.get("task"), options.get("instruction")
        size = _checked_batch_size(options.get("batch_size"))
        progress = _checked_progress(options.get("show_progress"))
        text = None if task is None and instruction is None else self.registry.resolve(task, instruction)
        convert = _document if self.scores_empty_documents else _non_empty
        return ScoreRequest(to_query_input(query), tuple(map_documents(documents, convert)), text, size, progress)

    # ------------------------------------------------------------------ public calls

    def score_with_usage(
        self, query: InputLike, documents: Sequence[InputLike], **options: Unpack[CallOptions]
    ) -> Scored:
        """Like :meth:`score`, with the prompt tokens read and the instruction applied.

        Returns:
            :class:`Scored`; it unpacks as ``scores, tokens, instruction``.

        Example:
            >>> from lychee_integrations.testing import FakeScorer
            >>> FakeScorer().score_with_usage("red car", ["a red car"]).scores
            [1.0]

        """
        return self.score_request(self.request(query, documents, **options))

    def score(self, query: InputLike, documents: Sequence[InputLike], **options: Unpack[CallOptions]) -> list[float]:
        """Score every document against the query.

        Args:
            query: Text, image, ``{"text":..., "image":...}`` or :class:`~lychee_integrations.inputs.RerankInput`.
            documents: The candidates, each in any of the same forms.
            instruction: Free instruction text (default: the model family's).
            task: A template name from :attr:`registry` instead of ``instruction``.
            batch_size: Most pairs per forward pass for this call (default: the backend's setting, such
                as the engine's ``batch_size``); the scores do not depend on it. vLLM and a remote server
                schedule their own batches and accept it without effect.
            show_progress: Show a progress bar over this call's pairs (default: the backend's setting).

        Returns:
            One score in [0, 1] per document, in input order. ``[]`` for no documents.

        Raises:
            InvalidInputError: The query is empty or malformed, or a document is malformed (or
                empty, for a scorer that refuses empty documents); the error names the item
                (several bad documents raise one
                :class:`~lychee_integrations.errors.InvalidDocumentsError` listing each).
            ImageLoadError: An image cannot be read.
            InputTooLongError: A pair's images alone exceed the model's length limit.
            ConfigurationError: ``documents`` is not a list; both or a bad ``task``/``instruction``.

        Example:
            >>> from lychee_integrations.testing import FakeScorer
            >>> FakeScorer().score("red car", ["a red car", "a banana"])
            [1.0, 0.0]

        """
        return self.score_with_usage(query, documents, **options).scores

    def rerank(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        top_n: int | None = None,
        **options: Unpack[CallOptions],
    ) -> list[RerankResult]:
        """Score the documents and return them best first.

        Args:
            query: See :meth:`score`.
            documents: See :meth:`score`.
            instruction: See :meth:`score`.
            task: See :meth:`score`.
            top_n: Keep only the best ``top_n`` (``None`` keeps all).
            batch_size: See :meth:`score`.
            show_progress: See :meth:`score`.

        Returns:
            :class:`~lychee_integrations.results.RerankResult` (original index and score)
            sorted by score, highest first; ties keep input order.

        Raises:
            ConfigurationError: ``top_n`` is not a positive integer or ``None`` (checked
                before any work); see :meth:`score` for the rest.

        Example:
            >>> from lychee_integrations.testing import FakeScorer
            >>> FakeScorer().rerank("red car", ["a banana", "a red car"], top_n=1)
            [RerankResult(index=1, score=1.0)]

        """
        rank([], top_n)
        scores = self.score(query, documents, **options)
        return rank(scores, top_n)

    async def ascore_with_usage(
        self, query: InputLike, documents: Sequence[InputLike], **options: Unpack[CallOptions]
    ) -> Scored:
        """Like :meth:`score_with_usage`, without blocking the event loop."""
        return await self.ascore_request(self.request(query, documents, **options))

    async def ascore(
        self, query: InputLike, documents: Sequence[InputLike], **options: Unpack[CallOptions]
    ) -> list[float]:
        """Like :meth:`score`, without blocking the event loop.

        Example:
            >>> import asyncio
            >>> from lychee_integrations.testing import FakeScorer
            >>> asyncio.run(FakeScorer().ascore("red car", ["a red car"]))
            [1.0]

        """
        return (await self.ascore_with_usage(query, documents, **options)).scores

    async def arerank(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        top_n: int | None = None,
        **options: Unpack[CallOptions],
    ) -> list[RerankResult]:
        """Like :meth:`rerank`, without blocking the event loop."""
        rank([], top_n)
        scores = await self.ascore(query, documents, **options)
        return rank(scores, top_n)

    def predict(
        self,
        pairs: Sequence[tuple[InputLike, InputLike]],
        *,
        instruction: str | None = None,
        task: str | None = None,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
    ) -> list[float]:
        """Score ``(query, document)`` pairs of several queries in one call (``CrossEncoder.predict``'s shape).

        Pairs that share a query (by equality, for hashable queries such as text) are scored in one
        call, so the engine reuses their prefix. Scores come back in the pairs' order, as a list.
        ``batch_size`` and ``show_progress_bar`` are those of :meth:`score` (``show_progress``),
        under sentence-transformers' names; the bar counts the pairs of each query's call.

        Raises:
            ConfigurationError: ``pairs`` is not a list of 2-item pairs; see :meth:`score` for the rest.
            InvalidInputError: As :meth:`score`; ``document N`` counts within the pairs of its query.

        Example:
            >>> from lychee_integrations.testing import FakeScorer
            >>> FakeScorer().predict([("red car", "a red car"), ("banana", "a red car"), ("red car", "a bus")])
            [1.0, 0.0, 0.0]

        """
        if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
            raise ConfigurationError(f"pairs must be a list of (query, document) pairs, not {type(pairs).__name__}")
        _checked_batch_size(batch_size)
        _checked_progress(show_progress_bar)
        groups: dict[object, list[int]] = {}
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ConfigurationError(f"pair {i} must be a (query, document) pair, got {pair!r}")
            try:
                key: object = ("value", pair[0], hash(pair[0]))
            except TypeError:
                key = ("position", i)
            groups.setdefault(key, []).append(i)
        scores = [0.0] * len(pairs)
        for indices in groups.values():
            query = pairs[indices[0]][0]
            got = self.score(
                query,
                [pairs[i][1] for i in indices],
                instruction=instruction,
                task=task,
                batch_size=batch_size,
                show_progress=show_progress_bar,
            )
            for i, value in zip(indices, got, strict=True):
                scores[i] = value
        return scores

    def rank(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        top_k: int | None = None,
        return_documents: bool = False,
        instruction: str | None = None,
        task: str | None = None,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Rank documents in sentence-transformers' ``CrossEncoder.rank`` shape.

        ``batch_size`` and ``show_progress_bar`` are those of :meth:`score` (``show_progress``).

        Returns:
            ``{"corpus_id": index, "score": score}`` per document, best first, at most ``top_k``
            (``None``: all); with ``return_documents``, also ``"text"`` (the document as given).

        Example:
            >>> from lychee_integrations.testing import FakeScorer
            >>> FakeScorer().rank("red car", ["a bus", "a red car"], top_k=1, return_documents=True)
            [{'corpus_id': 1, 'score': 1.0, 'text': 'a red car'}]

        """
        ranked = self.rerank(
            query,
            documents,
            instruction=instruction,
            task=task,
            top_n=top_k,
            batch_size=batch_size,
            show_progress=show_progress_bar,
        )
        rows: list[dict[str, Any]] = [{"corpus_id": r.index, "score": r.score} for r in ranked]
        if return_documents:
            for row in rows:
                row["text"] = documents[row["corpus_id"]]
        return rows

    def score_request(self, request: ScoreRequest) -> Scored:
        """Score a request built by :meth:`request` (for callers that also read the coerced inputs).

        Example:
            >>> from lychee_integrations.testing import FakeScorer
            >>> scorer = FakeScorer()
            >>> request = scorer.request("red car", ["a red car", {"text": "a bus"}])
            >>> [d.kind for d in request.documents], scorer.score_request(request).scores
            (['text', 'text'], [1.0, 0.0])

        """
        if not request.documents:
            return Scored([], 0, request.instruction)
        return self._checked(self._score(request), request)

    async def ascore_request(self, request: ScoreRequest) -> Scored:
        """Like :meth:`score_request`, without blocking the event loop."""
        if not request.documents:
            return Scored([], 0, request.instruction)
        return self._checked(await self._ascore(request), request)

    @staticmethod
    def _checked(scored: Scored, request: ScoreRequest) -> Scored:
        if len(scored.scores) != len(request.documents):
            raise RuntimeError(
                f"the backend returned {len(scored.scores)} scores for {len(request.documents)} documents"
            )
        return scored

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> Self:
        """Get ready now instead of on first use (load the model, ...); returns ``self``."""
        return self

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release what the backend holds (model, connections); a later call acquires it again."""

    async def aclose(self) -> None:
        """Like :meth:`close`, from async code."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
