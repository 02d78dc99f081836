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


def _string_branch(prop: dict[str, Any]) -> dict[str, Any]:
    """Return the ``{"type": "string"}`` branch of a property (or the property itself)."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "string":
            return dict(branch)
    raise KeyError("no string branch")


def _array_branch(prop: dict[str, Any]) -> dict[str, Any]:
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "array":
            return cast("dict[str, Any]", branch)
    raise KeyError("no array branch")


def _refine_input_item(schema: dict[str, Any]) -> None:
    # Something to score: non-blank text, an image, or at least one image; never image and images.
    schema["anyOf"] = [
        {"required": ["text"], "properties": {"text": _TEXT}},
        {"required": ["image"], "properties": {"image": {"type": "string"}}},
        {"required": ["images"], "properties": {"images": {"type": "array", "minItems": 1}}},
    ]
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
    task = _string_branch(props["task"])
    task["enum"] = [t.name for t in list_templates()]
    props["task"]["anyOf"] = [task, _NULL]
    request["allOf"] = [*request.get("allOf", []), _NOT_BOTH_TASK_AND_INSTRUCTION]


def _text_strings(prop: dict[str, Any]) -> None:
    """Give every plain-string branch of ``prop`` (an input) the non-blank pattern."""
    for branch in prop.get("anyOf", []):
        if branch.get("type") == "string":
            branch["pattern"] = _TEXT["pattern"]


def refine_openapi(schema: dict[str, Any], *, max_documents: int) -> dict[str, Any]:
    """Add the input rules to a description made by FastAPI from :mod:`.schemas` (in place).

    Args:
        schema: The OpenAPI description.
        max_documents: This server's document cap.

    Returns:
        ``schema``.

    """
    components = schema.get("components", {}).get("schemas", {})
    if "InputItem" in components:
        _refine_input_item(components["InputItem"])
    if "ContentPart" in components:
        _refine_content_part(components["ContentPart"])
    if "MultiModalContent" in components:
        components["MultiModalContent"]["properties"]["content"]["maxItems"] = max_documents
    for name in ("RerankRequest", "CompatRerankRequest"):
        request = components.get(name)
        if request is None:
            continue
        _refine_instruction(request)
        props = request["properties"]
        _text_strings(props["query"])
        documents = _array_branch(props["documents"])
        documents["maxItems"] = max_documents
        _text_strings(documents["items"])
        if "document" in props:
            _text_strings(props["document"])
    return schema
