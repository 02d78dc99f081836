"""Both families' parity suites on the real Qwen vocabulary (``build_tiny_checkpoint(real_tokenizer=True)``).

The engine's prompts must be the model-card recipe's token ids, id for id, with the real BPE:
every modality pair, real text (Chinese, emoji), documents cut at ``max_length`` and merges
across the query/document boundary (``<Query>:`` + ``//x`` is ``>``, ``://``, ...). Scores
match the one-pair references within 1e-5 (fp32), with prefix reuse on and off.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_image
from qwen3_vl_reference import DEFAULT_INSTRUCTION as QWEN3_DEFAULT
from qwen3_vl_reference import Qwen3VLReference
from recipe_reference import DEFAULT_INSTRUCTION as LYCHEE_DEFAULT
from recipe_reference import RecipeReference

from lychee_integrations.engine import LycheeReranker

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

RED = make_image((220, 20, 20))
BLUE = make_image((20, 20, 220), size=(120, 90), stripe=30)
GREEN = make_image((20, 200, 40), size=(200, 40), stripe=10)

CHINESE = "北京是中华人民共和国的首都，也是全国的政治、文化中心。"  # noqa: RUF001
EMOJI = "🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API 和工具 🚀🎉"

#: One query and document per modality pair (the one-pair references' own cases).
CASES: dict[str, tuple[str | None, list[Any], str | None, list[Any]]] = {
    "text-text": ("what is the capital of France", [], "Paris is the capital of France.", []),
    "text-image": ("a red square", [], None, [RED]),
    "image-text": (None, [BLUE], "a blue picture with a stripe", []),
    "image-image": (None, [BLUE], None, [GREEN]),
    "text+image both sides": ("find this product", [RED], "red running shoes", [GREEN]),
    "multi-image document": ("compare the colours", [], "three photos", [RED, BLUE, GREEN]),
    "chinese": ("中国的首都是哪里？", [], CHINESE, []),  # noqa: RUF001
    "emoji": ("🤗 which library?", [], EMOJI, [BLUE]),
}

#: Texts whose BPE merges cross the query/document boundary of the prompt.
BOUNDARY: dict[str, tuple[str, str]] = {
    "query starts with //": ("//example.com/path", "a web page"),
    "query starts with ::": ("::1 localhost", "IPv6 loopback"),
    "query ends with a newline": ("a red car\n", "a red sports car"),
    "query ends with a space": ("a red car ", "a blue car"),
    "query ends with a colon": ("ends with colon:", "document"),
    "document starts with //": ("comments", "// a comment"),
    "document starts with a space": ("spaces", "  two leading spaces"),
    "document ends with a newline": ("lines", "line one\nline two\n"),
}


def as_input(text: str | None, images: list[Any]) -> Any:
    if not images:
        return text if text is not None else ""
    if len(images) == 1:
        return {"text": text, "image": images[0]}
    return {"text": text, "images": images}


# --- Lychee (Qwen2.5-VL) ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lychee_reference(real_checkpoint: Path) -> RecipeReference:
    return RecipeReference(real_checkpoint)


@pytest.fixture(scope="module")
def lychee_off(real_checkpoint: Path) -> Iterator[LycheeReranker]:
    reranker = LycheeReranker(model=str(real_checkpoint), device="cpu", dtype="float32", prefix_reuse=False)
    yield reranker.load()
    reranker.unload()


@pytest.fixture(params=["prefix-reuse", "no-prefix-reuse"])
def lychee(request: pytest.FixtureRequest, real_reranker: LycheeReranker, lychee_off: LycheeReranker) -> Any:
    return real_reranker if request.param == "prefix-reuse" else lychee_off


def test_real_vocabulary_in_the_engine(real_reranker: LycheeReranker, lychee_reference: RecipeReference) -> None:
    tokenizer = lychee_reference.processor.tokenizer
    assert (lychee_reference.yes, lychee_reference.no) == (9693, 2152)
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
    [pair] = real_reranker.encode("cats", [{"text": "a cat", "image": RED}], instruction="Find it")
    assert pair.input_ids[:3] == (151644, 8948, 198)  # <|im_start|>system\n
    assert pair.input_ids[-5:] == (151645, 198, 151644, 77091, 198)  # <|im_end|>\n<|im_start|>assistant\n
    assert pair.input_ids.count(151655) == pair.images[0].n_tokens > 0


@pytest.mark.parametrize("case", list(CASES))
def test_lychee_matches_reference(case: str, lychee: LycheeReranker, lychee_reference: RecipeReference) -> None:
    q_text, q_images, d_text, d_images = CASES[case]
    expected, expected_ids = lychee_reference.score(LYCHEE_DEFAULT, q_text, q_images, d_text, d_images)
    query, doc = as_input(q_text, q_images), as_input(d_text, d_images)
    assert list(lychee.encode(query, [doc])[0].input_ids) == expected_ids
    assert lychee.score(query, [doc])[0] == pytest.approx(expected, abs=1e-5)


def test_lychee_merges_across_the_boundary(lychee: LycheeReranker, lychee_reference: RecipeReference) -> None:
    tokenizer = lychee_reference.processor.tokenizer
    for name, (q_text, d_text) in BOUNDARY.items():
        expected, expected_ids = lychee_reference.score(LYCHEE_DEFAULT, q_text, [], d_text, [])
        assert list(lychee.encode(q_text, [d_text])[0].input_ids) == expected_ids, name
        assert lychee.score(q_text, [d_text])[0] == pytest.approx(expected, abs=1e-5), name
    # the cases do merge: the prompt is not the concatenation of its separately tokenized parts
    separate = tokenizer.encode("<Query>:") + tokenizer.encode("//example.com/path")
    assert tokenizer.encode("<Query>://example.com/path") != separate


def test_lychee_one_query_many_documents(lychee: LycheeReranker, lychee_reference: RecipeReference) -> None:
    """One call, one shared prefix over documents of every kind (the prefix-reuse path when on)."""
    docs = [(d_text, d_images) for _, _, d_text, d_images in CASES.values()] + [("// a comment", [])]
    expected = [lychee_reference.score(LYCHEE_DEFAULT, CHINESE, [RED], t, i)[0] for t, i in docs]
    got = lychee.score({"text": CHINESE, "image": RED}, [as_input(t, i) for t, i in docs])
    assert got == pytest.approx(expected, abs=1e-5)


def test_lychee_cut_at_max_length(real_checkpoint: Path, lychee_reference: RecipeReference) -> None:
    """Real text cut at max_length: the kept text is a prefix, and the prompt is the reference's for it."""
    long_doc = (CHINESE + EMOJI + " retrieval passage. ") * 30
    for prefix_reuse in (True, False):
        reranker = LycheeReranker(
            model=str(real_checkpoint), device="cpu", dtype="float32", max_length=160, prefix_reuse=prefix_reuse
        )
        docs = [long_doc, {"text": long_doc, "image": RED}, "short"]
        pairs = reranker.encode("北京", docs)
        scores = reranker.score("北京", docs)
        assert [p.truncated for p in pairs] == [True, True, False]
        tokenizer = lychee_reference.processor.tokenizer
        for n, (pair, images) in enumerate(zip(pairs, [[], [RED], []], strict=True)):
            assert len(pair.input_ids) <= 160
            rendered = tokenizer.decode(list(pair.input_ids), skip_special_tokens=False)
            kept = rendered.split("\n<Document>:", 1)[1].rsplit("<|im_end|>\n<|im_start|>assistant\n", 1)[0]
            kept = kept.replace("<|vision_start|>", "").replace("<|vision_end|>", "").replace("<|image_pad|>", "")
            assert "\ufffd" not in kept and (long_doc if n < 2 else "short").startswith(kept), n
            expected, expected_ids = lychee_reference.score(LYCHEE_DEFAULT, "北京", [], kept, images)
            assert list(pair.input_ids) == expected_ids, n
            assert scores[n] == pytest.approx(expected, abs=1e-5), n
        reranker.unload()


# --- Qwen3-VL-Reranker -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen3_reference(real_qwen3_vl_checkpoint: Path) -> Qwen3VLReference:
    return Qwen3VLReference(real_qwen3_vl_checkpoint)


@pytest.fixture(scope="module", params=["prefix-reuse", "no-prefix-reuse"])
def qwen3(request: pytest.FixtureRequest, real_qwen3_vl_checkpoint: Path) -> Iterator[LycheeReranker]:
    reranker = LycheeReranker(
        model=str(real_qwen3_vl_checkpoint),
        device="cpu",
        dtype="float32",
        prefix_reuse=request.param == "prefix-reuse",
    )
    yield reranker.load()
    reranker.unload()


def test_qwen3_vl_template_is_the_official_one(real_qwen3_vl_checkpoint: Path) -> None:
    from transformers import AutoProcessor

    from lychee_integrations.real_vocab import QWEN3_VL_CHAT_TEMPLATE

    processor = AutoProcessor.from_pretrained(real_qwen3_vl_checkpoint)
    assert processor.chat_template == QWEN3_VL_CHAT_TEMPLATE
    assert len(processor.tokenizer) == 151669 and processor.tokenizer.convert_tokens_to_ids("</think>") == 151668


@pytest.mark.parametrize("case", list(CASES))
def test_qwen3_vl_matches_reference(case: str, qwen3: LycheeReranker, qwen3_reference: Qwen3VLReference) -> None:
    q_text, q_images, d_text, d_images = CASES[case]
    expected, expected_ids = qwen3_reference.score(QWEN3_DEFAULT, q_text, q_images, d_text, d_images)
    query, doc = as_input(q_text, q_images), as_input(d_text, d_images)
    assert list(qwen3.encode(query, [doc])[0].input_ids) == expected_ids
    assert qwen3.score(query, [doc])[0] == pytest.approx(expected, abs=1e-5)


def test_qwen3_vl_merges_across_the_boundary(qwen3: LycheeReranker, qwen3_reference: Qwen3VLReference) -> None:
    q_texts = [q for q, _ in BOUNDARY.values()]
    for q_text in dict.fromkeys(q_texts):
        docs = [d for q, d in BOUNDARY.values()] + ["", CHINESE]
        scores, pairs = qwen3.score(q_text, docs), qwen3.encode(q_text, docs)
        for n, doc in enumerate(docs):
            expected, expected_ids = qwen3_reference.score(QWEN3_DEFAULT, q_text, [], doc or None, [])
            assert list(pairs[n].input_ids) == expected_ids, (q_text, doc)
            assert scores[n] == pytest.approx(expected, abs=1e-5), (q_text, doc)


def test_qwen3_vl_cut_at_max_length(real_qwen3_vl_checkpoint: Path) -> None:
    reference = Qwen3VLReference(real_qwen3_vl_checkpoint, max_length=120)
    long_text = (CHINESE + EMOJI + " the quick brown fox. ") * 20
    for prefix_reuse in (True, False):
        reranker = LycheeReranker(
            model=str(real_qwen3_vl_checkpoint),
            device="cpu",
            dtype="float32",
            max_length=120,
            prefix_reuse=prefix_reuse,
        )
        docs = [long_text, {"text": long_text, "image": RED}, "short"]
        encoded = reranker.encode(CHINESE, docs, instruction="Find it")
        scores = reranker.score(CHINESE, docs, instruction="Find it")
        assert [p.truncated for p in encoded] == [True, True, False]
        for n, (text, images) in enumerate([(long_text, []), (long_text, [RED]), ("short", [])]):
            expected, ids = reference.score("Find it", CHINESE, [], text, images)
            assert list(encoded[n].input_ids) == ids, n
            assert len(ids) <= 120 + 5
            assert scores[n] == pytest.approx(expected, abs=1e-5), n
        reranker.unload()
