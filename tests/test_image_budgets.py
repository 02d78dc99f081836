"""Per-request image budgets: images per item and per request, summed pixels, checked before decoding.

Reproduction of issue 17: one request of 30 documents, each a 2.5 KB PNG of a 4472x4472 1-bit
image (under the per-image pixel cap), raised the server's peak memory by 3 GB.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from conftest import make_image, png_bytes
from PIL import Image
from service_helpers import cli_process, free_port

from lychee_integrations.errors import InputTooLongError, LimitExceededError
from lychee_integrations.images import (
    ImagePolicy,
    check_image_counts,
    check_request_pixels,
    decode_image,
    load_image,
    open_image,
)
from lychee_integrations.service.settings import ServiceSettings

SIDE = 4472  # 19,998,784 pixels: under the default per-image cap of 20 M


def one_bit_png(side: int = SIDE) -> bytes:
    buffer = io.BytesIO()
    img = Image.new("1", (side, side), 1)
    img.paste(0, (side // 4, side // 4, side // 2, side // 2))
    img.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def vm_hwm_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


# ----------------------------------------------------------------------------- the loader's two steps


def test_opening_reads_the_header_only_and_the_budget_names_item_limit_and_value() -> None:
    data = one_bit_png()
    assert len(data) < 20_000
    policy = ImagePolicy(max_request_pixels=50_000_000)
    opened = [open_image(data, policy, item=f"document {i}", index=i) for i in range(3)]
    assert all(o.pixels == SIDE * SIDE for o in opened)
    with pytest.raises(LimitExceededError, match=r"^document 2: image 0 \(4472x4472\).*max_request_pixels=50000000"):
        check_request_pixels([(f"document {i}", i, (o,)) for i, o in enumerate(opened)], policy)
    check_request_pixels([(f"document {i}", i, (o,)) for i, o in enumerate(opened[:2])], policy)  # 40 M: fits


def test_image_counts_per_item_and_per_request_are_checked_with_their_names() -> None:
    policy = ImagePolicy(max_images_per_item=2, max_images_per_request=4)
    with pytest.raises(LimitExceededError, match=r"^document 1: 3 images sent, over max_images_per_item=2") as err:
        check_image_counts([("query", None, 1), ("document 0", 0, 1), ("document 1", 1, 3)], policy)
    assert (err.value.limit, err.value.value, err.value.index) == ("max_images_per_item", 2, 1)
    with pytest.raises(LimitExceededError, match=r"^document 2: the request carries 5 images.*=4"):
        items = [("query", None, 1), ("document 0", 0, 2), ("document 1", 1, 0), ("document 2", 2, 2)]
        check_image_counts(items, policy)
    check_image_counts([("query", None, 2), ("document 0", 0, 2)], policy)
    check_image_counts([("query", None, 50)], ImagePolicy())  # no caps by default in the library


def test_a_one_bit_image_is_shrunk_in_its_own_mode_before_it_becomes_rgb() -> None:
    """Peak memory of decoding a 1-bit 4472x4472 PNG with a downscale: never a 60 MB RGB copy."""
    script = textwrap.dedent(
        f"""
        import io, sys
        from PIL import Image
        from lychee_integrations.images import ImagePolicy, load_image

        def hwm():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

        img = Image.new("1", ({SIDE}, {SIDE}), 1)
        buffer = io.BytesIO()
        img.save(buffer, "PNG")
        del img
        data = buffer.getvalue()
        load_image(Image.new("1", (64, 64)), ImagePolicy())  # the code paths warm, the peak not raised
        before = hwm()
        out = load_image(data, ImagePolicy(downscale_pixels=1_000_000))
        assert out.mode == "RGB" and out.width * out.height <= 1_000_000, out.size
        print(hwm() - before)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    growth_mib = int(run.stdout.strip()) / 1024
    # Decoded 1-bit source (1 byte a pixel in Pillow) + its grey copy: 2 x 19 MiB; as RGB it would add 57 MiB.
    assert growth_mib < 55, f"decoding grew peak memory by {growth_mib:.0f} MiB"


def test_decode_image_leaves_the_callers_image_alone() -> None:
    mine = Image.new("RGBA", (300, 200), (10, 20, 30, 128))
    opened = open_image(mine)
    out = decode_image(opened, ImagePolicy(downscale_pixels=6_000))
    assert out is not mine and out.mode == "RGB" and out.width * out.height <= 6_000
    assert mine.size == (300, 200) and mine.mode == "RGBA"
    assert load_image(png_bytes(make_image((1, 2, 3)))).size == (64, 48)


def test_the_service_states_the_budgets_and_passes_them_to_the_engine() -> None:
    policy = ServiceSettings(max_images_per_item=3, max_images_per_request=9, max_request_pixels=1234).image_policy()
    assert (policy.max_images_per_item, policy.max_images_per_request, policy.max_request_pixels) == (3, 9, 1234)
    defaults = ServiceSettings()
    assert defaults.max_request_pixels < 30 * SIDE * SIDE  # the reproduction is over the default budget
    with pytest.raises(ValueError, match="max_request_pixels must be a positive integer"):
        ServiceSettings(max_request_pixels=0)


# ----------------------------------------------------------------------------- a real server


def test_thirty_near_cap_one_bit_images_are_refused_by_the_named_budget_and_the_server_stays_healthy(
    tiny_checkpoint: Path,
) -> None:
    port = free_port()
    args = ["serve", "--model", str(tiny_checkpoint), "--device", "cpu", "--port", str(port)]
    image = data_uri(one_bit_png())
    small = data_uri(png_bytes(make_image((200, 30, 30))))
    with (
        cli_process([*args, "--max-images-per-request", "40"], port=port) as (process, base),
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        limits = client.get("/health").json()["limits"]
        assert limits["max_request_pixels"] == 100_000_000 and limits["max_images_per_item"] == 8
        assert limits["max_images_per_request"] == 40 and limits["max_concurrency"] == 32
        warm = client.post("/v1/rerank", json={"query": "red", "documents": [{"text": "a", "image": small}]})
        assert warm.status_code == 200, warm.text
        before = vm_hwm_kib(process.pid)

        documents = [{"text": f"page {i}", "image": image} for i in range(30)]
        refused = client.post("/v1/rerank", json={"query": "a black square", "documents": documents})
        assert refused.status_code == 413, refused.text
        detail = refused.json()["detail"]
        assert detail.startswith("document 5: image 0 (4472x4472)") and "max_request_pixels=100000000" in detail
        growth_mib = (vm_hwm_kib(process.pid) - before) / 1024
        assert growth_mib < 1536, f"peak memory grew by {growth_mib:.0f} MiB"

        too_many = client.post("/v1/rerank", json={"query": "q", "documents": [{"images": [small] * 9}, {"text": "t"}]})
        assert too_many.status_code == 413
        assert too_many.json()["detail"].startswith("document 0: 9 images sent, over max_images_per_item=8")
        per_request = client.post("/api/rerank", json={"query": "q", "documents": [{"images": [small] * 8}] * 6})
        assert per_request.status_code == 413 and "document 5" in per_request.json()["detail"]
        assert "max_images_per_request=40" in per_request.json()["detail"]

        assert client.get("/health").json()["status"] == "ok"
        under = client.post("/v1/rerank", json={"query": "a black square", "documents": documents[:4]})
        assert under.status_code == 200, under.text
        assert sorted(r["index"] for r in under.json()["results"]) == [0, 1, 2, 3]
        assert (vm_hwm_kib(process.pid) - before) / 1024 < 1536


def test_a_pair_whose_images_are_too_long_is_refused_from_the_headers_before_decoding(tiny_checkpoint: Path) -> None:
    from lychee_integrations.engine import LycheeReranker

    reranker = LycheeReranker(model=str(tiny_checkpoint), device="cpu", max_length=200)
    big = png_bytes(make_image((10, 10, 10), size=(800, 800)))
    broken = big[: len(big) // 2]  # the header whole, the pixel data cut: decoding it would fail
    with pytest.raises(InputTooLongError, match=r"^document 1: .*from the image headers.*max_length=200") as info:
        reranker.score("q", ["fine", {"image": broken}])
    assert info.value.index == 1
    encoder = reranker._get_runtime().encoder
    policy = encoder.decoding_policy(ImagePolicy())
    for size in ((800, 800), (640, 100), (5000, 1200)):  # the last one is shrunk as it is decoded
        data = png_bytes(make_image((1, 2, 3), size=size))
        from_header = encoder.header_tokens(open_image(data, policy), policy)
        assert from_header == encoder.encode_image(load_image(data, policy)).n_tokens, size


def test_the_schema_states_the_per_item_caps_the_server_checks() -> None:
    from service_helpers import serve_app

    from lychee_integrations.service.app import create_app
    from lychee_integrations.testing import FakeScorer

    settings = ServiceSettings(max_documents=8, max_images_per_item=3)
    small = data_uri(png_bytes(make_image((1, 2, 3))))
    with serve_app(create_app(FakeScorer(), settings)) as base, httpx.Client(base_url=base, timeout=30) as client:
        components = client.get("/openapi.json").json()["components"]["schemas"]
        images = components["InputItem"]["properties"]["images"]["anyOf"][0]
        assert images["maxItems"] == 3
        assert components["MultiModalContent"]["properties"]["content"]["maxItems"] == 8
        parts = [{"type": "image_url", "image_url": {"url": small}}] * 9
        refused = client.post("/v1/rerank", json={"query": {"content": parts}, "documents": ["a"]})
        assert refused.status_code == 413
        assert refused.json()["detail"] == "query: 9 content parts sent, over max_documents=8"
        pairs = client.post("/v1/score", json={"text_1": "q", "text_2": [{"content": parts}]})
        assert pairs.status_code == 413 and pairs.json()["detail"].startswith("text_2[0]: 9 content parts sent")
