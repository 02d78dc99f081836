"""What the endpoints do, without HTTP: turn request models into engine inputs and scores into answers.

Every function here is synchronous and blocking (it runs the model); the app calls them
from a thread pool. The scorer validates and coerces the inputs and resolves the instruction
once (:meth:`~lychee_integrations.scoring.Scorer.request`); images are read by the
engine's own loader under the engine's image policy.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any, cast

from lychee_integrations.errors import LycheeError
from lychee_integrations.inputs import InputLike, RerankInput
from lychee_integrations.results import rank, score_band
from lychee_integrations.scoring import Scored, Scorer, refuse_empty
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


def _scored(
    scorer: Scorer, query: InputLike, documents: Sequence[InputLike], max_documents: int, request: Any
) -> tuple[tuple[RerankInput, ...], Scored, str]:
    """Validate once, score, and name the instruction applied (the family default when none was given)."""
    if len(documents) > max_documents:
        raise TooManyDocumentsError(len(documents), max_documents)
    call = scorer.request(query, documents, task=request.task, instruction=request.instruction)
    refuse_empty(call.documents)
    scored = scorer.score_request(call)
    instruction = scored.instruction or call.instruction or scorer.default_instruction or ""
    return call.documents, scored, instruction


def _native_value(value: str | InputItem) -> InputLike:
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
    query = _native_value(request.query)
    if request.document is not None:
        (document,), scored, instruction = _scored(scorer, query, [_native_value(request.document)], 1, request)
        score = scored.scores[0]
        return ScoreResponse(
            model=model_name,
            instruction=instruction,
            score=score,
            band=cast(Band, score_band(score)),
            type=cast(Kind, document.kind),
        )
    raw = [_native_value(d) for d in request.documents or []]
    documents, scored, instruction = _scored(scorer, query, raw, max_documents, request)
    ranked = rank(scored.scores, request.top_n)
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


def _compat_value(value: str | InputItem | MultiModalContent) -> InputLike:
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

    ``usage.total_tokens`` is the scorer's count of prompt tokens (images included,
    padding excluded); it is ``None`` for a scorer that cannot tell.

    Raises:
        InvalidInputError: A query or document cannot be scored (names the item).
        ConfigurationError: A bad ``task``/``instruction``.
        TooManyDocumentsError: More than ``max_documents`` documents.

    """
    if isinstance(request.documents, MultiModalContent):
        raw: list[InputLike] = [_from_parts(MultiModalContent(content=[part])) for part in request.documents.content]
    else:
        raw = [_compat_value(d) for d in request.documents]
    documents, scored, _ = _scored(scorer, _compat_value(request.query), raw, max_documents, request)
    ranked, tokens = rank(scored.scores, request.top_n or None), scored.tokens
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
