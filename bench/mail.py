"""Composing digests on one core, as a daily round does for each user with something new.

No database, no network: ``size`` digests of ``ITEMS`` items each (realistic French titles,
organisations, reasons, a closing date and a meeting now and then, the recipients spread over
the zones of France), each rendered (Jinja2, plain text and HTML), its links signed and the
whole mail serialised to the bytes handed to SMTP (:func:`consumers.mail.compose_digest`).

- ``digests_per_s``: digests composed and serialised per second, the best of ``RUNS`` runs;
- ``us_per_digest``: the same as microseconds per digest;
- ``bytes_per_digest``: the mean size of a digest as it goes to SMTP;
- ``million_digests_core_s``: the core-seconds one million digests take at that rate.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from consumers.content import SECTIONS, DigestContent, Item, MeetingInfo, Recipient
from consumers.mail import compose_digest
from consumers.settings import MailSettings

ITEMS = 10
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


def digests(count: int, seed: int) -> list[tuple[Recipient, DigestContent, str]]:
    """``count`` recipients with a daily digest of ``ITEMS`` items each, and its key."""
    draw = random.Random(seed)  # noqa: S311 - a reproducible fixture
    start = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)
    out = []
    for n in range(count):
        user = 1_000_000 + n
        items = []
        for i in range(ITEMS):
            project = draw.randrange(1, 2_000_000)
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
            items.append(
                Item(
                    project_id=project,
                    title=TITLES[(n + i) % len(TITLES)],
                    organisation=draw.choice(ORGANISATIONS),
                    tool=draw.choice(TOOLS),
                    kind=draw.choice(KINDS),
                    reason=draw.choice(REASONS),
                    section=SECTIONS[min(i // 3, len(SECTIONS) - 1)],
                    closes_at=start + timedelta(days=draw.randrange(1, 60))
                    if draw.random() < 0.4
                    else None,
                    meeting=meeting,
                )
            )
        recipient = Recipient(user, ZONES[n % len(ZONES)], COMMUNES[n % len(COMMUNES)])
        content = DigestContent("daily", date(2026, 12, 1), tuple(items))
        out.append((recipient, content, f"digest:{user}:daily:2026-12-01"))
    return out


def run_mail(size: int, seed: int) -> dict[str, Any]:
    settings = MailSettings(
        public_url="https://participation.example.fr", link_secret=SecretStr(SECRET)
    )
    work = digests(size, seed)
    for recipient, content, key in work[:50]:  # templates compiled, zones loaded
        compose_digest(recipient, content, key, settings).as_bytes()
    best = float("inf")
    total = 0
    for _ in range(RUNS):
        total = 0
        started = time.perf_counter()
        for recipient, content, key in work:
            total += len(compose_digest(recipient, content, key, settings).as_bytes())
        best = min(best, time.perf_counter() - started)
    return {
        "digests_per_s": round(size / best),
        "us_per_digest": round(best / size * 1e6, 1),
        "bytes_per_digest": round(total / size),
        "items_per_digest": ITEMS,
        "million_digests_core_s": round(best / size * 1e6, 1),
    }
