"""Documents per second of VLLMReranker (vLLM's offline engine) against the in-process engine.

Both run in the same process, on the same checkpoint and the same workloads (``workloads.py``):
an image query against short text documents, and a text query under a long knowledge-base
instruction against ~100-word documents. Prints each backend's throughput, the engine/vLLM
throughput ratio (above 1: the engine is faster) and the largest score difference. Run it in the vLLM
environment (``bash .ci/vllm-env.sh .venv-vllm``):

    .venv-vllm/bin/python benchmarks/bench_vllm.py                 # CPU, small preset, float32
    .venv-vllm/bin/python benchmarks/bench_vllm.py --preset 7b     # GPU, real shapes, bfloat16
    .venv-vllm/bin/python benchmarks/bench_vllm.py --dtype bfloat16 --against-fp32   # bf16 error of both

With ``--against-fp32`` (for a dtype other than float32) the engine also scores each workload's
last call in float32, and the script prints how far each backend's scores lie from those.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import image_query_workload, text_kb_workload

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

#: ``(query, documents, instruction)``.
Workload = tuple[Any, list[Any], str]


def measure(scorer: Any, make: Callable[[int], Workload], repeat: int, same: bool = False) -> tuple[float, list[float]]:
    """Best wall time of ``repeat`` calls after a warm-up call, and the last call's scores.

    Every call gets documents it has not seen (``make(seed)``), so that vLLM's prefix cache,
    which outlives a call, can only reuse what calls really share (system prompt, instruction,
    a repeated query), as in a service; the engine reuses a prefix within a call only. With
    ``same``, every call repeats the first one's inputs (vLLM then finds whole prompts cached).
    """
    best, scores = float("inf"), []
    for seed in range(repeat + 1):
        query, documents, instruction = make(0 if same else seed)
        start = time.perf_counter()
        scores = scorer.score(query, documents, instruction=instruction)
        if seed:  # seed 0 loads and warms up
            best = min(best, time.perf_counter() - start)
    return best, scores


def main() -> None:
    import torch

    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.tiny import build_tiny_checkpoint
    from lychee_integrations.vllm import VLLMReranker

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["small", "7b"], default="small")
    parser.add_argument("--checkpoint", help="use this checkpoint instead of building one")
    parser.add_argument("--dtype", default="auto", help="auto: bfloat16 on a GPU, float32 on a CPU")
    parser.add_argument("--image-docs", type=int, default=24)
    parser.add_argument("--text-docs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--eager", action="store_true", help="vLLM without torch.compile (faster start)")
    parser.add_argument(
        "--against-fp32", action="store_true", help="also print each backend's largest difference from fp32 scores"
    )
    parser.add_argument(
        "--same-inputs", action="store_true", help="repeat identical calls (vLLM's cache then holds whole prompts)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    workloads: dict[str, Callable[[int], Workload]] = {
        "image query x text docs": lambda seed: image_query_workload(n_docs=args.image_docs, seed=seed),
        "text query x KB docs (long instruction)": lambda seed: text_kb_workload(n_docs=args.text_docs, seed=seed),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = (
            Path(args.checkpoint)
            if args.checkpoint
            else build_tiny_checkpoint(Path(tmp) / "ckpt", preset=args.preset, real_tokenizer=True)
        )
        engine = LycheeReranker(model=str(path), device=device, dtype=dtype)
        threads = torch.get_num_threads()
        print(f"device {device}, dtype {dtype}, preset {args.preset}, {threads} torch threads", flush=True)
        results: dict[str, dict[str, Any]] = {name: {} for name in workloads}
        for name, workload in workloads.items():
            seconds, results[name]["engine_scores"] = measure(engine, workload, args.repeat, args.same_inputs)
            results[name]["engine"] = seconds
            print(f"{name}: engine (in process) {len(workload(0)[1]) / seconds:8.2f} docs/s", flush=True)
        engine.unload()
        if args.against_fp32 and dtype != "float32":
            exact = LycheeReranker(model=str(path), device=device, dtype="float32")
            for name, workload in workloads.items():
                query, documents, instruction = workload(0 if args.same_inputs else args.repeat)
                results[name]["fp32_scores"] = exact.score(query, documents, instruction=instruction)
            exact.unload()
        if device == "cuda":
            torch.cuda.empty_cache()

        options: dict[str, Any] = {"enforce_eager": True} if args.eager else {}
        if device == "cuda":
            options["gpu_memory_utilization"] = 0.6
        started = time.perf_counter()
        reranker = VLLMReranker(str(path), dtype=dtype, **options).load()
        print(f"vLLM started in {time.perf_counter() - started:.0f}s", flush=True)
        for name, workload in workloads.items():
            seconds, scores = measure(reranker, workload, args.repeat, args.same_inputs)
            r = results[name]
            n = len(workload(0)[1])
            diff = max(abs(a - b) for a, b in zip(r["engine_scores"], scores, strict=True))
            print(f"{name}: {n} documents", flush=True)
            print(f"  engine (in process): {n / r['engine']:8.2f} docs/s")
            print(f"  vLLM (VLLMReranker): {n / seconds:8.2f} docs/s")
            print(f"  engine / vLLM (docs/s; above 1: the engine is faster): {seconds / r['engine']:.2f}x")
            print(f"  largest score difference: {diff:.2e}", flush=True)
            if "fp32_scores" in r:
                for backend, got in (("engine", r["engine_scores"]), ("vLLM", scores)):
                    off = max(abs(a - b) for a, b in zip(r["fp32_scores"], got, strict=True))
                    print(f"  largest difference of {backend} ({dtype}) from the engine in float32: {off:.2e}")
        reranker.unload()


if __name__ == "__main__":
    main()
