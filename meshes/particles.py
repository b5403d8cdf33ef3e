"""A unit cell of a copper foil under a binder layer filled with explicit particles.

Seed 000 (claims 1, 9-11): active particles of Si or a Si alloy, optionally a conductive Cu
powder, in a polyimide binder on a Cu foil. The particles are circles (2D) or spheres (3D)
drawn from a size distribution and packed at random without overlap, every particle at
least `min_gap` from every other one, from the foil and from the top of the layer.

The cell's lateral faces are symmetry planes (the solver keeps them plane), so the
electrode it stands for is the cell mirrored across them. The particles are therefore kept
`min_gap / 2` from the lateral faces, not wrapped across them: a particle and its mirror
image are then `min_gap` apart, like any other pair, whereas a particle cut by a mirror
plane would stand for a lens-shaped particle, and one wrapped periodically would contradict
the mirror conditions.

Packing (`pack_particles`): random sequential addition, largest particles first, each at the
first of many random trial positions that keeps every gap; a particle for which none does
(above about 45% in 2D and 30% in 3D, where addition saturates) is put at a random position
and then the whole packing is relaxed: the squared overlaps (the shortfall of every centre
distance below r_i + r_j + min_gap) are minimized by L-BFGS-B with the centres bounded by
the walls, until no pair overlaps. A packing that cannot be relaxed free of overlaps is an
error naming the parameters.

With a `projection` (2D), the foil carries a recurved projection (meshes.recurved's profile)
in the middle of the cell, standing in the layer; the particles keep min_gap from its
outline too, and sit in its undercut where they fit there (seed 000 claim 3). The fractions
are then of the layer without the projection.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import gmsh
import numpy as np
from matplotlib.path import Path as PolygonPath
from scipy.optimize import brentq, minimize
from scipy.spatial import cKDTree
from scipy.special import ndtr

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
    micrometres,
    require_positive,
    use_size_field,
)
from meshes.profiles import RecurvedProfile
from solver.errors import GeometryError

logger = logging.getLogger(__name__)

# The lognormal is truncated to its central 98% (z = +-2.326): a rare huge particle would
# not fit the layer, and a rare tiny one would only cost elements.
_LOGNORMAL_TRUNCATION_Z = 2.3263478740408408
# Trial positions per particle in the addition phase, drawn and checked in batches.
_TRIAL_BATCH = 128
_TRIAL_BATCHES = 20
# The relaxation aims at gaps this much (relative) wider than min_gap, so that it ends with
# every gap strictly at least min_gap rather than approaching it from below.
_RELAXATION_MARGIN = 1e-3
_RELAXATION_MAX_ITERATIONS = 5000


@dataclass(frozen=True)
class DiameterDistribution:
    """Particle diameters with a given mean and standard deviation (`spread`), any one unit.

    `lognormal`: truncated to the central 98% of ln(diameter), with its parameters chosen so
    that the truncated distribution, the one drawn from, has this mean and spread.
    `uniform`: between mean -+ sqrt(3) spread. spread = 0: all equal.
    """

    kind: Literal["lognormal", "uniform"]
    mean: float
    spread: float

    def _log_parameters(self) -> tuple[float, float]:
        """Mean and standard deviation of ln(diameter) before the truncation."""
        if self.spread == 0:
            return math.log(self.mean), 0.0
        z = _LOGNORMAL_TRUNCATION_Z

        def kept_moment_factor(power: int, log_deviation: float) -> float:
            """E[d^power] of the truncated over the untruncated lognormal's, same parameters."""
            shift = power * log_deviation
            return (ndtr(z - shift) - ndtr(-z - shift)) / (ndtr(z) - ndtr(-z))

        def variation_excess(log_deviation: float) -> float:
            """Truncated coefficient of variation squared minus the wanted one."""
            ratio = kept_moment_factor(2, log_deviation) / kept_moment_factor(1, log_deviation) ** 2
            return math.exp(log_deviation**2) * ratio - 1 - (self.spread / self.mean) ** 2

        # Truncation narrows the distribution: the untruncated one is wider than asked.
        upper = 2 * math.sqrt(math.log1p((self.spread / self.mean) ** 2))
        while variation_excess(upper) < 0:
            upper *= 2
        log_deviation = brentq(variation_excess, 0.0, upper, xtol=1e-14)
        log_mean = (
            math.log(self.mean)
            - log_deviation**2 / 2
            - math.log(kept_moment_factor(1, log_deviation))
        )
        return log_mean, log_deviation

    def support(self) -> tuple[float, float]:
        """The smallest and largest diameter the distribution can draw."""
        if self.kind == "uniform":
            half_range = math.sqrt(3) * self.spread
            return self.mean - half_range, self.mean + half_range
        log_mean, log_deviation = self._log_parameters()
        reach = _LOGNORMAL_TRUNCATION_Z * log_deviation
        return math.exp(log_mean - reach), math.exp(log_mean + reach)

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        if self.kind == "uniform":
            low, high = self.support()
            return rng.uniform(low, high, count)
        log_mean, log_deviation = self._log_parameters()
        # Drawing standard normals truncated by rejection keeps the draws reproducible.
        drawn = np.empty(0)
        while len(drawn) < count:
            normals = rng.standard_normal(2 * count)
            kept = normals[np.abs(normals) <= _LOGNORMAL_TRUNCATION_Z]
            drawn = np.concatenate([drawn, np.exp(log_mean + log_deviation * kept)])
        return drawn[:count]


@dataclass(frozen=True)
class ParticleSpecies:
    """One kind of particle: its material, its share of the layer volume and its sizes."""

    material: str
    volume_fraction: float
    diameters: DiameterDistribution


@dataclass(frozen=True)
class Obstacle:
    """A copper projection standing in the layer (2D): its outline from the right foot over
    the top to the left foot, the polygon closed along the foil, and its exact area."""

    x: np.ndarray
    y: np.ndarray
    area: float

    @classmethod
    def recurved(cls, profile: RecurvedProfile, axis: float) -> Obstacle:
        right_x, right_y = profile.right_outline(OUTLINE_POINTS_PER_HALF)
        x = np.concatenate([axis + right_x, axis - right_x[::-1][1:]])
        y = np.concatenate([right_y, right_y[::-1][1:]])
        return cls(x, y, profile.area())

    def signed_distance(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance of each point to the outline, negative inside the projection, and the
        unit direction in which it grows."""
        start = np.column_stack([self.x, self.y])
        end = np.roll(start, -1, axis=0)  # the last segment closes the polygon on the foil
        edge = end - start
        along = np.einsum("nmk,mk->nm", points[:, None] - start[None], edge) / np.einsum(
            "mk,mk->m", edge, edge)
        nearest = start[None] + np.clip(along, 0.0, 1.0)[..., None] * edge[None]
        offsets = points[:, None] - nearest
        lengths = np.linalg.norm(offsets, axis=2)
        closest = lengths.argmin(axis=1)
        rows = np.arange(len(points))
        distance = np.maximum(lengths[rows, closest], 1e-12)
        direction = offsets[rows, closest] / distance[:, None]
        inside = PolygonPath(start).contains_points(points)
        sign = np.where(inside, -1.0, 1.0)
        return sign * distance, sign[:, None] * direction


@dataclass(frozen=True)
class Packing:
    """Particles packed in a layer [0, lateral...] x [0, layer_thickness], one unit.

    The last coordinate is the height above the foil; `species[i]` indexes the species list
    the packing was made from.
    """

    lateral: tuple[float, ...]
    layer_thickness: float
    centres: np.ndarray  # (n, dim)
    diameters: np.ndarray  # (n,)
    species: np.ndarray  # (n,)
    relaxed: bool  # whether the addition needed the relaxation to place every particle
    obstacle: Obstacle | None = None  # a projection of the foil standing in the layer

    @property
    def layer_volume(self) -> float:
        """Volume (area in 2D) of the layer, binder and particles."""
        taken = self.obstacle.area if self.obstacle is not None else 0.0
        return math.prod(self.lateral) * self.layer_thickness - taken

    def volume_fraction(self, species: int) -> float:
        """Exact share of the layer volume taken by the particles of one species."""
        volumes = _volumes(self.diameters[self.species == species], len(self.lateral) + 1)
        return float(volumes.sum() / self.layer_volume)

    def smallest_gap(self) -> float:
        """The narrowest gap: between particles, to the foil and the top, and to the mirror
        image across a lateral face (twice the distance to the face)."""
        radii = self.diameters / 2
        height = self.centres[:, -1]
        gaps = [height - radii, self.layer_thickness - height - radii]
        for axis, extent in enumerate(self.lateral):
            position = self.centres[:, axis]
            gaps += [2 * (position - radii), 2 * (extent - position - radii)]
        if self.obstacle is not None:
            gaps.append(self.obstacle.signed_distance(self.centres)[0] - radii)
        smallest = min(float(gap.min()) for gap in gaps)
        if len(radii) > 1:
            distances = np.linalg.norm(self.centres[:, None] - self.centres[None], axis=2)
            clearance = distances - radii[:, None] - radii[None, :]
            smallest = min(smallest, float(clearance[np.triu_indices(len(radii), 1)].min()))
        return smallest


class PackingError(Exception):
    """The particles could not be packed without overlap."""

    def __init__(self, particle_count: int, fraction: float):
        self.particle_count, self.fraction = particle_count, fraction
        super().__init__(f"{particle_count} particles, {fraction:.3f} of the layer, overlap")


def draw_diameters(
    species: list[ParticleSpecies], layer_volume: float, dim: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Diameters and species indices whose volumes add up to each species' share.

    Diameters are drawn until their volumes reach the share; the last one is then resized so
    that they add up to it exactly, unless that would take it below the smallest diameter of
    the distribution: then it is that smallest diameter, and the share is exceeded by less
    than one smallest particle (never undershot: a fraction asked is a fraction reached).
    """
    diameters, indices = [], []
    shape_factor = _shape_factor(dim)
    for index, kind in enumerate(species):
        target = kind.volume_fraction * layer_volume
        if target == 0:
            continue
        batch = math.ceil(target / (shape_factor * kind.diameters.mean**dim)) + 8
        drawn = kind.diameters.sample(rng, batch)
        while _volumes(drawn, dim).sum() < target:
            drawn = np.concatenate([drawn, kind.diameters.sample(rng, batch)])
        cumulative = np.cumsum(_volumes(drawn, dim))
        reaching = int(np.searchsorted(cumulative, target))  # the draw that reaches the target
        missing = target - (cumulative[reaching - 1] if reaching > 0 else 0.0)
        smallest = kind.diameters.support()[0]
        chosen = list(drawn[:reaching])
        chosen.append(max((missing / shape_factor) ** (1 / dim), smallest))
        diameters.append(np.array(chosen))
        indices.append(np.full(len(chosen), index))
    if not diameters:
        return np.empty(0), np.empty(0, dtype=int)
    return np.concatenate(diameters), np.concatenate(indices)


def _shape_factor(dim: int) -> float:
    """Volume (area in 2D) of a sphere (circle) over its diameter to the power dim."""
    return math.pi / 4 if dim == 2 else math.pi / 6


def _volumes(diameters: np.ndarray, dim: int) -> np.ndarray:
    return _shape_factor(dim) * diameters**dim


def pack_particles(
    lateral: tuple[float, ...],
    layer_thickness: float,
    species: list[ParticleSpecies],
    min_gap: float,
    seed: int,
    obstacle: Obstacle | None = None,
) -> Packing:
    """Pack the species' particles in the layer; `lateral` is (length,) in 2D, (length,
    width) in 3D; an obstacle (2D) is a projection of the foil that they keep min_gap from.
    Raises PackingError if they cannot be packed without overlap."""
    dim = len(lateral) + 1
    rng = np.random.default_rng(seed)
    layer_volume = math.prod(lateral) * layer_thickness - (obstacle.area if obstacle else 0.0)
    diameters, indices = draw_diameters(species, layer_volume, dim, rng)
    # Largest first: the large particles are the hard ones to fit, the small fill the holes.
    order = np.argsort(-diameters, kind="stable")
    diameters, indices = diameters[order], indices[order]
    radii = diameters / 2
    lowest, highest = _centre_bounds(lateral, layer_thickness, radii, min_gap)

    centres = np.empty((len(radii), dim))
    placed = np.zeros(len(radii), dtype=bool)
    for particle in range(len(radii)):
        span = highest[particle] - lowest[particle]
        for _ in range(_TRIAL_BATCHES):
            trials = lowest[particle] + span * rng.random((_TRIAL_BATCH, dim))
            others = centres[placed]
            clearance = np.linalg.norm(trials[:, None] - others[None], axis=2) - (
                radii[particle] + radii[placed] + min_gap
            )
            fits = (clearance >= 0).all(axis=1)
            if obstacle is not None:
                fits &= obstacle.signed_distance(trials)[0] >= radii[particle] + min_gap
            free = np.flatnonzero(fits)
            if free.size:
                centres[particle], placed[particle] = trials[free[0]], True
                break
    relaxed = not placed.all()
    if relaxed:
        left_out = ~placed
        centres[left_out] = lowest[left_out] + (highest[left_out] - lowest[left_out]) * rng.random(
            (int(left_out.sum()), dim)
        )
        logger.debug("addition placed %d of %d particles; relaxing", placed.sum(), len(radii))
        centres = _relax(centres, radii, lowest, highest, min_gap, obstacle)
        if centres is None:
            raise PackingError(len(radii), float(_volumes(diameters, dim).sum() / layer_volume))
    return Packing(lateral, layer_thickness, centres, diameters, indices, relaxed, obstacle)


def _centre_bounds(lateral, layer_thickness, radii, min_gap) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest centre coordinates: min_gap / 2 from the lateral (mirror) faces,
    min_gap from the foil and the top."""
    lowest = [radii + min_gap / 2 for _ in lateral] + [radii + min_gap]
    highest = [extent - radii - min_gap / 2 for extent in lateral]
    highest.append(layer_thickness - radii - min_gap)
    return np.column_stack(lowest), np.column_stack(highest)


def _relax(centres, radii, lowest, highest, min_gap, obstacle=None) -> np.ndarray | None:
    """Move the centres within their bounds until no two particles (nor a particle and the
    obstacle) are closer than min_gap; None if the minimization stalls with overlaps left."""
    dim = centres.shape[1]
    reach = (2 * radii.max() + min_gap) * (1 + _RELAXATION_MARGIN)

    def squared_overlaps(flat: np.ndarray) -> tuple[float, np.ndarray]:
        points = flat.reshape(-1, dim)
        pairs = cKDTree(points).query_pairs(reach, output_type="ndarray")
        first, second = pairs[:, 0], pairs[:, 1]
        offsets = points[first] - points[second]
        distances = np.maximum(np.linalg.norm(offsets, axis=1), 1e-12)
        wanted = (radii[first] + radii[second] + min_gap) * (1 + _RELAXATION_MARGIN)
        overlaps = np.maximum(wanted - distances, 0.0)
        push = (overlaps / distances)[:, None] * offsets
        gradient = np.zeros_like(points)
        np.add.at(gradient, first, -push)
        np.add.at(gradient, second, push)
        energy = float(np.sum(overlaps**2) / 2)
        if obstacle is not None:
            distance, direction = obstacle.signed_distance(points)
            shortfall = np.maximum((radii + min_gap) * (1 + _RELAXATION_MARGIN) - distance, 0.0)
            gradient -= shortfall[:, None] * direction
            energy += float(np.sum(shortfall**2) / 2)
        return energy, gradient.ravel()

    result = minimize(
        squared_overlaps,
        centres.ravel(),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lowest.ravel(), highest.ravel(), strict=True)),
        # Iterate until the overlaps are gone or L-BFGS stalls: no relative stopping test.
        options={"maxiter": _RELAXATION_MAX_ITERATIONS, "ftol": 0.0, "gtol": 0.0},
    )
    relaxed = result.x.reshape(-1, dim)
    distances = np.linalg.norm(relaxed[:, None] - relaxed[None], axis=2)
    clearance = distances - radii[:, None] - radii[None, :] - min_gap
    np.fill_diagonal(clearance, np.inf)
    if clearance.min() < 0:
        return None
    if obstacle is not None and (obstacle.signed_distance(relaxed)[0] - radii - min_gap).min() < 0:
        return None
    logger.debug("relaxed in %d L-BFGS iterations", result.nit)
    return relaxed


def build_particles(
    *,
    length: float,
    foil_thickness: float,
    layer_thickness: float,
    volume_fraction: float,
    mean_diameter: float,
    diameter_spread: float,
    min_gap: float,
    mesh_size: float,
    particle_mesh_size: float,
    diameter_distribution: Literal["lognormal", "uniform"] = "lognormal",
    seed: int = 0,
    dim: int = 2,
    width: float | None = None,
    conductive_fraction: float = 0.0,
    conductive_diameter: float | None = None,
    foil_material: str = "copper",
    binder_material: str = "polyimide",
    particle_material: str = "silicon",
    conductive_material: str = "copper",
    projection: RecurvedProfile | None = None,
) -> BuiltGeometry:
    """Mesh a foil under a particle-filled binder layer in the current gmsh model (rank 0).

    Sizes are in metres. 2D: x in [0, length]; 3D: x in [0, length], y in [0, width]. The
    foil is [-foil_thickness, 0] and the layer [0, layer_thickness] in the last coordinate.
    Active particles of `particle_material` take `volume_fraction` of the layer (an area
    fraction in 2D), diameters from `diameter_distribution` (mean_diameter, standard
    deviation diameter_spread); conductive particles of `conductive_material`, all of
    `conductive_diameter`, take `conductive_fraction`; the binder fills the rest.

    Cell groups: `foil_material`, `binder_material`, `particle_material` and, with conductive
    particles, `conductive_{conductive_material}`. Facet groups: bottom, top, left (x = 0),
    right (x = length), in 3D front (y = 0) and back (y = width), and the foil/binder
    interface `interface_{foil_material}_{binder_material}` (the only interface of the foil:
    min_gap keeps the particles off it). Elements are particle_mesh_size at the particles and
    the interface, growing to mesh_size away from them.

    projection (2D; lengths in metres): a recurved projection of the foil at x = length / 2,
    up into the layer; the particles keep min_gap from it and fill its undercut where they
    fit; the fractions are of the layer without it.
    """
    sizes = {
        "length": length,
        "foil_thickness": foil_thickness,
        "layer_thickness": layer_thickness,
        "mean_diameter": mean_diameter,
        "min_gap": min_gap,
        "mesh_size": mesh_size,
        "particle_mesh_size": particle_mesh_size,
    }
    if dim == 3:
        sizes["width"] = width
    if conductive_fraction > 0:
        sizes["conductive_diameter"] = conductive_diameter
    materials = {
        "foil_material": foil_material,
        "binder_material": binder_material,
        "particle_material": particle_material,
        "conductive_material": conductive_material,
    }
    _validate(sizes, dim, volume_fraction, conductive_fraction, diameter_spread, materials)
    if projection is not None:
        _validate_projection(projection, sizes, dim)
    sizes_um = {name: value / MICROMETRE for name, value in sizes.items()}
    obstacle = None
    if projection is not None:
        profile_um = RecurvedProfile(*(getattr(projection, name) / MICROMETRE for name in (
            "neck_width", "head_width", "height", "neck_height", "fillet_radius")))
        obstacle = Obstacle.recurved(profile_um, sizes_um["length"] / 2)
    species = [
        ParticleSpecies(
            particle_material,
            volume_fraction,
            DiameterDistribution(
                diameter_distribution, sizes_um["mean_diameter"], diameter_spread / MICROMETRE
            ),
        )
    ]
    if conductive_fraction > 0:
        species.append(
            ParticleSpecies(
                conductive_material,
                conductive_fraction,
                DiameterDistribution("uniform", sizes_um["conductive_diameter"], 0.0),
            )
        )
    _check_largest_particle_fits(sizes_um, species)
    what = (
        f"particle cell ({dim}D, "
        + ", ".join(f"{name}={micrometres(value)} um" for name, value in sizes.items())
        + f", volume_fraction={volume_fraction:g}, conductive_fraction={conductive_fraction:g}, "
        f"seed={seed})"
    )
    lateral = (sizes_um["length"],) if dim == 2 else (sizes_um["length"], sizes_um["width"])
    try:
        packing = pack_particles(
            lateral, sizes_um["layer_thickness"], species, sizes_um["min_gap"], seed, obstacle
        )
    except PackingError as error:
        raise GeometryError(
            f"geometry: the particles do not fit: {error.particle_count} particles taking "
            f"{error.fraction:.3f} of the layer (volume_fraction {volume_fraction:g} + "
            f"conductive_fraction {conductive_fraction:g}; mean_diameter "
            f"{micrometres(mean_diameter)} um, diameter_spread {micrometres(diameter_spread)} um, "
            f"min_gap {micrometres(min_gap)} um, seed {seed}) could not be packed without "
            f"overlap in a layer_thickness {micrometres(layer_thickness)} um layer; lower the "
            "fractions or min_gap, or make the layer thicker than the particles"
        ) from None
    logger.info(
        "packed %d particles (%s) in %s um",
        len(packing.diameters),
        "relaxed" if packing.relaxed else "by addition alone",
        " x ".join(f"{extent:.4g}" for extent in (*lateral, sizes_um["layer_thickness"])),
    )
    with gmsh_errors(what):
        return _build(dim, sizes_um, packing, species, foil_material, binder_material,
                      profile_um if projection is not None else None)


def _validate_projection(projection: RecurvedProfile, sizes, dim) -> None:
    """The projection must be 2D, narrower than the cell and lower than the layer, gaps
    included, and recurved (RecurvedProfile's own shape rules are the case file's)."""
    gap = sizes["min_gap"]
    if dim != 2:
        raise GeometryError("geometry: a projection under the particles is 2D only")
    if projection.head_width + gap > sizes["length"]:
        raise GeometryError(
            f"geometry: projection.head_width ({micrometres(projection.head_width)} um) + "
            f"min_gap ({micrometres(gap)} um) must not exceed length "
            f"({micrometres(sizes['length'])} um): the heads of neighbouring cells would touch")
    if projection.height + gap >= sizes["layer_thickness"]:
        raise GeometryError(
            f"geometry: projection.height ({micrometres(projection.height)} um) + min_gap "
            f"({micrometres(gap)} um) must be less than layer_thickness "
            f"({micrometres(sizes['layer_thickness'])} um): the layer covers the projection")


def _validate(sizes, dim, volume_fraction, conductive_fraction, diameter_spread, materials):
    """Check the parameters before any packing or gmsh call; each failure is one line."""
    if dim not in (2, 3):
        raise GeometryError(f"geometry: dim ({dim}) must be 2 or 3")
    if dim == 3 and sizes["width"] is None:
        raise GeometryError("geometry: width is required for a 3D particle cell")
    if conductive_fraction > 0 and sizes["conductive_diameter"] is None:
        raise GeometryError(
            f"geometry: conductive_diameter is required with conductive_fraction "
            f"{conductive_fraction:g}"
        )
    require_positive(sizes)
    if not 0 < volume_fraction < 1:
        raise GeometryError(f"geometry: volume_fraction ({volume_fraction!r}) must be in (0, 1)")
    if not 0 <= conductive_fraction < 1 - volume_fraction:
        raise GeometryError(
            f"geometry: conductive_fraction ({conductive_fraction!r}) must be at least 0 and "
            f"less than 1 - volume_fraction ({1 - volume_fraction:g}): the binder needs room"
        )
    if not math.isfinite(diameter_spread) or diameter_spread < 0:
        raise GeometryError(
            f"geometry: diameter_spread ({micrometres(diameter_spread)} um) must be a length "
            ">= 0 (0: all particles of mean_diameter)"
        )
    for role, material in materials.items():
        if not isinstance(material, str) or not material.strip() or " " in material:
            raise GeometryError(f"geometry: {role} ({material!r}) must be a name without spaces")
    for role in ("foil_material", "particle_material", "conductive_material"):
        if materials[role] == materials["binder_material"]:
            raise GeometryError(
                f"geometry: {role} and binder_material are both '{materials[role]}'; the "
                "binder is the matrix around them and must be another material"
            )
    if materials["particle_material"] == materials["foil_material"]:
        raise GeometryError(
            f"geometry: particle_material and foil_material are both "
            f"'{materials['foil_material']}'; name the particles' material differently"
        )
    if sizes["particle_mesh_size"] > sizes["mesh_size"]:
        raise GeometryError(
            f"geometry: particle_mesh_size ({micrometres(sizes['particle_mesh_size'])} um) must "
            f"not exceed mesh_size ({micrometres(sizes['mesh_size'])} um): the mesh is refined "
            "at the particles"
        )


def _check_largest_particle_fits(sizes_um, species) -> None:
    """The largest diameter each species can draw must fit the layer and the cell, gaps
    included; the smallest must be positive. Sizes in micrometres."""
    gap = sizes_um["min_gap"]
    for index, kind in enumerate(species):
        smallest, largest = kind.diameters.support()
        named = (
            f"mean_diameter ({kind.diameters.mean:.4g} um) and diameter_spread "
            f"({kind.diameters.spread:.4g} um)"
            if index == 0
            else f"conductive_diameter ({kind.diameters.mean:.4g} um)"
        )
        if smallest <= 0:
            raise GeometryError(
                f"geometry: {named} give diameters down to {smallest:.4g} um; a uniform "
                "distribution needs diameter_spread < mean_diameter / sqrt(3)"
            )
        room = [("layer_thickness", sizes_um["layer_thickness"] - 2 * gap)]
        room += [(side, sizes_um[side] - gap) for side in ("length", "width") if side in sizes_um]
        for side, free in room:
            if largest > free:
                raise GeometryError(
                    f"geometry: {named} give particles up to {largest:.4g} um, which do not "
                    f"fit in {side} ({sizes_um[side]:.4g} um) with min_gap ({gap:.4g} um) "
                    "around them"
                )


def _build(dim, sizes, packing, species, foil_material, binder_material,
           profile: RecurvedProfile | None) -> BuiltGeometry:
    """Build, tag and mesh the cell; `sizes`, the packing and the profile in micrometres."""
    occ = gmsh.model.occ
    length, layer, foil = sizes["length"], sizes["layer_thickness"], sizes["foil_thickness"]
    width = sizes.get("width", 0.0)
    foil_parts = []
    if packing.obstacle is not None:
        points = [occ.addPoint(x, y, 0)
                  for x, y in zip(packing.obstacle.x, packing.obstacle.y, strict=True)]
        # as the recurved cell: a spline through the densely sampled outline, no end tangents
        outline = occ.addSpline(points)
        base = occ.addLine(points[-1], points[0])
        foil_parts.append((2, occ.addPlaneSurface([occ.addCurveLoop([outline, base])])))
    if dim == 2:
        foil_tag = occ.addRectangle(0, -foil, 0, length, foil)
        layer_tag = occ.addRectangle(0, 0, 0, length, layer)
        particle_tags = [
            occ.addDisk(x, y, 0, diameter / 2, diameter / 2)
            for (x, y), diameter in zip(packing.centres, packing.diameters, strict=True)
        ]
    else:
        foil_tag = occ.addBox(0, 0, -foil, length, width, foil)
        layer_tag = occ.addBox(0, 0, 0, length, width, layer)
        particle_tags = [
            occ.addSphere(x, y, z, diameter / 2)
            for (x, y, z), diameter in zip(packing.centres, packing.diameters, strict=True)
        ]
    # The layer overlaps every particle: fragmenting gives each overlap to both inputs, and
    # the binder is what the layer became minus what the particles became.
    _, fragment_map = occ.fragment(
        [(dim, foil_tag)], [(dim, layer_tag)] + [(dim, tag) for tag in particle_tags] + foil_parts
    )
    occ.synchronize()
    first_particle = 2
    foil_entities = children(fragment_map, 0).union(
        *(children(fragment_map, first_particle + len(particle_tags) + k)
          for k in range(len(foil_parts))))
    particle_entities = [children(fragment_map, first_particle + index)
                         for index in range(len(particle_tags))]
    binder_entities = children(fragment_map, 1) - set().union(*particle_entities) - foil_entities
    if len(binder_entities) != 1 or any(len(entities) != 1 for entities in particle_entities):
        raise RuntimeError("the binder or a particle came out in pieces; the particles overlap")

    cell_groups = {
        foil_material: add_physical_group(dim, foil_entities, foil_material, 1),
        binder_material: add_physical_group(dim, binder_entities, binder_material, 2),
    }
    cell_materials = {1: foil_material, 2: binder_material}
    species_entities = []
    for index, kind in enumerate(species):
        entities = {
            entity
            for particle, chosen in enumerate(packing.species == index)
            if chosen
            for entity in particle_entities[particle]
        }
        species_entities.append(entities)
        name = kind.material if index == 0 else f"conductive_{kind.material}"
        cell_groups[name] = add_physical_group(dim, entities, name, len(cell_groups) + 1)
        cell_materials[cell_groups[name]] = kind.material

    up = dim - 1  # the stacking direction: y in 2D, z in 3D
    tolerance = 1e-6 * max(length, width, foil + layer)
    boundaries = {
        "bottom": entities_on_plane(dim - 1, up, -foil, tolerance),
        "top": entities_on_plane(dim - 1, up, layer, tolerance),
        "left": entities_on_plane(dim - 1, 0, 0.0, tolerance),
        "right": entities_on_plane(dim - 1, 0, length, tolerance),
    }
    if dim == 3:
        boundaries["front"] = entities_on_plane(dim - 1, 1, 0.0, tolerance)
        boundaries["back"] = entities_on_plane(dim - 1, 1, width, tolerance)
    interface_name = f"interface_{foil_material}_{binder_material}"
    interface = boundary_tags(dim, foil_entities) & boundary_tags(dim, binder_entities)
    boundaries[interface_name] = interface
    facet_groups = {}
    for name, entities in boundaries.items():
        facet_groups[name] = add_physical_group(dim - 1, entities, name, len(facet_groups) + 1)
    interfaces = {
        interface_name: (
            facet_groups[interface_name],
            cell_groups[foil_material],
            cell_groups[binder_material],
        )
    }

    _refine_near(packing, sizes["particle_mesh_size"], sizes["mesh_size"], profile)
    generate_mesh(dim, cell_groups)

    meshed = _meshed_measures(dim, [binder_entities, *species_entities])
    quality_min, quality_mean = element_quality(dim)
    layer_meshed = sum(meshed)
    to_si = MICROMETRE ** (dim - 1)  # interface length (2D) or area (3D)
    active = packing.species == 0
    metrics: dict[str, float | bool] = {
        "particle_volume_fraction": packing.volume_fraction(0),
        "particle_volume_fraction_meshed": meshed[1] / layer_meshed,
        "particle_count": int(active.sum()),
        "conductive_volume_fraction": packing.volume_fraction(1),
        "conductive_volume_fraction_meshed": meshed[2] / layer_meshed if len(species) > 1 else 0.0,
        "conductive_particle_count": int((~active).sum()),
        "min_gap": packing.smallest_gap() * MICROMETRE,
        "diameter_mean": float(packing.diameters[active].mean()) * MICROMETRE,
        "diameter_min": float(packing.diameters[active].min()) * MICROMETRE,
        "diameter_max": float(packing.diameters[active].max()) * MICROMETRE,
        "packing_relaxed": packing.relaxed,
        "element_quality_min": quality_min,
        "element_quality_mean": quality_mean,
        "interface_length" if dim == 2 else "interface_area": (
            sum(occ.getMass(dim - 1, entity) for entity in interface) * to_si
        ),
    }
    if profile is not None:
        metrics.update(_projection_metrics(packing, profile, length))
    logger.info(
        "built a %dD particle cell: %d particles, volume fraction %.4f (meshed %.4f)",
        dim,
        len(packing.diameters),
        metrics["particle_volume_fraction"],
        metrics["particle_volume_fraction_meshed"],
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


def _projection_metrics(packing: Packing, profile: RecurvedProfile, length: float) -> dict:
    """What the projection is and how many particles sit in its undercut: below the head's
    widest section and within its half-width of the axis (the pocket the binder fills)."""
    offset = np.abs(packing.centres[:, 0] - length / 2)
    height = packing.centres[:, 1]
    in_undercut = (offset < profile.head_width / 2) & (height < profile.widest_height)
    return {
        "projected_length": length * MICROMETRE,
        "projection_area": profile.area() * MICROMETRE**2,
        "undercut_area": profile.undercut_area() * MICROMETRE**2,
        "recurved": bool(profile.head_width > profile.neck_width),
        "undercut_particle_count": int(in_undercut.sum()),
        "undercut_particle_area": float(_volumes(packing.diameters[in_undercut], 2).sum())
        * MICROMETRE**2,
    }


def _refine_near(packing: Packing, particle_mesh_size: float, mesh_size: float,
                 profile: RecurvedProfile | None = None) -> None:
    """Size elements particle_mesh_size in the particles, within particle_mesh_size of them
    and of the foil/binder interface, growing to mesh_size over 3 mesh_size beyond.

    Analytic fields (a ball per particle, a slab along the interface): gmsh's Distance field
    samples each surface with as many points per direction as the largest needs, which for
    many spheres and a large interface plane is millions of points.
    """
    field = gmsh.model.mesh.field
    growth = 3 * mesh_size  # neighbouring elements then differ little in size
    fields = []
    for centre, diameter in zip(packing.centres, packing.diameters, strict=True):
        ball = field.add("Ball")
        for axis, value in zip(("XCenter", "YCenter", "ZCenter"), centre, strict=False):
            field.setNumber(ball, axis, value)
        field.setNumber(ball, "Radius", diameter / 2 + particle_mesh_size)
        field.setNumber(ball, "Thickness", growth)
        field.setNumber(ball, "VIn", particle_mesh_size)
        field.setNumber(ball, "VOut", mesh_size)
        fields.append(ball)
    # The interface is where the last coordinate is 0; in 2D the slab spans z = 0 too.
    slab_bounds = [(0.0, extent) for extent in packing.lateral]
    slab_bounds.append((-particle_mesh_size, particle_mesh_size))
    if len(packing.lateral) == 1:
        slab_bounds.append((-1.0, 1.0))
    slab = field.add("Box")
    for axis, (low, high) in zip("XYZ", slab_bounds, strict=True):
        field.setNumber(slab, f"{axis}Min", low)
        field.setNumber(slab, f"{axis}Max", high)
    field.setNumber(slab, "Thickness", growth)
    field.setNumber(slab, "VIn", particle_mesh_size)
    field.setNumber(slab, "VOut", mesh_size)
    fields.append(slab)
    if profile is not None:  # the projection, its outline and the binder in its undercut
        axis = packing.lateral[0] / 2
        around = field.add("Box")
        for name, value in (("XMin", axis - profile.head_width / 2 - particle_mesh_size),
                            ("XMax", axis + profile.head_width / 2 + particle_mesh_size),
                            ("YMin", -particle_mesh_size),
                            ("YMax", profile.height + particle_mesh_size),
                            ("ZMin", -1.0), ("ZMax", 1.0), ("Thickness", growth),
                            ("VIn", particle_mesh_size), ("VOut", mesh_size)):
            field.setNumber(around, name, value)
        fields.append(around)
    smallest = field.add("Min")
    field.setNumbers(smallest, "FieldsList", fields)
    use_size_field(smallest, mesh_size)


def _meshed_measures(dim, entity_sets: list[set[int]]) -> list[float]:
    """Total area (2D) or volume (3D) of the linear elements of each set of entities."""
    node_tags, coordinates, _ = gmsh.model.mesh.getNodes()
    position = np.zeros((int(node_tags.max()) + 1, 3))
    position[node_tags.astype(np.int64)] = coordinates.reshape(-1, 3)
    measures = []
    for entities in entity_sets:
        total = 0.0
        for entity in entities:
            _, _, element_nodes = gmsh.model.mesh.getElements(dim, entity)
            corners = position[element_nodes[0].astype(np.int64)].reshape(-1, dim + 1, 3)
            edges = corners[:, 1:] - corners[:, :1]
            if dim == 2:
                total += 0.5 * np.abs(np.cross(edges[:, 0], edges[:, 1])[:, 2]).sum()
            else:
                total += np.abs(np.linalg.det(edges)).sum() / 6
        measures.append(float(total))
    return measures
