"""Schemathesis hooks for ``tests/test_schemathesis.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

A JSON schema can say that an image is a string, not that the string decodes to an image;
random strings are refused with a 400 naming the item, as documented (and as
``tests/test_api.py`` checks). So that schema-valid cases exercise everything else, the
image strings of *positive* cases are replaced with a real PNG before they are sent.
Negative cases are left as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.generation.modes import GenerationMode

from lychee_integrations.service.schemas import EXAMPLE_IMAGE


def _real_images(value: Any) -> Any:
    if isinstance(value, list):
        return [_real_images(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ("image", "url") and isinstance(item, str):
            out[key] = EXAMPLE_IMAGE
        elif key == "images" and isinstance(item, list):
            out[key] = [EXAMPLE_IMAGE if isinstance(i, str) else i for i in item]
        else:
            out[key] = _real_images(item)
    return out


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Give a positive case real images."""
    if case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE and isinstance(case.body, dict):
        case.body = _real_images(case.body)
    return case
