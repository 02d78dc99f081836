"""The FastAPI application: ``/api/rerank``, the Cohere/Jina/vLLM-compatible ``/v1/rerank``, ``/health``.

Production parts around the routes: an optional API key (:mod:`.auth`), Prometheus metrics at
``/metrics`` (:mod:`.metrics`), request ids (:mod:`.request_id`), readiness at ``/ready``
(:mod:`.readiness`) and the Swagger page served from the package (:mod:`.docs_page`).

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

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from lychee_integrations._deps import require

require("fastapi", "server")

import anyio  # noqa: E402
from fastapi import FastAPI, Request, Security  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, RedirectResponse, Response  # noqa: E402
from fastapi.security import HTTPBearer  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

from lychee_integrations.errors import ConfigurationError, InvalidInputError, LimitExceededError  # noqa: E402
from lychee_integrations.instructions import list_templates  # noqa: E402
from lychee_integrations.scoring import Scorer  # noqa: E402
from lychee_integrations.service.auth import AuthPolicy, BearerAuthMiddleware  # noqa: E402
from lychee_integrations.service.docs_page import DOCS_ASSETS, add_docs_page  # noqa: E402
from lychee_integrations.service.handlers import (  # noqa: E402
    TooManyDocumentsError,
    max_length_of,
    run_compat,
    run_native,
    run_score,
)
from lychee_integrations.service.metrics import CONTENT_TYPE_LATEST, MetricsMiddleware, ServiceMetrics  # noqa: E402
from lychee_integrations.service.middleware import AbandonedRequestMiddleware, BodySizeLimitMiddleware  # noqa: E402
from lychee_integrations.service.openapi import refine_openapi  # noqa: E402
from lychee_integrations.service.readiness import ModelState  # noqa: E402
from lychee_integrations.service.request_id import (  # noqa: E402
    HEADER,
    SCOPE_KEY,
    RequestIdMiddleware,
    bound_request_id,
    install_log_records,
)
from lychee_integrations.service.schemas import (  # noqa: E402
    CompatRerankRequest,
    CompatRerankResponse,
    ErrorResponse,
    HealthResponse,
    ModelCard,
    ModelList,
    ReadyResponse,
    RerankRequest,
    RerankResponse,
    ScoreResponse,
    ScoreV1Request,
    ScoreV1Response,
    ServiceLimits,
    TemplateInfo,
)
from lychee_integrations.service.settings import ServiceSettings, default_served_name  # noqa: E402

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])

_INTERNAL_ERROR = "internal error while scoring; the server log has the details"
# Why a load failed is in the server log, never in the answer (paths, loader messages).
_NOT_READY = {"loading": "the model is loading", "failed": "the model failed to load; the server log has the details"}

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "A query or document cannot be scored (bad image, empty input...)."},
    413: {
        "model": ErrorResponse,
        "description": "The body, the number of documents, or the images (per item, per request, "
        "pixels per request) are over a limit; `detail` names the item, the limit and its value.",
    },
    422: {"model": ErrorResponse, "description": "The body does not have the documented shape."},
}
_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "The API key is missing or wrong (`Authorization: Bearer <key>`)."}
}
#: Served without the key: liveness and readiness for load balancers, the docs page and its assets.
_OPEN_PATHS = ("/", "/health", "/ready", "/docs", "/openapi.json")

_DESCRIPTION = """\
Multimodal reranking with [Lychee](https://huggingface.co/vec-ai/lychee-rerank-mm): score how well each
document (text, image, or both) meets a query (text, image, or both) under an instruction.

* `POST /api/rerank`: the native API (instruction templates, single-document scoring, score bands).
* `POST /v1/rerank`: the Cohere/Jina/vLLM rerank shape, for existing clients (also at `/rerank`, `/v2/rerank`).
* `POST /v1/score`: vLLM's score shape (`text_1`, `text_2`); `GET /v1/models`: OpenAI's model list.
* `GET /health` (liveness, limits), `GET /ready` (503 until the model is loaded), `GET /metrics` (Prometheus).

With an API key configured, every route but `/health`, `/ready` and these docs needs
`Authorization: Bearer <key>` (the *Authorize* button here).

Images travel as base64 or `data:` URIs; URLs and server-side paths only where the server allows them.
"""


def _location(loc: tuple[Any, ...]) -> str:
    # pydantic names each branch of a union it tried ("str", "InputItem", "list[...]"): left out.
    branch = ("str", "int", "bool", "dict")
    parts = [str(p) for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p or p in branch))]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _json_position(body: object, position: object) -> str:
    """``line L column C`` of a character offset in the body (as :mod:`json` counts), else ``character N``."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(position, int):
        return "an unknown position"
    if not isinstance(body, str):
        return f"character {position}"
    line = body.count("\n", 0, position) + 1
    column = position - body.rfind("\n", 0, position)
    return f"line {line} column {column}"


def _validation_message(exc: RequestValidationError) -> list[str]:
    """One line per location; the alternatives pydantic tried for a union are joined with 'or'."""
    by_location: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            where = _json_position(exc.body, loc[1] if len(loc) > 1 else None)
            reason = str((error.get("ctx") or {}).get("error", "")).lower()
            by_location.setdefault("body", []).append(f"invalid JSON at {where}: {reason}".rstrip(": "))
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

    async def on_refused(request: Request, exc: Exception) -> JSONResponse:
        return _error(400 if isinstance(exc, ConfigurationError) else 413, str(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(status_code=exc.status_code, content={"detail": str(exc.detail)}, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this in its outermost middleware, outside the request id's context.
        request_id = request.scope.get(SCOPE_KEY)
        with bound_request_id(request_id):
            logger.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
        response = _error(500, _INTERNAL_ERROR)
        if request_id is not None:
            response.headers[HEADER] = request_id
        return response

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(InvalidInputError, on_invalid_input)
    for refused in (ConfigurationError, TooManyDocumentsError, LimitExceededError):
        app.add_exception_handler(refused, on_refused)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


class _EngineRunner:
    """Runs blocking engine calls in worker threads, at most ``limit`` at once.

    A request cancelled while its call runs (uvicorn's graceful timeout passed) stops
    waiting at once; the call is abandoned and counted in :attr:`running` until it ends, so
    that ``lychee serve`` can exit without waiting for it.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._limiter: anyio.CapacityLimiter | None = None
        #: Engine calls running now, abandoned ones included.
        self.running = 0
        self._lock = threading.Lock()

    async def __call__(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        if self._limiter is None:  # created lazily: it needs a running event loop
            self._limiter = anyio.CapacityLimiter(self._limit)

        def counted() -> _T:
            with self._lock:
                self.running += 1
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1

        try:
            return await anyio.to_thread.run_sync(counted, limiter=self._limiter, abandon_on_cancel=True)
        except (InvalidInputError, ConfigurationError, TooManyDocumentsError):
            raise
        except Exception as exc:
            # Answered here, so that the error does not travel up to the server as an unhandled one.
            logger.error("unexpected error while scoring", exc_info=exc)
            raise HTTPException(500, _INTERNAL_ERROR) from None


def create_app(
    reranker: Scorer,
    settings: ServiceSettings | None = None,
    *,
    home: str = "/docs",
    title: str = "Lychee reranker",
    load_model: bool = False,
    on_load_failure: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """Build the HTTP API around one reranker.

    Args:
        reranker: The engine, usually built by
            :func:`~lychee_integrations.service.service_reranker` so that its image policy
            matches ``settings`` (a mismatch is logged as a warning).
        settings: Limits, image rules, API key and served model name; :class:`ServiceSettings`
            defaults when ``None``.
        home: Where ``GET /`` redirects (the API docs, or the web page when mounted).
        title: Title of the OpenAPI description.
        load_model: Load the model in a background thread when the app starts; ``/ready``
            answers 503 until it is loaded. Otherwise the app is ready at once (the engine
            loads on first use unless it was loaded before).
        on_load_failure: Called with the exception if that background load fails.

    Returns:
        A FastAPI application, to run with uvicorn or mount the web page on.

    Raises:
        MissingDependencyError: FastAPI or prometheus-client is missing
            (``pip install 'lychee-integrations[server]'``).

    """
    settings = settings or ServiceSettings()
    policy = getattr(reranker, "image_policy", None)
    if policy is not None and policy != settings.image_policy():
        logger.warning(
            "the reranker's image policy (%s) differs from the service settings (%s); the reranker's applies. "
            "Build it with service_reranker(settings, ...) to apply the service's limits.",
            policy,
            settings.image_policy(),
        )
    install_log_records()
    run = _EngineRunner(settings.max_concurrency)
    model_name = settings.served_model_name or default_served_name(reranker.model_name)
    state = ModelState(reranker, on_failure=on_load_failure)
    metrics = ServiceMetrics(model_name, lambda: state.loaded)
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from lychee_integrations.service.connection import quiet_accept_errors

        quiet_accept_errors(asyncio.get_running_loop())  # out of descriptors: one line, not a flood
        metrics.start()
        if load_model:
            state.start_loading()
        try:
            yield
        finally:
            metrics.stop()

    app = FastAPI(title=title, description=_DESCRIPTION, version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    auth = AuthPolicy(settings.api_key, open_paths=_OPEN_PATHS, open_prefixes=[DOCS_ASSETS])
    # Outermost last: the request id is set first, then the request is counted, then the key
    # is checked (before the body is read), then the body size.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(BearerAuthMiddleware, policy=auth)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(AbandonedRequestMiddleware)
    app.add_middleware(RequestIdMiddleware)
    _install_error_handlers(app)
    add_docs_page(app, title=title)
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            limit = max_length_of(reranker, load=False)
            schema = refine_openapi(
                plain_openapi(),
                max_documents=settings.max_documents,
                max_length=limit,
                max_images_per_item=settings.max_images_per_item,
            )
            if limit is None and not state.loaded:  # describe truncate_prompt_tokens again once the model is in
                app.openapi_schema = None
            return schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.reranker = reranker
    app.state.engine_runner = run
    app.state.settings = settings
    app.state.model_name = model_name
    app.state.model_state = state
    app.state.metrics = metrics
    app.state.auth = auth

    # The key is checked by BearerAuthMiddleware, before the body is read; this dependency
    # (which never refuses) only declares the scheme in the OpenAPI description.
    dependencies: list[Any] = []
    unauthorized: dict[int | str, dict[str, Any]] = {}
    if settings.api_key is not None:
        bearer = HTTPBearer(auto_error=False, description="The server's API key (`lychee serve --api-key`).")
        dependencies, unauthorized = [Security(bearer)], _UNAUTHORIZED

    def keyed(method: str, path: str, tag: str, extra: dict[Any, Any] | None = None, **kw: Any) -> Callable[[_F], _F]:
        responses = {**(extra or {}), **unauthorized}
        return app.api_route(path, methods=[method], tags=[tag], dependencies=dependencies, responses=responses, **kw)

    texts = {"max_text_chars": settings.max_text_chars}

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(home)

    @app.get("/health", response_model=HealthResponse, tags=["service"])
    async def health() -> HealthResponse:
        """Report that the service is up (liveness), which model it serves and what one request may carry."""
        limits = ServiceLimits(**{name: getattr(settings, name) for name in ServiceLimits.model_fields})
        return HealthResponse(status="ok", model=model_name, limits=limits)

    @app.get(
        "/ready",
        response_model=ReadyResponse,
        tags=["service"],
        responses={503: {"model": ReadyResponse, "description": "The model is loading, or failed to load."}},
    )
    async def ready() -> JSONResponse:
        """Readiness: 200 once the model is loaded, 503 while it loads (with `Retry-After`) or if it failed."""
        current = state.state
        detail = _NOT_READY.get(current)
        body = ReadyResponse(status=current, model=model_name, model_loaded=state.loaded, detail=detail)
        headers = {"Retry-After": "5"} if current == "loading" else None
        content = body.model_dump(exclude_none=True)
        return JSONResponse(content, status_code=200 if current == "ready" else 503, headers=headers)

    prometheus = {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus metrics."}

    @keyed("GET", "/metrics", "service", {200: prometheus}, response_model=None)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics, every series prefixed `lychee_` (needs the key when one is set)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @keyed("GET", "/api/templates", "service", response_model=list[TemplateInfo])
    async def templates() -> list[TemplateInfo]:
        """List the instruction templates usable as `task`."""
        return [
            TemplateInfo(name=t.name, instruction=t.instruction, description=t.description) for t in list_templates()
        ]

    @keyed("POST", "/api/rerank", "rerank", _ERRORS, response_model=RerankResponse | ScoreResponse)
    async def rerank(body: RerankRequest) -> RerankResponse | ScoreResponse:
        """Rank `documents` against `query` (best first), or score a single `document`."""
        return await run(run_native, reranker, body, settings.max_documents, model_name, **texts)

    async def compat(body: CompatRerankRequest) -> CompatRerankResponse:
        """Rerank in the Cohere/Jina/vLLM shape: results carry `index` and `relevance_score`.

        The response has `usage.total_tokens` (vLLM, Jina) and Cohere's `meta` block.
        """
        return await run(run_compat, reranker, body, settings.max_documents, model_name, **texts)

    @keyed(
        "POST", "/v1/score", "rerank", _ERRORS, response_model=ScoreV1Response, summary="Score pairs (vLLM's /v1/score)"
    )
    async def score(body: ScoreV1Request) -> ScoreV1Response:
        """Score `text_1` against each `text_2` (or two equal-length lists pairwise), in vLLM's shape.

        The scores are those of `/v1/rerank` for the same query and documents, in the pairs' order.
        """
        return await run(run_score, reranker, body, settings.max_documents, model_name, **texts)

    @keyed("GET", "/v1/models", "service", response_model=ModelList)
    async def models() -> ModelList:
        """List the model served, in OpenAI's shape (`id` is the served model name)."""
        return ModelList(data=[ModelCard(id=model_name, created=started)])

    for path, summary in (
        ("/v1/rerank", "Rerank (Cohere v1, Jina, vLLM)"),
        ("/rerank", "Rerank (vLLM's path)"),
        ("/v2/rerank", "Rerank (Cohere v2's path)"),
    ):
        keyed("POST", path, "rerank", _ERRORS, response_model=CompatRerankResponse, summary=summary)(compat)
    return app
