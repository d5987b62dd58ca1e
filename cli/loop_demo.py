"""``geo-engine loop publish`` and ``geo-engine loop watch``: the retention loop end to end on
the demo data, as ``make demo`` shows it (scripts/demo.sh runs the mail sink and
``geo-engine consume`` around them).

1. ``publish`` writes a consultation closing in five days for the commune where most residents
   take mail, through the write layer (its ``project.published`` in the outbox).
2. ``watch`` follows it: the relay and the fan-out put it in its residents' inboxes; the
   loop's clock alerts those who want alerts and puts it in the daily digests; a resident's
   click on the mail's link (fetched from the mail the SMTP sink kept, through the engine's
   click-tracking redirect) comes back as engagement; and that resident's next ranking is not
   the one before.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import psycopg
import typer
from fastapi.testclient import TestClient

from cli.common import err
from contracts.catalog import ProjectWrite
from contracts.errors import EngineError, Unavailable
from geo_engine.db import connect
from geo_engine.settings import DatabaseSettings
from geo_engine.writes import Actor, write_project

TITLE = "Réaménagement de la place de la mairie"
LINK = re.compile(r"https?://[^\s\"'<>]+/m/c/[A-Za-z0-9._~-]+")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Firefox/128.0"


def _one(conn: psycopg.Connection, query: str, *params: object) -> object:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _wait(what: str, check: Callable[[], Any], seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise Unavailable(
                f"{what}: nothing after {seconds:.0f} s; is `geo-engine consume` running?"
            )
        time.sleep(0.5)


def publish(commune: str | None = None) -> None:
    """Publish a consultation in ``commune`` (INSEE code), by default the commune where most
    residents take mail; prints its id."""
    with connect(DatabaseSettings()) as conn:
        row = conn.execute(
            """SELECT p.commune_code, c.name, count(*) AS residents
               FROM user_place AS p JOIN app_user AS u ON u.id = p.user_id
               JOIN commune AS c ON c.code = p.commune_code
               WHERE u.notifications->>'frequency' IN ('instant', 'daily')
                 AND (u.notifications->>'email')::boolean
                 AND (%(commune)s::text IS NULL OR p.commune_code = %(commune)s)
               GROUP BY 1, 2 ORDER BY residents DESC, 1 LIMIT 1""",
            {"commune": commune},
        ).fetchone()
        if row is None:
            raise EngineError(
                "no resident takes mail"
                + (f" in commune {commune}" if commune else ": load the demo data first")
            )
        code, name, residents = row
        # Published by an admin of the commune's own organisation (else of any organisation):
        # the write layer checks that role, as for the API.
        found = conn.execute(
            """SELECT o.id, m.user_id FROM organisation AS o
               JOIN organisation_member AS m ON m.organisation_id = o.id AND m.role = 'admin'
               ORDER BY (o.kind = 'commune' AND o.territory_code = %s) DESC, o.id LIMIT 1""",
            (code,),
        ).fetchone()
        if found is None:
            raise EngineError("no organisation has an admin: load the demo data first")
        organisation, admin = found
        body = ProjectWrite.model_validate(
            {
                "organisation_id": organisation,
                "space": "territoires",
                "tool": "consultation",
                "title": TITLE,
                "themes": ["urbanisme"],
                "status": "open",
                "closes_at": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
                "scope": {
                    "kind": "territories",
                    "territories": [{"level": "commune", "code": code}],
                },
            }
        )
        written = write_project(conn, Actor(user_id=admin), body)
        conn.commit()
    err.print(f"« {TITLE} » publié à {name} ({code}), {residents:,} habitants joignables par mail")
    typer.echo(written.id)


def watch(project_id: int, mail_dir: Path) -> None:
    """Follow project ``project_id`` through the loop (see the module's docstring)."""
    from api.app import create_app
    from recommender.service import Recommender
    from recommender.settings import RecommenderSettings

    database = DatabaseSettings()
    recommender = Recommender.load(RecommenderSettings())
    with connect(database) as conn:
        conn.autocommit = True
        rows = _wait(
            "fan-out",
            lambda: _one(conn, "SELECT count(*) FROM inbox WHERE project_id = %s", project_id),
        )
        err.print(f"1. boîtes de réception : {rows:,} habitants ont reçu le projet")
        delivered = """SELECT count(*) FILTER (WHERE alerted_at IS NOT NULL),
                              count(*) FILTER (WHERE digest_period IS NOT NULL)
                       FROM inbox WHERE project_id = %s"""
        try:
            _wait(
                "alerts and digests",
                lambda: sum(conn.execute(delivered, (project_id,)).fetchone() or (0, 0)),
                seconds=60,
            )
            time.sleep(3)  # the rest of the round
        except Unavailable:
            pass
        alerted, digested = conn.execute(delivered, (project_id,)).fetchone() or (0, 0)
        err.print(
            f"2. {alerted:,} alertes immédiates et {digested:,} résumés quotidiens envoyés "
            f"(le puits SMTP les garde dans {mail_dir}/)"
        )
        found = _mail_about(mail_dir, project_id) if alerted or digested else None
        user: int
        mail = ""
        if found is None:
            err.print(
                "   aucun mail encore : les alertes attendent la fin des heures calmes de "
                "chacun, et le résumé du jour était déjà parti ; le clic passera par l'appli"
            )
            user = int(
                str(_one(conn, "SELECT min(user_id) FROM inbox WHERE project_id = %s", project_id))
            )
        else:
            mail, user = found
        before = {r.project_id: r.score for r in recommender.for_user(conn, user, 10)}
        with TestClient(create_app(database), follow_redirects=False) as http:
            if found is None:
                answer = http.post(
                    f"/v1/users/{user}/engagements",
                    json={"project_id": project_id, "kind": "click"},
                    headers={"Authorization": f"Bearer {_token(user)}"},
                )
                err.print(
                    f"3. l'habitant {user} ouvre le projet dans l'appli : {answer.status_code}"
                )
            else:
                path = _link_to(mail, project_id)
                time.sleep(6)  # a person clicks later than a mail scanner's fetch
                answer = http.get(f"/m/c/{path}", headers={"User-Agent": BROWSER})
                err.print(
                    f"3. l'habitant {user} clique dans son mail : {answer.status_code} → "
                    f"{answer.headers.get('location')}"
                )
        _wait(
            "engagement",
            lambda: _one(
                conn,
                """SELECT count FROM engagement
                   WHERE user_id = %s AND project_id = %s AND kind = 'click'""",
                user,
                project_id,
            ),
        )
        fresh = Recommender.load(RecommenderSettings())  # no facts cached from before
        after = {r.project_id: r.score for r in fresh.for_user(conn, user, 10)}
    err.print("4. le clic est revenu comme engagement ; ses 10 premiers projets (score) :")
    err.print("   avant : " + ", ".join(f"{p} ({v:.3f})" for p, v in before.items()))
    err.print("   après : " + ", ".join(f"{p} ({v:.3f})" for p, v in after.items()))
    if list(after) != list(before):
        typer.echo("classement changé : l'ordre n'est plus le même")
    elif after != before:
        typer.echo("classement changé : mêmes projets, scores revus par le clic")
    else:
        typer.echo("classement inchangé")


def _mail_about(mail_dir: Path, project_id: int) -> tuple[str, int] | None:
    """The text of the newest mail the sink kept with a link to ``project_id``, and its
    recipient's id."""
    for path in sorted(mail_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        to = re.search(r"citoyen-(\d+)@", str(message["To"]))
        body = message.get_body(preferencelist=("plain",))
        text = "" if body is None else str(body.get_content())
        if to and TITLE in text:
            try:
                _link_to(text, project_id)
            except EngineError:
                continue
            return text, int(to.group(1))
    return None


def _token(user_id: int) -> str:
    from api.auth import make_token
    from geo_engine.settings import ApiSettings

    return make_token(user_id, ApiSettings().jwt_secret.get_secret_value())


def _link_to(mail: str, project_id: int) -> str:
    """The token of the mail's click-tracking link to ``project_id`` (each link is signed for
    its project)."""
    from consumers.mail.links import verify
    from consumers.settings import MailSettings

    secret = MailSettings().link_secret.get_secret_value()
    for link in LINK.finditer(mail):
        token = link.group(0).split("/m/c/", 1)[1]
        if verify(token, "c", secret).project_id == project_id:
            return token
    raise EngineError(f"the mail holds no click-tracking link to project {project_id}")
