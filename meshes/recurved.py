"""A periodic unit cell of a copper foil with one recurved ("mushroom") projection in a mix layer.

The projection's side faces curve outwards above a narrow neck, so the binder fills the undercut
and anchors the layer mechanically. Its shape is meshes.profiles.RecurvedProfile; the cell is
built as every collector cell is (meshes.collector.build_cell), optionally with conformal films
on the foil (meshes.films).
"""

from __future__ import annotations

from collections.abc import Sequence

from meshes.built import (
    MICROMETRE,
    OUTLINE_POINTS_PER_HALF,
    BuiltGeometry,
    gmsh_errors,
    micrometres,
    require_positive,
)
from meshes.collector import Projection, build_cell, check_films
from meshes.films import check_films_fit
from meshes.profiles import RecurvedProfile
from solver.errors import GeometryError


def build_recurved_2d(
    pitch: float,
    foil_thickness: float,
    neck_width: float,
    head_width: float,
    height: float,
    neck_height: float,
    fillet_radius: float,
    mix_thickness: float,
    mesh_size: float,
    interface_mesh_size: float | None = None,
    foil_material: str = "copper",
    mix_material: str = "mix",
    films: Sequence[tuple[str, float]] = (),
) -> BuiltGeometry:
    """Mesh one period of a foil with a recurved projection under a mix layer (rank 0 only).

    Sizes are in metres. x in [0, pitch] with the projection centred at pitch/2; the foil is
    y in [-foil_thickness, 0], the mix fills y in [0, mix_thickness] around the projection.
    Cell groups: `foil_material` (foil and projection) and `mix_material`. Facet groups: bottom,
    top, left, right (periodic: the right side's mesh is the left side's, translated by pitch)
    and `interface_{foil_material}_{mix_material}`. Elements are `mesh_size` far from the
    interface and `interface_mesh_size` (default mesh_size/3) along it. `films`: (material,
    thickness) of films deposited in order on the foil under the mix (meshes.films): cell groups
    and interfaces of their own, `interface_{lower}_{upper}` from the foil up.
    """
    if interface_mesh_size is None:
        interface_mesh_size = mesh_size / 3
    sizes = {
        "pitch": pitch,
        "foil_thickness": foil_thickness,
        "neck_width": neck_width,
        "head_width": head_width,
        "height": height,
        "neck_height": neck_height,
        "fillet_radius": fillet_radius,
        "mix_thickness": mix_thickness,
        "mesh_size": mesh_size,
        "interface_mesh_size": interface_mesh_size,
    }
    _validate(sizes)
    for role, material in (("foil_material", foil_material), ("mix_material", mix_material)):
        if not isinstance(material, str) or not material.strip() or " " in material:
            raise GeometryError(f"geometry: {role} ({material!r}) must be a name without spaces")
    if foil_material == mix_material:
        raise GeometryError(
            f"geometry: foil_material and mix_material are both '{foil_material}'; they must differ"
        )
    what = (
        "recurved cell ("
        + ", ".join(f"{name}={micrometres(value)} um" for name, value in sizes.items())
        + ")"
    )
    sizes_um = {name: value / MICROMETRE for name, value in sizes.items()}
    profile = RecurvedProfile(**{name: sizes_um[name] for name in (
        "neck_width", "head_width", "height", "neck_height", "fillet_radius")})
    projection = Projection(sizes_um["pitch"] / 2, profile)
    film_list = check_films(films, foil_material, mix_material)
    check_films_fit(film_list, [projection.outline()], sizes_um["pitch"],
                    sizes_um["mix_thickness"],
                    "fillet_radius, neck_width, head_width, neck_height, height, pitch")
    with gmsh_errors(what):
        built = build_cell(sizes_um, "pitch", [projection], foil_material, mix_material,
                           film_list)
    right_x, right_y = profile.right_outline(OUTLINE_POINTS_PER_HALF)
    above_neck = right_y >= profile.neck_height
    built.metrics["neck_width_measured"] = 2 * float(right_x[~above_neck].min()) * MICROMETRE
    built.metrics["head_width_measured"] = 2 * float(right_x[above_neck].max()) * MICROMETRE
    built.metrics["recurved"] = bool(
        built.metrics["head_width_measured"] > built.metrics["neck_width_measured"])
    return built


def _validate(sizes: dict[str, float]) -> None:
    """Check the parameters before any gmsh call; each failure is one line, in micrometres."""
    require_positive(sizes)

    def shown(name: str) -> str:
        return f"{name} ({micrometres(sizes[name])} um)"

    orderings = [
        ("neck_width", "head_width", "so the side faces curve outwards (recurved)"),
        ("head_width", "pitch", "so neighbouring projections do not touch"),
        ("fillet_radius", "neck_height", "so the foot fillet ends below the top of the neck"),
        ("neck_height", "height", "so the head sits above the neck"),
        ("height", "mix_thickness", "so the mix layer covers the projection"),
    ]
    for smaller, larger, reason in orderings:
        if not sizes[smaller] < sizes[larger]:
            raise GeometryError(
                f"geometry: {shown(smaller)} must be smaller than {shown(larger)} {reason}"
            )
    foot_width = sizes["neck_width"] + 2 * sizes["fillet_radius"]
    if not foot_width < sizes["pitch"]:
        raise GeometryError(
            f"geometry: the foot, {shown('neck_width')} + 2 x {shown('fillet_radius')} = "
            f"{micrometres(foot_width)} um, must be narrower than {shown('pitch')}"
        )
    if sizes["interface_mesh_size"] > sizes["mesh_size"]:
        raise GeometryError(
            f"geometry: {shown('interface_mesh_size')} must not exceed {shown('mesh_size')}: "
            "the interface is where the mesh is refined"
        )
    if sizes["interface_mesh_size"] > sizes["neck_width"] / 2:
        raise GeometryError(
            f"geometry: {shown('interface_mesh_size')} must be at most half the "
            f"{shown('neck_width')} to resolve the neck"
        )
