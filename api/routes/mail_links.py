"""The links of the loop's mails: click redirect, open pixel, unsubscribe (RFC 8058).

- ``GET /m/c/{token}``: 303 to the project's page, built from the project id the signed token
  carries (never from the request: no open redirect), and ``notification.clicked`` unless
  the fetch is a mail scanner's (``consumers/mail/scanners.py``, and the mail's history in
  ``geo_engine/mail_actions.py``). ``HEAD`` answers the same and records nothing.
- ``GET /m/o/{token}.gif``: a 1×1 GIF; ``notification.opened`` once per mail.
- ``GET /m/u/{token}``: a French page whose button unsubscribes; the GET itself changes
  nothing, since scanners fetch every link.
- ``POST /m/u/{token}``: the button's form, or a mail client's RFC 8058 one-click POST (body
  ``List-Unsubscribe=One-Click``): mails stop at once (``notifications.email`` false, with
  ``notification.unsubscribed`` in the same transaction); a second POST is harmless.

A token that does not verify, whatever is wrong in it, gets the same 404 page. People reach
these from a mail, so answers are HTML pages in French, not problem documents; the engine
still counts nothing it cannot record, but a click reaches its project even when the
database is down.
"""

from __future__ import annotations

import base64
import logging
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from psycopg_pool import ConnectionPool, PoolTimeout

from api.problems import SECURITY_HEADERS
from consumers.mail import links
from consumers.mail.pages import PAGE_CSP, render_page
from consumers.mail.scanners import looks_like_scanner
from consumers.settings import MailSettings
from contracts.errors import NotFound
from geo_engine import mail_actions

log = logging.getLogger("api.mail")

router = APIRouter(prefix="/m", tags=["mail links"], include_in_schema=False)

# A transparent 1×1 GIF (42 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store", **SECURITY_HEADERS}
_PAGE_HEADERS = {**_NO_STORE, "Content-Security-Policy": PAGE_CSP, "X-Robots-Tag": "noindex"}

# Not bounded here: a long token is refused by links.verify with the same page as any other.
Token = Annotated[str, Path()]


async def _mail_settings(request: Request) -> MailSettings:
    settings: MailSettings = request.app.state.mail_settings
    return settings


async def _write_pool(request: Request) -> ConnectionPool:
    pool: ConnectionPool = request.app.state.write_pool
    return pool


MailSettingsDep = Annotated[MailSettings, Depends(_mail_settings)]
WritePoolDep = Annotated[ConnectionPool, Depends(_write_pool)]


def _page(
    status: int, title: str, paragraphs: list[str], settings: MailSettings, **form: str
) -> HTMLResponse:
    html = render_page(title, paragraphs, f"{settings.public_url}/map", **form)
    return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)


def _invalid(settings: MailSettings) -> HTMLResponse:
    return _page(
        404,
        "Lien non valide",
        [
            "Ce lien n'est pas valide : il a peut-être été coupé ou modifié en chemin.",
            "Essayez de l'ouvrir directement depuis l'e-mail reçu.",
        ],
        settings,
    )


def _verify(token: str, kind: links.LinkKind, settings: MailSettings) -> links.LinkPayload:
    return links.verify(token, kind, settings.link_secret.get_secret_value())


@router.api_route("/c/{token}", methods=["GET", "HEAD"])
def click(
    token: Token, request: Request, settings: MailSettingsDep, pool: WritePoolDep
) -> Response:
    """303 to the project; a person's click is recorded, a scanner's fetch is not."""
    try:
        link = _verify(token, "c", settings)
    except NotFound:
        return _invalid(settings)
    assert link.project_id is not None  # a verified click token names its project
    if request.method != "HEAD":
        scanner = looks_like_scanner(request.method, request.headers.get("user-agent"))
        try:
            with pool.connection() as conn, conn.transaction():
                mail_actions.follow_link(
                    conn,
                    link.user_id,
                    link.project_id,
                    link.notification,
                    scanner=scanner,
                    window_s=settings.scanner_window_s,
                    burst_s=settings.scanner_burst_s,
                )
        except (psycopg.OperationalError, PoolTimeout) as exc:
            # The person still reaches the project; only the count is lost.
            log.warning("click not recorded (database unreachable): %s", exc)
    return RedirectResponse(
        links.project_url(settings.public_url, link.project_id),
        status_code=303,
        headers=_NO_STORE,
    )


@router.api_route("/o/{token}.gif", methods=["GET", "HEAD"])
def opened(
    token: Token, request: Request, settings: MailSettingsDep, pool: WritePoolDep
) -> Response:
    """The open pixel: a 1×1 GIF; the first fetch per mail records the open."""
    try:
        link = _verify(token, "o", settings)
    except NotFound:
        return _invalid(settings)
    if request.method != "HEAD":
        try:
            with pool.connection() as conn, conn.transaction():
                mail_actions.record_open(conn, link.user_id, link.notification)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.warning("open not recorded (database unreachable): %s", exc)
    return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)


@router.api_route("/u/{token}", methods=["GET", "HEAD"])
def unsubscribe_page(token: Token, request: Request, settings: MailSettingsDep) -> Response:
    """The unsubscribe page: a button that POSTs here. Fetching it changes nothing."""
    try:
        _verify(token, "u", settings)
    except NotFound:
        return _invalid(settings)
    return _page(
        200,
        "Se désinscrire des e-mails",
        [
            "Vous ne recevrez plus d'e-mails de la participation citoyenne : ni alertes, "
            "ni résumés. Votre boîte de réception sur le site reste disponible.",
            "Confirmez en cliquant sur le bouton ci-dessous.",
        ],
        settings,
        action=request.url.path,
        button="Me désinscrire",
    )


@router.post("/u/{token}")
def unsubscribe(token: Token, settings: MailSettingsDep, pool: WritePoolDep) -> Response:
    """Unsubscribe at once (the page's button, or RFC 8058's one-click POST, whose body
    ``List-Unsubscribe=One-Click`` is not needed: the signed token is the authority)."""
    try:
        link = _verify(token, "u", settings)
    except NotFound:
        return _invalid(settings)
    try:
        with pool.connection() as conn, conn.transaction():
            mail_actions.unsubscribe(conn, link.user_id, link.notification)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        log.warning("unsubscribe failed (database unreachable): %s", exc)
        return _page(
            503,
            "Désinscription impossible pour le moment",
            [
                "Le service est momentanément indisponible : rien n'a été changé.",
                "Réessayez dans quelques minutes.",
            ],
            settings,
        )
    return _page(
        200,
        "Vous êtes désinscrit(e)",
        [
            "C'est fait : vous ne recevrez plus d'e-mails de la participation citoyenne.",
            "Vous pouvez les réactiver à tout moment dans vos réglages de notifications.",
        ],
        settings,
    )
