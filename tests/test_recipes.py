"""Model families as recipes: selection, explicit choice, defaults, errors, and every front end on Qwen3-VL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import serve_app

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.errors import ConfigurationError, InvalidInputError
from lychee_integrations.recipes import RECIPES, get_recipe, recipe_for

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

INSTRUCTION = "Given a question, retrieve passages that answer it"
DOCS = ["a cat sits on the mat", "a red running shoe", "Paris is the capital of France"]


@pytest.fixture(scope="module")
def qwen3(tiny_qwen3_vl_checkpoint: Path) -> LycheeReranker:
    return LycheeReranker.shared(model=str(tiny_qwen3_vl_checkpoint), device="cpu", dtype="float32")


def _prompt(reranker: LycheeReranker, **kwargs: Any) -> str:
    pair = reranker.encode("cats", [""], **kwargs)[0]
    tokenizer = reranker._get_runtime().model.processor.tokenizer
    return str(tokenizer.decode(list(pair.input_ids), skip_special_tokens=False))


def test_registry_lookups() -> None:
    assert recipe_for("qwen2_5_vl") is get_recipe("lychee")
    assert recipe_for("qwen3_vl") is get_recipe("qwen3-vl")
    assert set(RECIPES) == {"lychee", "qwen3-vl"}
    with pytest.raises(ConfigurationError, match=r"unknown recipe 'monoqwen'.*lychee.*qwen3-vl"):
        get_recipe("monoqwen")
    with pytest.raises(ConfigurationError, match="unknown recipe"):
        LycheeReranker(model="m", recipe="nope")


def test_recipe_is_picked_from_the_checkpoint(qwen3: LycheeReranker, tiny_reranker: LycheeReranker) -> None:
    assert qwen3._get_runtime().encoder.recipe.name == "qwen3-vl"
    assert qwen3._get_runtime().encoder.max_length == 10240
    assert tiny_reranker._get_runtime().encoder.recipe.name == "lychee"
    assert tiny_reranker._get_runtime().encoder.max_length == 3200


def test_default_instruction_and_empty_side_per_family(qwen3: LycheeReranker, tiny_reranker: LycheeReranker) -> None:
    qwen_prompt = _prompt(qwen3)
    assert (
        "<Instruct>: Given a search query, retrieve relevant candidates that answer the query.<Query>:" in qwen_prompt
    )
    assert qwen_prompt.endswith("\n<Document>:NULL<|im_end|>\n<|im_start|>assistant\n")
    lychee_prompt = _prompt(tiny_reranker)
    assert "<Instruct>: Given a web search query, retrieve relevant passages that answer the query<Query>:" in (
        lychee_prompt
    )
    assert lychee_prompt.endswith("\n<Document>:<|im_end|>\n<|im_start|>assistant\n")
    assert "<Instruct>: Find cats<Query>:" in _prompt(qwen3, instruction="Find cats")


def test_explicit_recipe_overrides_the_checkpoint(tiny_qwen3_vl_checkpoint: Path, qwen3: LycheeReranker) -> None:
    forced = LycheeReranker(model=str(tiny_qwen3_vl_checkpoint), device="cpu", dtype="float32", recipe="lychee")
    assert forced._get_runtime().encoder.recipe.name == "lychee"
    assert "retrieve relevant passages" in _prompt(forced)
    assert forced.score("cats", DOCS) != pytest.approx(qwen3.score("cats", DOCS), abs=1e-6)


def test_user_limits_win_over_the_recipe(tiny_qwen3_vl_checkpoint: Path) -> None:
    reranker = LycheeReranker(model=str(tiny_qwen3_vl_checkpoint), device="cpu", max_length=500, max_pixels=8192)
    encoder = reranker._get_runtime().encoder
    assert (encoder.max_length, encoder.min_pixels, encoder.max_pixels) == (500, 4096, 8192)


def test_unknown_model_type_lists_families(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"'bert'.*lychee \(qwen2_5_vl\).*qwen3-vl \(qwen3_vl\)"):
        LycheeReranker(model=str(tmp_path), device="cpu").load()


def test_video_input_is_a_clear_error(qwen3: LycheeReranker) -> None:
    with pytest.raises(InvalidInputError, match="document 1: video inputs are not supported"):
        qwen3.score("cats", ["a cat", {"video": "clip.mp4"}])


def test_extreme_aspect_ratio_names_the_document(qwen3: LycheeReranker) -> None:
    from PIL import Image

    with pytest.raises(InvalidInputError, match=r"document 0: .*aspect ratio over 200"):
        qwen3.score("cats", [{"image": Image.new("RGB", (2010, 10))}])


def test_cli_http_and_adapter_on_qwen3_vl(tiny_qwen3_vl_checkpoint: Path, qwen3: LycheeReranker) -> None:
    from lychee_integrations.langchain import LycheeRerank
    from lychee_integrations.service import ServiceSettings, create_app, service_reranker

    # No instruction anywhere: every front end must apply Qwen3-VL's own default, not Lychee's.
    expected = qwen3.score("cats", DOCS, instruction=get_recipe("qwen3-vl").default_instruction)
    assert qwen3.score("cats", DOCS) == pytest.approx(expected, abs=1e-6)
    path = str(tiny_qwen3_vl_checkpoint)
    args = ["rerank", "--model", path, "--device", "cpu", "--dtype", "float32", "--query", "cats", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "lychee_integrations.cli", *args, *[a for d in DOCS for a in ("--doc", d)]],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == path
    assert sorted(r["score"] for r in data["results"]) == pytest.approx(sorted(expected), abs=1e-5)

    settings = ServiceSettings()
    engine = service_reranker(settings, model=path, device="cpu", dtype="float32").load()
    with serve_app(create_app(engine, settings)) as base:
        native = httpx.post(f"{base}/api/rerank", json={"query": "cats", "documents": DOCS}, timeout=60)
        compat = httpx.post(
            f"{base}/v1/rerank",
            json={"model": "x", "query": "cats", "documents": DOCS},
            timeout=60,
        )
        health = httpx.get(f"{base}/health", timeout=10).json()
    assert native.status_code == 200 and compat.status_code == 200, (native.text, compat.text)
    assert health["model"] == tiny_qwen3_vl_checkpoint.name
    assert native.json()["instruction"] == get_recipe("qwen3-vl").default_instruction
    assert compat.json()["model"] == tiny_qwen3_vl_checkpoint.name
    by_index = {r["index"]: r["relevance_score"] for r in compat.json()["results"]}
    assert [by_index[i] for i in range(len(DOCS))] == pytest.approx(expected, abs=1e-5)

    from langchain_core.documents import Document

    compressor = LycheeRerank(model=path, device="cpu", dtype="float32", top_n=3)
    out = compressor.compress_documents([Document(page_content=d) for d in DOCS], "cats")
    got = {d.page_content: d.metadata["relevance_score"] for d in out}
    assert [got[d] for d in DOCS] == pytest.approx(expected, abs=1e-5)


def test_importing_testing_and_recipes_loads_no_torch() -> None:
    code = (
        "import sys, lychee_integrations.testing, lychee_integrations.recipes\n"
        "from lychee_integrations.testing import FakeScorer\n"
        "assert FakeScorer().score('red car', ['a red car', 'x']) == [1.0, 0.0]\n"
        "heavy = ('torch', 'transformers', 'PIL')\n"
        "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_tiny_cli_builds_a_qwen3_vl_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "tiny-qwen3"
    result = subprocess.run(
        [sys.executable, "-m", "lychee_integrations.cli", "build-tiny", str(target), "--family", "qwen3-vl"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((target / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "qwen3_vl"
    assert config["vision_config"]["patch_size"] == 16 and config["vision_config"]["spatial_merge_size"] == 2


def test_llama_index_adapter_on_qwen3_vl(tiny_qwen3_vl_checkpoint: Path, qwen3: LycheeReranker) -> None:
    """The LlamaIndex postprocessor, unchanged, on the second family: its default instruction, its scores."""
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from lychee_integrations.llama_index import LycheeRerank

    expected = qwen3.score("cats", DOCS, instruction=get_recipe("qwen3-vl").default_instruction)
    postprocessor = LycheeRerank(model=str(tiny_qwen3_vl_checkpoint), device="cpu", dtype="float32", top_n=3)
    assert postprocessor.model_name == str(tiny_qwen3_vl_checkpoint)
    nodes = postprocessor.postprocess_nodes(
        [NodeWithScore(node=TextNode(text=d), score=0.0) for d in DOCS], QueryBundle("cats")
    )
    got = {n.node.get_content(): n.score for n in nodes}
    assert [got[d] for d in DOCS] == pytest.approx(expected, abs=1e-5)
