"""The instruction template registry: built-ins, user templates, resolution, errors."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lychee_integrations.errors import ConfigurationError
from lychee_integrations.instructions import (
    DEFAULT_INSTRUCTION,
    DEFAULT_TASK,
    InstructionRegistry,
    InstructionTemplate,
    default_registry,
    get_template,
    list_templates,
    register_template,
    resolve_instruction,
)

USE_CASES = (
    "web_search",
    "factual_qa",
    "knowledge_base_guide",
    "product_search",
    "text_to_image",
    "image_search",
    "image_to_text",
    "image_text_consistency",
    "visual_document",
    "customer_support",
)


@pytest.fixture()
def custom_template() -> Iterator[str]:
    """A template registered in the process-wide registry for one test, then removed."""
    name = "test_legal_statutes"
    register_template(name, "Given a legal question, retrieve the statutes that apply", "Law firms.")
    yield name
    default_registry.unregister(name)


def test_builtin_templates_cover_the_use_cases() -> None:
    names = [t.name for t in list_templates()]
    assert names[: len(USE_CASES)] == list(USE_CASES)
    for template in list_templates():
        assert template.instruction.strip() == template.instruction
        assert template.instruction.startswith("Given ")
        assert template.description


def test_default_instruction_is_the_recipe_default() -> None:
    assert DEFAULT_INSTRUCTION == "Given a web search query, retrieve relevant passages that answer the query"
    assert get_template(DEFAULT_TASK).instruction == DEFAULT_INSTRUCTION
    assert resolve_instruction() == DEFAULT_INSTRUCTION


def _documented_templates() -> dict[str, tuple[str, str]]:
    """The built-in templates as docs/templates.md tabulates them: name -> (description, instruction)."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "templates.md").read_text("utf-8")
    section = docs.split("## Built-in templates", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.+?) \| (.+?) \|$", section, flags=re.MULTILINE)
    return {name: (description, instruction) for name, description, instruction in rows}


def test_templates_json_holds_exactly_the_documented_templates() -> None:
    """templates.json, the registry built from it and the documented table agree, in order."""
    import lychee_integrations

    documented = _documented_templates()
    assert list(documented) == list(USE_CASES)
    data = json.loads((Path(lychee_integrations.__file__).parent / "templates.json").read_text("utf-8"))
    assert list(data) == list(documented)
    assert {name: (e["description"], e["instruction"]) for name, e in data.items()} == documented
    builtins = list_templates()[: len(documented)]
    assert {t.name: (t.description, t.instruction) for t in builtins} == documented
    assert [t.name for t in builtins] == list(documented)


@pytest.mark.parametrize("task", USE_CASES)
def test_resolve_by_task_returns_the_template_text(task: str) -> None:
    assert resolve_instruction(task=task) == get_template(task).instruction


def test_resolve_free_instruction_is_used_verbatim() -> None:
    text = "Given a bug report,  retrieve the commits that fix it "
    assert resolve_instruction(instruction=text) == text


def test_resolve_refuses_both() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        resolve_instruction(task="web_search", instruction="anything")


@pytest.mark.parametrize(("task", "instruction"), [("", None), ("  ", None), (None, ""), (None, "   ")])
def test_resolve_refuses_empty_values(task: str | None, instruction: str | None) -> None:
    with pytest.raises(ConfigurationError, match="non-empty string"):
        resolve_instruction(task=task, instruction=instruction)


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_instruction(task="no_such_task")
    message = str(info.value)
    assert "'no_such_task'" in message
    for name in USE_CASES:
        assert name in message
    assert "register_template" in message


def test_user_template_is_registered_listed_and_resolved(custom_template: str) -> None:
    assert custom_template in [t.name for t in list_templates()]
    assert custom_template in default_registry
    assert get_template(custom_template) == InstructionTemplate(
        custom_template, "Given a legal question, retrieve the statutes that apply", "Law firms."
    )
    assert resolve_instruction(task=custom_template).startswith("Given a legal question")


def test_duplicate_name_needs_overwrite(custom_template: str) -> None:
    with pytest.raises(ConfigurationError, match="overwrite=True"):
        register_template(custom_template, "Given something else, retrieve it")
    assert get_template(custom_template).instruction.startswith("Given a legal question")
    register_template(custom_template, "Given something else, retrieve it", overwrite=True)
    assert get_template(custom_template).instruction == "Given something else, retrieve it"


def test_unregister() -> None:
    registry = InstructionRegistry([InstructionTemplate("a", "Given a, retrieve a"), InstructionTemplate("b", "x")])
    assert registry.unregister("a").name == "a"
    assert registry.names() == ["b"]
    with pytest.raises(ConfigurationError, match="known templates: b"):
        registry.unregister("a")


@pytest.mark.parametrize(
    ("name", "instruction", "description", "match"),
    [
        ("", "x", "", "template name"),
        ("has space", "x", "", "letters, digits"),
        ("dots.not.allowed", "x", "", "letters, digits"),
        ("ok", "", "", "instruction of template 'ok'"),
        ("ok", None, "", "instruction of template 'ok'"),
        ("ok", "x", 3, "description"),
    ],
)
def test_register_validates(name: str, instruction: object, description: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        InstructionRegistry().register(name, instruction, description)  # type: ignore[arg-type]


def test_registries_are_independent() -> None:
    registry = InstructionRegistry()
    registry.register("only_here", "Given x, retrieve y")
    assert registry.names() == ["only_here"]
    assert "only_here" not in default_registry
    with pytest.raises(ConfigurationError, match=r"known templates: \(none registered\)"):
        InstructionRegistry().get("anything")


def test_load_json_file_and_mapping(tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    path.write_text(
        json.dumps({"faq": "Given a question, retrieve the FAQ entry", "docs": {"instruction": "Given x, find y"}}),
        encoding="utf-8",
    )
    registry = InstructionRegistry()
    assert registry.load_json(path) == ["faq", "docs"]
    assert registry.get("faq").instruction == "Given a question, retrieve the FAQ entry"
    assert registry.load_json({"more": {"instruction": "Given a, b", "description": "d"}}) == ["more"]
    assert registry.get("more").description == "d"
    assert registry.names() == ["faq", "docs", "more"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json", "cannot read templates"),
        ("[1, 2]", "JSON object"),
        ('{"a": 3}', "must be a string or an object"),
        ('{"a": {"description": "no instruction"}}', "must be a string or an object"),
        ('{"a": {"instruction": "x", "extra": 1}}', "must be a string or an object"),
        ('{"bad name": "x"}', "letters, digits"),
    ],
)
def test_load_json_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=match):
        InstructionRegistry().load_json(path)


def test_load_json_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read templates"):
        InstructionRegistry().load_json(tmp_path / "missing.json")


def test_load_json_is_all_or_nothing() -> None:
    registry = InstructionRegistry([InstructionTemplate("taken", "Given a, b")])
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.load_json({"new_one": "Given c, d", "taken": "Given e, f"})
    assert registry.names() == ["taken"]
    with pytest.raises(ConfigurationError, match="must be a string"):
        registry.load_json({"fine": "Given c, d", "broken": 1})
    assert registry.names() == ["taken"]
    assert registry.load_json({"new_one": "Given c, d", "taken": "Given e, f"}, overwrite=True)
    assert registry.get("taken").instruction == "Given e, f"


def test_concurrent_registration_is_safe() -> None:
    registry = InstructionRegistry()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for j in range(50):
                registry.register(f"t{k}_{j}", f"Given {k}, retrieve {j}")
                registry.get(f"t{k}_{j}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(registry.names()) == 400
