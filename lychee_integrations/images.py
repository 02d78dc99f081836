"""The one image loader: every image the package reads goes through :func:`load_image`.

It reads PIL images, encoded bytes, local paths, ``file://`` and ``http(s)`` URLs,
``data:`` URIs and bare base64 strings, and applies an :class:`ImagePolicy`: whether
remote URLs and local files may be read, a root directory that local paths must stay
inside, a download timeout and byte limit, refusal of loopback and private addresses,
and a pixel limit that stops decompression bombs before any pixel is decoded.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import ipaddress
import os
import re
import socket
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lychee_integrations.errors import ConfigurationError, ImageLoadError, UnsupportedInputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["ImagePolicy", "load_image"]

_BASE64_RE = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$")
_BASE64_URLSAFE_RE = re.compile(r"^[A-Za-z0-9_\-\s]+={0,2}\s*$")
_MAX_REDIRECTS = 3


@dataclass(frozen=True)
class ImagePolicy:
    """What the image loader may read, and how much.

    The defaults suit a library running the caller's own code. A service facing the
    network should use :meth:`strict`.

    Attributes:
        allow_remote: Fetch ``http(s)`` URLs.
        allow_private_addresses: Allow URLs that resolve to loopback, private,
            link-local or otherwise non-public addresses.
        allow_local_files: Read local paths and ``file://`` URLs.
        local_root: When set, local paths must resolve (symlinks followed) inside it.
        timeout: Seconds for each network operation of a download.
        max_bytes: Largest encoded image accepted, from any source.
        max_image_pixels: Largest decoded image (width x height) accepted.

    Example:
        >>> ImagePolicy.strict(local_root="/srv/images").allow_remote
        False

    """

    allow_remote: bool = True
    allow_private_addresses: bool = True
    allow_local_files: bool = True
    local_root: Path | None = None
    timeout: float = 10.0
    max_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 50_000_000

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigurationError(f"ImagePolicy.timeout must be positive, got {self.timeout}")
        if self.max_bytes <= 0 or self.max_image_pixels <= 0:
            raise ConfigurationError("ImagePolicy.max_bytes and max_image_pixels must be positive")
        if self.local_root is not None:
            root = Path(self.local_root).resolve()
            if not root.is_dir():
                raise ConfigurationError(f"ImagePolicy.local_root {self.local_root} is not a directory")
            object.__setattr__(self, "local_root", root)

    @classmethod
    def strict(
        cls,
        *,
        allow_remote: bool = False,
        local_root: str | Path | None = None,
        **limits: Any,
    ) -> ImagePolicy:
        """Build a policy for network-facing services.

        Remote URLs only when ``allow_remote`` and never to private addresses; local
        files only inside ``local_root`` (none at all without it).
        """
        return cls(
            allow_remote=allow_remote,
            allow_private_addresses=False,
            allow_local_files=local_root is not None,
            local_root=Path(local_root) if local_root is not None else None,
            **limits,
        )


def _fail(item: str, index: int | None, problem: str) -> ImageLoadError:
    return ImageLoadError(item, problem, index=index)


def _decode(data: bytes, policy: ImagePolicy, item: str, index: int | None) -> PILImage:
    from PIL import Image, UnidentifiedImageError

    if len(data) > policy.max_bytes:
        raise _fail(item, index, f"image is {len(data)} bytes, over the limit of {policy.max_bytes}")
    if not data:
        raise _fail(item, index, "image data is empty")
    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size
        if width * height > policy.max_image_pixels:
            raise _fail(
                item,
                index,
                f"image is {width}x{height} = {width * height} pixels, over the limit of "
                f"{policy.max_image_pixels} (a decompression bomb or an absurd size)",
            )
        if width < 1 or height < 1:
            raise _fail(item, index, f"image has an empty size {width}x{height}")
        img.load()
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise _fail(item, index, f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise _fail(item, index, "data is not a readable image (unknown or corrupt format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _fail(item, index, f"image is corrupt or truncated: {exc}") from exc
    return _to_rgb(img)


def _to_rgb(img: PILImage) -> PILImage:
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _resolve_local(path: Path, policy: ImagePolicy, item: str, index: int | None) -> Path:
    try:
        path = path.expanduser()
        if policy.local_root is not None and not path.is_absolute():
            path = policy.local_root / path
        return path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise _fail(item, index, f"invalid image path {str(path)[:200]!r}: {exc}") from exc


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _read_local(path: Path, policy: ImagePolicy, item: str, index: int | None) -> PILImage:
    if not policy.allow_local_files:
        raise _fail(item, index, "local file paths are not allowed here; send the image as base64 or a data URI")
    resolved = _resolve_local(path, policy, item, index)
    if policy.local_root is not None and not resolved.is_relative_to(policy.local_root):
        raise _fail(item, index, f"path {str(path)!r} is outside the allowed image directory")
    if not _is_file(resolved):
        raise _fail(item, index, f"image file not found: {path}")
    try:
        size = resolved.stat().st_size
        if size > policy.max_bytes:
            raise _fail(item, index, f"image file is {size} bytes, over the limit of {policy.max_bytes}")
        data = resolved.read_bytes()
    except OSError as exc:
        raise _fail(item, index, f"cannot read image file {path}: {exc.strerror or exc}") from exc
    return _decode(data, policy, item, index)


def _check_address(host: str, address: str, policy: ImagePolicy) -> None:
    if policy.allow_private_addresses:
        return
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not ip.is_global or ip.is_multicast:
        raise OSError(f"refusing to fetch from {host!r}: it resolves to a non-public address ({ip})")


def _guarded_connection(policy: ImagePolicy, timeout: float) -> Any:
    """``socket.create_connection`` that connects only to addresses the policy allows."""

    def create(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address
        last: OSError | None = None
        for family, type_, proto, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            _check_address(host, str(sockaddr[0]), policy)
            sock = socket.socket(family, type_, proto)
            sock.settimeout(timeout)
            try:
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        raise last or OSError(f"cannot resolve {host!r}")

    return create


def _opener(policy: ImagePolicy) -> urllib.request.OpenerDirector:
    create = _guarded_connection(policy, policy.timeout)

    class _HTTP(http.client.HTTPConnection):
        def connect(self) -> None:
            self._create_connection = create  # type: ignore[attr-defined]
            super().connect()

    class _HTTPS(http.client.HTTPSConnection):
        def connect(self) -> None:
            self._create_connection = create  # type: ignore[attr-defined]
            super().connect()

    class _HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(_HTTP, req)

    class _HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(_HTTPS, req)

    class _Redirects(urllib.request.HTTPRedirectHandler):
        max_redirections = _MAX_REDIRECTS

        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
            if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
                raise OSError(f"refusing a redirect to {newurl!r}")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.OpenerDirector()
    handlers = (
        _HTTPHandler(),
        _HTTPSHandler(),
        _Redirects(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    )
    for handler in handlers:
        opener.add_handler(handler)
    return opener


def _fetch(url: str, policy: ImagePolicy, item: str, index: int | None) -> PILImage:
    if not policy.allow_remote:
        raise _fail(item, index, "image URLs are not allowed here; send the image as base64 or a data URI")
    request = urllib.request.Request(url, headers={"User-Agent": "lychee-integrations", "Accept": "image/*"})
    try:
        with _opener(policy).open(request, timeout=policy.timeout) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > policy.max_bytes:
                raise _fail(item, index, f"image at {url} is {length} bytes, over the limit of {policy.max_bytes}")
            data = response.read(policy.max_bytes + 1)
    except ImageLoadError:
        raise
    except urllib.error.HTTPError as exc:
        raise _fail(item, index, f"image URL {url} answered HTTP {exc.code}") from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _fail(item, index, f"cannot fetch image URL {url}: {reason}") from exc
    return _decode(data, policy, item, index)


def _parse_data_uri(uri: str, item: str, index: int | None) -> bytes:
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise _fail(item, index, "malformed data URI: no ',' separates the header from the data")
    media_type, *params = header.split(";")
    if media_type and not media_type.lower().startswith("image/"):
        raise _fail(item, index, f"data URI has media type {media_type!r}, not an image")
    if "base64" not in (p.lower() for p in params):
        raise _fail(item, index, "data URI must be base64-encoded (';base64,')")
    return _b64decode(payload, item, index, what="data URI")


def _b64decode(text: str, item: str, index: int | None, *, what: str) -> bytes:
    compact = "".join(text.split())
    try:
        if _BASE64_RE.match(compact):
            return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        if _BASE64_URLSAFE_RE.match(compact):
            return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _fail(item, index, f"{what} is not valid base64: {exc}") from exc
    raise _fail(item, index, f"{what} is not valid base64")


def _load_string(source: str, policy: ImagePolicy, item: str, index: int | None) -> PILImage:
    text = source.strip()
    if not text:
        raise _fail(item, index, "image reference is an empty string")
    lowered = text[:16].lower()
    if lowered.startswith("data:"):
        return _decode(_parse_data_uri(text, item, index), policy, item, index)
    if lowered.startswith(("http://", "https://")):
        return _fetch(text, policy, item, index)
    if lowered.startswith("file:"):
        parsed = urllib.parse.urlsplit(text)
        if parsed.netloc not in ("", "localhost"):
            raise _fail(item, index, f"file URL {text!r} names a remote host")
        return _read_local(Path(urllib.request.url2pathname(parsed.path)), policy, item, index)
    if "://" in text[:32]:
        scheme = text.split("://", 1)[0]
        raise _fail(item, index, f"unsupported URL scheme {scheme!r}; use http(s), file, data or base64")
    compact = "".join(text.split())
    if not (_BASE64_RE.match(compact) or _BASE64_URLSAFE_RE.match(compact)):
        # Characters such as '.', '~', ':' or '\\' never occur in base64: this is a path.
        return _read_local(Path(text), policy, item, index)
    if len(text) < 4096 and policy.allow_local_files and _is_file(_resolve_local(Path(text), policy, item, index)):
        return _read_local(Path(text), policy, item, index)
    try:
        return _decode(_b64decode(text, item, index, what="image string"), policy, item, index)
    except ImageLoadError:
        if not text.startswith(("/", "~")) or len(text) >= 4096:
            raise
        # "/etc/hosts" is also valid base64; since it is no image, report it as the path it looks like.
        return _read_local(Path(text), policy, item, index)


def load_image(
    source: object, policy: ImagePolicy | None = None, *, item: str = "image", index: int | None = None
) -> PILImage:
    """Read one image into an RGB ``PIL.Image``, applying ``policy``.

    A string is read as: a ``data:`` URI; an ``http(s)`` URL; a ``file://`` URL; an
    existing local path; otherwise base64 (standard or URL-safe alphabet). Transparent
    images are composited on white.

    Args:
        source: ``PIL.Image.Image``, ``bytes``/``bytearray``, ``os.PathLike`` or ``str``.
        policy: What may be read; ``ImagePolicy()`` when ``None``.
        item: How errors name the input (``"query"``, ``"document 2"``).
        index: Document index recorded on the error.

    Returns:
        A fully decoded RGB image (the caller's own PIL image is never modified).

    Raises:
        ImageLoadError: Missing file, refused path or URL, failed download, bad base64,
            corrupt data, or an image over the byte or pixel limits.
        UnsupportedInputError: ``source`` is of another type.

    Example:
        >>> from PIL import Image
        >>> load_image(Image.new("RGBA", (4, 4))).mode
        'RGB'

    """
    from PIL import Image

    policy = policy or ImagePolicy()
    if isinstance(source, Image.Image):
        width, height = source.size
        if width * height > policy.max_image_pixels:
            raise _fail(item, index, f"image is {width}x{height} pixels, over the limit of {policy.max_image_pixels}")
        if width < 1 or height < 1:
            raise _fail(item, index, f"image has an empty size {width}x{height}")
        try:
            source.load()
        except (OSError, ValueError) as exc:
            raise _fail(item, index, f"image is corrupt or truncated: {exc}") from exc
        converted = _to_rgb(source)
        return converted.copy() if converted is source else converted
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(bytes(source), policy, item, index)
    if isinstance(source, os.PathLike):
        return _read_local(Path(os.fspath(source)), policy, item, index)
    if isinstance(source, str):
        return _load_string(source, policy, item, index)
    raise UnsupportedInputError(item, f"image is of unsupported type {type(source).__name__}", index=index)
