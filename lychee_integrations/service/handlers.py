"""What the endpoints do, without HTTP: turn request models into engine inputs and scores into answers.

Every function here is synchronous and blocking (it runs the model); the app calls them
from a thread pool. The scorer validates and coerces the inputs and resolves the instruction
once (:meth:`~lychee_integrations.scoring.Scorer.request`); images are read by the
engine's own loader under the engine's image policy.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

from lychee_integrations.errors import ConfigurationError, LimitExceededError, LycheeError
from lychee_integrations.inputs import InputLike, RerankInput
from lychee_integrations.results import rank, score_band
from lychee_integrations.scoring import Scored, Scorer, ScoreRequest, refuse_empty
from lychee_integrations.service.schemas import (
    CohereApiVersion,
    CohereBilledUnits,
    CohereMeta,
    CohereTokens,
    CompatRerankRequest,
    CompatRerankResponse,
    CompatResult,
    InputItem,
    MultiModalContent,
    RerankedItem,
    RerankRequest,
    RerankResponse,
    ScoreResponse,
    ScoreV1Item,
    ScoreV1Request,
    ScoreV1Response,
    Usage,
)

__all__ = [
    "TooManyDocumentsError",
    "check_text_lengths",
    "check_truncation",
    "max_length_of",
    "run_compat",
    "run_native",
    "run_score",
]


class TooManyDocumentsError(LycheeError):
    """A request carries more documents than the service accepts (answered with 413)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"documents: {count} documents sent, the limit is {limit} per request")


def check_text_lengths(call: ScoreRequest, max_text_chars: int | None) -> None:
    """Refuse a query, document or instruction whose text is longer than ``max_text_chars`` characters.

    Checked on the validated call, before any image is read or any text tokenized.

    Raises:
        LimitExceededError: Naming the first item over the limit.

    """
    if max_text_chars is None:
        return
    documents = ((f"document {i}", i, d.text) for i, d in enumerate(call.documents))
    for item, index, text in [("instruction", None, call.instruction), ("query", None, call.query.text), *documents]:
        if text is not None and len(text) > max_text_chars:
            raise LimitExceededError(
                item, f"text is {len(text)} characters", limit="max_text_chars", value=max_text_chars, index=index
            )


def _scored(
    scorer: Scorer,
    query: InputLike,
    documents: Sequence[InputLike],
    max_documents: int,
    request: Any,
    max_text_chars: int | None,
) -> tuple[tuple[RerankInput, ...], Scored, str]:
    """Validate once, score, and name the instruction applied (the family default when none was given)."""
    if len(documents) > max_documents:
        raise TooManyDocumentsError(len(documents), max_documents)
    call = scorer.request(query, documents, task=request.task, instruction=request.instruction)
    check_text_lengths(call, max_text_chars)
    refuse_empty(call.documents)
    scored = scorer.score_request(call)
    instruction = scored.instruction or call.instruction or scorer.default_instruction or ""
    return call.documents, scored, instruction


def max_length_of(scorer: Scorer, *, load: bool = True) -> int | None:
    """Return the most tokens the scorer reads per pair, or ``None`` when it cannot tell (a remote scorer).

    The in-process engine knows once its model is loaded; ``load=False`` does not load it.
    """
    if not load and not getattr(scorer, "is_loaded", True):
        return None
    value = getattr(scorer, "max_length", None)
    return value if isinstance(value, int) else None


def check_truncation(scorer: Scorer, value: int | None) -> None:
    """Accept vLLM's ``truncate_prompt_tokens`` only where it changes nothing (``None``, -1, >= max_length).

    Raises:
        ConfigurationError: A value that would cut pairs shorter than the model's ``max_length``.

    """
    if value is None or value == -1:
        return
    limit = max_length_of(scorer)
    if limit is not None and value >= limit:
        return
    where = f"max_length ({limit} tokens)" if limit is not None else "its max_length"
    raise ConfigurationError(
        f"truncate_prompt_tokens: {value} is not supported: the server cuts each pair at the model's {where} "
        "itself; send -1, null or a value at least max_length"
    )


def _usage(tokens: int | None) -> Usage | None:
    return Usage(prompt_tokens=tokens, total_tokens=tokens) if tokens is not None else None


def _graded(score: float, document: RerankInput) -> dict[str, Any]:
    return {"score": score, "band": score_band(score), "type": document.kind}


def _native_value(value: str | InputItem) -> InputLike:
    return value if isinstance(value, str) else value.as_input()


def run_native(
    scorer: Scorer,
    request: RerankRequest,
    max_documents: int,
    model_name: str,
    *,
    max_text_chars: int | None = None,
) -> RerankResponse | ScoreResponse:
    """Answer ``POST /api/rerank``; responses name the model ``model_name``.

    Raises:
        InvalidInputError: A query or document cannot be scored (names the item).
        ConfigurationError: A bad ``task``/``instruction``.
        TooManyDocumentsError: More than ``max_documents`` documents.
        LimitExceededError: A text over ``max_text_chars`` characters, or an image budget.

    """
    query = _native_value(request.query)
    if request.document is not None:
        single = [_native_value(request.document)]
        (document,), scored, instruction = _scored(scorer, query, single, 1, request, max_text_chars)
        return ScoreResponse(model=model_name, instruction=instruction, **_graded(scored.scores[0], document))
    raw = [_native_value(d) for d in request.documents or []]
    documents, scored, instruction = _scored(scorer, query, raw, max_documents, request, max_text_chars)
    ranked = rank(scored.scores, request.top_n or None)
    return RerankResponse(
        model=model_name,
        instruction=instruction,
        results=[RerankedItem(index=r.index, **_graded(r.score, documents[r.index])) for r in ranked],
    )


def _from_parts(content: MultiModalContent) -> dict[str, Any]:
    texts = [part.text for part in content.content if part.text is not None]
    images = [part.image_url.url for part in content.content if part.image_url is not None]
    value: dict[str, Any] = {"images": images}
    if texts:
        value["text"] = "\n".join(texts)
    return value


def _compat_value(
    value: str | InputItem | MultiModalContent, max_parts: int, item: str, index: int | None = None
) -> InputLike:
    if isinstance(value, MultiModalContent):
        if len(value.content) > max_parts:  # the schema's maxItems of a content list, for an item too
            raise LimitExceededError(
                item, f"{len(value.content)} content parts sent", limit="max_documents", value=max_parts, index=index
            )
        return _from_parts(value)
    return _native_value(value)


def _echo(document: RerankInput) -> dict[str, Any]:
    echo: dict[str, Any] = {"text": document.text}
    if document.images:
        echo["images"] = list(document.images)
    return echo


def run_compat(
    scorer: Scorer,
    request: CompatRerankRequest,
    max_documents: int,
    model_name: str,
    *,
    max_text_chars: int | None = None,
) -> CompatRerankResponse:
    """Answer ``POST /v1/rerank`` (Cohere/Jina/vLLM shape), with ``usage`` and Cohere's ``meta``.

    ``usage.prompt_tokens`` (and ``total_tokens``, the same) is the scorer's count of prompt
    tokens (images included, padding excluded); ``usage`` is ``None`` for a scorer that cannot
    tell. Documents are echoed only with ``return_documents``; ``top_n`` 0 or ``None`` keeps all.

    Raises:
        InvalidInputError: A query or document cannot be scored (names the item).
        ConfigurationError: A bad ``task``/``instruction``.
        TooManyDocumentsError: More than ``max_documents`` documents.
        LimitExceededError: A text over ``max_text_chars`` characters, or an image budget.

    """
    check_truncation(scorer, request.truncate_prompt_tokens)
    if isinstance(request.documents, MultiModalContent):
        raw: list[InputLike] = [_from_parts(MultiModalContent(content=[part])) for part in request.documents.content]
    else:
        raw = [_compat_value(d, max_documents, f"document {i}", i) for i, d in enumerate(request.documents)]
    query = _compat_value(request.query, max_documents, "query")
    documents, scored, _ = _scored(scorer, query, raw, max_documents, request, max_text_chars)
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
        usage=_usage(tokens),
        meta=meta,
    )


def _side(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _pairs(request: ScoreV1Request, max_parts: int) -> list[tuple[InputLike, InputLike]]:
    queries = [_compat_value(q, max_parts, f"text_1[{i}]", i) for i, q in enumerate(_side(request.text_1))]
    documents = [_compat_value(d, max_parts, f"text_2[{i}]", i) for i, d in enumerate(_side(request.text_2))]
    if len(queries) == 1:
        return [(queries[0], d) for d in documents]
    if len(queries) != len(documents):
        raise ConfigurationError(
            f"text_1 has {len(queries)} items and text_2 {len(documents)}: give one text_1, "
            "or two lists of the same length (scored pairwise)"
        )
    return list(zip(queries, documents, strict=True))


def run_score(
    scorer: Scorer,
    request: ScoreV1Request,
    max_documents: int,
    model_name: str,
    *,
    max_text_chars: int | None = None,
) -> ScoreV1Response:
    """Answer ``POST /v1/score`` (vLLM's shape): one score per ``(text_1, text_2)`` pair, in order.

    Pairs that share a query are scored in one call (the engine reuses their prefix), so the
    scores are those of ``/v1/rerank`` for the same query and documents.

    Raises:
        InvalidInputError: A query or document cannot be scored (names the item).
        ConfigurationError: A bad ``task``/``instruction``, lists of different lengths, or a
            ``truncate_prompt_tokens`` below the model's ``max_length``.
        TooManyDocumentsError: More than ``max_documents`` pairs.

    """
    check_truncation(scorer, request.truncate_prompt_tokens)
    pairs = _pairs(request, max_documents)
    if len(pairs) > max_documents:
        raise TooManyDocumentsError(len(pairs), max_documents)
    groups: dict[str, list[int]] = {}
    for i, (query, _) in enumerate(pairs):
        groups.setdefault(json.dumps(query, sort_keys=True, default=repr), []).append(i)
    scores = [0.0] * len(pairs)
    tokens: int | None = 0
    for indices in groups.values():
        query, documents = pairs[indices[0]][0], [pairs[i][1] for i in indices]
        _, scored, _ = _scored(scorer, query, documents, max_documents, request, max_text_chars)
        for i, value in zip(indices, scored.scores, strict=True):
            scores[i] = value
        tokens = None if tokens is None or scored.tokens is None else tokens + scored.tokens
    return ScoreV1Response(
        id=f"score-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model_name,
        data=[ScoreV1Item(index=i, score=score) for i, score in enumerate(scores)],
        usage=_usage(tokens),
    )
