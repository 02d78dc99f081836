"""Readiness: whether the model is in memory, and loading it in the background at start-up.

``lychee serve`` binds its port at once (so ``/health`` answers for liveness probes) and
loads the model in a background thread; ``/ready`` answers 503 until the load is done, then
200. Requests that arrive during the load wait for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal

from lychee_integrations.scoring import Scorer

__all__ = ["ModelState", "State"]

logger = logging.getLogger(__name__)

#: What :attr:`ModelState.state` reports.
State = Literal["ready", "loading", "failed"]


class ModelState:
    """Tracks the loading of one scorer's model.

    A scorer without ``load``/``is_loaded`` (a remote or fake scorer) is always ready.
    Without :meth:`start_loading` the state is ``ready``: the engine then loads on the
    first request (``--no-preload``), and a load balancer must still route to it.

    Args:
        scorer: The engine.
        on_failure: Called with the exception if the background load fails (``lychee
            serve`` stops the server then).

    """

    def __init__(self, scorer: Scorer, on_failure: Callable[[BaseException], None] | None = None) -> None:
        self._scorer = scorer
        self._on_failure = on_failure
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (``True`` for scorers without a model)."""
        return bool(getattr(self._scorer, "is_loaded", True))

    @property
    def state(self) -> State:
        """``loading`` while the background load runs, ``failed`` after it failed, else ``ready``."""
        if self.error is not None:
            return "failed"
        if self._thread is not None and self._thread.is_alive() and not self.loaded:
            return "loading"
        return "ready"

    def start_loading(self) -> None:
        """Load the model in a background thread (no-op if loaded, loading, or nothing to load)."""
        load = getattr(self._scorer, "load", None)
        if load is None or self.loaded or self._thread is not None:
            return

        def run() -> None:
            try:
                load()
                logger.info("model %s loaded", self._scorer.model_name)
            except BaseException as exc:
                self.error = exc
                logger.error("cannot load the model %s: %s", self._scorer.model_name, exc)
                if self._on_failure is not None:
                    self._on_failure(exc)

        self._thread = threading.Thread(target=run, name="lychee-model-load", daemon=True)
        self._thread.start()
