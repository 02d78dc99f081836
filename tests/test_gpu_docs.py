"""docs/gpu.md's memory figures are recomputed from the real 7B config, so the page cannot drift."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_memory  # noqa: E402

PAGE = (ROOT / "docs" / "gpu.md").read_text(encoding="utf-8")


def table_rows(heading: str) -> list[str]:
    """The rows of the first table under ``heading``, without its header and rule."""
    section = PAGE.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return rows[2:]


@pytest.fixture(scope="module")
def figures() -> gpu_memory.Figures:
    return gpu_memory.compute()


def test_the_memory_table_is_the_computed_one(figures: gpu_memory.Figures) -> None:
    assert table_rows("## Memory: computed, not measured")[: len(gpu_memory.rows(figures))] == gpu_memory.rows(figures)


def test_the_figures_in_the_text_are_the_computed_ones(figures: gpu_memory.Figures) -> None:
    tokens = gpu_memory.CONTEXT_TOKENS
    forward = (figures.kv_bytes_per_token + figures.mlp_bytes_per_token) * tokens / 2**30
    assert (
        f"come to about {round(forward)} GiB in bf16 next to\n{figures.weights_gb('bfloat16'):.2f} GB of weights"
        in PAGE
    )


def test_the_figures_are_those_of_the_7b_architecture(figures: gpu_memory.Figures) -> None:
    assert figures.parameters == 8_292_166_656
    assert (figures.vision_parameters, figures.lm_head_parameters) == (676_550_144, 544_997_376)
    assert figures.lm_head_parameters == 152_064 * 3584
    assert figures.kv_bytes_per_token == 28 * 4 * 128 * 2 * 2 == 56 * 1024


def test_throughput_is_not_invented() -> None:
    rows = table_rows("## Throughput: not measured yet")
    cells = {cell.strip() for row in rows for cell in row.strip("|").split("|")[1:]}
    assert len(rows) == 4 and cells == {"not measured yet"}
    assert "computed, not measured" in PAGE.lower() and "benchmarks/bench_gpu.py" in PAGE
