"""The ``lychee`` command as a shell user meets it: closed pipes, quiet loading, option-worded errors, exit status.

Every check runs the real command in a subprocess; the statuses are those docs/cli.md documents.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from service_helpers import free_port

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
PRODUCTS = ROOT / "examples" / "data" / "products.jsonl"
README_ARGS = ["rerank", "--task", "product_search", "--query", "red running shoes", "--docs", str(PRODUCTS)]
#: What the library says to a Python caller, and a command-line user must not be told.
PYTHON_ADVICE = re.compile(r"\b[a-z_]+\(|\b(device|dtype|max_length|batch_size|instruction|base_url)=")


def command(*args: str, env: dict[str, str] | None = None) -> list[str]:
    return [sys.executable, "-m", "lychee_integrations.cli", *args]


def lychee(
    *args: str, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=300, env={**environment, **(env or {})}
    )


def exit_statuses() -> dict[int, str]:
    """The exit status table of docs/cli.md, status -> its row."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split("## Exit status and errors", 1)[1]
    return {int(m[1]): m[0] for m in re.finditer(r"^\| (\d+) \|.*$", section, re.MULTILINE)}


# ---------------------------------------------------------------- a closed pipe


@pytest.mark.parametrize("args", [["templates", "--json"], ["rerank", "--json", "--query", "a cat", "--doc", "a cat"]])
def test_a_closed_pipe_is_quiet(tiny_checkpoint: Path, args: list[str]) -> None:
    """``lychee ... | head -0``: the reader is gone before the command writes; no traceback, status 0."""
    if args[0] == "rerank":
        args = [*args, "--model", str(tiny_checkpoint)]
    process = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # long before the command gets to write: its first write meets a closed pipe
    err = process.stderr.read().decode()
    status = process.wait(timeout=300)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Broken pipe" not in err, err
    assert status == 0 and "reader of the output stops reading" in exit_statuses()[0]


def test_head_takes_the_first_line_quietly(tiny_checkpoint: Path) -> None:
    pipeline = (
        f"set -o pipefail; {sys.executable} -m lychee_integrations.cli rerank --json --model {tiny_checkpoint} "
        + " ".join(f"--doc 'document {i} {'word ' * 200}'" for i in range(40))
        + " --query q | head -1"
    )
    result = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, timeout=300)
    assert result.stdout == "{\n" and result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Broken" not in result.stderr


# ---------------------------------------------------------------- progress bars only with -v


def test_loading_and_saving_draw_no_bars_without_v(tmp_path: Path) -> None:
    quiet = lychee("build-tiny", str(tmp_path / "a"))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = lychee("-v", "build-tiny", str(tmp_path / "b"))
    assert loud.returncode == 0 and "Writing model shards" in loud.stderr
    ranked = lychee("rerank", "--model", str(tmp_path / "a"), "--query", "q", "--doc", "d")
    assert ranked.returncode == 0 and "Loading" not in ranked.stderr and "it/s" not in ranked.stderr, ranked.stderr
    ranked = lychee("-v", "rerank", "--model", str(tmp_path / "a"), "--query", "q", "--doc", "d")
    assert ranked.returncode == 0 and "Loading weights" in ranked.stderr


# ---------------------------------------------------------------- errors in the command's words


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (["--task", "astrology"], ["argument --task", "--instruction TEXT"]),
        (["--max-length", "10"], ["argument --max-length", "--max-length 10"]),
        *(
            []
            if __import__("torch").cuda.is_available()
            else [(["--device", "cuda"], ["--device cuda", "--device cpu"])]
        ),
    ],
)
def test_errors_name_options_not_python(tiny_checkpoint: Path, args: list[str], options: list[str]) -> None:
    result = lychee("rerank", "--model", str(tiny_checkpoint), "--query", "q", "--doc", "d", *args)
    assert result.returncode == 2, result.stderr
    message = result.stderr.splitlines()[-1]
    assert all(option in message for option in options), message
    assert not PYTHON_ADVICE.search(message), message
    assert "Traceback" not in result.stderr


def test_a_pair_too_long_names_the_option(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (1200, 1200), (200, 40, 40)).save(big)
    result = lychee("rerank", "--model", str(tiny_checkpoint), "--max-length", "64", "-q", "q", "--doc-image", str(big))
    assert result.returncode == 2, result.stderr
    message = result.stderr.splitlines()[-1]
    assert "--doc-image #1" in message and "--max-length" in message, message
    assert not PYTHON_ADVICE.search(message), message


# ---------------------------------------------------------------- the first run, without the Hub


def test_readme_command_without_the_hub_fails_at_once_with_one_message(tmp_path: Path) -> None:
    """README command 1 as a new user runs it: offline, or with no network at all (nothing listens)."""
    hub = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    cases = {
        "offline": {**hub, "HF_HUB_OFFLINE": "1"},
        "no network": {**hub, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"},
    }
    for case, env in cases.items():
        started = time.monotonic()
        result = lychee(*README_ARGS, env=env, drop=("LYCHEE_MODEL", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
        took = time.monotonic() - started
        assert result.returncode == 3 and 3 in exit_statuses(), (case, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (case, lines)
        for needed in ("lychee build-tiny", "--model DIR", "HF_HUB_OFFLINE", "vec-ai/lychee-rerank-mm"):
            assert needed in lines[0], (case, needed, lines[0])
        assert took < 30, (case, took)  # seconds, not a minute of retries (generous: this machine is shared)


def test_a_missing_local_directory_is_named_as_such(tmp_path: Path) -> None:
    for model in (str(tmp_path / "no-such-dir"), "./no-such-dir"):
        result = lychee("rerank", "--model", model, "--query", "q", "--doc", "d")
        assert result.returncode == 3, result.stderr
        assert f"no checkpoint directory at {model!r}" in result.stderr and "lychee build-tiny" in result.stderr


def test_results_of_a_random_checkpoint_say_so(tiny_checkpoint: Path) -> None:
    result = lychee("rerank", "--model", str(tiny_checkpoint), "--query", "q", "--doc", "d", "--json")
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "random tiny checkpoint" in warnings[0] and "mean nothing" in warnings[0]
    assert "random" not in result.stdout  # the JSON on stdout stays machine-readable


# ---------------------------------------------------------------- exit statuses, as documented


def test_exit_statuses_are_those_documented(tiny_checkpoint: Path, tmp_path: Path) -> None:
    documented = exit_statuses()
    assert set(documented) == {0, 1, 2, 3, 130}
    ok = lychee("rerank", "--model", str(tiny_checkpoint), "-q", "q", "-d", "d")
    bad_argument = lychee("rerank", "--model", str(tiny_checkpoint), "-q", "q", "-d", "d", "--top-n", "0")
    no_model = lychee("rerank", "--model", str(tmp_path / "none"), "-q", "q", "-d", "d")
    no_vllm = lychee("vllm-serve", str(tiny_checkpoint))  # vLLM lives in its own environment: a missing extra
    assert [ok.returncode, bad_argument.returncode, no_model.returncode] == [0, 2, 3]
    if no_vllm.returncode != 1 or "lychee-integrations[vllm]" not in no_vllm.stderr:
        pytest.skip("vLLM is installed in this environment")
    assert "missing extra" in documented[1]
