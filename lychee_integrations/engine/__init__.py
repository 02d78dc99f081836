"""The in-process engine (the ``[engine]`` extra: torch, transformers).

``facade`` (:class:`LycheeReranker`: shared instances, lazy loading), ``scheduler``
(combining concurrent calls; the run plan of prefix groups, batches and prefetch),
``pairs`` (the pair encoder shared with the vLLM backend), ``model`` (loading and the
forward), ``shortcuts`` (work in the forward whose result the score never reads, skipped),
``prefix`` and ``prefix_attention`` (the shared token prefix, read once), ``caches`` (the
caches that outlive a call), ``batching``, ``checkpoint`` (where a checkpoint comes from)
and ``processor``. Importing this package imports neither torch nor transformers; creating
a reranker checks they are installed.
"""

from lychee_integrations.engine.facade import LycheeReranker

__all__ = ["LycheeReranker"]
