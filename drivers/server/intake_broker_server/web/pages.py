"""The page itself (``/``), its static files (``/static/web/``), and ``/docs`` served from
files shipped in this package (Swagger UI 5, Apache-2.0, vendored under ``static/swagger``:
see its ``SOURCE.txt``; the PyPI ``swagger-ui-bundle`` has only Swagger UI 4, which cannot read
FastAPI's OpenAPI 3.1), so that both work with no internet access. Every URL in the HTML is
relative, so the page works under a reverse proxy's path prefix (an ASGI ``root_path``) too."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from ..auth.oidc import origin

#: The page's own files (HTML, JavaScript modules, CSS), shipped as package data.
STATIC = Path(str(resources.files("intake_broker_server.web") / "static"))

#: What the page may load and where it may connect: only this server, no inline script, no
#: plugin, not framed by another site.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def swagger_folder() -> Path | None:
    """Where Swagger UI's files are (None if a packager left them out: /docs then links to
    ``openapi.json``)."""
    folder = STATIC / "swagger"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


_DOCS = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>intake-broker API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="static/swagger/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="static/swagger/swagger-ui-bundle.js"></script>
<script src="static/web/docs.js"></script>
</body>
</html>
"""

_NO_DOCS = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>intake-broker API</title><link rel="icon" href="data:,"></head>
<body>
<main>
<h1>intake-broker API</h1>
<p>Swagger UI's files are not installed with this server. The API is described in
<a href="openapi.json">openapi.json</a>; the <a href="./">web page</a> browses the runs.</p>
</main>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Add the page, its files and the offline ``/docs`` to ``app`` (made with
    ``docs_url=None, redoc_url=None``)."""
    swagger = swagger_folder()
    if swagger is not None:
        app.mount("/static/swagger", StaticFiles(directory=swagger), name="swagger-static")
    app.mount("/static/web", StaticFiles(directory=STATIC), name="web-static")

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        """The web page (a static file: what it shows comes from the API, with the
        browser's credentials). With OpenID Connect configured, the page may also connect
        to the issuer's token endpoint (to exchange its login code), and nowhere else."""
        headers = SECURITY_HEADERS
        auth = getattr(request.app.state, "auth", None)
        oidc = None if auth is None else auth.config.oidc
        if oidc is not None:
            token_origin = origin(oidc.token_endpoint)
            headers = {
                **headers,
                "Content-Security-Policy": CSP.replace(
                    "connect-src 'self'", f"connect-src 'self' {token_origin}"
                ),
            }
        return HTMLResponse((STATIC / "index.html").read_text(), headers=headers)

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        """Swagger UI over ``/openapi.json``, from files this server ships."""
        page = _DOCS if swagger is not None else _NO_DOCS
        # Swagger UI sets inline styles on its elements
        headers = {
            **SECURITY_HEADERS,
            "Content-Security-Policy": CSP.replace(
                "style-src 'self'", "style-src 'self' 'unsafe-inline'"
            ),
        }
        return HTMLResponse(page, headers=headers)
