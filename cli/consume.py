"""The retention loop's processes: ``geo-engine consume`` (relay, reconciler and workers) and
``geo-engine outbox relay`` (the relay alone)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import typer

from cli.common import err

outbox = typer.Typer(no_args_is_help=True, help="The outbox relay onto Redis streams.")


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def consume(
    workers: str | None = typer.Option(
        None, "--workers", help="comma-separated workers to run (default: all)"
    ),
    consumer: str | None = typer.Option(
        None, "--consumer", help="this process's consumer name, unique (default: host-pid)"
    ),
    relay: bool = typer.Option(True, "--relay/--no-relay", help="run the outbox relay too"),
    clock: bool = typer.Option(
        True,
        "--clock/--no-clock",
        help="run the loop's scheduled passes too (closing soon, reminders, alerts, digests)",
    ),
) -> None:
    """Run the outbox relay and reconciler and the workers' consumer groups on Redis (or on
    NATS JetStream with GEO_ENGINE_BROKER=nats) until SIGINT or SIGTERM. Settings:
    GEO_ENGINE_DATABASE_URL, GEO_ENGINE_REDIS_URL or GEO_ENGINE_NATS_URL and the stream
    settings (GEO_ENGINE_STREAM_PREFIX, GEO_ENGINE_BATCH_SIZE, ...)."""
    from consumers.app import choose, consume, default_consumer
    from consumers.app import workers as every_worker
    from consumers.settings import LoopSettings, StreamSettings
    from geo_engine.settings import DatabaseSettings, RedisSettings

    streams = StreamSettings()
    clock_run = None
    if clock:
        from functools import partial

        from consumers import scheduler
        from consumers.alerts import MailModule
        from consumers.settings import MailSettings
        from recommender.scorers import load_weighted
        from recommender.settings import RecommenderSettings
        from recommender.variants import RankingVariants

        recommending = RecommenderSettings()
        weighted = load_weighted(recommending.weights)
        clock_run = partial(
            scheduler.run_forever,
            DatabaseSettings(),
            LoopSettings(),
            MailModule(MailSettings()),
            weighted,
            ranking=RankingVariants.of(weighted, recommending.weights, recommending.model_dir),
        )
    chosen = choose(
        every_worker(RedisSettings().redis_url, streams, LoopSettings()), _names(workers)
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    name = consumer or default_consumer()
    err.print(f"consuming as {name}: {', '.join(w.name for w in chosen)}")
    asyncio.run(
        consume(
            chosen,
            database=DatabaseSettings(),
            redis=RedisSettings(),
            settings=streams,
            consumer=name,
            with_relay=relay,
            clock=clock_run,
        )
    )


@outbox.command("relay")
def relay_command(
    once: bool = typer.Option(
        False, "--once", help="publish what is unpublished, reconcile once, and exit"
    ),
) -> None:
    """Publish the outbox onto Redis streams, or JetStream's with GEO_ENGINE_BROKER=nats (and
    republish what they lost) until SIGINT or SIGTERM; with --once, one round, printing
    {"published", "republished"} as JSON."""
    import redis

    from consumers import relay
    from consumers.app import workers
    from consumers.jetstream import JetStreamSink
    from consumers.settings import LoopSettings, StreamSettings
    from geo_engine import db
    from geo_engine.settings import DatabaseSettings, RedisSettings

    settings = StreamSettings()
    database = DatabaseSettings()
    redis_url = RedisSettings().redis_url
    groups = workers(redis_url, settings, LoopSettings())
    if once:
        client: relay.Target = (
            JetStreamSink(settings, groups)
            if settings.broker == "nats"
            else redis.Redis.from_url(redis_url)
        )
        with db.connect(database) as conn:
            published = relay.drain(conn, client, settings)
            republished = relay.Reconciler(settings, groups).run(conn, client)
        client.close()
        typer.echo(json.dumps({"published": published, "republished": republished}))
        return
    stop = threading.Event()
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    relay.run_forever(database, redis_url, settings, groups, stop)


@outbox.command("asyncapi")
def asyncapi_command(
    output: Path | None = typer.Option(None, help="write it there (default: print it)"),
) -> None:
    """The AsyncAPI document of the streams and consumer groups (consumers/asyncapi.json)."""
    from consumers.app import asyncapi

    text = json.dumps(asyncapi(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
