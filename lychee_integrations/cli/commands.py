"""What each ``lychee`` sub-command does."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from lychee_integrations.cli.documents import (
    LabelledDocument,
    UsageError,
    describe,
    documents_from_args,
    query_from_args,
)
from lychee_integrations.errors import ConfigurationError, InvalidInputError, MissingDependencyError

if TYPE_CHECKING:
    from pathlib import Path

    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.scoring import Scorer
    from lychee_integrations.service.settings import ServiceSettings

__all__ = [
    "build_eval_scorer",
    "cmd_build_tiny",
    "cmd_eval",
    "cmd_rerank",
    "cmd_serve",
    "cmd_templates",
    "cmd_ui",
    "cmd_vllm_serve",
    "quiet_model_loading",
    "uvicorn_config",
]

logger = logging.getLogger(__name__)


def quiet_model_loading(verbose: int) -> None:
    """Without ``-v``, no progress bars or load-time notes of transformers and huggingface_hub.

    Loading ("Loading weights", "Loading checkpoint shards"), saving ("Writing model shards") and
    downloading draw tqdm bars on stderr; ``-v`` shows them, with transformers' warnings.
    """
    if verbose:
        return
    from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]  # lazily exported
    from transformers.utils import logging as transformers_logging

    disable_progress_bars()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in ("device", "dtype", "max_length", "batch_size")}


def _reranker(args: argparse.Namespace, **extra: Any) -> LycheeReranker:
    from lychee_integrations.config import default_model
    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.engine.facade import require_engine

    require_engine()  # a clear error naming the [engine] extra, before transformers is imported
    reranker = LycheeReranker(args.model or default_model(), **_engine_options(args), **extra)
    from lychee_integrations.engine.checkpoint import check_available

    config = reranker.config  # a model that cannot be had fails now, before torch and transformers load
    check_available(
        config.model, revision=config.revision, cache_dir=config.cache_dir, local_files_only=config.local_files_only
    )
    quiet_model_loading(args.verbose)  # keep the ranking table clean
    return reranker


def _explain(exc: InvalidInputError, documents: list[LabelledDocument]) -> str:
    lines = []
    for index, message in exc.problems:
        if index is not None and 0 <= index < len(documents):
            message = f"{documents[index].label}: {message}"
        lines.append(message)
    return "; ".join(lines)


def cmd_rerank(args: argparse.Namespace) -> int:
    """Rank the documents against the query and print a table or JSON."""
    from lychee_integrations.instructions import resolve_instruction
    from lychee_integrations.results import rank as rank_scores
    from lychee_integrations.results import score_band
    from lychee_integrations.scoring import refuse_empty

    try:
        resolve_instruction(args.task, args.instruction)
    except ConfigurationError as exc:
        raise UsageError(f"argument {'--task' if args.task is not None else '--instruction'}: {exc}") from exc
    query = query_from_args(args)
    documents = documents_from_args(args)
    reranker = _reranker(args)
    try:
        request = reranker.request(query, [d.value for d in documents], task=args.task, instruction=args.instruction)
        refuse_empty(request.documents)  # an empty line in a documents file is a mistake, not a document
        scored = reranker.score_request(request)
    except InvalidInputError as exc:
        raise UsageError(_explain(exc, documents)) from exc
    ranked = rank_scores(scored.scores, args.top_n)
    rows = [
        {
            "rank": rank,
            "index": result.index,
            "score": result.score,
            "band": score_band(result.score),
            "type": request.documents[result.index].kind,
            "source": documents[result.index].label,
            "document": describe(documents[result.index].value),
        }
        for rank, result in enumerate(ranked, start=1)
    ]
    if args.json:
        print(json.dumps({"model": reranker.model_name, "instruction": scored.instruction, "results": rows}, indent=2))
    else:
        header = f"{'rank':>4}  {'index':>5}  {'score':>6}  {'band':<7}  {'type':<10}  document"
        print(header)
        print("-" * len(header))
        for row in rows:
            print(
                f"{row['rank']:>4}  {row['index']:>5}  {row['score']:>6.4f}  {row['band']:<7}  "
                f"{row['type']:<10}  {row['document']}"
            )
    if reranker.is_random:
        print(
            f"lychee rerank: warning: {reranker.model_name} is a random tiny checkpoint (lychee build-tiny): "
            "its scores and ranking mean nothing",
            file=sys.stderr,
        )
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    """List the instruction templates."""
    from lychee_integrations.instructions import list_templates

    templates = list_templates()
    if args.json:
        print(json.dumps([t.__dict__ for t in templates], indent=2))
        return 0
    width = max(len(t.name) for t in templates)
    for t in templates:
        print(f"{t.name:<{width}}  {t.description}")
        print(f"{'':<{width}}  instruction: {t.instruction}")
    return 0


def cmd_build_tiny(args: argparse.Namespace) -> int:
    """Build a tiny offline checkpoint of the real architecture."""
    from lychee_integrations.engine.facade import require_engine

    require_engine()
    quiet_model_loading(args.verbose)
    from lychee_integrations.tiny import REAL_VOCAB_SIZE, build_tiny_checkpoint

    if args.path.exists() and not args.path.is_dir():
        raise UsageError(f"argument path: {args.path} exists and is not a directory")
    path = build_tiny_checkpoint(
        args.path,
        family=args.family,
        seed=args.seed,
        preset=args.preset,
        vocab_size=REAL_VOCAB_SIZE if args.real_vocab else None,
        real_tokenizer=args.real_tokenizer,
    )
    print(f"built a tiny offline {args.family} checkpoint in {path}")
    print(f'try: lychee rerank --model {path} --query "a cat" --doc "a cat on a mat" --doc "a red car"')
    return 0


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key_file is not None:
        try:
            key = str(args.api_key_file.read_text(encoding="utf-8")).strip()
        except OSError as exc:
            raise UsageError(f"argument --api-key-file: cannot read {args.api_key_file}: {exc.strerror}") from exc
        if not key:
            raise UsageError(f"argument --api-key-file: {args.api_key_file} is empty")
        return key
    if args.api_key is not None:
        if not args.api_key.strip():
            raise UsageError("argument --api-key: the key is empty")
        return str(args.api_key).strip()
    env_key = os.environ.get("LYCHEE_API_KEY")
    if env_key is None:
        return None
    if not env_key.strip():  # set but blank: serving without a key would not be what was meant
        raise UsageError("$LYCHEE_API_KEY is set but blank: give the key, or unset the variable")
    return env_key.strip()


def _settings(args: argparse.Namespace) -> ServiceSettings:
    from lychee_integrations.service.settings import ServiceSettings

    api_key = _api_key(args)
    same = (  # noqa: SIM905 - the options named as their settings
        "max_documents max_image_pixels max_images_per_item max_images_per_request max_request_pixels max_text_chars "
        "allow_remote_images image_root image_timeout max_concurrency served_model_name"
    ).split()
    try:
        return ServiceSettings(
            max_body_bytes=args.max_body_size,
            max_image_bytes=args.max_image_size,
            api_key=api_key,
            **{name: getattr(args, name) for name in same},
        )
    except ConfigurationError as exc:
        raise UsageError(f"argument --image-root: {exc}" if "image root" in str(exc) else str(exc)) from exc


_LOG_FORMAT = "%(levelname)s %(name)s [%(request_id)s]: %(message)s"


def uvicorn_config(app: Any, args: argparse.Namespace) -> Any:
    """Build the ``uvicorn.Config`` of ``lychee serve``/``ui`` from their parsed options.

    The server speaks HTTP/1.1 through h11, whose ``--max-header-size`` bounds the request line
    and headers; ``--limit-concurrency`` answers 503 beyond that many connections and requests,
    ``--timeout-keep-alive`` closes idle connections (also those that never send a complete request
    head: :class:`~lychee_integrations.service.connection.BoundedH11Protocol`), ``--backlog`` bounds
    the accept queue.
    """
    import uvicorn

    from lychee_integrations.service.connection import BoundedH11Protocol

    return uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http=BoundedH11Protocol,
        log_level="info" if args.verbose else "warning",
        log_config=None,  # records go to the root logger, with their request id
        timeout_graceful_shutdown=args.graceful_timeout,
        limit_concurrency=args.limit_concurrency,
        timeout_keep_alive=args.timeout_keep_alive,
        h11_max_incomplete_event_size=args.max_header_size,
        backlog=args.backlog,
    )


def _start(args: argparse.Namespace, *, ui: bool) -> int:
    from lychee_integrations._deps import require

    # The extra first, named: [server] for the API, [ui] for the page (it includes [server]); the engine's follows.
    extra = "ui" if ui else "server"
    uvicorn = require("uvicorn", extra)
    require("fastapi", extra)
    if ui:
        require("gradio", extra)
    from lychee_integrations.engine.facade import require_engine

    require_engine()
    quiet_model_loading(args.verbose)
    from lychee_integrations.service import service_reranker
    from lychee_integrations.service.request_id import install_log_records

    settings = _settings(args)
    reranker = service_reranker(
        settings,
        model=args.model,
        **_engine_options(args),
        vision_cache_bytes=args.vision_cache_mb * 2**20,
        prefix_cache_bytes=args.prefix_cache_mb * 2**20,
        score_cache_entries=args.score_cache_entries,
        score_cache_ttl=args.score_cache_ttl,
    )
    failure: list[BaseException] = []
    server: Any = None

    def on_load_failure(exc: BaseException) -> None:  # stop serving: a server without its model is no use
        failure.append(exc)
        if server is not None:
            server.should_exit = True

    preload = not args.no_preload
    if ui:
        from lychee_integrations.service.webui import create_ui_app

        app = create_ui_app(
            reranker, settings, with_api=args.with_api, load_model=preload, on_load_failure=on_load_failure
        )
    else:
        from lychee_integrations.service.app import create_app

        app = create_app(reranker, settings, load_model=preload, on_load_failure=on_load_failure)
    if args.host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        logger.warning("listening on %s without an API key: set --api-key-file or $LYCHEE_API_KEY", args.host)
    install_log_records()
    for handler in logging.getLogger().handlers:  # show each record's request id
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    where = f"http://{args.host}:{args.port}"
    page = f"{where}/ui/" if ui and args.with_api else f"{where}/"
    loading = " (loading the model; GET /ready says when it is done)" if preload else ""
    print(
        f"serving {reranker.model_name}: " + (f"web page at {page}" if ui else f"API docs at {where}/docs") + loading,
        flush=True,
    )
    server = uvicorn.Server(uvicorn_config(app, args))
    # uvicorn finishes the requests in flight on SIGTERM, then raises the signal again under the
    # handler that was in place before it started: with this one, a clean stop exits with 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server.run()
    if failure:
        raise failure[0]
    _exit_if_abandoned(app)
    return 0


def _exit_if_abandoned(app: Any) -> None:
    """Exit now when engine calls abandoned at shutdown still run: Python would wait for their threads."""
    runner = getattr(app.state, "engine_runner", None)
    running = getattr(runner, "running", 0)
    if running:
        logger.warning("exiting with %d abandoned engine call(s) still running", running)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the HTTP API."""
    return _start(args, ui=False)


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the web page (and the API with ``--with-api``)."""
    return _start(args, ui=True)


def cmd_vllm_serve(args: argparse.Namespace) -> int:
    """Run ``vllm serve`` with the checkpoint's recipe (runner, overrides, pixel bounds, generated score template)."""
    import importlib.util
    import shlex

    from lychee_integrations.vllm import serve_command

    command = serve_command(args.model, args.vllm_args, recipe=args.recipe)
    if args.print_command:
        print(shlex.join(command))
        return 0
    if importlib.util.find_spec("vllm") is None:
        raise MissingDependencyError(
            "vllm is required for this feature: pip install 'lychee-integrations[vllm]' "
            "(in its own environment: see docs/vllm.md)"
        )
    logger.warning("starting: %s", shlex.join(command))
    os.execv(command[0], command)
    return 0  # pragma: no cover - execv does not return


def build_eval_scorer(args: argparse.Namespace, dataset_root: Path) -> Scorer:
    """Build the Scorer ``lychee eval`` uses: the in-process engine, reading local images only inside the dataset.

    The one place that picks a backend from the arguments (a remote backend plugs in here).
    """
    from lychee_integrations.images import ImagePolicy

    policy = ImagePolicy(allow_remote=False, local_root=dataset_root.resolve())
    if args.base_url:
        from lychee_integrations.remote import RemoteReranker

        # The client reads the dataset's images and sends them; the server never sees these paths.
        return RemoteReranker(args.base_url, api_key=args.api_key, protocol=args.protocol, image_policy=policy)
    return _reranker(args, image_policy=policy)


def _eval_systems(args: argparse.Namespace) -> dict[str, tuple[str | None, str | None]]:
    from lychee_integrations.instructions import resolve_instruction

    if args.compare_templates:
        names = [name.strip() for name in args.compare_templates.split(",") if name.strip()]
        if not names:
            raise UsageError("argument --compare-templates: give template names separated by commas")
        if len(set(names)) != len(names):
            raise UsageError("argument --compare-templates: a template is named twice")
        systems: dict[str, tuple[str | None, str | None]] = {name: (name, None) for name in names}
    else:
        systems = {"reranked": (args.task, args.instruction)}
    for task, text in systems.values():
        try:
            resolve_instruction(task, text)
        except ConfigurationError as exc:
            option = "--compare-templates" if args.compare_templates else "--task" if task else "--instruction"
            raise UsageError(f"argument {option}: {exc}") from exc
    return systems


def cmd_eval(args: argparse.Namespace) -> int:
    """Rerank a dataset's first stage, print first stage vs reranked metrics, write JSON and runs."""
    from lychee_integrations._deps import require
    from lychee_integrations.eval import evaluate, load_dataset, read_run
    from lychee_integrations.eval.report import format_summary, write_outputs

    require("ir_measures", "eval")
    systems = _eval_systems(args)
    dataset = load_dataset(args.dataset, args.split)
    run = read_run(args.run, dataset) if args.run is not None else None
    scorer = build_eval_scorer(args, dataset.root)
    try:
        report = evaluate(
            dataset, scorer=scorer, run=run, top_k_docs=args.top_k, systems=systems, progress=not args.no_progress
        )
    except InvalidInputError as exc:
        raise UsageError(f"{args.dataset}: {exc}") from exc
    print(format_summary(report, args.format))
    written = write_outputs(report, output=args.output, save_run=args.save_run, tag="lychee", per_query=args.per_query)
    for path in written:
        print(f"wrote {path}", file=sys.stdout if args.format == "table" else sys.stderr)
    return 0
