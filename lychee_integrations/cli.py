"""The ``lychee`` command: rerank from the shell, list templates, build a test checkpoint, serve.

Examples::

    lychee build-tiny ./tiny-lychee                    # an offline test checkpoint
    lychee rerank --model ./tiny-lychee --query "a cat" --doc "a cat on a mat" --doc-image cat.png
    lychee rerank --task product_search --query "red shoes" --docs-file candidates.jsonl --top-n 5 --json
    lychee templates
    lychee serve --port 8000 --image-root /srv/images
    lychee ui --with-api

Bad arguments exit with status 2 and a message naming the argument; ``lychee CMD --help``
explains every option.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lychee_integrations.errors import ConfigurationError, InvalidInputError, LycheeError, MissingDependencyError

if TYPE_CHECKING:
    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.inputs import RerankInput
    from lychee_integrations.service.settings import ServiceSettings

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

_DOC_FORMATS = ("auto", "json", "jsonl", "lines", "images")
_PREVIEW = 60
_URL_PREFIXES = ("http://", "https://", "data:", "file:")


class UsageError(Exception):
    """A bad argument; ``main`` prints it with the command's usage and exits with 2."""


@dataclass
class _Doc:
    label: str
    value: Any


# ---------------------------------------------------------------- argument types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


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


def _image_ref(text: str) -> Any:
    """Return a path (checked now) or an http(s)/data/file URL (read later by the engine's loader)."""
    if text.lower().startswith(_URL_PREFIXES):
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"image file not found: {text}")
    return path


class _AppendDoc(argparse.Action):
    """Append a document to ``namespace.documents``, keeping the command-line order."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        documents: list[_Doc] = getattr(namespace, "documents", None) or []
        name = max(self.option_strings, key=len)  # the long form, also when the short one was used
        number = sum(d.label.startswith(f"{name} ") for d in documents) + 1
        if name == "--doc":
            value: Any = values
        elif name == "--doc-image":
            value = {"image": values}
        else:
            try:
                value = {"text": values[0], "image": _image_ref(values[1])}
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentError(self, str(exc)) from None
        documents.append(_Doc(f"{name} #{number}", value))
        namespace.documents = documents


# ---------------------------------------------------------------- parser


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
        "--max-length", type=_positive_int, default=3200, metavar="TOKENS", help="tokens per pair (default: 3200)"
    )
    group.add_argument(
        "--batch-size", type=_positive_int, default=16, metavar="N", help="pairs per forward pass (default: 16)"
    )


def _add_service_options(parser: argparse.ArgumentParser, default_port: int) -> None:
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    net.add_argument("--port", type=_port, default=default_port, help=f"port (default: {default_port})")
    net.add_argument(
        "--no-preload", action="store_true", help="load the model on the first request instead of at start"
    )
    limits = parser.add_argument_group("limits and image security")
    limits.add_argument(
        "--max-documents", type=_positive_int, default=100, metavar="N", help="documents per request (default: 100)"
    )
    limits.add_argument(
        "--max-body-size", type=_size, default="16MiB", metavar="SIZE", help="request body size (default: 16MiB)"
    )
    limits.add_argument(
        "--max-image-size", type=_size, default="8MiB", metavar="SIZE", help="encoded image size (default: 8MiB)"
    )
    limits.add_argument(
        "--max-image-pixels",
        type=_positive_int,
        default=20_000_000,
        metavar="N",
        help="decoded image width x height (default: 20000000)",
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
        "--image-timeout", type=_positive_float, default=10.0, metavar="SECONDS", help="per download step (default: 10)"
    )
    limits.add_argument(
        "--max-concurrency",
        type=_positive_int,
        default=32,
        metavar="N",
        help="engine calls at once; the engine batches them together (default: 32)",
    )


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
        "--query-image", type=_image_ref, action="append", default=[], metavar="IMAGE", help="query image (repeatable)"
    )
    docs = parser.add_argument_group("documents")
    docs.add_argument("--doc", "-d", action=_AppendDoc, metavar="TEXT", help="a text document (repeatable)")
    docs.add_argument(
        "--doc-image", action=_AppendDoc, type=_image_ref, metavar="IMAGE", help="an image document (repeatable)"
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
        choices=_DOC_FORMATS,
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
    parser.set_defaults(handler=_cmd_rerank, command_parser=parser, documents=[])


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
    templates.set_defaults(handler=_cmd_templates, command_parser=templates)

    tiny = commands.add_parser(
        "build-tiny",
        help="build a tiny offline test checkpoint",
        description="Build a tiny, randomly initialised checkpoint of the real Lychee architecture: it loads "
        "and scores like the real model (meaningless scores) without any download. Use it to try the CLI, "
        "the service and your CI offline.",
    )
    tiny.add_argument("path", type=Path, help="directory to write")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    tiny.add_argument("--real-vocab", action="store_true", help="use the real 152064-token vocabulary (for benchmarks)")
    tiny.set_defaults(handler=_cmd_build_tiny, command_parser=tiny)

    serve = commands.add_parser(
        "serve",
        help="start the HTTP rerank API",
        description="Serve POST /api/rerank, the Cohere/Jina/vLLM-compatible POST /v1/rerank, GET /health and "
        "the API docs at /docs. There is no authentication: keep the default host, or put the server "
        "behind a proxy that authenticates.",
    )
    _add_service_options(serve, default_port=8000)
    _add_engine_options(serve)
    serve.set_defaults(handler=_cmd_serve, command_parser=serve)

    ui = commands.add_parser(
        "ui",
        help="start the web page",
        description="Serve a web page to try the reranker: instruction presets, text and image queries and "
        "documents, a rerank mode and a single-document score mode.",
    )
    ui.add_argument("--with-api", action="store_true", help="also serve the HTTP API; the page moves to /ui")
    _add_service_options(ui, default_port=7860)
    _add_engine_options(ui)
    ui.set_defaults(handler=_cmd_ui, command_parser=ui)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lychee-integrations")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- reading documents


def _read_text(path: str | Path, what: str) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"argument {what}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def _format_of(path: str, requested: str) -> str:
    if requested != "auto":
        return requested
    suffix = Path(path).suffix.lower()
    return {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "lines")


def _near(value: Any, base: Path) -> Any:
    """Resolve a relative image path against the documents file's directory, when it names a file there."""
    if isinstance(value, str) and not value.lower().startswith(_URL_PREFIXES) and len(value) < 4096:
        candidate = base / value
        if not Path(value).is_absolute() and candidate.is_file():
            return candidate
    return value


def _json_document(value: Any, where: str, base: Path) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        resolved = dict(value)
        if "image" in resolved:
            resolved["image"] = _near(resolved["image"], base)
        if isinstance(resolved.get("images"), list):
            resolved["images"] = [_near(v, base) for v in resolved["images"]]
        return resolved
    raise UsageError(f"{where}: a document must be a string or an object, got {type(value).__name__}")


def _read_docs_file(path: str, requested: str) -> list[_Doc]:
    fmt = _format_of(path, requested)
    text = _read_text(path, "--docs-file")
    name = "stdin" if path == "-" else path
    base = Path.cwd() if path == "-" else Path(path).parent
    if fmt == "json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"argument --docs-file: {name} is not valid JSON: {exc}") from exc
        if isinstance(data, dict) and set(data) == {"documents"}:
            data = data["documents"]
        if not isinstance(data, list):
            raise UsageError(f'argument --docs-file: {name} must hold a JSON list, or {{"documents": [...]}}')
        return [_Doc(f"{name} item {i}", _json_document(v, f"{name} item {i}", base)) for i, v in enumerate(data)]
    docs: list[_Doc] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        if fmt == "jsonl":
            try:
                docs.append(_Doc(where, _json_document(json.loads(line), where, base)))
            except ValueError as exc:
                raise UsageError(f"argument --docs-file: {where} is not valid JSON: {exc}") from exc
        elif fmt == "images":
            try:
                docs.append(_Doc(where, {"image": _image_ref(str(_near(line.strip(), base)))}))
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"argument --docs-file: {where}: {exc}") from exc
        else:
            docs.append(_Doc(where, line.strip()))
    return docs


def _query(args: argparse.Namespace) -> dict[str, Any]:
    if args.query is not None and args.query_file is not None:
        raise UsageError("argument --query-file: not allowed with argument --query")
    text = args.query
    if args.query_file is not None:
        text = _read_text(args.query_file, "--query-file").strip()
    if not (text and text.strip()) and not args.query_image:
        raise UsageError("give a query: --query TEXT, --query-file PATH and/or --query-image IMAGE")
    return {"text": text, "images": list(args.query_image)}


def _documents(args: argparse.Namespace) -> list[_Doc]:
    documents: list[_Doc] = list(args.documents)
    for path in args.docs_file:
        documents.extend(_read_docs_file(path, args.docs_format))
    if not documents:
        raise UsageError("give documents: --doc TEXT, --doc-image IMAGE, --doc-text-image TEXT IMAGE or --docs-file")
    return documents


# ---------------------------------------------------------------- commands


def _reranker(args: argparse.Namespace) -> LycheeReranker:
    from lychee_integrations.config import default_model
    from lychee_integrations.engine import LycheeReranker

    return LycheeReranker(
        args.model or default_model(),
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        batch_size=args.batch_size,
    )


def _describe(value: Any) -> str:
    if isinstance(value, str):
        text = value
        images: list[Any] = []
    else:
        text = value.get("text") or ""
        images = [value["image"]] if value.get("image") is not None else list(value.get("images") or [])
    names = [f"[image: {Path(i).name if isinstance(i, Path) else str(i)[:40]}]" for i in images]
    text = " ".join(text.split())
    if len(text) > _PREVIEW:
        text = text[: _PREVIEW - 1] + "…"
    return " ".join([*names, text]).strip()


def _explain(exc: InvalidInputError, documents: list[_Doc]) -> str:
    lines = []
    for index, message in exc.problems:
        if index is not None and 0 <= index < len(documents):
            message = f"{documents[index].label}: {message}"
        lines.append(message)
    return "; ".join(lines)


def _inputs(documents: list[_Doc]) -> list[RerankInput]:
    from lychee_integrations.inputs import to_rerank_input

    converted, problems = [], []
    for index, doc in enumerate(documents):
        try:
            value = to_rerank_input(doc.value, item=doc.label, index=index)
        except InvalidInputError as exc:
            problems.append(str(exc))
            continue
        if value.kind == "empty":
            problems.append(f"{doc.label}: is empty: give text, an image, or both")
        converted.append(value)
    if problems:
        raise UsageError("; ".join(problems))
    return converted


def _cmd_rerank(args: argparse.Namespace) -> int:
    from lychee_integrations.instructions import resolve_instruction
    from lychee_integrations.results import score_band

    try:
        instruction = resolve_instruction(args.task, args.instruction)
    except ConfigurationError as exc:
        raise UsageError(f"argument {'--task' if args.task is not None else '--instruction'}: {exc}") from exc
    query = _query(args)
    documents = _documents(args)
    inputs = _inputs(documents)
    reranker = _reranker(args)
    try:
        ranked = reranker.rerank(query, inputs, instruction=instruction, top_n=args.top_n)
    except InvalidInputError as exc:
        raise UsageError(_explain(exc, documents)) from exc
    rows = [
        {
            "rank": rank,
            "index": result.index,
            "score": result.score,
            "band": score_band(result.score),
            "type": inputs[result.index].kind,
            "source": documents[result.index].label,
            "document": _describe(documents[result.index].value),
        }
        for rank, result in enumerate(ranked, start=1)
    ]
    if args.json:
        print(json.dumps({"model": reranker.model_name, "instruction": instruction, "results": rows}, indent=2))
    else:
        _print_table(rows)
    return 0


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'rank':>4}  {'index':>5}  {'score':>6}  {'band':<7}  {'type':<10}  document"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['rank']:>4}  {row['index']:>5}  {row['score']:>6.4f}  {row['band']:<7}  "
            f"{row['type']:<10}  {row['document']}"
        )


def _cmd_templates(args: argparse.Namespace) -> int:
    from lychee_integrations.instructions import list_templates

    templates = list_templates()
    if args.json:
        print(json.dumps([t.__dict__ for t in templates], indent=2))
        return 0
    width = max(len(t.name) for t in templates)
    for t in templates:
        print(f"{t.name:<{width}}  {t.description}")
        print(f"{'':<{width}}  instruction: {t.instruction}")
    return 0


def _cmd_build_tiny(args: argparse.Namespace) -> int:
    from lychee_integrations.testing import REAL_VOCAB_SIZE, build_tiny_checkpoint

    if args.path.exists() and not args.path.is_dir():
        raise UsageError(f"argument path: {args.path} exists and is not a directory")
    path = build_tiny_checkpoint(args.path, seed=args.seed, vocab_size=REAL_VOCAB_SIZE if args.real_vocab else None)
    print(f"built a tiny offline Lychee checkpoint in {path}")
    print(f'try: lychee rerank --model {path} --query "a cat" --doc "a cat on a mat" --doc "a red car"')
    return 0


def _settings(args: argparse.Namespace) -> ServiceSettings:
    from lychee_integrations.service.settings import ServiceSettings

    try:
        return ServiceSettings(
            max_documents=args.max_documents,
            max_body_bytes=args.max_body_size,
            max_image_bytes=args.max_image_size,
            max_image_pixels=args.max_image_pixels,
            allow_remote_images=args.allow_remote_images,
            image_root=args.image_root,
            image_timeout=args.image_timeout,
            max_concurrency=args.max_concurrency,
        )
    except ConfigurationError as exc:
        raise UsageError(f"argument --image-root: {exc}" if "image root" in str(exc) else str(exc)) from exc


def _start(args: argparse.Namespace, *, ui: bool) -> int:
    from lychee_integrations._deps import require
    from lychee_integrations.service import service_reranker

    uvicorn = require("uvicorn", "server")
    settings = _settings(args)
    reranker = service_reranker(
        settings,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        batch_size=args.batch_size,
    )
    if ui:
        from lychee_integrations.service.webui import create_ui_app

        app = create_ui_app(reranker, settings, with_api=args.with_api)
    else:
        from lychee_integrations.service.app import create_app

        app = create_app(reranker, settings)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "listening on %s: the API has no authentication; put it behind an authenticating proxy", args.host
        )
    if not args.no_preload:
        logger.warning("loading %s ...", reranker.model_name)
        reranker.load()
    where = f"http://{args.host}:{args.port}"
    page = f"{where}/ui/" if ui and args.with_api else f"{where}/"
    print(f"serving {reranker.model_name}: " + (f"web page at {page}" if ui else f"API docs at {where}/docs"))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    return _start(args, ui=False)


def _cmd_ui(args: argparse.Namespace) -> int:
    return _start(args, ui=True)


# ---------------------------------------------------------------- entry point


_OPTION_NAMES = {"device": "--device", "dtype": "--dtype", "max_length": "--max-length", "batch_size": "--batch-size"}


def _option_error(exc: ConfigurationError) -> str:
    """Name the option a configuration error is about, where the message lets us tell."""
    message = str(exc)
    if message.startswith("cannot load model"):
        return f"argument --model: {message}"
    for name, option in _OPTION_NAMES.items():
        if message.startswith((f"{name} ", f"{name}=")):
            return f"argument {option}: {message}"
    return message


def _fail(parser: argparse.ArgumentParser, args: argparse.Namespace, message: str) -> NoReturn:
    command_parser = getattr(args, "command_parser", None)
    (command_parser if isinstance(command_parser, argparse.ArgumentParser) else parser).error(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lychee`` command.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 on success, 2 for bad arguments or inputs (with a message naming
        them), 1 for other failures (a missing extra, a model that fails to run).

    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except UsageError as exc:
        _fail(parser, args, str(exc))
    except MissingDependencyError as exc:
        print(f"lychee {args.command}: {exc}", file=sys.stderr)
        return 1
    except ConfigurationError as exc:
        _fail(parser, args, _option_error(exc))
    except LycheeError as exc:
        print(f"lychee {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logger.debug("lychee %s failed", args.command, exc_info=True)
        print(f"lychee {args.command}: error: {type(exc).__name__}: {exc} (run with -vv for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
