"""What the endpoints do, without HTTP: turn request models into engine inputs and scores into answers.

Every function here is synchronous and blocking (it runs the model); the app calls them
from a thread pool. Content checks reuse the package's input layer
(:func:`~lychee_integrations.inputs.to_rerank_input`,
:func:`~lychee_integrations.instructions.instruction_for`); images are read by the
engine's own loader under the engine's image policy.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any, cast

from lychee_integrations.errors import InvalidInputError, LycheeError
from lychee_integrations.inputs import RerankInput, map_documents, to_rerank_input
from lychee_integrations.instructions import instruction_for
from lychee_integrations.results import RerankResult, rank, score_band
from lychee_integrations.scoring import Scorer
from lychee_integrations.service.schemas import (
    Band,
    CohereApiVersion,
    CohereBilledUnits,
    CohereMeta,
    CohereTokens,
    CompatRerankRequest,
    CompatRerankResponse,
    CompatResult,
    InputItem,
    Kind,
    MultiModalContent,
    RerankedItem,
    RerankRequest,
    RerankResponse,
    ScoreResponse,
    Usage,
)

__all__ = ["TooManyDocumentsError", "run_compat", "run_native"]


class TooManyDocumentsError(LycheeError):
    """A request carries more documents than the service accepts (answered with 413)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"documents: {count} documents sent, the limit is {limit} per request")


def _checked(value: object, item: str, index: int | None) -> RerankInput:
    converted = to_rerank_input(value, item=item, index=index)
    if converted.kind == "empty":
        raise InvalidInputError(item, "is empty: give text, an image, or both", index=index)
    return converted


def _documents(values: Sequence[object], limit: int) -> list[RerankInput]:
    if len(values) > limit:
        raise TooManyDocumentsError(len(values), limit)
    return map_documents(values, _checked)


def _ranked(
    scorer: Scorer, query: RerankInput, documents: list[RerankInput], instruction: str, top_n: int | None
) -> tuple[list[RerankResult], int | None]:
    """Rank, and count the prompt tokens when the scorer can (``None`` when it cannot)."""
    if not documents:
        return [], 0
    score_with_usage = getattr(scorer, "score_with_usage", None)
    if score_with_usage is None:
        return scorer.rerank(query, documents, instruction=instruction, top_n=top_n), None
    scores, tokens = score_with_usage(query, documents, instruction=instruction)
    return rank(scores, top_n), int(tokens)


def _native_value(value: str | InputItem) -> object:
    return value if isinstance(value, str) else value.as_input()


def run_native(
    scorer: Scorer, request: RerankRequest, max_documents: int, model_name: str
) -> RerankResponse | ScoreResponse:
    """Answer ``POST /api/rerank``; responses name the model ``model_name``.

    Raises:
        InvalidInputError: A query or document cannot be scored (names the item).
        ConfigurationError: A bad ``task``/``instruction``.
        TooManyDocumentsError: More than ``max_documents`` documents.

    """
    instruction = instruction_for(scorer, request.task, request.instruction)
    query = _checked(_native_value(request.query), "query", None)
    if request.document is not None:
        document = _checked(_native_value(request.document), "document", 0)
        score = scorer.score(query, [document], instruction=instruction)[0]
        return ScoreResponse(
            model=model_name,
            instruction=instruction,
            score=score,
            band=cast(Band, score_band(score)),
            type=cast(Kind, document.kind),
        )
    documents = _documents([_native_value(d) for d in request.documents or []], max_documents)
    ranked, _ = _ranked(scorer, query, documents, instruction, request.top_n)
    return RerankResponse(
        model=model_name,
        instruction=instruction,
        results=[
            RerankedItem(
                index=r.index,
                score=r.score,
                band=cast(Band, score_band(r.score)),
                type=cast(Kind, documents[r.index].kind),
            )
            for r in ranked
        ],
    )


def _from_parts(content: MultiModalContent) -> dict[str, Any]:
    texts = [part.text for part in content.content if part.text is not None]
    images = [part.image_url.url for part in content.content if part.image_url is not None]
    value: dict[str, Any] = {"images": images}
    if texts:
        value["text"] = "\n".join(texts)
    return value


def _compat_value(value: str | InputItem | MultiModalContent) -> object:
    if isinstance(value, MultiModalContent):
        return _from_parts(value)
    return _native_value(value)


def _echo(document: RerankInput) -> dict[str, Any]:
    echo: dict[str, Any] = {"text": document.text}
    if document.images:
        echo["images"] = list(document.images)
    return echo


def run_compat(
    scorer: Scorer, request: CompatRerankRequest, max_documents: int, model_name: str
) -> CompatRerankResponse:
    """Answer ``POST /v1/rerank`` (Cohere/Jina/vLLM shape), with ``usage`` and Cohere's ``meta``.

    ``usage.total_tokens`` is the engine's count of prompt tokens (images included,
    padding excluded); it is ``None`` for a scorer without ``score_with_usage``.

    Raises:
        InvalidInputError: A query or document cannot be scored (names the item).
        ConfigurationError: A bad ``task``/``instruction``.
        TooManyDocumentsError: More than ``max_documents`` documents.

    """
    instruction = instruction_for(scorer, request.task, request.instruction)
    query = _checked(_compat_value(request.query), "query", None)
    if isinstance(request.documents, MultiModalContent):
        raw: list[object] = [_from_parts(MultiModalContent(content=[part])) for part in request.documents.content]
    else:
        raw = [_compat_value(d) for d in request.documents]
    documents = _documents(raw, max_documents)
    top_n = request.top_n or None
    ranked, tokens = _ranked(scorer, query, documents, instruction, top_n)
    meta = CohereMeta(
        api_version=CohereApiVersion(version="1"),
        billed_units=CohereBilledUnits(search_units=max(1, math.ceil(len(documents) / 100)), input_tokens=tokens),
        tokens=CohereTokens(input_tokens=tokens),
    )
    return CompatRerankResponse(
        id=f"rerank-{uuid.uuid4().hex}",
        model=model_name,
        results=[
            CompatResult(
                index=r.index,
                relevance_score=r.score,
                document=_echo(documents[r.index]) if request.return_documents else None,
            )
            for r in ranked
        ],
        usage=Usage(total_tokens=tokens) if tokens is not None else None,
        meta=meta,
    )
