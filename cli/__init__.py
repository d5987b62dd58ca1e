"""The ``geo-engine`` command line: one entry point for every part of the engine."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from cli import (
    bench,
    catalog,
    common,
    consume,
    db,
    digest,
    fixtures,
    geo,
    growth,
    growth_replay,  # noqa: F401 (registers `growth replay` on growth.app)
    growth_report,  # noqa: F401  registers `growth report` on growth.app
    loop,
    mail,
    meetings,
    printable,
    recommend,
    serve,
    status,
    users,
)
from contracts.errors import EngineError, InvalidInput, Unavailable
from geo_engine.pools import connection_lost

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(db.app, name="db")
app.add_typer(geo.app, name="geo")
app.add_typer(users.app, name="users")
app.add_typer(catalog.orgs, name="orgs")
app.add_typer(catalog.members, name="members")
app.add_typer(catalog.projects, name="projects")
app.add_typer(catalog.contributions, name="contributions")
app.add_typer(catalog.app, name="catalog")
app.add_typer(meetings.app, name="meetings")
app.add_typer(fixtures.app, name="fixtures")
app.add_typer(recommend.app, name="recommend")
app.add_typer(mail.app, name="mail")
app.add_typer(loop.app, name="loop")
app.add_typer(digest.app, name="digest")
digest.app.command("print")(printable.print_poster)
app.add_typer(digest.alerts, name="alerts")
app.add_typer(growth.app, name="growth")
app.command("bench")(bench.bench)
app.command("status")(status.status)
app.command("serve")(serve.serve)
app.command("consume")(consume.consume)
app.add_typer(consume.outbox, name="outbox")


def unreachable(exc: BaseException) -> Unavailable | None:
    """The database could not be reached (refused, timed out, gone, or a pool that waited in
    vain): Unavailable saying why in one line. ``None`` for any other error. A migration's
    SQLAlchemy error carries the driver's as ``orig``."""
    cause = getattr(exc, "orig", exc)
    if not isinstance(cause, BaseException) or not connection_lost(cause):
        return None
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause)
    return Unavailable(
        f"cannot reach the database ({first}); run `make services` or check GEO_ENGINE_DATABASE_URL"
    )


def main() -> None:
    """Entry point, and the command line's one error mapping: an engine error is its message
    and its kind's exit code (``contracts.errors.POLICIES``); a database that cannot be
    reached is one clear line (exit 75), not a traceback."""
    try:
        app()
    except EngineError as exc:
        common.fail(exc)
    except ValidationError as exc:  # a setting from the environment or .env that does not hold
        reasons = (
            f"{'.'.join(str(p) for p in e['loc']) or exc.title}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors(include_url=False)
        )
        common.fail(InvalidInput(f"invalid {exc.title}: " + "; ".join(reasons)))
    except Exception as exc:
        error = unreachable(exc)
        if error is None:
            raise
        common.fail(error)
