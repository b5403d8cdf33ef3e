"""Films deposited conformally on a collector cell: each follows the foil surface at a constant
thickness (seed 002: an alloy or complex-oxide film, a carbon layer, a lithium layer).

The films are stacked in order on the foil: film i fills the band between the offsets of the foil
surface by the depths d_{i-1} and d_i (cumulative thicknesses, d_0 = 0), and the mix fills the
rest. An offset of the surface by d is the surface moved by d along its normal into the mix; it
is a valid film surface only while it does not cross itself: d must stay below the radius of
every bend of the surface that is concave seen from the mix (the foot fillets, the start of a
recurved widening), and below half of every gap the surface faces across (the undercut between a
neck and its head, neighbouring projections).

The area of the band between the offsets d0 < d1 of a smooth curve of length L that turns by the
total signed angle Theta (counter-clockwise positive, the band on the curve's right) is exactly

    (d1 - d0) L + (d1^2 - d0^2) / 2 * Theta,

since the offset at depth d has length L + d Theta. Over a cell the surface starts and ends
level (the foil), so Theta = 0 and every film's area is its thickness times the surface length.

Everything here is in micrometres, like the builders' models.
"""

from __future__ import annotations

from dataclasses import dataclass

import gmsh
import numpy as np

from meshes.built import OUTLINE_POINTS_PER_HALF
from solver.errors import GeometryError

# The closed-form outline is sampled this many times more densely than its spline points for
# the normals, the fit checks and the areas; every DENSITY-th dense point is a spline point.
_DENSITY = 8
# An offset point this much closer to the surface than the film depth means the film surface
# crosses itself there (a valid offset point is exactly at the depth from its own base point).
_CROSSING_TOLERANCE = 1e-3
# Samples of the film surface's upper envelope over the cell, for the undercut left under it.
_ENVELOPE_SAMPLES = 20001


@dataclass(frozen=True)
class Film:
    """One conformal film: its material and thickness (micrometres inside the builders)."""

    material: str
    thickness: float


@dataclass(frozen=True)
class ProjectionOutline:
    """A projection's outline sampled densely, from its right foot over the top to its left foot,
    with the unit normals pointing out of the copper (to the right of that direction)."""

    points: np.ndarray  # (n, 2)
    normals: np.ndarray  # (n, 2)

    def offset(self, depth: float) -> np.ndarray:
        return self.points + depth * self.normals

    def spline_points(self, depth: float) -> np.ndarray:
        """The points of the spline at `depth`: those the copper outline's spline goes through
        (meshes.collector), moved along their normals."""
        return self.offset(depth)[::_DENSITY]

    def turning(self) -> float:
        """Total counter-clockwise turning of the tangent from foot to foot."""
        # The tangent is the normal turned a quarter counter-clockwise.
        angles = np.unwrap(np.arctan2(self.normals[:, 0], -self.normals[:, 1]))
        return float(angles[-1] - angles[0])

    def length(self) -> float:
        return float(np.sum(np.linalg.norm(np.diff(self.points, axis=0), axis=1)))


def projection_outline(axis: float, profile) -> ProjectionOutline:
    """The dense outline of a projection (RecurvedProfile or PlainProfile) centred at `axis`."""
    right_x, right_y = profile.right_outline((OUTLINE_POINTS_PER_HALF - 1) * _DENSITY + 1)
    x = np.concatenate([axis + right_x, axis - right_x[::-1][1:]])
    y = np.concatenate([right_y, right_y[::-1][1:]])
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    tangent = np.column_stack([np.gradient(x, arc), np.gradient(y, arc)])
    tangent /= np.linalg.norm(tangent, axis=1)[:, None]
    normals = np.column_stack([tangent[:, 1], -tangent[:, 0]])
    # Both profiles meet the foil tangentially: at the feet the surface's normal is the foil's.
    normals[0] = normals[-1] = (0.0, 1.0)
    return ProjectionOutline(np.column_stack([x, y]), normals)


def surface_length(outlines: list[ProjectionOutline], width: float) -> float:
    """Length of the foil surface over the cell: the level foil between the feet and the
    projections' outlines."""
    feet = sum(outline.points[0, 0] - outline.points[-1, 0] for outline in outlines)
    return width - feet + sum(outline.length() for outline in outlines)


def band_area(length: float, turning: float, inner: float, outer: float) -> float:
    """Area between the offsets at depths inner < outer of a curve of this length and total
    counter-clockwise turning, offset to its right (module docstring)."""
    return (outer - inner) * length + (outer**2 - inner**2) / 2 * turning


def film_areas(films: list[Film], outlines: list[ProjectionOutline], width: float) -> list[float]:
    """Exact area of every film over the cell (the surface turns by zero in all: its ends are
    level, but the sum is kept general)."""
    length = surface_length(outlines, width)
    turning = sum(outline.turning() for outline in outlines)
    depths = np.concatenate([[0.0], np.cumsum([film.thickness for film in films])])
    return [band_area(length, turning, depths[i], depths[i + 1]) for i in range(len(films))]


def describe_films(films: list[Film]) -> str:
    listed = ", ".join(f"{film.material} {film.thickness:.4g} um" for film in films)
    total = sum(film.thickness for film in films)
    return f"films ({listed}: {total:.4g} um in all)"


def check_films_fit(films: list[Film], outlines: list[ProjectionOutline], width: float,
                    mix_thickness: float, shape_keys: str) -> None:
    """A one-line GeometryError if the films do not fit on this surface under the mix.

    `shape_keys` names the parameters of the surface that set its bends and gaps.
    """
    if not films:
        return
    depth = sum(film.thickness for film in films)
    shown = describe_films(films)
    top = max([depth] + [float(outline.offset(depth)[:, 1].max()) for outline in outlines])
    if not top < mix_thickness:
        raise GeometryError(
            f"geometry: {shown} reach {top:.4g} um over the foil, not below mix_thickness "
            f"({mix_thickness:.4g} um): thinner films or a thicker mix")
    for outline in outlines:
        offset = outline.offset(depth)
        # Where the depth exceeds the radius of a bend concave seen from the mix, the offset
        # runs backwards (a swallowtail).
        folded = np.einsum("ij,ij->i", np.diff(offset, axis=0), np.diff(outline.points, axis=0))
        if np.any(folded <= 0):
            x, y = offset[1:][np.argmin(folded)]
            raise GeometryError(
                f"geometry: {shown} do not fit: their total thickness exceeds the radius of a "
                f"concave bend of the foil surface near ({x:.3g}, {y:.3g}) um, where the film "
                f"surface would fold over itself; thinner films or gentler bends ({shape_keys})")
    crossing = _closest_approach(outlines, width, depth)
    if crossing is not None:
        x, y = crossing
        raise GeometryError(
            f"geometry: {shown} do not fit: the film surface would cross itself near "
            f"({x:.3g}, {y:.3g}) um, where the gap it must fill (an undercut, or between "
            f"projections) is narrower than twice the total thickness; thinner films or wider "
            f"gaps ({shape_keys})")
    # A film over a projection must end on the level foil inside the cell: the cell's sides are
    # where its periodic neighbours begin.
    for outline in outlines:
        offset = outline.offset(depth)
        if offset[:, 0].min() <= 0 or offset[:, 0].max() >= width:
            raise GeometryError(
                f"geometry: {shown} do not fit: over a projection they reach the side of the "
                f"cell (width {width:.4g} um); thinner films or narrower projections "
                f"({shape_keys})")


def _surface_samples(outlines: list[ProjectionOutline], width: float, depth: float):
    """The foil surface over the cell and its periodic neighbours as segments, and points of
    the film surface at `depth`; each tagged with the projection it belongs to (-1: the level
    foil or a neighbour) and its arc length along that projection's outline."""
    pieces = [(np.array([[width, 0.0], [-width, 0.0]]), -1)]  # level foil, under everything
    pieces += [(outline.points[::_DENSITY // 2], index) for index, outline in enumerate(outlines)]
    starts, ends, owners, arcs = [], [], [], []
    for shift in (-width, 0.0, width):
        for points, owner in pieces:
            points = points + np.array([shift, 0.0])
            lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
            starts.append(points[:-1])
            ends.append(points[1:])
            owners.append(np.full(len(lengths), owner if shift == 0 else -1))
            arcs.append(np.cumsum(lengths) - lengths / 2)
    segments = (np.concatenate(starts), np.concatenate(ends), np.concatenate(owners),
                np.concatenate(arcs))
    # The level film over the foil between the projections (under them is copper).
    level_x = np.linspace(0.0, width, 2001)
    for outline in outlines:
        level_x = level_x[(level_x >= outline.points[0, 0]) | (level_x <= outline.points[-1, 0])]
    points = [np.column_stack([level_x, np.full(len(level_x), depth)])]
    owners, arcs = [np.full(len(level_x), -2)], [np.zeros(len(level_x))]
    for index, outline in enumerate(outlines):
        base = outline.points[::_DENSITY // 2]
        lengths = np.linalg.norm(np.diff(base, axis=0), axis=1)
        points.append(outline.offset(depth)[::_DENSITY // 2])
        owners.append(np.full(len(base), index))
        arcs.append(np.concatenate([[0.0], np.cumsum(lengths)]))
    return segments, (np.concatenate(points), np.concatenate(owners), np.concatenate(arcs))


def _closest_approach(outlines: list[ProjectionOutline], width: float,
                      depth: float) -> tuple[float, float] | None:
    """A point of the film surface at `depth` that lies closer than `depth` to a part of the
    foil surface other than its own neighbourhood (the surface crosses itself there), or None.

    The surface within 3 x depth of a point's own base point along the outline is left out: a
    film surface closer than its depth to that can only fold at a bend (checked by the
    tangents), and the chords of the sampled outline at a tight concave bend are closer than
    the bend itself.
    """
    (start, end, segment_owner, segment_arc), (points, owner, arc) = _surface_samples(
        outlines, width, depth)
    direction = end - start
    squared = np.maximum(np.einsum("ij,ij->i", direction, direction), 1e-300)
    for block in range(0, len(points), 256):
        chunk = slice(block, block + 256)
        relative = points[chunk, None, :] - start[None]
        along = np.clip(np.einsum("pij,ij->pi", relative, direction) / squared, 0.0, 1.0)
        nearest = start[None] + along[..., None] * direction[None]
        distance = np.linalg.norm(points[chunk, None, :] - nearest, axis=2)
        own = ((owner[chunk, None] == segment_owner[None])
               & (np.abs(arc[chunk, None] - segment_arc[None]) < 3 * depth))
        too_close = np.where(own, np.inf, distance).min(axis=1) < depth * (
            1 - _CROSSING_TOLERANCE)
        if np.any(too_close):
            x, y = points[chunk][np.argmax(too_close)]
            return float(x), float(y)
    return None


def add_film_cover(outlines: list[ProjectionOutline], width: float, depth: float) -> int:
    """An OCC surface: everything over the level foil (y = 0) up to the surface's offset by
    `depth` (the projections and the films up to that depth), over the whole cell."""
    occ = gmsh.model.occ
    corner_right = occ.addPoint(width, depth, 0)
    points = [occ.addPoint(0, 0, 0), occ.addPoint(width, 0, 0), corner_right]
    curves = [occ.addLine(points[0], points[1]), occ.addLine(points[1], corner_right)]
    previous = corner_right
    for outline in sorted(outlines, key=lambda o: -o.points[0, 0]):
        spline = [occ.addPoint(x, y, 0) for x, y in outline.spline_points(depth)]
        curves += [occ.addLine(previous, spline[0]), occ.addSpline(spline)]
        previous = spline[-1]
    corner_left = occ.addPoint(0, depth, 0)
    curves += [occ.addLine(previous, corner_left), occ.addLine(corner_left, points[0])]
    return occ.addPlaneSurface([occ.addCurveLoop(curves)])
