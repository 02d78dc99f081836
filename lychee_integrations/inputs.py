"""Turn whatever the caller holds into one small typed value: text plus images.

Accepted forms, for the query and for each document:

* ``str``: text. (A string is always text; wrap an image path, URL, data URI or base64
  string as ``{"image": ...}`` or :class:`RerankInput` to mark it as an image.)
* an image: a ``PIL.Image.Image``, ``bytes``/``bytearray`` (encoded image file) or a
  ``pathlib.Path``.
* ``{"text": ..., "image": ...}`` or ``{"text": ..., "images": [...]}``: the form the HTTP
  API uses; an image there may be any of the forms :func:`lychee_integrations.images.load_image`
  reads (path, ``file://`` or ``http(s)`` URL, ``data:`` URI, base64, bytes, PIL image).
* :class:`RerankInput` itself.

All structural validation of user data happens here, with errors that name the item.
No I/O happens here: images are read later, by the one image loader.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, Union

from lychee_integrations.errors import InvalidDocumentsError, InvalidInputError, UnsupportedInputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["ImageLike", "InputLike", "RerankInput", "map_documents", "to_query_input", "to_rerank_input"]

#: Anything the image loader reads.
ImageLike = Union[str, bytes, bytearray, "os.PathLike[str]", "PILImage"]
#: Anything accepted as a query or a document.
InputLike = Union[str, "RerankInput", Mapping[str, Any], bytes, bytearray, "os.PathLike[str]", "PILImage"]

T = TypeVar("T")

_DICT_KEYS = frozenset({"text", "image", "images"})


@dataclass(frozen=True)
class RerankInput:
    """A query or a document: optional text and zero or more images.

    Images come before the text in the prompt, as in the model's training recipe.

    Attributes:
        text: The text, or ``None``.
        images: The images, each in any form the image loader reads.

    Example:
        >>> RerankInput(text="a red car", images=("photo.jpg",)).kind
        'text+image'

    """

    text: str | None = None
    images: tuple[ImageLike, ...] = field(default=())

    @property
    def has_text(self) -> bool:
        """Whether there is non-blank text."""
        return bool(self.text and self.text.strip())

    @property
    def kind(self) -> str:
        """``"text"``, ``"image"``, ``"text+image"`` or ``"empty"``."""
        if self.images and self.has_text:
            return "text+image"
        if self.images:
            return "image"
        return "text" if self.has_text else "empty"


def _is_image_object(obj: object) -> bool:
    if isinstance(obj, (bytes, bytearray, os.PathLike)):
        return True
    from PIL import Image

    return isinstance(obj, Image.Image)


def _text(value: str, item: str, index: int | None) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            item, f"text holds {value[exc.start]!r} at {exc.start}, which is not valid Unicode text", index=index
        ) from None
    return value


def _describe(obj: object) -> str:
    return "None" if obj is None else f"an object of type {type(obj).__name__}"


def _check_image_entry(value: object, item: str, index: int | None) -> ImageLike:
    if isinstance(value, str) or _is_image_object(value):
        return value  # type: ignore[return-value]
    raise UnsupportedInputError(
        item,
        f"image is {_describe(value)}; expected a path, URL, data URI, base64 string, bytes or PIL image",
        index=index,
    )


def _from_mapping(obj: Mapping[str, Any], item: str, index: int | None) -> RerankInput:
    unknown = sorted(str(k) for k in obj if k not in _DICT_KEYS)
    if "video" in unknown or "videos" in unknown:
        raise InvalidInputError(item, "video inputs are not supported yet; send frames as 'images'", index=index)
    if unknown:
        raise InvalidInputError(
            item, f"unknown key(s) {', '.join(map(repr, unknown))}; use 'text', 'image' or 'images'", index=index
        )
    if "image" in obj and "images" in obj:
        raise InvalidInputError(item, "give either 'image' or 'images', not both", index=index)
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        raise UnsupportedInputError(item, f"text is {_describe(text)}; expected a string", index=index)
    images: list[ImageLike] = []
    if obj.get("image") is not None:
        images.append(_check_image_entry(obj["image"], item, index))
    raw_images = obj.get("images")
    if raw_images is not None:
        if isinstance(raw_images, (str, bytes, bytearray, Mapping)) or not isinstance(raw_images, Sequence):
            raise UnsupportedInputError(item, "'images' must be a list of images", index=index)
        images.extend(_check_image_entry(v, f"{item} image {j}", index) for j, v in enumerate(raw_images))
    return RerankInput(text=None if text is None else _text(text, item, index), images=tuple(images))


def to_rerank_input(obj: object, *, item: str, index: int | None = None) -> RerankInput:
    """Coerce one query or document to :class:`RerankInput`.

    Args:
        obj: The caller's value (see the module docstring for the accepted forms).
        item: How errors name it: ``"query"`` or ``"document 3"``.
        index: The document's index, recorded on the error.

    Returns:
        The typed value. It may be empty (no text, no image); whether that is allowed is
        the caller's decision.

    Raises:
        UnsupportedInputError: ``None`` or an unsupported type.
        InvalidInputError: A malformed dict.

    """
    if isinstance(obj, RerankInput):
        if obj.text is not None and not isinstance(obj.text, str):
            raise UnsupportedInputError(item, f"text is {_describe(obj.text)}; expected a string", index=index)
        text = None if obj.text is None else _text(obj.text, item, index)
        return RerankInput(text, tuple(_check_image_entry(v, item, index) for v in obj.images))
    if isinstance(obj, str):
        return RerankInput(text=_text(obj, item, index))
    if isinstance(obj, Mapping):
        return _from_mapping(obj, item, index)
    if _is_image_object(obj):
        return RerankInput(images=(obj,))  # type: ignore[arg-type]
    raise UnsupportedInputError(
        item,
        f"is {_describe(obj)}; expected text (str), an image (PIL image, bytes, Path), "
        "a dict with 'text'/'image'/'images', or RerankInput",
        index=index,
    )


def to_query_input(obj: object) -> RerankInput:
    """Coerce a query like :func:`to_rerank_input`, refusing an empty one.

    Raises:
        InvalidInputError: The query has neither text nor an image (or is malformed).
        UnsupportedInputError: ``None`` or an unsupported type.

    """
    query = to_rerank_input(obj, item="query")
    if query.kind == "empty":
        raise InvalidInputError("query", "is empty: give query text, a query image, or both")
    return query


def map_documents(
    documents: Sequence[object], convert: Callable[[object, str, int], T], *, workers: int = 1
) -> list[T]:
    """Apply ``convert(document, item, index)`` to every document, accounting for every failure.

    Args:
        documents: The caller's documents.
        convert: Turns one document into what the caller needs; raises
            :class:`InvalidInputError` for a bad one (``item`` is ``"document N"``).
        workers: Threads that run ``convert`` (image decoding and tokenization release the
            GIL); results and errors are the same, in input order, whatever the number.

    Returns:
        One converted value per document, in input order.

    Raises:
        InvalidInputError: The one bad document's own error.
        InvalidDocumentsError: Several bad documents, each listed in ``problems``.

    """

    def attempt(index: int) -> T | InvalidInputError:
        try:
            return convert(documents[index], f"document {index}", index)
        except InvalidInputError as exc:
            return exc

    if workers > 1 and len(documents) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(workers, len(documents)), thread_name_prefix="lychee-prep") as pool:
            outcomes = list(pool.map(attempt, range(len(documents))))
    else:
        outcomes = [attempt(index) for index in range(len(documents))]
    errors = [outcome for outcome in outcomes if isinstance(outcome, InvalidInputError)]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise InvalidDocumentsError(errors, len(documents))
    return [outcome for outcome in outcomes if not isinstance(outcome, InvalidInputError)]
