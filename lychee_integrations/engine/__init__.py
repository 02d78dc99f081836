"""The in-process engine (the ``[engine]`` extra: torch, transformers).

``facade`` (:class:`LycheeReranker`: shared instances, lazy loading), ``scheduler``
(combining concurrent calls; the run plan of prefix groups, batches and prefetch),
``pairs`` (the pair encoder shared with the vLLM backend), ``model`` (loading and the
forward), ``batching``, ``prefix`` and ``processor``. Importing this package imports
neither torch nor transformers; creating a reranker checks they are installed.
"""

from lychee_integrations.engine.facade import LycheeReranker

__all__ = ["LycheeReranker"]
