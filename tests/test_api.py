"""The HTTP API, served by a real uvicorn on loopback and driven with real HTTP requests.

Scores are compared with the engine called directly (``tiny_reranker``) on the same inputs.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import (
    BrokenReranker,
    CountingImageServer,
    b64,
    data_uri,
    make_image,
    png_bytes,
    serve_app,
)

from lychee_integrations.errors import ConfigurationError
from lychee_integrations.results import score_band
from lychee_integrations.service import ServiceSettings, create_app, service_reranker

pytestmark = pytest.mark.timeout(600)

TOL = 1e-4
MAX_DOCUMENTS = 8
MAX_BODY = 256 * 1024
MAX_PIXELS = 120_000

QUERY = "a red running shoe"
TEXTS = [
    "Red running shoes with a light sole.",
    "Paris is the capital of France.",
    "A blue backpack for hiking, 20 litres.",
    "How do I reset my password? Open settings.",
]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("service")
    root = base / "images"
    root.mkdir()
    (root / "red.png").write_bytes(png_bytes(make_image((220, 20, 20))))
    (base / "outside.png").write_bytes(png_bytes(make_image((20, 220, 20))))
    (root / "link.png").symlink_to(base / "outside.png")
    return root


@pytest.fixture(scope="module")
def settings(image_root: Path) -> ServiceSettings:
    return ServiceSettings(
        max_documents=MAX_DOCUMENTS, max_body_bytes=MAX_BODY, max_image_pixels=MAX_PIXELS, image_root=image_root
    )


def _strict_engine(settings: ServiceSettings, checkpoint: Path) -> Any:
    return service_reranker(settings, model=str(checkpoint), device="cpu", dtype="float32").load()


@pytest.fixture(scope="module")
def api(settings: ServiceSettings, tiny_checkpoint: Path) -> Iterator[str]:
    with serve_app(create_app(_strict_engine(settings, tiny_checkpoint), settings)) as base:
        yield base


@pytest.fixture(scope="module")
def remote_api(tiny_checkpoint: Path) -> Iterator[str]:
    """A server that allows image URLs (but, as always, not to loopback or private addresses)."""
    remote = ServiceSettings(allow_remote_images=True, image_timeout=2.0)
    with serve_app(create_app(_strict_engine(remote, tiny_checkpoint), remote)) as base:
        yield base


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


def _post(client: httpx.Client, url: str, body: Any) -> httpx.Response:
    response = client.post(url, json=body)
    assert "Traceback" not in response.text
    return response


def _check_ranked(results: list[dict[str, Any]], expected: list[float], *, key: str = "score") -> None:
    """Results must be every document, best first, with the engine's scores."""
    assert sorted(r["index"] for r in results) == list(range(len(expected)))
    scores = [r[key] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert math.isclose(r[key], expected[r["index"]], abs_tol=TOL), (r, expected)


# ---------------------------------------------------------------- service basics


def test_health_openapi_and_docs(api: str, client: httpx.Client, tiny_checkpoint: Path) -> None:
    health = client.get(f"{api}/health")
    assert health.status_code == 200
    body = health.json()
    # The checkpoint directory's name, never the server's filesystem path.
    assert (body["status"], body["model"]) == ("ok", tiny_checkpoint.name)
    assert str(tiny_checkpoint.parent) not in health.text
    assert body["limits"]["max_documents"] == MAX_DOCUMENTS
    spec = client.get(f"{api}/openapi.json").json()
    paths = {"/api/rerank", "/v1/rerank", "/rerank", "/v2/rerank", "/health", "/ready", "/metrics", "/api/templates"}
    assert paths <= set(spec["paths"])
    assert "RerankRequest" in spec["components"]["schemas"]
    assert client.get(f"{api}/docs").status_code == 200
    root = client.get(f"{api}/", follow_redirects=False)
    assert root.status_code in (302, 307) and root.headers["location"] == "/docs"


def test_templates_endpoint_lists_the_registry(api: str, client: httpx.Client) -> None:
    from lychee_integrations.instructions import list_templates

    listed = client.get(f"{api}/api/templates").json()
    assert [t["name"] for t in listed] == [t.name for t in list_templates()]


# ---------------------------------------------------------------- native API


def test_rerank_text_matches_engine(api: str, client: httpx.Client, tiny_reranker: Any) -> None:
    body = {"query": {"text": QUERY}, "documents": [{"text": t} for t in TEXTS]}
    response = _post(client, f"{api}/api/rerank", body)
    assert response.status_code == 200, response.text
    data = response.json()
    expected = tiny_reranker.score(QUERY, TEXTS)
    _check_ranked(data["results"], expected)
    assert all(r["type"] == "text" and r["band"] == score_band(r["score"]) for r in data["results"])
    assert data["instruction"] == "Given a web search query, retrieve relevant passages that answer the query"


def test_rerank_images_and_mixed_documents(api: str, client: httpx.Client, tiny_reranker: Any) -> None:
    red, blue, gray = make_image((220, 20, 20)), make_image((20, 20, 220), (90, 60), 20), make_image((128,) * 3)
    query = {"text": QUERY, "image": b64(red)}
    documents = [
        {"text": TEXTS[0]},
        {"image": b64(blue)},
        {"image": data_uri(gray)},
        {"text": TEXTS[2], "image": data_uri(red)},
        {"text": "two pictures", "images": [b64(blue), data_uri(gray)]},
        "a plain string is text",
    ]
    response = _post(client, f"{api}/api/rerank", {"query": query, "documents": documents})
    assert response.status_code == 200, response.text
    expected = tiny_reranker.score(
        {"text": QUERY, "image": red},
        [
            TEXTS[0],
            {"image": blue},
            {"image": gray},
            {"text": TEXTS[2], "image": red},
            {"text": "two pictures", "images": [blue, gray]},
            "a plain string is text",
        ],
    )
    results = response.json()["results"]
    _check_ranked(results, expected)
    types = {r["index"]: r["type"] for r in results}
    assert types == {0: "text", 1: "image", 2: "image", 3: "text+image", 4: "text+image", 5: "text"}


def test_image_path_inside_the_root_is_read(
    api: str, client: httpx.Client, tiny_reranker: Any, image_root: Path
) -> None:
    body = {"query": QUERY, "documents": [{"image": "red.png"}, {"image": str(image_root / "red.png")}]}
    response = _post(client, f"{api}/api/rerank", body)
    assert response.status_code == 200, response.text
    expected = tiny_reranker.score(QUERY, [{"image": make_image((220, 20, 20))}] * 2)
    _check_ranked(response.json()["results"], expected)


def test_single_document_form_returns_its_score(api: str, client: httpx.Client, tiny_reranker: Any) -> None:
    blue = make_image((20, 20, 220), (90, 60), 20)
    response = _post(client, f"{api}/api/rerank", {"query": QUERY, "document": {"text": TEXTS[1], "image": b64(blue)}})
    assert response.status_code == 200, response.text
    data = response.json()
    expected = tiny_reranker.score(QUERY, [{"text": TEXTS[1], "image": blue}])[0]
    assert math.isclose(data["score"], expected, abs_tol=TOL)
    assert data["type"] == "text+image" and data["band"] == score_band(data["score"])


def test_top_n_task_and_instruction(api: str, client: httpx.Client, tiny_reranker: Any) -> None:
    response = _post(
        client, f"{api}/api/rerank", {"query": QUERY, "documents": TEXTS, "task": "product_search", "top_n": 2}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    expected = tiny_reranker.rerank(QUERY, TEXTS, task="product_search", top_n=2)
    assert [r["index"] for r in data["results"]] == [r.index for r in expected]
    assert all(math.isclose(a["score"], b.score, abs_tol=TOL) for a, b in zip(data["results"], expected, strict=True))
    from lychee_integrations.instructions import get_template

    assert data["instruction"] == get_template("product_search").instruction

    custom = "Given a shoe, find shoes of the same colour"
    response = _post(client, f"{api}/api/rerank", {"query": QUERY, "documents": TEXTS, "instruction": custom})
    _check_ranked(response.json()["results"], tiny_reranker.score(QUERY, TEXTS, instruction=custom))


def test_empty_document_list_gives_no_results(api: str, client: httpx.Client) -> None:
    response = _post(client, f"{api}/api/rerank", {"query": QUERY, "documents": []})
    assert response.status_code == 200 and response.json()["results"] == []


# ---------------------------------------------------------------- Cohere / Jina / vLLM shape


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank", "/v2/rerank"])
def test_compat_cohere_strings(api: str, client: httpx.Client, tiny_reranker: Any, path: str) -> None:
    body = {"model": "rerank-english-v3.0", "query": QUERY, "documents": TEXTS, "top_n": 3, "return_documents": True}
    response = _post(client, f"{api}{path}", body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["id"] and data["model"]
    expected = tiny_reranker.rerank(QUERY, TEXTS, top_n=3)
    assert [r["index"] for r in data["results"]] == [r.index for r in expected]
    for result, want in zip(data["results"], expected, strict=True):
        assert set(result) == {"index", "relevance_score", "document"}
        assert math.isclose(result["relevance_score"], want.score, abs_tol=TOL)
        assert result["document"] == {"text": TEXTS[want.index]}


def test_compat_without_documents_and_top_n_zero(api: str, client: httpx.Client, tiny_reranker: Any) -> None:
    body = {"query": QUERY, "documents": TEXTS, "top_n": 0, "return_documents": False}
    data = _post(client, f"{api}/v1/rerank", body).json()
    _check_ranked(data["results"], tiny_reranker.score(QUERY, TEXTS), key="relevance_score")
    assert all(r.get("document") is None for r in data["results"])


def test_compat_jina_objects_with_images(api: str, client: httpx.Client, tiny_reranker: Any) -> None:
    blue, gray = make_image((20, 20, 220), (90, 60), 20), make_image((128,) * 3)
    body = {
        "query": QUERY,
        "documents": [{"text": TEXTS[0]}, {"image": b64(blue)}, {"image": data_uri(gray)}],
        "return_documents": True,
    }
    data = _post(client, f"{api}/v1/rerank", body).json()
    expected = tiny_reranker.score(QUERY, [TEXTS[0], {"image": blue}, {"image": gray}])
    _check_ranked(data["results"], expected, key="relevance_score")
    echoed = {r["index"]: r["document"] for r in data["results"]}
    assert echoed[1] == {"text": None, "images": [b64(blue)]}


def test_compat_vllm_content_parts(api: str, client: httpx.Client, tiny_reranker: Any) -> None:
    red, blue = make_image((220, 20, 20)), make_image((20, 20, 220), (90, 60), 20)
    body = {
        "query": {
            "content": [{"type": "text", "text": QUERY}, {"type": "image_url", "image_url": {"url": data_uri(red)}}]
        },
        "documents": {
            "content": [
                {"type": "text", "text": TEXTS[0]},
                {"type": "image_url", "image_url": {"url": data_uri(blue)}},
            ]
        },
    }
    data = _post(client, f"{api}/v1/rerank", body).json()
    expected = tiny_reranker.score({"text": QUERY, "image": red}, [TEXTS[0], {"image": blue}])
    _check_ranked(data["results"], expected, key="relevance_score")

    per_document = {
        "query": QUERY,
        "documents": [{"content": [{"type": "text", "text": "caption"}, body["documents"]["content"][1]]}],
    }
    data = _post(client, f"{api}/v1/rerank", per_document).json()
    expected = tiny_reranker.score(QUERY, [{"text": "caption", "image": blue}])
    _check_ranked(data["results"], expected, key="relevance_score")


# ---------------------------------------------------------------- bad requests


def _outside(image_root: Path) -> str:
    return str(image_root.parent / "outside.png")


BAD_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    # (id, endpoint, body, status, fragment of the message)
    (
        "traversal",
        "/api/rerank",
        {"query": "q", "documents": [{"image": "../outside.png"}]},
        400,
        "outside the allowed image directory",
    ),
    (
        "absolute-path",
        "/api/rerank",
        {"query": "q", "documents": [{"image": "/etc/passwd"}]},
        400,
        "outside the allowed image directory",
    ),
    (
        "symlink-out",
        "/api/rerank",
        {"query": "q", "documents": [{"image": "link.png"}]},
        400,
        "outside the allowed image directory",
    ),
    (
        "file-url",
        "/api/rerank",
        {"query": "q", "documents": [{"image": "file:///etc/hostname"}]},
        400,
        "outside the allowed image directory",
    ),
    (
        "query-traversal",
        "/api/rerank",
        {"query": {"image": "../../../../etc/passwd"}, "documents": ["x"]},
        400,
        "query: path",
    ),
    (
        "url-disabled",
        "/api/rerank",
        {"query": "q", "documents": [{"image": "http://127.0.0.1:9/x.png"}]},
        400,
        "URLs are not allowed",
    ),
    (
        "vllm-url-disabled",
        "/v1/rerank",
        {
            "query": "q",
            "documents": {"content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        },
        400,
        "URLs are not allowed",
    ),
    ("bad-base64", "/api/rerank", {"query": "q", "documents": [{"image": "A"}]}, 400, "not valid base64"),
    (
        "bad-data-uri",
        "/api/rerank",
        {"query": "q", "documents": [{"image": "data:image/png;base64,@@@"}]},
        400,
        "not valid base64",
    ),
    (
        "not-an-image",
        "/api/rerank",
        {"query": "q", "documents": [{"image": "aGVsbG8gd29ybGQh"}]},
        400,
        "not a readable image",
    ),
    ("empty-query", "/api/rerank", {"query": {"text": "  "}, "documents": ["x"]}, 400, "query: is empty"),
    ("empty-documents", "/api/rerank", {"query": "q", "documents": ["ok", "", {}]}, 400, "document 1: is empty"),
    (
        "image-and-images",
        "/api/rerank",
        {"query": "q", "documents": [{"image": "QQ==", "images": ["QQ=="]}]},
        400,
        "either 'image' or 'images'",
    ),
    (
        "unknown-task",
        "/api/rerank",
        {"query": "q", "documents": ["x"], "task": "astrology"},
        400,
        "unknown task template 'astrology'",
    ),
    (
        "task-and-instruction",
        "/v1/rerank",
        {"query": "q", "documents": ["x"], "task": "web_search", "instruction": "i"},
        400,
        "not both",
    ),
    (
        "too-many",
        "/api/rerank",
        {"query": "q", "documents": ["d"] * (MAX_DOCUMENTS + 1)},
        413,
        f"the limit is {MAX_DOCUMENTS}",
    ),
    ("too-many-compat", "/v1/rerank", {"query": "q", "documents": ["d"] * (MAX_DOCUMENTS + 1)}, 413, "documents"),
    ("query-number", "/api/rerank", {"query": 1, "documents": ["x"]}, 422, "query"),
    ("documents-string", "/api/rerank", {"query": "q", "documents": "x"}, 422, "documents"),
    ("text-number", "/api/rerank", {"query": "q", "documents": [{"text": 5}]}, 422, "documents.0.text"),
    ("top-n-string", "/api/rerank", {"query": "q", "documents": ["x"], "top_n": "2"}, 422, "top_n"),
    ("top-n-negative", "/api/rerank", {"query": "q", "documents": ["x"], "top_n": -1}, 422, "top_n"),
    ("top-n-negative-compat", "/v1/rerank", {"query": "q", "documents": ["x"], "top_n": -1}, 422, "top_n"),
    ("unknown-field", "/api/rerank", {"query": "q", "documents": ["x"], "temperature": 1}, 422, "temperature"),
    ("unknown-doc-key", "/api/rerank", {"query": "q", "documents": [{"txt": "x"}]}, 422, "documents.0.txt"),
    (
        "both-forms",
        "/api/rerank",
        {"query": "q", "documents": ["x"], "document": "y"},
        422,
        "exactly one of 'documents'",
    ),
    ("neither-form", "/api/rerank", {"query": "q"}, 422, "exactly one of 'documents'"),
    ("missing-query", "/v1/rerank", {"documents": ["x"]}, 422, "query"),
    (
        "bad-part",
        "/v1/rerank",
        {"query": "q", "documents": {"content": [{"type": "text"}]}},
        422,
        "'text' part needs 'text'",
    ),
]


@pytest.mark.parametrize(
    ("endpoint", "body", "status", "fragment"), [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_requests_get_a_4xx_naming_the_problem(
    api: str, client: httpx.Client, endpoint: str, body: Any, status: int, fragment: str
) -> None:
    response = _post(client, f"{api}{endpoint}", body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and fragment in detail, detail


def test_image_over_the_pixel_limit(api: str, client: httpx.Client) -> None:
    big = make_image((10, 10, 10), size=(400, 400))  # 160000 pixels, compressed to a few hundred bytes
    response = _post(client, f"{api}/api/rerank", {"query": "q", "documents": [{"image": b64(big)}]})
    assert response.status_code == 400
    assert "pixels" in response.json()["detail"] and "document 0" in response.json()["detail"]


def test_several_bad_documents_are_all_listed(api: str, client: httpx.Client) -> None:
    body = {"query": "q", "documents": ["fine", {"image": "A"}, "also fine", {"image": "../outside.png"}]}
    response = _post(client, f"{api}/api/rerank", body)
    assert response.status_code == 400
    problems = response.json()["problems"]
    assert [p.split(":")[0] for p in problems] == ["document 1", "document 3"]


def test_malformed_json_and_wrong_content_type(api: str, client: httpx.Client) -> None:
    response = client.post(f"{api}/api/rerank", content=b'{"query": ', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"] == "body: invalid JSON at line 1 column 11: expecting value"
    response = client.post(
        f"{api}/v1/rerank", content=b'{"query": "q",\n "documents": [1,]}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and "invalid JSON at line 2 column 18" in response.json()["detail"]
    response = client.post(f"{api}/api/rerank", content=b"query=q", headers={"content-type": "text/plain"})
    assert 400 <= response.status_code < 500 and "Traceback" not in response.text


def test_oversize_body_is_refused(api: str, client: httpx.Client) -> None:
    big = {"query": "q", "documents": ["x" * (MAX_BODY + 10)]}
    response = _post(client, f"{api}/api/rerank", big)
    assert response.status_code == 413 and "over the limit" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
        yield b'{"query": "q", "documents": ["'
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"y" * 4096
        yield b'"]}'

    response = client.post(f"{api}/api/rerank", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over the limit" in response.json()["detail"]


def test_loopback_and_private_urls_are_refused_without_a_request(remote_api: str, client: httpx.Client) -> None:
    """Each URL is refused by the address check (naming the address), not by a failed connection."""
    with CountingImageServer(png_bytes(make_image((200, 0, 0)))) as target:
        for url, host, addresses in (
            (f"http://127.0.0.1:{target.port}/cat.png", "127.0.0.1", {"127.0.0.1"}),
            (f"http://localhost:{target.port}/cat.png", "localhost", {"127.0.0.1", "::1"}),
            (f"http://[::1]:{target.port}/cat.png", "::1", {"::1"}),
            ("http://10.1.2.3/cat.png", "10.1.2.3", {"10.1.2.3"}),
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", {"169.254.169.254"}),
        ):
            response = _post(client, f"{remote_api}/api/rerank", {"query": "q", "documents": [{"image": url}]})
            assert response.status_code == 400, (url, response.text)
            detail = response.json()["detail"]
            refusal = re.fullmatch(
                rf"document 0: cannot fetch image URL {re.escape(url)}: refusing to fetch from "
                rf"{re.escape(repr(host))}: it resolves to a non-public address \((?P<address>[^)]+)\)",
                detail,
            )
            assert refusal is not None, (url, detail)
            assert refusal["address"] in addresses, (url, detail)
        assert target.hits == 0


def test_server_keeps_serving_after_bad_requests(api: str, client: httpx.Client, tiny_reranker: Any) -> None:
    for _, endpoint, body, _, _ in BAD_REQUESTS[:6]:
        _post(client, f"{api}{endpoint}", body)
    response = _post(client, f"{api}/api/rerank", {"query": QUERY, "documents": TEXTS})
    _check_ranked(response.json()["results"], tiny_reranker.score(QUERY, TEXTS))


def test_unexpected_engine_failure_is_a_plain_500(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with serve_app(create_app(BrokenReranker())) as base, caplog.at_level(logging.ERROR):
        for _ in range(2):
            response = _post(client, f"{base}/api/rerank", {"query": "q", "documents": ["x"]})
            assert response.status_code == 500
            assert response.json() == {"detail": "internal error while scoring; the server log has the details"}
            assert "secret-internal-detail" not in response.text
        assert client.get(f"{base}/health").status_code == 200
    assert any("secret-internal-detail" in str(r.exc_info) for r in caplog.records if r.exc_info)


# ---------------------------------------------------------------- concurrency


def test_fifty_concurrent_requests_all_answered_correctly(api: str, tiny_reranker: Any) -> None:
    red = make_image((220, 20, 20))
    jobs = []
    for i in range(50):
        documents: list[Any] = [f"{TEXTS[i % 4]} number {i}", TEXTS[(i + 1) % 4]]
        if i % 5 == 0:
            documents.append({"image": b64(red)})
        jobs.append((f"{QUERY} {i}", documents, i % 7 == 3))  # every 7th request is bad
    barrier = threading.Barrier(len(jobs), timeout=60)

    def call(job: tuple[str, list[Any], bool]) -> httpx.Response:
        query, documents, bad = job
        body = {"query": query, "documents": [*documents, {"image": "A"}] if bad else documents}
        with httpx.Client(timeout=120) as c:
            barrier.wait()
            return c.post(f"{api}/api/rerank", json=body)

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        responses = list(pool.map(call, jobs, timeout=300))
    for (query, documents, bad), response in zip(jobs, responses, strict=True):
        if bad:
            assert response.status_code == 400 and "not valid base64" in response.json()["detail"]
            continue
        assert response.status_code == 200, response.text
        engine_docs = [d if isinstance(d, str) else {"image": red} for d in documents]
        _check_ranked(response.json()["results"], tiny_reranker.score(query, engine_docs))


# ---------------------------------------------------------------- settings


def test_settings_refuse_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="max_documents"):
        ServiceSettings(max_documents=0)
    with pytest.raises(ConfigurationError, match="image_timeout"):
        ServiceSettings(image_timeout=0)
    with pytest.raises(ConfigurationError, match="not an existing directory"):
        ServiceSettings(image_root=tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="image_policy"):
        service_reranker(ServiceSettings(), model="m", image_policy=None)


def test_settings_make_a_strict_policy(tmp_path: Path) -> None:
    policy = ServiceSettings().image_policy()
    assert (policy.allow_remote, policy.allow_private_addresses, policy.allow_local_files) == (False, False, False)
    policy = ServiceSettings(allow_remote_images=True, image_root=tmp_path, max_image_bytes=1000).image_policy()
    assert (policy.allow_remote, policy.allow_private_addresses, policy.allow_local_files) == (True, False, True)
    assert policy.local_root == tmp_path.resolve() and policy.max_bytes == 1000
    assert service_reranker(ServiceSettings(), model="m").image_policy == ServiceSettings().image_policy()


def test_app_warns_when_the_engine_policy_is_not_the_services(
    tiny_reranker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lychee_integrations.service.app"):
        create_app(tiny_reranker, ServiceSettings())
    assert "image policy" in caplog.text
