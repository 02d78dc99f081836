"""Architecture presets of the benchmarks beyond the package's own (`lychee_integrations.tiny.PRESETS`)."""

from typing import Any

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
