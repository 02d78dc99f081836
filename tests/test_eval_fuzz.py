"""Arbitrary lines in corpus.jsonl or a qrels file give a dataset or a DatasetError, nothing else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lychee_integrations.eval import DatasetError, load_dataset

GOOD_CORPUS = [json.dumps({"_id": "d1", "title": "t", "text": "a red car"})]
GOOD_QUERIES = [json.dumps({"_id": "q1", "text": "car"})]
GOOD_QRELS = ["q1\td1\t1"]

KEYS = st.sampled_from(["_id", "title", "text", "image"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner),
    max_leaves=6,
)
lines = st.one_of(st.text(max_size=40), json_values.map(json.dumps))


def _load(corpus: list[str], qrels: list[str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "qrels").mkdir()
        (root / "corpus.jsonl").write_text("\n".join(corpus), encoding="utf-8", errors="surrogatepass")
        (root / "queries.jsonl").write_text("\n".join(GOOD_QUERIES))
        (root / "qrels" / "test.tsv").write_text("\n".join(qrels), encoding="utf-8", errors="surrogatepass")
        try:
            dataset = load_dataset(root)
        except DatasetError as exc:
            assert exc.path.name in ("corpus.jsonl", "test.tsv")
        else:
            assert set(dataset.qrels) <= set(dataset.queries)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, max_size=4))
def test_fuzz_corpus_lines(extra: list[str]) -> None:
    _load(GOOD_CORPUS + extra, GOOD_QRELS)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=30) | st.lists(st.text(max_size=6), max_size=5).map("\t".join), max_size=4))
def test_fuzz_qrels_lines(extra: list[str]) -> None:
    _load(GOOD_CORPUS, GOOD_QRELS + extra)
