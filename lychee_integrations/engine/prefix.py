"""Finding the token prefix that pairs share, so the language model reads it once.

Every pair of a call starts with the same system prompt, instruction and query (for an
image query, hundreds of visual tokens). :func:`group_by_prefix` groups the pairs of one
run (which may hold several calls with different queries) by their longest common prefix
of token ids: no assumption is made about where the query ends, since a BPE merge may
straddle the query/document boundary. A prefix never ends inside an image, and an image
inside it must be the very same image in every pair of the group (the query's, which all
pairs of a call share): equal token ids say nothing about pixels, and comparing pixels would
make every image's patches at once, before the batches that need them.

This module is pure Python (no torch import); the model side is
:meth:`lychee_integrations.engine.model.LoadedModel.run_prefix` and ``score_suffix``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from lychee_integrations.engine.pairs import EncodedPair

__all__ = ["PrefixGroup", "group_by_prefix", "image_spans", "reusable_length", "shared_prefix_length"]

#: Reuse pays from this many shared tokens (below it, the extra pass costs more than it saves).
MIN_PREFIX_TOKENS = 32
#: Reuse pays from this many pairs sharing the prefix.
MIN_GROUP_PAIRS = 2


@dataclass(frozen=True)
class PrefixGroup:
    """Pairs (indices into the run) whose first ``length`` tokens, images included, are identical."""

    indices: tuple[int, ...]
    length: int


def image_spans(input_ids: Sequence[int], image_token_id: int) -> list[tuple[int, int]]:
    """Return ``[start, end)`` of each image's run of visual tokens, in order.

    Example:
        >>> image_spans([1, 9, 9, 2, 9, 3], 9)
        [(1, 3), (4, 5)]

    """
    spans: list[tuple[int, int]] = []
    start = -1
    for position, token in enumerate(input_ids):
        if token == image_token_id:
            if start < 0:
                start = position
        elif start >= 0:
            spans.append((start, position))
            start = -1
    if start >= 0:
        spans.append((start, len(input_ids)))
    return spans


def shared_prefix_length(a: EncodedPair, b: EncodedPair, image_token_id: int) -> int:
    """Length of the longest prefix ``a`` and ``b`` share, never ending inside an image.

    Token ids must match, and every image wholly inside the prefix must be the same object;
    the prefix is cut back to the start of the first image that differs or is not whole.
    It also leaves each pair at least one token of its own (the one whose state is scored).
    """
    length = _common_length(a.input_ids, b.input_ids, min(len(a), len(b)) - 1)
    return _cut_at_images(a.input_ids, length, image_token_id, lambda number, _: a.images[number] is b.images[number])


def reusable_length(
    ids: Sequence[int],
    image_keys: Sequence[bytes | None],
    cached_ids: Sequence[int],
    cached_keys: Sequence[bytes | None],
    image_token_id: int,
) -> int:
    """Length of the start of ``ids`` whose keys and values a cached prefix holds exactly.

    The token ids must match, and every image inside must be whole in both and of equal
    content key (visual tokens are one placeholder id, so the ids alone cannot tell images
    apart); the length is cut back to the start of the first image that differs or is not
    whole. Keys and values of the first ``n`` tokens depend on those tokens only (causal
    attention), so the cached prefix's first ``n`` are those of ``ids``' first ``n``.

    Example:
        >>> reusable_length([1, 2, 9, 9, 3], [b"a"], [1, 2, 9, 9, 4], [b"a"], 9)
        4
        >>> reusable_length([1, 2, 9, 9, 3], [b"a"], [1, 2, 9, 9, 4], [b"b"], 9)
        2

    """
    length = _common_length(ids, cached_ids, min(len(ids), len(cached_ids)))
    theirs = image_spans(cached_ids, image_token_id)

    def same(number: int, span: tuple[int, int]) -> bool:
        key = image_keys[number] if number < len(image_keys) else None
        whole = number < len(theirs) and theirs[number] == span
        return whole and key is not None and number < len(cached_keys) and cached_keys[number] == key

    return _cut_at_images(ids, length, image_token_id, same)


def _common_length(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    """Length of the longest common start of ``a`` and ``b``, at most ``limit``."""
    length = 0
    while length < limit and a[length] == b[length]:
        length += 1
    return length


def _cut_at_images(
    ids: Sequence[int], length: int, image_token_id: int, same: Callable[[int, tuple[int, int]], bool]
) -> int:
    """Cut ``length`` back to the start of the first image in it that is not whole or not ``same``.

    ``same(number, (start, end))`` tells whether image ``number`` (wholly inside) is the same
    image on the other side.
    """
    for number, (start, end) in enumerate(image_spans(ids[: length + 1], image_token_id)):
        if start >= length:
            break
        if end > length or not same(number, (start, end)):
            return start
    return length


def group_by_prefix(
    pairs: Sequence[EncodedPair],
    image_token_id: int,
    *,
    min_tokens: int = MIN_PREFIX_TOKENS,
    min_pairs: int = MIN_GROUP_PAIRS,
) -> tuple[list[PrefixGroup], list[int]]:
    """Group pairs by shared prefix where running the prefix once pays.

    Pairs are sorted by token ids, so pairs with long common prefixes are neighbours; a
    run of neighbours shares the smallest of their neighbour-to-neighbour prefixes. The
    split that saves most tokens is chosen (a run is split at its shortest links when the
    parts together save more than the whole, e.g. two queries behind one system prompt).

    Args:
        pairs: The run's encoded pairs.
        image_token_id: The checkpoint's image placeholder token.
        min_tokens: Smallest prefix worth a separate pass.
        min_pairs: Fewest pairs worth a separate pass.

    Returns:
        The groups, and the indices of pairs that run without reuse.

    Example:
        >>> a = EncodedPair(tuple(range(40)) + (7,), ())
        >>> b = EncodedPair(tuple(range(40)) + (8,), ())
        >>> group_by_prefix([a, b, EncodedPair((5, 6), ())], 99)
        ([PrefixGroup(indices=(0, 1), length=40)], [2])

    """
    order = sorted(range(len(pairs)), key=lambda i: pairs[i].input_ids)
    links = [shared_prefix_length(pairs[order[k]], pairs[order[k + 1]], image_token_id) for k in range(len(order) - 1)]

    def best(lo: int, hi: int) -> tuple[int, list[tuple[int, int, int]]]:
        """Most tokens saved over order[lo:hi] and the segments (lo, hi, prefix) that save them."""
        if hi - lo < 2:
            return 0, []
        shortest = min(links[lo : hi - 1])
        whole = (hi - lo - 1) * shortest if hi - lo >= min_pairs and shortest >= min_tokens else 0
        bounds = [lo, *(k + 1 for k in range(lo, hi - 1) if links[k] == shortest), hi]
        split = [best(start, end) for start, end in pairwise(bounds)]
        parts_saved = sum(saved for saved, _ in split)
        parts = [segment for _, segments in split for segment in segments]
        if whole > 0 and whole >= parts_saved:
            return whole, [(lo, hi, shortest)]
        return parts_saved, parts

    groups = [PrefixGroup(tuple(sorted(order[lo:hi])), length) for lo, hi, length in best(0, len(order))[1]]
    covered = {i for group in groups for i in group.indices}
    return groups, [i for i in range(len(pairs)) if i not in covered]
