"""What a geometry builder returns, and the gmsh helpers the builders share.

The builders work in micrometres because OpenCASCADE's geometric tolerance is about 1e-7 model
units: in metres, every micrometre feature would be at the tolerance and fragmenting would merge
or lose it. `BuiltGeometry.length_scale` tells the importer how to get back to metres.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import gmsh
import numpy as np

from solver.errors import GeometryError

logger = logging.getLogger(__name__)

MICROMETRE = 1e-6
"""Metres per model unit: the builders take SI metres and build the model in micrometres."""

OUTLINE_POINTS_PER_HALF = 161
"""Points sampled along each half of a projection's outline for its spline: enough that the
spline follows the fillet and the cap to well under a percent of the projection's area."""


@dataclass
class BuiltGeometry:
    """A meshed gmsh model: its physical groups and what the geometry measures.

    Physical tags of cells and of facets are numbered independently, each from 1.
    """

    dim: int
    length_scale: float
    """Metres per model unit: multiply the mesh node coordinates by it."""
    cell_groups: dict[str, int]
    """Physical name -> tag of the cells of dimension `dim`."""
    cell_materials: dict[int, str]
    """Cell tag -> name of the material of those cells."""
    facet_groups: dict[str, int]
    """Physical name -> tag of the facets (dimension `dim - 1`): boundaries and interfaces."""
    interfaces: dict[str, tuple[int, int, int]]
    """Interface name -> (facet tag, cell tag below / foil side, cell tag above / layer side)."""
    metrics: dict[str, float | bool]
    """What the geometry is, in SI units (m, m^2, m^3)."""


def micrometres(value_m: float) -> str:
    """A length in metres written in micrometres for a message, without float noise."""
    return f"{value_m / MICROMETRE:.4g}"


def require_positive(named_values: dict[str, float]) -> None:
    """Raise a one-line GeometryError naming the first size that is not a positive number."""
    for name, value in named_values.items():
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            shown = f"{micrometres(value)} um" if isinstance(value, int | float) else repr(value)
            raise GeometryError(f"geometry: {name} ({shown}) must be a positive length")


@contextlib.contextmanager
def gmsh_errors(what: str) -> Iterator[None]:
    """Turn any gmsh/OpenCASCADE exception into a one-line GeometryError about `what`."""
    try:
        yield
    except GeometryError:
        raise
    except Exception as error:  # gmsh's Python API raises bare Exception with its last error
        lines = str(error).strip().splitlines() or [type(error).__name__]
        logger.debug("gmsh failed on %s", what, exc_info=True)
        raise GeometryError(f"could not mesh the {what}: {lines[0]}") from error


def children(fragment_map: list[list[tuple[int, int]]], index: int) -> set[int]:
    """Tags of the entities that input `index` of an occ.fragment call became."""
    return {tag for _, tag in fragment_map[index]}


def boundary_tags(dim: int, entity_tags: Iterable[int]) -> set[int]:
    """Tags of the (dim - 1)-entities bounding each of the given dim-entities."""
    tags = set()
    for tag in entity_tags:
        bounding = gmsh.model.getBoundary([(dim, tag)], combined=False, oriented=False)
        tags.update(abs(bounding_tag) for _, bounding_tag in bounding)
    return tags


def entities_on_plane(dim: int, axis: int, value: float, tolerance: float) -> set[int]:
    """Tags of the dim-entities lying in the plane (or line) where coordinate `axis` == value."""
    everywhere = 1e30  # getEntitiesInBoundingBox needs finite limits
    low, high = [-everywhere] * 3, [everywhere] * 3
    low[axis], high[axis] = value - tolerance, value + tolerance
    return {tag for _, tag in gmsh.model.getEntitiesInBoundingBox(*low, *high, dim=dim)}


def add_physical_group(dim: int, tags: Iterable[int], name: str, physical_tag: int) -> int:
    """Add a named physical group; an empty group means the geometry came out wrong."""
    tags = sorted(tags)
    if not tags:
        # A plain exception: gmsh_errors reports it with the parameters of the geometry.
        raise RuntimeError(f"no entities found for the physical group '{name}'")
    gmsh.model.addPhysicalGroup(dim, tags, tag=physical_tag, name=name)
    return physical_tag


# Surface triangles above which a 3D model's volumes are meshed by HXT (Mesh.Algorithm3D =
# 10; Marot, Pellerin and Remacle, Int. J. Numer. Methods Eng. 117 (2019) 967) instead of
# Gmsh's default Delaunay: the 3D recurved cell at mesh sizes 0.157/0.0188 um (the bench's
# 1M-DOF P1 mesh, 2.5M tetrahedra) takes HXT 49 s of CPU, Delaunay 250 s (223 s and 26 s
# of optimization). HXT places fewer points for the same size field (426k vertices against
# 506k there) and meshes otherwise, so it is kept to meshes larger than every shipped 3D
# case (particles-3d: 13,570 surface triangles); the recurved cell passes the threshold at
# about 0.45M tetrahedra, where Delaunay takes 15 s and HXT 6 s. One thread: with two, HXT's
# mesh differs from run to run (and saved 17 % of the wall time on the shared 2-core machine).
HXT_MIN_SURFACE_TRIANGLES = 50_000


def _surface_triangles() -> int:
    _, element_tags, _ = gmsh.model.mesh.getElements(2)
    return sum(len(tags) for tags in element_tags)


def generate_mesh(dim: int, cell_groups: dict[str, int]) -> None:
    """Mesh the model and check that every cell group received cells. In 3D the surfaces are
    meshed first; where they have more than HXT_MIN_SURFACE_TRIANGLES triangles, HXT meshes
    the volumes."""
    algorithm = gmsh.option.getNumber("Mesh.Algorithm3D")
    if dim == 3:
        gmsh.model.mesh.generate(2)
        triangles = _surface_triangles()
        if triangles > HXT_MIN_SURFACE_TRIANGLES:
            logger.info("%d surface triangles: the volumes meshed by HXT", triangles)
            gmsh.option.setNumber("Mesh.Algorithm3D", 10)
        else:
            # Delaunay on the surfaces of an earlier generate(2) meshes a little otherwise
            # than in one generate(3) (the shipped meshes): all again, in one
            gmsh.model.mesh.clear()
    try:
        gmsh.model.mesh.generate(dim)
    finally:
        gmsh.option.setNumber("Mesh.Algorithm3D", algorithm)
    for name, physical_tag in cell_groups.items():
        cell_count = 0
        for entity in gmsh.model.getEntitiesForPhysicalGroup(dim, physical_tag):
            _, element_tags, _ = gmsh.model.mesh.getElements(dim, entity)
            cell_count += sum(len(tags) for tags in element_tags)
        if cell_count == 0:
            raise RuntimeError(f"the mesh has no cells in '{name}'")
    logger.info("meshed %s", ", ".join(cell_groups))


def element_quality(dim: int) -> tuple[float, float]:
    """Minimum and mean of gmsh's minSICN (1 for an equilateral simplex, <= 0 if inverted)."""
    _, element_tags, _ = gmsh.model.mesh.getElements(dim)
    quality = np.asarray(gmsh.model.mesh.getElementQualities(np.concatenate(element_tags),
                                                               "minSICN"))
    return float(quality.min()), float(quality.mean())


def make_periodic(left_curves: set[int], right_curves: set[int], pitch: float) -> None:
    """Give the right side the left side's mesh translated by pitch, for periodic conditions."""

    def bottom_up(curves: set[int]) -> list[int]:
        return sorted(curves, key=lambda curve: gmsh.model.getBoundingBox(1, curve)[1])

    translation = [1, 0, 0, pitch, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    gmsh.model.mesh.setPeriodic(1, bottom_up(right_curves), bottom_up(left_curves), translation)


def use_size_field(field_tag: int, mesh_size: float) -> None:
    """Let the field alone decide the element size (not the points, the curvature or the
    boundary mesh), never above mesh_size."""
    gmsh.model.mesh.field.setAsBackgroundMesh(field_tag)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.option.setNumber("Mesh.MeshSizeMin", 0.0)
    gmsh.option.setNumber("Mesh.MeshSizeMax", mesh_size)


def refine_along(curves: set[int], mesh_size: float, interface_mesh_size: float) -> None:
    """Size elements interface_mesh_size at the curves, growing to mesh_size away from them."""
    use_size_field(interface_threshold(1, curves, mesh_size, interface_mesh_size), mesh_size)


def interface_threshold(dim: int, entities: set[int], mesh_size: float,
                        interface_mesh_size: float) -> int:
    """A size field: interface_mesh_size at the curves (dim 1) or surfaces (dim 2), growing
    to mesh_size over 3 mesh_size away from them."""
    field = gmsh.model.mesh.field
    distance = field.add("Distance")
    field.setNumbers(distance, "CurvesList" if dim == 1 else "SurfacesList", sorted(entities))
    largest = max(gmsh.model.occ.getMass(dim, entity) ** (1 / dim) for entity in entities)
    # Sample the entities finer than the target size so the distance is accurate on them.
    field.setNumber(distance, "Sampling", math.ceil(2 * largest / interface_mesh_size) + 1)
    threshold = field.add("Threshold")
    field.setNumber(threshold, "InField", distance)
    field.setNumber(threshold, "SizeMin", interface_mesh_size)
    field.setNumber(threshold, "SizeMax", mesh_size)
    # Grow over a few coarse elements so neighbouring elements differ little in size.
    field.setNumber(threshold, "DistMin", interface_mesh_size)
    field.setNumber(threshold, "DistMax", interface_mesh_size + 3 * mesh_size)
    return threshold
