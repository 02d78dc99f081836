"""The ``lychee`` command, run as a subprocess on the tiny checkpoint; rankings are compared with the engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import ACROSS_PROCESSES, cli_server, close, drift, free_port, make_image, png_bytes

from lychee_integrations.instructions import get_template, list_templates
from lychee_integrations.results import score_band

pytestmark = pytest.mark.timeout(600)

QUERY = "a cat on the mat"
TEXTS = ["A cat sits on the mat.", "Paris is the capital of France.", "Red running shoes."]


def lychee(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lychee_integrations.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        input=stdin,
    )


def ranked_json(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> dict[str, Any]:
    result = lychee("rerank", *args, "--json", env=env, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def assert_same_ranking(rows: list[dict[str, Any]], expected: list[Any]) -> None:
    assert [r["index"] for r in rows] == [e.index for e in expected]
    assert drift([r["score"] for r in rows], [e.score for e in expected]) <= ACROSS_PROCESSES, (rows, expected)
    assert all(row["band"] == score_band(row["score"]) for row in rows)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pictures")
    paths = {}
    for name, img in {
        "red": make_image((220, 20, 20)),
        "blue": make_image((20, 20, 220), size=(90, 60), stripe=20),
    }.items():
        paths[name] = folder / f"{name}.png"
        paths[name].write_bytes(png_bytes(img))
    return paths


# ---------------------------------------------------------------- help


def test_help_explains_every_command() -> None:
    result = lychee("--help")
    assert result.returncode == 0
    for command in ("rerank", "templates", "build-tiny", "serve", "ui"):
        assert command in result.stdout
    for command, option in [
        ("rerank", "--doc-image"),
        ("serve", "--image-root"),
        ("ui", "--with-api"),
        ("build-tiny", "path"),
        ("templates", "--json"),
    ]:
        sub = lychee(command, "--help")
        assert sub.returncode == 0 and option in sub.stdout, sub.stdout


def test_console_script_is_installed() -> None:
    """The package's metadata declares ``lychee``, and the installed script runs the CLI."""
    from importlib.metadata import entry_points

    [declared] = entry_points(group="console_scripts", name="lychee")
    assert declared.value == "lychee_integrations.cli:main"
    script = shutil.which("lychee", path=str(Path(sys.executable).parent))
    assert script is not None, f"no 'lychee' script next to {sys.executable}: install the package (pip install -e .)"
    result = subprocess.run([script, "templates"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines() if line and not line[0].isspace()]
    assert names == [t.name for t in list_templates()]


# ---------------------------------------------------------------- rerank


def test_rerank_text_json_matches_engine(tiny_checkpoint: Path, tiny_reranker: Any) -> None:
    args = ["--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "--query", QUERY]
    data = ranked_json(*args, *[a for t in TEXTS for a in ("--doc", t)])
    assert data["model"] == str(tiny_checkpoint)
    assert_same_ranking(data["results"], tiny_reranker.rerank(QUERY, TEXTS))
    assert [r["document"] for r in sorted(data["results"], key=lambda r: r["index"])] == TEXTS


def test_rerank_table_lists_the_engine_ranking(tiny_checkpoint: Path, tiny_reranker: Any) -> None:
    result = lychee("rerank", "--model", str(tiny_checkpoint), "-q", QUERY, *[a for t in TEXTS for a in ("-d", t)])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:5] == ["rank", "index", "score", "band", "type"]
    rows = [line.split() for line in lines[2:]]
    expected = tiny_reranker.rerank(QUERY, TEXTS)
    assert [int(r[1]) for r in rows] == [e.index for e in expected]
    assert close([float(r[2]) for r in rows], [round(e.score, 4) for e in expected])  # printed to 4 places
    assert [r[3] for r in rows] == [score_band(e.score) for e in expected]


def test_rerank_images_in_command_line_order(
    tiny_checkpoint: Path, tiny_reranker: Any, pictures: dict[str, Path]
) -> None:
    data = ranked_json(
        "--model", str(tiny_checkpoint),
        "--query", QUERY, "--query-image", str(pictures["red"]),
        "--doc", TEXTS[0],
        "--doc-image", str(pictures["blue"]),
        "--doc-text-image", TEXTS[2], str(pictures["red"]),
        "--doc", TEXTS[1],
        "--task", "product_search", "--top-n", "3",
    )  # fmt: skip
    documents = [TEXTS[0], {"image": pictures["blue"]}, {"text": TEXTS[2], "image": pictures["red"]}, TEXTS[1]]
    expected = tiny_reranker.rerank(
        {"text": QUERY, "images": [pictures["red"]]}, documents, task="product_search", top_n=3
    )
    assert_same_ranking(data["results"], expected)
    assert data["instruction"] == get_template("product_search").instruction
    kinds = {r["index"]: r["type"] for r in data["results"]}
    assert all(kinds[i] == ["text", "image", "text+image", "text"][i] for i in kinds)


def test_rerank_documents_from_files(
    tiny_checkpoint: Path, tiny_reranker: Any, pictures: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "near.png").write_bytes(pictures["red"].read_bytes())
    (tmp_path / "docs.json").write_text(json.dumps({"documents": [TEXTS[0], {"image": str(pictures["blue"])}]}))
    (tmp_path / "docs.jsonl").write_text(  # a relative image path is looked up next to the file
        json.dumps({"text": TEXTS[1], "images": ["near.png"]}) + "\n\n" + json.dumps(TEXTS[2]) + "\n"
    )
    (tmp_path / "docs.txt").write_text(f"{TEXTS[2]}\n\n{TEXTS[0]}\n")
    (tmp_path / "query.txt").write_text(QUERY + "\n")
    data = ranked_json(
        "--model", str(tiny_checkpoint), "--query-file", str(tmp_path / "query.txt"),
        "--doc", "first from the command line",
        "--docs-file", str(tmp_path / "docs.json"),
        "--docs", str(tmp_path / "docs.jsonl"),
        "--docs-file", str(tmp_path / "docs.txt"),
    )  # fmt: skip
    documents = [
        "first from the command line",
        TEXTS[0],
        {"image": pictures["blue"]},
        {"text": TEXTS[1], "images": [pictures["red"]]},
        TEXTS[2],
        TEXTS[2],
        TEXTS[0],
    ]
    assert_same_ranking(data["results"], tiny_reranker.rerank(QUERY, documents))
    sources = {r["index"]: r["source"] for r in data["results"]}
    assert sources[4].endswith("docs.jsonl line 3") and sources[6].endswith("docs.txt line 3")


def test_readme_main_command(tiny_checkpoint: Path, tiny_reranker: Any) -> None:
    products = Path(__file__).resolve().parents[1] / "examples" / "data" / "products.jsonl"
    if not products.is_file():
        pytest.skip("examples/data/products.jsonl is not in this checkout")
    args = ["--task", "product_search", "--query", "red running shoes", "--docs", str(products)]
    data = ranked_json(*args, env={"LYCHEE_MODEL": str(tiny_checkpoint)})
    documents = []
    for line in products.read_text().splitlines():
        if line.strip():
            doc = json.loads(line)
            if "image" in doc:
                doc["image"] = products.parent / doc["image"]
            documents.append(doc)
    expected = tiny_reranker.rerank("red running shoes", documents, task="product_search")
    assert_same_ranking(data["results"], expected)


def test_rerank_image_list_from_stdin(tiny_checkpoint: Path, tiny_reranker: Any, pictures: dict[str, Path]) -> None:
    listing = f"{pictures['red']}\n{pictures['blue']}\n"
    data = ranked_json(
        "--model", str(tiny_checkpoint), "--query", QUERY, "--docs-file", "-", "--docs-format", "images", stdin=listing
    )
    expected = tiny_reranker.rerank(QUERY, [{"image": pictures["red"]}, {"image": pictures["blue"]}])
    assert_same_ranking(data["results"], expected)


def test_model_comes_from_lychee_model_env(tiny_checkpoint: Path, tiny_reranker: Any) -> None:
    data = ranked_json(
        "--query", QUERY, "--doc", TEXTS[0], "--doc", TEXTS[1], env={"LYCHEE_MODEL": str(tiny_checkpoint)}
    )
    assert data["model"] == str(tiny_checkpoint)
    assert_same_ranking(data["results"], tiny_reranker.rerank(QUERY, TEXTS[:2]))


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--top-n", "0"], "argument --top-n"),
        (["--doc-image", "missing.png"], "argument --doc-image: image file not found"),
        (["--doc-text-image", "caption", "missing.png"], "argument --doc-text-image"),
        (["--query-image", "missing.png"], "argument --query-image"),
        (["--task", "astrology"], "argument --task: unknown task template 'astrology'"),
        (["--task", "web_search", "--instruction", "x"], "not allowed with argument"),
        (["--max-length", "ten"], "argument --max-length"),
        (["--device", "gpu"], "argument --device"),
        (["--docs-file", "missing.jsonl"], "argument --docs-file: cannot read missing.jsonl"),
        (["--docs-format", "xml"], "argument --docs-format"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(tiny_checkpoint: Path, args: list[str], fragment: str) -> None:
    result = lychee("rerank", "--model", str(tiny_checkpoint), "--query", QUERY, "--doc", "d", *args)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr


def test_missing_query_or_documents(tiny_checkpoint: Path) -> None:
    result = lychee("rerank", "--model", str(tiny_checkpoint), "--doc", "d")
    assert result.returncode == 2 and "give a query" in result.stderr
    result = lychee("rerank", "--model", str(tiny_checkpoint), "--query", QUERY)
    assert result.returncode == 2 and "give documents" in result.stderr


def test_bad_documents_file_and_unreadable_model(tiny_checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"fine"\n{"text": \n')
    result = lychee("rerank", "--model", str(tiny_checkpoint), "--query", QUERY, "--docs-file", str(bad))
    assert result.returncode == 2 and "bad.jsonl line 2 is not valid JSON" in result.stderr
    empty = tmp_path / "empty.json"
    empty.write_text('[{"text": "ok"}, {"text": "   "}]')
    result = lychee("rerank", "--model", str(tiny_checkpoint), "--query", QUERY, "--docs-file", str(empty))
    assert result.returncode == 2 and "empty.json item 1" in result.stderr and "Traceback" not in result.stderr
    result = lychee("rerank", "--model", str(tmp_path / "no-such-model"), "--query", QUERY, "--doc", "d")
    assert (
        result.returncode == 3
        and "no checkpoint directory at" in result.stderr
        and "lychee build-tiny" in result.stderr
    )
    assert "usage:" not in result.stderr and "Traceback" not in result.stderr


def test_bad_service_arguments() -> None:
    for args, fragment in [
        (["serve", "--max-body-size", "12XB"], "argument --max-body-size"),
        (["serve", "--port", "70000"], "argument --port"),
        (["serve", "--image-root", "/no/such/dir"], "argument --image-root"),
        (["ui", "--max-documents", "-1"], "argument --max-documents"),
        (["frobnicate"], "invalid choice"),
    ]:
        result = lychee(*args)
        assert result.returncode == 2 and fragment in result.stderr, (args, result.stderr)


# ---------------------------------------------------------------- other commands


def test_templates_lists_the_registry() -> None:
    result = lychee("templates")
    assert result.returncode == 0
    for template in list_templates():
        assert template.name in result.stdout and template.instruction in result.stdout
    listed = json.loads(lychee("templates", "--json").stdout)
    assert [t["name"] for t in listed] == [t.name for t in list_templates()]


def test_build_tiny_makes_a_usable_checkpoint(tmp_path: Path, tiny_reranker: Any) -> None:
    target = tmp_path / "tiny"
    result = lychee("build-tiny", str(target))
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stdout and (target / "config.json").is_file()
    # Same builder, same seed: the same model as the test session's tiny checkpoint.
    data = ranked_json("--model", str(target), "--query", QUERY, *[a for t in TEXTS for a in ("--doc", t)])
    assert_same_ranking(data["results"], tiny_reranker.rerank(QUERY, TEXTS))


@pytest.mark.slow
def test_serve_answers_both_endpoints(tiny_checkpoint: Path, tiny_reranker: Any) -> None:
    port = free_port()
    args = ["serve", "--model", str(tiny_checkpoint), "--device", "cpu", "--port", str(port), "--max-documents", "3"]
    with cli_server(args, port=port) as base:
        response = httpx.post(f"{base}/v1/rerank", json={"query": QUERY, "documents": TEXTS}, timeout=60)
        assert response.status_code == 200, response.text
        expected = tiny_reranker.rerank(QUERY, TEXTS)
        assert [r["index"] for r in response.json()["results"]] == [e.index for e in expected]
        too_many = httpx.post(f"{base}/api/rerank", json={"query": QUERY, "documents": TEXTS * 2}, timeout=60)
        assert too_many.status_code == 413
        path = httpx.post(f"{base}/api/rerank", json={"query": QUERY, "documents": [{"image": "../../etc/passwd"}]})
        assert path.status_code == 400 and "not allowed" in path.json()["detail"]


@pytest.mark.slow
def test_ui_with_api_serves_page_and_api(tiny_checkpoint: Path) -> None:
    port = free_port()
    with cli_server(["ui", "--with-api", "--model", str(tiny_checkpoint), "--port", str(port)], port=port) as base:
        page = httpx.get(f"{base}/", follow_redirects=True, timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower() and str(page.url).endswith("/ui/")
        response = httpx.post(f"{base}/api/rerank", json={"query": QUERY, "document": TEXTS[0]}, timeout=60)
        assert response.status_code == 200 and 0.0 <= response.json()["score"] <= 1.0
