"""The retention loop end to end under faults, with real processes, a broker (Redis, or a
three-node NATS JetStream cluster) and a PostgreSQL of the test's own, and a real SMTP server.

100,000 events (clicks coming back, and national projects published to 200 residents of
Reims) go through ``geo-engine consume`` processes that are killed with SIGKILL more than
twenty times, while the broker restarts once (Redis empty; on NATS the project stream's leader
node is killed and comes back) and PostgreSQL crashes once. Then the same
processes, running the loop's clock, send the alerts and the daily digests while they are
killed again. Afterwards everything expected is there exactly once, and nothing is pending.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import time as clock_time
from pathlib import Path

import psycopg
import pytest

from contracts.users import Notifications, QuietHours, UserRecord
from geo_engine import db
from geo_engine.catalog import load as catalog_load
from geo_engine.jsonl import Line
from geo_engine.settings import DatabaseSettings, GeoSettings, UserSettings
from geo_engine.territories import geodata
from geo_engine.territories.load import load
from geo_engine.users.places import UserBatch, import_users
from tests import api_data as data
from tests import minidata
from tests.brokers import KINDS, Broker, Kind, serving
from tests.cli import CLI, REPO
from tests.pgcluster import Cluster, throwaway_cluster
from tests.smtpsink import LINK_SECRET, SmtpSink, running_sink

pytestmark = [pytest.mark.slow, pytest.mark.geodata]

REIMS = "51454"
INSTANT = list(range(1, 101))  # alerted at once (no quiet hours, a budget above the news)
DAILY = list(range(101, 201))  # a daily digest
ORG = 5
PROJECTS = list(range(1, 21))  # national, public: each reaches all 200 users
EVENTS = 100_000
GROUPS = {"project": ["fanout"], "user": ["erasure"], "engagement": ["engagement"]}
KILLS = 20


@pytest.fixture(params=KINDS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    kind: Kind = request.param
    yield from serving(kind, tmp_path / kind)


@pytest.fixture
def cluster(
    geodata_dir: Path, geo_settings: GeoSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A server of our own, migrated, with Reims."""
    with throwaway_cluster() as running:
        settings = running.settings()
        db.upgrade(settings)
        root = minidata.cut(geodata_dir, [REIMS]).write(tmp_path_factory.mktemp("mini"))
        with db.connect(settings) as conn:
            load(conn, geodata.read(root), geo_settings)
            conn.commit()
        yield running


def _ground(database: DatabaseSettings) -> int:
    """200 residents of Reims, 20 national projects (their ``project.published`` in the
    outbox), and clicks up to :data:`EVENTS` outbox events in all. Returns the clicks."""
    quiet_never = QuietHours(start=clock_time(0), end=clock_time(0))
    records = [
        UserRecord(
            id=user,
            commune=REIMS,
            timezone="Europe/Paris",
            notifications=Notifications(
                frequency="instant" if user in INSTANT else "daily", quiet_hours=quiet_never
            ),
        )
        for user in INSTANT + DAILY
    ]
    with db.connect(database) as conn:
        import_users(conn, UserBatch.from_records(records), UserSettings())
        catalog_load.store_organisations(conn, [Line(1, data.organisation(ORG))], "test")
        catalog_load.store_projects(
            conn,
            [Line(i, data.project(p, ORG, data.national())) for i, p in enumerate(PROJECTS, 1)],
            "test",
        )
        written = _count(conn, "SELECT count(*) FROM outbox")
        clicks = EVENTS - written
        conn.execute(
            """INSERT INTO outbox (id, type, version, payload)
               SELECT gen_random_uuid(), 'notification.clicked', 1,
                      jsonb_build_object('user_id', (i %% 200) + 1,
                                         'project_id', (i %% 20) + 1)
                 FROM generate_series(0, %s - 1) AS i""",
            (clicks,),
        )
        conn.commit()
    return clicks


def _count(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0] or 0)


def _counted(database: DatabaseSettings, query: str) -> int:
    """-1 while the server is down (it is restarted on purpose)."""
    try:
        with db.connect(database) as conn:
            return _count(conn, query)
    except psycopg.OperationalError:
        return -1


def _wait(done: Callable[[], bool], seconds: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {seconds} s: {what()}")
        time.sleep(0.3)


class Fleet:
    """``geo-engine consume`` processes of one consumer group each, started and killed."""

    def __init__(
        self, database: DatabaseSettings, broker: Broker, smtp_port: int, log: Path
    ) -> None:
        self.env = {
            **os.environ,
            **broker.env(),
            "GEO_ENGINE_DATABASE_URL": database.database_url,
            "GEO_ENGINE_STREAM_PREFIX": broker.prefix,
            "GEO_ENGINE_CLAIM_IDLE_MS": "1000",
            "GEO_ENGINE_BATCH_SIZE": "500",
            "GEO_ENGINE_RELAY_BATCH": "2000",
            "GEO_ENGINE_POLLING_MS": "20",
            "GEO_ENGINE_RECONCILE_GRACE_S": "5",
            "GEO_ENGINE_SMTP_HOST": "127.0.0.1",
            "GEO_ENGINE_SMTP_PORT": str(smtp_port),
            "GEO_ENGINE_LINK_SECRET": LINK_SECRET,
            "GEO_ENGINE_DIGEST_HOUR": "0",  # every local day's digest is due at once
            "GEO_ENGINE_WEEKLY_BUDGET": "100",
            "GEO_ENGINE_RELEVANCE_THRESHOLD": "-1000",  # everyone concerned wants it
            "GEO_ENGINE_DIGEST_PICKS": "0",  # the expected set is the inbox
            "GEO_ENGINE_TICK_S": "0.5",
            "GEO_ENGINE_MAIL_LEASE_S": "1",
        }
        self.log = log
        self.started = 0
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *flags: str) -> subprocess.Popen[bytes]:
        self.started += 1
        with self.log.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603  our own CLI
                [str(CLI), "consume", "--consumer", f"c{self.started}", *flags],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=out,
            )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        process.kill()  # SIGKILL: batches in flight, nothing cleaned up
        process.wait()
        self.processes.remove(process)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


def _pending(broker: Broker) -> int:
    total = 0
    for stream, groups in GROUPS.items():
        for group in groups:
            try:
                total += broker.unacknowledged(stream, group)
            except Exception:  # noqa: BLE001  no such group (yet), or a node restarting
                return -1
    return total


def _mail_report(sink: SmtpSink) -> Counter[str]:
    return Counter(str(m["Message-ID"]) for m in sink.messages)


def test_the_loop_loses_and_duplicates_nothing_through_kills_and_restarts(
    cluster: Cluster, broker: Broker, tmp_path: Path
) -> None:
    database = cluster.settings()
    clicks = _ground(database)
    chance = random.Random(2026)  # noqa: S311  not cryptography
    log = tmp_path / "consume.log"
    with running_sink() as (sink, mail):
        fleet = Fleet(database, broker, mail.smtp_port, log)
        try:
            # 1. The events: relay, fan-out, engagement, with kills and both restarts.
            for _ in range(2):
                fleet.start("--no-clock")
            for kill in range(1, KILLS + 1):
                time.sleep(chance.uniform(0.5, 1.5))
                fleet.kill(chance.choice(fleet.processes))
                if kill == KILLS // 3:
                    broker.restart("project")  # Redis empty; a NATS leader node lost
                if kill == 2 * KILLS // 3:
                    cluster.stop("immediate")
                    time.sleep(1)
                    cluster.start()
                fleet.start("--no-clock")
            expected_inbox = len(PROJECTS) * (len(INSTANT) + len(DAILY))

            def settled() -> bool:
                return (
                    _counted(database, "SELECT count(*) FROM engagement_event") == clicks
                    and _counted(database, "SELECT count(*) FROM inbox") == expected_inbox
                    and _counted(database, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    == 0
                    and _pending(broker) == 0
                )

            _wait(
                settled,
                240,
                lambda: (
                    f"{_counted(database, 'SELECT count(*) FROM engagement_event')} of {clicks} "
                    f"clicks, {_counted(database, 'SELECT count(*) FROM inbox')} of "
                    f"{expected_inbox} inbox rows, {_pending(broker)} pending; "
                    f"log: {log.read_text()[-2000:]}"
                ),
            )
            with db.connect(database) as conn:
                # Each click counted once: no duplicate effect of redeliveries.
                assert _count(conn, "SELECT sum(count) FROM engagement WHERE kind = 'click'") == (
                    clicks
                )
                assert _count(conn, "SELECT count(DISTINCT event_id) FROM engagement_event") == (
                    clicks
                )
            assert broker.dead() == [], "no event of this run is poison"
            fleet.stop()

            # 2. The deliveries: the loop's clock sends alerts and digests, killed again.
            for _ in range(2):
                fleet.start("--no-relay")
            for _ in range(6):
                time.sleep(chance.uniform(1.0, 3.0))
                fleet.kill(chance.choice(fleet.processes))
                fleet.start("--no-relay")
            alerts = len(INSTANT) * len(PROJECTS)
            digests = len(DAILY)
            sent = "SELECT count(*) FROM mail_delivery WHERE sent_at IS NOT NULL AND kind = '{}'"
            _wait(
                lambda: (
                    _counted(database, sent.format("alert")) == alerts
                    and _counted(database, sent.format("digest")) == digests
                    and _counted(
                        database, "SELECT count(*) FROM mail_delivery WHERE sent_at IS NULL"
                    )
                    == 0
                ),
                300,
                lambda: (
                    f"{_counted(database, sent.format('alert'))} of {alerts} alerts, "
                    f"{_counted(database, sent.format('digest'))} of {digests} digests; "
                    f"log: {log.read_text()[-2000:]}"
                ),
            )
        finally:
            fleet.stop()
        received = _mail_report(sink)
    with db.connect(database) as conn:
        claimed = {
            str(r[0]): str(r[1])
            for r in conn.execute("SELECT message_id, kind FROM mail_delivery").fetchall()
        }
        # Every instant user's item was alerted, every daily user's digest went out once.
        assert (
            _count(conn, "SELECT count(*) FROM inbox WHERE user_id <= 100 AND alerted_at IS NULL")
            == 0
        )
        assert _count(conn, "SELECT count(*) FROM digest WHERE sent_at IS NOT NULL") == digests
        assert _count(conn, "SELECT count(DISTINCT user_id) FROM digest") == digests
    # The mails the SMTP server received are exactly the deliveries claimed: none lost, none
    # twice (a mail handed to SMTP again after a kill between acceptance and its record is the
    # same mail, by its Message-ID, which the receiving side keeps once).
    assert set(received) == set(claimed)
    assert Counter(claimed.values()) == {"alert": alerts, "digest": digests}
    resent = sum(received.values()) - len(received)
    print(f"SMTP hand-overs repeated after kills (same Message-ID): {resent}")
