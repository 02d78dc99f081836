"""The one image loader: every image the package reads goes through :func:`load_image`.

It reads PIL images, encoded bytes, local paths, ``file://`` and ``http(s)`` URLs,
``data:`` URIs and bare base64 strings, under an :class:`ImagePolicy` (what may be read,
and how much). Reading is two steps, so that a request's budgets hold before any pixel
is decoded: :func:`open_image` reads the header, :func:`decode_image` decodes and shrinks.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import io
import ipaddress
import os
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lychee_integrations.errors import ConfigurationError, ImageLoadError, LimitExceededError, UnsupportedInputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "ACCEPTED_FORMATS",
    "ImagePolicy",
    "OpenedImage",
    "check_image_counts",
    "check_request_pixels",
    "decode_image",
    "decoded_size",
    "load_image",
    "open_image",
    "to_rgb",
]

_BASE64_RE = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$")
_BASE64_URLSAFE_RE = re.compile(r"^[A-Za-z0-9_\-\s]+={0,2}\s*$")
_MAX_REDIRECTS = 3
_READ_CHUNK = 64 * 1024

#: The formats Pillow may decode (its names): the common web formats, no others. Pillow
#: can open many more, some through external programs (EPS runs Ghostscript).
ACCEPTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")

#: Bytes per pixel of a decoded image: every image is handed on as 8-bit RGB.
RGB_BYTES_PER_PIXEL = 3


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
        timeout: Seconds a whole download may take: connecting, the answer's headers,
            every redirect and the body, however slowly the server sends them.
        max_bytes: Largest encoded image accepted, from any source.
        max_image_pixels: Largest image (width x height) accepted, checked from the
            header before any pixel is decoded, whatever the format's bit depth: a 1-bit
            PNG of 4472x4472 is 2.5 KB encoded and 20 M pixels. Every image is decoded to
            8-bit RGB, so one image holds up to :attr:`max_decoded_bytes`
            (3 x ``max_image_pixels``; 150 MB at the default) and, while it is converted
            to RGB, its decoded source too (up to 4 bytes a pixel more for RGBA or CMYK).
        downscale_pixels: When set, an image larger than this many pixels is shrunk,
            keeping its aspect ratio, right after decoding (JPEG decodes at a reduced
            scale first), so that only the size the model can use stays in memory. Set
            it to the model's ``max_pixels`` or more; ``None`` keeps every image whole.
        max_images_per_item: Most images one query or one document may carry
            (``None``: no cap); checked before any image is read.
        max_images_per_request: Most images one request may carry, query and documents
            together (``None``: no cap); checked before any image is read.
        max_request_pixels: Most pixels (width x height, from each header) summed over
            every image of one request, query and documents (``None``: no cap); checked
            once every header is read and before any pixel is decoded. Image URLs count
            once fetched.

    Example:
        >>> ImagePolicy.strict(local_root="/srv/images").allow_remote  # doctest: +SKIP
        False

    """

    allow_remote: bool = True
    allow_private_addresses: bool = True
    allow_local_files: bool = True
    local_root: Path | None = None
    timeout: float = 10.0
    max_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    downscale_pixels: int | None = None
    max_images_per_item: int | None = None
    max_images_per_request: int | None = None
    max_request_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigurationError(f"ImagePolicy.timeout must be positive, got {self.timeout}")
        if self.max_bytes <= 0 or self.max_image_pixels <= 0:
            raise ConfigurationError("ImagePolicy.max_bytes and max_image_pixels must be positive")
        if self.downscale_pixels is not None and self.downscale_pixels <= 0:
            raise ConfigurationError(f"ImagePolicy.downscale_pixels must be positive, got {self.downscale_pixels}")
        for name in ("max_images_per_item", "max_images_per_request", "max_request_pixels"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"ImagePolicy.{name} must be a positive integer or None, got {value!r}")
        if self.local_root is not None:
            root = Path(self.local_root).resolve()
            if not root.is_dir():
                raise ConfigurationError(f"ImagePolicy.local_root {self.local_root} is not a directory")
            object.__setattr__(self, "local_root", root)

    @property
    def max_decoded_bytes(self) -> int:
        """The most memory one decoded image may take (8-bit RGB at ``max_image_pixels``)."""
        return RGB_BYTES_PER_PIXEL * self.max_image_pixels

    @classmethod
    def strict(cls, *, allow_remote: bool = False, local_root: str | Path | None = None, **limits: Any) -> ImagePolicy:
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


def _sniff(data: bytes) -> str | None:
    """Name the format ``data`` looks like (header checks only, nothing decoded), or ``None``."""
    from PIL import Image

    Image.init()
    prefix = data[:16]
    for name, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(prefix):
                return name
        except Exception:  # a plugin's header check; any failure means "not this one"
            continue
    return None


@dataclass(frozen=True)
class OpenedImage:
    """An image whose header is read and checked, and nothing decoded yet (see :func:`open_image`).

    Attributes:
        image: The lazily opened ``PIL`` image (or the caller's own image).
        owned: Whether :attr:`image` was opened here (else it is the caller's, never modified).

    """

    image: PILImage
    owned: bool = True

    @property
    def pixels(self) -> int:
        """Width x height, from the header."""
        return self.image.width * self.image.height


def _check_size(width: int, height: int, policy: ImagePolicy, item: str, index: int | None) -> None:
    if width * height > policy.max_image_pixels:
        raise _fail(
            item,
            index,
            f"image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{policy.max_image_pixels} (a decompression bomb or an absurd size)",
        )
    if width < 1 or height < 1:
        raise _fail(item, index, f"image has an empty size {width}x{height}")


def _open(data: bytes, policy: ImagePolicy, item: str, index: int | None) -> OpenedImage:
    """Read ``data``'s header (size, format) and check it; no pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > policy.max_bytes:
        raise _fail(item, index, f"image is {len(data)} bytes, over the limit of {policy.max_bytes}")
    if not data:
        raise _fail(item, index, "image data is empty")
    try:
        img = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
    except Image.DecompressionBombError as exc:
        raise _fail(item, index, f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        found = _sniff(data)
        if found is not None and found not in ACCEPTED_FORMATS:
            accepted = ", ".join(ACCEPTED_FORMATS)
            raise _fail(item, index, f"image format {found} is not accepted (accepted: {accepted})") from exc
        raise _fail(item, index, "data is not a readable image (unknown or corrupt format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _fail(item, index, f"image is corrupt or truncated: {exc}") from exc
    _check_size(*img.size, policy, item, index)
    return OpenedImage(img)


def decode_image(
    opened: OpenedImage, policy: ImagePolicy | None = None, *, item: str = "image", index: int | None = None
) -> PILImage:
    """Decode an image :func:`open_image` opened, into RGB, shrunk as soon as it is decoded.

    Past :attr:`ImagePolicy.downscale_pixels`, a JPEG decodes at a reduced scale and every
    image is shrunk in its own mode (a 1-bit image as 8-bit grey) before it becomes RGB, so
    no full-size RGB copy of a large image is ever made.

    Args:
        opened: The opened image.
        policy: ``downscale_pixels`` applies; ``ImagePolicy()`` when ``None``.
        item: How errors name the input.
        index: Document index recorded on the error.

    Returns:
        An RGB image (the caller's own PIL image is never modified).

    Raises:
        ImageLoadError: The data is corrupt or truncated.

    """
    from PIL import Image

    policy = policy or ImagePolicy()
    img = opened.image
    try:
        if opened.owned and policy.downscale_pixels is not None and opened.pixels > policy.downscale_pixels:
            img.draft("RGB", _fitted(img.size, policy.downscale_pixels))  # JPEG: decode at 1/2, 1/4 or 1/8
        img.load()
    except Image.DecompressionBombError as exc:
        raise _fail(item, index, f"image refused as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _fail(item, index, f"image is corrupt or truncated: {exc}") from exc
    converted = to_rgb(_downscaled(img, policy))
    return converted.copy() if converted is opened.image and not opened.owned else converted


def decoded_size(opened: OpenedImage, policy: ImagePolicy) -> tuple[int, int]:
    """Return the ``(width, height)`` :func:`decode_image` gives ``opened`` under ``policy``, from its header."""
    size = opened.image.size
    return size if policy.downscale_pixels is None else _fitted(size, policy.downscale_pixels)


def _fitted(size: tuple[int, int], pixels: int) -> tuple[int, int]:
    """Return the largest size of ``size``'s aspect ratio within ``pixels`` (at least 1x1)."""
    width, height = size
    if width * height <= pixels:
        return size
    scale = (pixels / (width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


def _downscaled(img: PILImage, policy: ImagePolicy) -> PILImage:
    """Shrink ``img`` to ``downscale_pixels`` in its own mode (1-bit and palette images as grey or RGB(A)).

    ``reducing_gap`` box-reduces by an integer factor first, so the resize reads little memory.
    """
    from PIL import Image

    if policy.downscale_pixels is None or img.width * img.height <= policy.downscale_pixels:
        return img
    if img.mode == "1":  # resizing a 1-bit image would fall back to nearest neighbour
        img = img.convert("L")
    elif img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    return img.resize(_fitted(img.size, policy.downscale_pixels), Image.Resampling.BICUBIC, reducing_gap=3.0)


def to_rgb(img: PILImage) -> PILImage:
    """Return ``img`` in RGB, transparent pixels laid on white (as the model was shown images)."""
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _os_reason(exc: BaseException) -> str:
    """Say what went wrong without the file name (an ``OSError``'s text names the resolved path)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, RuntimeError):  # Path.resolve before Python 3.13: "Symlink loop from '/abs/path'"
        return "symlink loop" if "loop" in str(exc).lower() else "cannot expand the home directory"
    if isinstance(exc, ValueError):  # embedded null byte
        return str(exc).split(":", 1)[0]
    return type(exc).__name__


def _resolve_local(path: Path, policy: ImagePolicy, item: str, index: int | None) -> Path:
    """Return the real path of ``path`` (joined to ``local_root``, symlinks followed).

    Errors show ``path`` as the caller gave it, never the resolved path: on a server that
    would disclose its image directory.
    """
    try:
        resolved = path.expanduser()
        if policy.local_root is not None and not resolved.is_absolute():
            resolved = policy.local_root / resolved
        return resolved.resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise _fail(item, index, f"invalid image path {_shown(path)!r}: {_os_reason(exc)}") from exc


def _shown(path: Path) -> str:
    """``path`` as the caller gave it, cut to 200 characters."""
    text = str(path)
    return text[:200] + "..." if len(text) > 200 else text


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _read_local(path: Path, policy: ImagePolicy, item: str, index: int | None) -> OpenedImage:
    if not policy.allow_local_files:
        raise _fail(item, index, "local file paths are not allowed here; send the image as base64 or a data URI")
    resolved = _resolve_local(path, policy, item, index)
    if policy.local_root is not None and not resolved.is_relative_to(policy.local_root):
        raise _fail(item, index, f"path {_shown(path)!r} is outside the allowed image directory")
    if not _is_file(resolved):
        raise _fail(item, index, f"image file not found: {_shown(path)}")
    try:
        size = resolved.stat().st_size
        if size > policy.max_bytes:
            raise _fail(item, index, f"image file is {size} bytes, over the limit of {policy.max_bytes}")
        data = resolved.read_bytes()
    except OSError as exc:
        raise _fail(item, index, f"cannot read image file {_shown(path)!r}: {_os_reason(exc)}") from exc
    return _open(data, policy, item, index)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local-use translation, never public
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 ::ffff:0:a.b.c.d


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Return the IPv4 addresses ``ip`` carries: mapped, compatible, translated, NAT64, 6to4, Teredo."""
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _NAT64 or ip in _IPV4_TRANSLATED or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        found.append(low)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client): the client's address is the one reached
    return found


def non_public_reason(address: str) -> str | None:
    """Why ``address`` (an IP literal) is not a public unicast address, or ``None`` when it is.

    An IPv6 address that embeds an IPv4 address (NAT64, 6to4, Teredo, IPv4-mapped,
    -compatible or -translated) must be public itself and carry only public addresses:
    ``64:ff9b::a9fe:a9fe`` reaches 169.254.169.254 through a NAT64 gateway.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not ip.is_global or ip.is_multicast:
        return f"a non-public address ({ip})"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return f"a non-public address ({ip}, local-use NAT64)"
        for inner in embedded_ipv4(ip):
            if not inner.is_global or inner.is_multicast:
                return f"a non-public address ({ip}, which embeds {inner})"
    return None


class _Deadline:
    """The end of one download: every socket it opens, and a watchdog that shuts them at the end.

    A socket timeout bounds each read, not the download: a server that sends one byte a
    second never trips it. The watchdog thread shuts every socket down when the time is up,
    which ends any read or write in progress, in the headers or in the body.
    """

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.expired = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def left(self) -> float:
        return self.end - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if not self.expired.is_set():
                return
        self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired.set()
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _opener(policy: ImagePolicy, deadline: _Deadline) -> urllib.request.OpenerDirector:
    def create(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        """``socket.create_connection`` that connects only to addresses the policy allows, before the deadline."""
        host, port = address
        last: OSError | None = None
        for family, type_, proto, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            reason = None if policy.allow_private_addresses else non_public_reason(str(sockaddr[0]))
            if reason is not None:
                raise OSError(f"refusing to fetch from {host!r}: it resolves to {reason}")
            left = deadline.left()
            if left <= 0:
                raise TimeoutError("the download's time is up")
            sock = socket.socket(family, type_, proto)
            sock.settimeout(left)
            deadline.watch(sock)
            try:
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        raise last or OSError(f"cannot resolve {host!r}")

    class _HTTP(http.client.HTTPConnection):
        def connect(self) -> None:
            self._create_connection = create  # type: ignore[attr-defined]
            super().connect()

    class _HTTPS(_HTTP, http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()  # _HTTP's, then HTTPSConnection's
            deadline.watch(self.sock)  # the TLS socket: wrapping detached the one ``create`` watched

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
    errors = (urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor())
    for handler in (_HTTPHandler(), _HTTPSHandler(), _Redirects(), *errors):
        opener.add_handler(handler)
    return opener


def _fetch(url: str, policy: ImagePolicy, item: str, index: int | None) -> OpenedImage:
    if not policy.allow_remote:
        raise _fail(item, index, "image URLs are not allowed here; send the image as base64 or a data URI")
    request = urllib.request.Request(url, headers={"User-Agent": "lychee-integrations", "Accept": "image/*"})
    late = f"image URL {url} did not finish downloading within {policy.timeout:g} s"
    with _Deadline(policy.timeout) as deadline:
        try:
            with _opener(policy, deadline).open(request, timeout=policy.timeout) as response:
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > policy.max_bytes:
                    raise _fail(item, index, f"image at {url} is {length} bytes, over the limit of {policy.max_bytes}")
                data = _read_body(response, policy.max_bytes + 1, deadline)
        except ImageLoadError:
            raise
        except urllib.error.HTTPError as exc:
            raise _fail(item, index, f"image URL {url} answered HTTP {exc.code}") from exc
        except (OSError, ValueError, http.client.HTTPException) as exc:
            if deadline.expired.is_set() or deadline.left() <= 0:
                raise _fail(item, index, late) from exc
            reason = getattr(exc, "reason", None) or exc
            raise _fail(item, index, f"cannot fetch image URL {url}: {reason}") from exc
        if deadline.expired.is_set():  # the watchdog's shutdown can look like the end of the body
            raise _fail(item, index, late)
    return _open(data, policy, item, index)


def _read_body(response: http.client.HTTPResponse, limit: int, deadline: _Deadline) -> bytes:
    """Read at most ``limit`` bytes, giving up when the deadline passes between two reads."""
    data = bytearray()
    while len(data) < limit:
        if deadline.left() <= 0:
            raise TimeoutError("the download's time is up")
        chunk = response.read1(min(_READ_CHUNK, limit - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


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


def _load_string(source: str, policy: ImagePolicy, item: str, index: int | None) -> OpenedImage:
    text = source.strip()
    if not text:
        raise _fail(item, index, "image reference is an empty string")
    lowered = text[:16].lower()
    if lowered.startswith("data:"):
        return _open(_parse_data_uri(text, item, index), policy, item, index)
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
        return _open(_b64decode(text, item, index, what="image string"), policy, item, index)
    except ImageLoadError:
        if not text.startswith(("/", "~")) or len(text) >= 4096:
            raise
        # "/etc/hosts" is also valid base64; since it is no image, report it as the path it looks like.
        return _read_local(Path(text), policy, item, index)


def open_image(
    source: object, policy: ImagePolicy | None = None, *, item: str = "image", index: int | None = None
) -> OpenedImage:
    """Read one image's header, applying ``policy``; nothing is decoded (see :func:`decode_image`).

    A string is read as: a ``data:`` URI; an ``http(s)`` URL (downloaded now); a ``file://``
    URL; an existing local path; otherwise base64 (standard or URL-safe alphabet).

    Args:
        source: ``PIL.Image.Image``, ``bytes``/``bytearray``, ``os.PathLike`` or ``str``.
        policy: What may be read; ``ImagePolicy()`` when ``None``.
        item: How errors name the input (``"query"``, ``"document 2"``).
        index: Document index recorded on the error.

    Returns:
        The opened image: its size is known, its pixels are not decoded.

    Raises:
        ImageLoadError: Missing file, refused path or URL, failed download, bad base64,
            unreadable header, or an image over the byte or pixel limits.
        UnsupportedInputError: ``source`` is of another type.

    """
    from PIL import Image

    policy = policy or ImagePolicy()
    if isinstance(source, Image.Image):
        _check_size(*source.size, policy, item, index)
        return OpenedImage(source, owned=False)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open(bytes(source), policy, item, index)
    if isinstance(source, os.PathLike):
        return _read_local(Path(os.fspath(source)), policy, item, index)
    if isinstance(source, str):
        return _load_string(source, policy, item, index)
    raise UnsupportedInputError(item, f"image is of unsupported type {type(source).__name__}", index=index)


def check_image_counts(items: Sequence[tuple[str, int | None, int]], policy: ImagePolicy) -> None:
    """Check a request's image counts against the policy, before any image is read.

    Args:
        items: One ``(item, index, number of images)`` per query or document, in order.
        policy: ``max_images_per_item`` and ``max_images_per_request`` apply.

    Raises:
        LimitExceededError: The first item over ``max_images_per_item``, else the item at
            which the request goes over ``max_images_per_request``.

    """
    limit = policy.max_images_per_item
    for item, index, count in items:
        if limit is not None and count > limit:
            raise LimitExceededError(
                item, f"{count} images sent", limit="max_images_per_item", value=limit, index=index
            )
    limit = policy.max_images_per_request
    if limit is None:
        return
    total = 0
    for item, index, count in items:
        total += count
        if total > limit:
            all_images = sum(c for _, _, c in items)
            raise LimitExceededError(
                item,
                f"the request carries {all_images} images (this item takes it past the limit)",
                limit="max_images_per_request",
                value=limit,
                index=index,
            )


def check_request_pixels(items: Sequence[tuple[str, int | None, Sequence[OpenedImage]]], policy: ImagePolicy) -> None:
    """Check the pixels of a request's opened images, summed, before any of them is decoded.

    Args:
        items: One ``(item, index, opened images)`` per query or document, in order.
        policy: ``max_request_pixels`` applies.

    Raises:
        LimitExceededError: Naming the image at which the sum goes over the limit.

    """
    limit = policy.max_request_pixels
    if limit is None:
        return
    total = 0
    for item, index, opened in items:
        for number, image in enumerate(opened):
            total += image.pixels
            if total > limit:
                width, height = image.image.size
                everything = sum(im.pixels for _, _, ims in items for im in ims)
                raise LimitExceededError(
                    item,
                    f"image {number} ({width}x{height}) takes the request's images to {total} pixels "
                    f"({everything} in all)",
                    limit="max_request_pixels",
                    value=limit,
                    index=index,
                )


def load_image(
    source: object, policy: ImagePolicy | None = None, *, item: str = "image", index: int | None = None
) -> PILImage:
    """Read one image into an RGB ``PIL.Image``, applying ``policy``: :func:`open_image`, then :func:`decode_image`.

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
    policy = policy or ImagePolicy()
    return decode_image(open_image(source, policy, item=item, index=index), policy, item=item, index=index)
