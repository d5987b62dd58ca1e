"""Find communes by what a person types: a name or a postal code (the map's search field)."""

from __future__ import annotations

import re

import psycopg

from contracts.errors import InvalidInput
from contracts.territories import Place
from geo_engine.db import load_sql

PLACES_SQL = load_sql("geo_engine.territories", "places.sql")

# Letters of French place names and their plain form, hyphens and apostrophes made spaces; the
# SQL folds names with the same table (and the same Œ -> OE).
ACCENTED = "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝŸàáâãäåçèéêëìíîïñòóôõöùúûüýÿ-'’"
PLAIN = "AAAAAACEEEEIIIINOOOOOUUUUYYaaaaaaceeeeiiiinooooouuuuyy   "
_TABLE = str.maketrans(ACCENTED, PLAIN)


def normalise(text: str) -> str:
    """``text`` as the search compares it: ASCII lower case, every run of other characters
    (hyphens, apostrophes, spaces) one space. ``"L'Haÿ-les-Roses"`` is ``"l hay les roses"``."""
    folded = text.translate(_TABLE).replace("Œ", "OE").replace("œ", "oe").lower()
    return " ".join(re.findall(r"[a-z0-9]+", folded, flags=re.ASCII))


async def places_async(conn: psycopg.AsyncConnection, text: str, limit: int) -> list[Place]:
    """The communes (with an outline) matching ``text``, best first, at most ``limit``.

    Raises InvalidInput when ``text`` has no letter or digit to search for."""
    query = normalise(text)
    if not query:
        raise InvalidInput(f"the place {text!r} has no letter or digit to search for")
    cur = await conn.execute(
        PLACES_SQL,
        {"q": query, "accented": ACCENTED, "plain": PLAIN, "limit": limit},
        prepare=True,
    )
    return [
        Place(code=code, name=name, departement=dep, population=pop, lon=lon, lat=lat)
        for code, name, dep, pop, lon, lat in await cur.fetchall()
    ]
