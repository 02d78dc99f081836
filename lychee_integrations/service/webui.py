"""The web page: a Gradio app to try the reranker by hand, alone or mounted on the HTTP API.

The page offers the instruction templates as presets, a query (text, image or both) and
documents (text blocks separated by a line ``---``, image uploads, or both), in two modes:
rank many documents, or score one (its text and images together). In rank mode a text block
holding a line ``image: NAME`` (the name of an uploaded image) is one text+image document,
and that upload is no document of its own. Results come as a table ordered by score, with the
score band (high above 0.7, partial from 0.4 to 0.7, low below 0.4) coloured for a glance,
and thumbnails of the image documents in rank order. A mistake in the input is said in the
summary and clears the previous results; it is no error of the server's and logs no traceback.

The page names the model as the API does (``--served-model-name``, else the hub id or the
checkpoint directory's name) and says so when it is a random checkpoint (``lychee build-tiny``).

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
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from lychee_integrations._deps import require

gr = require("gradio", "ui")
require("fastapi", "server")

from fastapi import FastAPI  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from lychee_integrations.errors import ConfigurationError, InvalidInputError  # noqa: E402
from lychee_integrations.inputs import RerankInput  # noqa: E402
from lychee_integrations.instructions import DEFAULT_TASK, get_template, list_templates  # noqa: E402
from lychee_integrations.results import score_band  # noqa: E402
from lychee_integrations.scoring import Scorer  # noqa: E402
from lychee_integrations.service.auth import key_matches  # noqa: E402
from lychee_integrations.service.middleware import BodySizeLimitMiddleware  # noqa: E402
from lychee_integrations.service.readiness import ModelState  # noqa: E402
from lychee_integrations.service.settings import ServiceSettings, default_served_name  # noqa: E402

__all__ = ["COLUMNS", "MODES", "attached_images", "build_ui", "create_ui_app", "random_checkpoint", "split_documents"]

logger = logging.getLogger(__name__)

#: The two modes of the page.
MODES = ("Rerank documents", "Score one document")
#: Columns of the results table.
COLUMNS = ["Rank", "Score", "Band", "Type", "Document"]
_CUSTOM = "custom"
_SEPARATOR = re.compile(r"^[ \t]*---[ \t]*$", re.MULTILINE)
_IMAGE_LINE = re.compile(r"^[ \t]*image:[ \t]*(.+?)[ \t]*$", re.MULTILINE | re.IGNORECASE)
_THUMBNAIL = 160
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


class _Mistake(Exception):
    """A mistake in the page's input: said in the summary, never logged as a server error."""


def attached_images(block: str) -> tuple[str, list[str]]:
    r"""Split a documents block into its text and the names of the uploads its ``image: NAME`` lines attach.

    Example:
        >>> attached_images("Red shoe, light sole\nimage: shoe.png")
        ('Red shoe, light sole', ['shoe.png'])

    """
    names = [m.group(1) for m in _IMAGE_LINE.finditer(block)]
    return _IMAGE_LINE.sub("", block).strip(), names


def _thumbnail(data: bytes) -> Any:
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(data)) as image:
        image.thumbnail((_THUMBNAIL, _THUMBNAIL))
        return image.convert("RGB")


def random_checkpoint(model: str) -> bool:
    """Whether ``model`` names a local checkpoint of random weights (``lychee build-tiny`` marks its config).

    Read off ``config.json`` without loading the model; a hub id is never a random checkpoint.
    """
    import json

    from lychee_integrations.engine.checkpoint import RANDOM_MARKER

    config = Path(model).expanduser() / "config.json"
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get(RANDOM_MARKER, False))
    except (OSError, ValueError, AttributeError):
        return False


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

    def _documents(self, mode: str, text: str | None, files: Any) -> tuple[list[RerankInput], list[str], list[Any]]:
        paths = _paths(files)
        names = [Path(p).name for p in paths]
        # Uploaded files are read here and decoded by the engine's loader, under its limits.
        images = dict(zip(names, (Path(p).read_bytes() for p in paths), strict=True))
        if mode == MODES[1]:
            single = RerankInput(text=(text or "").strip() or None, images=tuple(images.values()))
            if single.kind == "empty":
                raise _Mistake("Give the document to score: text, an image, or both.")
            return [single], [_preview(single, names)], [next(iter(images.values()), None)]
        documents: list[RerankInput] = []
        previews: list[str] = []
        attached: set[str] = set()
        for number, block in enumerate(split_documents(text), start=1):
            body, wanted = attached_images(block)
            missing = [name for name in wanted if name not in images]
            if missing:
                raise _Mistake(
                    f"Text block {number} attaches {', '.join(missing)}, which is not among the uploaded images "
                    f"({', '.join(names) or 'none uploaded'})."
                )
            attached.update(wanted)
            documents.append(RerankInput(text=body or None, images=tuple(images[name] for name in wanted)))
            previews.append(_preview(documents[-1], wanted))
        for name, data in images.items():
            if name not in attached:
                documents.append(RerankInput(images=(data,)))
                previews.append(_preview(documents[-1], [name]))
        if not documents:
            raise _Mistake("Add documents: text blocks separated by a line '---', image uploads, or both.")
        if len(documents) > self.max_documents:
            raise _Mistake(f"{len(documents)} documents given; this page takes at most {self.max_documents}.")
        return documents, previews, [d.images[0] if d.images else None for d in documents]

    def run(
        self,
        mode: str,
        instruction: str | None,
        query_text: str | None,
        query_image: str | None,
        documents_text: str | None,
        document_files: Any,
    ) -> tuple[Any, str, list[tuple[Any, str]]]:
        """Score or rank: the results table, the summary and the thumbnails of the image documents.

        A mistake in the input clears the previous results and says what is wrong in the summary;
        it is no server error (nothing is raised, nothing logged as a traceback).
        """
        try:
            query = RerankInput(
                text=query_text or None, images=(Path(query_image).read_bytes(),) if query_image else ()
            )
            if query.kind == "empty":
                raise _Mistake("Give a query: text, an image, or both.")
            documents, previews, pictures = self._documents(mode, documents_text, document_files)
            ranked = self.reranker.rerank(query, documents, instruction=(instruction or "").strip() or None)
        except (_Mistake, InvalidInputError, ConfigurationError) as exc:
            return self._cleared(str(exc))
        except OSError as exc:
            return self._cleared(f"cannot read an uploaded file: {exc.strerror or exc}")
        thumbnails = [
            (_thumbnail(picture), f"#{rank} · {r.score:.4f} · {previews[r.index]}")
            for rank, r in enumerate(ranked, start=1)
            if (picture := pictures[r.index]) is not None
        ]
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
        return _table(rows), summary, thumbnails

    @staticmethod
    def _cleared(message: str) -> tuple[Any, str, list[tuple[Any, str]]]:
        logger.info("web page input refused: %s", message)
        return _table([]), f"**Error:** {message}", []


def build_ui(
    reranker: Scorer, *, max_documents: int = 100, model_name: str | None = None, random_weights: bool = False
) -> Any:
    """Build the Gradio page (a ``gr.Blocks``) around a reranker.

    Args:
        reranker: The engine (see :class:`~lychee_integrations.scoring.Scorer`).
        max_documents: Most documents one run may rank.
        model_name: The model's name on the page, as the API serves it (default: ``reranker.model_name``).
        random_weights: Show a banner: the model is a random checkpoint, its scores mean nothing.

    Returns:
        The ``gr.Blocks``; mount it with :func:`create_ui_app` or ``gr.mount_gradio_app``.

    """
    page = _Page(reranker, max_documents)
    choices = [(f"{t.name}: {t.description}" if t.description else t.name, t.name) for t in list_templates()]
    choices.append(("custom (write your own instruction)", _CUSTOM))
    with gr.Blocks(title="Lychee reranker", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# Lychee multimodal reranker\nModel: `{model_name or reranker.model_name}`. Scores are P(yes) in "
            "[0, 1]: **high** above 0.7, **partial** 0.4 to 0.7, **low** below 0.4.",
            elem_id="model",
        )
        if random_weights:
            gr.Markdown(
                "**This model is a random tiny checkpoint** (`lychee build-tiny`): it runs the real code path, "
                "but its scores and rankings mean nothing.",
                elem_id="random-banner",
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
                    label="Documents: text blocks separated by a line '---'; a line 'image: NAME' attaches "
                    "the uploaded image NAME to its block (in score mode: the one document's text)",
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
        thumbnails = gr.Gallery(
            label="Image documents, best first", columns=6, height="auto", elem_id="thumbnails", show_label=True
        )
        template.change(_instruction_for, inputs=template, outputs=instruction)
        run.click(
            page.run,
            inputs=[mode, instruction, query_text, query_image, documents_text, document_files],
            outputs=[results, summary, thumbnails],
        )
    return demo


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
    name = settings.served_model_name or default_served_name(reranker.model_name)
    if with_api:
        from lychee_integrations.service.app import create_app

        app = create_app(reranker, settings, home="/ui/", load_model=load_model, on_load_failure=on_load_failure)
        app.state.auth.open_prefix("/ui")  # the page has its own login form
        path = "/ui"
    else:
        state = ModelState(reranker, on_failure=on_load_failure)

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
    demo = build_ui(
        reranker,
        max_documents=settings.max_documents,
        model_name=name,
        random_weights=random_checkpoint(reranker.model_name),
    )
    demo.queue(default_concurrency_limit=settings.max_concurrency)
    login: dict[str, Any] = {}
    if (key := settings.api_key) is not None:  # any user name, the key as the password, compared in constant time
        login = {
            "auth": lambda username, password: key_matches(password or "", key),
            "auth_message": "Enter the server's API key as the password (any user name).",
        }
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
        **login,
    )
