"""The web page, driven in a real headless Chromium on the tiny checkpoint.

The table the page shows is read back from the browser and compared with the engine's
own ranking of the same inputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from service_helpers import LOOPBACK, make_image, no_internet, png_bytes, serve_app

from lychee_integrations.instructions import get_template
from lychee_integrations.results import score_band
from lychee_integrations.service import ServiceSettings, create_ui_app, service_reranker
from lychee_integrations.service.webui import COLUMNS, split_documents

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUERY = "a cat on the mat"
TEXTS = ["A cat sits on the mat.", "Paris is the capital of France.", "Red running shoes, size 42."]
WAIT_MS = 60_000

pytestmark = pytest.mark.timeout(600)


# ---------------------------------------------------------------- without a browser


def test_split_documents() -> None:
    assert split_documents("a\n---\nb\n  ---  \n\nc\n---\n---\n") == ["a", "b", "c"]
    assert split_documents("one document\nwith --- inside a line") == ["one document\nwith --- inside a line"]
    assert split_documents("") == [] and split_documents(None) == []


def test_ui_with_api_shares_one_server(tiny_checkpoint: Path) -> None:
    settings = ServiceSettings()
    engine = service_reranker(settings, model=str(tiny_checkpoint), device="cpu", dtype="float32")
    with serve_app(create_ui_app(engine, settings, with_api=True)) as base:
        root = httpx.get(f"{base}/", follow_redirects=False)
        assert root.status_code in (302, 307) and root.headers["location"] == "/ui/"
        page = httpx.get(f"{base}/ui/", timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
        api = httpx.post(f"{base}/api/rerank", json={"query": QUERY, "documents": TEXTS}, timeout=60)
        assert api.status_code == 200 and len(api.json()["results"]) == len(TEXTS)


# ---------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def ui_url(tiny_checkpoint: Path) -> Iterator[str]:
    settings = ServiceSettings(max_documents=10)
    engine = service_reranker(settings, model=str(tiny_checkpoint), device="cpu", dtype="float32").load()
    # Gradio must not phone home, from the server side either.
    with no_internet() as attempts, serve_app(create_ui_app(engine, settings)) as base:
        yield base
    assert attempts == [], f"the server tried to reach the internet: {attempts}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium package (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Any, ui_url: str) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).hostname or ""))
    page.goto(ui_url + "/")
    page.locator("#run").wait_for()
    yield page
    context.close()
    assert hosts <= {LOOPBACK, ""}, f"the page reached beyond loopback: {hosts}"


def run_and_read(page: Any) -> list[dict[str, str]]:
    """Click Run, wait for the summary, and read the results table row by row."""
    page.locator("#run").click()
    page.locator("#summary").get_by_text(re.compile("ranked|Score")).wait_for()
    page.locator('#results [data-testid="cell-0-0"]').wait_for()
    rows = []
    r = 0
    while page.locator(f'#results [data-testid="cell-{r}-0"]').count():
        cells = [page.locator(f'#results [data-testid="cell-{r}-{c}"]').inner_text().strip() for c in range(5)]
        rows.append(dict(zip(COLUMNS, cells, strict=True)))
        r += 1
    return rows


def assert_table_is_engine_ranking(rows: list[dict[str, str]], expected: list[Any], kinds: list[str]) -> None:
    assert [int(row["Rank"]) for row in rows] == list(range(1, len(expected) + 1))
    for row, want in zip(rows, expected, strict=True):
        assert math.isclose(float(row["Score"]), want.score, abs_tol=6e-5), (row, want)
        assert row["Band"] == score_band(want.score)
        assert row["Type"] == kinds[want.index]


@pytest.mark.browser
def test_rerank_text_documents(page: Any, tiny_reranker: Any) -> None:
    page.locator("#query-text textarea").fill(QUERY)
    page.locator("#documents-text textarea").fill("\n---\n".join(TEXTS))
    rows = run_and_read(page)
    expected = tiny_reranker.rerank(QUERY, TEXTS)
    assert_table_is_engine_ranking(rows, expected, ["text"] * 3)
    assert [row["Document"] for row in rows] == [TEXTS[e.index] for e in expected]
    assert f"{len(TEXTS)} documents ranked" in page.locator("#summary").inner_text()


@pytest.mark.browser
def test_rerank_text_and_uploaded_images(page: Any, tiny_reranker: Any, tmp_path: Path) -> None:
    red, blue = make_image((220, 20, 20)), make_image((20, 20, 220), size=(90, 60), stripe=20)
    files = []
    for name, img in (("red.png", red), ("blue.png", blue)):
        files.append(tmp_path / name)
        files[-1].write_bytes(png_bytes(img))
    page.locator("#query-text textarea").fill(QUERY)
    page.locator("#documents-text textarea").fill(f"{TEXTS[0]}\n---\n{TEXTS[1]}")
    page.locator("#document-images input[type=file]").set_input_files([str(f) for f in files])
    for f in files:
        page.locator("#document-images").get_by_text(f.stem, exact=True).first.wait_for()
    rows = run_and_read(page)
    documents = [TEXTS[0], TEXTS[1], {"image": red}, {"image": blue}]
    expected = tiny_reranker.rerank(QUERY, documents)
    assert_table_is_engine_ranking(rows, expected, ["text", "text", "image", "image"])
    by_rank = [row["Document"] for row in rows]
    assert by_rank.index("[image: red.png]") == [e.index for e in expected].index(2)


@pytest.mark.browser
def test_score_one_document_with_a_template(page: Any, tiny_reranker: Any, tmp_path: Path) -> None:
    picture = tmp_path / "shoe.png"
    shoe = make_image((200, 30, 30), size=(80, 80), stripe=25)
    picture.write_bytes(png_bytes(shoe))
    page.locator("#template input").click()
    page.get_by_role("option", name=re.compile(r"^product_search")).click()
    instruction = get_template("product_search").instruction
    page.wait_for_function("text => document.querySelector('#instruction textarea').value === text", arg=instruction)
    page.locator("#mode").get_by_text("Score one document").click()
    page.locator("#query-text textarea").fill("red running shoes")
    page.locator("#documents-text textarea").fill("Red shoe, light sole")
    page.locator("#document-images input[type=file]").set_input_files([str(picture)])
    page.locator("#document-images").get_by_text("shoe", exact=True).first.wait_for()
    rows = run_and_read(page)
    expected = tiny_reranker.rerank(
        "red running shoes", [{"text": "Red shoe, light sole", "image": shoe}], task="product_search"
    )
    assert_table_is_engine_ranking(rows, expected, ["text+image"])
    assert f"Score: {expected[0].score:.4f}" in page.locator("#summary").inner_text()


@pytest.mark.browser
def test_errors_are_shown_and_the_page_keeps_working(page: Any, tiny_reranker: Any) -> None:
    page.locator("#documents-text textarea").fill(TEXTS[0])
    page.locator("#run").click()
    page.get_by_text("Give a query").first.wait_for()
    assert "Traceback" not in page.content()
    page.locator("#query-text textarea").fill(QUERY)
    rows = run_and_read(page)
    assert_table_is_engine_ranking(rows, tiny_reranker.rerank(QUERY, TEXTS[:1]), ["text"])


@pytest.mark.browser
def test_page_mounted_next_to_the_api(browser: Any, tiny_checkpoint: Path, tiny_reranker: Any) -> None:
    settings = ServiceSettings()
    engine = service_reranker(settings, model=str(tiny_checkpoint), device="cpu", dtype="float32")
    with serve_app(create_ui_app(engine, settings, with_api=True)) as base:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(base + "/")  # redirects to /ui/
            page.locator("#run").wait_for()
            assert urlsplit(page.url).path == "/ui/"
            page.locator("#query-text textarea").fill(QUERY)
            page.locator("#documents-text textarea").fill("\n---\n".join(TEXTS))
            rows = run_and_read(page)
        finally:
            context.close()
    assert_table_is_engine_ranking(rows, tiny_reranker.rerank(QUERY, TEXTS), ["text"] * 3)


@pytest.mark.browser
def test_page_on_a_qwen3_vl_checkpoint(browser: Any, tiny_qwen3_vl_checkpoint: Path) -> None:
    """The same page, unchanged, on the second model family: its table is that engine's ranking."""
    settings = ServiceSettings(max_documents=10)
    engine = service_reranker(settings, model=str(tiny_qwen3_vl_checkpoint), device="cpu", dtype="float32").load()
    with serve_app(create_ui_app(engine, settings)) as base:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(base + "/")
        page.locator("#run").wait_for()
        page.locator("#query-text textarea").fill(QUERY)
        page.locator("#documents-text textarea").fill("\n---\n".join(TEXTS))
        instruction = page.locator("#instruction textarea").input_value()
        rows = run_and_read(page)
        context.close()
    expected = engine.rerank(QUERY, TEXTS, instruction=instruction)
    assert_table_is_engine_ranking(rows, expected, ["text"] * 3)


# ---------------------------------------------------------------- thumbnails, text+image documents, errors, model


def upload(page: Any, tmp_path: Path, pictures: dict[str, Any]) -> list[Path]:
    files = []
    for name, img in pictures.items():
        files.append(tmp_path / name)
        files[-1].write_bytes(png_bytes(img) if not isinstance(img, bytes) else img)
    page.locator("#document-images input[type=file]").set_input_files([str(f) for f in files])
    for f in files:
        page.locator("#document-images").get_by_text(f.stem, exact=True).first.wait_for()
    return files


def thumbnails(page: Any) -> int:
    return int(page.locator("#thumbnails img").count())


@pytest.mark.browser
def test_rerank_builds_a_text_and_image_document_and_shows_thumbnails(
    page: Any, tiny_reranker: Any, tmp_path: Path
) -> None:
    red, blue = make_image((220, 20, 20)), make_image((20, 20, 220), size=(90, 60), stripe=20)
    upload(page, tmp_path, {"red.png": red, "blue.png": blue})
    page.locator("#query-text textarea").fill(QUERY)
    page.locator("#documents-text textarea").fill(f"{TEXTS[2]}\nimage: red.png\n---\n{TEXTS[1]}")
    rows = run_and_read(page)
    documents = [{"text": TEXTS[2], "image": red}, TEXTS[1], {"image": blue}]
    expected = tiny_reranker.rerank(QUERY, documents)
    assert_table_is_engine_ranking(rows, expected, ["text+image", "text", "image"])
    assert [row["Document"] for row in rows].count("[image: red.png] " + TEXTS[2]) == 1
    # One thumbnail per document holding an image, in rank order, captioned with its rank and score.
    page.wait_for_function("() => document.querySelectorAll('#thumbnails img').length === 2")
    with_images = [(rank, e) for rank, e in enumerate(expected, start=1) if e.index != 1]
    text = page.locator("#thumbnails").inner_text()
    captions = [f"#{rank} · {e.score:.4f}" for rank, e in with_images]
    assert all(c in text for c in captions) and text.index(captions[0]) < text.index(captions[1]), text


@pytest.mark.browser
def test_an_error_clears_the_previous_results(page: Any, tiny_reranker: Any, tmp_path: Path) -> None:
    upload(page, tmp_path, {"red.png": make_image((220, 20, 20))})
    page.locator("#query-text textarea").fill(QUERY)
    page.locator("#documents-text textarea").fill(TEXTS[0])
    assert len(run_and_read(page)) == 2 and thumbnails(page) == 1
    page.locator("#documents-text textarea").fill(f"{TEXTS[0]}\nimage: green.png")
    page.locator("#run").click()
    page.locator("#summary").get_by_text("green.png, which is not among the uploaded images").wait_for()
    assert "Error:" in page.locator("#summary").inner_text()
    page.wait_for_function("() => !document.querySelector('#results [data-testid=\"cell-0-0\"]')")
    assert thumbnails(page) == 0 and "ranked" not in page.locator("#summary").inner_text()


@pytest.mark.browser
def test_the_page_names_the_served_model_and_flags_a_random_one(browser: Any, tiny_checkpoint: Path) -> None:
    settings = ServiceSettings(served_model_name="lychee-under-test")
    engine = service_reranker(settings, model=str(tiny_checkpoint), device="cpu", dtype="float32")
    with serve_app(create_ui_app(engine, settings, with_api=True)) as base:
        served = httpx.get(f"{base}/v1/models", timeout=30).json()["data"][0]["id"]
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(base + "/ui/")
            page.locator("#run").wait_for()
            model = page.locator("#model").inner_text()
            banner = page.locator("#random-banner").inner_text()
        finally:
            context.close()
    assert served == "lychee-under-test" and served in model
    assert str(tiny_checkpoint) not in model and str(tiny_checkpoint.parent) not in model
    assert "random tiny checkpoint" in banner and "mean nothing" in banner


@pytest.mark.browser
def test_a_real_checkpoint_gets_no_banner(browser: Any, tiny_checkpoint: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from lychee_integrations.engine.checkpoint import RANDOM_MARKER

    copy = Path(shutil.copytree(tiny_checkpoint, tmp_path / "unmarked"))
    config = json.loads((copy / "config.json").read_text())
    config.pop(RANDOM_MARKER)
    (copy / "config.json").write_text(json.dumps(config))
    settings = ServiceSettings()
    engine = service_reranker(settings, model=str(copy), device="cpu", dtype="float32")
    with serve_app(create_ui_app(engine, settings)) as base:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(base + "/")
            page.locator("#run").wait_for()
            assert page.locator("#random-banner").count() == 0
            assert "unmarked" in page.locator("#model").inner_text()
        finally:
            context.close()


@pytest.mark.browser
def test_mistakes_are_said_on_the_page_and_never_logged_as_tracebacks(
    browser: Any, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """`lychee ui` as a user runs it: each mistake gets a clear message; the server's log holds no traceback."""
    from service_helpers import cli_process, free_port

    port = free_port()
    args = ["ui", "--model", str(tiny_checkpoint), "--device", "cpu", "--port", str(port)]
    with cli_process(args, port=port) as (process, base):
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(base + "/")
            page.locator("#run").wait_for()
            messages = []
            for query, documents, files in [
                ("", TEXTS[0], {}),  # no query
                (QUERY, "", {}),  # no documents
                (QUERY, f"{TEXTS[0]}\nimage: nowhere.png", {}),  # attaches no upload
                (QUERY, TEXTS[0], {"broken.png": b"this is not a picture"}),  # not an image
            ]:
                page.reload()
                page.locator("#run").wait_for()
                if files:
                    upload(page, tmp_path, files)
                page.locator("#query-text textarea").fill(query)
                page.locator("#documents-text textarea").fill(documents)
                page.locator("#run").click()
                page.locator("#summary").get_by_text("Error:").wait_for()
                messages.append(page.locator("#summary").inner_text())
        finally:
            context.close()
        process.terminate()
        log = process.communicate(timeout=30)[0]
    assert "Give a query" in messages[0] and "Add documents" in messages[1]
    assert "nowhere.png" in messages[2] and "broken.png" not in messages[2]
    assert "image" in messages[3].lower() and "Traceback" not in "".join(messages)
    assert "Traceback" not in log, log
