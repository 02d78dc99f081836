"""Documents per second of the in-process engine against VLLMReranker (vLLM's offline engine).

Each backend runs alone, in a process of its own (so neither shares the machine's threads or
memory with the other), in rounds that alternate: engine, vLLM, engine, vLLM, ... The best
round of each counts, so slow spells of a shared machine fall on both. Same checkpoint (built
with the real Qwen vocabulary unless ``--checkpoint``), same inputs in a round. Every timed
call has a query of its own (as calls to a service do); a process's first call, on other
inputs, loads and warms up. Workloads:

* ``kb-text``: a text query under a ~120-token knowledge-base instruction x 50 documents of 70 words;
* ``image-query``: a 448-px image query x 24 short text documents;
* ``long-text``: a text query x 16 documents of 400 words;
* ``pages``: a text query x 8 page images of 812 px;
* ``service``: 10 calls in a row, each a new text query over 24 page images drawn from a fixed
  pool of 40 (so images recur across calls); the engine with its caches on and with them off.

Prints every round's figures, each workload's engine / vLLM ratio (above 1: the engine is
faster) and the largest score difference, and writes everything as JSON (``--json``). Run it
in the vLLM environment:

    /work/venv-vllm/bin/python benchmarks/bench_vllm.py                  # CPU, small preset, float32
    /work/venv-vllm/bin/python benchmarks/bench_vllm.py --rounds 3 --workloads pages service
    /work/venv-vllm/bin/python benchmarks/bench_vllm.py --backends engine --preset tiny   # no vLLM
    # the engine in its own environment, vLLM in vLLM's with its CPU guide's preloads:
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 .venv/bin/python benchmarks/bench_vllm.py \
        --vllm-python /work/venv-vllm/bin/python --vllm-preload /work/venv-vllm/lib/libiomp5.so
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from presets import NO_CROSS_CALL_CACHES, add_checkpoint_options, checkpoint_path
from workloads import KB_INSTRUCTION, WORDS, image_query_workload

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

#: ``(query, documents, instruction)``.
Workload = tuple[Any, list[Any], str | None]

#: Calls of the service workload, documents per call, and the pool they are drawn from.
SERVICE_CALLS, SERVICE_DOCS, SERVICE_POOL = 10, 24, 40
#: The engine's caches off (``engine-nocache``).
NO_CACHES = NO_CROSS_CALL_CACHES


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _query(rng: random.Random) -> str:
    return f"{_words(rng, 6)} {rng.randrange(10**6)}?"


def page_image(seed: int, size: int = 812) -> bytes:
    """A synthetic document page (``size`` px square): lines of dark word boxes on white, as PNG bytes."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), (250, 250, 248))
    draw = ImageDraw.Draw(image)
    for top in range(40, size - 40, 22):
        left = 40
        while left < size - 80:
            width = rng.randrange(18, 70)
            shade = rng.randrange(20, 90)
            draw.rectangle((left, top, left + width, top + 11), fill=(shade, shade, shade + 10))
            left += width + rng.randrange(6, 14)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def make_workload(name: str, seed: int, docs: int | None = None) -> Workload:
    """One call of workload ``name``; ``seed`` picks its query (and its documents, but for ``service``)."""
    rng = random.Random(seed)
    if name == "kb-text":
        n = docs or 50
        return _query(rng), [_words(rng, 70) for _ in range(n)], KB_INSTRUCTION
    if name == "image-query":
        return image_query_workload(n_docs=docs or 24, size=448, seed=seed)
    if name == "long-text":
        n = docs or 16
        return _query(rng), [_words(rng, 400) for _ in range(n)], None
    if name == "pages":
        n = docs or 8
        return _query(rng), [{"image": page_image(seed * 1000 + k)} for k in range(n)], None
    if name == "service":
        picked = rng.sample(range(SERVICE_POOL), min(docs or SERVICE_DOCS, SERVICE_POOL))
        return _query(rng), [{"image": _pool_page(k)} for k in picked], None
    raise ValueError(f"unknown workload {name!r}")


_POOL: dict[int, bytes] = {}


def _pool_page(k: int) -> bytes:
    if k not in _POOL:
        _POOL[k] = page_image(10**7 + k)
    return _POOL[k]


WORKLOADS = ("kb-text", "image-query", "long-text", "pages", "service")


def worker(args: argparse.Namespace) -> None:
    """Run one backend over the workloads of one round and write its times and scores as JSON."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    started = time.perf_counter()
    scorer: Any
    if args.worker == "vllm":
        from lychee_integrations.vllm import VLLMReranker

        options: dict[str, Any] = {"enforce_eager": True} if args.eager else {}
        if device == "cuda":
            options["gpu_memory_utilization"] = 0.6
        scorer = VLLMReranker(args.checkpoint, dtype=dtype, **options).load()
    else:
        from lychee_integrations.engine import LycheeReranker

        caches = NO_CACHES if args.worker == "engine-nocache" else {}
        scorer = LycheeReranker(model=args.checkpoint, device=device, dtype=dtype, **caches).load()
    out: dict[str, Any] = {"load_seconds": time.perf_counter() - started, "workloads": {}}
    base = 1000 * (args.round + 1)
    # Warm-up on inputs no timed call uses (one per kind of input, so every path is compiled).
    for name in args.workloads:
        query, documents, instruction = make_workload(name if name != "service" else "pages", 10**6 + base, 2)
        scorer.score(query, documents, instruction=instruction)
    for name in args.workloads:
        calls = SERVICE_CALLS if name == "service" else args.calls
        times, scores = [], []
        for k in range(calls):
            query, documents, instruction = make_workload(name, base + k, args.docs.get(name))
            start = time.perf_counter()
            got = scorer.score(query, documents, instruction=instruction)
            times.append(time.perf_counter() - start)
            scores.append(got)
        n_docs = sum(len(s) for s in scores)
        # The service workload counts its calls together (caches fill over them); others their best call.
        seconds = sum(times) if name == "service" else min(times)
        per = n_docs if name == "service" else len(scores[0])
        out["workloads"][name] = {"seconds": seconds, "docs": per, "docs_per_s": per / seconds, "times": times}
        out["workloads"][name]["scores"] = scores
        logging.getLogger(__name__).info("%s %s: %.2f docs/s", args.worker, name, per / seconds)
    scorer.unload()
    Path(args.out).write_text(json.dumps(out))


def run_worker(args: argparse.Namespace, backend: str, round_: int, checkpoint: Path, out: Path) -> dict[str, Any]:
    """Run ``backend`` alone in a new process (this script with ``--worker``) and return its JSON."""
    python = args.vllm_python if backend == "vllm" and args.vllm_python else sys.executable
    command = [python, __file__, "--worker", backend, "--round", str(round_), "--checkpoint", str(checkpoint)]
    command += ["--out", str(out), "--dtype", args.dtype, "--calls", str(args.calls), "--workloads", *args.workloads]
    command += ["--docs-json", json.dumps(args.docs)]
    if args.eager:
        command.append("--eager")
    env = dict(os.environ)
    if backend == "vllm" and args.vllm_preload:  # vLLM's CPU guide: tcmalloc and Intel's OpenMP preloaded
        env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD"), args.vllm_preload]))
    subprocess.run(command, check=True, env=env)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _largest_difference(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ca, cb in zip(a, b, strict=True) for x, y in zip(ca, cb, strict=True))


def main() -> None:
    """Alternate the backends' processes over ``--rounds`` rounds; print and write the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_options(parser)
    parser.add_argument("--dtype", default="auto", help="auto: bfloat16 on a GPU, float32 on a CPU")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each runs every backend once, in turn")
    parser.add_argument("--calls", type=int, default=2, help="timed calls per workload per round (each its own query)")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=("engine", "engine-nocache", "vllm"),
        default=["engine", "engine-nocache", "vllm"],
        help="engine-nocache: the engine with its cross-call caches off",
    )
    parser.add_argument("--docs", nargs="*", default=[], metavar="WORKLOAD=N", help="documents per call, e.g. pages=4")
    parser.add_argument("--vllm-python", help="python of vLLM's environment (default: this one)")
    parser.add_argument("--eager", action="store_true", help="vLLM without torch.compile (faster start)")
    parser.add_argument(
        "--vllm-preload", default="", help="libraries preloaded for vLLM's process only (LD_PRELOAD), e.g. libiomp5.so"
    )
    parser.add_argument("--json", default="bench_vllm.json", help="where to write the results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--docs-json", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        args.docs = json.loads(args.docs_json)
        worker(args)
        return
    args.docs = {key: int(value) for key, value in (item.split("=", 1) for item in args.docs)}
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = checkpoint_path(args, tmp)
        print(f"checkpoint {checkpoint} (preset {args.preset}), dtype {args.dtype}, {os.cpu_count()} CPUs", flush=True)
        for r in range(args.rounds):
            results: dict[str, Any] = {}
            for backend in args.backends:
                results[backend] = run_worker(args, backend, r, checkpoint, Path(tmp) / f"{backend}-{r}.json")
                figures = ", ".join(
                    f"{name} {w['docs_per_s']:.2f}" for name, w in results[backend]["workloads"].items()
                )
                print(f"round {r + 1} {backend:15s} docs/s: {figures}", flush=True)
            rounds.append(results)
    summary = summarize(rounds, args.backends, args.workloads)
    for name, row in summary.items():
        best = ", ".join(f"{backend} {row[backend]:.2f}" for backend in args.backends)
        ratios = ", ".join(f"{key} {value:.2f}x" for key, value in row.items() if key.endswith("/ vllm"))
        diffs = ", ".join(f"{key} {value:.1e}" for key, value in row.items() if key.startswith("largest"))
        print(f"{name}: best docs/s {best}; {ratios}; {diffs}")
    Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": rounds, "summary": summary}, indent=1))
    print(f"wrote {args.json}")


def summarize(rounds: list[dict[str, Any]], backends: list[str], workloads: list[str]) -> dict[str, dict[str, float]]:
    """Best docs/s of each backend per workload over the rounds, the ratios to vLLM and score differences."""
    summary: dict[str, dict[str, float]] = {}
    for name in workloads:
        row = {backend: max(r[backend]["workloads"][name]["docs_per_s"] for r in rounds) for backend in backends}
        for backend in backends:
            if backend != "vllm" and "vllm" in backends:
                row[f"{backend} / vllm"] = row[backend] / row["vllm"]
        pairs: list[tuple[str, str]] = [(b, "vllm") for b in backends if b != "vllm" and "vllm" in backends]
        if "engine" in backends and "engine-nocache" in backends:
            pairs.append(("engine", "engine-nocache"))
        for a, b in pairs:
            row[f"largest difference {a} vs {b}"] = max(
                _largest_difference(r[a]["workloads"][name]["scores"], r[b]["workloads"][name]["scores"])
                for r in rounds
            )
        summary[name] = row
    return summary


if __name__ == "__main__":
    main()
