"""VLLMReranker on the real Qwen vocabulary, against the one-pair model-card references.

Per family, one ``small`` checkpoint (head size 64, which vLLM's CPU attention needs) built with the
real tokenizer (``build_tiny_checkpoint(preset="small", real_tokenizer=True)``) and one vLLM engine
for the module. The token ids vLLM reads (its outputs' ``prompt_token_ids``, image runs expanded) are
the reference prompt's, id for id, and the scores are the reference's within 1e-5 (fp32): every
modality pair, real text (Chinese, emoji) and a document cut at ``max_length``, in one call.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1200), pytest.mark.filterwarnings("ignore::FutureWarning")]

if importlib.util.find_spec("dashscope") is None:
    pytest.skip("the real Qwen vocabulary needs the real-vocab extra (dashscope)", allow_module_level=True)

MAX_LENGTH = 200
CHINESE = "北京是中华人民共和国的首都，也是全国的政治、文化中心。"  # noqa: RUF001
EMOJI = "🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API 和工具 🚀🎉"
LONG_DOC = (CHINESE + EMOJI + " retrieval passage. ") * 30


def cases(pictures: dict[str, Any]) -> list[tuple[str | None, list[Any], str | None, list[Any]]]:
    """(query text, query images, document text, document images): every modality pair, real text."""
    red, blue, green = pictures["red"], pictures["blue"], pictures["green"]
    return [
        ("what is the capital of France", [], "Paris is the capital of France.", []),
        ("a red square", [], None, [red]),
        (None, [blue], "a blue picture with a stripe", []),
        (None, [blue], None, [green]),
        ("find this product", [red], "red running shoes", [green]),
        ("compare the colours", [], "three photos", [red, blue, green]),
        ("中国的首都是哪里？", [], CHINESE, []),  # noqa: RUF001
        ("🤗 which library?", [], EMOJI, [blue]),
    ]


def as_input(text: str | None, images: list[Any]) -> Any:
    if not images:
        return text if text is not None else ""
    return {"text": text, "images": images}


class Recorder:
    """Wraps ``LLM.classify`` of a started engine and keeps the prompt ids vLLM read, call by call."""

    def __init__(self, llm: Any) -> None:
        self.classify = llm.classify
        self.read: list[list[int]] = []

    def __call__(self, prompts: Any, *args: Any, **kwargs: Any) -> Any:
        outputs = self.classify(prompts, *args, **kwargs)
        self.read = [list(output.prompt_token_ids) for output in outputs]
        return outputs


@pytest.fixture(scope="module", params=["lychee", "qwen3-vl"])
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ...]]:
    """A family's real-vocabulary small checkpoint, its reference, and a started VLLMReranker that records."""
    from lychee_integrations.tiny import build_tiny_checkpoint
    from lychee_integrations.vllm import VLLMReranker

    name = request.param
    checkpoint = build_tiny_checkpoint(
        tmp_path_factory.mktemp(f"real-small-{name}"), family=name, preset="small", real_tokenizer=True
    )
    reference = reference_of(name, checkpoint)
    reranker = VLLMReranker(str(checkpoint), dtype="float32", max_length=MAX_LENGTH, enforce_eager=True).load()
    llm = reranker._get_llm()
    recorder = Recorder(llm)
    llm.classify = recorder
    yield name, reference, reranker, recorder
    reranker.unload()
    del reference


def reference_of(name: str, checkpoint: Path) -> Any:
    if name == "qwen3-vl":
        from qwen3_vl_reference import Qwen3VLReference

        return Qwen3VLReference(checkpoint, max_length=MAX_LENGTH)
    from recipe_reference import RecipeReference

    return RecipeReference(checkpoint)


def expected(name: str, reference: Any, q_text: str | None, q_images: list[Any], d_text: str | None,
             d_images: list[Any]) -> tuple[float, list[int]]:  # fmt: skip
    """The reference's score and prompt ids of a pair, the Lychee document text cut as the recipe says."""
    if name == "qwen3-vl":
        from qwen3_vl_reference import DEFAULT_INSTRUCTION as QWEN3_DEFAULT

        return reference.score(QWEN3_DEFAULT, q_text, q_images, d_text, d_images)  # type: ignore[no-any-return]
    from recipe_reference import DEFAULT_INSTRUCTION as LYCHEE_DEFAULT

    if d_text is not None:
        d_text = reference.kept_text(LYCHEE_DEFAULT, q_text, q_images, d_text, d_images, MAX_LENGTH)
    return reference.score(LYCHEE_DEFAULT, q_text, q_images, d_text, d_images)  # type: ignore[no-any-return]


def test_real_vocabulary_checkpoint(family: tuple[Any, ...]) -> None:
    name, reference, reranker, _ = family
    tokenizer = reference.processor.tokenizer
    assert tokenizer.convert_tokens_to_ids(["yes", "no", "<|image_pad|>"]) == [9693, 2152, 151655]
    assert reranker.recipe.name == name


def test_every_modality_pair_reads_the_reference_ids(family: tuple[Any, ...], pictures: dict[str, Any]) -> None:
    name, reference, reranker, recorder = family
    for q_text, q_images, d_text, d_images in cases(pictures):
        score, ids = expected(name, reference, q_text, q_images, d_text, d_images)
        got = reranker.score_with_usage(as_input(q_text, q_images), [as_input(d_text, d_images)])
        assert recorder.read == [ids], (q_text, d_text)
        assert got.scores == pytest.approx([score], abs=1e-5), (q_text, d_text)
        assert got.tokens == len(ids)


def test_one_query_many_documents_with_a_cut_one(family: tuple[Any, ...], pictures: dict[str, Any]) -> None:
    """One call: real-text documents of every kind, the long one cut at max_length, alone and with an image."""
    name, reference, reranker, recorder = family
    docs: list[tuple[str | None, list[Any]]] = [(d_text, d_images) for _, _, d_text, d_images in cases(pictures)]
    docs += [(LONG_DOC, []), (LONG_DOC, [pictures["red"]])]
    want = [expected(name, reference, "北京", [], d_text, d_images) for d_text, d_images in docs]
    assert all(len(ids) < MAX_LENGTH + 6 for _, ids in want[-2:])
    assert len(reference.processor.tokenizer.encode(LONG_DOC)) > MAX_LENGTH  # so those two are cut
    got = reranker.score_with_usage("北京", [as_input(t, i) for t, i in docs])
    assert recorder.read == [ids for _, ids in want]
    assert got.scores == pytest.approx([score for score, _ in want], abs=1e-5)
    assert got.tokens == sum(len(ids) for _, ids in want)
