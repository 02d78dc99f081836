"""The service's production parts on a real uvicorn and the tiny checkpoint: API key, metrics,
request ids, usage, readiness, the offline docs page and the served model name."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import BrokenReranker, serve_app

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.scoring import Scored, Scorer, ScoreRequest
from lychee_integrations.service import ServiceSettings, create_app, service_reranker
from lychee_integrations.service.settings import default_served_name
from lychee_integrations.testing import FakeScorer

pytestmark = pytest.mark.timeout(300)

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUERY = "a red running shoe"
TEXTS = ["Red running shoes with a light sole.", "Paris is the capital of France.", "A blue backpack, 20 litres."]
RERANK_BODY = {"query": QUERY, "documents": TEXTS}


@pytest.fixture(scope="module")
def keyed(tiny_checkpoint: Path) -> Iterator[str]:
    """A server with an API key and a served model name."""
    settings = ServiceSettings(max_documents=8, max_body_bytes=64 * 1024, api_key=KEY, served_model_name="lychee-tiny")
    engine = service_reranker(settings, model=str(tiny_checkpoint), device="cpu", dtype="float32").load()
    with serve_app(create_app(engine, settings)) as base:
        yield base


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


# ---------------------------------------------------------------- API key

PROTECTED = [
    ("POST", "/api/rerank", RERANK_BODY),
    ("POST", "/v1/rerank", RERANK_BODY),
    ("POST", "/rerank", RERANK_BODY),
    ("POST", "/v2/rerank", RERANK_BODY),
    ("GET", "/api/templates", None),
    ("GET", "/metrics", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[p[1] for p in PROTECTED])
def test_api_routes_need_the_key(keyed: str, client: httpx.Client, method: str, path: str, body: Any) -> None:
    for headers, fragment in [
        ({}, "missing API key"),
        ({"Authorization": "Bearer wrong-key"}, "invalid API key"),
        ({"Authorization": f"Bearer {KEY}x"}, "invalid API key"),
        ({"Authorization": f"Basic {KEY}"}, "malformed Authorization header"),
        ({"Authorization": "Bearer"}, "malformed Authorization header"),
    ]:
        response = client.request(method, f"{keyed}{path}", json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert fragment in response.json()["detail"]
        assert KEY not in response.text
    response = client.request(method, f"{keyed}{path}", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    lower = client.request(method, f"{keyed}{path}", json=body, headers={"authorization": f"bearer {KEY}"})
    assert lower.status_code == 200


def test_open_routes_need_no_key(keyed: str, client: httpx.Client) -> None:
    for path in ("/health", "/ready", "/docs", "/openapi.json"):
        assert client.get(f"{keyed}{path}").status_code == 200, path
    assert client.get(f"{keyed}/", follow_redirects=False).status_code in (302, 307)


def test_the_key_is_checked_before_the_body(keyed: str, client: httpx.Client) -> None:
    bad_json = client.post(f"{keyed}/api/rerank", content=b'{"query": ', headers={"content-type": "application/json"})
    assert bad_json.status_code == 401
    over_the_limit = b"x" * (100 * 1024)  # small enough for loopback socket buffers: no broken pipe
    assert client.post(f"{keyed}/v1/rerank", content=over_the_limit).status_code == 401
    assert client.post(f"{keyed}/v1/rerank", content=over_the_limit, headers=AUTH).status_code == 413
    unknown = client.get(f"{keyed}/no/such/route")
    assert unknown.status_code == 401  # no probing of routes without the key


def test_openapi_declares_the_bearer_scheme(keyed: str, client: httpx.Client) -> None:
    spec = client.get(f"{keyed}/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"].lower() for s in schemes.values()] == ["bearer"]
    for path in ("/api/rerank", "/v1/rerank", "/rerank", "/v2/rerank"):
        assert spec["paths"][path]["post"]["security"], path
        assert "401" in spec["paths"][path]["post"]["responses"]
    assert "security" not in spec["paths"]["/health"]["get"]


def test_settings_hide_and_check_the_key() -> None:
    assert KEY not in repr(ServiceSettings(api_key=KEY))
    from lychee_integrations.errors import ConfigurationError

    for bad in ("", " padded "):
        with pytest.raises(ConfigurationError, match="api_key"):
            ServiceSettings(api_key=bad)


# ---------------------------------------------------------------- usage and model name


def test_usage_and_cohere_meta(keyed: str, client: httpx.Client, tiny_reranker: LycheeReranker) -> None:
    data = client.post(f"{keyed}/v1/rerank", json=RERANK_BODY, headers=AUTH).json()
    tokens = tiny_reranker.score_with_usage(QUERY, TEXTS).tokens
    assert tokens is not None
    assert tokens > 0 and data["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert data["meta"]["billed_units"] == {"search_units": 1, "input_tokens": tokens}
    assert data["meta"]["tokens"] == {"input_tokens": tokens}
    assert data["model"] == "lychee-tiny"
    native = client.post(f"{keyed}/api/rerank", json=RERANK_BODY, headers=AUTH).json()
    assert native["model"] == "lychee-tiny"
    assert client.get(f"{keyed}/health").json()["model"] == "lychee-tiny"


class UncountedScorer(Scorer):
    """A scorer that cannot tell how many tokens it read (a remote server without usage, say)."""

    @property
    def model_name(self) -> str:
        return "uncounted"

    def _score(self, request: ScoreRequest) -> Scored:
        return Scored([0.5] * len(request.documents), None, None)


def test_usage_is_null_for_a_scorer_that_does_not_count(client: httpx.Client) -> None:
    with serve_app(create_app(UncountedScorer())) as base:
        data = client.post(f"{base}/v1/rerank", json=RERANK_BODY).json()
    assert data["usage"] is None and data["meta"]["billed_units"]["search_units"] == 1
    assert len(data["results"]) == len(TEXTS)


def test_default_served_name(tmp_path: Path) -> None:
    assert default_served_name("vec-ai/lychee-rerank-mm") == "vec-ai/lychee-rerank-mm"
    assert default_served_name(str(tmp_path / "lychee-ckpt")) == str(tmp_path / "lychee-ckpt")  # not a directory
    (tmp_path / "lychee-ckpt").mkdir()
    assert default_served_name(str(tmp_path / "lychee-ckpt")) == "lychee-ckpt"
    assert default_served_name(str(tmp_path / "lychee-ckpt") + "/") == "lychee-ckpt"


# ---------------------------------------------------------------- metrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_traffic(keyed: str, client: httpx.Client) -> None:
    before = _samples(client.get(f"{keyed}/metrics", headers=AUTH).text)
    assert all(name.startswith("lychee_") for name, _ in before)
    ok = client.post(f"{keyed}/v1/rerank", json=RERANK_BODY, headers=AUTH).json()
    client.post(f"{keyed}/v1/rerank", json=RERANK_BODY)  # 401
    client.post(f"{keyed}/api/rerank", json={"query": QUERY, "documents": [{"image": "A"}]}, headers=AUTH)  # 400
    after = _samples(client.get(f"{keyed}/metrics", headers=AUTH).text)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    requests = "lychee_http_requests_total"
    assert delta(requests, method="POST", route="/v1/rerank", status="200") == 1
    assert delta(requests, method="POST", route="/v1/rerank", status="401") == 1
    assert delta(requests, method="POST", route="/api/rerank", status="400") == 1
    assert delta("lychee_http_request_duration_seconds_count", method="POST", route="/v1/rerank") == 2
    assert delta("lychee_documents_scored_total") >= len(TEXTS)
    assert delta("lychee_tokens_scored_total") >= ok["usage"]["total_tokens"]
    assert delta("lychee_engine_batch_pairs_count") >= 1 and delta("lychee_engine_batch_pairs_sum") >= len(TEXTS)
    # A prefix the pairs share runs once, outside the batches: batches carry fewer tokens than the pairs.
    assert 0 < delta("lychee_engine_batch_tokens_sum") <= ok["usage"]["total_tokens"]
    assert delta("lychee_engine_queue_wait_seconds_count") >= 1
    assert _value(after, "lychee_model_loaded") == 1
    assert _value(after, "lychee_model_info", model="lychee-tiny") == 1
    # This scrape itself is in flight while the registry is read.
    assert _value(after, "lychee_http_requests_in_flight") == 1


def test_each_app_has_its_own_registry(client: httpx.Client) -> None:
    first, second = create_app(FakeScorer(lambda q, d, i: 0.1)), create_app(FakeScorer(lambda q, d, i: 0.2))
    with serve_app(first) as a, serve_app(second) as b:
        for _ in range(3):
            client.post(f"{a}/v1/rerank", json=RERANK_BODY)
        counts = [
            _value(
                _samples(client.get(f"{base}/metrics").text),
                "lychee_http_requests_total",
                method="POST",
                route="/v1/rerank",
                status="200",
            )
            for base in (a, b)
        ]
    assert counts == [3, 0]


# ---------------------------------------------------------------- request ids


def test_request_id_is_echoed_or_made(keyed: str, client: httpx.Client) -> None:
    sent = client.get(f"{keyed}/health", headers={"X-Request-ID": "trace-42.a"})
    assert sent.headers["x-request-id"] == "trace-42.a"
    made = {client.get(f"{keyed}/health").headers["x-request-id"] for _ in range(3)}
    assert len(made) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made)
    refused = client.post(f"{keyed}/v1/rerank", json=RERANK_BODY, headers={"X-Request-ID": "on-a-401"})
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "on-a-401"
    invalid = client.post(f"{keyed}/v1/rerank", json={"query": 1}, headers={**AUTH, "X-Request-ID": "on-a-422"})
    assert invalid.status_code == 422 and invalid.headers["x-request-id"] == "on-a-422"
    unsafe = client.get(f"{keyed}/health", headers={"X-Request-ID": "a b\tc" + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])


def test_log_records_carry_the_request_id(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with serve_app(create_app(BrokenReranker())) as base, caplog.at_level(logging.ERROR):
        response = client.post(f"{base}/v1/rerank", json=RERANK_BODY, headers={"X-Request-ID": "req-broken-1"})
        assert response.status_code == 500 and response.headers["x-request-id"] == "req-broken-1"
    records = [r for r in caplog.records if r.exc_info and "secret-internal-detail" in str(r.exc_info[1])]
    assert records and all(getattr(r, "request_id", None) == "req-broken-1" for r in records)


def test_an_unhandled_error_keeps_its_request_id(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(FakeScorer(lambda q, d, i: 0.5))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug outside the engine: secret-internal-detail")

    with serve_app(app) as base, caplog.at_level(logging.ERROR):
        response = client.get(f"{base}/boom", headers={"X-Request-ID": "req-bug-7"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "req-bug-7"
    assert "secret-internal-detail" not in response.text
    records = [r for r in caplog.records if r.name == "lychee_integrations.service.app" and r.exc_info]
    assert records and all(getattr(r, "request_id", None) == "req-bug-7" for r in records)


# ---------------------------------------------------------------- readiness


class GatedReranker(LycheeReranker):
    """The real engine whose load waits for a gate, so that a test sees the loading phase."""

    gate = threading.Event()
    loaded = threading.Event()

    def load(self) -> LycheeReranker:
        assert self.gate.wait(60)
        try:
            return super().load()
        finally:
            self.loaded.set()


def test_ready_is_503_until_the_model_is_loaded(tiny_checkpoint: Path, client: httpx.Client) -> None:
    settings = ServiceSettings()
    engine = GatedReranker(str(tiny_checkpoint), device="cpu", dtype="float32", image_policy=settings.image_policy())
    with serve_app(create_app(engine, settings, load_model=True)) as base:
        assert client.get(f"{base}/health").status_code == 200  # alive while loading
        loading = client.get(f"{base}/ready")
        assert loading.status_code == 503 and loading.headers["retry-after"] == "5"
        assert loading.json() == {
            "status": "loading",
            "model": tiny_checkpoint.name,
            "model_loaded": False,
            "detail": "the model is loading",
        }
        metrics = _samples(client.get(f"{base}/metrics").text)
        assert _value(metrics, "lychee_model_loaded") == 0
        GatedReranker.gate.set()
        assert GatedReranker.loaded.wait(60)
        ready = client.get(f"{base}/ready")
        assert ready.status_code == 200 and ready.json()["model_loaded"] is True
        assert _value(_samples(client.get(f"{base}/metrics").text), "lychee_model_loaded") == 1
        assert client.post(f"{base}/v1/rerank", json=RERANK_BODY).status_code == 200


def test_ready_reports_a_failed_load(tmp_path: Path, client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    failures: list[BaseException] = []
    failed = threading.Event()

    def on_load_failure(exc: BaseException) -> None:
        failures.append(exc)
        failed.set()

    engine = service_reranker(ServiceSettings(), model=str(tmp_path), device="cpu")  # not a checkpoint
    with serve_app(create_app(engine, load_model=True, on_load_failure=on_load_failure)) as base:
        assert failed.wait(60)
        response = client.get(f"{base}/ready")
    assert response.status_code == 503 and response.json()["status"] == "failed"
    assert response.json()["detail"] == "the model failed to load; the server log has the details"
    assert str(tmp_path.parent) not in response.text and len(failures) == 1
    assert str(tmp_path) in caplog.text  # the details are in the log


# ---------------------------------------------------------------- docs page


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_docs_page_loads_only_from_this_server(keyed: str, client: httpx.Client) -> None:
    page = client.get(f"{keyed}/docs")
    assert page.status_code == 200
    parser = _Links()
    parser.feed(page.text)
    urls = parser.urls + re.findall(r"url: '([^']+)'", page.text)
    assert len(urls) >= 4, urls  # style, icon, script, the OpenAPI description
    assert not re.search(r"https?://", page.text), "the docs page names an outside address"
    for url in urls:
        assert url.startswith("/"), url
        response = client.get(f"{keyed}{url}")
        assert response.status_code == 200 and len(response.content) > 100, url
    assert "SwaggerUIBundle" in client.get(f"{keyed}/docs-assets/swagger-ui-bundle.js").text


# ---------------------------------------------------------------- web page with a key


def test_web_page_asks_for_the_key_on_its_login_form() -> None:
    from lychee_integrations.service import create_ui_app

    app = create_ui_app(FakeScorer(lambda q, d, i: 0.5), ServiceSettings(api_key=KEY), with_api=True)
    with serve_app(app) as base, httpx.Client(timeout=60) as browser:
        assert browser.get(f"{base}/ui/").status_code == 200  # the page with its login form
        assert browser.get(f"{base}/ui/config").status_code == 401
        assert browser.post(f"{base}/ui/login", data={"username": "me", "password": "wrong"}).status_code == 400
        assert browser.post(f"{base}/ui/login", data={"username": "me", "password": KEY}).status_code == 200
        assert browser.get(f"{base}/ui/config").status_code == 200
        # The page's cookie is no API key: the API still wants the bearer header.
        assert browser.post(f"{base}/v1/rerank", json=RERANK_BODY).status_code == 401
        assert browser.post(f"{base}/v1/rerank", json=RERANK_BODY, headers=AUTH).status_code == 200
