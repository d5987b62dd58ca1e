"""Which territories a point belongs to, one point at a time (the map's and the CLI's locate)."""

from __future__ import annotations

from typing import Any

import psycopg

from contracts.territories import AreaRef, CommuneRef, EpciRef, Location, parse_coordinates
from geo_engine.db import load_sql

LOCATE_SQL = load_sql("geo_engine.territories", "locate.sql")


def locate(conn: psycopg.Connection, lat: float, lon: float) -> Location | None:
    """The point's commune and its chain, or None when no commune covers it (sea, abroad)."""
    lat, lon = parse_coordinates(lat, lon)
    row = conn.execute(LOCATE_SQL, {"lon": lon, "lat": lat}, prepare=True).fetchone()
    return None if row is None else _location(row)


async def locate_async(conn: psycopg.AsyncConnection, lat: float, lon: float) -> Location | None:
    """``locate`` for the API's event loop."""
    lat, lon = parse_coordinates(lat, lon)
    cur = await conn.execute(LOCATE_SQL, {"lon": lon, "lat": lat}, prepare=True)
    row = await cur.fetchone()
    return None if row is None else _location(row)


def _location(row: tuple[Any, ...]) -> Location:
    (
        code,
        name,
        population,
        siren,
        epci_name,
        xxl,
        members,
        dep_code,
        dep_name,
        reg_code,
        reg_name,
        arr_code,
        arr_name,
    ) = row
    return Location(
        commune=CommuneRef(code=code, name=name, population=population),
        epci=None
        if siren is None
        else EpciRef(code=siren, name=epci_name, xxl=xxl, members=members),
        departement=AreaRef(code=dep_code, name=dep_name),
        region=AreaRef(code=reg_code, name=reg_name),
        arrondissement=None if arr_code is None else AreaRef(code=arr_code, name=arr_name),
    )
