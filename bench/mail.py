"""Composing digests on one core, as a daily round does for each user with something new.

No database, no network: ``size`` digests of ``ITEMS`` items each (realistic French titles,
organisations, reasons, a closing date and a meeting now and then, the recipients spread over
the zones of France), each rendered (Jinja2, plain text and HTML), its links signed and the
whole mail serialised to the bytes handed to SMTP (:func:`consumers.mail.compose_digest`).
Recipients come commune by commune, ``PER_COMMUNE`` of them drawing their items from the
commune's ``POOL`` candidates, as the digest round plans them; the caches start empty.

- ``digests_per_s``: digests composed and serialised per second, the best of ``RUNS`` runs;
- ``us_per_digest``: the same as microseconds per digest;
- ``cold_us_per_digest``: the same when no two recipients share an item (no cache hit);
- ``bytes_per_digest``: the mean size of a digest as it goes to SMTP;
- ``million_digests_core_s``: the core-seconds one million digests take at that rate.

Times are this process's CPU time (``time.process_time``): on a shared 2-core machine the
wall clock also counts other processes' turns.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from consumers.content import SECTIONS, DigestContent, Item, MeetingInfo, Recipient, Section
from consumers.mail import compose, compose_digest
from consumers.settings import MailSettings

DEFAULT_DIGESTS = 20_000
ITEMS = 10
POOL = 30
PER_COMMUNE = 30
RUNS = 3
SECRET = "bench-only-link-secret-of-32-characters"  # noqa: S105
ZONES = (
    "Europe/Paris",
    "Europe/Paris",
    "Europe/Paris",
    "America/Guadeloupe",
    "America/Cayenne",
    "Indian/Reunion",
    "Indian/Mayotte",
    "Pacific/Tahiti",
    "Pacific/Noumea",
)
COMMUNES = ("Lyon", "Saint-Étienne", "Nîmes", "Besançon", "Pointe-à-Pitre", "Évry-Courcouronnes")
TITLES = (
    "Réaménagement de la place de l'Hôtel-de-Ville et de ses abords",
    "Budget participatif 2027 : déposez vos idées pour le quartier",
    "Végétalisation des cours d'école : quelles priorités ?",
    "Piste cyclable entre la gare et le lycée Émile-Zola",
    "Consultation sur le plan local d'urbanisme intercommunal",
    "Rénovation énergétique de la médiathèque François-Mitterrand",
    "Votation : faut-il piétonniser la rue Gambetta le dimanche ?",
    "Création d'un jardin partagé « Les Coquelicots »",
    "Schéma régional des mobilités : donnez votre avis",
    "Sécurité routière aux abords des écoles élémentaires",
)
ORGANISATIONS = ("Ville de Lyon", "Métropole de Lyon", "Région Auvergne-Rhône-Alpes", "Mairie")
TOOLS = ("budget_participatif", "consultation", "votation", "concertation", "appel_a_projets")
KINDS = ("published", "closing_soon", "results", "meeting_announced", "recommended")
REASONS = (
    "Un projet dans votre commune",
    "Proche de vos centres d'intérêt : mobilité, environnement",
    "Dans votre intercommunalité",
    "Des habitants de votre quartier y participent",
)


def _item(draw: random.Random, n: int, section: Section) -> Item:
    start = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)
    meeting = None
    if draw.random() < 0.15:
        at = start + timedelta(days=draw.randrange(1, 30))
        meeting = MeetingInfo(
            draw.randrange(1, 100_000),
            draw.choice(("reunion_publique", "atelier", "balade_urbaine")),
            "Réunion publique d'information",
            "Salle des fêtes, 1 rue de la Mairie",
            at,
            at + timedelta(hours=2),
        )
    return Item(
        project_id=draw.randrange(1, 2_000_000),
        title=TITLES[n % len(TITLES)],
        organisation=draw.choice(ORGANISATIONS),
        tool=draw.choice(TOOLS),
        kind=draw.choice(KINDS),
        reason=draw.choice(REASONS),
        section=section,
        closes_at=start + timedelta(days=draw.randrange(1, 60)) if draw.random() < 0.4 else None,
        meeting=meeting,
    )


def digests(count: int, seed: int, *, shared: bool) -> list[tuple[Recipient, DigestContent, str]]:
    """``count`` recipients with a daily digest of ``ITEMS`` items each, and its key.

    ``shared``: as a round plans them, commune by commune, ``PER_COMMUNE`` recipients of a
    commune drawing their items from its ``POOL`` candidates; else every item is new."""
    draw = random.Random(seed)  # noqa: S311 - a reproducible fixture
    out = []
    pool: list[Item] = []
    for n in range(count):
        commune = n // PER_COMMUNE
        if shared and n % PER_COMMUNE == 0:
            pool = [_item(draw, commune + i, SECTIONS[i % len(SECTIONS)]) for i in range(POOL)]
        chosen = (
            draw.sample(pool, ITEMS)
            if shared
            else [_item(draw, n + i, SECTIONS[i % len(SECTIONS)]) for i in range(ITEMS)]
        )
        user = 1_000_000 + n
        recipient = Recipient(user, ZONES[commune % len(ZONES)], COMMUNES[commune % len(COMMUNES)])
        content = DigestContent("daily", date(2026, 12, 1), tuple(chosen))
        out.append((recipient, content, f"digest:{user}:daily:2026-12-01"))
    return out


def _us_per_digest(
    work: list[tuple[Recipient, DigestContent, str]], settings: MailSettings
) -> tuple[float, int]:
    total = 0
    started = time.process_time()
    for recipient, content, key in work:
        total += len(compose_digest(recipient, content, key, settings).as_bytes())
    return (time.process_time() - started) / len(work) * 1e6, total // len(work)


def run_mail(size: int, seed: int) -> dict[str, Any]:
    """Figures of ``size`` digests (module docstring)."""
    settings = MailSettings(
        public_url="https://participation.example.fr", link_secret=SecretStr(SECRET)
    )
    shared = digests(size, seed, shared=True)
    cold = digests(size, seed + 1, shared=False)
    _us_per_digest(digests(50, seed + 2, shared=True), settings)  # templates compiled
    best = float("inf")
    size_bytes = 0
    for _ in range(RUNS):
        compose.clear_caches()  # each run pays its fragments, as a fresh round does
        us, size_bytes = _us_per_digest(shared, settings)
        best = min(best, us)
    compose.clear_caches()
    cold_us, _ = _us_per_digest(cold, settings)
    return {
        "name": "mail",
        "size": size,
        "digests_per_s": round(1e6 / best),
        "us_per_digest": round(best, 1),
        "cold_us_per_digest": round(cold_us, 1),
        "bytes_per_digest": size_bytes,
        "items_per_digest": ITEMS,
        "million_digests_core_s": round(best, 1),
        "cores": 1,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
