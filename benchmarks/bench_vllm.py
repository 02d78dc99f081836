"""Documents per second of VLLMReranker (vLLM's offline engine) against the in-process engine.

Both run in the same process, on the same checkpoint and the same workloads (``workloads.py``):
an image query against short text documents, and a text query under a long knowledge-base
instruction against ~100-word documents. Prints each backend's throughput, the engine/vLLM
throughput ratio (above 1: the engine is faster) and the largest score difference. Run it in the vLLM
environment (``bash .ci/vllm-env.sh .venv-vllm``):

    .venv-vllm/bin/python benchmarks/bench_vllm.py                 # CPU, small preset, float32
    .venv-vllm/bin/python benchmarks/bench_vllm.py --preset 7b     # GPU, real shapes, bfloat16
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import image_query_workload, text_kb_workload

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")


def measure(scorer: Any, workload: tuple[Any, list[Any], str], repeat: int) -> tuple[float, list[float]]:
    """Best wall time of ``repeat`` calls after a warm-up call, and the scores."""
    query, documents, instruction = workload
    scores: list[float] = scorer.score(query, documents, instruction=instruction)  # load and warm up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        scores = scorer.score(query, documents, instruction=instruction)
        best = min(best, time.perf_counter() - start)
    return best, scores


def main() -> None:
    import torch

    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.testing import build_tiny_checkpoint
    from lychee_integrations.vllm import VLLMReranker

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["small", "7b"], default="small")
    parser.add_argument("--checkpoint", help="use this checkpoint instead of building one")
    parser.add_argument("--dtype", default="auto", help="auto: bfloat16 on a GPU, float32 on a CPU")
    parser.add_argument("--image-docs", type=int, default=24)
    parser.add_argument("--text-docs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--eager", action="store_true", help="vLLM without torch.compile (faster start)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    workloads = {
        "image query x text docs": image_query_workload(n_docs=args.image_docs),
        "text query x KB docs (long instruction)": text_kb_workload(n_docs=args.text_docs),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = (
            Path(args.checkpoint) if args.checkpoint else build_tiny_checkpoint(Path(tmp) / "ckpt", preset=args.preset)
        )
        engine = LycheeReranker(model=str(path), device=device, dtype=dtype)
        threads = torch.get_num_threads()
        print(f"device {device}, dtype {dtype}, preset {args.preset}, {threads} torch threads", flush=True)
        results: dict[str, dict[str, Any]] = {name: {} for name in workloads}
        for name, workload in workloads.items():
            seconds, results[name]["engine_scores"] = measure(engine, workload, args.repeat)
            results[name]["engine"] = seconds
            print(f"{name}: engine (in process) {len(workload[1]) / seconds:8.2f} docs/s", flush=True)
        engine.unload()
        if device == "cuda":
            torch.cuda.empty_cache()

        options: dict[str, Any] = {"enforce_eager": True} if args.eager else {}
        if device == "cuda":
            options["gpu_memory_utilization"] = 0.6
        started = time.perf_counter()
        reranker = VLLMReranker(str(path), dtype=dtype, **options).load()
        print(f"vLLM started in {time.perf_counter() - started:.0f}s", flush=True)
        for name, workload in workloads.items():
            seconds, scores = measure(reranker, workload, args.repeat)
            r = results[name]
            n = len(workload[1])
            diff = max(abs(a - b) for a, b in zip(r["engine_scores"], scores, strict=True))
            print(f"{name}: {n} documents", flush=True)
            print(f"  engine (in process): {n / r['engine']:8.2f} docs/s")
            print(f"  vLLM (VLLMReranker): {n / seconds:8.2f} docs/s")
            print(f"  engine / vLLM (docs/s; above 1: the engine is faster): {seconds / r['engine']:.2f}x")
            print(f"  largest score difference: {diff:.2e}", flush=True)
        reranker.unload()


if __name__ == "__main__":
    main()
