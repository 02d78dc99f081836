"""Test helpers for users' own tests: a model-free scorer, and offline checkpoints.

:class:`FakeScorer`, a deterministic scorer without a model that validates as the real backends do,
is for fast unit tests of pipelines that use the adapters::

    >>> scorer = FakeScorer(lambda query, document, instruction: len(document.text or "") / 10)
    >>> scorer.rerank("q", ["abc", "a", "abcde"], top_n=2)
    [RerankResult(index=2, score=0.5), RerankResult(index=0, score=0.3)]

:func:`build_tiny_checkpoint` (from :mod:`lychee_integrations.tiny`, importable from here too)
writes a tiny random checkpoint of the real architecture for tests of the real engine.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lychee_integrations.inputs import RerankInput
from lychee_integrations.instructions import InstructionRegistry
from lychee_integrations.recipes import get_recipe
from lychee_integrations.scoring import Scored, Scorer, ScoreRequest

if TYPE_CHECKING:
    from lychee_integrations.tiny import build_tiny_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["FakeScorer", "ScoreCall", "ScoreFunction", "build_tiny_checkpoint", "lexical_overlap"]

#: ``(query, document, instruction) -> score`` in [0, 1].
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


class FakeScorer(Scorer):
    """A deterministic :class:`~lychee_integrations.scoring.Scorer` without a model, for tests of pipelines.

    It derives from the same base as the real backends, so it refuses what the engine refuses
    (an empty query, a malformed query or document, several bad documents in one error),
    resolves ``task``/``instruction`` the same way and applies its family's default
    instruction when none is given. It scores each pair with ``score_fn`` and records every
    call in :attr:`calls`. Images are never opened. Thread-safe.

    Args:
        score_fn: ``(query, document, instruction) -> score`` in [0, 1]; defaults to
            :func:`lexical_overlap`.
        model_name: What :attr:`model_name` reports.
        family: The model family whose default instruction applies (``"lychee"`` or ``"qwen3-vl"``).
        registry: Where ``task=`` names are looked up (default: the package's registry).

    Example:
        >>> FakeScorer().score("red car", ["a red car", "a banana"])
        [1.0, 0.0]

    """

    def __init__(
        self,
        score_fn: ScoreFunction | None = None,
        *,
        model_name: str = "fake-lychee",
        family: str = "lychee",
        registry: InstructionRegistry | None = None,
    ) -> None:
        self._score_fn = score_fn or lexical_overlap
        self._model_name = model_name
        self._default_instruction = get_recipe(family).default_instruction
        if registry is not None:
            self.registry = registry
        self._lock = threading.Lock()
        self.calls: list[ScoreCall] = []

    @property
    def model_name(self) -> str:
        """The name given at construction."""
        return self._model_name

    @property
    def default_instruction(self) -> str:
        """The family's default instruction, applied when a call gives none."""
        return self._default_instruction

    def _score(self, request: ScoreRequest) -> Scored:
        instruction = request.instruction or self.default_instruction
        scores = [float(self._score_fn(request.query, document, instruction)) for document in request.documents]
        for i, value in enumerate(scores):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"score_fn returned {value} for document {i}; scores must lie in [0, 1]")
        with self._lock:
            self.calls.append(ScoreCall(request.query, request.documents, instruction))
        logger.debug("fake-scored %d documents", len(scores))
        tokens = sum(len(_WORD_RE.findall(d.text or "")) + len(d.images) for d in request.documents)
        return Scored(scores, tokens, instruction)


def __getattr__(name: str) -> Any:
    if name == "build_tiny_checkpoint":
        from lychee_integrations import tiny

        return tiny.build_tiny_checkpoint
    raise AttributeError(f"module 'lychee_integrations.testing' has no attribute {name!r}")
