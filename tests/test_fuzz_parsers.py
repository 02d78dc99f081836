"""Fuzzing the request parsers: the HTTP API's JSON bodies and the CLI's documents files.

Whatever arrives, the API answers 200 or a 4xx whose ``detail`` names the problem (never
a 500 or a traceback), and the CLI either reads the documents or raises its usage error.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_image, png_bytes
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lychee_integrations.cli.documents import LabelledDocument, UsageError, documents_from_args

PNG_B64 = base64.b64encode(png_bytes(make_image((5, 100, 200), size=(30, 20)))).decode()

scalars = st.none() | st.booleans() | st.integers(-5, 500) | st.floats(allow_nan=False) | st.text(max_size=12)
image_values = (
    st.sampled_from(
        [
            PNG_B64,
            "data:image/png;base64," + PNG_B64,
            "data:image/png;base64,!!",
            "/etc/hostname",
            "../x.png",
            "http://127.0.0.1:9/a.png",
            "file:///etc/passwd",
            "",
            "aGVsbG8=",
        ]
    )
    | scalars
)
items = st.one_of(
    st.text(max_size=30),
    st.fixed_dictionaries(
        {},
        optional={
            "text": st.text(max_size=20) | scalars,
            "image": image_values,
            "images": st.lists(image_values, max_size=2),
        },
    ),
    st.fixed_dictionaries(
        {
            "content": st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["text", "image_url", "video"])},
                    optional={"text": st.text(max_size=10), "image_url": st.fixed_dictionaries({"url": image_values})},
                ),
                max_size=2,
            )
        }
    ),
    scalars,
)
good_items = st.one_of(
    st.text(min_size=1, max_size=30),
    st.fixed_dictionaries({"text": st.text(max_size=20)}, optional={"image": image_values}),
    st.fixed_dictionaries({"image": image_values}),
)
shaped = st.fixed_dictionaries(
    {"query": good_items, "documents": st.lists(good_items, min_size=1, max_size=4)},
    optional={"top_n": st.integers(-1, 5), "task": st.sampled_from(["web_search", "product_search", "nope"])},
)
free_form = st.fixed_dictionaries(
    {},
    optional={
        "query": items,
        "documents": st.lists(items, max_size=4) | items,
        "document": items,
        "top_n": scalars,
        "task": st.sampled_from(["web_search", "product_search", "nope"]) | scalars,
        "instruction": st.text(max_size=20) | scalars,
        "model": st.text(max_size=10),
        "return_documents": scalars,
        "surprise": scalars,
    },
)
bodies = st.one_of(shaped, free_form)


@pytest.fixture(scope="module")
def client(tiny_checkpoint: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from lychee_integrations.service import service_reranker
    from lychee_integrations.service.app import create_app
    from lychee_integrations.service.settings import ServiceSettings

    service_settings = ServiceSettings(max_documents=3)
    reranker = service_reranker(service_settings, model=str(tiny_checkpoint), device="cpu")
    with TestClient(create_app(reranker, service_settings), raise_server_exceptions=False) as test_client:
        yield test_client


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(body=bodies, endpoint=st.sampled_from(["/api/rerank", "/v1/rerank"]))
def test_api_never_answers_500(client: Any, body: dict[str, Any], endpoint: str) -> None:
    response = client.post(endpoint, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 413, 422), (response.status_code, response.text)
    event(f"HTTP {response.status_code}")
    assert "Traceback" not in response.text
    if response.status_code != 200:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_api_survives_raw_bytes(client: Any, raw: bytes) -> None:
    response = client.post("/v1/rerank", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 413, 422)
    assert isinstance(response.json()["detail"], str)


lines_text = st.lists(
    st.one_of(st.text(max_size=40), st.sampled_from(['{"text": "a"}', '{"image": "x.png"}', "[1, 2]", "{", '"s"'])),
    max_size=6,
).map("\n".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=lines_text,
    fmt=st.sampled_from(["auto", "json", "jsonl", "lines", "images"]),
    suffix=st.sampled_from([".json", ".jsonl", ".txt"]),
)
def test_cli_documents_files(tmp_path: Path, text: str, fmt: str, suffix: str) -> None:
    path = tmp_path / f"docs{suffix}"
    path.write_text(text, encoding="utf-8")
    args = argparse.Namespace(documents=[], docs_file=[str(path)], docs_format=fmt)
    try:
        documents = documents_from_args(args)
    except UsageError as exc:
        assert str(exc)
    else:
        assert documents and all(isinstance(d, LabelledDocument) and d.label for d in documents)
