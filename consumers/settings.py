"""Settings of the retention loop (``GEO_ENGINE_*``), passed in, never read at import."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from geo_engine.settings import _Base


class StreamSettings(_Base):
    """The loop's streams: which broker carries them, names, consumer groups, batches and the
    redelivery policy (on NATS, ``claim_idle_ms`` is the durable consumers' ``ack_wait``)."""

    broker: Literal["redis", "nats"] = Field(
        default="redis",
        description="redis: Redis streams (GEO_ENGINE_REDIS_URL); nats: JetStream streams on "
        "a NATS cluster (GEO_ENGINE_NATS_URL)",
    )
    nats_url: str = Field(
        default="nats://127.0.0.1:54222,nats://127.0.0.1:54223,nats://127.0.0.1:54224",
        description="the NATS servers, comma-separated (scripts/nats_cluster.sh urls)",
    )
    nats_replicas: int = Field(
        default=3, ge=1, le=5, description="copies of each JetStream stream (R3 on 3 nodes)"
    )

    stream_prefix: str = Field(
        default="events", description="streams are <prefix>.project, .user, .engagement, .dead"
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="entries per XREADGROUP")
    polling_ms: int = Field(default=100, ge=1, le=60_000, description="XREADGROUP BLOCK, ms")
    claim_idle_ms: int = Field(
        default=30_000,
        ge=100,
        description="a pending entry idle this long is claimed by another consumer (XAUTOCLAIM)",
    )
    max_deliveries: int = Field(
        default=5, ge=1, le=100, description="deliveries after which an entry is dead-lettered"
    )
    max_len: int = Field(
        default=1_000_000,
        ge=1_000,
        description="approximate stream length kept, trimmed only below the oldest pending entry",
    )
    relay_batch: int = Field(
        default=5_000, ge=1, le=100_000, description="outbox rows per XADD round"
    )
    reconcile_grace_s: int = Field(
        default=300,
        ge=1,
        description="an event published this long ago and not consumed by every group is"
        " published again (at once after an empty Redis)",
    )
    max_event_bytes: int = Field(
        default=65_536, ge=1_024, description="a larger stream entry is dead-lettered unread"
    )


DEVELOPMENT_LINK_SECRET = "development-link-secret-change-me"  # noqa: S105 (refused in production)


class MailSettings(_Base):
    """Outgoing mail and the links it carries (consumers/mail/README.md)."""

    environment: Literal["development", "production"] = Field(
        default="development", description="`production` refuses the development link secret"
    )

    smtp_host: str = Field(default="127.0.0.1", description="SMTP server (a local sink in tests)")
    smtp_port: int = Field(default=2525, ge=1, le=65535, description="SMTP port")
    mail_from: str = Field(
        default="Participation citoyenne <ne-pas-repondre@geo-engine.example>",
        description="From: of every mail",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="base URL of the engine as people reach it (links, pixel, unsubscribe)",
    )
    link_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_LINK_SECRET),
        description="HMAC secret of the links in mails (click, open, unsubscribe)",
    )
    recipient_template: str = Field(
        default="citoyen-{user_id}@habitants.geo-engine.example",
        description=(
            "To: of a user's mails; the engine keeps no address, the network's gateway "
            "resolves this one"
        ),
    )
    smtp_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="seconds an SMTP connection or reply may take"
    )
    scanner_window_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="a link fetched this soon after its mail was sent is a mail scanner's",
    )
    scanner_burst_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="another link of the same mail fetched this soon after one is a scanner's",
    )

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> MailSettings:
        secret = self.link_secret.get_secret_value()
        if self.environment == "production" and (
            secret == DEVELOPMENT_LINK_SECRET or len(secret) < 32
        ):
            raise ValueError(
                "GEO_ENGINE_LINK_SECRET must be set to a secret of at least 32 characters "
                "in production"
            )
        if self.environment == "production" and not self.public_url.startswith("https://"):
            # RFC 8058: mailbox providers only honour a one-click unsubscribe over HTTPS.
            raise ValueError("GEO_ENGINE_PUBLIC_URL must be an https:// URL in production")
        return self

    @field_validator("recipient_template")
    @classmethod
    def _names_the_user(cls, value: str) -> str:
        if value.count("{user_id}") != 1 or "@" not in value:
            raise ValueError("must be an address holding {user_id} once")
        probe = value.replace("{user_id}", "1")
        if "{" in probe or "}" in probe:
            raise ValueError("only {user_id} may be substituted")
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class LoopSettings(_Base):
    """When and how much the loop sends."""

    weekly_budget: int = Field(
        default=5, ge=1, le=100, description="instant alerts per user and 7 days; the rest waits"
    )
    digest_hour: int = Field(default=8, ge=0, le=23, description="local hour of the digests")
    digest_size: int = Field(default=10, ge=1, le=50, description="items at most in a digest")
    relevance_threshold: float = Field(
        default=0.0, description="fan-out keeps a user when the recommender's score is above"
    )
    meeting_reminder_days: tuple[int, ...] = Field(
        default=(7, 1), description="days before a meeting its residents are reminded"
    )
    closing_soon_days: int = Field(
        default=7,
        ge=1,
        le=60,
        description="a project closing within this many days is 'closing soon'",
    )
    digest_picks: int = Field(
        default=3, ge=0, le=20, description="the recommender's picks added to a digest at most"
    )
    tick_s: float = Field(
        default=60.0, gt=0, le=3_600, description="seconds between two passes of the loop's clock"
    )
    mail_lease_s: float = Field(
        default=600.0,
        gt=0,
        description="a mail claimed this long ago and never marked sent was lost in a crash: "
        "it is sent again, with the same Message-ID",
    )
