"""The FastAPI application: ``/api/rerank``, the Cohere/Jina/vLLM-compatible ``/v1/rerank``, ``/health``.

Engine calls run in a bounded thread pool; the engine is thread-safe and combines calls
that arrive together into shared batches. Every error a client can cause is answered
with a 4xx whose ``detail`` names the problem; anything else is logged and answered
with a plain 500, never a traceback.

Example:
    >>> from lychee_integrations.service import ServiceSettings, create_app, service_reranker
    >>> settings = ServiceSettings(max_documents=50)
    >>> app = create_app(service_reranker(settings, model="vec-ai/lychee-rerank-mm"), settings)  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)

"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from lychee_integrations._deps import require

require("fastapi", "server")

import anyio  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, RedirectResponse  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

from lychee_integrations.errors import ConfigurationError, InvalidInputError  # noqa: E402
from lychee_integrations.instructions import list_templates  # noqa: E402
from lychee_integrations.scoring import Scorer  # noqa: E402
from lychee_integrations.service.handlers import (  # noqa: E402
    TooManyDocumentsError,
    run_compat,
    run_native,
)
from lychee_integrations.service.middleware import BodySizeLimitMiddleware  # noqa: E402
from lychee_integrations.service.schemas import (  # noqa: E402
    CompatRerankRequest,
    CompatRerankResponse,
    ErrorResponse,
    HealthResponse,
    RerankRequest,
    RerankResponse,
    ScoreResponse,
    ServiceLimits,
    TemplateInfo,
)
from lychee_integrations.service.settings import ServiceSettings  # noqa: E402

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_INTERNAL_ERROR = "internal error while scoring; the server log has the details"

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "A query or document cannot be scored (bad image, empty input...)."},
    413: {"model": ErrorResponse, "description": "The body or the number of documents is over the limit."},
    422: {"model": ErrorResponse, "description": "The body does not have the documented shape."},
}

_DESCRIPTION = """\
Multimodal reranking with [Lychee](https://huggingface.co/vec-ai/lychee-rerank-mm): score how well each
document (text, image, or both) meets a query (text, image, or both) under an instruction.

* `POST /api/rerank`: the native API (instruction templates, single-document scoring, score bands).
* `POST /v1/rerank`: the Cohere/Jina/vLLM rerank shape, for existing clients.

Images travel as base64 or `data:` URIs; URLs and server-side paths only where the server allows them.
"""


def _is_union_branch(part: object) -> bool:
    # pydantic names each branch of a union it tried ("str", "InputItem", "list[...]").
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part in ("str", "int", "bool", "dict"))


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not _is_union_branch(p)]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_message(exc: RequestValidationError) -> list[str]:
    """One line per location; the alternatives pydantic tried for a union are joined with 'or'."""
    by_location: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            position = loc[1] if len(loc) > 1 else "?"
            reason = (error.get("ctx") or {}).get("error", "")
            by_location.setdefault("body", []).append(f"invalid JSON at character {position}: {reason}".rstrip(": "))
            continue
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        messages = by_location.setdefault(_location(loc), [])
        if message not in messages:
            messages.append(message)
    return [f"{where}: {' or '.join(messages)}" for where, messages in by_location.items()]


def _error(status: int, detail: str, problems: list[str] | None = None) -> JSONResponse:
    body = ErrorResponse(detail=detail, problems=problems).model_dump(exclude_none=True)
    return JSONResponse(status_code=status, content=body)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        lines = _validation_message(exc)
        return _error(422, "; ".join(lines), lines if len(lines) > 1 else None)

    async def on_invalid_input(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidInputError)
        problems = [message for _, message in exc.problems]
        return _error(400, str(exc), problems if len(problems) > 1 else None)

    async def on_configuration(request: Request, exc: Exception) -> JSONResponse:
        return _error(400, str(exc))

    async def on_too_many(request: Request, exc: Exception) -> JSONResponse:
        return _error(413, str(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(status_code=exc.status_code, content={"detail": str(exc.detail)}, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, _INTERNAL_ERROR)

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(InvalidInputError, on_invalid_input)
    app.add_exception_handler(ConfigurationError, on_configuration)
    app.add_exception_handler(TooManyDocumentsError, on_too_many)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


class _EngineRunner:
    """Runs blocking engine calls in worker threads, at most ``limit`` at once."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._limiter: anyio.CapacityLimiter | None = None

    async def __call__(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._limiter is None:  # created lazily: it needs a running event loop
            self._limiter = anyio.CapacityLimiter(self._limit)
        try:
            return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self._limiter)
        except (InvalidInputError, ConfigurationError, TooManyDocumentsError):
            raise
        except Exception as exc:
            # Answered here, so that the error does not travel up to the server as an unhandled one.
            logger.error("unexpected error while scoring", exc_info=exc)
            raise HTTPException(500, _INTERNAL_ERROR) from None


def _check_policy(reranker: Scorer, settings: ServiceSettings) -> None:
    policy = getattr(reranker, "image_policy", None)
    if policy is not None and policy != settings.image_policy():
        logger.warning(
            "the reranker's image policy (%s) differs from the service settings (%s); the reranker's applies. "
            "Build it with service_reranker(settings, ...) to apply the service's limits.",
            policy,
            settings.image_policy(),
        )


def create_app(
    reranker: Scorer,
    settings: ServiceSettings | None = None,
    *,
    home: str = "/docs",
    title: str = "Lychee reranker",
) -> FastAPI:
    """Build the HTTP API around one reranker.

    Args:
        reranker: The engine, usually built by
            :func:`~lychee_integrations.service.service_reranker` so that its image policy
            matches ``settings`` (a mismatch is logged as a warning).
        settings: Limits and image rules; :class:`ServiceSettings` defaults when ``None``.
        home: Where ``GET /`` redirects (the API docs, or the web page when mounted).
        title: Title of the OpenAPI description.

    Returns:
        A FastAPI application, to run with uvicorn or mount the web page on.

    Raises:
        MissingDependencyError: FastAPI is not installed (``pip install 'lychee-integrations[server]'``).

    """
    settings = settings or ServiceSettings()
    _check_policy(reranker, settings)
    run = _EngineRunner(settings.max_concurrency)
    app = FastAPI(title=title, description=_DESCRIPTION, version="1")
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)
    app.state.reranker = reranker
    app.state.settings = settings

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(home)

    @app.get("/health", response_model=HealthResponse, tags=["service"])
    async def health() -> HealthResponse:
        """Report that the service is up, which model it serves and what one request may carry."""
        limits = ServiceLimits(
            max_documents=settings.max_documents,
            max_body_bytes=settings.max_body_bytes,
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
        )
        return HealthResponse(status="ok", model=reranker.model_name, limits=limits)

    @app.get("/api/templates", response_model=list[TemplateInfo], tags=["service"])
    async def templates() -> list[TemplateInfo]:
        """List the instruction templates usable as `task`."""
        return [
            TemplateInfo(name=t.name, instruction=t.instruction, description=t.description) for t in list_templates()
        ]

    @app.post("/api/rerank", response_model=RerankResponse | ScoreResponse, responses=_ERRORS, tags=["rerank"])
    async def rerank(body: RerankRequest) -> RerankResponse | ScoreResponse:
        """Rank `documents` against `query` (best first), or score a single `document`."""
        return await run(run_native, reranker, body, settings.max_documents)

    async def compat(body: CompatRerankRequest) -> CompatRerankResponse:
        """Rerank in the Cohere/Jina/vLLM shape: results carry `index` and `relevance_score`."""
        return await run(run_compat, reranker, body, settings.max_documents)

    app.post("/v1/rerank", response_model=CompatRerankResponse, responses=_ERRORS, tags=["rerank"])(compat)
    for alias in ("/rerank", "/v2/rerank"):
        app.post(alias, response_model=CompatRerankResponse, responses=_ERRORS, include_in_schema=False)(compat)
    return app
