"""What the framework adapters need from a reranker.

The LangChain and LlamaIndex adapters are typed against :class:`Scorer`, which
:class:`~lychee_integrations.engine.LycheeReranker` satisfies. :func:`shared_scorer`
returns the process-wide engine for a configuration, so every adapter built with the
same options shares one loaded model. A model-free stand-in for tests,
:class:`~lychee_integrations.testing.FakeScorer`, lives in :mod:`lychee_integrations.testing`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from lychee_integrations.inputs import InputLike
from lychee_integrations.results import RerankResult, rank

__all__ = ["Scorer", "rank", "shared_scorer"]

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
