"""The engine against the plain one-pair-per-forward reference of tests/recipe_reference.py.

The reference follows shared/docs/lychee-reference.md literally: the stock processor,
``apply_chat_template`` with real image parts, a full forward pass over all logits and
the softmax of the ``yes``/``no`` logits at the last position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_image
from recipe_reference import DEFAULT_INSTRUCTION as DEFAULT
from recipe_reference import SYSTEM, RecipeReference


@pytest.fixture(scope="module")
def reference(tiny_checkpoint: Path) -> RecipeReference:
    return RecipeReference(tiny_checkpoint)


RED = make_image((220, 20, 20))
BLUE = make_image((20, 20, 220), size=(120, 90), stripe=30)
GREEN = make_image((20, 200, 40), size=(200, 40), stripe=10)

CASES = {
    "text-text": ("what is the capital of France", [], "Paris is the capital of France.", []),
    "text-image": ("a red square", [], None, [RED]),
    "image-text": (None, [BLUE], "a blue picture with a stripe", []),
    "image-image": (None, [BLUE], None, [GREEN]),
    "text+image both sides": ("find this product", [RED], "red running shoes", [GREEN]),
    "multi-image document": ("compare the colours", [], "three photos", [RED, BLUE, GREEN]),
}


def as_input(text: str | None, images: list[Any]) -> Any:
    if not images:
        return text
    return {"text": text, "images": images}


@pytest.mark.parametrize("case", list(CASES))
def test_engine_matches_reference(case: str, tiny_reranker: Any, reference: RecipeReference) -> None:
    q_text, q_images, d_text, d_images = CASES[case]
    expected, expected_ids = reference.score(DEFAULT, q_text, q_images, d_text, d_images)
    pair = tiny_reranker.encode(as_input(q_text, q_images), [as_input(d_text, d_images)])[0]
    assert list(pair.input_ids) == expected_ids
    [got] = tiny_reranker.score(as_input(q_text, q_images), [as_input(d_text, d_images)])
    assert got == pytest.approx(expected, abs=1e-5)


def test_all_cases_in_one_batch_match_reference(tiny_reranker: Any, reference: RecipeReference) -> None:
    """Mixed modalities in one call (one padded batch) keep each pair's reference score."""
    instruction = "Given a query, retrieve documents that match it"
    query = {"text": "colourful things", "image": RED}
    docs = [as_input(d_text, d_images) for _, _, d_text, d_images in CASES.values()]
    expected = [reference.score(instruction, "colourful things", [RED], t, i)[0] for _, _, t, i in CASES.values()]
    got = tiny_reranker.score(query, docs, instruction=instruction)
    assert got == pytest.approx(expected, abs=1e-5)


def test_rendered_prompt_is_byte_exact(tiny_reranker: Any, reference: RecipeReference) -> None:
    """The documented rendering of a text query against an image+text document."""
    pair = tiny_reranker.encode("cats", [{"text": "a cat", "image": RED}], instruction="Find it")[0]
    tokenizer = reference.processor.tokenizer
    rendered = tokenizer.decode(list(pair.input_ids), skip_special_tokens=False)
    n_image = rendered.count("<|image_pad|>")
    assert n_image == pair.images[0].n_tokens > 0
    assert rendered == (
        "<|im_start|>system\n" + SYSTEM + "<|im_end|>\n<|im_start|>user\n<Instruct>: Find it<Query>:cats\n"
        "<Document>:<|vision_start|>" + "<|image_pad|>" * n_image + "<|vision_end|>a cat<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_task_template_changes_the_instruction(tiny_reranker: Any, reference: RecipeReference) -> None:
    from lychee_integrations.instructions import get_template

    instruction = get_template("product_search").instruction
    expected, _ = reference.score(instruction, "red shoes", [], None, [RED])
    [got] = tiny_reranker.score("red shoes", [{"image": RED}], task="product_search")
    assert got == pytest.approx(expected, abs=1e-5)
