"""Per-call ``batch_size`` and progress bar (``show_progress``; ``show_progress_bar`` on predict/rank).

The engine's forward passes are counted through its public telemetry (``batch_pairs``: one
event per forward pass), never by replacing a part of the engine.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lychee_integrations import ConfigurationError
from lychee_integrations.engine import LycheeReranker
from lychee_integrations.scoring import Scored, Scorer, ScoreRequest
from lychee_integrations.telemetry import add_listener

WORDS = ["red", "cat", "shoe", "river", "stone", "light", "paper", "green", "blue", "mountain", "quiet", "window"]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@contextmanager
def forward_passes() -> Iterator[list[int]]:
    """Collect the pairs of each forward pass the engine runs meanwhile."""
    passes: list[int] = []
    remove = add_listener(lambda name, value: passes.append(int(value)) if name == "batch_pairs" else None)
    try:
        yield passes
    finally:
        remove()


class Recording(Scorer):
    def __init__(self) -> None:
        self.requests: list[ScoreRequest] = []

    @property
    def model_name(self) -> str:
        return "recording"

    def _score(self, request: ScoreRequest) -> Scored:
        self.requests.append(request)
        return Scored([0.5] * len(request.documents), None, request.instruction)


# ---------------------------------------------------------------- the base, once for every backend


def test_every_call_hands_its_options_to_the_backend() -> None:
    scorer = Recording()
    scorer.score("q", ["a"], batch_size=3, show_progress=True)
    scorer.rerank("q", ["a"], batch_size=4, show_progress=False)
    scorer.score_with_usage("q", ["a"], batch_size=5)
    asyncio.run(scorer.arerank("q", ["a"], batch_size=6, show_progress=True))
    scorer.predict([("q", "a"), ("r", "b")], batch_size=7, show_progress_bar=True)
    scorer.rank("q", ["a", "b"], batch_size=8, show_progress_bar=False)
    scorer.score("q", ["a"])
    got = [(r.batch_size, r.show_progress) for r in scorer.requests]
    assert got == [(3, True), (4, False), (5, None), (6, True), (7, True), (7, True), (8, False), (None, None)]


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "8"])
def test_a_bad_batch_size_is_refused_before_the_backend(bad: object) -> None:
    scorer = Recording()
    for call in (
        lambda: scorer.score("q", ["a"], batch_size=bad),  # type: ignore[arg-type]
        lambda: scorer.predict([("q", "a")], batch_size=bad),  # type: ignore[arg-type]
        lambda: scorer.rank("q", ["a"], batch_size=bad),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigurationError, match="batch_size must be a positive integer"):
            call()
    with pytest.raises(ConfigurationError, match="show_progress must be"):
        scorer.score("q", ["a"], show_progress="yes")  # type: ignore[arg-type]
    assert scorer.requests == []


# ---------------------------------------------------------------- the engine honours them


@pytest.mark.parametrize("prefix_reuse", [True, False])
def test_batch_size_is_the_most_pairs_per_forward_pass_of_that_call(tiny_checkpoint: Path, prefix_reuse: bool) -> None:
    reranker = LycheeReranker(model=str(tiny_checkpoint), prefix_reuse=prefix_reuse, max_batch_tokens=10**6)
    rng = random.Random(7)
    documents = [sentence(rng, 6 + i % 5) for i in range(11)]
    query = "a red cat on a quiet window " * 3  # long enough for a shared prefix
    runs = {}
    for size in (None, 4, 1):
        with forward_passes() as passes:
            runs[size] = (reranker.score(query, documents, batch_size=size), list(passes))
    assert runs[None][1] == [11]  # the config's batch_size (16) holds them all
    assert runs[4][1] == [4, 4, 3]
    assert runs[1][1] == [1] * 11
    for size in (4, 1):
        assert runs[size][0] == pytest.approx(runs[None][0], abs=1e-5)
    assert reranker.config.batch_size == 16  # a per-call option never changes the instance
    with forward_passes() as passes:
        reranker.predict([(query, d) for d in documents[:5]], batch_size=2)
    assert passes == [2, 2, 1]


def test_show_progress_draws_a_bar_over_the_calls_pairs(
    tiny_reranker: LycheeReranker, capfd: pytest.CaptureFixture[str]
) -> None:
    documents = ["a cat", "a dog", "a red shoe"]
    tiny_reranker.score("cat", documents)
    assert "lychee rerank" not in capfd.readouterr().err
    tiny_reranker.score("cat", documents, show_progress=True)
    err = capfd.readouterr().err
    assert "lychee rerank" in err and "3/3" in err
    tiny_reranker.rank("cat", documents, show_progress_bar=True)
    assert "3/3" in capfd.readouterr().err
    assert tiny_reranker.config.show_progress is False


# ---------------------------------------------------------------- the remote client accepts them


def test_the_remote_client_accepts_them_and_sends_one_request(
    tiny_checkpoint: Path, tiny_reranker: LycheeReranker
) -> None:
    """The server batches for all its clients: a call's batch_size splits nothing and changes no score."""
    from remote_helpers import lychee_serve

    from lychee_integrations import RemoteReranker

    documents = ["a cat", "a dog", "a red shoe", "a cat on a mat"]
    posts: list[str] = []

    def record(request: object) -> None:
        if getattr(request, "method", "") == "POST":
            posts.append(str(getattr(request, "url", "")))

    with (
        lychee_serve(tiny_checkpoint) as base,
        RemoteReranker(base, timeout=60, event_hooks={"request": [record]}) as client,
    ):
        plain = client.score("cat", documents)
        posts.clear()
        small = client.score("cat", documents, batch_size=1, show_progress=True)
        ranked = client.rank("cat", documents, batch_size=2, show_progress_bar=True)
    assert len(posts) == 2  # one request per call, whatever the batch size
    assert small == pytest.approx(plain, abs=1e-6) and plain == pytest.approx(
        tiny_reranker.score("cat", documents), abs=1e-4
    )
    assert [row["corpus_id"] for row in ranked] == [r.index for r in tiny_reranker.rerank("cat", documents)]
