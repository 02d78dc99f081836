"""The Swagger UI page at ``/docs``, with its script, style and icon served by this server.

FastAPI's own page makes the browser load Swagger UI from a CDN, which fails air-gapped.
The assets (Swagger UI 5, Apache-2.0) come from the ``fastapi-offline`` package (extra
``server``) and are served under :data:`DOCS_ASSETS`.
"""

from __future__ import annotations

from importlib.resources import files

from lychee_integrations._deps import require

require("fastapi_offline", "server")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.openapi.docs import get_swagger_ui_html  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402

__all__ = ["DOCS_ASSETS", "add_docs_page"]

#: Where the page's assets are served.
DOCS_ASSETS = "/docs-assets"


def add_docs_page(app: FastAPI, *, title: str, path: str = "/docs") -> None:
    """Serve the Swagger UI page for ``app``'s OpenAPI description at ``path``, assets included.

    Args:
        app: An app built with ``docs_url=None``.
        title: The page's title.
        path: Where the page lives.

    """
    assets = files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get(path, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title} - API docs",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # No online validator badge: the page makes no request beyond this server.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )
