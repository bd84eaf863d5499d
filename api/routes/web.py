"""The web page at `/`: upload scans, ask, and see the cited regions on the page images; and
the API's documentation pages, `/docs` (Swagger UI) and `/redoc`.

The pages hold no data, so they need no API key; every /v1 call the web page makes sends the
key the user typed. Everything they load is served by the app itself — the web page from
`api/static/`, the documentation from the files `fastapi-offline` installs — never from a
CDN, since a script loaded here runs with this origin's rights (the key the page keeps
included); their Content-Security-Policy keeps it that way.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, HTTPException, status
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent.parent / "static"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
}
DOC_FILES = Path(fastapi_offline.__file__).resolve().parent / "static"
DOC_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
DOC_HEADERS = {  # Swagger UI and ReDoc start from inline scripts and styles
    **HEADERS,
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
}


@router.get("/")
def index_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/static/{name}")
def static_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no static file {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="scanrag - Swagger UI",
        swagger_js_url="/docs/static/swagger-ui-bundle.js",
        swagger_css_url="/docs/static/swagger-ui.css",
        swagger_favicon_url="/docs/static/favicon.png",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_ui_parameters={"validatorUrl": None},  # no badge from swagger.io
    )
    page.headers.update(DOC_HEADERS)
    return page


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc() -> HTMLResponse:
    page = get_redoc_html(
        openapi_url="/openapi.json",
        title="scanrag - ReDoc",
        redoc_js_url="/docs/static/redoc.standalone.js",
        redoc_favicon_url="/docs/static/favicon.png",
        with_google_fonts=False,
    )
    page.headers.update(DOC_HEADERS)
    return page


@router.get("/docs/static/{name}")
def doc_asset(name: str) -> FileResponse:
    if name not in DOC_ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no documentation file {name!r}")
    return FileResponse(DOC_FILES / name, media_type=DOC_ASSETS[name], headers=DOC_HEADERS)
