"""docs/deploy.md as written: its systemd unit verifies, its nginx config fronts two real replicas."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from remote_helpers import lychee_serve
from service_helpers import close, free_port

from lychee_integrations import RemoteReranker
from lychee_integrations.engine import LycheeReranker

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"


def unit_text() -> str:
    blocks = re.findall(r"```ini\n(.*?)```", DEPLOY.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/deploy.md should hold one ini block, the unit"
    return blocks[0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("mutation", [None, "BogusKey=1"])
def test_systemd_unit_verifies(tmp_path: Path, mutation: str | None) -> None:
    text = unit_text()
    assert "ExecStart=/srv/lychee/venv/bin/lychee serve" in text
    # The unit's own command, pointed at this environment's `lychee` (verify checks that it exists).
    lychee = Path(sys.executable).with_name("lychee")
    assert lychee.exists()
    text = text.replace("/srv/lychee/venv/bin/lychee", str(lychee))
    if mutation:  # the check can fail: a key systemd does not know is reported
        text = text.replace("[Service]\n", f"[Service]\n{mutation}\n")
    unit = tmp_path / "lychee@0.service"
    unit.write_text(text)
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in (out.stdout + out.stderr).splitlines() if str(unit) in line]
    if mutation:
        assert any("BogusKey" in line for line in problems), out
    else:
        assert problems == [], problems


def nginx_block() -> str:
    blocks = re.findall(r"```nginx\n(.*?)```", DEPLOY.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/deploy.md should hold one nginx block"
    return blocks[0]


def documents_scored(base: str) -> float:
    """``lychee_documents_scored_total`` of one replica, from its /metrics."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    match = re.search(r"^lychee_documents_scored_total (\S+)$", text, flags=re.M)
    assert match, text[:500]
    return float(match.group(1))


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_in_front_of_two_replicas_as_documented(
    tmp_path: Path, tiny_checkpoint: Path, tiny_reranker: LycheeReranker
) -> None:
    """The documented nginx config, ports aside: one URL for two real `lychee serve` replicas."""
    texts = ["Paris is the capital of France", "a banana", "Berlin is in Germany"]
    expected = tiny_reranker.score("capital of France", texts)
    with lychee_serve(tiny_checkpoint) as first, lychee_serve(tiny_checkpoint) as second:
        port = free_port()
        site = nginx_block()
        site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
        site = site.replace("127.0.0.1:8000", first.removeprefix("http://"))
        site = site.replace("127.0.0.1:8001", second.removeprefix("http://"))
        temp = {name: tmp_path / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for folder in temp.values():
            folder.mkdir()
        config = tmp_path / "nginx.conf"
        config.write_text(
            f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n"
            f"access_log {tmp_path}/access.log;\n"
            + "".join(f"{name}_temp_path {folder};\n" for name, folder in temp.items()).replace(
                "body_temp_path", "client_body_temp_path"
            )
            + site
            + "}\n"
        )
        nginx = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(config)], stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                assert nginx.poll() is None, nginx.stderr.read() if nginx.stderr else ""
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.2)
            with RemoteReranker(url, timeout=60) as client:
                for _ in range(4):
                    assert close(client.score("capital of France", texts), expected)
            assert documents_scored(first) > 0 and documents_scored(second) > 0  # both replicas served
            response = httpx.post(f"{url}/v1/rerank", json={"query": "q", "documents": ["a"]}, timeout=30)
            assert response.status_code == 200
            assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])  # nginx's $request_id
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
