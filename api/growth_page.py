"""The growth team's dashboard, ``GET /growth``, its staff session and the files it loads.

The page is for staff only (:data:`api.deps.StaffDep`: a staff token in the ``Authorization``
header, or in the HttpOnly cookie ``geo_engine_staff``). A browser sends no header, so
``GET /staff/session`` is a small French form asking for the staff token and
``POST /staff/session`` checks it and sets the cookie; ``POST /staff/session/logout`` clears
it. An anonymous ``GET /growth`` (no header, no cookie, or an expired one) is redirected (303)
to the form; a wrong ``Authorization`` header is 401 and a non-staff token 403, as everywhere
under growth.

The page's figures come from ``/v1/growth/report``, ``/v1/growth/areas`` and
``/v1/growth/experiments`` (staff only too); its files (``/growth/static/…``: its own JS and
CSS, Chart.js and MapLibre GL JS from ``web/node_modules``) hold no data but are staff only
too, like everything under ``/growth`` (the browser sends the session cookie with them); the
session form, outside ``/growth``, has its own public stylesheet ``/staff/session.css``.
Nothing is asked of any other server: no CDN; the choropleth draws the engine's
own tiles (``/v1/tiles/communes``, ``/v1/tiles/epcis``).
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import jwt
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from api.auth import ALGORITHM, Viewer, viewer_from_token
from api.deps import STAFF_COOKIE, StaffDep, ViewerDep, staff
from api.map_page import CSP, MAPLIBRE_DIST
from api.problems import SECURITY_HEADERS
from contracts.errors import NotFound, Unauthenticated, Unavailable

STATIC = Path(__file__).resolve().parent / "static"
CHARTJS_DIST = Path(__file__).resolve().parent.parent / "web" / "node_modules" / "chart.js" / "dist"
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    **SECURITY_HEADERS,
    # Not no-referrer: under it a browser sends "Origin: null" with the session form's POST,
    # which _same_origin must refuse (a sandboxed frame of another site sends the same).
    "Referrer-Policy": "same-origin",
}
SESSION_PATH = "/staff/session"  # outside /growth, where everything is for staff only
MAX_TOKEN_CHARS = 4096
MAX_SESSION_S = 12 * 3600

# Path in the URL -> (folder, file, media type). Nothing outside this table is served.
ASSETS: dict[str, tuple[Path, str, str]] = {
    "growth.js": (STATIC, "growth.js", "text/javascript; charset=utf-8"),
    "growth.css": (STATIC, "growth.css", "text/css; charset=utf-8"),
    "chart.umd.min.js": (CHARTJS_DIST, "chart.umd.min.js", "text/javascript; charset=utf-8"),
    "maplibre-gl.js": (MAPLIBRE_DIST, "maplibre-gl.js", "text/javascript; charset=utf-8"),
    "maplibre-gl.css": (MAPLIBRE_DIST, "maplibre-gl.css", "text/css; charset=utf-8"),
}

router = APIRouter(include_in_schema=False)


def _missing(path: Path) -> Unavailable:
    return Unavailable(
        f"the growth dashboard needs {path.name}, which is not installed ({path} is missing):"
        " run `make install`",
    )


def _asset_url(name: str) -> str:
    """The file's URL with a token that changes with the file, so browsers may keep it."""
    folder, filename, _ = ASSETS[name]
    path = folder / filename
    if not path.is_file():
        raise _missing(path)
    stat = path.stat()
    return f"/growth/static/{name}?v={stat.st_mtime_ns:x}-{stat.st_size:x}"


async def _staff_or_form(request: Request, found: ViewerDep) -> Viewer | None:
    """The staff viewer, or None for a browser that has no session yet (no header, no valid
    cookie): it goes to the form. A wrong header is 401 and a non-staff token 403."""
    try:
        return await staff(request, found)
    except Unauthenticated:
        if request.headers.get("authorization"):
            raise
        return None


@router.get("/growth")
async def growth_page(viewer: Annotated[Viewer | None, Depends(_staff_or_form)]) -> Response:
    """The dashboard: funnel, daily series and comparisons per variant, coverage, choropleth."""
    if viewer is None:
        answer = RedirectResponse(SESSION_PATH, status_code=303, headers=SECURITY_HEADERS)
        answer.delete_cookie(STAFF_COOKIE, path="/")
        return answer
    page = (STATIC / "growth.html").read_text(encoding="utf-8")
    for name in ("growth.js", "growth.css", "chart.umd.min.js", "maplibre-gl.js"):
        page = page.replace("{{" + name + "}}", _asset_url(name))
    page = page.replace("{{maplibre-gl.css}}", _asset_url("maplibre-gl.css"))
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/growth/static/{name}")
def growth_asset(name: str, _: StaffDep) -> Response:
    """One file of the page, Chart.js or MapLibre GL JS (staff only, as all of /growth); 404
    for anything else."""
    return _file(name)


@router.get(SESSION_PATH + ".css")
def session_style() -> Response:
    """The session form's stylesheet (the dashboard's): public, as the form is."""
    return _file("growth.css")


def _file(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no file {name!r} for the growth dashboard")
    folder, filename, media_type = ASSETS[name]
    path = folder / filename
    if not path.is_file():
        raise _missing(path)
    # The page names each file with a token of its version: a new version is a new URL.
    return FileResponse(
        # Staff only: kept by the browser, never by a shared cache.
        path,
        media_type=media_type,
        headers={"Cache-Control": "private, max-age=86400"},
    )


# ---------------------------------------------------------------- the staff session


def _form(message: str | None = None, status_code: int = 200) -> HTMLResponse:
    page = (STATIC / "growth_session.html").read_text(encoding="utf-8")
    page = page.replace("{{growth.css}}", SESSION_PATH + ".css")
    page = page.replace("{{session}}", SESSION_PATH)
    if message is None:
        page = page.replace("{{message}}", "").replace("{{invalid}}", "")
    else:
        error = f'<p class="form-error" id="token-error" role="alert">{html.escape(message)}</p>'
        page = page.replace("{{message}}", error)
        page = page.replace("{{invalid}}", ' aria-invalid="true" aria-errormessage="token-error"')
    return HTMLResponse(page, status_code=status_code, headers=PAGE_HEADERS)


def _same_origin(request: Request) -> bool:
    """Whether the form was posted from the engine's own page: a browser sends ``Origin`` with
    every POST; ``null`` (a sandboxed frame, a redirect across sites) is another site's too."""
    origin = request.headers.get("origin")
    if origin is None:  # not a browser's POST: a script, which holds the token anyway
        return True
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


CROSS_SITE = "Ce formulaire ne s’envoie que depuis la page du moteur lui-même."


@router.get(SESSION_PATH)
async def session_form() -> Response:
    """The French form asking for a staff token."""
    return _form()


@router.post(SESSION_PATH)
async def open_session(request: Request) -> Response:
    """Form field ``token``: a valid staff token sets the HttpOnly, SameSite=Strict cookie
    ``geo_engine_staff`` (Secure over https) for the token's lifetime and redirects (303) to
    ``/growth``; a missing or invalid token is 401, a non-staff token 403, with the form and
    the reason in French; a form posted from another site is 403 (login CSRF)."""
    if not _same_origin(request):
        return _form(CROSS_SITE, 403)
    body = (await request.body()).decode("utf-8", errors="replace")
    values = parse_qs(body, max_num_fields=10).get("token", [])
    token = values[0].strip() if values else ""
    if not token:
        return _form("Saisissez un jeton d’équipe (staff).", 401)
    if len(token) > MAX_TOKEN_CHARS:
        return _form("Ce jeton est trop long pour être un jeton du moteur.", 401)
    secret = request.app.state.api_settings.jwt_secret.get_secret_value()
    try:
        viewer = viewer_from_token(token, secret)
    except Unauthenticated:
        return _form("Ce jeton n’est pas valide ou a expiré.", 401)
    if not viewer.staff:
        return _form(
            "Ce jeton est valide mais n’est pas un jeton d’équipe : "
            "le tableau de bord est réservé à l’équipe.",
            403,
        )
    # viewer_from_token checked the signature and that exp is an integer in the future.
    expires = jwt.decode(token, secret, algorithms=[ALGORITHM])["exp"]
    answer = RedirectResponse("/growth", status_code=303, headers=SECURITY_HEADERS)
    answer.set_cookie(
        STAFF_COOKIE,
        token,
        # However long the token lives, a browser session lasts at most MAX_SESSION_S.
        max_age=min(max(int(expires) - int(time.time()), 1), MAX_SESSION_S),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post(SESSION_PATH + "/logout")
async def close_session(request: Request) -> Response:
    """Clears the cookie and goes back to the form (303); 403 from another site."""
    if not _same_origin(request):
        return _form(CROSS_SITE, 403)
    answer = RedirectResponse(SESSION_PATH, status_code=303, headers=SECURITY_HEADERS)
    answer.delete_cookie(
        STAFF_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer
