"""The API reference page: Swagger UI from the pip-installed `swagger-ui-bundle-v2` (no
CDN), served by the node, reading the node's own OpenAPI document (/api/v1/openapi.json)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from live.web.overlay_pages import page_response

__all__ = ["docs_routes", "DOCS_CSP"]

# Swagger UI sets inline style attributes (React); scripts stay the node's own files.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")


async def docs_page(request: Request) -> Response:
    response = page_response(request, "api_docs", "")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


def docs_routes() -> list[Route | Mount]:
    assets = StaticFiles(directory=str(Path(str(swagger_ui_path))))
    return [Route("/docs", docs_page, methods=["GET"]),
            Mount("/docs/assets", app=assets, name="docs-assets")]
