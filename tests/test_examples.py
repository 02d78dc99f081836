"""Every example runs offline on the tiny checkpoint and prints correctly ranked results."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.instructions import get_template
from lychee_integrations.results import score_band

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RESULT = re.compile(r"^  (\d+)\. \[(\d\.\d{3}) (high|partial|low)\s*\] (.+)$")
RAW_RESULT = re.compile(r"^  (\d+)\. \[\d\.\d{3} raw\s*\] (.+)$")

Sections = dict[str, list[tuple[float, str]]]


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def sections(output: str) -> Sections:
    """Group result lines under the header line above them; check rank, order and band."""
    found: Sections = {}
    header = ""
    for text in output.splitlines():
        match = RESULT.match(text)
        if match is None:
            header = text
            continue
        rank, score, band, label = int(match[1]), float(match[2]), match[3], match[4]
        entries = found.setdefault(header, [])
        assert rank == len(entries) + 1, text
        assert score_band(score) == band, text
        entries.append((score, label))
    for header, entries in found.items():
        scores = [s for s, _ in entries]
        assert scores == sorted(scores, reverse=True), header
        assert all(0.0 <= s <= 1.0 for s in scores)
    return found


def section(found: Sections, prefix: str) -> list[tuple[float, str]]:
    [entries] = [v for k, v in found.items() if k.startswith(prefix)]
    return entries


@pytest.fixture()
def load() -> Iterator[Callable[[str], ModuleType]]:
    """Import an example module (for its constants) with the examples folder on sys.path."""
    sys.path.insert(0, str(EXAMPLES))
    yield importlib.import_module
    sys.path.remove(str(EXAMPLES))


def test_langchain_rag_chain(
    tiny_checkpoint: Path, tiny_reranker: LycheeReranker, load: Callable[[str], ModuleType]
) -> None:
    output = run_example("langchain_rag_chain.py", "--model", str(tiny_checkpoint), "--device", "cpu")
    context = section(sections(output), "reranked context")
    example = load("langchain_rag_chain")
    expected = tiny_reranker.score(example.QUESTION, example.PASSAGES, task="factual_qa")
    best = sorted(range(len(expected)), key=lambda i: -expected[i])[:3]
    assert [label for _, label in context] == [example.PASSAGES[i] for i in best]
    assert [s for s, _ in context] == pytest.approx([expected[i] for i in best], abs=6e-4)
    prompt = output[output.index("prompt sent to the LLM:") :]
    positions = [prompt.index(example.PASSAGES[i]) for i in best]
    assert positions == sorted(positions)
    assert f"Question: {example.QUESTION}" in prompt


def test_knowledge_base_qa(
    tiny_checkpoint: Path, tiny_reranker: LycheeReranker, load: Callable[[str], ModuleType]
) -> None:
    output = run_example("knowledge_base_qa.py", "--model", str(tiny_checkpoint), "--device", "cpu")
    assert get_template("knowledge_base_guide").instruction in output
    found = sections(output)
    everything, kept = section(found, "all articles"), section(found, "sources kept")
    example = load("knowledge_base_qa")
    names = list(example.ARTICLES)
    expected = tiny_reranker.score(example.QUESTION, list(example.ARTICLES.values()), task="knowledge_base_guide")
    assert sorted(label for _, label in everything) == sorted(names)
    assert [s for s, _ in everything] == pytest.approx(sorted(expected, reverse=True), abs=6e-4)
    assert kept == [entry for entry in everything if entry[0] >= 0.4][:3]


def test_llamaindex_multimodal(tiny_checkpoint: Path) -> None:
    output = run_example("llamaindex_multimodal.py", "--model", str(tiny_checkpoint), "--device", "cpu")
    found = sections(output)
    raw = [m[2] for m in map(RAW_RESULT.match, output.splitlines()) if m]
    one_scale = section(found, "after Lychee")
    image_query = section(found, "image query")
    assert len(raw) == 6
    assert {label.split()[0] for label in raw} == {"text", "image"}
    assert len(one_scale) == 4
    assert {label for _, label in one_scale} <= set(raw)
    assert len(image_query) == 3
    assert len({label for _, label in image_query}) == 3


def test_product_search_builds_its_own_tiny_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "fresh-tiny"
    output = run_example("product_search.py", "--model", str(target), "--build-tiny", "--device", "cpu")
    assert "building a tiny random checkpoint" in output
    assert (target / "config.json").is_file()
    found = sections(output)
    for prefix in ("text query", "image query", "text+image query"):
        assert len(section(found, prefix)) == 3
