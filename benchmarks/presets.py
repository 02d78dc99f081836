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
