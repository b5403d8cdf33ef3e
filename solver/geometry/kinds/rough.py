"""`kind = "rough"`: a rough row of nodules at a target Ra (in 3D a random field at a target
Sa) on the foil, under the mix (meshes/collector.py, meshes/collector3d.py)."""

from typing import Literal

from pydantic import Field, model_validator

import meshes
from solver.case.units import OptionalPositiveLength, PositiveLength
from solver.geometry.kinds import cell


class RoughGeometry(cell.CollectorCell):
    kind: Literal["rough"] = Field(description="kind of geometry")
    length: PositiveLength = Field(description="profile length: the width of the cell")
    Ra: PositiveLength = Field(
        description="target arithmetic mean roughness (ISO 4287) of the profile, in 3D the "
        "areal Sa (ISO 25178), reached by scaling the nodule heights (seed 000 claim 4: "
        ">= 0.2 um)")
    nodule_count: int = Field(ge=1, description="nodules in the row, one per equal slot (3D: "
                              "at random positions without overlap)")
    nodule_width: PositiveLength = Field(
        description="mean nodule width (head of a recurved nodule, base of a plain one); "
        "each is drawn within +-25%")
    nodule_shape: Literal["recurved", "plain", "mixed"] = Field(
        "recurved", description="shape of the nodules; mixed draws each one's at random")
    seed: int = Field(0, description="seed of the random widths, heights, positions, shapes")
    width: OptionalPositiveLength = Field(
        None,
        description="extent of the field along y (3D only; Ra is then the areal Sa)",
        json_schema_extra={"default_text": "required in 3D"},
    )
    nodule_gap: OptionalPositiveLength = Field(
        None,
        description="least distance of a nodule from its slot's ends (3D: between nodules, "
        "and half of it from the cell's faces); the positions depend on it, not on the mesh",
        json_schema_extra={"default_text": "interface_mesh_size"},
    )

    @model_validator(mode="after")
    def _derive_nodule_gap(self) -> "RoughGeometry":
        # set here, so that a finer interface mesh (sinter run --convergence) keeps the shape
        if self.nodule_gap is None:
            self.nodule_gap = self.interface_mesh_size
        return self


def _build(g: RoughGeometry, dim: int) -> meshes.BuiltGeometry:
    nodules = dict(nodule_count=g.nodule_count, nodule_width=g.nodule_width,
                   nodule_shape=g.nodule_shape, seed=g.seed, nodule_gap=g.nodule_gap,
                   **cell.builder_arguments(g, dim))
    if dim == 3:
        return meshes.build_rough_3d(length=g.length, width=g.width, target_sa=g.Ra, **nodules)
    return meshes.build_rough_2d(length=g.length, target_ra=g.Ra, **nodules)


# A field, not an array of nodules: no `array`; its extent in y is `width`.
KIND = cell.collector_kind(RoughGeometry, _build, only_in_3d=("width",),
                           required_in_3d={"width": "the field's extent in y"})
