"""Prometheus metrics of the service, every series prefixed ``lychee_`` (extra ``server``).

Each app has its own :class:`~prometheus_client.CollectorRegistry`, so several apps in one
process (tests, an app mounted in another) never clash. Series:

* HTTP, per app: ``lychee_http_requests_total{method,route,status}``,
  ``lychee_http_request_duration_seconds{method,route}`` (histogram),
  ``lychee_http_requests_in_flight``. ``route`` is the route's template (``/v1/rerank``),
  ``other`` for paths no route serves; ``method`` is one of the standard methods (``GET``,
  ``POST``, ...), ``other`` for any other: clients cannot add series at will.
* Engine, from :mod:`lychee_integrations.telemetry` (everything the engines of this process
  score, the web page's runs included): ``lychee_documents_scored_total``,
  ``lychee_tokens_scored_total``, ``lychee_engine_batch_pairs``,
  ``lychee_engine_batch_tokens``, ``lychee_engine_batch_seconds``,
  ``lychee_engine_queue_wait_seconds`` (histograms).
* Engine caches that outlive a call (:mod:`lychee_integrations.engine.caches`), by ``cache``
  (``vision``, ``prefix``, ``score``): ``lychee_engine_cache_hits_total``,
  ``lychee_engine_cache_misses_total``, ``lychee_engine_cache_bytes`` and
  ``lychee_engine_cache_entries`` (gauges: the latest size reported).
* Model: ``lychee_model_loaded`` (1 once the model is in memory, else 0) and
  ``lychee_model_info{model}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lychee_integrations._deps import require

require("prometheus_client", "server")

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from lychee_integrations.service.middleware import HttpMiddleware  # noqa: E402
from lychee_integrations.telemetry import add_listener  # noqa: E402

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_PAIRS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
#: The engine's caches (:mod:`lychee_integrations.engine.caches`), each a ``cache`` label value.
_CACHES = ("vision", "prefix", "score")
_TOKENS_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


#: The engine's telemetry events recorded as histograms ``lychee_engine_<event>``: event, help, buckets.
_ENGINE_HISTOGRAMS: tuple[tuple[str, str, tuple[float, ...]], ...] = (
    ("batch_pairs", "Pairs per forward pass", _PAIRS_BUCKETS),
    ("batch_tokens", "Tokens (padding included) per forward pass", _TOKENS_BUCKETS),
    ("batch_seconds", "Duration of a forward pass", _LATENCY_BUCKETS),
    ("queue_wait_seconds", "Time an engine call waited for the model", _LATENCY_BUCKETS),
)


class ServiceMetrics:
    """The metrics of one app, in a registry of its own.

    Args:
        model_name: The served model's name (``lychee_model_info``).
        is_loaded: Returns whether the model is in memory (``lychee_model_loaded``).

    Example:
        >>> metrics = ServiceMetrics("tiny", lambda: True)
        >>> b"lychee_model_loaded 1.0" in metrics.render()
        True

    """

    def __init__(self, model_name: str, is_loaded: Callable[[], bool]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "lychee_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "lychee_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("lychee_http_requests_in_flight", "HTTP requests being answered", registry=r)
        self.documents = Counter("lychee_documents_scored", "Documents (query-document pairs) scored", registry=r)
        self.tokens = Counter("lychee_tokens_scored", "Prompt tokens scored, padding excluded", registry=r)
        self._events: dict[str, Callable[[float], None]] = {
            "pairs_scored": self.documents.inc,
            "tokens_scored": self.tokens.inc,
            **{
                event: Histogram(f"lychee_engine_{event}", text, buckets=buckets, registry=r).observe
                for event, text, buckets in _ENGINE_HISTOGRAMS
            },
        }
        hits = Counter("lychee_engine_cache_hits", "Lookups answered by an engine cache", ["cache"], registry=r)
        misses = Counter("lychee_engine_cache_misses", "Lookups an engine cache missed", ["cache"], registry=r)
        held = Gauge("lychee_engine_cache_bytes", "Bytes held by an engine cache", ["cache"], registry=r)
        entries = Gauge("lychee_engine_cache_entries", "Entries held by an engine cache", ["cache"], registry=r)
        for cache in _CACHES:
            self._events[f"{cache}_cache_hit"] = hits.labels(cache).inc
            self._events[f"{cache}_cache_miss"] = misses.labels(cache).inc
            self._events[f"{cache}_cache_bytes"] = held.labels(cache).set
            self._events[f"{cache}_cache_entries"] = entries.labels(cache).set
        Gauge("lychee_model_loaded", "1 once the model is in memory, else 0", registry=r).set_function(
            lambda: 1.0 if is_loaded() else 0.0
        )
        Info("lychee_model", "The served model", registry=r).info({"model": model_name})
        self._remove: Callable[[], None] | None = None

    def on_event(self, name: str, value: float) -> None:
        """Record one engine telemetry event (unknown names are ignored)."""
        record = self._events.get(name)
        if record is not None:
            record(value)

    def start(self) -> None:
        """Listen to the engine's telemetry (idempotent)."""
        if self._remove is None:
            self._remove = add_listener(self.on_event)

    def stop(self) -> None:
        """Stop listening to the engine's telemetry."""
        if self._remove is not None:
            self._remove()
            self._remove = None

    def render(self) -> bytes:
        """Return the registry in Prometheus' text format."""
        return generate_latest(self.registry)


#: The methods counted under their own name; any other is counted as ``other``.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def _route_of(scope: Scope) -> str:
    """Return the template of the route that served (or would serve) the request; ``other`` if none."""
    from starlette.routing import Match

    route = scope.get("route")
    if route is None:  # answered before routing (401, 413): find the route it was meant for
        app = scope.get("app")
        for candidate in getattr(getattr(app, "router", None), "routes", ()):
            if candidate.matches(scope)[0] != Match.NONE:
                route = candidate
                break
    return str(getattr(route, "path", None) or "other")


class MetricsMiddleware(HttpMiddleware):
    """Count, time and track in flight every HTTP request of the wrapped app.

    Args:
        app: The ASGI application.
        metrics: Where to record.

    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app and record its answer."""
        status = 500
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.in_flight.dec()
            route = _route_of(scope)
            method = str(scope.get("method", "GET"))
            method = method if method in _METHODS else "other"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
