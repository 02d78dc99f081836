"""Load a BEIR-layout dataset (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) with images.

Every problem is a :class:`DatasetError` naming the file and, where there is one, the line.
Images are checked (header read) at load time and kept as paths, opened later by the scorer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lychee_integrations.errors import LycheeError

__all__ = ["MODALITIES", "Dataset", "DatasetError", "Document", "load_dataset"]

#: A document's modality: text only, image only, or both (a caption or text with the image).
MODALITIES = ("text", "image", "text+image")


class DatasetError(LycheeError):
    """A dataset (or run) file is missing or malformed; the message names the file and line."""

    def __init__(self, path: Path | str, problem: str, *, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Document:
    """A query or corpus entry: text (title and text joined) and an optional image path."""

    id: str
    text: str
    image: Path | None = None

    @property
    def modality(self) -> str:
        """``"text"``, ``"image"`` or ``"text+image"``: what this entry holds (one of :data:`MODALITIES`)."""
        if self.image is None:
            return "text"
        return "text+image" if self.text.strip() else "image"

    def as_input(self) -> dict[str, Any] | str:
        """Return the value a :class:`~lychee_integrations.scoring.Scorer` takes for this entry."""
        if self.image is None:
            return self.text
        return {"text": self.text or None, "image": str(self.image)}


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: corpus and queries by id, and the qrels of one split."""

    root: Path
    split: str
    corpus: dict[str, Document]
    queries: dict[str, Document]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)


def _text(path: Path, line: int, record: dict[str, Any], key: str) -> str:
    value = record.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DatasetError(path, f'"{key}" must be a string, got {type(value).__name__}', line=line)
    return value


def _image(root: Path, path: Path, line: int, value: Any) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DatasetError(path, f'"image" must be a path string, got {type(value).__name__}', line=line)
    from PIL import Image, UnidentifiedImageError

    resolved = (root / value).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise DatasetError(path, f"image {value!r} is outside the dataset directory", line=line)
    try:
        with Image.open(resolved) as image:
            image.verify()
    except FileNotFoundError:
        raise DatasetError(path, f"image {value!r} does not exist", line=line) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(path, f"image {value!r} cannot be read: {exc}", line=line) from None
    return resolved


def _lines(path: Path) -> list[tuple[int, str]]:
    """Return the file's non-blank lines, numbered from 1."""
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(path, f"not UTF-8 text: {exc}") from None
    return [(number, raw) for number, raw in enumerate(lines, start=1) if raw.strip()]


def _read_jsonl(root: Path, path: Path, *, title: bool) -> dict[str, Document]:
    entries: dict[str, Document] = {}
    for number, raw in _lines(path):
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DatasetError(path, f"not valid JSON: {exc.msg}", line=number) from None
        if not isinstance(record, dict):
            raise DatasetError(path, f"expected a JSON object, got {type(record).__name__}", line=number)
        doc_id = record.get("_id")
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str) or not doc_id.strip():
            raise DatasetError(path, 'missing or empty "_id"', line=number)
        if doc_id in entries:
            raise DatasetError(path, f"duplicate _id {doc_id!r}", line=number)
        text = _text(path, number, record, "text")
        heading = _text(path, number, record, "title") if title else ""
        image = _image(root, path, number, record.get("image"))
        joined = f"{heading}\n{text}" if heading and text else heading or text
        if not joined.strip() and image is None:
            raise DatasetError(path, f"entry {doc_id!r} has neither text nor image", line=number)
        entries[doc_id] = Document(doc_id, joined, image)
    if not entries:
        raise DatasetError(path, "holds no entries")
    return entries


def _read_qrels(path: Path, corpus: dict[str, Document], queries: dict[str, Document]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for number, raw in _lines(path):
        fields = raw.split("\t") if "\t" in raw else raw.split()
        if number == 1 and fields[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue  # BEIR's header
        if len(fields) == 4:  # TREC qrels: qid iteration docid relevance
            fields = [fields[0], fields[2], fields[3]]
        if len(fields) != 3:
            raise DatasetError(path, f"expected 3 columns (query-id, corpus-id, score), got {len(fields)}", line=number)
        query_id, doc_id, score_text = (f.strip() for f in fields)
        try:
            score = int(score_text)
        except ValueError:
            raise DatasetError(path, f"score must be an integer, got {score_text!r}", line=number) from None
        if query_id not in queries:
            raise DatasetError(path, f"unknown query id {query_id!r} (not in queries.jsonl)", line=number)
        if doc_id not in corpus:
            raise DatasetError(path, f"unknown corpus id {doc_id!r} (not in corpus.jsonl)", line=number)
        qrels.setdefault(query_id, {})[doc_id] = score
    return qrels


def load_dataset(root: str | Path, split: str = "test") -> Dataset:
    """Load and check a BEIR-layout dataset.

    Args:
        root: The dataset directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
        split: Which qrels file to read.

    Returns:
        The dataset, with image paths resolved inside ``root``.

    Raises:
        DatasetError: A file is missing, a line is malformed, a qrel names an unknown id or
            an image cannot be read; the message names the file and line.

    Example:
        >>> ds = load_dataset("examples/data/eval")  # doctest: +SKIP
        >>> len(ds.queries), len(ds.corpus)  # doctest: +SKIP

    """
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(base, "dataset directory not found")
    corpus = _read_jsonl(base, base / "corpus.jsonl", title=True)
    queries = _read_jsonl(base, base / "queries.jsonl", title=False)
    qrels = _read_qrels(base / "qrels" / f"{split}.tsv", corpus, queries)
    return Dataset(base, split, corpus, queries, qrels)
