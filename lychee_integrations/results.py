"""The result type shared by every entry point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lychee_integrations.errors import ConfigurationError

__all__ = ["RerankResult", "rank", "score_band"]


@dataclass(frozen=True)
class RerankResult:
    """One reranked document.

    Attributes:
        index: The document's position in the list the caller passed in.
        score: Relevance in [0, 1]: ``P(yes)`` under the model's yes/no judgement.

    """

    index: int
    score: float


def score_band(score: float) -> str:
    """Name the band of a score, as the model's guidance reads it.

    Returns:
        ``"high"`` above 0.7 (show first), ``"partial"`` from 0.4 to 0.7,
        ``"low"`` below 0.4 (safe to filter).

    Example:
        >>> score_band(0.82), score_band(0.5), score_band(0.1)
        ('high', 'partial', 'low')

    """
    if score > 0.7:
        return "high"
    if score >= 0.4:
        return "partial"
    return "low"


def rank(scores: Sequence[float], top_n: int | None = None) -> list[RerankResult]:
    """Order scores best first (ties keep input order) and keep the best ``top_n``.

    Args:
        scores: One score per document, in input order.
        top_n: How many to keep; ``None`` keeps all.

    Returns:
        One :class:`RerankResult` per kept document.

    Raises:
        ConfigurationError: ``top_n`` is not a positive integer or ``None``.

    Example:
        >>> rank([0.2, 0.9, 0.5], top_n=2)
        [RerankResult(index=1, score=0.9), RerankResult(index=2, score=0.5)]

    """
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise ConfigurationError(f"top_n must be a positive integer or None, got {top_n!r}")
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [RerankResult(i, float(scores[i])) for i in order[:top_n]]
