"""Chat templates the offline checkpoints ship, kept as data files (``*.jinja`` beside this module).

``qwen2_5_vl.jinja``: the template of the Qwen2-VL and Qwen2.5-VL checkpoints. ``qwen3_vl.jinja``:
the official Qwen3-VL instruct template (provenance in :mod:`lychee_integrations.real_vocab`).
``qwen3_vl_toy.jinja``: a short Qwen3-VL-style template for the toy-tokenizer checkpoint.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["read_chat_template"]


def read_chat_template(name: str) -> str:
    """Return the text of the template file ``name``, byte for byte."""
    return resources.files(__name__).joinpath(name).read_bytes().decode("utf-8")
