"""The web page: a Gradio app to try the reranker by hand, alone or mounted on the HTTP API.

The page offers the instruction templates as presets, a query (text, image or both) and
documents (text blocks separated by a line ``---``, image uploads, or both), in two modes:
rank many documents, or score one (its text and images together). Results come as a table
ordered by score, with the score band (high above 0.7, partial from 0.4 to 0.7, low below
0.4) coloured for a glance.

Gradio is told not to reach the internet: analytics are off and no share link is made.

Example:
    >>> from lychee_integrations.service import ServiceSettings, create_ui_app, service_reranker
    >>> settings = ServiceSettings()
    >>> app = create_ui_app(service_reranker(settings), settings, with_api=True)  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=7860)

"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from lychee_integrations._deps import require

gr = require("gradio", "ui")
require("fastapi", "server")

from fastapi import FastAPI  # noqa: E402

from lychee_integrations.errors import ConfigurationError, InvalidInputError  # noqa: E402
from lychee_integrations.inputs import RerankInput  # noqa: E402
from lychee_integrations.instructions import DEFAULT_TASK, get_template, list_templates  # noqa: E402
from lychee_integrations.results import score_band  # noqa: E402
from lychee_integrations.scoring import Scorer  # noqa: E402
from lychee_integrations.service.middleware import BodySizeLimitMiddleware  # noqa: E402
from lychee_integrations.service.settings import ServiceSettings  # noqa: E402

__all__ = ["COLUMNS", "MODES", "build_ui", "create_ui_app", "split_documents"]

logger = logging.getLogger(__name__)

#: The two modes of the page.
MODES = ("Rerank documents", "Score one document")
#: Columns of the results table.
COLUMNS = ["Rank", "Score", "Band", "Type", "Document"]
_CUSTOM = "custom"
_SEPARATOR = re.compile(r"^[ \t]*---[ \t]*$", re.MULTILINE)
_BAND_COLOURS = {"high": "#c6efce", "partial": "#ffeb9c", "low": "#ffc7ce"}
_PREVIEW = 90


def split_documents(text: str | None) -> list[str]:
    r"""Split the documents box into documents: blocks separated by a line holding ``---``.

    Blank blocks are dropped and each block is stripped.

    Example:
        >>> split_documents("a cat\n---\na dog\n---\n")
        ['a cat', 'a dog']

    """
    if not text:
        return []
    return [block.strip() for block in _SEPARATOR.split(text) if block.strip()]


def _paths(files: Any) -> list[str]:
    if not files:
        return []
    items = files if isinstance(files, list) else [files]
    return [str(getattr(item, "name", item)) for item in items]


def _image_bytes(path: str) -> bytes:
    # Uploaded files are read here and decoded by the engine's loader, under its limits.
    return Path(path).read_bytes()


def _preview(value: RerankInput, names: list[str]) -> str:
    parts = [f"[image: {name}]" for name in names]
    if value.text and value.text.strip():
        text = " ".join(value.text.split())
        parts.append(text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…")
    return " ".join(parts)


def _table(rows: list[list[Any]]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.style.format({"Score": "{:.4f}"}).map(
        lambda band: f"background-color: {_BAND_COLOURS.get(band, 'transparent')}; color: #111", subset=["Band"]
    )


def _instruction_for(template: str | None) -> str:
    if not template or template == _CUSTOM:
        return ""
    return get_template(template).instruction


class _Page:
    """The page's callback: inputs in, a results table and a summary out."""

    def __init__(self, reranker: Scorer, max_documents: int) -> None:
        self.reranker = reranker
        self.max_documents = max_documents

    def _query(self, text: str | None, image: str | None) -> RerankInput:
        images = (_image_bytes(image),) if image else ()
        return RerankInput(text=text or None, images=images)

    def _documents(self, mode: str, text: str | None, files: Any) -> tuple[list[RerankInput], list[str]]:
        paths = _paths(files)
        names = [Path(p).name for p in paths]
        images = [_image_bytes(p) for p in paths]
        if mode == MODES[1]:
            single = RerankInput(text=(text or "").strip() or None, images=tuple(images))
            if single.kind == "empty":
                raise gr.Error("Give the document to score: text, an image, or both.")
            return [single], [_preview(single, names)]
        documents = [RerankInput(text=block) for block in split_documents(text)]
        previews = [_preview(d, []) for d in documents]
        for name, data in zip(names, images, strict=True):
            documents.append(RerankInput(images=(data,)))
            previews.append(_preview(documents[-1], [name]))
        if not documents:
            raise gr.Error("Add documents: text blocks separated by a line '---', image uploads, or both.")
        if len(documents) > self.max_documents:
            raise gr.Error(f"{len(documents)} documents given; this page takes at most {self.max_documents}.")
        return documents, previews

    def run(
        self,
        mode: str,
        instruction: str | None,
        query_text: str | None,
        query_image: str | None,
        documents_text: str | None,
        document_files: Any,
    ) -> tuple[Any, str]:
        """Score or rank; errors in the input are shown on the page, never as a traceback."""
        try:
            query = self._query(query_text, query_image)
            if query.kind == "empty":
                raise gr.Error("Give a query: text, an image, or both.")
            documents, previews = self._documents(mode, documents_text, document_files)
            ranked = self.reranker.rerank(query, documents, instruction=(instruction or "").strip() or None)
        except (InvalidInputError, ConfigurationError) as exc:
            raise gr.Error(str(exc)) from exc
        except OSError as exc:
            raise gr.Error(f"cannot read an uploaded file: {exc.strerror or exc}") from exc
        rows = [
            [rank, round(r.score, 4), score_band(r.score), documents[r.index].kind, previews[r.index]]
            for rank, r in enumerate(ranked, start=1)
        ]
        if mode == MODES[1]:
            score = ranked[0].score
            summary = f"**Score: {score:.4f}** ({score_band(score)})"
        else:
            counts = {band: sum(row[2] == band for row in rows) for band in ("high", "partial", "low")}
            summary = f"**{len(rows)} documents ranked**: " + ", ".join(f"{n} {band}" for band, n in counts.items())
        return _table(rows), summary


def build_ui(reranker: Scorer, *, max_documents: int = 100) -> Any:
    """Build the Gradio page (a ``gr.Blocks``) around a reranker.

    Args:
        reranker: The engine (see :class:`~lychee_integrations.scoring.Scorer`).
        max_documents: Most documents one run may rank.

    Returns:
        The ``gr.Blocks``; mount it with :func:`create_ui_app` or ``gr.mount_gradio_app``.

    """
    page = _Page(reranker, max_documents)
    choices = [(f"{t.name}: {t.description}" if t.description else t.name, t.name) for t in list_templates()]
    choices.append(("custom (write your own instruction)", _CUSTOM))
    with gr.Blocks(title="Lychee reranker", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# Lychee multimodal reranker\nModel: `{reranker.model_name}`. Scores are P(yes) in [0, 1]: "
            "**high** above 0.7, **partial** 0.4 to 0.7, **low** below 0.4."
        )
        with gr.Row():
            template = gr.Dropdown(choices, value=DEFAULT_TASK, label="Instruction preset", elem_id="template")
            mode = gr.Radio(list(MODES), value=MODES[0], label="Mode", elem_id="mode")
        instruction = gr.Textbox(
            value=_instruction_for(DEFAULT_TASK), label="Instruction", lines=2, elem_id="instruction"
        )
        with gr.Row():
            with gr.Column():
                query_text = gr.Textbox(label="Query text", lines=3, elem_id="query-text")
                query_image = gr.Image(type="filepath", label="Query image (optional)", elem_id="query-image")
            with gr.Column():
                documents_text = gr.Textbox(
                    label="Documents: text blocks separated by a line '---' (in score mode: the one document's text)",
                    lines=8,
                    elem_id="documents-text",
                )
                document_files = gr.File(
                    file_count="multiple",
                    file_types=["image"],
                    type="filepath",
                    label="Document images (each one a document; in score mode: the document's images)",
                    elem_id="document-images",
                )
        run = gr.Button("Run", variant="primary", elem_id="run")
        summary = gr.Markdown(elem_id="summary")
        results = gr.Dataframe(headers=COLUMNS, label="Results, best first", interactive=False, elem_id="results")
        template.change(_instruction_for, inputs=template, outputs=instruction)
        run.click(
            page.run,
            inputs=[mode, instruction, query_text, query_image, documents_text, document_files],
            outputs=[results, summary],
        )
    return demo


def _login(api_key: str) -> Any:
    """Gradio's login check: any user name, the API key as the password (compared in constant time)."""
    from lychee_integrations.service.auth import key_matches

    def check(username: str, password: str) -> bool:
        return key_matches(password or "", api_key)

    return check


def create_ui_app(
    reranker: Scorer,
    settings: ServiceSettings | None = None,
    *,
    with_api: bool = False,
    load_model: bool = False,
    on_load_failure: Any = None,
) -> FastAPI:
    """Serve the web page, at ``/``, or at ``/ui`` next to the HTTP API when ``with_api``.

    With ``settings.api_key`` set, the page shows a login form: any user name, the API key
    as the password (a browser cannot send a bearer header by itself); the API routes take
    the key as ``Authorization: Bearer <key>``.

    Args:
        reranker: The engine, usually from :func:`~lychee_integrations.service.service_reranker`.
        settings: Limits (documents per run, body and upload size); defaults when ``None``.
        with_api: Also serve ``/api/rerank``, ``/v1/rerank`` and the API docs; the page then
            lives at ``/ui`` and ``/`` redirects there.
        load_model: Load the model in the background at start; ``/ready`` says when it is done.
        on_load_failure: Called with the exception if that load fails.

    Returns:
        A FastAPI application to run with uvicorn.

    """
    settings = settings or ServiceSettings()
    if with_api:
        from lychee_integrations.service.app import create_app

        app = create_app(reranker, settings, home="/ui/", load_model=load_model, on_load_failure=on_load_failure)
        app.state.auth.open_prefix("/ui")  # the page has its own login form
        path = "/ui"
    else:
        from contextlib import asynccontextmanager

        from fastapi.responses import JSONResponse

        from lychee_integrations.service.readiness import ModelState
        from lychee_integrations.service.settings import default_served_name

        state = ModelState(reranker, on_failure=on_load_failure)
        name = settings.served_model_name or default_served_name(reranker.model_name)

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> Any:
            if load_model:
                state.start_loading()
            yield

        app = FastAPI(
            title="Lychee reranker web page", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
        )
        app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)

        @app.get("/health", include_in_schema=False)
        async def health() -> dict[str, str]:
            return {"status": "ok", "model": name}

        @app.get("/ready", include_in_schema=False)
        async def ready() -> JSONResponse:
            current = state.state
            body = {"status": current, "model": name, "model_loaded": state.loaded}
            return JSONResponse(body, status_code=200 if current == "ready" else 503)

        path = "/"
    demo = build_ui(reranker, max_documents=settings.max_documents)
    demo.queue(default_concurrency_limit=settings.max_concurrency)
    return gr.mount_gradio_app(  # type: ignore[no-any-return]
        app,
        demo,
        path=path,
        theme=gr.themes.Default(),
        max_file_size=settings.max_image_bytes,
        ssr_mode=False,
        run_history=False,
        footer_links=[],
        show_error=True,
        auth=_login(settings.api_key) if settings.api_key is not None else None,
        auth_message="Enter the server's API key as the password (any user name)."
        if settings.api_key is not None
        else None,
    )
