"""Offline checkpoints of the real architectures, for tests and benchmarks (``[engine]`` extra).

:func:`build_tiny_checkpoint` writes a tiny, random checkpoint of the real architecture with
``save_pretrained``. Loading that directory exercises exactly the code path that loads
``vec-ai/lychee-rerank-mm``, without any download, so the package's tests and its users' CI
can run the real prompt, batching and scoring end to end on a CPU. It is also importable as
``lychee_integrations.testing.build_tiny_checkpoint``.

Example:
    >>> from lychee_integrations.tiny import build_tiny_checkpoint
    >>> path = build_tiny_checkpoint("/tmp/tiny-lychee")  # doctest: +SKIP

"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lychee_integrations.chat_templates import read_chat_template
from lychee_integrations.engine.checkpoint import RANDOM_MARKER
from lychee_integrations.real_vocab import SPECIAL_TOKENS

logger = logging.getLogger(__name__)

__all__ = [
    "FAMILIES",
    "PRESETS",
    "QWEN2_VL_CHAT_TEMPLATE",
    "QWEN3_VL_CHAT_TEMPLATE",
    "QWEN3_VL_PRESETS",
    "REAL_VOCAB_SIZE",
    "build_tiny_checkpoint",
    "preset_config",
]

#: Model families :func:`build_tiny_checkpoint` can build.
FAMILIES = ("lychee", "qwen3-vl")

#: Vocabulary size of the real Qwen2.5-VL language model head.
REAL_VOCAB_SIZE = 152064

#: The chat template shipped with Qwen2-VL and Qwen2.5-VL checkpoints (a model format fact).
QWEN2_VL_CHAT_TEMPLATE = read_chat_template("qwen2_5_vl.jinja")

#: A Qwen3-VL-style chat template (written from the format: system, user and assistant turns,
#: ``<|vision_start|><|image_pad|><|vision_end|>`` per image, no default system message).
QWEN3_VL_CHAT_TEMPLATE = read_chat_template("qwen3_vl_toy.jinja")

#: Architecture sizes: ``tiny`` for tests; ``small`` (8 layers of 512, head size 64) for CPU benchmarks
#: and for vLLM, whose CPU attention needs a head size of 64. ``build_tiny_checkpoint`` also takes a dict of the
#: same shape (the benchmarks' 7B preset, ``benchmarks/presets.py``).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "text": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "mrope_section": [2, 3, 3],
        },
        "vision": {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "fullatt_block_indexes": [1],
        },
    },
    "small": {
        "text": {
            "hidden_size": 512,
            "intermediate_size": 1408,
            "num_hidden_layers": 8,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "mrope_section": [8, 12, 12],
        },
        "vision": {
            "depth": 2,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_heads": 2,
            "fullatt_block_indexes": [1],
        },
    },
}


_CORPUS = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided.",
    'Note that the answer can only be "yes" or "no".',
    "Given a web search query, retrieve relevant passages that answer the query",
    "The quick brown fox jumps over the lazy dog. A cat sits on the mat in the sun.",
    "Retrieval augmented generation finds documents, images and passages for a question.",
    "How do I reset my password? Open settings, choose security, then follow the steps.",
    "Product search: red running shoes, a blue backpack, wireless headphones and a lamp.",
    "Paris is the capital of France. Berlin is the capital of Germany. 1 2 3 4 5 6 7 8 9 0",
    "system user assistant Instruct Query Document image picture photo screenshot page",
)
_ANSWER_LINES = ("yes", "no", "yes no", "no yes")


def _train_tokenizer(vocab_target: int) -> tuple[dict[str, int], Any]:
    import tokenizers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    pre = tokenizers.pre_tokenizers
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.normalizer = tokenizers.normalizers.NFC()
    tok.pre_tokenizer = pre.Sequence(
        [
            pre.Split(tokenizers.Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_target,
        min_frequency=1,
        initial_alphabet=pre.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    lines = list(_CORPUS) * 4 + list(_ANSWER_LINES) * 50
    tok.train_from_iterator(lines, trainer=trainer)
    model_state = json.loads(tok.model.__getstate__())
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1]) for m in model_state["merges"]]
    return dict(model_state["vocab"]), merges


def _config(
    config_class: Any, shape: dict[str, Any], vocab_size: int, ids: dict[str, int], rope: dict[str, Any], **vision: Any
) -> Any:
    text = dict(shape["text"])
    rope = {"rope_type": "default", **rope, "mrope_section": text.pop("mrope_section")}
    return config_class(
        text_config={
            **text,
            "vocab_size": vocab_size,
            "max_position_embeddings": 128000,
            "rope_parameters": rope,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={**shape["vision"], **vision, "out_hidden_size": text["hidden_size"]},
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def preset_config(preset: str | dict[str, Any], vocab_size: int, token_ids: dict[str, int]) -> Any:
    """Return the ``Qwen2_5_VLConfig`` of a preset for a tokenizer's special token ids."""
    from transformers import Qwen2_5_VLConfig

    shape = PRESETS[preset] if isinstance(preset, str) else preset
    return _config(Qwen2_5_VLConfig, shape, vocab_size, token_ids, {"rope_theta": 1000000.0}, window_size=112)


#: Qwen3-VL architecture sizes: ``tiny`` for tests; ``small`` (4 layers of 512, head size 64) for vLLM,
#: whose CPU attention needs a head size of 64.
QWEN3_VL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "text": {**PRESETS["tiny"]["text"], "head_dim": 16},
        "vision": {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2},
    },
    "small": {
        "text": {**PRESETS["small"]["text"], "num_hidden_layers": 4, "head_dim": 64},
        "vision": {"depth": 2, "hidden_size": 128, "intermediate_size": 256, "num_heads": 2},
    },
}


def _qwen3_vl_config(vocab_size: int, ids: dict[str, int], preset: Any) -> Any:
    from transformers import Qwen3VLConfig

    rope = {"rope_theta": 5000000.0, "mrope_interleaved": True}
    vision = {"patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 64}
    shape = QWEN3_VL_PRESETS[preset]
    return _config(Qwen3VLConfig, shape, vocab_size, ids, rope, **vision, deepstack_visual_indexes=[0])


def _tiny_tokenizer() -> Any:
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    vocab, merges = _train_tokenizer(vocab_target=400)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, clean_up_tokenization_spaces=False)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.model_max_length = 32768
    for word in ("yes", "no"):
        if len(tokenizer.encode(word, add_special_tokens=False)) != 1:
            raise RuntimeError(f"tiny tokenizer did not learn {word!r} as one token")
    return tokenizer


def build_tiny_checkpoint(
    path: str | Path,
    *,
    family: str = "lychee",
    vocab_size: int | None = None,
    preset: str | dict[str, Any] = "tiny",
    seed: int = 0,
    dtype: str = "float32",
    real_tokenizer: bool = False,
) -> Path:
    """Build and save a random Lychee-architecture checkpoint for offline use.

    The checkpoint is a real ``Qwen2_5_VLForConditionalGeneration`` with a byte-level
    BPE tokenizer trained on a few sentences (``yes`` and ``no`` are single tokens), the
    stock Qwen2.5-VL image and video processors and chat template. Scores it produces are
    meaningless but deterministic for a given ``seed``.

    Args:
        path: Directory to write (created if missing; existing files are overwritten).
        vocab_size: Size of the model's vocabulary. ``None`` uses the tokenizer's own size;
            :data:`REAL_VOCAB_SIZE` (152064) gives the LM-head cost of the real model,
            which is what benchmarks want.
        preset: ``"tiny"`` (under 1 MB), ``"small"`` (8 layers of 512, head size 64: CPU
            benchmarks and vLLM), or a dict of :data:`PRESETS`' shape (e.g. the 7B shapes of
            ``benchmarks/presets.py``, 8.3B random parameters: for GPU benchmarks, about 16 GB in bfloat16).
        seed: Seed for the random weights.
        dtype: ``"float32"`` or ``"bfloat16"``, the dtype the weights are saved in.
        family: ``"lychee"`` (Qwen2.5-VL) or ``"qwen3-vl"`` (a tiny
            ``Qwen3VLForConditionalGeneration`` with a Qwen3-VL processor, patch 16, merge 2;
            ``preset`` is ``"tiny"`` or ``"small"``, see :data:`QWEN3_VL_PRESETS`).
        real_tokenizer: Use the real Qwen tokenizer of the family (151,643 BPE ranks, its added
            and special tokens, the official chat template; :mod:`lychee_integrations.real_vocab`,
            the ``[real-vocab]`` extra) instead of the small toy one, and by default an embedding
            of the real width (152064 rows; 151936 for ``qwen3-vl``). Prompts then tokenize, id
            for id, like the real model's.

    Returns:
        The directory, ready for ``LycheeReranker(model=str(path))``.

    Raises:
        ValueError: An unknown family or preset, or a vocabulary smaller than the tokenizer.
        MissingDependencyError: ``real_tokenizer`` without the ``[real-vocab]`` extra.

    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    qwen3 = family == "qwen3-vl"
    if qwen3 and (not isinstance(preset, str) or preset not in QWEN3_VL_PRESETS):
        raise ValueError(f"family 'qwen3-vl' has the presets {', '.join(QWEN3_VL_PRESETS)}, not {preset!r}")
    if not qwen3 and isinstance(preset, str) and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    import torch
    import transformers
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, chat_template, vocab_size = _tokenizer_for(family, real_tokenizer, vocab_size)
    ids: dict[str, int] = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}  # type: ignore[misc]
    n_vocab = vocab_size if vocab_size is not None else len(tokenizer)
    if n_vocab < len(tokenizer):
        raise ValueError(f"vocab_size={n_vocab} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    processor: Any
    model_class: Any
    if qwen3:
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

        patching = {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2}
        processor = transformers.Qwen3VLProcessor(
            image_processor=Qwen2VLImageProcessor(
                **patching, size={"shortest_edge": 4 * 32 * 32, "longest_edge": 1800 * 32 * 32}
            ),
            tokenizer=tokenizer,
            video_processor=Qwen3VLVideoProcessor(**patching),
            chat_template=chat_template,
        )
        model_class, config = transformers.Qwen3VLForConditionalGeneration, _qwen3_vl_config(n_vocab, ids, preset)
    else:
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

        processor = transformers.Qwen2_5_VLProcessor(
            image_processor=Qwen2VLImageProcessor(min_pixels=4 * 28 * 28, max_pixels=1280 * 28 * 28),
            tokenizer=tokenizer,
            video_processor=Qwen2VLVideoProcessor(),
            chat_template=chat_template,
        )
        model_class, config = transformers.Qwen2_5_VLForConditionalGeneration, preset_config(preset, n_vocab, ids)
    torch.manual_seed(seed)
    device = "cuda" if not isinstance(preset, str) and torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = model_class(config).to(getattr(torch, dtype))
    if preset == "tiny":
        _spread_weights(model)
    setattr(model.config, RANDOM_MARKER, True)  # the engine says so when it loads it
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if qwen3:
        logger.info("built tiny Qwen3-VL-Reranker checkpoint at %s", out)
    else:
        logger.info("built tiny Lychee checkpoint at %s (transformers %s)", out, transformers.__version__)
    return out


def _tokenizer_for(family: str, real_tokenizer: bool, vocab_size: int | None) -> tuple[Any, str, int | None]:
    """Return the tokenizer, chat template and default vocabulary size of a family: toy or real."""
    if not real_tokenizer:
        template = QWEN3_VL_CHAT_TEMPLATE if family == "qwen3-vl" else QWEN2_VL_CHAT_TEMPLATE
        return _tiny_tokenizer(), template, vocab_size
    from lychee_integrations import real_vocab

    tokenizer = real_vocab.real_qwen_tokenizer(family)
    if family == "qwen3-vl":
        default, template = real_vocab.QWEN3_VL_VOCAB_SIZE, real_vocab.QWEN3_VL_CHAT_TEMPLATE
    else:
        default, template = real_vocab.QWEN2_5_VL_VOCAB_SIZE, QWEN2_VL_CHAT_TEMPLATE
    return tokenizer, template, default if vocab_size is None else vocab_size


def _spread_weights(model: Any) -> None:
    """Wider random weights than the default init, so that a tiny model's scores spread over (0, 1)."""
    import torch

    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0.0, 0.2)
