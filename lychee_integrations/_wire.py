"""What travels over HTTP for RemoteReranker: inputs as JSON-ready values, and wire formats.

An input becomes a :class:`WireInput` (text plus images as data URIs or URLs) here, on the
client; a :class:`WireFormat` turns wire inputs into a request body and a response body
into scores. ``lychee`` is the format of ``lychee serve``'s ``POST /v1/rerank``; another
server's shape (vLLM's, for one) is another small class registered in :data:`FORMATS`.
"""

from __future__ import annotations

import base64
import io
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from lychee_integrations.errors import InvalidDocumentsError, InvalidInputError
from lychee_integrations.images import ImagePolicy, load_image
from lychee_integrations.inputs import RerankInput


@dataclass(frozen=True)
class WireInput:
    """A query or document ready to send: text and images as data URIs or http(s) URLs."""

    text: str | None
    images: tuple[str, ...]

    def size(self) -> int:
        return len(self.text or "") + sum(len(i) for i in self.images)


@dataclass(frozen=True)
class WireAnswer:
    """What a 200 answer to a rerank request says.

    ``scores``: one per document, in the request's order; ``model``, ``tokens`` (the prompt tokens,
    ``usage.total_tokens``) and ``instruction`` (the one applied): where the server names them, else ``None``.
    """

    scores: list[float]
    model: str | None
    tokens: int | None
    instruction: str | None


@dataclass(frozen=True)
class ServerInfo:
    """What the server tells about itself: the model it serves and its document cap."""

    model: str | None
    max_documents: int | None
    max_body_bytes: int | None


def _is_url(value: object) -> bool:
    return isinstance(value, str) and value.lstrip()[:8].lower().startswith(("http://", "https://"))


def _is_data_uri(value: object) -> bool:
    return isinstance(value, str) and value.lstrip()[:5].lower() == "data:"


def _local_file(value: object, policy: ImagePolicy) -> Path | None:
    """The file an image reference names, when it names one (the loader has already read it)."""
    if isinstance(value, os.PathLike):
        path = Path(os.fspath(value))
    elif isinstance(value, str) and len(value) < 4096:
        text = value.strip()
        if text[:5].lower() == "file:":
            path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(text).path))
        else:
            path = Path(text)
    else:
        return None
    try:
        path = path.expanduser()
        if policy.local_root is not None and not path.is_absolute():
            path = policy.local_root / path
        return path if path.is_file() else None
    except (OSError, ValueError):
        return None


def _data_uri(data: bytes) -> str:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            mime = Image.MIME.get(img.format or "", "")
    except OSError:  # pragma: no cover - the loader has decoded it already
        mime = ""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def encode_image(value: object, policy: ImagePolicy, *, item: str, index: int | None, fetch_urls: bool) -> str:
    """Check one image with the package's loader and return what to send for it.

    Data URIs and (unless ``fetch_urls``) http(s) URLs go as they are; bytes and local
    files go as data URIs of their own bytes; anything else (a PIL image, base64 text,
    a fetched URL) as a lossless PNG of the decoded image.
    """
    if _is_url(value) and not fetch_urls:
        return str(value).strip()
    image = load_image(value, policy, item=item, index=index)
    if _is_data_uri(value):
        return str(value).strip()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _data_uri(bytes(value))
    if not _is_url(value):
        path = _local_file(value, policy)
        if path is not None:
            return _data_uri(path.read_bytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return _data_uri(buffer.getvalue())


def to_wire(value: RerankInput, policy: ImagePolicy, *, item: str, index: int | None, fetch_urls: bool) -> WireInput:
    """Encode a checked input's images for the wire (errors name ``item``)."""
    images = tuple(encode_image(i, policy, item=item, index=index, fetch_urls=fetch_urls) for i in value.images)
    return WireInput(value.text, images)


_ITEM_RE = re.compile(r"^(query|document (\d+)): (.*)$", re.DOTALL)


def input_error(message: str, offset: int) -> InvalidInputError | None:
    """Rebuild the engine's error from a server line ``"document 3: problem"`` (index + ``offset``)."""
    match = _ITEM_RE.match(message.strip())
    if match is None:
        return None
    if match.group(2) is None:
        return InvalidInputError("query", match.group(3))
    index = int(match.group(2)) + offset
    return InvalidInputError(f"document {index}", match.group(3), index=index)


def input_errors(detail: str, problems: Sequence[str] | None, offset: int) -> list[InvalidInputError] | None:
    """The typed errors a 400 answer describes, or ``None`` when it is not about the inputs."""
    lines = list(problems) if problems else [detail]
    errors = [input_error(line, offset) for line in lines]
    return None if None in errors else [e for e in errors if e is not None]


def raise_input_errors(errors: list[InvalidInputError], total: int) -> None:
    """Raise the one error, or :class:`InvalidDocumentsError` for several, as the engine does."""
    query = [e for e in errors if e.index is None]
    if query:
        raise query[0]
    errors = sorted({e.index: e for e in errors}.values(), key=lambda e: e.index or 0)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise InvalidDocumentsError(errors, total)


class WireFormat(Protocol):
    """How one kind of server wants a rerank request, and how it answers."""

    name: str
    rerank_path: str
    info_path: str

    def build(
        self, query: WireInput, documents: Sequence[WireInput], instruction: str | None, model: str | None
    ) -> Any:
        """Return the JSON body of a rerank request (no ``top_n``: every score comes back)."""

    def parse(self, body: Any, count: int) -> WireAnswer:
        """Read a 200 answer: one score per document in input order, and what else it says."""

    def parse_info(self, body: Any) -> ServerInfo:
        """Read the model and limits from the answer to ``GET info_path``."""

    def too_long(self, detail: str) -> bool:
        """Whether a 400 answer's ``detail`` says a pair is over the server's context length."""

    def parse_error(self, body: Any) -> tuple[str, list[str] | None]:
        """Return ``(detail, problems)`` from an error answer's JSON body."""


class LycheeFormat:
    """``lychee serve``'s ``POST /v1/rerank`` (also the Cohere/Jina shape for text)."""

    name = "lychee"
    rerank_path = "/v1/rerank"
    info_path = "/health"
    _extra: ClassVar[dict[str, Any]] = {"return_documents": False}

    @staticmethod
    def _input(value: WireInput) -> Any:
        if not value.images:
            return value.text or ""
        out: dict[str, Any] = {"images": list(value.images)}
        if value.text is not None:
            out["text"] = value.text
        return out

    def build(
        self, query: WireInput, documents: Sequence[WireInput], instruction: str | None, model: str | None
    ) -> Any:
        body = {"query": self._input(query), "documents": [self._input(d) for d in documents], **self._extra}
        if model is not None:
            body["model"] = model
        if instruction is not None:
            body["instruction"] = instruction
        return body

    def parse(self, body: Any, count: int) -> WireAnswer:
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise ValueError("the answer has no 'results' list")
        scores: list[float | None] = [None] * count
        for result in body["results"]:
            index, score = result.get("index"), result.get("relevance_score")
            if not isinstance(index, int) or not 0 <= index < count or not isinstance(score, (int, float)):
                raise ValueError(f"a result is malformed or out of range: {result!r}")
            scores[index] = float(score)
        missing = [i for i, s in enumerate(scores) if s is None]
        if missing:
            raise ValueError(f"{len(missing)} of {count} documents have no score in the answer")
        usage = body.get("usage")
        tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
        model, instruction = body.get("model"), body.get("instruction")
        return WireAnswer(
            [s for s in scores if s is not None],
            model if isinstance(model, str) else None,
            tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0 else None,
            instruction if isinstance(instruction, str) else None,
        )

    def parse_info(self, body: Any) -> ServerInfo:
        if not isinstance(body, dict):
            return ServerInfo(None, None, None)
        found = body.get("limits")
        limits: dict[str, Any] = found if isinstance(found, dict) else {}
        model = body.get("model")

        def positive(name: str) -> int | None:
            value = limits.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

        return ServerInfo(
            model if isinstance(model, str) else None, positive("max_documents"), positive("max_body_bytes")
        )

    def too_long(self, detail: str) -> bool:
        return False  # lychee serve cuts long pairs as the engine does

    def parse_error(self, body: Any) -> tuple[str, list[str] | None]:
        if not isinstance(body, dict):
            return "", None
        detail = body.get("detail")
        if isinstance(detail, dict):  # OpenAI-style {"error": ...} servers and FastAPI variants
            detail = detail.get("message")
        if detail is None and isinstance(body.get("error"), dict):
            detail = body["error"].get("message")
        if detail is None:
            detail = body.get("message")
        problems = body.get("problems")
        lines = [str(p) for p in problems] if isinstance(problems, list) else None
        return (str(detail) if detail is not None else ""), lines


class VLLMFormat(LycheeFormat):
    """vLLM's ``POST /v1/rerank`` as ``lychee vllm-serve`` starts it (docs/vllm.md).

    Images travel as ``image_url`` content parts (before the text, as the recipe orders
    them); the instruction as vLLM's ``instruction`` field, which the shipped chat template
    reads. vLLM publishes no document cap: the model comes from ``GET /v1/models``.
    """

    name = "vllm"
    info_path = "/v1/models"
    _extra: ClassVar[dict[str, Any]] = {}

    @staticmethod
    def _input(value: WireInput) -> Any:
        if not value.images:
            return value.text or ""
        parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": image}} for image in value.images]
        if value.text is not None:
            parts.append({"type": "text", "text": value.text})
        return {"content": parts}

    def parse_info(self, body: Any) -> ServerInfo:
        data = body.get("data") if isinstance(body, dict) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        model = first.get("id")
        return ServerInfo(model if isinstance(model, str) else None, None, None)

    def too_long(self, detail: str) -> bool:
        # vLLM refuses a whole request when one pair is over --max-model-len, rather than cut it.
        return "maximum context length" in detail


#: Wire formats by the name ``RemoteReranker(protocol=...)`` takes.
FORMATS: dict[str, WireFormat] = {"lychee": LycheeFormat(), "vllm": VLLMFormat()}
