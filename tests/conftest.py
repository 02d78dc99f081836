"""Shared fixtures: a tiny real-architecture checkpoint built offline once per session."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lychee_integrations.engine import LycheeReranker

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random Qwen2.5-VL checkpoint with the real processor and template."""
    from lychee_integrations.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-lychee"))


@pytest.fixture(scope="session")
def tiny_reranker(tiny_checkpoint: Path) -> Iterator[LycheeReranker]:
    """A loaded LycheeReranker on the tiny checkpoint (fp32, CPU)."""
    from lychee_integrations.engine import LycheeReranker

    reranker = LycheeReranker(model=str(tiny_checkpoint), device="cpu", dtype="float32")
    reranker.load()
    yield reranker
    reranker.unload()


def make_image(color: tuple[int, int, int], size: tuple[int, int] = (64, 48), stripe: int = 0) -> object:
    """A small RGB image with an optional stripe, so that images differ in content."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, color)
    if stripe:
        ImageDraw.Draw(img).rectangle([0, 0, stripe, size[1] // 2], fill=(255 - color[0], 40, 200))
    return img


def png_bytes(img: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # type: ignore[attr-defined]
    return buf.getvalue()


@pytest.fixture()
def images() -> dict[str, object]:
    return {
        "red": make_image((220, 20, 20)),
        "blue": make_image((20, 20, 220), size=(120, 90), stripe=30),
        "green": make_image((20, 200, 40), size=(200, 40), stripe=10),
        "gray": make_image((128, 128, 128), size=(30, 30)),
    }


@pytest.fixture()
def image_files(images: dict[str, object], tmp_path: Path) -> dict[str, Path]:
    """The ``images`` fixture saved as PNG files."""
    paths = {}
    for name, img in images.items():
        paths[name] = tmp_path / f"{name}.png"
        img.save(paths[name])  # type: ignore[attr-defined]
    return paths


@pytest.fixture(scope="session")
def tiny_qwen3_vl_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random Qwen3-VL-Reranker-architecture checkpoint (``build-tiny --family qwen3-vl``)."""
    from lychee_integrations.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-qwen3-vl"), family="qwen3-vl")


def _require_real_vocab() -> None:
    import importlib.util

    if importlib.util.find_spec("dashscope") is None:
        pytest.skip("the real Qwen vocabulary needs the real-vocab extra (dashscope)")


@pytest.fixture(scope="session")
def real_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2.5-VL checkpoint with the real Qwen tokenizer, chat template and 152064-row embedding."""
    from lychee_integrations.tiny import build_tiny_checkpoint

    _require_real_vocab()
    return build_tiny_checkpoint(tmp_path_factory.mktemp("real-lychee"), real_tokenizer=True)


@pytest.fixture(scope="session")
def real_reranker(real_checkpoint: Path) -> Iterator[LycheeReranker]:
    """A loaded LycheeReranker on the real-vocabulary checkpoint (fp32, CPU, prefix reuse on)."""
    from lychee_integrations.engine import LycheeReranker

    reranker = LycheeReranker(model=str(real_checkpoint), device="cpu", dtype="float32")
    reranker.load()
    yield reranker
    reranker.unload()


@pytest.fixture(scope="session")
def real_qwen3_vl_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3-VL-Reranker-architecture checkpoint with Qwen3-VL's real tokenizer and chat template."""
    from lychee_integrations.tiny import build_tiny_checkpoint

    _require_real_vocab()
    return build_tiny_checkpoint(tmp_path_factory.mktemp("real-qwen3-vl"), family="qwen3-vl", real_tokenizer=True)
