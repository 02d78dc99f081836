"""Fixtures of the vLLM parity suite: head-size-64 checkpoints, the engine, VLLMReranker, vLLM servers.

Two families: Lychee (``small_checkpoint``, ``engine``, ``vllm_reranker``, ``server``) and
Qwen3-VL-Reranker (``qwen3_checkpoint``, ``qwen3_engine``, ``qwen3_vllm_reranker``, ``qwen3_server``).

Tests marked ``vllm`` need vLLM importable (its own environment, ``bash .ci/vllm-env.sh``); without
it they are skipped with that reason, and nothing here imports vllm at collection. Tests marked
``vllm_server`` need only a vLLM server: they also run from another environment (the main one, with
LlamaIndex) when ``LYCHEE_VLLM_PYTHON`` names the vLLM environment's interpreter, which then runs
``lychee vllm-serve``. The engine's
reference scores are computed in the same process as vLLM's (the vLLM environment runs this
package with its transformers 5.x), on the same checkpoint, in float32 on the CPU.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.vllm import VLLMReranker

HAS_VLLM = importlib.util.find_spec("vllm") is not None and importlib.util.find_spec("vllm").origin is not None
SKIP_REASON = "vLLM is not installed here: build its environment with 'bash .ci/vllm-env.sh .venv-vllm'"
#: The interpreter that runs ``lychee vllm-serve``: this one, or the vLLM environment's.
VLLM_PYTHON = os.environ.get("LYCHEE_VLLM_PYTHON") or (sys.executable if HAS_VLLM else None)
SERVER_SKIP_REASON = SKIP_REASON + ", or name its python in LYCHEE_VLLM_PYTHON"
#: Small enough that long documents get cut, large enough for several images.
MAX_LENGTH = 384
SERVER_START_TIMEOUT = 420.0

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vllm: needs vLLM importable (its own environment)")
    config.addinivalue_line("markers", "vllm_server: needs a vLLM server (vLLM here, or LYCHEE_VLLM_PYTHON)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("vllm") is not None and not HAS_VLLM:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
        if item.get_closest_marker("vllm_server") is not None and VLLM_PYTHON is None:
            item.add_marker(pytest.mark.skip(reason=SERVER_SKIP_REASON))


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-layer, 512-wide checkpoint with a head size of 64 (vLLM's CPU attention needs 64)."""
    from lychee_integrations.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("small-lychee"), preset="small")


@pytest.fixture(scope="session")
def qwen3_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Qwen3-VL-Reranker-architecture checkpoint with a head size of 64 (preset ``small``)."""
    from lychee_integrations.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("small-qwen3-vl"), family="qwen3-vl", preset="small")


@pytest.fixture(scope="session")
def qwen3_engine(qwen3_checkpoint: Path) -> Iterator[LycheeReranker]:
    """The in-process engine on the Qwen3-VL checkpoint (its recipe from model_type): the reference."""
    from lychee_integrations.engine import LycheeReranker

    reranker = LycheeReranker(model=str(qwen3_checkpoint), device="cpu", dtype="float32", max_length=MAX_LENGTH)
    reranker.load()
    assert reranker.encode("q", ["d"])[0].input_ids  # the recipe: from model_type, checked in test_parity
    yield reranker
    reranker.unload()


@pytest.fixture(scope="session")
def engine(lychee_engine: LycheeReranker) -> LycheeReranker:
    """The in-process engine on the Lychee checkpoint: the reference (float32, CPU)."""
    return lychee_engine


@pytest.fixture(scope="session")
def vllm_reranker(lychee_vllm_reranker: VLLMReranker) -> VLLMReranker:
    """VLLMReranker on the Lychee checkpoint, same max_length, float32 (eager: no compile)."""
    return lychee_vllm_reranker


@pytest.fixture(scope="session")
def lychee_engine(small_checkpoint: Path) -> Iterator[LycheeReranker]:
    """The in-process engine: the reference (float32, CPU); ``engine`` by its other name."""
    from lychee_integrations.engine import LycheeReranker

    reranker = LycheeReranker(model=str(small_checkpoint), device="cpu", dtype="float32", max_length=MAX_LENGTH)
    reranker.load()
    yield reranker
    reranker.unload()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A ``lychee vllm-serve`` subprocess on loopback."""

    def __init__(self, checkpoint: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model = str(checkpoint)
        self.log_path = log
        self._log = log.open("wb")
        command = [VLLM_PYTHON or sys.executable, "-m", "lychee_integrations.cli", "vllm-serve", self.model]
        command += ["--port", str(self.port), "--dtype", "float32", "--enforce-eager"]
        # This checkout's package, whichever environment's interpreter runs the server.
        repo = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"lychee vllm-serve exited with {self.process.returncode}: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1.0)
        raise RuntimeError(f"lychee vllm-serve not ready after {SERVER_START_TIMEOUT} s: {self.tail()}")

    def tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def server_process(small_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The vLLM server, started but not awaited (it boots while in-process tests run)."""
    server = Server(small_checkpoint, tmp_path_factory.mktemp("vllm-serve") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server(server_process: Server) -> Server:
    """The vLLM server, ready."""
    server_process.wait_ready()
    return server_process


@pytest.fixture(scope="session")
def qwen3_server_process(qwen3_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The vLLM server on the Qwen3-VL checkpoint, started but not awaited."""
    server = Server(qwen3_checkpoint, tmp_path_factory.mktemp("vllm-serve-qwen3") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def qwen3_server(qwen3_server_process: Server) -> Server:
    """The vLLM server on the Qwen3-VL checkpoint, ready."""
    qwen3_server_process.wait_ready()
    return qwen3_server_process


def _start_vllm(checkpoint: Path, request: pytest.FixtureRequest, server_fixture: str) -> VLLMReranker:
    from lychee_integrations.vllm import VLLMReranker

    if os.environ.get("LYCHEE_VLLM_TEST_SERVER", "1") == "1":
        request.getfixturevalue(server_fixture)  # let the server boot meanwhile
    reranker = VLLMReranker(str(checkpoint), dtype="float32", max_length=MAX_LENGTH, enforce_eager=True)
    return reranker.load()


@pytest.fixture(scope="session")
def lychee_vllm_reranker(small_checkpoint: Path, request: pytest.FixtureRequest) -> Iterator[VLLMReranker]:
    """VLLMReranker on the Lychee checkpoint; ``vllm_reranker`` by its other name."""
    reranker = _start_vllm(small_checkpoint, request, "server_process")
    yield reranker
    reranker.unload()


@pytest.fixture(scope="session")
def qwen3_vllm_reranker(qwen3_checkpoint: Path, request: pytest.FixtureRequest) -> Iterator[VLLMReranker]:
    """VLLMReranker on the Qwen3-VL checkpoint (its recipe from model_type), as ``qwen3_engine``."""
    reranker = _start_vllm(qwen3_checkpoint, request, "qwen3_server_process")
    assert reranker.recipe.name == "qwen3-vl"
    yield reranker
    reranker.unload()


def make_image(color: tuple[int, int, int], size: tuple[int, int], stripe: int = 0) -> Any:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, color)
    if stripe:
        ImageDraw.Draw(img).rectangle([0, 0, stripe, size[1] // 2], fill=(255 - color[0], 40, 200))
    return img


@pytest.fixture(scope="session")
def pictures() -> dict[str, Any]:
    return {
        "red": make_image((220, 20, 20), (64, 48)),
        "blue": make_image((20, 20, 220), (120, 90), stripe=30),
        "green": make_image((20, 200, 40), (200, 40), stripe=10),
        "gray": make_image((128, 128, 128), (30, 30)),
    }
