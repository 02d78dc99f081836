"""The /docs page renders in a real headless Chromium with nothing but the server itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from service_helpers import LOOPBACK, serve_app

from lychee_integrations.service import ServiceSettings, create_app
from lychee_integrations.testing import FakeScorer

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

pytestmark = [pytest.mark.timeout(300), pytest.mark.browser]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium package (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def test_docs_page_renders_air_gapped(browser: Any) -> None:
    app = create_app(FakeScorer(lambda q, d, i: 0.5), ServiceSettings(api_key="docs-key"), title="Lychee reranker")
    with serve_app(app) as base:
        context = browser.new_context()
        outside: list[str] = []

        def only_loopback(route: Any) -> None:
            host = urlsplit(route.request.url).hostname or ""
            if host in (LOOPBACK, ""):
                route.continue_()
            else:  # air-gapped: anything else fails, and is recorded
                outside.append(route.request.url)
                route.abort()

        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.route("**/*", only_loopback)
            page.goto(f"{base}/docs")
            page.locator(".swagger-ui .info .title").get_by_text("Lychee reranker").wait_for()
            page.locator(".opblock-summary-path", has_text="/v1/rerank").first.wait_for()
            assert page.locator(".btn.authorize").count() == 1  # the bearer scheme is offered
            paths = page.locator(".opblock-summary-path").all_inner_texts()
        finally:
            context.close()
    assert outside == []
    assert {"/api/rerank", "/v1/rerank", "/rerank", "/v2/rerank", "/health", "/ready", "/metrics"} <= {
        p.strip().replace("\u200b", "") for p in paths
    }
