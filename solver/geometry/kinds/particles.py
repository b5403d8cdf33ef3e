"""`kind = "particles"`: explicit active particles (and conductive powder) in a binder layer
on the foil, a unit cell of random sizes and positions in 2D and 3D, optionally over a
recurved projection of the foil (meshes/particles.py, docs/particles.md)."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

import meshes
from solver.case.tables import Table, rule_broken, um
from solver.case.units import OptionalPositiveLength, PositiveLength, SIQuantity
from solver.geometry.kind import (
    UNIT_CELL_FREE_FACES,
    UNIT_CELL_SYMMETRY_PLANES,
    FineMesh,
    GeometryKind,
)
from solver.geometry.kinds.recurved import Projection


class ParticlesGeometry(Table):
    kind: Literal["particles"] = Field(description="kind of geometry")
    length: PositiveLength = Field(description="extent of the unit cell along x")
    width: OptionalPositiveLength = Field(
        None,
        description="extent of the unit cell along y (the layer stacks along z in 3D); 3D only",
        json_schema_extra={"default_text": "required in 3D"},
    )
    foil_thickness: PositiveLength = Field(
        description="copper below the layer, down to the bottom symmetry plane "
        "(half of a foil coated on both sides)")
    layer_thickness: PositiveLength = Field(
        description="thickness of the particle-filled binder layer on the foil")
    volume_fraction: float = Field(
        gt=0, lt=1, description="share of the layer taken by the active particles (an area "
        "fraction in 2D)")
    mean_diameter: PositiveLength = Field(description="mean diameter of the active particles")
    diameter_spread: Annotated[float | None, SIQuantity("length")] = Field(
        None,
        description="standard deviation of the active particles' diameter (0: all equal)",
        json_schema_extra={"default_text": "0.25 × mean_diameter"},
    )
    diameter_distribution: Literal["lognormal", "uniform"] = Field(
        "lognormal",
        description="lognormal (truncated to its central 98%) or uniform (between mean -+ "
        "sqrt(3) spread)",
    )
    min_gap: OptionalPositiveLength = Field(
        None,
        description="smallest gap between particles, and between a particle and the foil or "
        "the top (half of it to the lateral symmetry faces)",
        json_schema_extra={"default_text": "0.1 × mean_diameter"},
    )
    seed: int = Field(0, ge=0, description="seed of the random diameters and positions")
    conductive_fraction: float = Field(
        0.0, ge=0, lt=1, description="share of the layer taken by conductive powder particles")
    conductive_diameter: OptionalPositiveLength = Field(
        None,
        description="diameter of the conductive particles (all equal)",
        json_schema_extra={"default_text": "required with conductive_fraction"},
    )
    mesh_size: PositiveLength = Field(description="element size away from the particles")
    particle_mesh_size: OptionalPositiveLength = Field(
        None,
        description="element size in and around the particles and along the foil/binder "
        "interface",
        json_schema_extra={"default_text": "mean_diameter / 10"},
    )
    foil_material: str = Field("copper", description="material of the foil")
    binder_material: str = Field("polyimide", description="material of the binder (the matrix)")
    particle_material: str = Field("silicon", description="material of the active particles")
    conductive_material: str = Field("copper", description="material of the conductive powder")
    projection: Projection | None = Field(
        None,
        description="2D: a recurved projection of the foil in the middle of the cell, standing "
        "in the layer; particles fill its undercut where they fit (seed 000 claim 3)",
    )

    @model_validator(mode="after")
    def _derive_defaults_and_check_particles(self) -> "ParticlesGeometry":
        if self.diameter_spread is None:
            self.diameter_spread = 0.25 * self.mean_diameter
        if self.min_gap is None:
            self.min_gap = 0.1 * self.mean_diameter
        if self.particle_mesh_size is None:
            self.particle_mesh_size = self.mean_diameter / 10
        if self.diameter_spread < 0:
            raise rule_broken(
                "diameter_spread", f"must be at least 0, got {um(self.diameter_spread)}")
        if self.volume_fraction + self.conductive_fraction >= 1:
            raise rule_broken(
                "conductive_fraction",
                f"volume_fraction + conductive_fraction = "
                f"{self.volume_fraction + self.conductive_fraction:g} leaves no binder",
            )
        if self.conductive_fraction > 0 and self.conductive_diameter is None:
            raise rule_broken(
                "conductive_diameter",
                f"required with conductive_fraction = {self.conductive_fraction:g}")
        if self.projection is not None and self.projection.height >= self.layer_thickness:
            raise rule_broken(
                "projection.height",
                f"must be smaller than layer_thickness ({um(self.layer_thickness)}): the "
                f"layer covers the projection, got {um(self.projection.height)}")
        if self.particle_mesh_size > self.mesh_size:
            raise rule_broken(
                "particle_mesh_size",
                f"must not exceed mesh_size ({um(self.mesh_size)}): the mesh is refined at "
                f"the particles, got {um(self.particle_mesh_size)}",
            )
        return self

    def material_keys(self) -> list[tuple[str, str]]:
        """(key path relative to [geometry], material name) for every material reference."""
        keys = [("foil_material", self.foil_material), ("binder_material", self.binder_material),
                ("particle_material", self.particle_material)]
        if self.conductive_fraction > 0:
            keys.append(("conductive_material", self.conductive_material))
        return keys



def _build(g: ParticlesGeometry, dim: int) -> meshes.BuiltGeometry:
    return meshes.build_particles(
        length=g.length, width=g.width, dim=dim, foil_thickness=g.foil_thickness,
        layer_thickness=g.layer_thickness, volume_fraction=g.volume_fraction,
        mean_diameter=g.mean_diameter, diameter_spread=g.diameter_spread,
        diameter_distribution=g.diameter_distribution, min_gap=g.min_gap, seed=g.seed,
        conductive_fraction=g.conductive_fraction, conductive_diameter=g.conductive_diameter,
        mesh_size=g.mesh_size, particle_mesh_size=g.particle_mesh_size,
        foil_material=g.foil_material, binder_material=g.binder_material,
        particle_material=g.particle_material, conductive_material=g.conductive_material,
        projection=None if g.projection is None else meshes.RecurvedProfile(
            neck_width=g.projection.neck_width, head_width=g.projection.head_width,
            height=g.projection.height, neck_height=g.projection.neck_height,
            fillet_radius=g.projection.fillet_radius),
    )


def _extent(g: ParticlesGeometry, metrics: dict) -> tuple[float, float]:
    return g.length, g.width


# The unit cell of the collector cells, with the packing statistically isotropic in the plane.
# The particles, the projection and the foil/binder interface are meshed at
# particle_mesh_size (the packing does not depend on it).
PARTICLE_MESH = FineMesh(
    key="particle_mesh_size", size=lambda geometry: geometry.particle_mesh_size,
    with_size=lambda geometry, size: geometry.model_copy(update={"particle_mesh_size": size}))

KIND = GeometryKind(
    schema=ParticlesGeometry, build=_build, symmetry_planes=UNIT_CELL_SYMMETRY_PLANES,
    fine_mesh=PARTICLE_MESH,
    free_faces=UNIT_CELL_FREE_FACES, cell_extent=_extent,
    required_in_3d={"width": "the stack's extent in z"}, only_in_3d=("width",),
    only_in_2d={"projection": "a projection under the particles is 2D only in this version"})
