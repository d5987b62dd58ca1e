"""The printable weekly poster of a commune (HTML or PDF), for its town hall."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from api.deps import Insee
from api.problems import documented
from api.routes.writes import PoolDep
from consumers import printable

router = APIRouter(prefix="/v1", tags=["territories"], responses=documented(404, 422))

Week = Annotated[
    str | None,
    Query(max_length=20, description="ISO week, e.g. 2026-W49 (default: the current one)"),
]


@router.get(
    "/communes/{code}/affiche",
    response_class=Response,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}}},
)
def affiche(
    code: Insee,
    pool: PoolDep,
    request: Request,
    week: Week = None,
    format: Annotated[Literal["html", "pdf"], Query(description="html or pdf")] = "html",  # noqa: A002
) -> Response:
    """The commune's weekly poster: public projects that concern it, open or closing soon,
    grouped by territory, and the week's public meetings, in French, laid out for A4."""
    with pool.connection() as conn:
        found = printable.poster(conn, code, week)
    html = printable.render_html(found, str(request.base_url))
    if format == "pdf":
        return Response(
            printable.render_pdf(html),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="affiche-{found.commune_code}-'
                f'{found.week}.pdf"'
            },
        )
    return HTMLResponse(html)
