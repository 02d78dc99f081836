"""``lychee serve`` as a real process: background loading and readiness, the API key from the
environment or a file, a clean stop on SIGTERM that finishes the request in flight, a model that
cannot load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import cli_process, free_port

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

QUERY = "a red running shoe"
TEXTS = ["Red running shoes with a light sole.", "Paris is the capital of France.", "A blue backpack, 20 litres."]


def _serve(checkpoint: Path, port: int, *extra: str) -> list[str]:
    return ["serve", "--model", str(checkpoint), "--device", "cpu", "--port", str(port), *extra]


def test_serve_binds_at_once_and_is_ready_once_loaded(tiny_checkpoint: Path, tiny_reranker: Any) -> None:
    port = free_port()
    env = {**os.environ, "LYCHEE_API_KEY": "from-the-environment"}
    process = subprocess.Popen(
        [sys.executable, "-m", "lychee_integrations.cli", *_serve(tiny_checkpoint, port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and 200 not in seen:
            try:
                seen.append(httpx.get(f"{base}/ready", timeout=2).status_code)
            except httpx.TransportError:
                time.sleep(0.02)
        assert seen and seen[-1] == 200, seen
        assert set(seen) <= {200, 503}
        health = httpx.get(f"{base}/health").json()
        assert health["model"] == tiny_checkpoint.name
        assert httpx.post(f"{base}/v1/rerank", json={"query": QUERY, "documents": TEXTS}).status_code == 401
        keyed = {"Authorization": "Bearer from-the-environment"}
        response = httpx.post(f"{base}/v1/rerank", json={"query": QUERY, "documents": TEXTS}, headers=keyed)
        assert response.status_code == 200
        expected = tiny_reranker.rerank(QUERY, TEXTS)
        assert [r["index"] for r in response.json()["results"]] == [e.index for e in expected]
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
        output = process.stdout.read() if process.stdout else ""
        process.stdout.close()  # type: ignore[union-attr]
    assert "from-the-environment" not in output


def test_sigterm_finishes_the_request_in_flight_and_exits_0(tiny_checkpoint: Path, tmp_path: Path) -> None:
    port = free_port()
    key_file = tmp_path / "key"
    key_file.write_text("file-key\n")
    args = _serve(tiny_checkpoint, port, "--api-key-file", str(key_file), "--graceful-timeout", "30")
    with cli_process(args, port=port) as (process, base):
        first_part_sent, rest_may_go = threading.Event(), threading.Event()
        body_head = b'{"query": "a red running shoe", "documents": ['
        body_tail = b'"Red running shoes.", "Paris is in France."]}'

        def slow_body() -> Iterator[bytes]:
            yield body_head
            first_part_sent.set()
            assert rest_may_go.wait(30)
            yield body_tail

        result: dict[str, Any] = {}

        def call() -> None:
            headers = {"Authorization": "Bearer file-key", "content-type": "application/json"}
            try:
                result["response"] = httpx.post(f"{base}/v1/rerank", content=slow_body(), headers=headers, timeout=60)
            except Exception as exc:  # reported by the assertions below
                result["error"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        assert first_part_sent.wait(30)
        time.sleep(0.5)  # the server has the request's head: the request is in flight
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None, "the server quit with a request in flight"
        rest_may_go.set()
        caller.join(60)
        assert "error" not in result, result.get("error")
        response = result["response"]
        assert response.status_code == 200, response.text
        assert sorted(r["index"] for r in response.json()["results"]) == [0, 1]
        assert process.wait(timeout=30) == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/health", timeout=2)


def test_a_model_that_cannot_load_stops_the_server(tmp_path: Path) -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "lychee_integrations.cli", *_serve(tmp_path / "no-such-model", port)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "no checkpoint directory at" in result.stderr and "Traceback" not in result.stderr


def test_bad_key_arguments(tmp_path: Path) -> None:
    for args, fragment in [
        (["serve", "--api-key-file", str(tmp_path / "missing")], "argument --api-key-file"),
        (["serve", "--api-key", "a", "--api-key-file", str(tmp_path)], "not allowed with argument"),
        (["serve", "--api-key", "  "], "argument --api-key"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "lychee_integrations.cli", *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2 and fragment in result.stderr, (args, result.stderr)
