"""A stack of flat layers on a foil: thin-film electrodes and the flat reference design."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import gmsh

from meshes.built import (
    MICROMETRE,
    BuiltGeometry,
    add_physical_group,
    boundary_tags,
    children,
    element_quality,
    entities_on_plane,
    generate_mesh,
    gmsh_errors,
    micrometres,
    require_positive,
)
from solver.errors import GeometryError

logger = logging.getLogger(__name__)


def build_layers(
    length: float,
    thicknesses: Sequence[float],
    materials: Sequence[str],
    mesh_size: float,
    dim: int = 2,
    width: float | None = None,
) -> BuiltGeometry:
    """Mesh flat layers stacked bottom to top in the current gmsh model (call on rank 0 only).

    Sizes are in metres. 2D: rectangles [0, length] x [y_i, y_i + t_i] from y = 0; 3D: boxes
    [0, length] x [0, width] x [z_i, z_i + t_i]. Layer i is the cell group `layer{i}_{material}`.
    Facet groups: bottom, top, left (x = 0), right (x = length), in 3D front (y = 0) and
    back (y = width), and `interface_{i}_{i+1}` between consecutive layers. Every layer is split
    at x = length/2 (and y = width/2) so the mesh has vertices on the mid-length line (plane)
    through the whole thickness, where the solver pins the rigid-body motion. `width` is only
    used in 3D.
    """
    _validate(length, thicknesses, materials, mesh_size, dim, width)
    what = (
        f"layer stack (length={micrometres(length)} um, "
        f"thicknesses={[float(micrometres(t)) for t in thicknesses]} um, "
        f"mesh_size={micrometres(mesh_size)} um)"
    )
    with gmsh_errors(what):
        return _build(length, thicknesses, materials, mesh_size, dim, width)


def _validate(length, thicknesses, materials, mesh_size, dim, width) -> None:
    if dim not in (2, 3):
        raise GeometryError(f"geometry: dim ({dim}) must be 2 or 3")
    if len(thicknesses) == 0:
        raise GeometryError("geometry: thicknesses is empty; a stack needs at least one layer")
    if len(materials) != len(thicknesses):
        raise GeometryError(
            f"geometry: materials ({len(materials)} names) and thicknesses "
            f"({len(thicknesses)} values) must have one entry per layer"
        )
    for index, material in enumerate(materials):
        if not isinstance(material, str) or not material.strip() or " " in material:
            raise GeometryError(
                f"geometry: materials[{index}] ({material!r}) must be a name without spaces"
            )
    sizes = {"length": length, "mesh_size": mesh_size}
    sizes.update({f"thicknesses[{index}]": value for index, value in enumerate(thicknesses)})
    if dim == 3:
        if width is None:
            raise GeometryError("geometry: width is required for a 3D layer stack")
        sizes["width"] = width
    require_positive(sizes)


def _build(length, thicknesses, materials, mesh_size, dim, width) -> BuiltGeometry:
    occ = gmsh.model.occ
    length_um = length / MICROMETRE
    width_um = width / MICROMETRE if dim == 3 else 0.0
    thicknesses_um = [thickness / MICROMETRE for thickness in thicknesses]
    mesh_size_um = mesh_size / MICROMETRE

    # Each layer is built as pieces split at mid-length (and mid-width) so that fragmenting
    # leaves geometric edges there: the mesh then has vertices along those lines.
    half_length, half_width = length_um / 2, width_um / 2
    layer_pieces: list[list[tuple[int, int]]] = []
    bottom_um = 0.0
    for thickness_um in thicknesses_um:
        if dim == 2:
            pieces = [
                (2, occ.addRectangle(x0, bottom_um, 0, half_length, thickness_um))
                for x0 in (0.0, half_length)
            ]
        else:
            pieces = [
                (3, occ.addBox(x0, y0, bottom_um, half_length, half_width, thickness_um))
                for x0 in (0.0, half_length)
                for y0 in (0.0, half_width)
            ]
        layer_pieces.append(pieces)
        bottom_um += thickness_um
    total_um = bottom_um

    all_pieces = [piece for pieces in layer_pieces for piece in pieces]
    _, fragment_map = occ.fragment(all_pieces[:1], all_pieces[1:])
    occ.synchronize()

    layer_entities: list[set[int]] = []
    for pieces in layer_pieces:
        entities: set[int] = set()
        for piece in pieces:
            entities |= children(fragment_map, all_pieces.index(piece))
        layer_entities.append(entities)

    cell_groups: dict[str, int] = {}
    cell_materials: dict[int, str] = {}
    for index, (material, entities) in enumerate(zip(materials, layer_entities, strict=True)):
        physical_tag = add_physical_group(dim, entities, f"layer{index}_{material}", index + 1)
        cell_groups[f"layer{index}_{material}"] = physical_tag
        cell_materials[physical_tag] = material

    # The stacking direction is the last coordinate: y in 2D, z in 3D.
    up_axis = dim - 1
    tolerance = 1e-6 * max(length_um, width_um, total_um)
    boundaries = {
        "bottom": entities_on_plane(dim - 1, up_axis, 0.0, tolerance),
        "top": entities_on_plane(dim - 1, up_axis, total_um, tolerance),
        "left": entities_on_plane(dim - 1, 0, 0.0, tolerance),
        "right": entities_on_plane(dim - 1, 0, length_um, tolerance),
    }
    if dim == 3:
        boundaries["front"] = entities_on_plane(dim - 1, 1, 0.0, tolerance)
        boundaries["back"] = entities_on_plane(dim - 1, 1, width_um, tolerance)

    facet_groups: dict[str, int] = {}
    for name, entities in boundaries.items():
        facet_groups[name] = add_physical_group(dim - 1, entities, name, len(facet_groups) + 1)

    interfaces: dict[str, tuple[int, int, int]] = {}
    layer_names = list(cell_groups)
    for index in range(len(thicknesses) - 1):
        shared = boundary_tags(dim, layer_entities[index]) & boundary_tags(
            dim, layer_entities[index + 1]
        )
        name = f"interface_{index}_{index + 1}"
        facet_tag = add_physical_group(dim - 1, shared, name, len(facet_groups) + 1)
        facet_groups[name] = facet_tag
        interfaces[name] = (
            facet_tag,
            cell_groups[layer_names[index]],
            cell_groups[layer_names[index + 1]],
        )

    gmsh.option.setNumber("Mesh.MeshSizeMax", mesh_size_um)
    gmsh.option.setNumber("Mesh.MeshSizeMin", 0.0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    generate_mesh(dim, cell_groups)

    quality_min, quality_mean = element_quality(dim)
    metrics: dict[str, float | bool] = {"total_thickness": float(sum(thicknesses))}
    if dim == 2:
        metrics["interface_length"] = float(length)
    else:
        metrics["interface_area"] = float(length * width)
    metrics["element_quality_min"] = quality_min
    metrics["element_quality_mean"] = quality_mean
    logger.info(
        "built %d layers, %s um thick, element quality min %.3f mean %.3f", len(thicknesses),
        micrometres(metrics["total_thickness"]), quality_min, quality_mean,
    )
    return BuiltGeometry(
        dim=dim,
        length_scale=MICROMETRE,
        cell_groups=cell_groups,
        cell_materials=cell_materials,
        facet_groups=facet_groups,
        interfaces=interfaces,
        metrics=metrics,
    )
