"""``lychee eval``: measure a reranker on a BEIR-layout dataset, first stage vs reranked.

Example:
    >>> from lychee_integrations.eval import evaluate, load_dataset  # doctest: +SKIP
    >>> report = evaluate(load_dataset("examples/data/eval"), scorer=my_scorer, top_k=20)  # doctest: +SKIP
    >>> report.metrics["reranked"]["nDCG@10"]  # doctest: +SKIP

"""

from __future__ import annotations

from lychee_integrations.eval.dataset import Dataset, DatasetError, Document, load_dataset
from lychee_integrations.eval.first_stage import Run, bm25_run, read_run
from lychee_integrations.eval.metrics import compute_metrics, metric_names
from lychee_integrations.eval.runner import EvalReport, evaluate

__all__ = [
    "Dataset",
    "DatasetError",
    "Document",
    "EvalReport",
    "Run",
    "bm25_run",
    "compute_metrics",
    "evaluate",
    "load_dataset",
    "metric_names",
    "read_run",
]
