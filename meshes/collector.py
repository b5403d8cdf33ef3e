"""Collector morphologies to compare with the recurved cell: a flat foil, plain projections
without undercut, and a random row of nodules roughened to a target Ra.

Every cell here is the recurved cell's (meshes.recurved): x in [0, width], the foil at
y in [-foil_thickness, 0], the mix up to y = mix_thickness, the same physical names (cells
`foil_material` = 1 and `mix_material` = 2; facets bottom, top, left, right and
`interface_{foil_material}_{mix_material}`) and periodic sides, so the unit-cell boundary
conditions apply unchanged and the summaries compare one to one.

The roughness is measured the way a stylus or an optical profilometer sees the surface: the
profile z(x) is the upper envelope of the copper outline (an undercut is hidden under its
head), and Ra is the mean absolute deviation of z from its least-squares mean line over the
whole cell (ISO 4287, with the cell as the evaluation length).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import gmsh
import numpy as np

from meshes.built import (
    MICROMETRE,
    OUTLINE_POINTS_PER_HALF,
    BuiltGeometry,
    add_physical_group,
    boundary_tags,
    children,
    element_quality,
    entities_on_plane,
    generate_mesh,
    gmsh_errors,
    make_periodic,
    micrometres,
    refine_along,
    require_positive,
)
from meshes.films import (
    Film,
    ProjectionOutline,
    add_film_cover,
    check_films_fit,
    film_areas,
    projection_outline,
)
from meshes.profiles import RecurvedProfile
from solver.errors import GeometryError

logger = logging.getLogger(__name__)

NoduleShape = Literal["recurved", "plain", "mixed"]

# Shapes of the generated nodules, relative to their width (the head of a recurved nodule, the
# base of a plain one). The recurved ratios are those of cases/recurved-2d.toml (neck 1.4 um
# under a 2.6 um head, neck at 0.4 of the height).
_NECK_TO_HEAD = 0.55
_NECK_HEIGHT_FRACTION = 0.4
_TOP_TO_BASE = 0.5
# Widths are uniform in nodule_width x [1 - spread, 1 + spread], heights in the height scale x
# [1 - spread, 1 + spread]: varied enough to look random, never so small a neck cannot be meshed.
_WIDTH_SPREAD = 0.25
_HEIGHT_SPREAD = 0.4
# Ra is matched well inside the 5% of the target the tests allow, so the spline fitted through the
# outline (which moves Ra by a fraction of a percent) cannot push it outside.
_RA_TOLERANCE = 0.002
_RA_ITERATIONS = 40
# Samples of the profile over the evaluation length, for Ra.
_PROFILE_SAMPLES = 20001


@dataclass(frozen=True)
class PlainProfile:
    """A projection without undercut: a symmetric trapezoid with rounded corners.

    The straight sides run from half-width base_width/2 at the foil to top_width/2 at `height`
    (top_width <= base_width: the projection never widens upwards). Both the concave foot corner
    and the convex top corner are rounded by arcs of `fillet_radius` tangent to the sides, the
    foil and the flat top. Both corners have the same interior angle, so the copper the foot
    fillets add equals what the top fillets take: the area is the trapezoid's exactly.
    """

    base_width: float
    top_width: float
    height: float
    fillet_radius: float

    @property
    def side_angle(self) -> float:
        """Angle of the side, going up, from the foil's +x direction: in [pi/2, pi)."""
        return math.atan2(self.height, (self.top_width - self.base_width) / 2)

    @property
    def tangent_length(self) -> float:
        """Distance from a sharp corner to where its fillet touches the two straight edges."""
        return self.fillet_radius / math.tan(self.side_angle / 2)

    @property
    def side_length(self) -> float:
        return math.hypot(self.height, (self.base_width - self.top_width) / 2)

    @property
    def foot_width(self) -> float:
        """Width on the foil, fillets included."""
        return self.base_width + 2 * self.tangent_length

    def area(self) -> float:
        """Cross-section area above the foil: the trapezoid's (the fillets cancel)."""
        return (self.base_width + self.top_width) / 2 * self.height

    def undercut_area(self) -> float:
        """Zero: the half-width never grows with height, so nothing lies under the projection."""
        return 0.0

    def right_corners(self) -> dict[str, tuple[float, float]]:
        """The points that define the right half, x measured from the projection's axis."""
        base, top = self.base_width / 2, self.top_width / 2
        radius, tangent = self.fillet_radius, self.tangent_length
        side = np.array([top - base, self.height]) / self.side_length
        foot_side = np.array([base, 0.0]) + tangent * side
        top_side = np.array([top, self.height]) - tangent * side
        return {
            "foot": (base + tangent, 0.0),
            "foot_centre": (base + tangent, radius),
            "foot_side": (float(foot_side[0]), float(foot_side[1])),
            "top_side": (float(top_side[0]), float(top_side[1])),
            "top_centre": (top - tangent, self.height - radius),
            "top_end": (top - tangent, self.height),
        }

    def right_outline(self, point_count: int) -> tuple[np.ndarray, np.ndarray]:
        """`point_count` points evenly spaced in arc length from the right foot to (0, height)."""
        corners = self.right_corners()
        radius, turn = self.fillet_radius, math.pi - self.side_angle
        dense = 2000
        foot_angle = np.linspace(-math.pi / 2, -math.pi / 2 - turn, dense)
        top_angle = np.linspace(math.pi / 2 - turn, math.pi / 2, dense)
        (foot_x, foot_y), (top_x, top_y) = corners["foot_centre"], corners["top_centre"]
        x = np.concatenate([
            foot_x + radius * np.cos(foot_angle),
            top_x + radius * np.cos(top_angle),
            [0.0],
        ])
        y = np.concatenate([
            foot_y + radius * np.sin(foot_angle),
            top_y + radius * np.sin(top_angle),
            [self.height],
        ])
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
        targets = np.linspace(0.0, arc[-1], point_count)
        return np.interp(targets, arc, x), np.interp(targets, arc, y)


Profile = RecurvedProfile | PlainProfile


@dataclass(frozen=True)
class Projection:
    """One projection of a cell: its shape and the x of its axis (micrometres)."""

    axis: float
    profile: Profile

    def outline(self) -> ProjectionOutline:
        return projection_outline(self.axis, self.profile)


def is_recurved(right_x: np.ndarray) -> bool:
    """Whether an outline, sampled from the foot upwards, widens again above a narrower part."""
    narrowest_below = np.minimum.accumulate(right_x)
    return bool(np.max(right_x - narrowest_below) > 1e-6 * np.max(right_x))


def upper_envelope(polylines: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """The highest y of the polylines over each x of `grid` (increasing).

    Every segment is interpolated at the grid points its x-range covers; a vertical segment
    counts with its higher end.
    """
    envelope = np.full(grid.shape, -np.inf)
    for x, y in polylines:
        x0, x1, y0, y1 = x[:-1], x[1:], y[:-1], y[1:]
        first = np.searchsorted(grid, np.minimum(x0, x1), side="left")
        stop = np.searchsorted(grid, np.maximum(x0, x1), side="right")
        counts = stop - first
        segment = np.repeat(np.arange(len(x0)), counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        index = first[segment] + offset
        span = x1[segment] - x0[segment]
        vertical = span == 0
        fraction = (grid[index] - x0[segment]) / np.where(vertical, 1.0, span)
        values = np.where(
            vertical,
            np.maximum(y0[segment], y1[segment]),
            y0[segment] + fraction * (y1[segment] - y0[segment]),
        )
        np.maximum.at(envelope, index, values)
    if not np.all(np.isfinite(envelope)):
        raise RuntimeError("the profile does not cover the whole evaluation length")
    return envelope


def arithmetic_mean_roughness(x: np.ndarray, z: np.ndarray) -> float:
    """Ra (ISO 4287): mean |z - mean line| over uniformly spaced x, least-squares mean line."""
    slope, intercept = np.polyfit(x, z, 1)
    return float(np.mean(np.abs(z - (slope * x + intercept))))


def profile_ra(projections: list[Projection], length: float) -> float:
    """Ra of the upper envelope of the foil surface and the projections' closed-form outlines."""
    polylines = [(np.array([0.0, length]), np.zeros(2))]
    for projection in projections:
        right_x, right_y = projection.profile.right_outline(400)
        polylines.append((projection.axis + right_x, right_y))
        polylines.append((projection.axis - right_x, right_y))
    grid = np.linspace(0.0, length, _PROFILE_SAMPLES)
    return arithmetic_mean_roughness(grid, upper_envelope(polylines, grid))


# --- The cells -----------------------------------------------------------------------------


def build_flat_2d(
    pitch: float,
    foil_thickness: float,
    mix_thickness: float,
    mesh_size: float,
    interface_mesh_size: float | None = None,
    foil_material: str = "copper",
    mix_material: str = "mix",
    films: Sequence[tuple[str, float]] = (),
) -> BuiltGeometry:
    """Mesh a period `pitch` of a flat foil under a mix layer (rank 0 only; sizes in metres).

    `films`: (material, thickness) of films deposited in order on the foil under the mix
    (meshes.films), as for every cell here.
    """
    sizes = _cell_sizes("pitch", pitch, foil_thickness, mix_thickness, mesh_size,
                        interface_mesh_size)
    _check_cell(sizes, foil_material, mix_material)
    sizes_um = _in_micrometres(sizes)
    film_list = check_films(films, foil_material, mix_material)
    check_films_fit(film_list, [], sizes_um["pitch"], sizes_um["mix_thickness"], "pitch")
    with gmsh_errors(_describe("flat cell", sizes)):
        return build_cell(sizes_um, "pitch", [], foil_material, mix_material, film_list)


def build_plain_2d(
    pitch: float,
    foil_thickness: float,
    base_width: float,
    top_width: float,
    height: float,
    fillet_radius: float,
    mix_thickness: float,
    mesh_size: float,
    interface_mesh_size: float | None = None,
    foil_material: str = "copper",
    mix_material: str = "mix",
    films: Sequence[tuple[str, float]] = (),
) -> BuiltGeometry:
    """Mesh one period of a foil with a plain (trapezoidal) projection under a mix layer.

    The recurved cell's counterpart without undercut: the projection is centred at pitch/2
    (see PlainProfile). Rank 0 only; sizes in metres.
    """
    sizes = _cell_sizes("pitch", pitch, foil_thickness, mix_thickness, mesh_size,
                        interface_mesh_size)
    shape = {"base_width": base_width, "top_width": top_width, "height": height,
             "fillet_radius": fillet_radius}
    sizes.update(shape)
    _check_cell(sizes, foil_material, mix_material)
    _check_plain(sizes)
    sizes_um = _in_micrometres(sizes)
    projection = Projection(sizes_um["pitch"] / 2,
                            PlainProfile(**{name: sizes_um[name] for name in shape}))
    film_list = check_films(films, foil_material, mix_material)
    check_films_fit(film_list, [projection.outline()], sizes_um["pitch"],
                    sizes_um["mix_thickness"], "base_width, top_width, height, fillet_radius, "
                    "pitch")
    with gmsh_errors(_describe("plain cell", sizes)):
        return build_cell(sizes_um, "pitch", [projection], foil_material, mix_material,
                          film_list)


def build_rough_2d(
    length: float,
    foil_thickness: float,
    mix_thickness: float,
    target_ra: float,
    nodule_count: int,
    nodule_width: float,
    mesh_size: float,
    nodule_shape: NoduleShape = "recurved",
    seed: int = 0,
    interface_mesh_size: float | None = None,
    foil_material: str = "copper",
    mix_material: str = "mix",
    films: Sequence[tuple[str, float]] = (),
    nodule_gap: float | None = None,
) -> BuiltGeometry:
    """Mesh a foil of `length` roughened by a random row of nodules to the arithmetic mean
    roughness `target_ra`, under a mix layer (rank 0 only; sizes in metres).

    The row is `rough_row`'s, its nodules at least `nodule_gap` from their slots' ends
    (default: the interface mesh size); its heights are scaled until the Ra of the
    closed-form profile is within 0.2% of the target, and the metrics report the Ra measured
    on the built curves.
    """
    sizes = _cell_sizes("length", length, foil_thickness, mix_thickness, mesh_size,
                        interface_mesh_size)
    sizes.update({"Ra": target_ra, "nodule_width": nodule_width})
    _check_cell(sizes, foil_material, mix_material)
    sizes_um = _in_micrometres(sizes)
    projections = rough_row(
        length=sizes_um["length"], target_ra=sizes_um["Ra"], nodule_count=nodule_count,
        nodule_width=sizes_um["nodule_width"], nodule_shape=nodule_shape, seed=seed,
        mix_thickness=sizes_um["mix_thickness"],
        interface_mesh_size=sizes_um["interface_mesh_size"],
        nodule_gap=sizes_um["interface_mesh_size"] if nodule_gap is None
        else nodule_gap / MICROMETRE,
    )
    film_list = check_films(films, foil_material, mix_material)
    check_films_fit(film_list, [projection.outline() for projection in projections],
                    sizes_um["length"], sizes_um["mix_thickness"],
                    "Ra, nodule_count, nodule_width, seed")
    what = _describe("rough cell", sizes) + f", {nodule_count} {nodule_shape} nodules"
    with gmsh_errors(what):
        built = build_cell(sizes_um, "length", projections, foil_material, mix_material,
                           film_list)
    built.metrics["Ra_target"] = target_ra
    built.metrics["nodule_count"] = len(projections)
    heights = [projection.profile.height for projection in projections]
    built.metrics["nodule_height_max"] = float(max(heights)) * MICROMETRE
    built.metrics["nodule_height_mean"] = float(np.mean(heights)) * MICROMETRE
    return built


def rough_row(
    length: float,
    target_ra: float,
    nodule_count: int,
    nodule_width: float,
    nodule_shape: NoduleShape,
    seed: int,
    mix_thickness: float,
    interface_mesh_size: float,
    nodule_gap: float,
) -> list[Projection]:
    """A random row of nodules over [0, length] whose profile has Ra = target_ra (micrometres).

    The row is cut into `nodule_count` equal slots; each holds one nodule of random width
    (nodule_width +-25%), relative height (+-40%) and, for "mixed", shape, placed at random
    inside its slot at least nodule_gap from the slot's ends, so nodules never touch
    each other or the cell's sides. Only the common height scale depends on target_ra: it is
    found by fixed-point iteration on Ra (which grows about linearly with it).
    """
    if not isinstance(nodule_count, int) or nodule_count < 1:
        raise GeometryError(
            f"geometry: nodule_count ({nodule_count!r}) must be a positive integer")
    if nodule_shape not in ("recurved", "plain", "mixed"):
        raise GeometryError(
            f"geometry: nodule_shape ({nodule_shape!r}) must be recurved, plain or mixed")
    narrowest_neck = _NECK_TO_HEAD * (1 - _WIDTH_SPREAD) * nodule_width
    if nodule_shape != "plain" and interface_mesh_size > narrowest_neck / 2:
        raise GeometryError(
            f"geometry: interface_mesh_size ({interface_mesh_size:.4g} um) must be at most half "
            f"the narrowest neck ({narrowest_neck:.4g} um, from nodule_width "
            f"{nodule_width:.4g} um) to resolve it")
    generator = np.random.default_rng(seed)
    shapes = [
        nodule_shape if nodule_shape != "mixed"
        else ("recurved" if generator.random() < 0.5 else "plain")
        for _ in range(nodule_count)
    ]
    widths = nodule_width * generator.uniform(1 - _WIDTH_SPREAD, 1 + _WIDTH_SPREAD, nodule_count)
    relative_heights = generator.uniform(1 - _HEIGHT_SPREAD, 1 + _HEIGHT_SPREAD, nodule_count)
    slot = length / nodule_count
    widest_foot = max(_largest_foot(shape, nodule_width * (1 + _WIDTH_SPREAD)) for shape in shapes)
    if not widest_foot + nodule_gap < slot:
        raise GeometryError(
            f"geometry: nodule_count ({nodule_count}) nodules of nodule_width "
            f"({nodule_width:.4g} um, "
            f"up to {widest_foot:.4g} um wide) do not fit side by side in length "
            f"({length:.4g} um): fewer or narrower nodules, or a longer length")
    axes = []
    for index, (shape, width) in enumerate(zip(shapes, widths, strict=True)):
        foot = _largest_foot(shape, width)
        free = slot - foot - nodule_gap
        axes.append(index * slot + (nodule_gap + foot) / 2 + generator.random() * free)

    def row(height_scale: float) -> list[Projection]:
        return [
            Projection(axis, _nodule_profile(shape, width, height_scale * relative))
            for axis, shape, width, relative in zip(axes, shapes, widths, relative_heights,
                                                    strict=True)
        ]

    # First guess: rectangles of the mean width, whose Ra is 2 h f (1 - f) at coverage f.
    coverage = min(float(np.sum(widths)) / length, 0.9)
    height_scale = target_ra / (2 * coverage * (1 - coverage))
    for _ in range(_RA_ITERATIONS):
        if height_scale * (1 + _HEIGHT_SPREAD) >= mix_thickness:
            raise GeometryError(
                f"geometry: Ra ({target_ra:.4g} um) needs nodules about "
                f"{height_scale * (1 + _HEIGHT_SPREAD):.4g} um high, not below mix_thickness "
                f"({mix_thickness:.4g} um): lower Ra, or more or wider nodules")
        projections = row(height_scale)
        measured = profile_ra(projections, length)
        if abs(measured / target_ra - 1) < _RA_TOLERANCE:
            return projections
        height_scale *= target_ra / measured
    raise GeometryError(
        f"geometry: Ra ({target_ra:.4g} um) was not reached by scaling the nodule heights "
        f"(last {measured:.4g} um)")


def _nodule_profile(shape: str, width: float, height: float) -> Profile:
    """A generated nodule: fillets scale with the neck or top and never outgrow the height."""
    if shape == "recurved":
        neck_width, neck_height = _NECK_TO_HEAD * width, _NECK_HEIGHT_FRACTION * height
        return RecurvedProfile(
            neck_width=neck_width, head_width=width, height=height, neck_height=neck_height,
            fillet_radius=min(0.25 * neck_width, 0.5 * neck_height))
    top_width = _TOP_TO_BASE * width
    return PlainProfile(base_width=width, top_width=top_width, height=height,
                        fillet_radius=0.25 * min(top_width, height))


def _largest_foot(shape: str, width: float) -> float:
    """The widest a nodule of this width gets at any height scale.

    A recurved nodule is widest at its head (the foot, neck + two fillets of at most a quarter
    neck, is narrower); a plain one at its foot, where each fillet adds at most its radius,
    at most a quarter of the top width.
    """
    if shape == "recurved":
        return width
    return width * (1 + _TOP_TO_BASE / 2)


# --- Validation ----------------------------------------------------------------------------


def _cell_sizes(width_name, width, foil_thickness, mix_thickness, mesh_size,
                interface_mesh_size):
    """The sizes every cell has, by their keys in the case file; the cell's width is its pitch
    or its length (`width_name`)."""
    return {
        width_name: width,
        "foil_thickness": foil_thickness,
        "mix_thickness": mix_thickness,
        "mesh_size": mesh_size,
        "interface_mesh_size": mesh_size / 3 if interface_mesh_size is None
        else interface_mesh_size,
    }


def _in_micrometres(sizes: dict[str, float]) -> dict[str, float]:
    return {name: value / MICROMETRE for name, value in sizes.items()}


def _describe(what: str, sizes: dict[str, float]) -> str:
    return f"{what} (" + ", ".join(
        f"{name}={micrometres(value)} um" for name, value in sizes.items()) + ")"


def _shown(sizes: dict[str, float], name: str) -> str:
    return f"{name} ({micrometres(sizes[name])} um)"


def _check_cell(sizes: dict[str, float], foil_material: str, mix_material: str) -> None:
    """Checks before any gmsh call, each failure one line naming the parameters."""
    require_positive(sizes)
    for role, material in (("foil_material", foil_material), ("mix_material", mix_material)):
        if not isinstance(material, str) or not material.strip() or " " in material:
            raise GeometryError(f"geometry: {role} ({material!r}) must be a name without spaces")
    if foil_material == mix_material:
        raise GeometryError(
            f"geometry: foil_material and mix_material are both '{foil_material}'; they must differ"
        )
    if sizes["interface_mesh_size"] > sizes["mesh_size"]:
        raise GeometryError(
            f"geometry: {_shown(sizes, 'interface_mesh_size')} must not exceed "
            f"{_shown(sizes, 'mesh_size')}: the interface is where the mesh is refined"
        )


def check_films(films: Sequence[tuple[str, float]], foil_material: str,
                mix_material: str) -> list[Film]:
    """The (material, thickness in metres) pairs as Films in micrometres, checked: names without
    spaces, every material of the cell different, positive thicknesses."""
    require_positive({f"films[{index}].thickness": thickness
                      for index, (_, thickness) in enumerate(films)})
    seen = [foil_material, mix_material]
    for index, (material, _) in enumerate(films):
        if not isinstance(material, str) or not material.strip() or " " in material:
            raise GeometryError(
                f"geometry: films[{index}].material ({material!r}) must be a name without spaces")
        if material in seen:
            raise GeometryError(
                f"geometry: films[{index}].material ('{material}') is already used in the cell "
                f"({', '.join(seen)}): every film needs its own material (its cells and "
                "interfaces are named after it)")
        seen.append(material)
    return [Film(material, thickness / MICROMETRE) for material, thickness in films]


def _check_plain(sizes: dict[str, float]) -> None:
    def shown(name: str) -> str:
        return _shown(sizes, name)

    if sizes["top_width"] > sizes["base_width"]:
        raise GeometryError(
            f"geometry: {shown('top_width')} must not exceed {shown('base_width')}: a plain "
            "projection has no undercut (use kind = \"recurved\")"
        )
    if not sizes["height"] < sizes["mix_thickness"]:
        raise GeometryError(
            f"geometry: {shown('height')} must be smaller than {shown('mix_thickness')} so the "
            "mix layer covers the projection"
        )
    profile = PlainProfile(sizes["base_width"], sizes["top_width"], sizes["height"],
                           sizes["fillet_radius"])
    if not profile.tangent_length < sizes["top_width"] / 2:
        raise GeometryError(
            f"geometry: {shown('fillet_radius')} is too large for {shown('top_width')}: the "
            "top fillets would meet"
        )
    if not 2 * profile.tangent_length < profile.side_length:
        raise GeometryError(
            f"geometry: {shown('fillet_radius')} is too large for the sides ({shown('height')}, "
            f"{shown('base_width')}, {shown('top_width')}): the foot and top fillets would meet"
        )
    if not profile.foot_width < sizes["pitch"]:
        raise GeometryError(
            f"geometry: the foot, {shown('base_width')} plus the {shown('fillet_radius')} "
            f"fillets = {micrometres(profile.foot_width)} um, must be narrower than the "
            f"{shown('pitch')}"
        )
    if sizes["interface_mesh_size"] > sizes["top_width"] / 2:
        raise GeometryError(
            f"geometry: {shown('interface_mesh_size')} must be at most half the "
            f"{shown('top_width')} to resolve the top"
        )


# --- Gmsh ----------------------------------------------------------------------------------


def build_cell(
    sizes: dict[str, float],
    width_name: str,
    projections: list[Projection],
    foil_material: str,
    mix_material: str,
    films: list[Film],
) -> BuiltGeometry:
    """Build, tag and mesh a cell with these projections and films; `sizes` are in micrometres.

    Cell tags: the foil 1, the mix 2, the films 3, 4, ... from the foil up. Facet tags: bottom,
    top, left, right, then the interfaces from the foil up, `interface_{lower}_{upper}` by
    material.
    """
    occ = gmsh.model.occ
    width, mix_thickness = sizes[width_name], sizes["mix_thickness"]
    surfaces = [_add_projection(projection) for projection in projections]
    foil = occ.addRectangle(0, -sizes["foil_thickness"], 0, width, sizes["foil_thickness"])
    outlines = [projection.outline() for projection in projections]
    depths = np.cumsum([film.thickness for film in films])
    covers = [add_film_cover(outlines, width, depth) for depth in depths]
    mix = occ.addRectangle(0, 0, 0, width, mix_thickness)
    # The mix rectangle overlaps the projections and the film covers, and each cover overlaps
    # the ones below it: fragmenting gives an overlap to every input it belongs to. Copper is
    # what the foil and the projections became, a film what its cover became minus what lies
    # below it, and the mix what is left of its rectangle.
    tools = [(2, tag) for tag in [*surfaces, *covers, mix]]
    _, fragment_map = occ.fragment([(2, foil)], tools)
    occ.synchronize()
    below = set().union(*(children(fragment_map, i) for i in range(len(surfaces) + 1)))
    layers = [(foil_material, below)]
    for index, film in enumerate(films):
        cover = children(fragment_map, 1 + len(surfaces) + index)
        layers.append((film.material, cover - below))
        below = below | cover
    mix_surfaces = children(fragment_map, len(tools)) - below
    if len(mix_surfaces) != 1:
        raise RuntimeError(
            f"the mix came out in {len(mix_surfaces)} pieces; projections must stay apart"
        )
    layers.append((mix_material, mix_surfaces))

    cell_groups = {foil_material: add_physical_group(2, layers[0][1], foil_material, 1),
                   mix_material: add_physical_group(2, mix_surfaces, mix_material, 2)}
    for index, (material, entities) in enumerate(layers[1:-1]):
        cell_groups[material] = add_physical_group(2, entities, material, 3 + index)
    tolerance = 1e-6 * max(width, mix_thickness + sizes["foil_thickness"])
    left_curves = entities_on_plane(1, 0, 0.0, tolerance)
    right_curves = entities_on_plane(1, 0, width, tolerance)
    facet_groups: dict[str, int] = {}
    for name, curves in (
        ("bottom", entities_on_plane(1, 1, -sizes["foil_thickness"], tolerance)),
        ("top", entities_on_plane(1, 1, mix_thickness, tolerance)),
        ("left", left_curves),
        ("right", right_curves),
    ):
        facet_groups[name] = add_physical_group(1, curves, name, len(facet_groups) + 1)
    interfaces: dict[str, tuple[int, int, int]] = {}
    interface_curves: dict[str, set[int]] = {}
    for (lower, lower_entities), (upper, upper_entities) in pairwise(layers):
        name = f"interface_{lower}_{upper}"
        interface_curves[name] = (boundary_tags(2, lower_entities)
                                  & boundary_tags(2, upper_entities))
        facet_groups[name] = add_physical_group(1, interface_curves[name], name,
                                                len(facet_groups) + 1)
        interfaces[name] = (facet_groups[name], cell_groups[lower], cell_groups[upper])
    foil_surface = next(iter(interface_curves.values()))
    if films and boundary_tags(2, layers[0][1]) & boundary_tags(2, mix_surfaces):
        raise RuntimeError("the films leave some of the foil bare under the mix")

    make_periodic(left_curves, right_curves, width)
    # Along thin films, elements about twice as long as the film is thick.
    interface_mesh_size = min([sizes["interface_mesh_size"]]
                              + [2 * film.thickness for film in films])
    refine_along(set().union(*interface_curves.values()), sizes["mesh_size"],
                 interface_mesh_size)
    generate_mesh(2, cell_groups)

    quality_min, quality_mean = element_quality(2)
    interface_length = sum(occ.getMass(1, curve) for curve in foil_surface)
    projection_area = float(sum(p.profile.area() for p in projections))
    metrics: dict[str, float | bool] = {
        "interface_length": interface_length * MICROMETRE,
        "projected_length": width * MICROMETRE,
        "projection_area": projection_area * MICROMETRE**2,
        "undercut_area": float(sum(p.profile.undercut_area() for p in projections))
        * MICROMETRE**2,
        "recurved": any(is_recurved(p.profile.right_outline(400)[0]) for p in projections),
        "Ra": _built_ra(foil_surface, width) * MICROMETRE,
        "element_quality_min": quality_min,
        "element_quality_mean": quality_mean,
    }
    if films:
        areas = film_areas(films, outlines, width)
        for film, area in zip(films, areas, strict=True):
            metrics[f"film_area_{film.material}"] = float(area) * MICROMETRE**2
        undercut, recurved = _film_surface(float(depths[-1]), outlines, width,
                                           projection_area + sum(areas))
        metrics["films_thickness"] = float(depths[-1]) * MICROMETRE
        metrics["undercut_area_after_films"] = undercut * MICROMETRE**2
        metrics["recurved_after_films"] = recurved
    logger.info(
        "built a cell with %d projection(s) and %d film(s): interface %.4g um over %.4g um, "
        "Ra %.4g um, element quality min %.3f mean %.3f",
        len(projections), len(films), interface_length, width, metrics["Ra"] / MICROMETRE,
        quality_min, quality_mean,
    )
    return BuiltGeometry(
        dim=2,
        length_scale=MICROMETRE,
        cell_groups=cell_groups,
        cell_materials={tag: name for name, tag in cell_groups.items()},
        facet_groups=facet_groups,
        interfaces=interfaces,
        metrics=metrics,
    )


def _film_surface(depth: float, outlines: list[ProjectionOutline], width: float,
                  solid_area: float) -> tuple[float, bool]:
    """(undercut area left under the outermost film surface, whether that surface is still
    recurved), in micrometres. As for the foil, the undercut is the area under the surface's
    upper envelope (what a stylus sees) not taken by copper or films: `solid_area` above the
    foil level."""
    polylines = [(np.array([0.0, width]), np.full(2, depth))]
    recurved = False
    for outline in outlines:
        offset = outline.offset(depth)
        polylines.append((offset[:, 0], offset[:, 1]))
        # The right half from the foot up, x from the axis, as is_recurved reads an outline.
        top = len(offset) // 2
        recurved |= is_recurved(offset[:top + 1, 0] - outline.points[top, 0])
    grid = np.linspace(0.0, width, _PROFILE_SAMPLES)
    envelope = upper_envelope(polylines, grid)
    under = float(np.sum((envelope[1:] + envelope[:-1]) / 2 * np.diff(grid)))
    return max(under - float(solid_area), 0.0), recurved


def _add_projection(projection: Projection) -> int:
    """The projection as a surface closed by its base on the foil (y = 0)."""
    occ = gmsh.model.occ
    axis, profile = projection.axis, projection.profile
    if isinstance(profile, RecurvedProfile):
        # As in meshes.recurved: one spline through the densely sampled outline, no end
        # tangents (they made OCC loop at a foot).
        right_x, right_y = profile.right_outline(OUTLINE_POINTS_PER_HALF)
        outline_x = np.concatenate([axis + right_x, axis - right_x[::-1][1:]])
        outline_y = np.concatenate([right_y, right_y[::-1][1:]])
        points = [occ.addPoint(x, y, 0) for x, y in zip(outline_x, outline_y, strict=True)]
        curves = [occ.addSpline(points), occ.addLine(points[-1], points[0])]
    else:
        # Exact lines and arcs: the meshed area is the trapezoid's up to the arcs' chords.
        corners = profile.right_corners()
        right = {name: occ.addPoint(axis + x, y, 0) for name, (x, y) in corners.items()}
        left = {name: occ.addPoint(axis - x, y, 0) for name, (x, y) in corners.items()}
        curves = [
            occ.addCircleArc(right["foot"], right["foot_centre"], right["foot_side"]),
            occ.addLine(right["foot_side"], right["top_side"]),
            occ.addCircleArc(right["top_side"], right["top_centre"], right["top_end"]),
            occ.addLine(right["top_end"], left["top_end"]),
            occ.addCircleArc(left["top_end"], left["top_centre"], left["top_side"]),
            occ.addLine(left["top_side"], left["foot_side"]),
            occ.addCircleArc(left["foot_side"], left["foot_centre"], left["foot"]),
            occ.addLine(left["foot"], right["foot"]),
        ]
        # The arcs' centres would stay behind as loose points of the model.
        occ.remove([(0, side[name]) for side in (right, left)
                    for name in ("foot_centre", "top_centre")])
    return occ.addPlaneSurface([occ.addCurveLoop(curves)])


def _built_ra(interface_curves: set[int], width: float) -> float:
    """Ra of the upper envelope of the built interface curves, sampled densely."""
    spacing = width / _PROFILE_SAMPLES
    polylines = []
    for curve in interface_curves:
        low, high = gmsh.model.getParametrizationBounds(1, curve)
        samples = max(64, math.ceil(gmsh.model.occ.getMass(1, curve) / spacing))
        parameters = np.linspace(low[0], high[0], samples)
        points = np.reshape(gmsh.model.getValue(1, curve, parameters), (-1, 3))
        polylines.append((points[:, 0], points[:, 1]))
    grid = np.linspace(0.0, width, _PROFILE_SAMPLES)
    return arithmetic_mean_roughness(grid, upper_envelope(polylines, grid))
