"""The in-app inbox as the API gives it: one item per project, kind (and meeting, reminder
lead) the loop wrote for a user, read through the visibility rule again."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.values import Integer

InboxKind = Literal[
    "published", "closing_soon", "results", "meeting_announced", "meeting_reminder", "recommended"
]


class InboxMeeting(BaseModel):
    """A physical meeting an item announces or reminds of (times with their offset)."""

    meeting_id: int
    kind: str = Field(examples=["reunion_publique"])
    title: str
    place: str
    starts_at: datetime
    ends_at: datetime
    cancelled: bool


class InboxItem(BaseModel):
    """One item: ``level`` is why the project concerns you (the words of the audience:
    commune, arrondissement, epci, area, radius, departement, region, national) or
    ``followed`` when you follow its organisation; ``reason`` says it in French."""

    project_id: int
    title: str
    organisation: str
    kind: InboxKind
    meeting_id: int = Field(description="0 when the item is not about a meeting")
    lead_days: int = Field(description="days before the meeting of a reminder, else 0")
    reason: str = Field(examples=["Concerne votre commune, Bayonne"])
    level: str
    created_at: datetime
    read: bool
    meeting: InboxMeeting | None


class InboxPage(BaseModel):
    """Your items, newest first; ``unread`` counts every unread item you may still see;
    ``next_cursor`` (null on the last page) gives the next page."""

    user_id: int
    unread: int
    items: list[InboxItem]
    next_cursor: str | None = None


class InboxKey(BaseModel):
    """Which item: its project, kind, and for meetings' kinds the meeting and reminder lead."""

    model_config = ConfigDict(extra="forbid")
    project_id: Annotated[int, Field(ge=1, le=2**63 - 1), Integer]
    kind: InboxKind
    meeting_id: Annotated[int, Field(ge=0, le=2**63 - 1), Integer] = 0
    lead_days: Annotated[int, Field(ge=0, le=365), Integer] = 0


class MarkRead(BaseModel):
    """Mark ``items`` read, or every item with ``all`` true (one of the two)."""

    model_config = ConfigDict(extra="forbid")
    items: list[InboxKey] = Field(default_factory=list, max_length=500)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> MarkRead:
        if self.all == bool(self.items):
            raise ValueError("give either a non-empty 'items' list or 'all': true, not both")
        return self


class Marked(BaseModel):
    """How many items this call marked read (already read ones not counted) and how many
    remain unread."""

    marked: int
    unread: int
