"""Make the OpenAPI description say what the server accepts, so that a schema-valid request is served.

The pydantic models describe the *shape* of a request; the rules that the package's input
layer checks (non-empty text, ``image`` or ``images`` but not both, known task names, no
``task`` with ``instruction``, the document cap of this server, the content-part forms) are
added here to the generated description. Only what a JSON schema can say is added: whether
an image string decodes to an image is still the server's to find out (answered with 400).
"""

from __future__ import annotations

from typing import Any, cast

from lychee_integrations.instructions import list_templates

__all__ = ["refine_openapi"]

#: A string with at least one non-blank character (the server strips text).
_TEXT = {"type": "string", "pattern": r"\S"}
_NULL = {"type": "null"}
_NOT_BOTH_TASK_AND_INSTRUCTION = {
    "not": {
        "required": ["task", "instruction"],
        "properties": {"task": {"type": "string"}, "instruction": {"type": "string"}},
    }
}


def _branch(prop: dict[str, Any], kind: str) -> dict[str, Any]:
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == kind:
            return cast("dict[str, Any]", branch)
    raise KeyError(f"no {kind} branch")


def _refine_input_item(schema: dict[str, Any], max_images: int | None) -> None:
    # Something to score: non-blank text, an image, or at least one image; never image and images.
    schema["anyOf"] = [
        {"required": ["text"], "properties": {"text": _TEXT}},
        {"required": ["image"], "properties": {"image": {"type": "string"}}},
        {"required": ["images"], "properties": {"images": {"type": "array", "minItems": 1}}},
    ]
    if max_images is not None:
        _branch(schema["properties"]["images"], "array")["maxItems"] = max_images
    schema["not"] = {
        "required": ["image", "images"],
        "properties": {"image": {"type": "string"}, "images": {"type": "array"}},
    }


def _refine_content_part(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [
        {
            "required": ["type", "text"],
            "properties": {"type": {"const": "text"}, "text": _TEXT, "image_url": _NULL},
        },
        {
            "required": ["type", "image_url"],
            "properties": {"type": {"const": "image_url"}, "image_url": {"type": "object"}, "text": _NULL},
        },
    ]


def _refine_instruction(request: dict[str, Any]) -> None:
    props = request["properties"]
    props["instruction"]["anyOf"] = [_TEXT, _NULL]
    task = dict(_branch(props["task"], "string"))
    task["enum"] = [t.name for t in list_templates()]
    props["task"]["anyOf"] = [task, _NULL]
    request["allOf"] = [*request.get("allOf", []), _NOT_BOTH_TASK_AND_INSTRUCTION]


def _text_strings(prop: dict[str, Any]) -> None:
    for branch in prop.get("anyOf", []):
        if branch.get("type") == "string":
            branch["pattern"] = _TEXT["pattern"]


def _refine_truncation(props: dict[str, Any], max_length: int | None) -> None:
    """``truncate_prompt_tokens``: -1, null, or (when the model's limit is known) at least ``max_length``."""
    if "truncate_prompt_tokens" in props:
        at_least = [{"type": "integer", "minimum": max_length}] if max_length is not None else []
        props["truncate_prompt_tokens"]["anyOf"] = [{"type": "integer", "enum": [-1]}, *at_least, _NULL]


def _same_lengths(max_documents: int) -> dict[str, Any]:
    """``/v1/score``: one ``text_1`` (or a one-item list), or two lists of the same length."""
    lists = [
        {
            "required": ["text_2"],
            "properties": {
                "text_1": {"type": "array", "minItems": n, "maxItems": n},
                "text_2": {"type": "array", "minItems": n, "maxItems": n},
            },
        }
        for n in range(max_documents + 1)
        if n != 1
    ]
    return {
        "anyOf": [
            {"properties": {"text_1": {"not": {"type": "array"}}}},
            {"properties": {"text_1": {"type": "array", "minItems": 1, "maxItems": 1}}},
            *lists,
        ]
    }


def refine_openapi(
    schema: dict[str, Any],
    *,
    max_documents: int,
    max_length: int | None = None,
    max_images_per_item: int | None = None,
) -> dict[str, Any]:
    """Add the input rules to a description made by FastAPI from :mod:`.schemas` (in place).

    Args:
        schema: The OpenAPI description.
        max_documents: This server's document cap.
        max_length: The model's tokens per pair, when known (``truncate_prompt_tokens``).
        max_images_per_item: This server's cap on images in one query or document: the
            ``images`` list's ``maxItems`` (a content list of image parts is capped by
            ``max_documents``). The per-request caps (images, pixels) are no schema's to say.

    Returns:
        ``schema``.

    """
    components = schema.get("components", {}).get("schemas", {})
    if "InputItem" in components:
        _refine_input_item(components["InputItem"], max_images_per_item)
    if "ContentPart" in components:
        _refine_content_part(components["ContentPart"])
    if "MultiModalContent" in components:
        content = components["MultiModalContent"]["properties"]["content"]
        content["maxItems"] = max_documents  # the server checks it for a content list as an item too
    for name in ("RerankRequest", "CompatRerankRequest", "ScoreV1Request"):
        request = components.get(name)
        if request is None:
            continue
        _refine_instruction(request)
        props = request["properties"]
        for field in ("query", "document", "text_1", "text_2"):  # an input
            if field in props:
                _text_strings(props[field])
        for field in ("documents", "text_1", "text_2"):  # a list of inputs
            if field in props:
                items = _branch(props[field], "array")
                items["maxItems"] = max_documents
                _text_strings(items["items"])
        if name == "ScoreV1Request":
            request["allOf"] = [*request["allOf"], _same_lengths(max_documents)]
        _refine_truncation(props, max_length)
    return schema
