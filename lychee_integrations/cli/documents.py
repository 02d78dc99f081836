"""Where the ``lychee rerank`` command's query and documents come from: arguments and files."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DOC_FORMATS",
    "LabelledDocument",
    "UsageError",
    "describe",
    "documents_from_args",
    "image_ref",
    "query_from_args",
]

DOC_FORMATS = ("auto", "json", "jsonl", "lines", "images")
_PREVIEW = 60
_URL_PREFIXES = ("http://", "https://", "data:", "file:")


class UsageError(Exception):
    """A bad argument; ``main`` prints it with the command's usage and exits with 2."""


@dataclass
class LabelledDocument:
    """A document and where it came from (``--doc #2``, ``docs.jsonl line 4``), for messages."""

    label: str
    value: Any


def image_ref(text: str) -> Any:
    """Return a path (checked now) or an http(s)/data/file URL (read later by the engine's loader)."""
    if text.lower().startswith(_URL_PREFIXES):
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"image file not found: {text}")
    return path


def _read_text(path: str | Path, what: str) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"argument {what}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc


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


def _read_docs_file(path: str, requested: str) -> list[LabelledDocument]:
    by_suffix = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
    fmt = by_suffix.get(Path(path).suffix.lower(), "lines") if requested == "auto" else requested
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
        return [
            LabelledDocument(f"{name} item {i}", _json_document(v, f"{name} item {i}", base))
            for i, v in enumerate(data)
        ]
    docs: list[LabelledDocument] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        if fmt == "jsonl":
            try:
                docs.append(LabelledDocument(where, _json_document(json.loads(line), where, base)))
            except ValueError as exc:
                raise UsageError(f"argument --docs-file: {where} is not valid JSON: {exc}") from exc
        elif fmt == "images":
            try:
                docs.append(LabelledDocument(where, {"image": image_ref(str(_near(line.strip(), base)))}))
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"argument --docs-file: {where}: {exc}") from exc
        else:
            docs.append(LabelledDocument(where, line.strip()))
    return docs


def query_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Build the query from ``--query``, ``--query-file`` and ``--query-image``."""
    if args.query is not None and args.query_file is not None:
        raise UsageError("argument --query-file: not allowed with argument --query")
    text = args.query if args.query_file is None else _read_text(args.query_file, "--query-file").strip()
    if not (text and text.strip()) and not args.query_image:
        raise UsageError("give a query: --query TEXT, --query-file PATH and/or --query-image IMAGE")
    return {"text": text, "images": list(args.query_image)}


def documents_from_args(args: argparse.Namespace) -> list[LabelledDocument]:
    """Collect the documents of the arguments, in order, then of each ``--docs-file``."""
    documents: list[LabelledDocument] = list(args.documents)
    for path in args.docs_file:
        documents.extend(_read_docs_file(path, args.docs_format))
    if not documents:
        raise UsageError("give documents: --doc TEXT, --doc-image IMAGE, --doc-text-image TEXT IMAGE or --docs-file")
    return documents


def describe(value: Any) -> str:
    """One short line describing a document, for the result table."""
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
