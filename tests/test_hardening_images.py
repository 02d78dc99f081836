"""Hardening of the image loader: SSRF through IPv6 forms, download deadline, formats, memory, path disclosure."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_image, png_bytes
from PIL import Image

from lychee_integrations.errors import ImageLoadError
from lychee_integrations.images import ACCEPTED_FORMATS, ImagePolicy, load_image, non_public_reason

PNG = png_bytes(make_image((10, 200, 30), size=(20, 10)))

# ----------------------------------------------------------------------------- SSRF: IPv6 forms of private IPv4

EMBEDDING_PRIVATE = [
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (cloud metadata)
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
    "::127.0.0.1",  # IPv4-compatible
    "::169.254.169.254",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:0:10.0.0.1",  # IPv4-translated
]


@pytest.mark.parametrize("address", EMBEDDING_PRIVATE)
def test_ipv6_forms_embedding_private_ipv4_are_not_public(address: str) -> None:
    assert non_public_reason(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses_and_public_embeddings_pass(address: str) -> None:
    assert non_public_reason(address) is None


@contextlib.contextmanager
def resolving_to(monkeypatch: pytest.MonkeyPatch, address: str) -> Iterator[list[str]]:
    """``*.test`` names resolve to ``address``; any connection that is not to loopback is refused and recorded."""
    attempts: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.endswith(".test"):
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, int(port or 80), 0, 0) if family == socket.AF_INET6 else (address, int(port or 80))
            return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]
        if name not in ("127.0.0.1", "localhost", "::1"):
            attempts.append(f"lookup {name}")
            raise socket.gaierror(socket.EAI_NONAME, "name lookups are blocked in this test")
        return real_getaddrinfo(host, port, *args, **kwargs)

    def connect(self: socket.socket, target: Any) -> None:
        host = str(target[0]) if isinstance(target, tuple) else str(target)
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1"):
            attempts.append(f"connect {host}")
            raise OSError("connections outside loopback are blocked in this test")
        real_connect(self, target)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "2002:a00:1::1", "::ffff:0:7f00:1", "::a9fe:a9fe"])
def test_a_host_resolving_to_an_embedded_private_address_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    with resolving_to(monkeypatch, address) as attempts:
        with pytest.raises(ImageLoadError, match="non-public address"):
            load_image("http://metadata.test/latest.png", ImagePolicy.strict(allow_remote=True, timeout=2))
        assert attempts == []  # refused by the guard, not by the harness


# ----------------------------------------------------------------------------- download deadline


@contextlib.contextmanager
def dripping_server(head: bytes, drip_every: float = 0.5, for_at_most: float = 40.0) -> Iterator[str]:
    """A loopback server that sends ``head`` at once, then one more byte every ``drip_every`` seconds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(head)
                ends = time.monotonic() + for_at_most
                while not stop.is_set() and time.monotonic() < ends:
                    conn.sendall(b"x")
                    stop.wait(drip_every)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


HEADERS_THEN_BODY = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
SLOW_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Slow: "


@pytest.mark.timeout(90)
@pytest.mark.parametrize("head", [HEADERS_THEN_BODY, SLOW_HEADERS], ids=["body-drips", "headers-drip"])
def test_a_dripping_download_stops_at_the_timeout(head: bytes) -> None:
    with dripping_server(head) as url:
        started = time.monotonic()
        with pytest.raises(ImageLoadError, match="did not finish downloading within 2 s"):
            load_image(url + "/slow.png", ImagePolicy(timeout=2.0))
        assert time.monotonic() - started < 10  # 2 s plus a loaded machine's slack, not the 40 s of drip


# ----------------------------------------------------------------------------- format allowlist


def encoded(fmt: str, mode: str = "RGB", size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format=fmt)
    return buf.getvalue()


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\nshowpage\n%%EOF\n"


@pytest.mark.parametrize(
    ("data", "name"),
    [(EPS, "EPS"), (encoded("PPM"), "PPM"), (encoded("ICO"), "ICO"), (encoded("PCX"), "PCX")],
    ids=["eps", "ppm", "ico", "pcx"],
)
def test_formats_outside_the_allowlist_are_refused_naming_the_item_and_format(data: bytes, name: str) -> None:
    with pytest.raises(ImageLoadError, match=f"^document 3: image format {name} is not accepted") as caught:
        load_image(data, item="document 3", index=3)
    assert caught.value.index == 3


@pytest.mark.parametrize("fmt", [f for f in ACCEPTED_FORMATS if f != "WEBP"] + ["WEBP"])
def test_every_accepted_format_loads(fmt: str) -> None:
    if fmt == "WEBP":
        from PIL import features

        if not features.check("webp"):
            pytest.skip("Pillow built without WebP")
    assert load_image(encoded(fmt)).size == (16, 16)


def test_a_corrupt_accepted_format_is_called_corrupt_not_refused() -> None:
    with pytest.raises(ImageLoadError, match=r"unknown or corrupt|corrupt or truncated"):
        load_image(PNG[:40])


# ----------------------------------------------------------------------------- decoded memory


def test_the_pixel_cap_counts_decoded_rgb_not_encoded_bytes() -> None:
    one_bit = encoded("PNG", mode="1", size=(4472, 4472))
    assert len(one_bit) < 20_000  # a few KB encoded ...
    policy = ImagePolicy(max_image_pixels=20_000_000)
    assert policy.max_decoded_bytes == 60_000_000  # ... 60 MB once decoded to RGB
    with pytest.raises(ImageLoadError, match="4472x4472 = 19998784 pixels, over the limit of 10000000"):
        load_image(one_bit, ImagePolicy(max_image_pixels=10_000_000))
    shrunk = load_image(one_bit, ImagePolicy(downscale_pixels=1_000_000))
    assert shrunk.mode == "RGB" and shrunk.width == shrunk.height and shrunk.width * shrunk.height <= 1_000_000


def test_downscale_keeps_the_aspect_ratio_for_jpeg_png_and_pil_inputs() -> None:
    policy = ImagePolicy(downscale_pixels=20_000)
    for source in (encoded("JPEG", size=(800, 400)), encoded("PNG", size=(800, 400)), Image.new("RGB", (800, 400))):
        img = load_image(source, policy)
        assert img.width * img.height <= 20_000 and abs(img.width / img.height - 2) < 0.05, img.size
    assert load_image(PNG, policy).size == (20, 10)  # small images are untouched


# ----------------------------------------------------------------------------- no server paths in errors


def test_path_errors_show_the_callers_path_never_the_image_root(tmp_path: Path) -> None:
    root = tmp_path / "srv-images"
    root.mkdir()
    (root / "loop.png").symlink_to(root / "loop.png")
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    (root / "dir.png").mkdir()
    policy = ImagePolicy.strict(local_root=root)
    given = ["loop.png", "a/x.png", "bad\0name.png", "dir.png", "missing.png", "../outside.png", "~nobody-here/x.png"]
    if os.geteuid() != 0:
        (root / "locked.png").write_bytes(PNG)
        (root / "locked.png").chmod(0)
        given.append("locked.png")
    for name in given:
        with pytest.raises(ImageLoadError) as caught:
            load_image(name, policy, item="document 0", index=0)
        message = str(caught.value)
        assert str(root) not in message and str(tmp_path) not in message, message
        assert name.split("/")[0].replace("\0", "\\x00") in message, message
