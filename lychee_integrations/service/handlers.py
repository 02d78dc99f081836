"""What the endpoints do, without HTTP: turn request models into engine inputs and scores into answers.

Every function here is synchronous and blocking (it runs the model); the app calls them
from a thread pool. Content checks reuse the package's input layer
(:func:`~lychee_integrations.inputs.to_rerank_input`,
:func:`~lychee_integrations.instructions.resolve_instruction`); images are read by the
engine's own loader under the engine's image policy.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from lychee_integrations.errors import InvalidInputError, LycheeError
from lychee_integrations.inputs import RerankInput, map_documents, to_rerank_input
from lychee_integrations.instructions import resolve_instruction
from lychee_integrations.results import score_band
from lychee_integrations.scoring import Scorer
from lychee_integrations.service.schemas import (
    Band,
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


def _native_value(value: str | InputItem) -> object:
    return value if isinstance(value, str) else value.as_input()


def run_native(scorer: Scorer, request: RerankRequest, max_documents: int) -> RerankResponse | ScoreResponse:
    """Answer ``POST /api/rerank``.

    Raises:
        InvalidInputError: A query or document cannot be scored (names the item).
        ConfigurationError: A bad ``task``/``instruction``.
        TooManyDocumentsError: More than ``max_documents`` documents.

    """
    instruction = resolve_instruction(request.task, request.instruction)
    query = _checked(_native_value(request.query), "query", None)
    if request.document is not None:
        document = _checked(_native_value(request.document), "document", 0)
        score = scorer.score(query, [document], instruction=instruction)[0]
        return ScoreResponse(
            model=scorer.model_name,
            instruction=instruction,
            score=score,
            band=cast(Band, score_band(score)),
            type=cast(Kind, document.kind),
        )
    documents = _documents([_native_value(d) for d in request.documents or []], max_documents)
    ranked = scorer.rerank(query, documents, instruction=instruction, top_n=request.top_n) if documents else []
    return RerankResponse(
        model=scorer.model_name,
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


def run_compat(scorer: Scorer, request: CompatRerankRequest, max_documents: int) -> CompatRerankResponse:
    """Answer ``POST /v1/rerank`` (Cohere/Jina/vLLM shape).

    Raises:
        InvalidInputError: A query or document cannot be scored (names the item).
        ConfigurationError: A bad ``task``/``instruction``.
        TooManyDocumentsError: More than ``max_documents`` documents.

    """
    instruction = resolve_instruction(request.task, request.instruction)
    query = _checked(_compat_value(request.query), "query", None)
    if isinstance(request.documents, MultiModalContent):
        raw: list[object] = [_from_parts(MultiModalContent(content=[part])) for part in request.documents.content]
    else:
        raw = [_compat_value(d) for d in request.documents]
    documents = _documents(raw, max_documents)
    top_n = request.top_n or None
    ranked = scorer.rerank(query, documents, instruction=instruction, top_n=top_n) if documents else []
    return CompatRerankResponse(
        id=f"rerank-{uuid.uuid4().hex}",
        model=scorer.model_name,
        results=[
            CompatResult(
                index=r.index,
                relevance_score=r.score,
                document=_echo(documents[r.index]) if request.return_documents else None,
            )
            for r in ranked
        ],
    )
