"""The co-participation model over the platform's projects, keyed by project id: an item-to-item
similarity learned from engagement (``recommend train`` fits it with
:class:`recommender.coparticipation.ItemKNN` and saves it beside the learned ranker), read by
the ranking as a feature and as a candidate generator.

Saved as a NumPy ``.npz`` of plain arrays (ids and a CSR matrix's three arrays), read with
``allow_pickle=False``: loading it runs no code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import sparse

from contracts.errors import InvalidInput


@dataclass(frozen=True)
class CoParticipationIndex:
    """``ids``: sorted int64 project ids (N); ``similarity``: CSR (N, N), zero diagonal."""

    ids: npt.NDArray[np.int64]
    similarity: sparse.csr_matrix

    def rows(self, project_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
        """Row of each project id, -1 for a project the model has not seen."""
        pos = np.searchsorted(self.ids, project_ids)
        pos = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (len(self.ids) > 0) & (self.ids[pos] == project_ids) if len(self.ids) else False
        return np.where(found, pos, -1).astype(np.intp)

    def neighbours(self, history: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
        """The ``n`` project ids most co-participated with ``history`` (summed similarity),
        history excluded."""
        rows = self.rows(history)
        rows = rows[rows >= 0]
        if not len(rows):
            return np.zeros(0, dtype=np.int64)
        totals = np.asarray(self.similarity[rows].sum(axis=0)).ravel()
        totals[rows] = 0.0
        nonzero = np.flatnonzero(totals > 0)
        best = nonzero[np.argsort(-totals[nonzero], kind="stable")[:n]]
        return self.ids[best]

    def block(self, project_ids: npt.NDArray[np.int64]) -> sparse.csr_matrix:
        """Similarity among ``project_ids`` in their order: CSR (n, n); unseen ones are 0."""
        rows = self.rows(project_ids)
        seen = np.flatnonzero(rows >= 0)
        pick = sparse.csr_matrix(
            (np.ones(len(seen)), (seen, rows[seen])), shape=(len(project_ids), len(self.ids))
        )
        return sparse.csr_matrix(pick @ self.similarity @ pick.T)

    def save(self, path: Path) -> None:
        s = self.similarity
        np.savez(path, ids=self.ids, data=s.data, indices=s.indices, indptr=s.indptr)

    @classmethod
    def load(cls, path: Path) -> CoParticipationIndex:
        """InvalidInput when the file is missing or not such a model."""
        try:
            with np.load(path, allow_pickle=False) as f:
                ids = f["ids"].astype(np.int64)
                s = sparse.csr_matrix(
                    (f["data"], f["indices"], f["indptr"]), shape=(len(ids), len(ids))
                )
        except FileNotFoundError:
            raise InvalidInput(f"co-participation model {path} does not exist") from None
        except (KeyError, ValueError, OSError) as error:
            raise InvalidInput(f"{path} is not a co-participation model: {error}") from None
        if len(ids) and np.any(np.diff(ids) <= 0):
            raise InvalidInput(f"{path} is not a co-participation model: ids are not sorted")
        return cls(ids, s)
