"""What the framework adapters need from a reranker, and a model-free stand-in for tests.

The LangChain and LlamaIndex adapters are typed against :class:`Scorer`, which
:class:`~lychee_integrations.engine.LycheeReranker` satisfies. :func:`shared_scorer`
returns the process-wide engine for a configuration, so every adapter built with the
same options shares one loaded model. :class:`FakeScorer` is a deterministic scorer
without a model, for fast unit tests of pipelines that use the adapters.

Example:
    >>> scorer = FakeScorer(lambda query, document, instruction: len(document.text or "") / 10)
    >>> scorer.rerank("q", ["abc", "a", "abcde"], top_n=2)
    [RerankResult(index=2, score=0.5), RerankResult(index=0, score=0.3)]

"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from lychee_integrations.inputs import InputLike, RerankInput, to_query_input, to_rerank_input
from lychee_integrations.instructions import resolve_instruction
from lychee_integrations.results import RerankResult, rank

__all__ = ["FakeScorer", "ScoreCall", "ScoreFunction", "Scorer", "lexical_overlap", "rank", "shared_scorer"]

logger = logging.getLogger(__name__)


@runtime_checkable
class Scorer(Protocol):
    """The reranker interface the adapters call (``LycheeReranker`` implements it).

    Implementations must be safe to call from several threads at once.
    """

    @property
    def model_name(self) -> str:
        """The model's hub id or directory, for events and logs."""
        ...

    def score(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        instruction: str | None = None,
        task: str | None = None,
    ) -> list[float]:
        """Return one relevance score in [0, 1] per document, in input order."""
        ...

    def rerank(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        instruction: str | None = None,
        task: str | None = None,
        top_n: int | None = None,
    ) -> list[RerankResult]:
        """Return the documents' indices and scores, best first, at most ``top_n`` of them."""
        ...


def shared_scorer(**options: Any) -> Scorer:
    """Return the process-wide :class:`~lychee_integrations.engine.LycheeReranker` for ``options``.

    Every call with the same options returns the same instance, so the model is loaded
    once per process however many adapters use it. The model loads lazily, on first use.

    Args:
        **options: ``model`` and any other engine option (``device``, ``dtype``,
            ``max_length``, ...); omitted options take the engine's defaults.

    Returns:
        The shared engine.

    Raises:
        ConfigurationError: An option is unknown or invalid.

    Example:
        >>> shared_scorer(model="/tmp/tiny") is shared_scorer(model="/tmp/tiny")  # doctest: +SKIP
        True

    """
    from lychee_integrations.engine import LycheeReranker

    return LycheeReranker.shared(**options)


#: ``(query, document, instruction) -> score in [0, 1]``.
ScoreFunction = Callable[[RerankInput, RerankInput, str], float]

_WORD_RE = re.compile(r"\w+")


def lexical_overlap(query: RerankInput, document: RerankInput, instruction: str) -> float:
    """Share of the query's words and images that the document also holds.

    Images count as equal when they are the same value (same path string, same bytes).
    The default :class:`FakeScorer` score; it ignores the instruction.

    Example:
        >>> lexical_overlap(RerankInput("red car"), RerankInput("a red bus"), "")
        0.5

    """
    query_words = set(_WORD_RE.findall((query.text or "").lower()))
    doc_words = set(_WORD_RE.findall((document.text or "").lower()))
    query_images = [repr(image) for image in query.images]
    doc_images = {repr(image) for image in document.images}
    total = len(query_words) + len(query_images)
    if total == 0:
        return 0.0
    hits = len(query_words & doc_words) + sum(image in doc_images for image in query_images)
    return hits / total


@dataclass(frozen=True)
class ScoreCall:
    """One call recorded by :class:`FakeScorer`: the coerced inputs and the instruction used."""

    query: RerankInput
    documents: tuple[RerankInput, ...]
    instruction: str


class FakeScorer:
    """A deterministic :class:`Scorer` without a model, for tests of pipelines.

    It coerces and validates the query and documents the way the engine does (errors
    name ``query`` or ``document N``; an empty query is refused, an empty document is
    scored), resolves ``task``/``instruction`` through the
    instruction registry, scores each pair with ``score_fn`` and records every call in
    :attr:`calls`. Images are never opened. Thread-safe.

    Args:
        score_fn: ``(query, document, instruction) -> score`` in [0, 1]; defaults to
            :func:`lexical_overlap`.
        model_name: What :attr:`model_name` reports.

    Example:
        >>> FakeScorer().score("red car", ["a red car", "a banana"])
        [1.0, 0.0]

    """

    def __init__(self, score_fn: ScoreFunction | None = None, *, model_name: str = "fake-lychee") -> None:
        self._score_fn = score_fn or lexical_overlap
        self._model_name = model_name
        self._lock = threading.Lock()
        self.calls: list[ScoreCall] = []

    @property
    def model_name(self) -> str:
        """The name given at construction."""
        return self._model_name

    def score(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        instruction: str | None = None,
        task: str | None = None,
    ) -> list[float]:
        """Score every document with ``score_fn``, in input order.

        Raises:
            InvalidInputError: The query is empty, or the query or a document is malformed.
            ConfigurationError: Both or a bad ``task``/``instruction``.
            ValueError: ``score_fn`` returned a value outside [0, 1].

        """
        text = resolve_instruction(task, instruction)
        query_input = to_query_input(query)
        inputs = tuple(to_rerank_input(d, item=f"document {i}", index=i) for i, d in enumerate(documents))
        scores = [float(self._score_fn(query_input, document, text)) for document in inputs]
        for i, value in enumerate(scores):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"score_fn returned {value} for document {i}; scores must lie in [0, 1]")
        with self._lock:
            self.calls.append(ScoreCall(query_input, inputs, text))
        logger.debug("fake-scored %d documents", len(scores))
        return scores

    def rerank(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        instruction: str | None = None,
        task: str | None = None,
        top_n: int | None = None,
    ) -> list[RerankResult]:
        """Score and order the documents best first (see :func:`rank`)."""
        return rank(self.score(query, documents, instruction=instruction, task=task), top_n)
