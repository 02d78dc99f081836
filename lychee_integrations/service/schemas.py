"""Request and response bodies of the HTTP API (pydantic models, shown in the OpenAPI description).

These models only check the *shape* of a request. Everything about the *content* (empty
inputs, images, instruction templates) is checked by the package's own input layer, so
that the library, the CLI and the service all answer the same way.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Band",
    "CompatRerankRequest",
    "CompatRerankResponse",
    "CompatResult",
    "CohereMeta",
    "ContentPart",
    "ErrorResponse",
    "HealthResponse",
    "ImageURL",
    "InputItem",
    "Kind",
    "ModelCard",
    "ModelList",
    "MultiModalContent",
    "RerankRequest",
    "RerankResponse",
    "RerankedItem",
    "ReadyResponse",
    "ScoreResponse",
    "ScoreV1Item",
    "ScoreV1Request",
    "ScoreV1Response",
    "TemplateInfo",
    "Usage",
]

_STRICT = ConfigDict(extra="forbid", strict=True)


def _config(*examples: dict[str, Any], **extra: Any) -> ConfigDict:
    """Return a strict model's config, with ``examples`` (and ``extra``) in its JSON schema."""
    return ConfigDict(**_STRICT, json_schema_extra={**extra, "examples": list(examples)})


class _Request(BaseModel):
    """A request body: integral JSON numbers such as ``3.0`` are integers, as in JSON Schema (not ``"3"``, ``3.5``)."""

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fixed = dict(data)
        for name in ("top_n", "max_tokens_per_doc", "max_chunks_per_doc", "truncate_prompt_tokens"):
            value = fixed.get(name)
            if isinstance(value, float) and value.is_integer():
                fixed[name] = int(value)
        return fixed


#: A score band, see :func:`lychee_integrations.results.score_band`.
Band = Literal["high", "partial", "low"]
#: What a query or document holds.
Kind = Literal["text", "image", "text+image"]

#: A real 2x2 PNG, so that the schema's examples are requests the server accepts.
EXAMPLE_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGM8ISfHwMDAxMDAwMDAAAANBAEIfXHKZgAAAABJRU5ErkJggg=="
)
EXAMPLE_IMAGE = "data:image/png;base64," + EXAMPLE_PNG

_IMAGE_HELP = (
    "An image as a data URI or base64 string; an http(s) URL when the server allows remote "
    "images; a path relative to the server's image directory when it has one."
)


class InputItem(BaseModel):
    """A query or a document: text, one or more images, or both."""

    model_config = _config({"text": "a red running shoe"}, {"image": EXAMPLE_IMAGE})

    text: str | None = Field(default=None, description="The text, if any.")
    image: str | None = Field(default=None, description=_IMAGE_HELP)
    images: list[str] | None = Field(default=None, description="Several images (instead of `image`).")

    def as_input(self) -> dict[str, Any]:
        """Return the dict form that :func:`lychee_integrations.inputs.to_rerank_input` reads."""
        return self.model_dump(exclude_none=True)


Input = str | InputItem


_NULL: dict[str, Any] = {"type": "null"}
#: ``documents`` (a list to rank) or ``document`` (one to score), exactly one; ``top_n`` only with
#: ``documents``. ``null`` counts as absent, as it does for the server.
_ONE_FORM: Any = [
    {
        "title": "Rank documents",
        "required": ["documents"],
        "properties": {"documents": {"type": "array"}, "document": _NULL},
    },
    {
        "title": "Score one document",
        "required": ["document"],
        "properties": {"document": {"not": _NULL}, "documents": _NULL, "top_n": _NULL},
    },
]


class RerankRequest(_Request):
    """Body of ``POST /api/rerank``: rank several documents, or score one."""

    model_config = _config(
        {
            "task": "product_search",
            "query": {"text": "red running shoes"},
            "documents": [{"text": "Blue backpack, 20 l"}, {"image": EXAMPLE_IMAGE}],
            "top_n": 5,
        },
        {"query": "red running shoes", "document": {"text": "Red trail runner", "image": EXAMPLE_PNG}},
        oneOf=_ONE_FORM,
    )

    query: Input = Field(description="The query: a string, or an object with text and/or image(s).")
    documents: list[Input] | None = Field(default=None, description="Documents to rank (give this or `document`).")
    document: Input | None = Field(default=None, description="One document to score (give this or `documents`).")
    instruction: str | None = Field(default=None, description="Free instruction text (or give `task`).")
    task: str | None = Field(default=None, description="An instruction template name, see GET /api/templates.")
    top_n: int | None = Field(
        default=None, ge=0, description="Return only the best `top_n` documents; 0 or null for all (as /v1/rerank)."
    )

    @model_validator(mode="after")
    def _one_form(self) -> RerankRequest:
        if (self.documents is None) == (self.document is None):
            raise ValueError("give exactly one of 'documents' (a list to rank) or 'document' (one to score)")
        if self.document is not None and self.top_n is not None:
            raise ValueError("'top_n' applies to 'documents', not to a single 'document'")
        return self


class RerankedItem(BaseModel):
    """One ranked document."""

    index: int = Field(description="Position of the document in the request's list.")
    score: float = Field(description="Relevance in [0, 1].")
    band: Band = Field(description="high above 0.7, partial from 0.4 to 0.7, low below 0.4.")
    type: Kind = Field(description="What the document holds.")


class RerankResponse(BaseModel):
    """Answer of ``POST /api/rerank`` with ``documents``: results sorted by score, best first."""

    model: str
    instruction: str
    results: list[RerankedItem]


class ScoreResponse(BaseModel):
    """Answer of ``POST /api/rerank`` with a single ``document``."""

    model: str
    instruction: str
    score: float
    band: Band
    type: Kind


class ImageURL(BaseModel):
    """The ``image_url`` of an OpenAI/vLLM content part."""

    model_config = ConfigDict(extra="allow", strict=True)

    url: str = Field(description=_IMAGE_HELP)


class ContentPart(BaseModel):
    """One part of a vLLM multimodal ``content`` list."""

    model_config = _STRICT

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageURL | None = None

    @model_validator(mode="after")
    def _matches_type(self) -> ContentPart:
        if self.type == "text" and (self.text is None or self.image_url is not None):
            raise ValueError("a 'text' part needs 'text' (and no 'image_url')")
        if self.type == "image_url" and (self.image_url is None or self.text is not None):
            raise ValueError("an 'image_url' part needs 'image_url' (and no 'text')")
        return self


class MultiModalContent(BaseModel):
    """vLLM's multimodal form, ``{"content": [{"type": "text", ...}, {"type": "image_url", ...}]}``."""

    model_config = _STRICT

    content: list[ContentPart] = Field(min_length=1)


CompatInput = str | InputItem | MultiModalContent

_TRUNCATE_HELP = (
    "vLLM's option. The server cuts every pair at the model's max_length itself: -1, null or a value "
    "at least max_length are accepted (no effect); a smaller value is refused with 400."
)


class CompatRerankRequest(_Request):
    """Body of ``POST /v1/rerank``, the Cohere/Jina/vLLM rerank shape.

    ``documents`` may also be one ``{"content": [...]}`` object, in which case each part is
    a document (vLLM's form). ``instruction`` and ``task`` are Lychee extensions.
    """

    model_config = _config(
        {
            "model": "vec-ai/lychee-rerank-mm",
            "query": "What is the capital of France?",
            "documents": ["Paris is the capital of France.", "Berlin is in Germany."],
            "top_n": 1,
            "return_documents": True,
        }
    )

    model: str | None = Field(default=None, description="Accepted for compatibility; the served model answers.")
    query: CompatInput
    documents: list[CompatInput] | MultiModalContent
    top_n: int | None = Field(default=None, ge=0, description="Best `top_n` results; 0 or null for all.")
    return_documents: bool = Field(
        default=False, description="Echo each document (its text and images) in its result; off by default."
    )
    instruction: str | None = Field(default=None, description="Lychee extension: free instruction text.")
    task: str | None = Field(default=None, description="Lychee extension: an instruction template name.")
    # Accepted so that existing clients work unchanged; they have no effect here.
    max_tokens_per_doc: int | None = Field(default=None, description="Ignored (the server's max length applies).")
    max_chunks_per_doc: int | None = Field(default=None, description="Ignored.")
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1, description=_TRUNCATE_HELP)


class CompatResult(BaseModel):
    """One result of ``POST /v1/rerank``."""

    index: int
    relevance_score: float
    document: dict[str, Any] | None = Field(
        default=None, description="The document as sent (`text`, and `images` for image documents)."
    )


class Usage(BaseModel):
    """Tokens the model read for a request (vLLM's and Jina's ``usage``)."""

    prompt_tokens: int = Field(description="Prompt tokens of every pair, image tokens included, padding excluded.")
    total_tokens: int = Field(description="The same as `prompt_tokens` (a reranker generates nothing).")


class ScoreV1Request(_Request):
    """Body of ``POST /v1/score``, vLLM's score shape.

    ``text_1`` is the query side and ``text_2`` the document side: one ``text_1`` against a
    list of ``text_2`` (or a single one), or two lists of the same length scored pairwise.
    Each side takes the same forms as ``/v1/rerank`` (a string, ``{"text", "image"}`` or
    ``{"content": [parts]}``). ``instruction`` and ``task`` are Lychee extensions.
    """

    model_config = _config(
        {
            "model": "vec-ai/lychee-rerank-mm",
            "text_1": "What is the capital of France?",
            "text_2": ["Paris is the capital of France.", "Berlin is in Germany."],
        }
    )

    model: str | None = Field(default=None, description="Accepted for compatibility; the served model answers.")
    text_1: CompatInput | list[CompatInput] = Field(description="The query, or one query per pair.")
    text_2: CompatInput | list[CompatInput] = Field(description="The document(s).")
    instruction: str | None = Field(default=None, description="Lychee extension: free instruction text.")
    task: str | None = Field(default=None, description="Lychee extension: an instruction template name.")
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1, description=_TRUNCATE_HELP)
    encoding_format: str | None = Field(default=None, description="Accepted for compatibility; ignored.")
    user: str | None = Field(default=None, description="Accepted for compatibility; ignored.")


class ScoreV1Item(BaseModel):
    """One score of ``POST /v1/score``, in the pairs' order."""

    index: int = Field(description="Position of the pair.")
    object: Literal["score"] = "score"
    score: float = Field(description="Relevance in [0, 1].")


class ScoreV1Response(BaseModel):
    """Answer of ``POST /v1/score`` (vLLM's shape)."""

    id: str
    object: Literal["list"] = "list"
    created: int = Field(description="Unix time of the answer.")
    model: str
    data: list[ScoreV1Item]
    usage: Usage | None = Field(default=None, description="Tokens read; null when the backend does not count them.")


class ModelCard(BaseModel):
    """One model of ``GET /v1/models`` (OpenAI's shape)."""

    id: str = Field(description="The served model name.")
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time the server started.")
    owned_by: str = "lychee-integrations"


class ModelList(BaseModel):
    """Answer of ``GET /v1/models`` (OpenAI's shape): the one model this server serves."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class CohereApiVersion(BaseModel):
    """Cohere's ``meta.api_version``."""

    version: str


class CohereBilledUnits(BaseModel):
    """Cohere's ``meta.billed_units``."""

    search_units: int = Field(description="1 per started 100 documents (Cohere's unit for rerank).")
    input_tokens: int | None = Field(default=None, description="As ``usage.total_tokens``.")


class CohereTokens(BaseModel):
    """Cohere's ``meta.tokens``."""

    input_tokens: int | None = None


class CohereMeta(BaseModel):
    """Cohere's ``meta`` block, so that the Cohere SDKs see the usage."""

    api_version: CohereApiVersion
    billed_units: CohereBilledUnits
    tokens: CohereTokens


class CompatRerankResponse(BaseModel):
    """Answer of ``POST /v1/rerank``: results sorted by relevance, best first."""

    id: str
    model: str
    results: list[CompatResult]
    usage: Usage | None = Field(
        default=None, description="Tokens read; null when the backend does not count them (the engine does)."
    )
    meta: CohereMeta


class ServiceLimits(BaseModel):
    """What one request may carry; clients split larger calls by ``max_documents``."""

    max_documents: int = Field(description="Most documents one rerank request may carry.")
    max_body_bytes: int = Field(description="Largest request body, in bytes.")
    max_image_bytes: int = Field(description="Largest encoded image, in bytes.")
    max_image_pixels: int = Field(description="Largest decoded image, width x height.")
    max_images_per_item: int = Field(description="Most images one query or one document may carry.")
    max_images_per_request: int = Field(description="Most images one request may carry, query and documents together.")
    max_request_pixels: int = Field(
        description="Most pixels (width x height) summed over every image of one request, checked before decoding."
    )
    max_text_chars: int = Field(description="Longest text of a query, document or instruction, in characters.")
    max_concurrency: int = Field(description="Most engine calls at once; further requests wait.")


class ReadyResponse(BaseModel):
    """Answer of ``GET /ready``: 200 once the model is loaded, 503 while it loads or after it failed."""

    status: Literal["ready", "loading", "failed"]
    model: str
    model_loaded: bool = Field(description="Whether the model is in memory (false with lazy loading).")
    detail: str | None = Field(default=None, description="Why the service is not ready.")


class HealthResponse(BaseModel):
    """Answer of ``GET /health``: liveness, the model served and the request limits."""

    status: Literal["ok"]
    model: str
    limits: ServiceLimits


class TemplateInfo(BaseModel):
    """One instruction template."""

    name: str
    instruction: str
    description: str


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx answer."""

    detail: str = Field(description="What is wrong, naming the field or item.")
    problems: list[str] | None = Field(default=None, description="One line per problem, when there are several.")
