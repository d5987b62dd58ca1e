"""What a scorer is: a named function from a task to scores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from recommender.evaluation.tasks import TASKS, Task, TaskData

Kind = Literal["engine", "baseline"]


@dataclass(frozen=True)
class Scorer:
    """``score(task)`` returns (n_test × len(task.items)) scores, higher first, ``-inf`` for an
    item never to be ranked. It learns only from ``task.train_ballots`` (and, in task C, the
    given ``task.history``), never from the test voters' rows."""

    name: str
    kind: Kind
    score: Callable[[TaskData], np.ndarray]
    tasks: frozenset[Task] = frozenset(TASKS)

    def __call__(self, task: TaskData) -> np.ndarray:
        return self.score(task)
