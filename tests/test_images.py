"""The one image loader: forms, policy, limits, and fuzzing of its string parser."""

from __future__ import annotations

import base64
import contextlib
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_image, png_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lychee_integrations.errors import (
    ConfigurationError,
    ImageLoadError,
    InvalidInputError,
    UnsupportedInputError,
)
from lychee_integrations.images import ImagePolicy, load_image

PNG = png_bytes(make_image((10, 200, 30), size=(20, 10)))


@pytest.fixture()
def image_server() -> Iterator[str]:
    """A real HTTP server on loopback serving /img.png, /big.png, /redirect and /text."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/img.png":
                body, ctype = PNG, "image/png"
            elif self.path == "/big.png":
                body, ctype = b"\x00" * 5000, "image/png"
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.end_headers()
                return
            elif self.path == "/missing":
                self.send_response(404)
                self.end_headers()
                return
            else:
                body, ctype = b"hello", "text/plain"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_every_form_decodes_to_the_same_pixels(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(PNG)
    b64 = base64.b64encode(PNG).decode()
    forms: list[object] = [
        Image.open(path),
        PNG,
        bytearray(PNG),
        path,
        str(path),
        path.as_uri(),
        "data:image/png;base64," + b64,
        b64,
        base64.urlsafe_b64encode(PNG).decode().rstrip("="),
        "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76)),
    ]
    reference = Image.open(path).convert("RGB").tobytes()
    for form in forms:
        img = load_image(form)
        assert img.mode == "RGB" and img.size == (20, 10), form
        assert img.tobytes() == reference


def test_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    assert rgba.mode == "RGBA", "the caller's image is not modified"


def test_pixel_limit_refuses_decompression_bombs() -> None:
    bomb = png_bytes(Image.new("L", (6000, 6000)))  # a few KB encoded, 36M pixels
    assert len(bomb) < 200_000
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(bomb, ImagePolicy(max_image_pixels=10_000_000), item="document 4", index=4)
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(Image.new("L", (5000, 5000)), ImagePolicy(max_image_pixels=1_000_000))


def test_byte_limit() -> None:
    with pytest.raises(ImageLoadError, match="bytes, over the limit"):
        load_image(PNG, ImagePolicy(max_bytes=10))


def test_local_root_confines_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.png").write_bytes(PNG)
    outside = tmp_path / "secret.png"
    outside.write_bytes(PNG)
    (root / "link.png").symlink_to(outside)
    policy = ImagePolicy.strict(local_root=root)
    assert load_image("sub/ok.png", policy).size == (20, 10)
    assert load_image(str(root / "sub" / "ok.png"), policy).size == (20, 10)
    for bad in ["../secret.png", str(outside), "sub/../../secret.png", "link.png", outside.as_uri()]:
        with pytest.raises(ImageLoadError, match="outside the allowed image directory"):
            load_image(bad, policy)


def test_strict_policy_without_root_refuses_files(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(PNG)
    with pytest.raises(ImageLoadError, match="local file paths are not allowed"):
        load_image(str(path), ImagePolicy.strict())
    with pytest.raises(ImageLoadError, match="local file paths are not allowed"):
        load_image(path, ImagePolicy.strict())
    assert load_image(base64.b64encode(PNG).decode(), ImagePolicy.strict()).size == (20, 10)


def test_remote_fetch_and_its_guards(image_server: str) -> None:
    assert load_image(image_server + "/img.png").size == (20, 10)
    with pytest.raises(ImageLoadError, match="not allowed"):
        load_image(image_server + "/img.png", ImagePolicy.strict())
    with pytest.raises(ImageLoadError, match="non-public address"):
        load_image(image_server + "/img.png", ImagePolicy.strict(allow_remote=True))
    localhost = image_server.replace("127.0.0.1", "localhost")
    with pytest.raises(ImageLoadError, match="non-public address"):
        load_image(localhost + "/img.png", ImagePolicy.strict(allow_remote=True))
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(image_server + "/big.png", ImagePolicy(max_bytes=1000))
    with pytest.raises(ImageLoadError, match="HTTP 404"):
        load_image(image_server + "/missing")
    with pytest.raises(ImageLoadError, match="redirect"):
        load_image(image_server + "/redirect")
    with pytest.raises(ImageLoadError, match="not a readable image"):
        load_image(image_server + "/text")


@pytest.mark.parametrize(
    "url",
    ["http://[::1]:9/x.png", "http://10.0.0.1:9/x.png", "http://169.254.169.254/latest", "http://0.0.0.0:9/"],
)
def test_private_addresses_are_refused_before_connecting(url: str) -> None:
    with pytest.raises(ImageLoadError, match="non-public address"):
        load_image(url, ImagePolicy.strict(allow_remote=True, timeout=1.0))


def test_errors_name_the_item(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as info:
        load_image(str(tmp_path / "nope.jpg"), item="document 7", index=7)
    assert str(info.value) == f"document 7: image file not found: {tmp_path / 'nope.jpg'}"
    assert info.value.index == 7
    with pytest.raises(UnsupportedInputError, match="unsupported type int"):
        load_image(5, item="query")
    for bad, fragment in [
        ("", "empty string"),
        ("ftp://example.com/a.png", "unsupported URL scheme"),
        ("data:text/plain;base64,aGk=", "not an image"),
        ("data:image/png,rawdata", "base64-encoded"),
        ("data:image/png;base64", "malformed data URI"),
        ("file://server/share/a.png", "remote host"),
        (b"", "empty"),
    ]:
        with pytest.raises(ImageLoadError, match=fragment):
            load_image(bad)


def test_policy_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        ImagePolicy(timeout=0)
    with pytest.raises(ConfigurationError):
        ImagePolicy(local_root=tmp_path / "missing")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())))
def test_fuzz_strings_never_escape_as_other_errors(text: str) -> None:
    """Any string either loads as an image or fails with ImageLoadError, never anything else."""
    try:
        load_image(text, ImagePolicy(allow_remote=False), item="document 0", index=0)
    except ImageLoadError as exc:
        assert str(exc).startswith("document 0: ")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_bytes(data: bytes) -> None:
    with contextlib.suppress(ImageLoadError):
        load_image(data)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=len(PNG) - 1), st.integers(min_value=0, max_value=255))
def test_fuzz_corrupted_png(position: int, value: int) -> None:
    data = bytearray(PNG)
    data[position] = value
    try:
        img = load_image(bytes(data))
        assert img.mode == "RGB"
    except ImageLoadError:
        pass


def test_load_image_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        load_image(b"junk")
    assert issubclass(ImageLoadError, InvalidInputError)


def test_path_like_strings_get_path_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="local file paths are not allowed"):
        load_image("/etc/hostname", ImagePolicy.strict())
    with pytest.raises(ImageLoadError, match="image file not found"):
        load_image(str(tmp_path / "no" / "such"))
    jpeg = io.BytesIO()
    make_image((1, 2, 3)).save(jpeg, format="JPEG")  # type: ignore[attr-defined]
    b64 = base64.b64encode(jpeg.getvalue()).decode()
    assert b64.startswith("/9j/"), "JPEG base64 starts with a slash and must still load"
    assert load_image(b64, ImagePolicy.strict()).size == (64, 48)
