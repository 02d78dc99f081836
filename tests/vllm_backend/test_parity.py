"""VLLMReranker (vLLM's offline engine) against the in-process engine: same scores, same errors.

Every comparison runs for both families, Lychee and Qwen3-VL-Reranker (``family``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lychee_integrations.errors import InputTooLongError, InvalidDocumentsError, InvalidInputError
from lychee_integrations.inputs import RerankInput

pytestmark = pytest.mark.vllm

FAMILIES = {"lychee": ("lychee_engine", "lychee_vllm_reranker"), "qwen3-vl": ("qwen3_engine", "qwen3_vllm_reranker")}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """The engine and VLLMReranker on one family's checkpoint."""
    engine_name, vllm_name = FAMILIES[request.param]
    return request.getfixturevalue(engine_name), request.getfixturevalue(vllm_name)


@pytest.fixture()
def engine(family: tuple[Any, Any]) -> Any:
    return family[0]


@pytest.fixture()
def vllm_reranker(family: tuple[Any, Any]) -> Any:
    return family[1]


TOLERANCE = 1e-4
INSTRUCTION = "Given a product photo or description, find the catalogue entry that matches it"


def assert_same(engine: Any, vllm_reranker: Any, query: Any, documents: list[Any], **kwargs: Any) -> list[float]:
    expected = engine.score(query, documents, **kwargs)
    got = vllm_reranker.score(query, documents, **kwargs)
    assert len(got) == len(documents)
    diffs = [abs(a - b) for a, b in zip(expected, got, strict=True)]
    assert max(diffs) < TOLERANCE, (expected, got)
    return got


def test_text_query_text_documents(engine: Any, vllm_reranker: Any) -> None:
    documents = ["a red sports car", "a banana", "the capital of France is Paris", ""]
    scores = assert_same(engine, vllm_reranker, "what is the capital of France", documents)
    assert len(set(scores[:3])) == 3  # the documents are told apart
    assert_same(engine, vllm_reranker, "capital of France", documents, instruction=INSTRUCTION)
    assert_same(engine, vllm_reranker, "capital of France", documents, task="product_search")


@pytest.mark.parametrize(
    ("query_kind", "doc_kind"),
    [("image", "text"), ("text", "image"), ("image", "image"), ("text+image", "text+image"), ("text", "text+image")],
)
def test_images_on_either_side(
    engine: Any, vllm_reranker: Any, pictures: dict[str, Any], query_kind: str, doc_kind: str
) -> None:
    def side(kind: str, text: str, image: Any) -> Any:
        return {"text": text, "image": image} if kind == "text+image" else image if kind == "image" else text

    query = side(query_kind, "a red car", pictures["red"])
    documents = [
        side(doc_kind, "a blue striped box", pictures["blue"]),
        side(doc_kind, "green grass", pictures["green"]),
        side(doc_kind, "a gray square", pictures["gray"]),
    ]
    assert_same(engine, vllm_reranker, query, documents, instruction=INSTRUCTION)


def test_several_images_per_side(engine: Any, vllm_reranker: Any, pictures: dict[str, Any]) -> None:
    query = RerankInput("red and blue", (pictures["red"], pictures["blue"]))
    documents = [
        RerankInput("two pictures", (pictures["green"], pictures["gray"])),
        RerankInput(None, (pictures["blue"], pictures["red"], pictures["gray"])),
        "text only",
    ]
    assert_same(engine, vllm_reranker, query, documents)


def test_long_documents_are_cut_like_the_engine(engine: Any, vllm_reranker: Any, pictures: dict[str, Any]) -> None:
    long_text = " ".join(f"word{i} policy travel" for i in range(300))
    documents = [long_text, {"text": long_text, "image": pictures["blue"]}, "short"]
    pairs = engine.encode("hotel limits", documents)
    assert [p.truncated for p in pairs] == [True, True, False]
    from lychee_integrations.vllm import max_model_len

    assert all(len(p) <= max_model_len(vllm_reranker.recipe, vllm_reranker.max_length) for p in pairs)
    assert_same(engine, vllm_reranker, "hotel limits", documents)
    # A long query is cut after the document text.
    assert_same(engine, vllm_reranker, long_text, ["a document", long_text])


def test_empty_batch_and_usage(engine: Any, vllm_reranker: Any) -> None:
    assert vllm_reranker.score("query", []) == []
    assert vllm_reranker.rerank("query", []) == []
    assert vllm_reranker.score_with_usage("query", [])[:2] == ([], 0)
    scores, tokens, instruction = vllm_reranker.score_with_usage("query", ["one", "two"])
    expected = engine.score_with_usage("query", ["one", "two"])
    assert tokens == expected.tokens
    # One default instruction per family, the recipe's, applied by both backends.
    assert instruction == expected.instruction == vllm_reranker.recipe.default_instruction
    assert len(scores) == 2


def test_rerank_matches_the_engine(engine: Any, vllm_reranker: Any, pictures: dict[str, Any]) -> None:
    documents = ["a red car", {"image": pictures["red"]}, "a banana", {"text": "blue", "image": pictures["blue"]}]
    expected = engine.rerank("red car", documents, top_n=3)
    got = vllm_reranker.rerank("red car", documents, top_n=3)
    assert [r.index for r in got] == [r.index for r in expected]
    assert all(abs(a.score - b.score) < TOLERANCE for a, b in zip(expected, got, strict=True))


def _error(reranker: Any, *args: Any, **kwargs: Any) -> BaseException:
    with pytest.raises(Exception) as info:
        reranker.score(*args, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("query", "documents", "kwargs", "kind"),
    [
        ("", ["doc"], {}, InvalidInputError),
        ({"text": None}, ["doc"], {}, InvalidInputError),
        ("q", ["ok", None], {}, InvalidInputError),
        ("q", [None, 3, "ok"], {}, InvalidDocumentsError),
        ("q", ["ok", {"image": b"not an image"}], {}, InvalidInputError),
        ("q", ["ok", "has <|image_pad|> inside"], {}, InvalidInputError),
        ("q <|vision_start|>", ["ok"], {}, InvalidInputError),
        ("q", ["ok"], {"task": "no_such_task"}, ValueError),
        ("q", ["ok"], {"task": "web_search", "instruction": "both"}, ValueError),
        ("q", "not a list", {}, ValueError),
    ],
)
def test_errors_are_the_engines(
    engine: Any, vllm_reranker: Any, query: Any, documents: Any, kwargs: dict[str, Any], kind: type
) -> None:
    expected = _error(engine, query, documents, **kwargs)
    got = _error(vllm_reranker, query, documents, **kwargs)
    assert isinstance(got, kind)
    assert type(got) is type(expected)
    assert str(got) == str(expected)


def test_images_over_max_length_and_image_limit(vllm_reranker: Any, pictures: dict[str, Any]) -> None:
    from PIL import Image

    big = Image.new("RGB", (800, 800), (10, 120, 30))  # over 600 visual tokens (either family), over max_length
    with pytest.raises(InputTooLongError, match="document 1"):
        vllm_reranker.score("q", ["ok", {"image": big}])
    many = RerankInput("x", tuple(pictures["gray"] for _ in range(vllm_reranker.max_images_per_pair + 1)))
    with pytest.raises(InvalidInputError, match=r"document 0: .*max_images_per_pair"):
        vllm_reranker.score("q", [many])


def test_concurrent_calls(engine: Any, vllm_reranker: Any) -> None:
    documents = [[f"document {i} about topic {j}" for j in range(3)] for i in range(4)]
    expected = [engine.score("topic", docs) for docs in documents]
    results: dict[int, list[float]] = {}

    def work(i: int) -> None:
        results[i] = vllm_reranker.score("topic", documents[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for i in range(4):
        assert max(abs(a - b) for a, b in zip(expected[i], results[i], strict=True)) < TOLERANCE


def test_options_are_checked(small_checkpoint: Any) -> None:
    from lychee_integrations.errors import ConfigurationError
    from lychee_integrations.vllm import VLLMReranker

    with pytest.raises(ConfigurationError, match="no_such_option"):
        VLLMReranker(str(small_checkpoint), no_such_option=1)
    with pytest.raises(ConfigurationError, match="hf_overrides"):
        VLLMReranker(str(small_checkpoint), hf_overrides={})
    with pytest.raises(ConfigurationError, match="dtype"):
        VLLMReranker(str(small_checkpoint), dtype="float8")
    from lychee_integrations.scoring import Scorer

    reranker = VLLMReranker(str(small_checkpoint))
    assert "not started" in repr(reranker)
    assert isinstance(reranker, Scorer)  # what the adapters take as reranker=
    assert reranker.model_name == str(small_checkpoint)


def test_recipe_and_limits_come_from_the_checkpoint(small_checkpoint: Any, qwen3_checkpoint: Any) -> None:
    from lychee_integrations.errors import ConfigurationError
    from lychee_integrations.vllm import VLLMReranker

    qwen3 = VLLMReranker(str(qwen3_checkpoint))
    assert qwen3.recipe.name == "qwen3-vl" and "recipe='qwen3-vl'" in repr(qwen3)
    assert (qwen3.max_length, qwen3.min_pixels, qwen3.max_pixels) == (10240, 4096, 1843200)
    lychee = VLLMReranker(str(small_checkpoint), max_pixels=200704)
    assert lychee.recipe.name == "lychee"
    assert (lychee.max_length, lychee.min_pixels, lychee.max_pixels) == (3200, 3136, 200704)
    assert VLLMReranker(str(small_checkpoint), recipe="qwen3-vl").recipe.name == "qwen3-vl"
    with pytest.raises(ConfigurationError, match="unknown recipe"):
        VLLMReranker(str(small_checkpoint), recipe="jina")
