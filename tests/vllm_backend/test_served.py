"""vLLM's /v1/rerank, started by ``lychee vllm-serve``, against the in-process engine, over plain HTTP."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest

pytestmark = pytest.mark.vllm_server

TOLERANCE = 1e-4
INSTRUCTION = "Given a product photo or description, find the catalogue entry that matches it"


def data_uri(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def content(text: str | None, images: list[Any]) -> dict[str, Any]:
    """vLLM's multimodal form of one side: images first, then the text (one text part)."""
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": data_uri(i)}} for i in images]
    if text:
        parts.append({"type": "text", "text": text})
    return {"content": parts}


def rerank(server: Any, body: dict[str, Any]) -> dict[str, Any]:
    import httpx

    response = httpx.post(f"{server.url}/v1/rerank", json={"model": server.model, **body}, timeout=120.0)
    assert response.status_code == 200, response.text
    return dict(response.json())


def by_index(answer: dict[str, Any], n: int) -> list[float]:
    scores = {r["index"]: r["relevance_score"] for r in answer["results"]}
    assert sorted(scores) == list(range(n))  # every document accounted for
    return [scores[i] for i in range(n)]


def assert_close(expected: list[float], got: list[float]) -> None:
    assert max(abs(a - b) for a, b in zip(expected, got, strict=True)) < TOLERANCE, (expected, got)


def test_text_with_per_request_instruction(server: Any, engine: Any) -> None:
    documents = ["a red sports car", "a banana", "the capital of France is Paris"]
    for instruction in (None, INSTRUCTION):
        body: dict[str, Any] = {"query": "capital of France", "documents": documents}
        if instruction:
            body["instruction"] = instruction
        answer = rerank(server, body)
        assert_close(engine.score("capital of France", documents, instruction=instruction), by_index(answer, 3))
    # The same through chat_template_kwargs.
    answer = rerank(
        server,
        {"query": "capital of France", "documents": documents, "chat_template_kwargs": {"instruction": INSTRUCTION}},
    )
    assert_close(engine.score("capital of France", documents, instruction=INSTRUCTION), by_index(answer, 3))


def test_images_on_both_sides(server: Any, engine: Any, pictures: dict[str, Any]) -> None:
    red, blue, green, gray = (pictures[k] for k in ("red", "blue", "green", "gray"))
    query_forms = [("a red car", [red]), (None, [red]), ("a red car", []), ("red and blue", [red, blue])]
    documents = [("a blue striped box", [blue]), (None, [green]), ("a gray square", []), ("two", [gray, green])]
    for text, images in query_forms:
        body = {
            "query": content(text, images) if images else text,
            "documents": [content(t, i) if i else t for t, i in documents],
            "instruction": INSTRUCTION,
        }
        answer = rerank(server, body)
        expected = engine.score(
            {"text": text, "images": images},
            [{"text": t, "images": i} for t, i in documents],
            instruction=INSTRUCTION,
        )
        assert_close(expected, by_index(answer, len(documents)))
        assert (
            answer["usage"]["prompt_tokens"]
            == engine.score_with_usage(
                {"text": text, "images": images},
                [{"text": t, "images": i} for t, i in documents],
                instruction=INSTRUCTION,
            )[1]
        )


def test_top_n_orders_best_first(server: Any, engine: Any) -> None:
    documents = [f"document number {i} about hotels" for i in range(6)]
    answer = rerank(server, {"query": "hotel", "documents": documents, "top_n": 3})
    expected = engine.rerank("hotel", documents, top_n=3)
    assert [r["index"] for r in answer["results"]] == [r.index for r in expected]


def test_qwen3_text_with_the_generated_template(qwen3_server: Any, qwen3_engine: Any) -> None:
    """Qwen3-VL-Reranker served: its own default instruction, per-request instructions, NULL for an empty side."""
    documents = ["a red sports car", "a banana", "the capital of France is Paris", ""]
    for instruction in (None, INSTRUCTION):
        body: dict[str, Any] = {"query": "capital of France", "documents": documents}
        if instruction:
            body["instruction"] = instruction
        answer = rerank(qwen3_server, body)
        expected = qwen3_engine.score_with_usage("capital of France", documents, instruction=instruction)
        assert_close(expected.scores, by_index(answer, len(documents)))
        assert answer["usage"]["prompt_tokens"] == expected.tokens


def test_qwen3_images_as_the_recipe_prepares_them(
    qwen3_server: Any, qwen3_engine: Any, pictures: dict[str, Any]
) -> None:
    """Images resized the recipe's way before sending (vLLM's own resize is then the identity): the engine's scores.

    The engine resizes Qwen3-VL images with the official code's PIL bicubic resize before its processor;
    vLLM's server resizes what it receives with the processor. Sent already resized (sides multiples of 32
    within the bounds), they are the same pixels; raw images get the same token counts.
    """
    from lychee_integrations.recipes.qwen3_vl import QWEN3_VL

    def prepared(image: Any) -> Any:
        assert QWEN3_VL.prepare_image is not None
        return QWEN3_VL.prepare_image(image, QWEN3_VL.min_pixels, QWEN3_VL.max_pixels)

    red, blue, green, gray = (prepared(pictures[k]) for k in ("red", "blue", "green", "gray"))
    documents = [("a blue striped box", [blue]), (None, [green]), ("a gray square", []), ("two", [gray, green])]
    for text, images in (("a red car", [red]), (None, [red]), ("red and blue", [red, blue])):
        body = {
            "query": content(text, images) if images else text,
            "documents": [content(t, i) if i else t for t, i in documents],
            "instruction": INSTRUCTION,
        }
        answer = rerank(qwen3_server, body)
        expected = qwen3_engine.score_with_usage(
            {"text": text, "images": images},
            [{"text": t, "images": i} for t, i in documents],
            instruction=INSTRUCTION,
        )
        assert_close(expected.scores, by_index(answer, len(documents)))
        assert answer["usage"]["prompt_tokens"] == expected.tokens
    # Raw images: vLLM's processor resizes them itself, to the same sizes (the same token counts).
    raw = [pictures[k] for k in ("red", "blue")]
    body = {"query": content("red and blue", raw), "documents": [content(None, [pictures["green"]])]}
    expected = qwen3_engine.score_with_usage({"text": "red and blue", "images": raw}, [{"image": pictures["green"]}])
    answer = rerank(qwen3_server, body)
    assert answer["usage"]["prompt_tokens"] == expected.tokens
    # These flat synthetic pictures resize alike either way (measured 2.4e-7); photos may differ slightly.
    assert_close(expected.scores, by_index(answer, 1))
