"""The participatory map page, ``GET /map``, and the files it loads.

Everything the page needs is served here: its own HTML, JS and CSS from ``api/static/`` and
MapLibre GL JS from ``web/node_modules`` (installed from the npm registry by ``make install``,
pinned by ``web/package-lock.json``). The page asks nothing of any other server: no CDN, no
outside base map, no glyphs or sprites; its style reads the engine's own vector tiles.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse, HTMLResponse

from api.problems import SECURITY_HEADERS
from contracts.errors import NotFound, Unavailable
from contracts.spaces import TOOL_LABELS

STATIC = Path(__file__).resolve().parent / "static"
MAPLIBRE_DIST = (
    Path(__file__).resolve().parent.parent / "web" / "node_modules" / "maplibre-gl" / "dist"
)

# The browser may fetch from this origin only (workers: MapLibre starts its own from a blob).
CSP = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "worker-src 'self' blob:",
        "child-src 'self' blob:",
        "connect-src 'self'",
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", **SECURITY_HEADERS}

# Path in the URL -> (folder, file, media type). Nothing outside this table is served.
ASSETS: dict[str, tuple[Path, str, str]] = {
    "map.js": (STATIC, "map.js", "text/javascript; charset=utf-8"),
    "map.css": (STATIC, "map.css", "text/css; charset=utf-8"),
    "maplibre-gl.js": (MAPLIBRE_DIST, "maplibre-gl.js", "text/javascript; charset=utf-8"),
    "maplibre-gl.js.map": (MAPLIBRE_DIST, "maplibre-gl.js.map", "application/json"),
    "maplibre-gl.css": (MAPLIBRE_DIST, "maplibre-gl.css", "text/css; charset=utf-8"),
}

router = APIRouter(include_in_schema=False)


def _missing_maplibre() -> Unavailable:
    return Unavailable(
        "the map page needs MapLibre GL JS, which is not installed "
        f"({MAPLIBRE_DIST / 'maplibre-gl.js'} is missing): run `make install`",
    )


def _labels_json() -> str:
    """The French tool labels for the page's script, safe inside an HTML ``<script>``."""
    labels = {tool.value: label for tool, label in TOOL_LABELS.items()}
    return json.dumps(labels, ensure_ascii=False).replace("<", "\\u003c").replace("&", "\\u0026")


def _asset_url(name: str) -> str:
    """The file's URL with a token that changes with the file, so browsers may keep it."""
    folder, filename, _ = ASSETS[name]
    stat = (folder / filename).stat()
    return f"/map/static/{name}?v={stat.st_mtime_ns:x}-{stat.st_size:x}"


@router.get("/map")
def map_page() -> Response:
    """The map: territories, projects and contributions, and the nearest projects to a point."""
    if not (MAPLIBRE_DIST / "maplibre-gl.js").is_file():
        raise _missing_maplibre()
    html = (STATIC / "map.html").read_text(encoding="utf-8")
    for name in ("map.js", "map.css", "maplibre-gl.js", "maplibre-gl.css"):
        html = html.replace("{{" + name + "}}", _asset_url(name))
    html = html.replace("{{tool_labels}}", _labels_json())
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/map/static/{name}")
def map_asset(name: str) -> Response:
    """One file of the page, or of MapLibre GL JS; 404 for anything else."""
    if name not in ASSETS:
        raise NotFound(f"no file {name!r} for the map page")
    folder, filename, media_type = ASSETS[name]
    path = folder / filename
    if not path.is_file():
        raise _missing_maplibre()
    # The page names each file with a token of its version: a new version is a new URL.
    cache = "public, max-age=86400" if name != "maplibre-gl.js.map" else "no-cache"
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": cache})
