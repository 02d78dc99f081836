"""The engine on the real Qwen2.5-VL-7B architecture (random weights, no download), on a GPU.

For each way of running it that this machine has (bfloat16 with SDPA attention; with
flash-attention when ``flash_attn`` is installed; 4-bit when bitsandbytes loads), it scores:

* a text query x 50 and x 100 documents of 300 tokens;
* a text query x 20 image documents (448 px);
* a 448-px image query x 24 short text documents (the shared-prefix case).

It prints documents per second, peak GPU memory and model FLOP utilisation (MFU: FLOPs the
engine actually ran, per second, over the GPU's peak dense bf16 rate; FLOPs per token come
from the config: 2 x the language model's weights plus attention over the context, and 2 x the
vision tower's weights per patch). A table goes to the log and everything to ``--json``.

    python benchmarks/bench_gpu.py                          # on a GPU: the 7b preset
    python benchmarks/bench_gpu.py --json gpu.json --peak-tflops 989
    python benchmarks/bench_gpu.py --preset tiny --device cpu --docs 4   # a dry run anywhere
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from presets import NO_CROSS_CALL_CACHES, add_checkpoint_options, checkpoint_path
from workloads import WORDS, image_documents_workload, image_query_workload

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.engine.pairs import EncodedPair
from lychee_integrations.engine.prefix import group_by_prefix

logger = logging.getLogger("bench_gpu")

#: Peak dense bf16 tensor-core TFLOP/s by GPU name (vendor data sheets); ``--peak-tflops`` overrides.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def executed_flops(model: Any, pairs: list[EncodedPair], image_token_id: int, prefix_reuse: bool) -> float:
    """FLOPs of the forward passes the engine runs for ``pairs`` (the shared prefix once when reused)."""
    text = model.config.text_config
    lm_params = sum(p.numel() for n, p in model.model.language_model.named_parameters() if "embed" not in n)
    vision_params = sum(p.numel() for p in model.model.visual.parameters())
    width = text.num_attention_heads * (text.hidden_size // text.num_attention_heads)

    def tokens(n_new: int, context_end: int) -> float:
        # 2 x weights per token, plus Q.K and A.V over the causal context for every layer.
        context = (context_end - n_new / 2) * n_new
        return 2.0 * lm_params * n_new + 4.0 * text.num_hidden_layers * width * context

    groups, alone = group_by_prefix(pairs, image_token_id) if prefix_reuse else ([], list(range(len(pairs))))
    total = sum(tokens(len(pairs[i]), len(pairs[i])) for i in alone)
    for group in groups:
        total += tokens(group.length, group.length)
        total += sum(tokens(len(pairs[i]) - group.length, len(pairs[i])) for i in group.indices)
    # The vision tower runs each distinct image once; its attention is left out (small next to its weights).
    patches = {id(f): int(f.grid_thw.prod()) for pair in pairs for f in pair.images}
    return total + 2.0 * vision_params * sum(patches.values())


def text_documents(engine: LycheeReranker, n: int, n_tokens: int) -> list[Any]:
    """``n`` different documents of exactly ``n_tokens`` tokens for this checkpoint's tokenizer."""
    tokenizer = engine._get_runtime().model.processor.tokenizer
    words = WORDS
    documents: list[Any] = []
    for i in range(n):
        text = " ".join(words[(i + k * 7) % len(words)] for k in range(n_tokens))
        ids = tokenizer.encode(text, add_special_tokens=False)[:n_tokens]
        documents.append(tokenizer.decode(ids))
    return documents


def run_case(engine: LycheeReranker, name: str, case: tuple[Any, list[Any], str], repeat: int) -> dict[str, Any]:
    """Best-of-``repeat`` docs/s, peak memory and MFU inputs for one workload."""
    query, documents, instruction = case
    runtime = engine._get_runtime()
    engine.score(query, documents, instruction=instruction)  # warm-up
    cuda = runtime.model.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        engine.score(query, documents, instruction=instruction)
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    pairs = engine.encode(query, documents, instruction=instruction)
    flops = executed_flops(runtime.model.model, pairs, runtime.model.image_token_id, engine.config.prefix_reuse)
    return {
        "workload": name,
        "documents": len(documents),
        "tokens": sum(len(p) for p in pairs),
        "seconds": best,
        "docs_per_s": len(documents) / best,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "tflops_per_s": flops / best / 1e12,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_options(parser, default="7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--docs", type=int, default=0, help="N docs per workload (2N text); 0: 50/100, 20, 24")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, help="the GPU's peak dense bf16 TFLOP/s (for MFU)")
    parser.add_argument("--json", type=Path, default=Path("bench_gpu.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        logger.error("no CUDA device here: nothing measured (use --device cpu --preset tiny for a dry run)")
        raise SystemExit(2)
    cuda = args.device.startswith("cuda")
    gpu = torch.cuda.get_device_name() if cuda else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in gpu), None)
    dtype = "bfloat16" if cuda else "float32"
    modes: list[dict[str, Any]] = [{"attn_implementation": "sdpa"}]
    if cuda and importlib.util.find_spec("flash_attn") is not None:
        modes.append({"attn_implementation": "flash_attention_2"})
    if cuda and importlib.util.find_spec("bitsandbytes") is not None:
        modes.append({"attn_implementation": "sdpa", "quantization": "4bit"})
    small = args.docs or None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoint_path(args, tmp, dtype=dtype)
        for mode in modes:
            label = "+".join(str(v) for v in mode.values())
            try:
                engine = LycheeReranker(
                    model=str(path), device=args.device, dtype=dtype, **mode, **NO_CROSS_CALL_CACHES
                ).load()
            except Exception as exc:  # a mode this machine cannot run is reported, not fatal
                logger.warning("%s: cannot load (%s)", label, exc)
                continue
            workloads: dict[str, tuple[Any, list[Any], str]] = {
                f"text x {n} docs of 300 tokens": (
                    "what is the hotel limit",
                    text_documents(engine, n, 300),
                    "Find the policy passage that answers the question",
                )
                for n in ((small, 2 * small) if small else (50, 100))
            }
            workloads[f"text x {small or 20} image docs (448 px)"] = image_documents_workload(small or 20, 448)
            workloads[f"image query (448 px) x {small or 24} text docs"] = image_query_workload(small or 24, 448)
            for name, case in workloads.items():
                row = {"mode": label, **run_case(engine, name, case, args.repeat)}
                row["mfu"] = row["tflops_per_s"] / peak if peak else None
                rows.append(row)
                logger.info(
                    "%-22s %-44s %8.1f docs/s  %s GiB  %7.1f TFLOP/s  MFU %s",
                    label,
                    name,
                    row["docs_per_s"],
                    f"{row['peak_gib']:.1f}" if row["peak_gib"] is not None else "-",
                    row["tflops_per_s"],
                    f"{row['mfu']:.1%}" if row["mfu"] is not None else "-",
                )
            engine.unload()
    report = {"gpu": gpu, "peak_tflops": peak, "preset": args.preset, "dtype": dtype, "rows": rows}
    args.json.write_text(json.dumps(report, indent=2))
    logger.info("wrote %s", args.json)


if __name__ == "__main__":
    main()
