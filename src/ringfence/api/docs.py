"""``/api/docs``: Swagger UI for the HTTP API, served by Ringfence itself.

FastAPI's own docs page loads Swagger UI from a CDN and starts it with an inline script;
Ringfence's Content-Security-Policy (``script-src 'self'``, ``style-src 'self'``)
rightly blocks both, so the page was blank. Relaxing the policy for one page would
weaken it for no good reason. Instead Swagger UI's files come from a pinned Python
package (``fastapi-offline``, which ships Swagger UI 5's bundle and stylesheet) and are
served from this origin, and the page starts Swagger UI from a script file of its own,
so the page works under the very same policy as every other.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

DOCS_PATH = "/api/docs"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
# A week: the files change only with the pinned package, which is also in the URL's
# meaning (a new Ringfence); revalidate after that.
ASSET_CACHE = "public, max-age=604800"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ringfence API</title>
<link rel="icon" href="{DOCS_PATH}/assets/favicon.png">
<link rel="stylesheet" href="{DOCS_PATH}/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_PATH}/assets/swagger-ui-bundle.js"></script>
<script src="{DOCS_PATH}/init.js"></script>
</body>
</html>
"""


def swagger_ui_dir() -> Path:
    """Where the pinned package keeps Swagger UI's files."""
    return Path(str(files("fastapi_offline") / "static"))


def docs_router(openapi_url: str) -> APIRouter:
    """The docs page, its start-up script and Swagger UI's files; not in the schema."""
    router = APIRouter(include_in_schema=False)
    assets = swagger_ui_dir()
    options = json.dumps(
        {
            "url": openapi_url,
            "dom_id": "#swagger-ui",
            "layout": "BaseLayout",
            "deepLinking": True,
            "validatorUrl": None,  # the default sends the schema to a public validator
        }
    )
    init = (
        f"window.ui = SwaggerUIBundle(Object.assign({options}, "
        "{presets: [SwaggerUIBundle.presets.apis]}));\n"
    )

    @router.get(DOCS_PATH)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @router.get(f"{DOCS_PATH}/init.js")
    async def start_script() -> Response:
        return Response(init, media_type="text/javascript; charset=utf-8")

    for name, media_type in ASSETS.items():
        router.add_api_route(
            f"{DOCS_PATH}/assets/{name}", _asset(assets / name, media_type), methods=["GET"]
        )
    return router


def _asset(path: Path, media_type: str) -> Callable[[], Awaitable[FileResponse]]:
    async def serve() -> FileResponse:
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": ASSET_CACHE})

    return serve
