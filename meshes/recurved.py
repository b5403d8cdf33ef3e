"""A periodic unit cell of a copper foil with one recurved ("mushroom") projection in a mix layer.

The projection's side faces curve outwards above a narrow neck, so the binder fills the undercut
and anchors the layer mechanically. Its outline is smooth: a foot fillet tangent to the foil
surface (a sharp re-entrant corner would be a stress singularity), a straight neck, a
smoothstep widening to the head and an elliptic cap with a horizontal tangent at the top.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import gmsh
import numpy as np

from meshes.built import (
    MICROMETRE,
    BuiltGeometry,
    add_physical_group,
    boundary_tags,
    children,
    entities_on_plane,
    generate_mesh,
    gmsh_errors,
    micrometres,
    require_positive,
)
from solver.errors import GeometryError

logger = logging.getLogger(__name__)

# Points sampled along each half of the outline: enough that the interpolating spline follows
# the fillet and the cap to well under a percent of the projection's area.
_OUTLINE_POINTS_PER_HALF = 161


@dataclass(frozen=True)
class RecurvedProfile:
    """The projection's half-width as a function of the height above the foil (any one unit).

    From the foil up: a quarter-circle foot fillet from half-width neck_width/2 + fillet_radius
    (tangent to the foil) to neck_width/2 at y = fillet_radius; a straight neck up to
    neck_height; a smoothstep widening (vertical tangents at both ends) to head_width/2 at
    `widest_height`; a quarter-ellipse cap closing at y = height. The cap is as tall as the head
    is half wide when there is room, else it takes half the height above the neck, so the cap
    always fits above the neck.
    """

    neck_width: float
    head_width: float
    height: float
    neck_height: float
    fillet_radius: float

    @property
    def cap_height(self) -> float:
        return min(self.head_width / 2, (self.height - self.neck_height) / 2)

    @property
    def widest_height(self) -> float:
        return self.height - self.cap_height

    def half_width(self, y: np.ndarray) -> np.ndarray:
        """Half-width of the projection at heights y in [0, height]."""
        y = np.asarray(y, dtype=float)
        neck, head = self.neck_width / 2, self.head_width / 2
        radius = self.fillet_radius
        fillet = neck + radius - np.sqrt(np.clip(radius**2 - (radius - y) ** 2, 0.0, None))
        rise = np.clip((y - self.neck_height) / (self.widest_height - self.neck_height), 0.0, 1.0)
        recurve = neck + (head - neck) * rise**2 * (3 - 2 * rise)
        cap_fraction = np.clip((y - self.widest_height) / self.cap_height, 0.0, 1.0)
        cap = head * np.sqrt(1 - cap_fraction**2)
        return np.select(
            [y <= radius, y <= self.neck_height, y <= self.widest_height],
            [fillet, np.full_like(y, neck), recurve],
            cap,
        )

    def area(self) -> float:
        """Cross-section area of the projection above the foil surface (closed form)."""
        neck, head = self.neck_width / 2, self.head_width / 2
        radius = self.fillet_radius
        fillet = (neck + radius) * radius - math.pi * radius**2 / 4
        straight = neck * (self.neck_height - radius)
        # The smoothstep averages to one half over its rise.
        recurve = (neck + head) / 2 * (self.widest_height - self.neck_height)
        cap = math.pi * head * self.cap_height / 4
        return 2 * (fillet + straight + recurve + cap)

    def right_outline(self, point_count: int) -> tuple[np.ndarray, np.ndarray]:
        """`point_count` points evenly spaced in arc length along the right half of the outline.

        From the right foot (neck_width/2 + fillet_radius, 0) to the top (0, height), x measured
        from the projection's axis. The fillet and the cap are sampled by angle, where x(y) has
        an infinite slope.
        """
        neck, head = self.neck_width / 2, self.head_width / 2
        radius = self.fillet_radius
        dense = 2000
        fillet_angle = np.linspace(0, math.pi / 2, dense)
        neck_y = np.linspace(radius, self.neck_height, dense)
        recurve_y = np.linspace(self.neck_height, self.widest_height, dense)
        cap_angle = np.linspace(0, math.pi / 2, dense)
        x = np.concatenate(
            [
                neck + radius - radius * np.sin(fillet_angle),
                np.full(dense, neck)[1:],
                self.half_width(recurve_y)[1:],
                head * np.cos(cap_angle)[1:],
            ]
        )
        y = np.concatenate(
            [
                radius - radius * np.cos(fillet_angle),
                neck_y[1:],
                recurve_y[1:],
                self.widest_height + self.cap_height * np.sin(cap_angle)[1:],
            ]
        )
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
        targets = np.linspace(0.0, arc[-1], point_count)
        outline_x, outline_y = np.interp(targets, arc, x), np.interp(targets, arc, y)
        # Pin the ends exactly: they are shared with the foil surface and the mirrored half.
        outline_x[0], outline_y[0] = neck + radius, 0.0
        outline_x[-1], outline_y[-1] = 0.0, self.height
        return outline_x, outline_y

    def undercut_area(self) -> float:
        """Area within the head's half-width, below its widest point, not taken by the projection.

        This is the pocket the binder has to fill to anchor the layer.
        """
        y = np.linspace(0.0, self.widest_height, 20001)
        gap = np.clip(self.head_width / 2 - self.half_width(y), 0.0, None)
        return float(2 * np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(y)))


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
) -> BuiltGeometry:
    """Mesh one period of a foil with a recurved projection under a mix layer (rank 0 only).

    Sizes are in metres. x in [0, pitch] with the projection centred at pitch/2; the foil is
    y in [-foil_thickness, 0], the mix fills y in [0, mix_thickness] around the projection.
    Cell groups: `foil_material` (foil and projection) and `mix_material`. Facet groups: bottom,
    top, left, right (periodic: the right side's mesh is the left side's, translated by pitch)
    and `interface_{foil_material}_{mix_material}`. Elements are `mesh_size` far from the
    interface and `interface_mesh_size` (default mesh_size/3) along it.
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
    with gmsh_errors(what):
        return _build(sizes_um, foil_material, mix_material)


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


def _build(sizes: dict[str, float], foil_material: str, mix_material: str) -> BuiltGeometry:
    """Build, tag and mesh the cell; `sizes` are in micrometres."""
    occ = gmsh.model.occ
    pitch, mix_thickness = sizes["pitch"], sizes["mix_thickness"]
    profile = RecurvedProfile(
        neck_width=sizes["neck_width"],
        head_width=sizes["head_width"],
        height=sizes["height"],
        neck_height=sizes["neck_height"],
        fillet_radius=sizes["fillet_radius"],
    )

    right_x, right_y = profile.right_outline(_OUTLINE_POINTS_PER_HALF)
    axis = pitch / 2
    outline_x = np.concatenate([axis + right_x, axis - right_x[::-1][1:]])
    outline_y = np.concatenate([right_y, right_y[::-1][1:]])
    outline_points = [occ.addPoint(x, y, 0) for x, y in zip(outline_x, outline_y, strict=True)]
    # The densely sampled fillets make the spline meet the foil almost tangentially. End
    # tangents given to addSpline made OCC loop back at the left foot (a tiny self-crossing
    # that showed up as a spurious shear peak), so none are given.
    outline = occ.addSpline(outline_points)
    base = occ.addLine(outline_points[-1], outline_points[0])
    projection = occ.addPlaneSurface([occ.addCurveLoop([outline, base])])
    foil = occ.addRectangle(0, -sizes["foil_thickness"], 0, pitch, sizes["foil_thickness"])
    mix = occ.addRectangle(0, 0, 0, pitch, mix_thickness)

    # The mix rectangle overlaps the projection: fragmenting gives the overlap to both inputs,
    # and the mix is what the mix rectangle became minus what the copper became.
    _, fragment_map = occ.fragment([(2, foil)], [(2, projection), (2, mix)])
    occ.synchronize()
    copper_surfaces = children(fragment_map, 0) | children(fragment_map, 1)
    mix_surfaces = children(fragment_map, 2) - copper_surfaces
    if len(mix_surfaces) != 1:
        raise RuntimeError(
            f"the mix came out in {len(mix_surfaces)} pieces; the outline must stay above the foil"
        )

    cell_groups = {
        foil_material: add_physical_group(2, copper_surfaces, foil_material, 1),
        mix_material: add_physical_group(2, mix_surfaces, mix_material, 2),
    }
    cell_materials = {tag: name for name, tag in cell_groups.items()}

    tolerance = 1e-6 * max(pitch, mix_thickness + sizes["foil_thickness"])
    left_curves = entities_on_plane(1, 0, 0.0, tolerance)
    right_curves = entities_on_plane(1, 0, pitch, tolerance)
    interface_curves = boundary_tags(2, copper_surfaces) & boundary_tags(2, mix_surfaces)
    interface_name = f"interface_{foil_material}_{mix_material}"
    facet_groups = {}
    for name, curves in (
        ("bottom", entities_on_plane(1, 1, -sizes["foil_thickness"], tolerance)),
        ("top", entities_on_plane(1, 1, mix_thickness, tolerance)),
        ("left", left_curves),
        ("right", right_curves),
        (interface_name, interface_curves),
    ):
        facet_groups[name] = add_physical_group(1, curves, name, len(facet_groups) + 1)
    interfaces = {
        interface_name: (
            facet_groups[interface_name],
            cell_groups[foil_material],
            cell_groups[mix_material],
        )
    }

    _make_periodic(left_curves, right_curves, pitch)
    _refine_along(interface_curves, sizes["mesh_size"], sizes["interface_mesh_size"])
    generate_mesh(2, cell_groups)

    interface_length = sum(occ.getMass(1, curve) for curve in interface_curves)
    above_neck = right_y >= profile.neck_height
    metrics: dict[str, float | bool] = {
        "interface_length": interface_length * MICROMETRE,
        "projected_length": pitch * MICROMETRE,
        "projection_area": profile.area() * MICROMETRE**2,
        "undercut_area": profile.undercut_area() * MICROMETRE**2,
        "neck_width_measured": 2 * float(right_x[~above_neck].min()) * MICROMETRE,
        "head_width_measured": 2 * float(right_x[above_neck].max()) * MICROMETRE,
    }
    metrics["recurved"] = bool(metrics["head_width_measured"] > metrics["neck_width_measured"])
    logger.info(
        "built a recurved cell: interface %.4g um over a %.4g um pitch, undercut %.4g um^2",
        interface_length,
        pitch,
        profile.undercut_area(),
    )
    return BuiltGeometry(
        dim=2,
        length_scale=MICROMETRE,
        cell_groups=cell_groups,
        cell_materials=cell_materials,
        facet_groups=facet_groups,
        interfaces=interfaces,
        metrics=metrics,
    )


def _make_periodic(left_curves: set[int], right_curves: set[int], pitch: float) -> None:
    """Give the right side the left side's mesh translated by pitch, for periodic conditions."""

    def bottom_up(curves: set[int]) -> list[int]:
        return sorted(curves, key=lambda curve: gmsh.model.getBoundingBox(1, curve)[1])

    translation = [1, 0, 0, pitch, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    gmsh.model.mesh.setPeriodic(1, bottom_up(right_curves), bottom_up(left_curves), translation)


def _refine_along(curves: set[int], mesh_size: float, interface_mesh_size: float) -> None:
    """Size elements interface_mesh_size at the curves, growing to mesh_size away from them."""
    field = gmsh.model.mesh.field
    distance = field.add("Distance")
    field.setNumbers(distance, "CurvesList", sorted(curves))
    longest = max(gmsh.model.occ.getMass(1, curve) for curve in curves)
    # Sample the curves finer than the target size so the distance is accurate along them.
    field.setNumber(distance, "Sampling", math.ceil(2 * longest / interface_mesh_size) + 1)
    threshold = field.add("Threshold")
    field.setNumber(threshold, "InField", distance)
    field.setNumber(threshold, "SizeMin", interface_mesh_size)
    field.setNumber(threshold, "SizeMax", mesh_size)
    # Grow over a few coarse elements so neighbouring triangles differ little in size.
    field.setNumber(threshold, "DistMin", interface_mesh_size)
    field.setNumber(threshold, "DistMax", interface_mesh_size + 3 * mesh_size)
    field.setAsBackgroundMesh(threshold)
    # Only the field decides the size: not the points, the curvature or the boundary mesh.
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.option.setNumber("Mesh.MeshSizeMin", 0.0)
    gmsh.option.setNumber("Mesh.MeshSizeMax", mesh_size)
