"""Normalised territory names, so that the voters' district values, META district / subunit and
the projects' district columns of one city edition name the same territory alike.

``"ŚRÓDMIEŚCIE"``, ``"Śródmieście"`` and ``"srodmiescie"`` are one district; so are
``"Brynów Część Wschodnia-Osiedle Zgrzebnioka"`` and ``"Brynów-Część Wschodnia - Osiedle
Zgrzebnioka"``. Case, accents (including the letters NFKD does not decompose, such as ``ł``),
separators (``- _ / , | .``) and spaces do not count.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Letters with a stroke or ligature that Unicode decomposition leaves alone.
_FOLD = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe", "ı": "i"})
_SEPARATORS = re.compile(r"[\s\-_/,|.;:'’\"()]+")

# Values that say "no district" (Warsaw's ``-``), after normalisation.
_NO_DISTRICT = {"", "none", "nan", "null", "brak"}


@lru_cache(maxsize=65_536)
def normalise(name: str) -> str:
    """The comparable form of a territory name: lower case, no accents, single spaces."""
    decomposed = unicodedata.normalize("NFKD", name.casefold().translate(_FOLD))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SEPARATORS.sub(" ", bare.translate(_FOLD)).strip()


def district_or_none(name: str | None) -> str | None:
    """``normalise(name)``, or ``None`` for a blank or a placeholder such as ``-``."""
    if name is None:
        return None
    code = normalise(name)
    return None if code in _NO_DISTRICT else code
