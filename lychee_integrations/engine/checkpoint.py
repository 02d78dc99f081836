"""Where a checkpoint comes from, decided before transformers tries: a directory, the cache, or the Hub.

A first run without network access should fail in seconds with one message that says what to
do, not after a minute of retries: a path that names no directory is said to be missing, and a
hub id that is neither cached nor reachable (one short probe; none when offline is set) is
refused at once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lychee_integrations.errors import ModelUnavailableError

__all__ = ["RANDOM_MARKER", "check_available"]

logger = logging.getLogger(__name__)

#: Key that ``lychee build-tiny`` writes into a random checkpoint's ``config.json``.
RANDOM_MARKER = "lychee_random_weights"
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_PROBE_SECONDS = 5.0
_WHAT_TO_DO = (
    "build an offline checkpoint with `lychee build-tiny DIR` and pass `--model DIR` (or set LYCHEE_MODEL=DIR), "
    "or give a local copy of the model"
)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or os.sep in model.strip("/").split("/", 1)[-1] or model.count("/") > 1


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in _OFFLINE_VARIABLES)


def check_available(model: str, *, revision: str | None, cache_dir: str | None, local_files_only: bool) -> None:
    """Refuse, at once, a checkpoint that cannot be had here.

    Raises:
        ModelUnavailableError: ``model`` looks like a path and no such directory exists, or it is a
            hub id that is not cached while the Hub is unreachable or offline mode is set.

    """
    path = Path(model).expanduser()
    if path.is_dir():
        return
    if _looks_like_path(model) or path.exists():
        raise ModelUnavailableError(f"no checkpoint directory at {model!r}; {_WHAT_TO_DO}")
    import huggingface_hub

    cached = huggingface_hub.try_to_load_from_cache(model, "config.json", cache_dir=cache_dir, revision=revision)
    if isinstance(cached, str):
        return
    if local_files_only or _offline():
        why = "local_files_only is set" if local_files_only else "offline mode is set (HF_HUB_OFFLINE)"
        raise ModelUnavailableError(f"model {model!r} is not in the Hugging Face cache and {why}; {_WHAT_TO_DO}")
    import httpx

    endpoint = huggingface_hub.constants.ENDPOINT.rstrip("/")
    try:
        httpx.head(f"{endpoint}/api/models/{model}", timeout=_PROBE_SECONDS, follow_redirects=True)
    except httpx.TransportError as exc:
        logger.debug("hub probe of %s failed", endpoint, exc_info=True)
        raise ModelUnavailableError(
            f"model {model!r} is not in the Hugging Face cache and {endpoint} cannot be reached "
            f"({type(exc).__name__}); {_WHAT_TO_DO}; set HF_HUB_OFFLINE=1 to skip this probe of the Hub"
        ) from None
