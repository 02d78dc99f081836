"""What the framework adapters need from a reranker.

The LangChain and LlamaIndex adapters are typed against :class:`Scorer`, which
:class:`~lychee_integrations.engine.LycheeReranker` satisfies. The package's scorers
derive from :class:`RankingScorer`, which holds the one :meth:`~RankingScorer.rerank`
they share. :func:`shared_scorer`
returns the process-wide engine for a configuration, so every adapter built with the
same options shares one loaded model. A model-free stand-in for tests,
:class:`~lychee_integrations.testing.FakeScorer`, lives in :mod:`lychee_integrations.testing`.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from lychee_integrations.inputs import InputLike
from lychee_integrations.results import RerankResult, rank

__all__ = ["RankingScorer", "Scorer", "check_top_n", "rank", "shared_scorer"]

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

    @abstractmethod
    def score(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        instruction: str | None = None,
        task: str | None = None,
    ) -> list[float]:
        """Score every document against the query.

        Args:
            query: Text, image, ``{"text":..., "image":...}`` or :class:`~lychee_integrations.inputs.RerankInput`.
            documents: The candidates, each in any of the same forms.
            instruction: Free instruction text (default: the model family's).
            task: A template name from the instruction registry instead of ``instruction``.

        Returns:
            One score in [0, 1] per document, in input order. ``[]`` for no documents.

        Raises:
            InvalidInputError: The query or a document is invalid; the error names the item.
            ConfigurationError: Both or a bad ``task``/``instruction``.

        """

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


def check_top_n(top_n: int | None) -> None:
    """Check a ``top_n`` argument before any work is done.

    Raises:
        ConfigurationError: ``top_n`` is not a positive integer or ``None``.

    Example:
        >>> check_top_n(3)

    """
    rank([], top_n)


class RankingScorer(Scorer):
    """Base of the package's scorers: a subclass implements :meth:`score` and :attr:`model_name`.

    :meth:`rerank` comes from here; ``score`` is abstract, so a subclass without it
    cannot be instantiated.
    """

    def rerank(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        instruction: str | None = None,
        task: str | None = None,
        top_n: int | None = None,
    ) -> list[RerankResult]:
        """Score the documents and return them best first.

        Args:
            query: See :meth:`score`.
            documents: See :meth:`score`.
            instruction: See :meth:`score`.
            task: See :meth:`score`.
            top_n: Keep only the best ``top_n`` (``None`` keeps all).

        Returns:
            :class:`~lychee_integrations.results.RerankResult` (original index and score)
            sorted by score, highest first; ties keep input order.

        Raises:
            ConfigurationError: ``top_n`` is not a positive integer or ``None`` (checked
                before any work).
            InvalidInputError: See :meth:`score`; any other error of :meth:`score` too.

        Example:
            >>> from lychee_integrations.testing import FakeScorer
            >>> FakeScorer().rerank("red car", ["a banana", "a red car"], top_n=1)
            [RerankResult(index=1, score=1.0)]

        """
        check_top_n(top_n)
        return rank(self.score(query, documents, instruction=instruction, task=task), top_n)


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
