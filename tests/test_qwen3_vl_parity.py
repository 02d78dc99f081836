"""The engine on a tiny Qwen3-VL-Reranker checkpoint gives the official one-pair path's scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_image
from qwen3_vl_reference import DEFAULT_INSTRUCTION, Qwen3VLReference

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def reference(tiny_qwen3_vl_checkpoint: Path) -> Qwen3VLReference:
    return Qwen3VLReference(tiny_qwen3_vl_checkpoint)


def _doc(value: dict[str, Any]) -> Any:
    text, images = value.get("text"), value.get("images", [])
    if not images:
        return text if text is not None else ""
    return {"text": text, "image": images[0]} if len(images) == 1 else {"text": text, "images": images}


RED = make_image((220, 20, 20))
BLUE = make_image((20, 20, 220), size=(120, 90), stripe=30)
WIDE = make_image((20, 200, 40), size=(200, 40), stripe=10)
TINY = make_image((128, 128, 128), size=(30, 30))
ALPHA = make_image((200, 100, 0)).convert("RGBA")  # type: ignore[attr-defined]

DOCS: list[dict[str, Any]] = [
    {"text": "a cat sits on the mat"},
    {"images": [RED]},
    {"text": "a blue photo", "images": [BLUE]},
    {"images": [WIDE, TINY]},
    {"text": ""},
    {"text": "the lazy dog", "images": [ALPHA]},
]
QUERIES: list[dict[str, Any]] = [
    {"text": "cats"},
    {"images": [BLUE]},
    {"text": "a red picture", "images": [RED]},
    {"text": "two pictures", "images": [TINY, WIDE]},
]


@pytest.mark.parametrize("query", QUERIES, ids=["text", "image", "text+image", "two-images"])
def test_engine_matches_reference(tiny_qwen3_vl_checkpoint: Path, reference: Qwen3VLReference, query: Any) -> None:
    from lychee_integrations.engine import LycheeReranker

    reranker = LycheeReranker.shared(model=str(tiny_qwen3_vl_checkpoint), device="cpu", dtype="float32")
    q = _doc(query)
    docs = [_doc(d) for d in DOCS]
    scores = reranker.score(q, docs)
    encoded = reranker.encode(q, docs)
    for n, doc in enumerate(DOCS):
        expected, ids = reference.score(
            DEFAULT_INSTRUCTION, query.get("text"), query.get("images", []), doc.get("text"), doc.get("images", [])
        )
        assert list(encoded[n].input_ids) == ids, f"document {n}: prompt differs"
        assert scores[n] == pytest.approx(expected, abs=1e-5), f"document {n}"
    assert max(scores) - min(scores) > 1e-3  # the scores depend on the pair


def test_long_pairs_cut_like_official(tiny_qwen3_vl_checkpoint: Path) -> None:
    from lychee_integrations.engine import LycheeReranker

    reference = Qwen3VLReference(tiny_qwen3_vl_checkpoint, max_length=120)
    reranker = LycheeReranker(model=str(tiny_qwen3_vl_checkpoint), device="cpu", dtype="float32", max_length=120)
    long_text = " ".join(["the quick brown fox jumps over the lazy dog"] * 20)
    docs = [long_text, {"text": long_text, "image": RED}, "short"]
    encoded = reranker.encode(long_text, docs, instruction="Find it")
    scores = reranker.score(long_text, docs, instruction="Find it")
    assert [p.truncated for p in encoded] == [True, True, True]
    for n, (text, images) in enumerate([(long_text, []), (long_text, [RED]), ("short", [])]):
        expected, ids = reference.score("Find it", long_text, [], text, images)
        assert list(encoded[n].input_ids) == ids
        assert len(ids) <= 120 + 5
        assert scores[n] == pytest.approx(expected, abs=1e-5)
