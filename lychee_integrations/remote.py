"""RemoteReranker: the Scorer protocol over HTTP, against ``lychee serve`` (or a server of the same shape).

Many application processes (web workers, task queues, notebooks) can share one GPU reranker:
each holds a :class:`RemoteReranker` instead of a model, and gets the server's errors as the
package's typed errors.

Example:
    >>> from lychee_integrations import RemoteReranker
    >>> with RemoteReranker("http://gpu-box:8000", api_key="...") as reranker:  # doctest: +SKIP
    ...     reranker.rerank("red running shoes", ["blue jeans", {"image": "shoe.jpg"}], top_n=1)
    [RerankResult(index=1, score=0.93)]

"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from lychee_integrations._deps import require
from lychee_integrations._http import Exchange, Replicas, asend, send
from lychee_integrations._wire import (
    FORMATS,
    ServerInfo,
    WireFormat,
    WireInput,
    input_errors,
    raise_input_errors,
    to_wire,
)
from lychee_integrations.errors import (
    AuthenticationError,
    ConfigurationError,
    InputTooLongError,
    InvalidInputError,
    RemoteError,
)
from lychee_integrations.images import ImagePolicy
from lychee_integrations.inputs import RerankInput, map_documents
from lychee_integrations.instructions import InstructionRegistry
from lychee_integrations.scoring import Scored, Scorer, ScoreRequest

if TYPE_CHECKING:
    import httpx

__all__ = ["API_KEY_ENV", "RemoteReranker"]

logger = logging.getLogger(__name__)

#: Environment variable read when ``api_key`` is not given.
API_KEY_ENV = "LYCHEE_API_KEY"

_USER_AGENT = "lychee-integrations-remote"

#: A range of documents ``[start, end)`` of one call, sent as one request.
_Span = tuple[int, int]


@dataclass(frozen=True)
class _Call:
    query: WireInput
    documents: list[WireInput]
    instruction: str | None


class _ChunkInputErrors(Exception):
    def __init__(self, errors: list[InvalidInputError]) -> None:
        super().__init__(errors)
        self.errors = errors


def _halves(start: int, end: int, detail: str) -> tuple[_Span, _Span]:
    """Split a refused range in two, or name its one document as too long."""
    if end - start == 1:
        problem = (
            f"the pair is longer than the server's context length, and the server refuses it rather than "
            f"cut it as the engine does ({detail}); shorten the document or raise the server's --max-model-len"
        )
        raise _ChunkInputErrors([InputTooLongError(f"document {start}", problem, index=start)])
    middle = (start + end) // 2
    return (start, middle), (middle, end)


def _joined(outcomes: Sequence[Any]) -> Scored:
    """Answers of requests over consecutive ranges, in order; else the input errors of all, or the first failure.

    The tokens are the sum of the answers' (``None`` when one does not say); the instruction
    is the first an answer names.
    """
    errors = [e for o in outcomes if isinstance(o, _ChunkInputErrors) for e in o.errors]
    if errors:
        raise _ChunkInputErrors(errors)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    parts: list[Scored] = list(outcomes)
    counts = [p.tokens for p in parts]
    tokens = None if any(n is None for n in counts) else sum(n for n in counts if n is not None)
    instruction = next((p.instruction for p in parts if p.instruction is not None), None)
    return Scored([score for p in parts for score in p.scores], tokens, instruction)


def _frozen(value: Any) -> Any:
    """Return a hashable stand-in for an option's value (dicts, lists and sets by content)."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((k, _frozen(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(_frozen(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))  # an unhashable object: shared by identity (the cached client holds it)
    return value


def _normalise_urls(base_url: str | Sequence[str]) -> list[str]:
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    if not urls:
        raise ConfigurationError("base_url must be a URL or a non-empty list of URLs")
    for url in urls:
        if not isinstance(url, str) or not url.strip().lower().startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url {url!r} must start with http:// or https://")
    return [url.strip().rstrip("/").removesuffix("/v1") for url in urls]


def _api_key(given: str | None) -> str | None:
    """Return the key to send: ``given``, else ``$LYCHEE_API_KEY``, else ``None``; refuse a blank one."""
    if given is not None:
        where, key = "api_key", given
    elif API_KEY_ENV in os.environ:
        where, key = f"${API_KEY_ENV}", os.environ[API_KEY_ENV]
    else:
        return None
    if not isinstance(key, str):
        raise ConfigurationError(f"{where} must be a string, got {type(key).__name__}")
    if not key.strip():
        raise ConfigurationError(
            f"{where} is blank ({key!r}): give the server's key, or leave api_key unset and "
            f"unset {API_KEY_ENV} to send none"
        )
    if any(c in key for c in "\r\n\0"):
        raise ConfigurationError(f"{where} holds a line break or NUL byte; it cannot go in an HTTP header")
    return key


class RemoteReranker(Scorer):
    """A reranker that scores on a ``lychee serve`` server (or any server of the same shape).

    It satisfies the same :class:`~lychee_integrations.scoring.Scorer` protocol as the
    in-process :class:`~lychee_integrations.engine.LycheeReranker` and gives the same scores
    in the same order, so the adapters, the CLI and your own code take either. Thread-safe;
    one connection pool per client, reused by every call (close it with :meth:`close`, or
    use the client as a context manager).

    Inputs are those of the engine. Queries and documents are checked on the client, with
    the engine's errors naming the item, before any request; local images (paths, PIL
    images, bytes) are read here and sent as base64 data URIs, so the server never reads the
    client's files. ``http(s)`` image URLs go as they are and the server fetches them, if
    its policy allows (``fetch_image_urls=True`` fetches them here instead). An empty
    document is refused, as the server refuses it.

    ``task`` is resolved on the client (so templates registered in this process work
    against any server) and its instruction text travels with each request, as does an
    ``instruction``, byte for byte; with neither, the server's default instruction applies.

    Calls with more documents than the server's cap (its ``/health`` publishes
    ``limits.max_documents`` and ``max_body_bytes``; ``max_documents_per_request`` caps it
    further) are split into several requests, sent concurrently, and merged in input order;
    ``top_n`` applies after merging.

    A call's ``batch_size`` and ``show_progress`` are accepted, so code written for the engine
    runs unchanged, and have no effect: the server batches the pairs of all its clients itself
    (its ``--batch-size``), and a call is one request (or a few, by the caps above), not a loop
    that a bar could follow.

    Args:
        base_url: The server's root URL (``http://host:8000``), or a list of replicas'
            URLs: calls go to them in turn, and a replica that refuses connections or
            answers 429/503 is skipped while others answer.
        api_key: Sent as ``Authorization: Bearer <key>``; ``None`` reads ``LYCHEE_API_KEY``
            (unset: no key is sent). A blank key, given or in the environment, is refused.
        timeout: Seconds one request may take, retries and waits included; a server that
            does not answer in time raises :class:`~lychee_integrations.errors.ServerTimeoutError`.
        max_retries: Further tries after a connection error, a 429 or a 503 (never after
            another 4xx, nor after a timeout while waiting for an answer).
        backoff: First wait between tries, in seconds; doubled each time, with jitter.
            A ``Retry-After`` header from the server takes precedence.
        model: Model name sent in each request and reported by :attr:`model_name`
            (``None``: the server's own, read from ``/health``).
        protocol: The server's request shape: ``"lychee"`` (``lychee serve``).
        max_documents_per_request: Most documents per request, below the server's cap; the
            only cap for a server that publishes none.
        max_concurrency: Most requests of one split call in flight at once.
        image_policy: What the client's image loader may read (default: anything local).
        fetch_image_urls: Download ``http(s)`` image URLs on the client instead of sending them.
        registry: Instruction templates for ``task`` (default: the package's registry).
        headers: Extra HTTP headers for every request.
        event_hooks: httpx event hooks, ``{"request": [fn], "response": [fn]}`` (plain
            functions; the async client awaits them when they return a coroutine).

    Raises:
        ConfigurationError: A bad URL or option, or a blank API key.
        MissingDependencyError: httpx is missing (``pip install 'lychee-integrations[remote]'``).

    Example:
        >>> reranker = RemoteReranker(["http://gpu-0:8000", "http://gpu-1:8000"], timeout=10)  # doctest: +SKIP
        >>> reranker.score("a red car", ["a red sports car", {"image": "car.jpg"}])  # doctest: +SKIP
        [0.97, 0.93]

    """

    #: The server refuses empty documents: refused here too, before any request.
    scores_empty_documents: ClassVar[bool] = False
    _shared: ClassVar[dict[Any, RemoteReranker]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.25,
        model: str | None = None,
        protocol: str = "lychee",
        max_documents_per_request: int | None = None,
        max_concurrency: int = 8,
        image_policy: ImagePolicy | None = None,
        fetch_image_urls: bool = False,
        registry: InstructionRegistry | None = None,
        headers: dict[str, str] | None = None,
        event_hooks: dict[str, list[Any]] | None = None,
    ) -> None:
        require("httpx", "remote")
        self._replicas = Replicas(_normalise_urls(base_url))
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if not (isinstance(backoff, (int, float)) and backoff >= 0):
            raise ConfigurationError(f"backoff must be a number of seconds >= 0, got {backoff!r}")
        counts = (("max_documents_per_request", max_documents_per_request), ("max_concurrency", max_concurrency))
        for name, value in counts:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
        if protocol not in FORMATS:
            raise ConfigurationError(f"unknown protocol {protocol!r}; known: {', '.join(sorted(FORMATS))}")
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.protocol = protocol
        self.max_documents_per_request = max_documents_per_request
        self.max_concurrency = max_concurrency
        self.image_policy = image_policy or ImagePolicy()
        self.fetch_image_urls = fetch_image_urls
        self._format: WireFormat = FORMATS[protocol]
        self._model = model
        if registry is not None:
            self.registry = registry
        key = _api_key(api_key)
        self._has_key = key is not None
        self._headers = {"User-Agent": _USER_AGENT, **(headers or {})}
        if key is not None:
            self._headers["Authorization"] = f"Bearer {key}"
        self._info: ServerInfo | None = None
        self._client: httpx.Client | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._event_hooks = {name: list(hooks) for name, hooks in (event_hooks or {}).items()}
        self._shared_options: dict[str, Any] = {}

    @classmethod
    def shared(cls, base_url: str | Sequence[str], **options: Any) -> RemoteReranker:
        """Return the process-wide client for these options, creating it if needed.

        Every adapter built with the same ``base_url`` and options shares one connection pool.
        Options are compared by value, dicts and lists included (``headers={...}``,
        ``event_hooks={...}``); other unhashable values by identity.

        Raises:
            ConfigurationError: A bad URL or option.

        """
        urls = (base_url,) if isinstance(base_url, str) else tuple(base_url)
        key = (urls, _frozen(options))
        with cls._shared_lock:
            instance = cls._shared.get(key)
            if instance is None:
                instance = cls(list(urls), **options)
                instance._shared_options = options  # keeps what the key names by identity alive
                cls._shared[key] = instance
            return instance

    @property
    def base_urls(self) -> list[str]:
        """The replicas' root URLs."""
        return list(self._replicas.urls)

    @property
    def model_name(self) -> str:
        """The model the server serves (from ``/health``), or the ``model`` given.

        Raises:
            ServerUnavailableError: The server cannot be reached to ask it.

        """
        if self._model is not None:
            return self._model
        return self._server_info().model or self._replicas.urls[0]

    def _httpx_options(self) -> dict[str, Any]:
        import httpx

        return {
            "headers": self._headers,
            "timeout": httpx.Timeout(self.timeout),
            "limits": httpx.Limits(max_connections=max(16, self.max_concurrency * 2), max_keepalive_connections=16),
            "event_hooks": self._event_hooks,
        }

    def _sync_client(self) -> httpx.Client:
        client = self._client
        if client is None:
            import httpx

            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(**self._httpx_options())
                client = self._client
        return client

    def _async_client(self) -> httpx.AsyncClient:
        import httpx

        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            hooks = {name: [_async_hook(h) for h in hooks] for name, hooks in self._event_hooks.items()}
            client = httpx.AsyncClient(**{**self._httpx_options(), "event_hooks": hooks})
            self._aclients[loop] = client
        return client

    def close(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the pools of the sync client and of this event loop's async client."""
        self.close()
        client = self._aclients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def __repr__(self) -> str:
        urls = self._replicas.urls
        where = urls[0] if len(urls) == 1 else urls
        key = ", api_key=***" if self._has_key else ""
        return f"RemoteReranker({where!r}{key}, protocol={self.protocol!r}, timeout={self.timeout:g})"

    def _prepare(self, request: ScoreRequest) -> _Call:
        policy, fetch = self.image_policy, self.fetch_image_urls
        wire_query = to_wire(request.query, policy, item="query", index=None, fetch_urls=fetch)

        def convert(document: object, item: str, index: int) -> WireInput:
            assert isinstance(document, RerankInput)
            return to_wire(document, policy, item=item, index=index, fetch_urls=fetch)

        return _Call(wire_query, map_documents(request.documents, convert), request.instruction)

    def _split(self, call: _Call, info: ServerInfo) -> list[_Span]:
        caps = [c for c in (info.max_documents, self.max_documents_per_request) if c is not None]
        cap = min(caps) if caps else len(call.documents)
        budget = None
        if info.max_body_bytes is not None:
            budget = int(info.max_body_bytes * 0.9) - call.query.size() - len(call.instruction or "") - 1024
        ranges: list[_Span] = []
        start, size = 0, 0
        for i, document in enumerate(call.documents):
            cost = document.size() + 64
            full = i - start >= cap or (budget is not None and i > start and size + cost > budget)
            if full:
                ranges.append((start, i))
                start, size = i, 0
            size += cost
        ranges.append((start, len(call.documents)))
        return ranges

    def _detail(self, response: httpx.Response) -> tuple[str, list[str] | None]:
        try:
            body = response.json()
        except ValueError:
            return response.text[:300].strip(), None
        return self._format.parse_error(body)

    def _answer(self, response: httpx.Response, span: _Span) -> Scored | tuple[_Span, _Span]:
        """Read a rerank answer for the documents ``span``, or raise the error it stands for.

        When the server finds a pair too long, return the two halves of ``span`` to send instead.
        """
        url = str(response.request.url)
        status = response.status_code
        if status == 200:
            try:
                answer = self._format.parse(response.json(), span[1] - span[0])
            except ValueError as exc:
                raise RemoteError(f"unexpected answer from {url}: {exc}", url=url, status=status) from exc
            if answer.model and self._info is not None and self._info.model is None:
                self._info = ServerInfo(answer.model, self._info.max_documents, self._info.max_body_bytes)
            return Scored(answer.scores, answer.tokens, answer.instruction)
        detail, problems = self._detail(response)
        said = f"HTTP {status}" + (f": {detail}" if detail else "")
        if status == 400:
            if self._format.too_long(detail):  # find the documents that are too long, halving the range
                return _halves(*span, detail)
            errors = input_errors(detail, problems, span[0])
            if errors is not None:
                raise _ChunkInputErrors(errors)
            raise ConfigurationError(f"the reranker server at {url} refused the request ({said})")
        if status in (401, 403):
            sent = "the API key sent was refused" if self._has_key else "no API key was sent"
            raise AuthenticationError(
                f"the reranker server at {url} requires authentication ({said}); {sent}: "
                f"pass api_key= or set the {API_KEY_ENV} environment variable",
                url=url,
                status=status,
            )
        hints = {
            404: f"; check that base_url is the server's root and that protocol={self.protocol!r} fits the server",
            413: "; lower max_documents_per_request or send smaller images",
            422: f"; the server does not take this request's shape: check protocol={self.protocol!r}",
        }
        message = f"the reranker server at {url} answered {said}{hints.get(status, '')}"
        raise RemoteError(message, url=url, status=status)

    def _read_info(self, response: httpx.Response) -> ServerInfo:
        if response.status_code in (401, 403):
            self._answer(response, (0, 0))
        if response.status_code == 200:
            with contextlib.suppress(ValueError):
                return self._format.parse_info(response.json())
        return ServerInfo(None, None, None)

    def _merge(self, call: _Call, ranges: list[_Span], outcomes: Sequence[Any]) -> Scored:
        try:
            joined = _joined(outcomes)
        except _ChunkInputErrors as exc:
            raise_input_errors(exc.errors, len(call.documents))
            raise
        logger.debug("scored %d documents in %d request(s)", len(joined.scores), len(ranges))
        instruction = call.instruction if call.instruction is not None else joined.instruction
        return Scored(joined.scores, joined.tokens, instruction)

    def _body(self, call: _Call, span: _Span) -> Any:
        return self._format.build(call.query, call.documents[span[0] : span[1]], call.instruction, self._model)

    def _new_exchange(self, path: str) -> Exchange:
        return Exchange(
            self._replicas, self.timeout, self.max_retries, self.backoff, path, lambda r: self._detail(r)[0]
        )

    # Everything above is shared by the sync and async transports; each pair below differs only in how
    # a request is sent and how the requests of one call run together (a thread pool, or asyncio.gather).

    def _exchange(self, method: str, path: str, body: Any = None) -> httpx.Response:
        exchange, client = self._new_exchange(path), self._sync_client()

        def one_try() -> httpx.Response:
            with exchange.attempt() as (url, timeout):
                request = functools.partial(send, client, method, url, body, timeout, exchange.deadline)
                return exchange.judge(exchange.run(url, request))

        return exchange.retrying()(one_try)

    async def _aexchange(self, method: str, path: str, body: Any = None) -> httpx.Response:
        exchange, client = self._new_exchange(path), self._async_client()

        async def one_try() -> httpx.Response:
            with exchange.attempt() as (url, timeout):
                request = asend(client, method, url, body, timeout, exchange.deadline)
                return exchange.judge(await exchange.arun(url, request))

        return await exchange.aretrying()(one_try)

    def _server_info(self) -> ServerInfo:
        if self._info is None:
            self._info = self._read_info(self._exchange("GET", self._format.info_path))
        return self._info

    async def _aserver_info(self) -> ServerInfo:
        if self._info is None:
            self._info = self._read_info(await self._aexchange("GET", self._format.info_path))
        return self._info

    def _post(self, call: _Call, span: _Span) -> Scored:
        read = self._answer(self._exchange("POST", self._format.rerank_path, self._body(call, span)), span)
        return read if isinstance(read, Scored) else _joined([_outcome(self._post, call, half) for half in read])

    async def _apost(self, call: _Call, span: _Span) -> Scored:
        read = self._answer(await self._aexchange("POST", self._format.rerank_path, self._body(call, span)), span)
        if isinstance(read, Scored):
            return read
        return _joined(await asyncio.gather(*(self._apost(call, half) for half in read), return_exceptions=True))

    def _score(self, request: ScoreRequest) -> Scored:
        call = self._prepare(request)
        ranges = self._split(call, self._server_info())
        if len(ranges) == 1:
            outcomes = [_outcome(self._post, call, ranges[0])]
        else:
            with ThreadPoolExecutor(min(len(ranges), self.max_concurrency), thread_name_prefix="lychee-remote") as pool:
                outcomes = list(pool.map(lambda span: _outcome(self._post, call, span), ranges))
        return self._merge(call, ranges, outcomes)

    async def _ascore(self, request: ScoreRequest) -> Scored:
        if all(not d.images for d in (request.query, *request.documents)):
            call = self._prepare(request)
        else:  # local images are read and encoded in a worker thread
            call = await asyncio.to_thread(self._prepare, request)
        ranges = self._split(call, await self._aserver_info())
        limit = asyncio.Semaphore(self.max_concurrency)

        async def post(span: _Span) -> Scored:
            async with limit:
                return await self._apost(call, span)

        return self._merge(call, ranges, await asyncio.gather(*map(post, ranges), return_exceptions=True))


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        return exc


def _async_hook(hook: Any) -> Any:
    async def run(value: Any) -> None:
        result = hook(value)
        if asyncio.iscoroutine(result):
            await result

    return run
