"""First-stage rankings: a six-column TREC run file, or BM25 (bm25s) over a text corpus."""

from __future__ import annotations

import logging
from pathlib import Path

from lychee_integrations._deps import require
from lychee_integrations.eval.dataset import Dataset, DatasetError

__all__ = ["Run", "bm25_run", "read_run", "top_k"]

#: ``{query_id: {doc_id: score}}``, the shape ir-measures and pytrec_eval take.
Run = dict[str, dict[str, float]]


def read_run(path: str | Path, dataset: Dataset) -> Run:
    """Read a TREC run (``qid Q0 docid rank score tag``), checking every id against ``dataset``.

    Raises:
        DatasetError: The file is missing, a line is malformed or names an unknown id.

    Example:
        >>> run = read_run("examples/data/eval/bm25.trec", dataset)  # doctest: +SKIP

    """
    file = Path(path)
    if not file.is_file():
        raise DatasetError(file, "run file not found")
    run: Run = {}
    for number, raw in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        fields = raw.split()
        if len(fields) != 6:
            problem = f"expected 6 columns (qid Q0 docid rank score tag), got {len(fields)}"
            raise DatasetError(file, problem, line=number)
        query_id, _, doc_id, _, score_text, _ = fields
        try:
            score = float(score_text)
        except ValueError:
            raise DatasetError(file, f"score must be a number, got {score_text!r}", line=number) from None
        if query_id not in dataset.queries:
            raise DatasetError(file, f"unknown query id {query_id!r} (not in queries.jsonl)", line=number)
        if doc_id not in dataset.corpus:
            raise DatasetError(file, f"unknown corpus id {doc_id!r} (not in corpus.jsonl)", line=number)
        run.setdefault(query_id, {})[doc_id] = score
    return run


def top_k(ranking: dict[str, float], k: int) -> list[str]:
    """Return the ``k`` best doc ids, score descending, ties broken by id (descending, as trec_eval does)."""
    return [doc for doc, _ in sorted(ranking.items(), key=lambda item: (item[1], item[0]), reverse=True)[:k]]


def bm25_run(dataset: Dataset, k: int) -> Run:
    """Rank the corpus for every text query with BM25 (bm25s, Lucene variant, English stopwords).

    Image-only documents have no text and are never retrieved; use a run file for image corpora.

    Raises:
        MissingDependencyError: bm25s is not installed (extra ``eval``).
        DatasetError: A query has no text.

    Example:
        >>> run = bm25_run(dataset, k=50)  # doctest: +SKIP

    """
    bm25s = require("bm25s", "eval")
    # bm25s sets its own logger to DEBUG on import, so its debug lines pass any handler at default
    # verbosity; let it follow the root level instead (the CLI's -v / -vv).
    bm25s_logger = logging.getLogger("bm25s")
    if bm25s_logger.level == logging.DEBUG:
        bm25s_logger.setLevel(logging.NOTSET)
    ids = [doc_id for doc_id, doc in dataset.corpus.items() if doc.text.strip()]
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([dataset.corpus[i].text for i in ids], stopwords="en", show_progress=False), show_progress=False
    )
    query_ids = list(dataset.queries)
    for query_id in query_ids:
        if not dataset.queries[query_id].text.strip():
            raise DatasetError(
                dataset.root / "queries.jsonl",
                f"query {query_id!r} has no text: BM25 needs text; give a first-stage run with --run",
            )
    tokens = bm25s.tokenize([dataset.queries[q].text for q in query_ids], stopwords="en", show_progress=False)
    depth = min(k, len(ids))
    results, scores = retriever.retrieve(tokens, k=depth, show_progress=False)
    run: Run = {}
    for row, query_id in enumerate(query_ids):
        hits = zip(results[row], scores[row], strict=True)
        run[query_id] = {ids[int(index)]: float(score) for index, score in hits if float(score) > 0}
    return run
