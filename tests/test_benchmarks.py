"""The benchmark scripts run end to end (a dry run on the tiny checkpoint; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout + out.stderr


def test_gpu_preset_dry_run_writes_its_table(tmp_path: Path) -> None:
    report_path = tmp_path / "gpu.json"
    options = ["--preset", "tiny", "--device", "cpu", "--docs", "3", "--repeat", "1", "--json", str(report_path)]
    log = run("bench_gpu.py", *options)
    report = json.loads(report_path.read_text())
    assert report["gpu"] == "cpu" and report["preset"] == "tiny"
    rows = report["rows"]
    assert [row["mode"] for row in rows] == ["sdpa"] * 4
    assert len({row["workload"] for row in rows}) == 4
    for row in rows:
        assert row["documents"] in (3, 6) and row["docs_per_s"] > 0 and row["tflops_per_s"] > 0
        assert row["workload"] in log
    # Documents of 300 tokens: each text pair holds at least that many.
    assert rows[0]["tokens"] >= 3 * 300


def test_gpu_preset_refuses_to_run_without_a_gpu() -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_gpu.py")], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 2 and "no CUDA device" in out.stderr


def test_preprocess_benchmark_dry_run_prints_its_ratios() -> None:
    log = run("bench_preprocess.py", "--preset", "tiny", "--docs", "3", "--size", "64", "--repeat", "1")
    assert "wall / model-only" in log and "wall / (preprocessing + model)" in log


def test_budget_benchmark_dry_run_compares_budgets_with_the_same_scores() -> None:
    log = run(
        "bench_budget.py", "--preset", "tiny", "--rounds", "1", "--budgets", "4096", "256",
        "--workloads", "kb-text", "long-text",
    )  # fmt: skip
    rows = [line for line in log.splitlines() if line.startswith(("kb-text", "long-text"))]
    assert len(rows) == 2, log[-2000:]
    for row in rows:
        assert "4096: " in row and "(1.00x)" in row and "256: " in row
        # 256 tokens per pass splits the calls into many more passes; the scores stay put
        assert float(row.rsplit("largest score difference ", 1)[1]) < 1e-5
