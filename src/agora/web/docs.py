"""``/docs`` (Swagger UI) and ``/redoc`` served entirely from the package, so they work offline.

FastAPI's built-in pages load their scripts from a CDN; here ``create_app`` turns those off
(``docs_url=None, redoc_url=None``) and :func:`install` serves the same pages with the vendored
assets under ``/static`` (see ``static/VENDORED.md`` for versions and licences). Like the home
page, these pages and assets are public: they show the API's shape, never its data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"


def install(app: FastAPI) -> None:
    """Mount the vendored assets under ``/static`` and add ``/docs`` and ``/redoc``."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API documentation",
            swagger_js_url=f"{STATIC_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/swagger-ui/favicon-32x32.png",
            oauth2_redirect_url=None,  # keys are bearer tokens: no OAuth2 flow to return to
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - API reference",
            redoc_js_url=f"{STATIC_URL}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_URL}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
