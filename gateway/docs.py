"""The interactive API docs (Swagger UI at /docs), with a Content-Security-Policy of their own.

The API's policy (`default-src 'none'`) would leave the docs page blank: it
loads Swagger UI's script and stylesheet from jsDelivr, starts it with an
inline script and fetches /openapi.json. The page is rendered once here, and
its policy allows exactly that: the CDN for script and style, the inline
script by its SHA-256 (not `'unsafe-inline'` for scripts), inline styles
(Swagger UI sets style attributes), images from itself, `data:` and the
favicon's host, and fetches to this origin only. Framing stays forbidden.
OAuth2 redirects are off: the API takes bearer tokens pasted into the page.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

DOCS_PATH = "/docs"
SWAGGER_JS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_CSS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
FAVICON = "https://fastapi.tiangolo.com/img/favicon.png"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def inline_script_hashes(html: str) -> list[str]:
    """CSP source expressions ('sha256-...') for each inline <script> of a page."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def docs_csp(html: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src https://cdn.jsdelivr.net {' '.join(inline_script_hashes(html))}",
            "style-src https://cdn.jsdelivr.net 'unsafe-inline'",
            "img-src 'self' data: https://fastapi.tiangolo.com",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def install_docs(app: FastAPI, *, openapi_url: str) -> None:
    """Serve Swagger UI at /docs; create the app with `docs_url=None`."""
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=SWAGGER_JS,
        swagger_css_url=SWAGGER_CSS,
        swagger_favicon_url=FAVICON,
        oauth2_redirect_url=None,
    )
    html = bytes(page.body).decode()
    headers = {"Content-Security-Policy": docs_csp(html), "Cache-Control": "no-cache"}

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)
