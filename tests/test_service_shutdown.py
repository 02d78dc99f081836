"""Bounded shutdown: after SIGTERM, work abandoned at ``--graceful-timeout`` gets a JSON 503 and the process exits.

Reproduction of issue 17: with ``--graceful-timeout 2``, a 10 s request got a plain-text 500 and
the process exited 15 s after SIGTERM. The slow request here is real work: long documents on the
tiny checkpoint, one pair per forward pass.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from service_helpers import cli_process, free_port

from lychee_integrations.service.middleware import ABANDONED

GRACE = 2.0
#: Far more work than the grace period (each pair is thousands of tokens, one forward each).
DOCUMENTS = [f"word{i} " * 2500 for i in range(40)]


def test_abandoned_work_gets_a_json_503_and_the_process_exits_soon_after_the_graceful_timeout(
    tiny_checkpoint: Path,
) -> None:
    port = free_port()
    args = ["serve", "--model", str(tiny_checkpoint), "--device", "cpu", "--port", str(port)]
    args += ["--batch-size", "1", "--graceful-timeout", str(GRACE)]
    with cli_process(args, port=port) as (process, base):
        result: dict[str, Any] = {}

        def call() -> None:
            try:
                result["response"] = httpx.post(
                    f"{base}/v1/rerank", json={"query": "a word", "documents": DOCUMENTS}, timeout=300
                )
            except Exception as exc:  # reported by the assertions below
                result["error"] = exc
            result["at"] = time.monotonic()

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(3)  # the body (under 1 MB) is in, the engine is working on its first pairs
        assert "response" not in result, "the slow request finished before the signal: make it longer"
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        caller.join(120)
        assert "error" not in result, result.get("error")
        response = result["response"]
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"detail": ABANDONED}
        assert process.wait(timeout=60) == 0
        exited = time.monotonic() - signalled
        # Without the bound the whole request ran first (tens of seconds here); the margin is for a busy machine.
        assert exited < GRACE + 12, f"exited {exited:.1f} s after SIGTERM"
        assert result["at"] - signalled < GRACE + 12
