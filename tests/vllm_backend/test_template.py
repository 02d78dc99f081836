"""The served vLLM score template, generated from the recipe, renders the engine's prompt byte for byte.

For both families (Lychee and Qwen3-VL-Reranker); no vLLM needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lychee_integrations.engine.pairs import build_messages
from lychee_integrations.recipes import Recipe, get_recipe
from lychee_integrations.vllm import (
    engine_arguments,
    score_template,
    serve_command,
    write_chat_template,
)

PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
FAMILIES = ("lychee", "qwen3-vl")


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> tuple[Recipe, Any]:
    """A recipe and its tiny checkpoint's processor."""
    from lychee_integrations.engine.processor import load_processor

    recipe = get_recipe(request.param)
    fixture = "tiny_checkpoint" if recipe.name == "lychee" else "tiny_qwen3_vl_checkpoint"
    checkpoint = request.getfixturevalue(fixture)
    return recipe, load_processor(str(checkpoint), min_pixels=recipe.min_pixels, max_pixels=recipe.max_pixels)


def side(text: str | None, n_images: int) -> str:
    """What vLLM hands the template for one side: its image placeholders first, then its text."""
    return PLACEHOLDER * n_images + (text or "")


def render(processor: Any, template: str, query: str, document: str, **kwargs: Any) -> str:
    rendered: str = processor.tokenizer.apply_chat_template(
        [{"role": "query", "content": query}, {"role": "document", "content": document}],
        chat_template=template,
        tokenize=False,
        **kwargs,
    )
    return rendered


@pytest.mark.parametrize(
    ("instruction", "query", "n_query", "doc", "n_doc"),
    [
        ("Find it", "cats", 0, "a cat", 0),
        ("Find the product", None, 1, "a red shoe", 1),
        ("Find it", "a cat", 2, None, 1),
        ("Find it", "a cat", 0, None, 0),  # an empty document: Qwen3-VL's NULL
        ("Find it", "a cat", 0, "", 0),
        ('Unicode: é 猫 "quotes" {{ braces }} {% raw %}', "q\nwith lines \\n", 0, "d\n<Document>:", 3),
    ],
)
def test_template_renders_the_engines_prompt(
    family: tuple[Recipe, Any], instruction: str, query: str | None, n_query: int, doc: str | None, n_doc: int
) -> None:
    recipe, processor = family
    expected = processor.apply_chat_template(
        build_messages(instruction, query, n_query, doc, n_doc, recipe=recipe),
        tokenize=False,
        add_generation_prompt=True,
    )
    template = score_template(processor, recipe)
    got = render(processor, template, side(query, n_query), side(doc, n_doc), instruction=instruction)
    assert got == expected


def test_template_defaults_to_the_recipe_instruction(family: tuple[Recipe, Any]) -> None:
    recipe, processor = family
    template = score_template(processor, recipe)
    expected = processor.apply_chat_template(
        build_messages(recipe.default_instruction, "q", 0, "d", 0, recipe=recipe),
        tokenize=False,
        add_generation_prompt=True,
    )
    assert render(processor, template, "q", "d") == expected
    assert render(processor, template, "q", "d", instruction=None) == expected
    assert render(processor, template, "q", "d", instruction="") == expected
    assert f"<Instruct>: {recipe.default_instruction}<Query>:q\n<Document>:d<|im_end|>" in expected


def test_one_default_instruction_per_family() -> None:
    lychee, qwen3 = get_recipe("lychee"), get_recipe("qwen3-vl")
    assert lychee.default_instruction == "Given a web search query, retrieve relevant passages that answer the query"
    assert qwen3.default_instruction == "Given a search query, retrieve relevant candidates that answer the query."


def test_template_is_not_a_second_copy_of_the_strings(family: tuple[Recipe, Any]) -> None:
    """The package ships no hand-written template: the served one follows the recipe's data."""
    import dataclasses

    from lychee_integrations import vllm

    recipe, processor = family
    assert not hasattr(vllm, "chat_template_path")
    changed = dataclasses.replace(recipe, system_prompt="Answer yes or no.", default_instruction="Rank.")
    rendered = render(processor, score_template(processor, changed), "q", "")
    assert rendered.startswith("<|im_start|>system\nAnswer yes or no.<|im_end|>\n")
    assert "<Instruct>: Rank.<Query>:q\n<Document>:" in rendered


def test_write_chat_template_is_stable(tmp_path: Path) -> None:
    first = write_chat_template("{{- 'a' -}}", tmp_path)
    assert write_chat_template("{{- 'a' -}}", tmp_path) == first
    assert write_chat_template("{{- 'b' -}}", tmp_path) != first
    assert Path(first).read_text() == "{{- 'a' -}}"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_engine_arguments_fit_the_family() -> None:
    lychee = engine_arguments("/m", recipe="lychee")
    assert lychee["convert"] == "classify"
    assert lychee["hf_overrides"]["method"] == "from_2_way_softmax"
    assert lychee["hf_overrides"]["classifier_from_token"] == ["no", "yes"]
    assert lychee["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 1003520}
    assert lychee["max_model_len"] == 3200
    qwen3 = engine_arguments("/m", recipe="qwen3-vl", max_length=512)
    assert "convert" not in qwen3
    assert qwen3["hf_overrides"]["architectures"] == ["Qwen3VLForSequenceClassification"]
    assert qwen3["hf_overrides"]["is_original_qwen3_reranker"] is True
    assert qwen3["hf_overrides"]["classifier_from_token"] == ["no", "yes"]
    assert qwen3["mm_processor_kwargs"] == {"min_pixels": 4096, "max_pixels": 1843200}
    assert qwen3["max_model_len"] == 512 + 5  # the Qwen3-VL cut re-appends the 5-token suffix


def test_serve_command_carries_the_recipe() -> None:
    command = serve_command(
        "/models/lychee",
        ["--port", "9000", "--data-parallel-size", "2"],
        recipe="lychee",
        chat_template="/tmp/t.jinja",
        tie_word_embeddings=False,
    )
    assert command[1:5] == ["-m", "vllm.entrypoints.launchers.api_server.entry", "--model", "/models/lychee"]
    joined = " ".join(command)
    for piece in ("--runner pooling", "--convert classify", '"from_2_way_softmax"', '"min_pixels": 3136'):
        assert piece in joined
    assert command[command.index("--chat-template") + 1] == "/tmp/t.jinja"
    assert command[-4:] == ["--port", "9000", "--data-parallel-size", "2"]


def test_serve_command_reads_the_checkpoint(tiny_qwen3_vl_checkpoint: Path) -> None:
    from lychee_integrations.engine.processor import load_processor

    command = serve_command(str(tiny_qwen3_vl_checkpoint))
    assert "--convert" not in command
    overrides = json.loads(command[command.index("--hf-overrides") + 1])
    assert overrides["architectures"] == ["Qwen3VLForSequenceClassification"]
    assert command[command.index("--max-model-len") + 1] == "10245"
    template = Path(command[command.index("--chat-template") + 1]).read_text()
    recipe = get_recipe("qwen3-vl")
    processor = load_processor(
        str(tiny_qwen3_vl_checkpoint), min_pixels=recipe.min_pixels, max_pixels=recipe.max_pixels
    )
    assert template == score_template(processor, recipe)


def test_cli_prints_the_command(
    tiny_checkpoint: Path, tiny_qwen3_vl_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lychee_integrations.cli import main

    assert main(["vllm-serve", "--print-command", str(tiny_checkpoint), "--port", "8123"]) == 0
    out = capsys.readouterr().out
    assert "vllm.entrypoints.launchers.api_server.entry --model" in out and out.strip().endswith("--port 8123")
    assert "--convert classify" in out
    assert main(["vllm-serve", "--print-command", str(tiny_qwen3_vl_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "Qwen3VLForSequenceClassification" in out and "--chat-template" in out
    # --recipe names the family instead of the checkpoint's model_type.
    assert main(["vllm-serve", "--print-command", "--recipe", "lychee", str(tiny_checkpoint)]) == 0
    assert "from_2_way_softmax" in capsys.readouterr().out


def test_cli_without_vllm_names_the_extra(tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    from lychee_integrations.cli import main

    spec = importlib.util.find_spec("vllm")
    if spec is not None and spec.origin is not None:
        pytest.skip("vLLM is installed here")
    assert main(["vllm-serve", str(tiny_checkpoint)]) == 1
    assert "lychee-integrations[vllm]" in capsys.readouterr().err


def test_cli_refuses_a_missing_model(tmp_path: Path) -> None:
    from lychee_integrations.cli import main

    with pytest.raises(SystemExit) as info:
        main(["vllm-serve", "--print-command", str(tmp_path / "nothing")])
    assert info.value.code == 2
