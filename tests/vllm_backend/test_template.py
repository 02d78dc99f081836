"""The shipped vLLM score template renders the engine's prompt byte for byte (no vLLM needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lychee_integrations.engine.pairs import build_messages
from lychee_integrations.vllm import chat_template_path, serve_command

PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


@pytest.fixture(scope="module")
def processor(tiny_checkpoint: Path) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(tiny_checkpoint))


def side(text: str | None, n_images: int) -> str:
    """What vLLM hands the template for one side: its image placeholders first, then its text."""
    return PLACEHOLDER * n_images + (text or "")


@pytest.mark.parametrize(
    ("instruction", "query", "n_query", "doc", "n_doc"),
    [
        ("Find it", "cats", 0, "a cat", 0),
        ("Find the product", None, 1, "a red shoe", 1),
        ("Find it", "a cat", 2, None, 1),
        ('Unicode: é 猫 "quotes" {{ braces }}', "q\nwith lines", 0, "d\n<Document>:", 3),
    ],
)
def test_template_renders_the_engines_prompt(
    processor: Any, instruction: str, query: str | None, n_query: int, doc: str | None, n_doc: int
) -> None:
    expected = processor.apply_chat_template(
        build_messages(instruction, query, n_query, doc, n_doc), tokenize=False, add_generation_prompt=True
    )
    template = Path(chat_template_path()).read_text()
    rendered = processor.tokenizer.apply_chat_template(
        [{"role": "query", "content": side(query, n_query)}, {"role": "document", "content": side(doc, n_doc)}],
        chat_template=template,
        tokenize=False,
        instruction=instruction,
    )
    assert rendered == expected


def test_template_defaults_to_the_recipe_instruction(processor: Any) -> None:
    from lychee_integrations.instructions import DEFAULT_INSTRUCTION

    template = Path(chat_template_path()).read_text()
    rendered = processor.tokenizer.apply_chat_template(
        [{"role": "query", "content": "q"}, {"role": "document", "content": "d"}],
        chat_template=template,
        tokenize=False,
    )
    assert f"<Instruct>: {DEFAULT_INSTRUCTION}<Query>:q\n<Document>:d<|im_end|>" in rendered


def test_serve_command_carries_the_recipe() -> None:
    command = serve_command("/models/lychee", ["--port", "9000", "--data-parallel-size", "2"])
    assert command[1:5] == ["-m", "vllm.entrypoints.launchers.api_server.entry", "--model", "/models/lychee"]
    joined = " ".join(command)
    for piece in ("--runner pooling", "--convert classify", '"from_2_way_softmax"', '"min_pixels": 3136'):
        assert piece in joined
    assert command[command.index("--chat-template") + 1] == chat_template_path()
    assert command[-4:] == ["--port", "9000", "--data-parallel-size", "2"]


def test_cli_prints_the_command(tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lychee_integrations.cli import main

    assert main(["vllm-serve", "--print-command", str(tiny_checkpoint), "--port", "8123"]) == 0
    out = capsys.readouterr().out
    assert "vllm.entrypoints.launchers.api_server.entry --model" in out and out.strip().endswith("--port 8123")


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
