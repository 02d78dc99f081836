#!/usr/bin/env bash
# The light install, checked for real: build the wheel, install it with [langchain,remote] into a fresh
# virtual environment, check that neither torch nor transformers arrived, then rerank there with the
# LangChain compressor through a real `lychee serve` (run by the full environment on a tiny checkpoint)
# and compare with the in-process engine's scores (to 1e-5).
#
# Usage: bash .ci/light_install.sh [FULL_VENV]   (default: .venv, the environment `.[dev]` went into)
# Set LYCHEE_LIGHT_KEEP=DIR to keep the light venv in DIR (it is then reused by tests/test_light_install.py
# with LYCHEE_LIGHT_VENV=DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
FULL="$(cd "${1:-.venv}" && pwd)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
unset PYTHONPATH

WORK="$(mktemp -d "${TMPDIR:-/tmp}/lychee-light.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
LIGHT="${LYCHEE_LIGHT_KEEP:-$WORK/light}"

echo "== light install: building the wheel"
"$FULL/bin/pip" wheel -q --no-deps -w "$WORK/dist" "$REPO"
WHEEL="$(ls "$WORK"/dist/lychee_integrations-*.whl)"
# From here on, out of the source tree: the light venv must import the installed wheel, never ./lychee_integrations.
cd "$WORK"
# The full environment runs this checkout's code (CI's .venv has it editable anyway); the light one only the wheel.
full() { PYTHONPATH="$REPO" "$FULL/bin/python" "$@"; }
light() { PYTHONPATH="$WORK" "$LIGHT/bin/python" "$@"; }

echo "== light install: $(basename "$WHEEL")[langchain,remote] into a fresh venv ($LIGHT)"
rm -rf "$LIGHT"
start=$SECONDS
python3 -m venv "$LIGHT"
"$LIGHT/bin/pip" install -q "${WHEEL}[langchain,remote]"
echo "installed in $((SECONDS - start)) s, $(du -sh "$LIGHT" | cut -f1) on disk"

# Nothing of the engine, the server or the page: the client's install.
light - <<'EOF'
import importlib.util
import sys

import lychee_integrations

assert lychee_integrations.__file__.startswith(sys.prefix), f"not the installed wheel: {lychee_integrations.__file__}"

heavy = ["torch", "torchvision", "transformers", "tokenizers", "gradio", "fastapi", "uvicorn"]
present = [name for name in heavy if importlib.util.find_spec(name) is not None]
assert not present, f"the light install pulled in {present}"
print("not installed:", ", ".join(heavy))
EOF
"$LIGHT/bin/lychee" --help >/dev/null
"$LIGHT/bin/lychee" eval --help >/dev/null
# The engine without its extra: one clear error naming [engine].
light - <<'EOF'
from lychee_integrations import LycheeReranker, MissingDependencyError

try:
    LycheeReranker("/nonexistent")
except MissingDependencyError as exc:
    assert "[engine]" in str(exc), exc
    print("LycheeReranker without [engine]:", exc)
else:
    raise AssertionError("LycheeReranker was built without torch")
EOF
set +e
message="$("$LIGHT/bin/lychee" rerank --model /nonexistent --query q --doc d 2>&1)"
status=$?
set -e
[[ $status -eq 1 && "$message" == *"[engine]"* ]] || { echo "lychee rerank without [engine]: $status $message" >&2; exit 1; }

echo "== light install: a tiny checkpoint, the engine's scores in process (full environment)"
full -m lychee_integrations.cli build-tiny "$WORK/tiny" >/dev/null 2>&1
cat >"$WORK/case.py" <<EOF
QUERY = "red running shoes"
DOCS = [
    {"text": "a red running shoe with a white sole"},
    {"text": "a blue backpack"},
    {"text": "", "image": "$REPO/examples/data/images/red_running_shoe.png"},
    {"text": "a backpack for hiking", "image": "$REPO/examples/data/images/blue_backpack.png"},
]
EOF
PYTHONPATH="$REPO:$WORK" "$FULL/bin/python" - "$WORK" <<'EOF'
import json
import sys

from case import DOCS, QUERY

from lychee_integrations import LycheeReranker

inputs = [{k: v for k, v in d.items() if v} for d in DOCS]
scores = LycheeReranker(sys.argv[1] + "/tiny", device="cpu").score(QUERY, inputs)
json.dump(scores, open(sys.argv[1] + "/expected.json", "w"))
print("in process:", [round(s, 6) for s in scores])
EOF

echo "== light install: lychee serve (full environment) on loopback"
PORT="$(full -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LYCHEE_MODEL="$WORK/tiny" PYTHONPATH="$REPO" "$FULL/bin/python" -m lychee_integrations.cli serve --host 127.0.0.1 --port "$PORT" --device cpu >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
BASE="http://127.0.0.1:$PORT"
light - "$BASE" "$SERVER_PID" <<'EOF' || { cat "$WORK/serve.log" >&2; exit 1; }
import os
import sys
import time

import httpx

base, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 180
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("lychee serve exited")
    try:
        if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    if time.monotonic() > deadline:
        sys.exit("lychee serve was not ready in 180 s")
    time.sleep(0.25)
EOF

echo "== light install: the LangChain compressor in the light venv, through $BASE"
light - "$BASE" "$WORK/expected.json" <<'EOF'
import json
import sys

from case import DOCS, QUERY
from langchain_core.documents import Document

from lychee_integrations.langchain import LycheeRerank

base, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path))
documents = [
    Document(page_content=d["text"], metadata={"i": i, **({"image": d["image"]} if "image" in d else {})})
    for i, d in enumerate(DOCS)
]
ranked = LycheeRerank(base_url=base, top_n=None).compress_documents(documents, QUERY)
assert sorted(d.metadata["i"] for d in ranked) == list(range(len(DOCS))), ranked
got = {d.metadata["i"]: d.metadata["relevance_score"] for d in ranked}
diff = max(abs(got[i] - expected[i]) for i in range(len(DOCS)))
print("through the server:", [round(got[i], 6) for i in range(len(DOCS))], f"max |diff| = {diff:.2e}")
assert diff <= 1e-5, (got, expected)
assert [d.metadata["relevance_score"] for d in ranked] == sorted(got.values(), reverse=True)
EOF
echo "== light install: OK"
