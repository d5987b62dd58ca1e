"""The AsyncAPI document kept in the repo is the one FastStream generates from the code."""

from __future__ import annotations

import json
from pathlib import Path

from consumers.app import asyncapi

DOCUMENT = Path(__file__).resolve().parent.parent / "consumers" / "asyncapi.json"


def test_the_kept_asyncapi_document_is_current() -> None:
    kept = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    assert kept == asyncapi(), (
        "consumers/asyncapi.json is stale: run `geo-engine outbox asyncapi "
        "--output consumers/asyncapi.json`"
    )


def test_it_names_every_stream_and_consumer_group() -> None:
    document = asyncapi()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {"events.project", "events.user", "events.engagement", "events.dead"}
    groups = {
        channel["bindings"]["redis"].get("groupName") for channel in document["channels"].values()
    }
    assert {"engagement", "fanout", "erasure"} <= groups
    schemas = document["components"]["schemas"]
    assert "NotificationClicked" in schemas and "DeadLetterEntry" in schemas
