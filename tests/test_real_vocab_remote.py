"""The remote path on the real Qwen vocabulary: ``RemoteReranker`` -> a real ``lychee serve`` -> the engine.

One ``lychee serve`` subprocess per family on loopback, over a checkpoint built with the real
tokenizer (``build_tiny_checkpoint(real_tokenizer=True)``) and a ``--max-length`` that cuts the
long document. Every modality pair, real text (Chinese, emoji) and a document cut at
``max_length`` score as the one-pair model-card references do (within 1e-5, fp32), and the usage
the server reports is the reference prompt's number of token ids, pair for pair.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qwen3_vl_reference import DEFAULT_INSTRUCTION as QWEN3_DEFAULT
from qwen3_vl_reference import Qwen3VLReference
from recipe_reference import DEFAULT_INSTRUCTION as LYCHEE_DEFAULT
from recipe_reference import RecipeReference
from remote_helpers import lychee_serve
from test_real_vocab_parity import CASES, CHINESE, EMOJI, RED, as_input

from lychee_integrations import RemoteReranker

pytestmark = [pytest.mark.timeout(900), pytest.mark.filterwarnings("ignore::FutureWarning")]

#: Tokens per pair on both servers: every case fits, the long document does not.
MAX_LENGTH = 200
LONG_DOC = (CHINESE + EMOJI + " retrieval passage. ") * 30


@contextlib.contextmanager
def served(checkpoint: Path) -> Iterator[RemoteReranker]:
    """A client of a real ``lychee serve`` on the checkpoint, pairs cut at ``MAX_LENGTH``."""
    with lychee_serve(checkpoint, "--max-length", str(MAX_LENGTH)) as base, RemoteReranker(base, timeout=300) as client:
        yield client


def check(remote: RemoteReranker, query: Any, doc: Any, expected: float, expected_ids: list[int]) -> None:
    got = remote.score_with_usage(query, [doc])
    assert got.scores == pytest.approx([expected], abs=1e-5)
    assert got.tokens == len(expected_ids)


# --- Lychee (Qwen2.5-VL) ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lychee_reference(real_checkpoint: Path) -> RecipeReference:
    return RecipeReference(real_checkpoint)


@pytest.fixture(scope="module")
def lychee_remote(real_checkpoint: Path) -> Iterator[RemoteReranker]:
    with served(real_checkpoint) as remote:
        yield remote


@pytest.mark.parametrize("case", list(CASES))
def test_lychee_served_matches_reference(
    case: str, lychee_remote: RemoteReranker, lychee_reference: RecipeReference
) -> None:
    q_text, q_images, d_text, d_images = CASES[case]
    expected, ids = lychee_reference.score(LYCHEE_DEFAULT, q_text, q_images, d_text, d_images)
    assert len(ids) <= MAX_LENGTH  # uncut
    check(lychee_remote, as_input(q_text, q_images), as_input(d_text, d_images), expected, ids)


def test_lychee_served_cut_and_many_documents(lychee_remote: RemoteReranker, lychee_reference: RecipeReference) -> None:
    """A real-text document cut at max_length (alone and with an image), in one call with an uncut one."""
    expected, counts = [], []
    for images in ([], [RED]):
        kept = lychee_reference.kept_text(LYCHEE_DEFAULT, "北京", [], LONG_DOC, images, MAX_LENGTH)
        assert 0 < len(kept) < len(LONG_DOC) and LONG_DOC.startswith(kept)
        score, ids = lychee_reference.score(LYCHEE_DEFAULT, "北京", [], kept, images)
        assert len(ids) <= MAX_LENGTH
        expected.append(score)
        counts.append(len(ids))
    score, ids = lychee_reference.score(LYCHEE_DEFAULT, "北京", [], EMOJI, [])
    expected.append(score)
    counts.append(len(ids))
    got = lychee_remote.score_with_usage("北京", [LONG_DOC, {"text": LONG_DOC, "image": RED}, EMOJI])
    assert got.scores == pytest.approx(expected, abs=1e-5)
    assert got.tokens == sum(counts)


# --- Qwen3-VL-Reranker -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen3_reference(real_qwen3_vl_checkpoint: Path) -> Qwen3VLReference:
    return Qwen3VLReference(real_qwen3_vl_checkpoint, max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def qwen3_remote(real_qwen3_vl_checkpoint: Path) -> Iterator[RemoteReranker]:
    with served(real_qwen3_vl_checkpoint) as remote:
        yield remote


@pytest.mark.parametrize("case", list(CASES))
def test_qwen3_vl_served_matches_reference(
    case: str, qwen3_remote: RemoteReranker, qwen3_reference: Qwen3VLReference
) -> None:
    q_text, q_images, d_text, d_images = CASES[case]
    expected, ids = qwen3_reference.score(QWEN3_DEFAULT, q_text, q_images, d_text, d_images)
    check(qwen3_remote, as_input(q_text, q_images), as_input(d_text, d_images), expected, ids)


def test_qwen3_vl_served_cut_and_many_documents(
    qwen3_remote: RemoteReranker, qwen3_reference: Qwen3VLReference
) -> None:
    docs: list[tuple[str, list[Any]]] = [(LONG_DOC, []), (LONG_DOC, [RED]), (EMOJI, [])]
    scored = [qwen3_reference.score(QWEN3_DEFAULT, CHINESE, [], text, images) for text, images in docs]
    # the long document is cut (its text alone is longer than a pair may be), the short one is not
    assert len(qwen3_reference.processor.tokenizer.encode(LONG_DOC)) > MAX_LENGTH
    assert all(len(ids) <= MAX_LENGTH + 5 for _, ids in scored[:2]) and len(scored[2][1]) < MAX_LENGTH
    got = qwen3_remote.score_with_usage(CHINESE, [as_input(text, images) for text, images in docs])
    assert got.scores == pytest.approx([score for score, _ in scored], abs=1e-5)
    assert got.tokens == sum(len(ids) for _, ids in scored)
