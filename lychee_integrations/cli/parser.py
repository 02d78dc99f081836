"""The ``lychee`` command's argument parser: sub-commands, options and their types."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lychee_integrations.cli.commands import (
    cmd_build_tiny,
    cmd_eval,
    cmd_rerank,
    cmd_serve,
    cmd_templates,
    cmd_ui,
    cmd_vllm_serve,
)
from lychee_integrations.cli.documents import DOC_FORMATS, LabelledDocument, image_ref
from lychee_integrations.config import DEFAULT_PREFIX_CACHE_BYTES, DEFAULT_VISION_CACHE_BYTES, RerankerConfig

__all__ = ["build_parser"]


def _int_at_least(minimum: int, expected: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer of 0 or more")


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _size(text: str) -> int:
    compact = text.strip().lower().replace(" ", "")
    number = compact.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = compact[len(number) :]
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"expected a size such as 16MiB, 500kB or 1048576, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return int(value)


class _AppendDoc(argparse.Action):
    """Append a document to ``namespace.documents``, keeping the command-line order."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        documents: list[LabelledDocument] = getattr(namespace, "documents", None) or []
        name = max(self.option_strings, key=len)  # the long form, also when the short one was used
        number = sum(d.label.startswith(f"{name} ") for d in documents) + 1
        if name == "--doc":
            value: Any = values
        elif name == "--doc-image":
            value = {"image": values}
        else:
            try:
                value = {"text": values[0], "image": image_ref(values[1])}
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentError(self, str(exc)) from None
        documents.append(LabelledDocument(f"{name} #{number}", value))
        namespace.documents = documents


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        metavar="ID_OR_DIR",
        help="Hugging Face id or local checkpoint directory (default: $LYCHEE_MODEL, else vec-ai/lychee-rerank-mm)",
    )
    group.add_argument("--device", default="auto", help="auto (default), cpu, mps, cuda or cuda:N")
    group.add_argument(
        "--dtype", default="auto", help="auto (default: bf16 on a GPU, fp32 on a CPU), float32, bfloat16, float16"
    )
    group.add_argument(
        "--max-length",
        type=_positive_int,
        default=None,
        metavar="TOKENS",
        help="tokens per pair (default: the model family's, 3200 for Lychee)",
    )
    group.add_argument(
        "--batch-size", type=_positive_int, default=16, metavar="N", help="pairs per forward pass (default: 16)"
    )


_MIB = 2**20


def _add_server_options(
    parser: argparse.ArgumentParser, default_port: int, handler: Callable[[argparse.Namespace], int]
) -> None:
    from lychee_integrations.service.settings import ServiceSettings

    defaults = ServiceSettings()  # the image budgets' defaults are stated once, there
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    net.add_argument("--port", type=_port, default=default_port, help=f"port (default: {default_port})")
    net.add_argument(
        "--no-preload",
        action="store_true",
        help="load the model on the first request; by default it loads in the background at start "
        "(GET /ready answers 503 until it is loaded)",
    )
    net.add_argument(
        "--graceful-timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may take to finish (default: 30)",
    )
    net.add_argument(
        "--limit-concurrency",
        type=_positive_int,
        default=1024,
        metavar="N",
        help="most connections and requests at once; more are answered with 503 (default: 1024)",
    )
    net.add_argument(
        "--timeout-keep-alive",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="close an idle keep-alive connection after this long (default: 5)",
    )
    net.add_argument(
        "--max-header-size",
        type=_size,
        default="16KiB",
        metavar="SIZE",
        help="largest request line and headers (h11's max incomplete event size; default: 16KiB)",
    )
    net.add_argument(
        "--backlog",
        type=_positive_int,
        default=2048,
        metavar="N",
        help="connections waiting to be accepted (default: 2048)",
    )
    net.add_argument(
        "--served-model-name",
        metavar="NAME",
        help="model name in responses, /health and metrics (default: the hub id, or the checkpoint directory's name)",
    )
    auth = parser.add_argument_group("authentication")
    key = auth.add_mutually_exclusive_group()
    key.add_argument(
        "--api-key",
        metavar="KEY",
        help="require 'Authorization: Bearer KEY' on every API route (default: $LYCHEE_API_KEY; "
        "/health, /ready and /docs stay open). Prefer the variable or --api-key-file: arguments show in ps",
    )
    key.add_argument("--api-key-file", type=Path, metavar="PATH", help="read the API key from a file")
    limits = parser.add_argument_group("limits and image security")
    limits.add_argument(
        "--max-documents",
        type=_positive_int,
        default=defaults.max_documents,
        metavar="N",
        help="documents per request (default: %(default)s)",
    )
    for option, field, what in (
        ("--max-body-size", "max_body_bytes", "request body size"),
        ("--max-image-size", "max_image_bytes", "encoded image size"),
    ):
        size = getattr(defaults, field)
        limits.add_argument(
            option,
            type=_size,
            default=size,
            metavar="SIZE",
            help=f"{what} (default: {size // _MIB}MiB)",
        )
    for option, what in (
        ("--max-image-pixels", "decoded image width x height"),
        ("--max-images-per-item", "images in one query or one document"),
        ("--max-images-per-request", "images in one request, query and documents together"),
        (
            "--max-request-pixels",
            "width x height summed over every image of a request, read from the headers before any image is decoded",
        ),
        ("--max-text-chars", "characters in one query, document or instruction text"),
    ):
        default = getattr(defaults, option[2:].replace("-", "_"))
        limits.add_argument(
            option, type=_positive_int, default=default, metavar="N", help=f"{what} (default: {default})"
        )
    limits.add_argument(
        "--allow-remote-images",
        action="store_true",
        help="fetch http(s) image URLs (never from loopback or private addresses); off by default",
    )
    limits.add_argument(
        "--image-root",
        type=Path,
        metavar="DIR",
        help="directory the server may read image paths from; without it every path is refused",
    )
    limits.add_argument(
        "--image-timeout",
        type=_positive_float,
        default=defaults.image_timeout,
        metavar="SECONDS",
        help="per download step (default: %(default)g)",
    )
    limits.add_argument(
        "--max-concurrency",
        type=_positive_int,
        default=defaults.max_concurrency,
        metavar="N",
        help="engine calls at once; the engine batches them together (default: %(default)s)",
    )
    _add_engine_options(parser)
    # The engine's caches that outlive a call (docs/engine.md, "Caches across calls").
    group = parser.add_argument_group("caches across calls (exact; sizes in /metrics)")
    group.add_argument(
        "--vision-cache-mb",
        type=_non_negative_int,
        default=DEFAULT_VISION_CACHE_BYTES // _MIB,
        metavar="MB",
        help="vision-tower outputs of recently seen images, by content (default: %(default)s; 0: off)",
    )
    group.add_argument(
        "--prefix-cache-mb",
        type=_non_negative_int,
        default=DEFAULT_PREFIX_CACHE_BYTES // _MIB,
        metavar="MB",
        help="keys and values of shared prompt prefixes (system prompt, instruction) (default: %(default)s; 0: off)",
    )
    group.add_argument(
        "--score-cache-entries",
        type=_non_negative_int,
        default=RerankerConfig.score_cache_entries,
        metavar="N",
        help="scores of whole pairs, by model, instruction, query and document (default: %(default)s, off)",
    )
    group.add_argument(
        "--score-cache-ttl",
        type=_positive_float,
        default=RerankerConfig.score_cache_ttl,
        metavar="SECONDS",
        help="how long a cached score stays valid (default: %(default)s)",
    )
    parser.set_defaults(handler=handler, command_parser=parser)


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, width=88)


def _rerank_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "rerank",
        help="rank documents (text, images or both) against a query",
        description=_wrap(
            "Rank documents against a query with Lychee and print them best first. Documents come from "
            "--doc, --doc-image and --doc-text-image (in the order given), then from each --docs-file."
        ),
        epilog="examples:\n"
        '  lychee rerank --query "a red car" --doc "a red sports car" --doc "a banana" --doc-image car.png\n'
        "  lychee rerank --query-image shoe.jpg --task image_search --docs photos.txt --docs-format images\n"
        '  lychee rerank --query "reset password" --docs kb.jsonl --top-n 3 --json\n\n'
        + _wrap(
            'A JSON documents file holds a list (or {"documents": [...]}); JSONL holds one document per line. '
            'A document is a string (text) or {"text": ..., "image": ...} / {"text": ..., "images": [...]}, '
            "where an image is a path, an http(s) or data: URL, or base64. A relative image path in a file "
            "is looked up next to that file first, then in the current directory."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    query = parser.add_argument_group("query (text, image(s) or both)")
    query.add_argument("--query", "-q", metavar="TEXT", help="query text")
    query.add_argument("--query-file", type=Path, metavar="PATH", help="read the query text from a file")
    query.add_argument(
        "--query-image", type=image_ref, action="append", default=[], metavar="IMAGE", help="query image (repeatable)"
    )
    docs = parser.add_argument_group("documents")
    docs.add_argument("--doc", "-d", action=_AppendDoc, metavar="TEXT", help="a text document (repeatable)")
    docs.add_argument(
        "--doc-image", action=_AppendDoc, type=image_ref, metavar="IMAGE", help="an image document (repeatable)"
    )
    docs.add_argument(
        "--doc-text-image",
        action=_AppendDoc,
        nargs=2,
        metavar=("TEXT", "IMAGE"),
        help="a document with text and an image (repeatable)",
    )
    docs.add_argument(
        "--docs-file",
        "--docs",
        action="append",
        default=[],
        metavar="PATH",
        help="read documents from a file ('-': stdin); repeatable",
    )
    docs.add_argument(
        "--docs-format",
        choices=DOC_FORMATS,
        default="auto",
        help="auto (by extension: .json, .jsonl, else lines), json, jsonl, lines (one text per line), "
        "images (one image path per line)",
    )
    how = parser.add_argument_group("instruction and output")
    choice = how.add_mutually_exclusive_group()
    choice.add_argument("--task", metavar="NAME", help="an instruction template (see: lychee templates)")
    choice.add_argument("--instruction", metavar="TEXT", help="a free instruction")
    how.add_argument("--top-n", type=_positive_int, metavar="N", help="print only the best N")
    how.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_engine_options(parser)
    parser.set_defaults(handler=cmd_rerank, command_parser=parser, documents=[])


def _eval_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "eval",
        help="measure the reranker on a BEIR-layout dataset: first stage vs reranked",
        description=_wrap(
            "Rerank the first stage's top k per query and print NDCG@10, MRR@10, Recall@10 and Recall@k "
            "(ir-measures) for the first stage and the reranked run, with each reranked system's delta and "
            "paired t-test p-value, over all documents and per document modality (text, image, text+image). "
            "DATASET_DIR holds corpus.jsonl, "
            "queries.jsonl (image documents and queries: an 'image' path relative to the directory) and "
            "qrels/SPLIT.tsv. See docs/eval.md."
        ),
        epilog="examples:\n"
        "  lychee build-tiny ./tiny && export LYCHEE_MODEL=./tiny   # an offline test model\n"
        "  lychee eval examples/data/eval --run examples/data/eval/bm25.trec --top-k 10 --format markdown\n"
        "  lychee eval ./scifact --top-k 100 --output results.json --save-run reranked.trec\n"
        "  lychee eval ./kb --compare-templates web_search,knowledge_base_guide --output compare.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="the dataset directory (BEIR layout)")
    parser.add_argument("--split", default="test", help="qrels/SPLIT.tsv to evaluate on (default: test)")
    parser.add_argument(
        "--run", type=Path, metavar="TREC_RUN", help="first-stage run (six-column TREC); default: BM25 over text"
    )
    parser.add_argument(
        "--top-k", type=_positive_int, default=50, metavar="K", help="first-stage documents reranked per query (50)"
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--task", metavar="NAME", help="an instruction template (see: lychee templates)")
    how.add_argument("--instruction", metavar="TEXT", help="a free instruction")
    how.add_argument(
        "--compare-templates", metavar="A,B,C", help="rerank once per template and compare them (comma-separated)"
    )
    out = parser.add_argument_group("output")
    out.add_argument("--output", "-o", type=Path, metavar="JSON", help="write metrics and settings as JSON")
    out.add_argument(
        "--save-run",
        type=Path,
        metavar="TREC",
        help="write the reranked run (six-column TREC); with several templates, one file per template: "
        "STEM.TEMPLATE.SUFFIX",
    )
    out.add_argument(
        "--per-query",
        type=Path,
        metavar="JSON",
        help="write every metric per query, for the first stage and each reranked system, overall and per modality",
    )
    out.add_argument(
        "--format",
        choices=("table", "markdown", "csv"),
        default="table",
        help="the summary on stdout: an aligned table (default), a Markdown table or CSV",
    )
    out.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    remote = parser.add_argument_group("a reranker server instead of the in-process engine")
    remote.add_argument(
        "--base-url", metavar="URL", help="rerank with the server at URL (lychee serve, or vLLM with --protocol vllm)"
    )
    remote.add_argument("--api-key", metavar="KEY", help="the server's API key (default: $LYCHEE_API_KEY)")
    remote.add_argument("--protocol", choices=("lychee", "vllm"), default="lychee", help="the server's request shape")
    _add_engine_options(parser)
    parser.set_defaults(handler=cmd_eval, command_parser=parser)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``lychee`` argument parser (sub-commands rerank, templates, build-tiny, serve, ui)."""
    parser = argparse.ArgumentParser(
        prog="lychee",
        description="Lychee multimodal reranker (vec-ai/lychee-rerank-mm): score how well documents "
        "(text, images or both) meet a query, from the command line, as an HTTP service or a web page.",
        epilog="Run 'lychee COMMAND --help' for the options of a command. "
        "New here? 'lychee build-tiny ./tiny' makes an offline test model in seconds.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    _rerank_parser(commands)

    templates = commands.add_parser(
        "templates", help="list the instruction templates", description="List the instruction templates (--task)."
    )
    templates.add_argument("--json", action="store_true", help="print JSON")
    templates.set_defaults(handler=cmd_templates, command_parser=templates)

    tiny = commands.add_parser(
        "build-tiny",
        help="build a tiny offline test checkpoint",
        description="Build a tiny, randomly initialised checkpoint of the real Lychee architecture: it loads "
        "and scores like the real model (meaningless scores) without any download. Use it to try the CLI, "
        "the service and your CI offline.",
    )
    tiny.add_argument("path", type=Path, help="directory to write")
    tiny.add_argument(
        "--family",
        choices=("lychee", "qwen3-vl"),
        default="lychee",
        help="model family: lychee (Qwen2.5-VL) or qwen3-vl (Qwen3-VL-Reranker) (default: lychee)",
    )
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    tiny.add_argument("--real-vocab", action="store_true", help="use the real 152064-token vocabulary (for benchmarks)")
    tiny.add_argument(
        "--real-tokenizer",
        action="store_true",
        help="use the real Qwen tokenizer, chat template and embedding width (offline; needs the real-vocab extra)",
    )
    tiny.add_argument(
        "--preset",
        choices=("tiny", "small"),
        default="tiny",
        help="size: tiny (tests, default), small (8 layers of 512: CPU benchmarks, vLLM)",
    )
    tiny.set_defaults(handler=cmd_build_tiny, command_parser=tiny)

    serve = commands.add_parser(
        "serve",
        help="start the HTTP rerank API",
        description="Serve POST /api/rerank, the Cohere/Jina/vLLM-compatible POST /v1/rerank (also /rerank and "
        "/v2/rerank), GET /health, GET /ready, Prometheus metrics at /metrics and the API docs at /docs. "
        "Set an API key (--api-key, --api-key-file or $LYCHEE_API_KEY) before listening beyond this machine.",
    )
    _add_server_options(serve, 8000, cmd_serve)

    ui = commands.add_parser(
        "ui",
        help="start the web page",
        description="Serve a web page to try the reranker: instruction presets, text and image queries and "
        "documents, a rerank mode and a single-document score mode.",
    )
    ui.add_argument("--with-api", action="store_true", help="also serve the HTTP API; the page moves to /ui")
    _add_server_options(ui, 7860, cmd_ui)
    _vllm_serve_parser(commands)
    _eval_parser(commands)
    return parser


def _vllm_serve_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "vllm-serve",
        help="serve a Lychee or Qwen3-VL-Reranker checkpoint on vLLM (its /v1/rerank), for many GPUs",
        description=_wrap(
            "Start 'vllm serve' with the checkpoint's recipe (from its model_type, or --recipe): the pooling "
            "runner, the family's yes/no classifier overrides, the recipe's image pixel bounds and max length, "
            "and a score template generated from the recipe (system prompt, default instruction, layout), so "
            "that vLLM's /v1/rerank and /v1/score give the engine's scores, with the instruction per request "
            "('instruction' in the body). Every argument after MODEL goes to 'vllm serve' and wins over the "
            "recipe's defaults. Needs vLLM in this environment (docs/vllm.md)."
        ),
        epilog="examples:\n"
        "  lychee vllm-serve vec-ai/lychee-rerank-mm --port 8000\n"
        "  lychee vllm-serve vec-ai/lychee-rerank-mm --data-parallel-size 4\n"
        "  lychee vllm-serve ./tiny --dtype float32 --enforce-eager --print-command",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--print-command", action="store_true", help="print the vllm serve command instead of running it"
    )
    parser.add_argument(
        "--recipe",
        metavar="NAME",
        default=None,
        help="the model family, 'lychee' or 'qwen3-vl' (default: from the checkpoint's model_type)",
    )
    parser.add_argument("model", metavar="MODEL", help="Hugging Face id or local checkpoint directory")
    parser.add_argument("vllm_args", nargs=argparse.REMAINDER, metavar="VLLM_ARGS", help="passed to vllm serve")
    parser.set_defaults(handler=cmd_vllm_serve, command_parser=parser)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lychee-integrations")
    except PackageNotFoundError:
        return "unknown"
