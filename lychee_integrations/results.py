"""The result type shared by every entry point."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RerankResult", "score_band"]


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
