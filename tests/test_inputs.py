"""Coercion of the caller's values to RerankInput, including a fuzz of the dict form."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from lychee_integrations.errors import InvalidInputError, UnsupportedInputError
from lychee_integrations.inputs import RerankInput, to_rerank_input


def test_forms() -> None:
    img = Image.new("RGB", (2, 2))
    assert to_rerank_input("hello", item="query") == RerankInput(text="hello")
    assert to_rerank_input(img, item="query").images == (img,)
    assert to_rerank_input(Path("a.png"), item="query").images == (Path("a.png"),)
    assert to_rerank_input(b"\x89PNG", item="query").kind == "image"
    assert to_rerank_input({"text": "t", "image": "x.png"}, item="q").kind == "text+image"
    assert to_rerank_input({"text": "t", "images": ["a", "b"]}, item="q").images == ("a", "b")
    assert to_rerank_input({"text": "  "}, item="q").kind == "empty"
    assert to_rerank_input(RerankInput("t", ("a",)), item="q") == RerankInput("t", ("a",))


@pytest.mark.parametrize(
    ("value", "error", "fragment"),
    [
        (None, UnsupportedInputError, "is None"),
        (1, UnsupportedInputError, "type int"),
        ({"text": 3}, UnsupportedInputError, "text is an object of type int"),
        ({"image": 3}, UnsupportedInputError, "image is an object of type int"),
        ({"images": "a.png"}, UnsupportedInputError, "must be a list"),
        ({"images": ["a.png", None]}, UnsupportedInputError, "document 2 image 1"),
        ({"image": "a", "images": ["b"]}, InvalidInputError, "not both"),
        ({"picture": "a"}, InvalidInputError, "unknown key"),
        (["a", "b"], UnsupportedInputError, "type list"),
    ],
)
def test_bad_values(value: Any, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        to_rerank_input(value, item="document 2", index=2)
    assert fragment in str(info.value)
    assert str(info.value).startswith("document 2")
    assert info.value.index == 2  # type: ignore[attr-defined]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["text", "image", "images", "other"]), json_values, max_size=3))
def test_fuzz_dict_form(value: dict[str, Any]) -> None:
    """Any JSON-like dict either coerces or raises the package's own error naming the item."""
    try:
        result = to_rerank_input(value, item="document 0", index=0)
    except InvalidInputError as exc:
        assert str(exc).startswith("document 0")
    else:
        assert isinstance(result, RerankInput)


def test_import_is_light() -> None:
    code = (
        "import sys, lychee_integrations, lychee_integrations.instructions, lychee_integrations.inputs;"
        "heavy = [m for m in ('torch', 'transformers', 'langchain_core', 'llama_index', 'gradio', 'fastapi')"
        " if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
