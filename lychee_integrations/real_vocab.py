"""The real Qwen vocabulary, offline: the BPE ranks shipped by ``dashscope`` as a tokenizer (``[real-vocab]``).

Qwen2, Qwen2.5(-VL) and Qwen3(-VL) share one byte-level BPE of 151,643 ranks. The ``dashscope``
package on PyPI (Apache-2.0) ships them as ``dashscope/resources/qwen.tiktoken`` (a base64 token,
a space and its rank per line). :func:`real_qwen_tokenizer` turns that file into the Hugging Face
tokenizer of the real checkpoints: the merges recovered from the ranks by transformers'
``TikTokenConverter``, Qwen2's pre-tokenizer (digits one by one), NFC normalisation, and the added
tokens at 151643 and up (``<|endoftext|>`` 151643, ``<|im_start|>`` 151644, ``<|im_end|>`` 151645,
``<|vision_start|>`` 151652, ``<|image_pad|>`` 151655, ...). It gives transformers' own
integration ids of the Qwen2 tokenizer, ``yes`` 9693 and ``no`` 2152.

The file is found with ``importlib.util.find_spec`` and read directly: ``dashscope`` itself (a
network client) is never imported. ``build_tiny_checkpoint(..., real_tokenizer=True)`` and
``lychee build-tiny DIR --real-tokenizer`` use it.
"""

from __future__ import annotations

import base64
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from lychee_integrations.chat_templates import read_chat_template
from lychee_integrations.errors import MissingDependencyError

__all__ = [
    "EXTRA",
    "N_RANKS",
    "QWEN2_5_VL_ADDED_TOKENS",
    "QWEN2_5_VL_VOCAB_SIZE",
    "QWEN3_VL_ADDED_TOKENS",
    "QWEN3_VL_CHAT_TEMPLATE",
    "QWEN3_VL_VOCAB_SIZE",
    "SPECIAL_TOKENS",
    "real_qwen_tokenizer",
    "tiktoken_path",
]

#: The pip extra that installs the vocabulary file.
EXTRA = "real-vocab"

#: Number of BPE ranks (ids 0 to 151642) in ``qwen.tiktoken``.
N_RANKS = 151643

#: Rows of the embedding and LM head of Qwen2.5-VL-7B (and so of lychee-rerank-mm).
QWEN2_5_VL_VOCAB_SIZE = 152064

#: Rows of the embedding and LM head of Qwen3-VL-2B (and Qwen3-VL-Reranker-2B).
QWEN3_VL_VOCAB_SIZE = 151936

#: The special tokens of Qwen2(-VL), Qwen2.5(-VL) and Qwen3(-VL), in id order from 151643.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
_NOT_SPECIAL = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)

#: The added tokens of the Qwen2.5-VL tokenizer in id order from 151643, with whether each is special.
QWEN2_5_VL_ADDED_TOKENS: tuple[tuple[str, bool], ...] = tuple((t, True) for t in SPECIAL_TOKENS) + tuple(
    (t, False) for t in _NOT_SPECIAL
)

#: Those of Qwen3(-VL): Qwen2.5-VL's and four more (151665 to 151668), none special.
QWEN3_VL_ADDED_TOKENS: tuple[tuple[str, bool], ...] = QWEN2_5_VL_ADDED_TOKENS + tuple(
    (t, False) for t in ("<tool_response>", "</tool_response>", "<think>", "</think>")
)

_MODEL_MAX_LENGTH = {"lychee": 131072, "qwen3-vl": 262144}

# The chat template of the Qwen3-VL instruct checkpoints, the ``chat_template`` of
# ``chat_template.json`` in Qwen/Qwen3-VL-2B-Instruct and Qwen/Qwen3-VL-8B-Instruct on the Hugging
# Face Hub (Qwen3-VL-Reranker ships the same). It was taken, unchanged, from public copies of that
# file (two independent GitHub copies, byte-identical, one stating it is byte-identical to
# Qwen/Qwen3-VL-8B-Instruct's); it could not be checked against the Hub itself, which is offline here.
# sha256 of the template text: 3636d0f0bd6bef02654cdffdc447b79cb2cef8ab02cc75267345946291a489e4.
QWEN3_VL_CHAT_TEMPLATE = read_chat_template("qwen3_vl.jinja")


def tiktoken_path() -> Path:
    """Return the path of ``dashscope``'s ``qwen.tiktoken``, without importing ``dashscope``.

    Raises:
        MissingDependencyError: ``dashscope`` is not installed (or has no vocabulary file).

    """
    message = (
        "the real Qwen vocabulary needs the qwen.tiktoken file of the dashscope package: "
        f"pip install 'lychee-integrations[{EXTRA}]'"
    )
    try:
        spec = importlib.util.find_spec("dashscope")
    except (ImportError, ValueError) as exc:
        raise MissingDependencyError(message) from exc
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(message)
    for location in spec.submodule_search_locations:
        path = Path(location) / "resources" / "qwen.tiktoken"
        if path.is_file():
            return path
    raise MissingDependencyError(message + " (this dashscope has no resources/qwen.tiktoken)")


def _load_ranks(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != N_RANKS or sorted(ranks.values()) != list(range(N_RANKS)):
        raise ValueError(f"{path} does not hold the {N_RANKS} Qwen BPE ranks 0..{N_RANKS - 1}")
    return ranks


@lru_cache(maxsize=2)
def _vocab_and_merges(path: str) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """Return the byte-level vocabulary and merges of the ranks (a few seconds; cached per process)."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = _load_ranks(Path(path))

    class _Converter(TikTokenConverter):  # type: ignore[misc]
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
            return ranks

    vocab, merges = _Converter().extract_vocab_merges_from_model(path)
    return dict(vocab), tuple((str(a), str(b)) for a, b in merges)


def real_qwen_tokenizer(family: str = "lychee") -> Any:
    """Return the real Qwen tokenizer of a family (``"lychee"``: Qwen2.5-VL; ``"qwen3-vl"``), offline.

    A ``Qwen2Tokenizer`` on the 151,643 ranks of ``qwen.tiktoken`` with the family's added tokens
    at 151643 and up, its special tokens (``<|im_start|>`` ... ``<|video_pad|>``), ``<|im_end|>``
    as end of sequence and ``<|endoftext|>`` as padding, as the real checkpoints' tokenizer.

    Raises:
        MissingDependencyError: ``dashscope`` (the ``[real-vocab]`` extra) is not installed.
        ValueError: An unknown family.

    """
    if family not in _MODEL_MAX_LENGTH:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(_MODEL_MAX_LENGTH)}")
    from tokenizers import AddedToken
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    vocab, merges = _vocab_and_merges(str(tiktoken_path()))
    added = QWEN3_VL_ADDED_TOKENS if family == "qwen3-vl" else QWEN2_5_VL_ADDED_TOKENS
    # tokenizers takes the merges as pairs; the real tokenizers have no unknown token.
    options: dict[str, Any] = {"merges": list(merges), "unk_token": None}
    tokenizer = Qwen2Tokenizer(
        vocab=dict(vocab),
        **options,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        errors="replace",
        split_special_tokens=False,
    )
    for offset, (content, special) in enumerate(added[1:], start=1):
        token = AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False, single_word=False)
        if special:
            tokenizer.add_special_tokens({"additional_special_tokens": [token]}, replace_extra_special_tokens=False)
        else:
            tokenizer.add_tokens([token])
        if tokenizer.convert_tokens_to_ids(content) != N_RANKS + offset:
            raise RuntimeError(f"{content!r} did not get id {N_RANKS + offset}")
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.model_max_length = _MODEL_MAX_LENGTH[family]
    return tokenizer
