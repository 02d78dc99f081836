"""Workloads shared by the benchmarks, so that every backend is measured on the same inputs.

Each returns ``(query, documents, instruction)`` in the engine's input forms.

* :func:`image_query_workload`: a 448-px image query against short text documents: the
  shared prefix (system prompt, instruction, query image) is most of every pair.
* :func:`text_kb_workload`: a text query under a long enterprise knowledge-base
  instruction against documents of about 100 words.
"""

from __future__ import annotations

import random
from typing import Any

from PIL import Image

KB_INSTRUCTION = (
    "You are ranking passages for the internal knowledge base of a large company. Given an employee's "
    "question about policies, benefits, travel, expenses, security, equipment or internal tools, judge "
    "whether the passage answers it directly and accurately for employees in the same country and role. "
    "Prefer current policy pages over announcements, archived pages and meeting notes; a passage that only "
    "mentions the topic, or answers a different question about it, does not meet the requirements, and "
    "neither does a passage that tells the reader to ask someone else without giving the answer itself."
)

WORDS = [
    "policy",
    "expense",
    "travel",
    "laptop",
    "password",
    "security",
    "benefits",
    "holiday",
    "remote",
    "office",
    "manager",
    "approval",
    "receipt",
    "limit",
    "hotel",
    "flight",
    "train",
    "reimbursement",
    "portal",
    "ticket",
    "request",
    "employee",
    "team",
    "contract",
]


def _sentence(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def image_query_workload(n_docs: int = 24, size: int = 448, seed: int = 0) -> tuple[Any, list[Any], str]:
    """An image query (``size`` x ``size``) against ``n_docs`` short text documents."""
    rng = random.Random(seed)
    pixels = bytes(rng.randrange(256) for _ in range(size * size * 3))
    query = {"image": Image.frombytes("RGB", (size, size), pixels)}
    documents: list[Any] = [_sentence(rng, rng.randrange(6, 14)) for _ in range(n_docs)]
    return query, documents, "Given a product photo, find the catalogue entry that describes it"


def text_kb_workload(n_docs: int = 50, n_words: int = 100, seed: int = 0) -> tuple[Any, list[Any], str]:
    """A text query under :data:`KB_INSTRUCTION` against ``n_docs`` documents of about ``n_words`` words."""
    rng = random.Random(seed)
    documents: list[Any] = [_sentence(rng, n_words + rng.randrange(-10, 11)) for _ in range(n_docs)]
    return "how much can I spend on a hotel when travelling for work", documents, KB_INSTRUCTION


def image_documents_workload(n_docs: int = 50, size: int = 672, seed: int = 0) -> tuple[Any, list[Any], str]:
    """A text query against ``n_docs`` image documents of ``size`` x ``size`` pixels, as PNG bytes."""
    import io

    rng = random.Random(seed)
    documents: list[Any] = []
    for _ in range(n_docs):
        image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))  # type: ignore[arg-type]
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        documents.append({"image": buffer.getvalue()})
    return "a photo of a red running shoe", documents, "Given a product query, find the matching product photo"
