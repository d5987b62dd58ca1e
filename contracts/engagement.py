"""What users tell and do that the recommender learns from: follows, engagement, feedback.

The request bodies of ``/v1/users/{id}/feedback``, ``/follows/{organisation_id}`` and
``/engagements``, and the rows they answer with.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.catalog import Id
from contracts.themes import Theme


class EngagementKind(StrEnum):
    """``participation``: the user took part (answered, voted, contributed); ``click``: they
    opened the project."""

    PARTICIPATION = "participation"
    CLICK = "click"


class FeedbackKind(StrEnum):
    """ "Pas intéressé" and "pas ma commune" name a project; "moins de ce thème" a theme."""

    NOT_INTERESTED = "not_interested"
    NOT_MY_COMMUNE = "not_my_commune"
    LESS_OF_THEME = "less_of_theme"


PROJECT_FEEDBACK = frozenset({FeedbackKind.NOT_INTERESTED, FeedbackKind.NOT_MY_COMMUNE})


class FeedbackWrite(BaseModel):
    """``not_interested`` and ``not_my_commune`` take ``project_id`` (and no theme);
    ``less_of_theme`` takes a ``theme``, or a ``project_id`` whose themes are then all muted."""

    model_config = ConfigDict(extra="forbid")
    kind: FeedbackKind
    project_id: Id | None = None
    theme: Theme | None = None

    @model_validator(mode="after")
    def _target_fits_kind(self) -> Self:
        if self.kind in PROJECT_FEEDBACK:
            if self.project_id is None:
                raise ValueError(f"{self.kind.value} needs project_id")
            if self.theme is not None:
                raise ValueError(f"{self.kind.value} takes project_id only, not theme")
        elif (self.project_id is None) == (self.theme is None):
            raise ValueError("less_of_theme takes one of theme or project_id")
        return self


class FeedbackRow(BaseModel):
    """One stored feedback: a project (``project_id``) or a muted theme (``theme``)."""

    user_id: int
    kind: FeedbackKind
    project_id: int | None
    theme: Theme | None
    created_at: datetime


class FeedbackStored(BaseModel):
    """The rows a feedback stands for (a project given for ``less_of_theme`` mutes each of its
    themes: one row each); ``created`` counts those that are new (0: a repeat)."""

    feedback: list[FeedbackRow]
    created: int = Field(ge=0)


class FollowRow(BaseModel):
    user_id: int
    organisation_id: int
    created_at: datetime
    created: bool = Field(description="false when the user already followed it")


class EngagementWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project_id: Id
    kind: EngagementKind


class EngagementRow(BaseModel):
    """A user's engagement with a project, ``count`` times from ``first_at`` to ``last_at``."""

    user_id: int
    project_id: int
    kind: EngagementKind
    first_at: datetime
    last_at: datetime
    count: int
