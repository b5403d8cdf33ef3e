"""3D collector cells: nodules of revolution in square or hexagonal arrays, a random field of
them roughened to a target Sa, and the flat foil.

A 3D nodule is a 2D projection profile (meshes.recurved.RecurvedProfile, the "mushroom", or
meshes.collector.PlainProfile, a filleted truncated cone) revolved about its vertical axis.
The foil is z in [-foil_thickness, 0], the mix z in [0, mix_thickness]; cells `foil_material`
(tag 1) and `mix_material` (2); facets bottom, top, left (x = 0), right (x = length), front
(y = 0), back (y = width) and `interface_{foil_material}_{mix_material}`, as in the 3D
particle cell, so the same cell conditions apply: x = 0, y = 0 and the bottom are symmetry
planes, the right and back faces stay plane and move by one shared unknown.

Arrays use their smallest rectangular symmetric cell, bounded by mirror planes of the array:

- square (pitch p): [0, p/2]^2 with a quarter nodule at the corner (0, 0);
- hexagonal (nearest neighbours p apart): [0, p/2] x [0, sqrt(3) p/2] with quarter nodules at
  the corners (0, 0) and (p/2, sqrt(3) p/2).

A random field (`rough`) holds whole nodules at random positions without overlap, kept off
the lateral faces (mirror planes) by half their smallest spacing, as the particles are.

Sa (ISO 25178) is measured as an optical profilometer sees the surface: the height map is the
upper envelope of the copper surface (a head hides its undercut) sampled on a fine grid, and
Sa is the mean absolute deviation from its least-squares mean plane.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import gmsh
import numpy as np
from scipy.integrate import quad

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
    interface_threshold,
    require_positive,
    use_size_field,
)
from meshes.collector import (
    _HEIGHT_SPREAD,
    _WIDTH_SPREAD,
    NoduleShape,
    PlainProfile,
    _cell_sizes,
    _check_cell,
    _check_plain,
    _describe,
    _in_micrometres,
    _largest_foot,
    _nodule_profile,
    is_recurved,
    upper_envelope,
)
from meshes.profiles import RecurvedProfile
from meshes.recurved import _validate as _check_recurved
from solver.errors import GeometryError

logger = logging.getLogger(__name__)

Array = Literal["square", "hexagonal"]
Profile = RecurvedProfile | PlainProfile

# Sa is matched well inside the 5% asked, so that the spline through the outline (which
# moves it by a fraction of a percent) cannot push it out.
_SA_TOLERANCE = 0.002
_SA_ITERATIONS = 40
# Height-map samples along the longer side of the cell, for Sa.
_HEIGHT_MAP_SAMPLES = 801
# Random trial positions per nodule before the field is declared full.
_NODULE_TRIALS = 4000


# --- Nodules of revolution -----------------------------------------------------------------


def half_width(profile: Profile, z: float) -> float:
    """The radius of the nodule at height z in [0, height] (the radius of its outline)."""
    if isinstance(profile, RecurvedProfile):
        return float(profile.half_width(z))
    corners = profile.right_corners()
    radius = profile.fillet_radius
    (foot_x, _), (top_x, top_y) = corners["foot_centre"], corners["top_centre"]
    (low_x, low_z), (high_x, high_z) = corners["foot_side"], corners["top_side"]
    if z <= low_z:  # the concave foot fillet
        return foot_x - math.sqrt(max(radius**2 - (z - radius) ** 2, 0.0))
    if z <= high_z:  # the straight side
        return low_x + (high_x - low_x) * (z - low_z) / (high_z - low_z)
    return top_x + math.sqrt(max(radius**2 - (z - top_y) ** 2, 0.0))  # the convex top fillet


def _breakpoints(profile: Profile) -> list[float]:
    """Heights where the outline changes piece: integrate piece by piece, each smooth."""
    if isinstance(profile, RecurvedProfile):
        return [0.0, profile.fillet_radius, profile.neck_height, profile.widest_height,
                profile.height]
    corners = profile.right_corners()
    return [0.0, corners["foot_side"][1], corners["top_side"][1], profile.height]


def _integrate(function, breakpoints: list[float]) -> float:
    return sum(quad(function, low, high, epsabs=0.0, epsrel=1e-13, limit=200)[0]
               for low, high in zip(breakpoints[:-1], breakpoints[1:], strict=True))


def foot_radius(profile: Profile) -> float:
    """Radius of the nodule's footprint on the foil (fillet included)."""
    if isinstance(profile, RecurvedProfile):
        return profile.neck_width / 2 + profile.fillet_radius
    return profile.foot_width / 2


def widest_radius(profile: Profile) -> float:
    """The largest radius at any height: the head or the foot."""
    if isinstance(profile, RecurvedProfile):
        return max(profile.head_width / 2, foot_radius(profile))
    return foot_radius(profile)


def revolved_volume(profile: Profile) -> float:
    """Volume of the whole nodule above the foil: pi times the integral of r(z)^2."""
    return math.pi * _integrate(lambda z: half_width(profile, z) ** 2, _breakpoints(profile))


def revolved_undercut_volume(profile: Profile) -> float:
    """Volume within the head's radius, below its widest section, not taken by the nodule: the
    binder's anchoring ring. Zero for a plain nodule (its radius never grows upwards)."""
    if isinstance(profile, PlainProfile):
        return 0.0
    head = profile.head_width / 2
    below_head = [z for z in _breakpoints(profile) if z <= profile.widest_height]
    return math.pi * _integrate(lambda z: max(head**2 - half_width(profile, z) ** 2, 0.0),
                                below_head)


def revolved_side_area(profile: Profile, point_count: int = 20001) -> float:
    """Area of the nodule's curved surface (Pappus: 2 pi times the integral of r ds),
    from the outline sampled densely (error O(1/point_count^2))."""
    r, z = profile.right_outline(point_count)
    r_mid = (r[1:] + r[:-1]) / 2
    return float(2 * math.pi * np.sum(r_mid * np.hypot(np.diff(r), np.diff(z))))


def _envelope_of(profile: Profile, radii: np.ndarray) -> np.ndarray:
    """Height of the nodule's top envelope at these radii (<= its widest radius)."""
    r, z = profile.right_outline(400)
    return upper_envelope([(r, z), (np.array([0.0, radii.max()]), np.zeros(2))], radii)


@dataclass(frozen=True)
class Nodule:
    """A nodule on the foil: its axis at (x, y), its profile, and the sector it fills
    (start angle and sweep, radians; a sweep of 2 pi is the whole nodule)."""

    x: float
    y: float
    profile: Profile
    start_angle: float = 0.0
    sweep: float = 2 * math.pi

    @property
    def share(self) -> float:
        return self.sweep / (2 * math.pi)


# --- Sa ------------------------------------------------------------------------------------


def areal_mean_roughness(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Sa (ISO 25178): mean |z - mean plane| over a uniform grid, least-squares mean plane."""
    design = np.column_stack([x.ravel(), y.ravel(), np.ones(x.size)])
    coefficients, *_ = np.linalg.lstsq(design, z.ravel(), rcond=None)
    return float(np.mean(np.abs(z.ravel() - design @ coefficients)))


def _grid(length: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centred grid with square pixels, _HEIGHT_MAP_SAMPLES along the longer side."""
    spacing = max(length, width) / _HEIGHT_MAP_SAMPLES
    xs = (np.arange(math.ceil(length / spacing)) + 0.5) * length / math.ceil(length / spacing)
    ys = (np.arange(math.ceil(width / spacing)) + 0.5) * width / math.ceil(width / spacing)
    return np.meshgrid(xs, ys, indexing="ij")


def height_map(nodules: list[Nodule], length: float, width: float,
               envelopes: list[tuple[np.ndarray, np.ndarray]] | None = None):
    """(x, y, z): the top envelope of the foil and the nodules on the cell's grid.

    `envelopes` gives each nodule's envelope as (radii, heights) (e.g. measured on the built
    curves); by default it is the closed-form profile's. The grid covers the cell only, so a
    quarter nodule at a corner shows as its quarter.
    """
    x, y = _grid(length, width)
    z = np.zeros_like(x)
    for index, nodule in enumerate(nodules):
        if envelopes is None:
            radii = np.linspace(0.0, widest_radius(nodule.profile), 2001)
            heights = _envelope_of(nodule.profile, radii)
        else:
            radii, heights = envelopes[index]
        rho = np.hypot(x - nodule.x, y - nodule.y)
        near = rho <= radii[-1]
        z[near] = np.maximum(z[near], np.interp(rho[near], radii, heights))
    return x, y, z


def field_sa(nodules: list[Nodule], length: float, width: float) -> float:
    return areal_mean_roughness(*height_map(nodules, length, width))


# --- Cells ---------------------------------------------------------------------------------


def array_cell(pitch: float, array: Array) -> tuple[float, float]:
    """(length, width) of the smallest rectangular symmetric cell of the array."""
    if array == "square":
        return pitch / 2, pitch / 2
    if array == "hexagonal":
        return pitch / 2, math.sqrt(3) * pitch / 2
    raise GeometryError(f"geometry: array ({array!r}) must be square or hexagonal")


def array_nodules(profile: Profile, pitch: float, array: Array) -> list[Nodule]:
    """The quarter nodules of the array's cell: at (0, 0), and for hexagonal at the opposite
    corner too."""
    length, width = array_cell(pitch, array)
    nodules = [Nodule(0.0, 0.0, profile, 0.0, math.pi / 2)]
    if array == "hexagonal":
        nodules.append(Nodule(length, width, profile, math.pi, math.pi / 2))
    return nodules


def build_flat_3d(pitch: float, foil_thickness: float, mix_thickness: float, mesh_size: float,
                  interface_mesh_size: float | None = None, array: Array = "square",
                  foil_material: str = "copper", mix_material: str = "mix") -> BuiltGeometry:
    """The 3D cell of an array without nodules (rank 0 only; sizes in metres)."""
    sizes = _cell_sizes("pitch", pitch, foil_thickness, mix_thickness, mesh_size,
                        interface_mesh_size)
    _check_cell(sizes, foil_material, mix_material)
    length, width = array_cell(pitch, array)
    with gmsh_errors(_describe(f"3D flat cell of a {array} array", sizes)):
        return _build_cell(_in_micrometres(sizes), length / MICROMETRE, width / MICROMETRE, [],
                           foil_material, mix_material)


def build_recurved_3d(pitch: float, foil_thickness: float, neck_width: float, head_width: float,
                      height: float, neck_height: float, fillet_radius: float,
                      mix_thickness: float, mesh_size: float,
                      interface_mesh_size: float | None = None, array: Array = "square",
                      foil_material: str = "copper", mix_material: str = "mix") -> BuiltGeometry:
    """The 3D cell of a square or hexagonal array of recurved nodules ("mushrooms"): the
    RecurvedProfile revolved about its axis (rank 0 only; sizes in metres)."""
    sizes = _cell_sizes("pitch", pitch, foil_thickness, mix_thickness, mesh_size,
                        interface_mesh_size)
    shape = {"neck_width": neck_width, "head_width": head_width, "height": height,
             "neck_height": neck_height, "fillet_radius": fillet_radius}
    sizes.update(shape)
    _check_cell(sizes, foil_material, mix_material)
    _check_recurved(sizes)
    sizes_um = _in_micrometres(sizes)
    profile = RecurvedProfile(**{name: sizes_um[name] for name in shape})
    return _build_array(sizes, sizes_um, profile, array, "recurved", foil_material,
                        mix_material)


def build_plain_3d(pitch: float, foil_thickness: float, base_width: float, top_width: float,
                   height: float, fillet_radius: float, mix_thickness: float, mesh_size: float,
                   interface_mesh_size: float | None = None, array: Array = "square",
                   foil_material: str = "copper", mix_material: str = "mix") -> BuiltGeometry:
    """The 3D cell of an array of plain nodules: the filleted trapezoid (PlainProfile)
    revolved, a truncated cone (rank 0 only; sizes in metres)."""
    sizes = _cell_sizes("pitch", pitch, foil_thickness, mix_thickness, mesh_size,
                        interface_mesh_size)
    shape = {"base_width": base_width, "top_width": top_width, "height": height,
             "fillet_radius": fillet_radius}
    sizes.update(shape)
    _check_cell(sizes, foil_material, mix_material)
    _check_plain(sizes)
    sizes_um = _in_micrometres(sizes)
    profile = PlainProfile(**{name: sizes_um[name] for name in shape})
    return _build_array(sizes, sizes_um, profile, array, "plain", foil_material, mix_material)


def _build_array(sizes, sizes_um, profile, array, shape, foil_material, mix_material):
    length, width = array_cell(sizes_um["pitch"], array)
    # The quarter nodules must stay within the cell and apart: the widest section (the head,
    # or the foot with its fillets) narrower than the pitch, with a mesh element to spare.
    widest = 2 * widest_radius(profile)
    if not widest + sizes_um["interface_mesh_size"] <= sizes_um["pitch"]:
        raise GeometryError(
            f"geometry: the {shape} nodule is {widest:.4g} um wide at its widest (head or "
            f"foot with fillets); with interface_mesh_size "
            f"({sizes_um['interface_mesh_size']:.4g} um) between neighbours it must fit in "
            f"pitch ({sizes_um['pitch']:.4g} um)")
    nodules = array_nodules(profile, sizes_um["pitch"], array)
    what = _describe(f"3D {shape} cell of a {array} array", sizes)
    with gmsh_errors(what):
        return _build_cell(sizes_um, length, width, nodules, foil_material, mix_material)


def build_rough_3d(length: float, width: float, foil_thickness: float, mix_thickness: float,
                   target_sa: float, nodule_count: int, nodule_width: float, mesh_size: float,
                   nodule_shape: NoduleShape = "recurved", seed: int = 0,
                   interface_mesh_size: float | None = None, foil_material: str = "copper",
                   mix_material: str = "mix", nodule_gap: float | None = None) -> BuiltGeometry:
    """A foil of `length` x `width` roughened by a random field of nodules of revolution to
    the areal roughness Sa = `target_sa`, under a mix layer (rank 0 only; sizes in metres).

    The field is `rough_field`'s, its nodules at least `nodule_gap` apart (default: the
    interface mesh size); the metrics report Sa measured on the built curves.
    """
    sizes = _cell_sizes("length", length, foil_thickness, mix_thickness, mesh_size,
                        interface_mesh_size)
    sizes.update({"width": width, "Sa": target_sa, "nodule_width": nodule_width})
    _check_cell(sizes, foil_material, mix_material)
    sizes_um = _in_micrometres(sizes)
    nodules = rough_field(
        length=sizes_um["length"], width=sizes_um["width"], target_sa=sizes_um["Sa"],
        nodule_count=nodule_count, nodule_width=sizes_um["nodule_width"],
        nodule_shape=nodule_shape, seed=seed, mix_thickness=sizes_um["mix_thickness"],
        interface_mesh_size=sizes_um["interface_mesh_size"],
        nodule_gap=sizes_um["interface_mesh_size"] if nodule_gap is None
        else nodule_gap / MICROMETRE)
    what = _describe("3D rough cell", sizes) + f", {nodule_count} {nodule_shape} nodules"
    with gmsh_errors(what):
        built = _build_cell(sizes_um, sizes_um["length"], sizes_um["width"], nodules,
                            foil_material, mix_material)
    heights = [nodule.profile.height for nodule in nodules]
    built.metrics.update({
        "Sa_target": target_sa,
        "nodule_count": len(nodules),
        "nodule_height_max": float(max(heights)) * MICROMETRE,
        "nodule_height_mean": float(np.mean(heights)) * MICROMETRE,
    })
    return built


def rough_field(length: float, width: float, target_sa: float, nodule_count: int,
                nodule_width: float, nodule_shape: NoduleShape, seed: int,
                mix_thickness: float, interface_mesh_size: float,
                nodule_gap: float) -> list[Nodule]:
    """A random field of whole nodules over [0, length] x [0, width] with Sa = target_sa
    (micrometres).

    Shapes, widths (+-25%) and relative heights (+-40%) are drawn as for the 2D row
    (meshes.collector.rough_row); the nodules are placed by random sequential addition, widest
    first, at least nodule_gap apart (widest sections) and half that from the
    lateral faces (a nodule and its mirror image are then as far apart as two nodules). Only
    the common height scale depends on target_sa: fixed-point iteration on Sa.
    """
    if not isinstance(nodule_count, int) or nodule_count < 1:
        raise GeometryError(
            f"geometry: nodule_count ({nodule_count!r}) must be a positive integer")
    if nodule_shape not in ("recurved", "plain", "mixed"):
        raise GeometryError(
            f"geometry: nodule_shape ({nodule_shape!r}) must be recurved, plain or mixed")
    generator = np.random.default_rng(seed)
    shapes = [nodule_shape if nodule_shape != "mixed"
              else ("recurved" if generator.random() < 0.5 else "plain")
              for _ in range(nodule_count)]
    widths = nodule_width * generator.uniform(1 - _WIDTH_SPREAD, 1 + _WIDTH_SPREAD, nodule_count)
    relative_heights = generator.uniform(1 - _HEIGHT_SPREAD, 1 + _HEIGHT_SPREAD, nodule_count)
    reaches = np.array([_largest_foot(shape, w) / 2 for shape, w in zip(shapes, widths,
                                                                           strict=True)])
    # The generated shapes need a neck the interface elements resolve.
    narrowest_neck = min((_nodule_profile(s, w, 1.0).neck_width for s, w in zip(
        shapes, widths, strict=True) if s == "recurved"), default=math.inf)
    if interface_mesh_size > narrowest_neck / 2:
        raise GeometryError(
            f"geometry: interface_mesh_size ({interface_mesh_size:.4g} um) must be at most half "
            f"the narrowest neck ({narrowest_neck:.4g} um, from nodule_width "
            f"{nodule_width:.4g} um) to resolve it")
    centres = _place(reaches, length, width, nodule_gap, generator)
    if centres is None:
        raise GeometryError(
            f"geometry: nodule_count ({nodule_count}) nodules of nodule_width "
            f"({nodule_width:.4g} um, up to {2 * reaches.max():.4g} um wide) do not fit in "
            f"length x width ({length:.4g} x {width:.4g} um) at least nodule_gap "
            f"({nodule_gap:.4g} um) apart: fewer or narrower nodules, or a larger cell")

    def field(height_scale: float) -> list[Nodule]:
        return [Nodule(float(x), float(y), _nodule_profile(shape, w, height_scale * relative))
                for (x, y), shape, w, relative in zip(centres, shapes, widths, relative_heights,
                                                      strict=True)]

    # First guess: cylinders of the mean footprint, whose Sa is 2 h f (1 - f) at coverage f.
    coverage = min(float(np.sum(np.pi * reaches**2)) / (length * width), 0.9)
    height_scale = target_sa / (2 * coverage * (1 - coverage))
    measured = math.nan
    for _ in range(_SA_ITERATIONS):
        if height_scale * (1 + _HEIGHT_SPREAD) >= mix_thickness:
            raise GeometryError(
                f"geometry: Sa ({target_sa:.4g} um) needs nodules about "
                f"{height_scale * (1 + _HEIGHT_SPREAD):.4g} um high, not below mix_thickness "
                f"({mix_thickness:.4g} um): lower Sa, or more or wider nodules")
        nodules = field(height_scale)
        measured = field_sa(nodules, length, width)
        if abs(measured / target_sa - 1) < _SA_TOLERANCE:
            return nodules
        height_scale *= target_sa / measured
    raise GeometryError(
        f"geometry: Sa ({target_sa:.4g} um) was not reached by scaling the nodule heights "
        f"(last {measured:.4g} um)")


def _place(reaches: np.ndarray, length: float, width: float, gap: float,
           generator: np.random.Generator) -> np.ndarray | None:
    """Centres for discs of these radii, widest first, by random sequential addition; None if
    one finds no room. Order of the result: that of `reaches`."""
    centres = np.full((len(reaches), 2), np.nan)
    placed: list[int] = []
    for index in np.argsort(-reaches, kind="stable"):
        margin = reaches[index] + gap / 2
        if 2 * margin > min(length, width):
            return None
        trials = np.column_stack([generator.uniform(margin, length - margin, _NODULE_TRIALS),
                                  generator.uniform(margin, width - margin, _NODULE_TRIALS)])
        if placed:
            distance = np.linalg.norm(trials[:, None] - centres[placed][None], axis=2)
            free = np.all(distance >= reaches[placed][None] + reaches[index] + gap, axis=1)
        else:
            free = np.ones(len(trials), dtype=bool)
        if not free.any():
            return None
        centres[index] = trials[np.argmax(free)]
        placed.append(int(index))
    return centres


# --- Gmsh ----------------------------------------------------------------------------------


def _build_cell(sizes: dict[str, float], length: float, width: float, nodules: list[Nodule],
                foil_material: str, mix_material: str) -> BuiltGeometry:
    """Build, tag and mesh a 3D cell with these nodules; sizes in micrometres."""
    require_positive({"length": length * MICROMETRE, "width": width * MICROMETRE})
    occ = gmsh.model.occ
    foil_thickness, mix_thickness = sizes["foil_thickness"], sizes["mix_thickness"]
    added = [_add_nodule(nodule) for nodule in nodules]
    foil = occ.addBox(0, 0, -foil_thickness, length, width, foil_thickness)
    mix = occ.addBox(0, 0, 0, length, width, mix_thickness)
    # The mix box overlaps every nodule: fragmenting gives each overlap to both inputs, and
    # the mix is what the mix box became minus what the copper became.
    _, fragment_map = occ.fragment([(3, foil)], [(3, tag) for tag, _ in added] + [(3, mix)])
    occ.synchronize()
    copper_volumes = set().union(*(children(fragment_map, i) for i in range(len(added) + 1)))
    mix_volumes = children(fragment_map, len(added) + 1) - copper_volumes
    if len(mix_volumes) != 1:
        raise RuntimeError(
            f"the mix came out in {len(mix_volumes)} pieces; nodules must stay apart")

    cell_groups = {
        foil_material: add_physical_group(3, copper_volumes, foil_material, 1),
        mix_material: add_physical_group(3, mix_volumes, mix_material, 2),
    }
    tolerance = 1e-6 * max(length, width, mix_thickness + foil_thickness)
    interface = boundary_tags(3, copper_volumes) & boundary_tags(3, mix_volumes)
    interface_name = f"interface_{foil_material}_{mix_material}"
    facet_groups: dict[str, int] = {}
    for name, surfaces in (
        ("bottom", entities_on_plane(2, 2, -foil_thickness, tolerance)),
        ("top", entities_on_plane(2, 2, mix_thickness, tolerance)),
        ("left", entities_on_plane(2, 0, 0.0, tolerance)),
        ("right", entities_on_plane(2, 0, length, tolerance)),
        ("front", entities_on_plane(2, 1, 0.0, tolerance)),
        ("back", entities_on_plane(2, 1, width, tolerance)),
        (interface_name, interface),
    ):
        facet_groups[name] = add_physical_group(2, surfaces, name, len(facet_groups) + 1)

    _refine(interface, nodules, sizes["mesh_size"], sizes["interface_mesh_size"])
    generate_mesh(3, cell_groups)

    quality_min, quality_mean = element_quality(3)
    _, element_tags, _ = gmsh.model.mesh.getElements(3)
    element_count = int(sum(len(tags) for tags in element_tags))
    interface_area = sum(occ.getMass(2, surface) for surface in interface)
    projection_volume = sum(n.share * revolved_volume(n.profile) for n in nodules)
    volume = length * width
    built_sa = areal_mean_roughness(*height_map(nodules, length, width,
                                                [envelope for _, envelope in added]))
    metrics: dict[str, float | bool] = {
        "interface_area": interface_area * MICROMETRE**2,
        "projected_area": volume * MICROMETRE**2,
        "projection_volume": projection_volume * MICROMETRE**3,
        "undercut_volume": sum(n.share * revolved_undercut_volume(n.profile) for n in nodules)
        * MICROMETRE**3,
        "recurved": any(is_recurved(n.profile.right_outline(400)[0]) for n in nodules),
        "Sa": built_sa * MICROMETRE,
        "foil_volume": (volume * foil_thickness + projection_volume) * MICROMETRE**3,
        "mix_volume": (volume * mix_thickness - projection_volume) * MICROMETRE**3,
        "cell_length": length * MICROMETRE,
        "cell_width": width * MICROMETRE,
        "element_count": element_count,
        "element_quality_min": quality_min,
        "element_quality_mean": quality_mean,
    }
    logger.info(
        "built a 3D cell with %d nodule(s): %d tetrahedra, interface %.4g um^2 over %.4g um^2, "
        "Sa %.4g um, element quality min %.3f mean %.3f", len(nodules), element_count,
        interface_area, volume, built_sa, quality_min, quality_mean)
    return BuiltGeometry(
        dim=3,
        length_scale=MICROMETRE,
        cell_groups=cell_groups,
        cell_materials={tag: name for name, tag in cell_groups.items()},
        facet_groups=facet_groups,
        interfaces={interface_name: (facet_groups[interface_name], cell_groups[foil_material],
                                     cell_groups[mix_material])},
        metrics=metrics,
    )


def _add_nodule(nodule: Nodule) -> tuple[int, tuple[np.ndarray, np.ndarray]]:
    """The nodule's solid (its outline in the half-plane at start_angle, closed by its axis
    and the foil, revolved by its sweep), and the envelope (radii, heights) of the built
    outline curves, for Sa."""
    occ = gmsh.model.occ
    profile = nodule.profile
    cos, sin = math.cos(nodule.start_angle), math.sin(nodule.start_angle)

    def point(r: float, z: float) -> int:
        return occ.addPoint(nodule.x + r * cos, nodule.y + r * sin, z)

    if isinstance(profile, RecurvedProfile):
        # As in meshes.recurved: one spline through the densely sampled outline, no end
        # tangents (they made OCC loop at a foot).
        right_x, right_y = profile.right_outline(OUTLINE_POINTS_PER_HALF)
        points = [point(r, z) for r, z in zip(right_x, right_y, strict=True)]
        outline = [occ.addSpline(points)]
        foot, top = points[0], points[-1]
    else:
        corners = profile.right_corners()
        at = {name: point(r, z) for name, (r, z) in corners.items()}
        top = point(0.0, profile.height)
        outline = [
            occ.addCircleArc(at["foot"], at["foot_centre"], at["foot_side"]),
            occ.addLine(at["foot_side"], at["top_side"]),
            occ.addCircleArc(at["top_side"], at["top_centre"], at["top_end"]),
            occ.addLine(at["top_end"], top),
        ]
        foot = at["foot"]
        occ.remove([(0, at["foot_centre"]), (0, at["top_centre"])])
    base = point(0.0, 0.0)
    loop = occ.addCurveLoop([*outline, occ.addLine(top, base), occ.addLine(base, foot)])
    section = occ.addPlaneSurface([loop])
    occ.synchronize()
    envelope = _built_envelope(outline, nodule)
    revolved = occ.revolve([(2, section)], nodule.x, nodule.y, 0.0, 0.0, 0.0, 1.0, nodule.sweep)
    (solid,) = [tag for dim, tag in revolved if dim == 3]
    return solid, envelope


def _built_envelope(curves: list[int], nodule: Nodule) -> tuple[np.ndarray, np.ndarray]:
    """The top envelope (radii, heights) of the built outline curves, sampled densely."""
    polylines = []
    for curve in curves:
        low, high = gmsh.model.getParametrizationBounds(1, curve)
        points = np.reshape(gmsh.model.getValue(1, curve, np.linspace(low[0], high[0], 2001)),
                            (-1, 3))
        radii = np.hypot(points[:, 0] - nodule.x, points[:, 1] - nodule.y)
        polylines.append((radii, points[:, 2]))
    reach = max(float(r.max()) for r, _ in polylines)
    radii = np.linspace(0.0, reach, 2001)
    polylines.append((np.array([0.0, reach]), np.zeros(2)))
    return radii, upper_envelope(polylines, radii)


def _refine(interface: set[int], nodules: list[Nodule], mesh_size: float,
            interface_mesh_size: float) -> None:
    """Size elements interface_mesh_size at the interface and through each recurved nodule's
    neck and undercut ring, growing to mesh_size over 3 mesh_size away from them."""
    field = gmsh.model.mesh.field
    fields = [interface_threshold(2, interface, mesh_size, interface_mesh_size)]
    for nodule in nodules:
        profile = nodule.profile
        if not isinstance(profile, RecurvedProfile):
            continue
        # The neck and the binder ring under the head carry the anchoring: the whole cylinder
        # from the foil to the head's widest section is meshed at the interface size.
        neck = field.add("Cylinder")
        for name, value in (("XCenter", nodule.x), ("YCenter", nodule.y),
                            ("ZCenter", profile.widest_height / 2), ("XAxis", 0.0),
                            ("YAxis", 0.0), ("ZAxis", profile.widest_height / 2),
                            ("Radius", widest_radius(profile)),
                            ("VIn", interface_mesh_size), ("VOut", mesh_size)):
            field.setNumber(neck, name, value)
        fields.append(neck)
    smallest = field.add("Min")
    field.setNumbers(smallest, "FieldsList", fields)
    use_size_field(smallest, mesh_size)
