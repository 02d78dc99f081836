"""The benchmarks' checkpoints: presets beyond the package's own (`lychee_integrations.tiny.PRESETS`), options."""

import argparse
from pathlib import Path
from typing import Any

from lychee_integrations.tiny import build_tiny_checkpoint

#: The real Qwen2.5-VL-7B shapes (random weights, 8.3B parameters): for GPU benchmarks.
SEVEN_B: dict[str, Any] = {
    "text": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "mrope_section": [16, 24, 24],
    },
    "vision": {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "fullatt_block_indexes": [7, 15, 23, 31],
    },
}

#: Engine options that turn off the caches which outlive a call: the benchmarks repeat their inputs
#: call after call, so with those caches on they would time cache hits, not the work.
NO_CROSS_CALL_CACHES: dict[str, Any] = {"vision_cache_bytes": 0, "prefix_cache_bytes": 0, "score_cache_entries": 0}
#: The same for a `lychee serve` command line.
NO_CROSS_CALL_CACHES_FLAGS: list[str] = [
    "--vision-cache-mb",
    "0",
    "--prefix-cache-mb",
    "0",
    "--score-cache-entries",
    "0",
]


def add_checkpoint_options(
    parser: argparse.ArgumentParser, presets: tuple[str, ...] = ("tiny", "small", "7b"), default: str = "small"
) -> None:
    """``--preset`` (what to build: ``small`` is 8 layers of 512) and ``--checkpoint`` (a directory to use instead)."""
    parser.add_argument(
        "--preset", choices=presets, default=default, help="the checkpoint to build (small: 8 layers of 512)"
    )
    parser.add_argument("--checkpoint", help="use this checkpoint instead of building the preset")


def checkpoint_path(args: argparse.Namespace, tmp: str | Path, **options: Any) -> Path:
    """``--checkpoint``, else ``--preset`` built under ``tmp`` with the real Qwen tokenizer and vocabulary."""
    if args.checkpoint:
        return Path(args.checkpoint)
    preset = SEVEN_B if args.preset == "7b" else args.preset
    return build_tiny_checkpoint(Path(tmp) / "ckpt", preset=preset, real_tokenizer=True, **options)
