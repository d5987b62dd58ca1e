"""Projects' texts as vectors, for the interest learned from engagement.

A project's document is its title, description and themes. Terms are hashed
(scikit-learn's HashingVectorizer: no vocabulary to keep, so a project published a minute ago
has its vector at once), weighted by sublinear term frequency times an inverse document
frequency when one is known (fitted over the catalogue by :func:`fit_idf`), and L2-normalised:
the dot product of two rows is their cosine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

N_FEATURES = 2**18

# Words that say nothing of a project's subject (articles, prepositions, pronouns, and the
# words every civic project uses).
FRENCH_STOP_WORDS: tuple[str, ...] = (
    "au",
    "aux",
    "avec",
    "ce",
    "ces",
    "dans",
    "de",
    "des",
    "du",
    "elle",
    "en",
    "et",
    "eux",
    "il",
    "je",
    "la",
    "le",
    "les",
    "leur",
    "lui",
    "ma",
    "mais",
    "me",
    "meme",
    "mes",
    "moi",
    "mon",
    "ne",
    "nos",
    "notre",
    "nous",
    "on",
    "ou",
    "par",
    "pas",
    "pour",
    "qu",
    "que",
    "qui",
    "sa",
    "se",
    "ses",
    "son",
    "sur",
    "ta",
    "te",
    "tes",
    "toi",
    "ton",
    "tu",
    "un",
    "une",
    "vos",
    "votre",
    "vous",
    "est",
    "sont",
    "ete",
    "etre",
    "avoir",
    "fait",
    "faire",
    "plus",
    "comme",
    "tout",
    "tous",
    "toute",
    "toutes",
    "cette",
    "cet",
    "entre",
    "vers",
    "chez",
    "sans",
    "sous",
    "aussi",
    "afin",
    "ainsi",
    "dont",
    "donc",
    "car",
    "si",
    "leurs",
    "projet",
    "projets",
    "consultation",
    "participation",
    "citoyens",
    "citoyenne",
    "citoyen",
    "habitants",
    "avis",
)

_VECTORIZER = HashingVectorizer(
    n_features=N_FEATURES,
    alternate_sign=False,
    norm=None,
    strip_accents="unicode",
    lowercase=True,
    stop_words=list(FRENCH_STOP_WORDS),
)


def documents(
    titles: Sequence[str], descriptions: Sequence[str], themes: Sequence[Sequence[str]]
) -> list[str]:
    """One document per project: title, description and theme slugs."""
    return [
        f"{t} {d} {' '.join(th)}" for t, d, th in zip(titles, descriptions, themes, strict=True)
    ]


def term_counts(docs: Sequence[str]) -> sparse.csr_matrix:
    """(len(docs), N_FEATURES) hashed term counts."""
    return sparse.csr_matrix(_VECTORIZER.transform(docs))


def fit_idf(docs: Sequence[str]) -> npt.NDArray[np.float32]:
    """Smoothed inverse document frequency over a corpus: ln((1 + n) / (1 + df)) + 1, per
    hashed term (scikit-learn's TfidfTransformer formula)."""
    counts = term_counts(docs)
    df = np.bincount(counts.indices, minlength=N_FEATURES)
    idf: npt.NDArray[np.float32] = (np.log((1 + len(docs)) / (1 + df)) + 1).astype(np.float32)
    return idf


def vectors(docs: Sequence[str], idf: npt.NDArray[np.float32] | None = None) -> sparse.csr_matrix:
    """L2-normalised rows of sublinear TF (× IDF when given): (len(docs), N_FEATURES)."""
    counts = term_counts(docs).astype(np.float32)
    counts.data = 1.0 + np.log(counts.data)
    if idf is not None:
        counts = sparse.csr_matrix(counts @ sparse.diags(idf))
    return sparse.csr_matrix(normalize(counts, norm="l2", copy=False))
