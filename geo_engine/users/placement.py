"""Bulk point-in-commune for millions of users, in memory, with the same answers as ``locate.sql``.

A lookup grid answers at once every point whose cell lies wholly inside one commune; points in
cells crossed by a boundary fall back to an exact test (STRtree candidates, prepared polygons,
``intersects_xy``, i.e. ``ST_Covers``). The polygons are the very pieces ``locate.sql`` tests
(``commune_piece``, the ``ST_Subdivide``'d outlines): cutting moves an outline's edges by a few
ulps, enough to change the answer for a point lying exactly on an edge, so testing the whole
outlines would not always agree with locate. Ties (a point on a border or in a sliver overlap) go
to the lowest INSEE code, the rule ``locate.sql`` documents. Inside Paris, the arrondissement is the
nearest outline (distance 0 when inside), ties to the lowest code, as in ``locate.sql``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg
import shapely

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]

NO_COMMUNE = -1
_MIXED = -1  # grid cell crossed by a boundary: exact test needed
_OUTSIDE = -2  # grid cell in no commune
_EPS = 1e-9  # degrees: a boundary this close to a cell marks it
_PIECES_AT_ONCE = 2_000  # outline pieces densified at once while building a grid


@dataclass(frozen=True)
class _Grid:
    x0: float
    y0: float
    cell: float
    owner: IntArray  # (ny, nx): commune index, _MIXED or _OUTSIDE

    def lookup(self, x: FloatArray, y: FloatArray) -> IntArray:
        """Owner of each point's cell; _MIXED for points outside this grid."""
        ny, nx = self.owner.shape
        ix = np.floor((x - self.x0) / self.cell).astype(np.int64)
        iy = np.floor((y - self.y0) / self.cell).astype(np.int64)
        inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        out = np.full(x.shape, _MIXED, dtype=np.int32)
        out[inside] = self.owner[iy[inside], ix[inside]]
        return out


def _exact(
    tree: shapely.STRtree, x: FloatArray, y: FloatArray, owner: IntArray | None = None
) -> IntArray:
    """Lowest owner (``owner[polygon]``, or the polygon's index) of the polygons covering each
    point (NO_COMMUNE when none)."""
    result = np.full(x.shape, np.iinfo(np.int32).max, dtype=np.int32)
    if x.size == 0:
        return np.full(x.shape, NO_COMMUNE, dtype=np.int32)
    # Bounding boxes from the tree, then the exact test on prepared polygons: much faster than
    # the tree's own predicate, which prepares the points rather than the polygons.
    point_idx, poly_idx = tree.query(shapely.points(x, y))
    hit = shapely.intersects_xy(tree.geometries[poly_idx], x[point_idx], y[point_idx])
    point_idx, poly_idx = point_idx[hit], poly_idx[hit]
    found = poly_idx.astype(np.int32) if owner is None else owner[poly_idx]
    np.minimum.at(result, point_idx, found)
    result[result == np.iinfo(np.int32).max] = NO_COMMUNE
    return result


def _build_grid(
    polys: npt.NDArray[np.object_],
    members: IntArray,
    tree: shapely.STRtree,
    owner: IntArray,
    cell: float,
) -> _Grid:
    """Grid over the bounding box of ``polys[members]``.

    A cell is marked when any ring passes within _EPS of it (rings are densified to half a cell
    so each segment's bounding box covers every cell it crosses). Unmarked cells form connected
    areas that no boundary crosses, so one test of one cell centre classifies a whole area.
    """
    from scipy import ndimage  # slow to import; only index builds need it

    xmin, ymin, xmax, ymax = shapely.total_bounds(polys[members])
    x0, y0 = xmin - cell, ymin - cell
    nx = int(np.ceil((xmax - x0) / cell)) + 2
    ny = int(np.ceil((ymax - y0) / cell)) + 2
    marked = np.zeros((ny, nx), dtype=bool)
    # Some pieces at a time: the densified rings of all France would take gigabytes at once.
    for start in range(0, members.size, _PIECES_AT_ONCE):
        some = polys[members[start : start + _PIECES_AT_ONCE]]
        rings = shapely.segmentize(shapely.get_rings(shapely.get_parts(some)), cell / 2)
        coords, ring = shapely.get_coordinates(rings, return_index=True)
        same = ring[1:] == ring[:-1]
        a, b = coords[:-1][same], coords[1:][same]
        lo = np.minimum(a, b) - _EPS
        hi = np.maximum(a, b) + _EPS
        ix_lo = np.floor((lo[:, 0] - x0) / cell).astype(np.int64)
        ix_hi = np.floor((hi[:, 0] - x0) / cell).astype(np.int64)
        iy_lo = np.floor((lo[:, 1] - y0) / cell).astype(np.int64)
        iy_hi = np.floor((hi[:, 1] - y0) / cell).astype(np.int64)
        for iy in (iy_lo, iy_hi):
            for ix in (ix_lo, ix_hi):
                marked[iy, ix] = True
    labels, count = ndimage.label(~marked)
    del marked
    # One representative cell per unmarked area (any of its cells), a band of rows at a time.
    first = np.zeros(count + 1, dtype=np.int64)
    rows = max(1, _PIECES_AT_ONCE * 100 // nx)
    for r0 in range(0, ny, rows):
        band = labels[r0 : r0 + rows].ravel()
        first[band] = np.arange(r0 * nx, r0 * nx + band.size, dtype=np.int64)
    ry, rx = np.divmod(first[1:], nx)
    owner_of_label = _exact(tree, x0 + (rx + 0.5) * cell, y0 + (ry + 0.5) * cell, owner)
    owner_of_label[owner_of_label == NO_COMMUNE] = _OUTSIDE
    # Label 0 is the marked cells.
    owner = np.concatenate([np.array([_MIXED], dtype=np.int32), owner_of_label])[labels]
    return _Grid(x0, y0, cell, owner)


class CommuneIndex:
    """In-memory index of commune (and Paris arrondissement) outlines for bulk placement."""

    def __init__(
        self,
        codes: list[str],
        groups: list[str],
        piece_codes: list[str],
        piece_wkbs: list[bytes],
        arr_codes: list[str],
        arr_wkbs: list[bytes],
        arr_commune: str | None,
        cell: float = 0.002,
    ) -> None:
        """``codes`` and ``groups`` list the communes; ``piece_wkbs`` are the pieces their
        outlines are cut into, ``piece_codes[i]`` the commune piece ``i`` belongs to."""
        # Sorted codes: the lowest index is the lowest INSEE code, which is the tie-break rule.
        order = np.argsort(np.array(codes))
        self.codes = np.array(codes)[order]
        group_of = np.array(groups)[order]
        owner_codes = np.array(piece_codes)
        self.owner = np.searchsorted(self.codes, owner_codes).astype(np.int32)
        known = self.owner < len(self.codes)
        known[known] = self.codes[self.owner[known]] == owner_codes[known]
        if not known.all():
            raise ValueError(f"pieces of unknown communes: {sorted(set(owner_codes[~known]))}")
        self.polys = shapely.from_wkb(np.array(piece_wkbs, dtype=object))
        shapely.prepare(self.polys)
        self.tree = shapely.STRtree(self.polys)
        piece_group = group_of[self.owner]
        self.grids = [
            _build_grid(
                self.polys,
                np.flatnonzero(piece_group == g).astype(np.int32),
                self.tree,
                self.owner,
                cell,
            )
            for g in sorted(set(groups))
        ]
        arr_order = np.argsort(np.array(arr_codes)) if arr_codes else np.array([], dtype=int)
        self.arr_codes = np.array(arr_codes)[arr_order] if arr_codes else np.array([], dtype=str)
        arr_polys = shapely.from_wkb(np.array(arr_wkbs, dtype=object)[arr_order])
        shapely.prepare(arr_polys)
        self.arr_tree = shapely.STRtree(arr_polys) if arr_codes else None
        self.arr_commune = arr_commune

    @classmethod
    def from_db(cls, conn: psycopg.Connection, cell: float = 0.002) -> CommuneIndex:
        """The communes in force, as the pieces their outlines are cut into for locate
        (``commune_piece``), so both test the very same polygons. Grids: one for
        mainland+Corsica, one per overseas région, so no grid spans an ocean."""
        rows = conn.execute(
            """SELECT code, CASE zone WHEN 'metro' THEN 'metro' ELSE region_code END
               FROM commune WHERE geom IS NOT NULL"""
        ).fetchall()
        pieces = conn.execute(
            "SELECT commune_code, ST_AsBinary(geom) FROM commune_piece ORDER BY id"
        ).fetchall()
        arr = conn.execute(
            """SELECT code, ST_AsBinary(geom), commune_code FROM arrondissement
               WHERE geom IS NOT NULL"""
        ).fetchall()
        return cls(
            codes=[r[0] for r in rows],
            groups=[r[1] for r in rows],
            piece_codes=[r[0] for r in pieces],
            piece_wkbs=[r[1] for r in pieces],
            arr_codes=[r[0] for r in arr],
            arr_wkbs=[r[1] for r in arr],
            arr_commune=arr[0][2] if arr else None,
            cell=cell,
        )

    def place(self, lon: FloatArray, lat: FloatArray) -> IntArray:
        """Index into ``self.codes`` of each point's commune, NO_COMMUNE where there is none."""
        x = np.asarray(lon, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        result = np.full(x.shape, _MIXED, dtype=np.int32)
        for grid in self.grids:
            todo = result == _MIXED
            found = grid.lookup(x[todo], y[todo])
            result[todo] = found
            # A point answered "outside" by one grid may belong to another grid's zone.
            outside = np.flatnonzero(todo)[found == _OUTSIDE]
            result[outside] = _MIXED
        mixed = np.flatnonzero(result == _MIXED)
        result[mixed] = _exact(self.tree, x[mixed], y[mixed], self.owner)
        return result

    def arrondissements(
        self, commune: IntArray, lon: FloatArray, lat: FloatArray
    ) -> npt.NDArray[np.object_]:
        """Arrondissement code of points placed in the commune that has outlined arrondissements
        (Paris), None elsewhere."""
        out = np.full(commune.shape, None, dtype=object)
        if self.arr_tree is None or self.arr_commune is None:
            return out
        hit = np.flatnonzero(self.codes == self.arr_commune)
        if hit.size == 0:
            return out
        in_city = np.flatnonzero(commune == hit[0])
        if in_city.size == 0:
            return out
        xs, ys = np.asarray(lon)[in_city], np.asarray(lat)[in_city]
        best = _exact(self.arr_tree, xs, ys)
        # Outlines of another survey than the commune's: the rare point outside all takes the
        # nearest, ties to the lowest code.
        lost = np.flatnonzero(best == NO_COMMUNE)
        if lost.size:
            point_idx, arr_idx = self.arr_tree.query_nearest(
                shapely.points(xs[lost], ys[lost]), all_matches=True
            )
            nearest = np.full(lost.shape, np.iinfo(np.int32).max, dtype=np.int32)
            np.minimum.at(nearest, point_idx, arr_idx.astype(np.int32))
            best[lost] = nearest
        out[in_city] = self.arr_codes[best]
        return out
