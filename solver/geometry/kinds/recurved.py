"""`kind = "recurved"`: a unit cell `[0, pitch]` of a foil with one recurved projection (a
narrow neck widening towards the head, so the mix fills the undercut) under the mix; in 3D
the projection revolved into a nodule, in a square or hexagonal array (meshes/recurved.py,
meshes/collector3d.py)."""

from typing import Literal

from pydantic import Field, model_validator

import meshes
from solver.case.tables import Table, rule_broken, um
from solver.case.units import OptionalPositiveLength, PositiveLength
from solver.geometry.kinds import cell


class Projection(Table):
    """A recurved projection's shape: the recurved cell's, and [geometry.projection] under a
    particle layer."""

    neck_width: PositiveLength = Field(description="width of a projection at its narrow neck")
    head_width: PositiveLength = Field(description="width of a projection at its head (> neck)")
    height: PositiveLength = Field(description="height of a projection above the foil")
    neck_height: OptionalPositiveLength = Field(
        None,
        description="height of the neck above the foil",
        json_schema_extra={"default_text": "0.4 × height"},
    )
    fillet_radius: OptionalPositiveLength = Field(
        None,
        description="radius rounding the re-entrant corners (they are singular when sharp)",
        json_schema_extra={"default_text": "0.25 × neck_width"},
    )

    @model_validator(mode="after")
    def _derive_defaults_and_check_shape(self) -> "Projection":
        if self.neck_height is None:
            self.neck_height = 0.4 * self.height
        if self.fillet_radius is None:
            self.fillet_radius = 0.25 * self.neck_width
        if self.head_width <= self.neck_width:
            raise rule_broken(
                "head_width", f"must be larger than neck_width ({um(self.neck_width)}) for a "
                f"recurved projection, got {um(self.head_width)}")
        if self.neck_height >= self.height:
            raise rule_broken(
                "neck_height",
                f"must be smaller than height ({um(self.height)}), got {um(self.neck_height)}")
        return self


class RecurvedGeometry(cell.CollectorCell, Projection):
    kind: Literal["recurved"] = Field(description="kind of geometry")
    pitch: PositiveLength = Field(description="distance between neighbouring projections")
    array: cell.Array = cell.array_field()

    @model_validator(mode="after")
    def _check_the_mix_covers_the_projection(self) -> "RecurvedGeometry":
        if self.height >= self.mix_thickness:
            raise rule_broken(
                "height",
                f"must be smaller than mix_thickness ({um(self.mix_thickness)}): the mix "
                f"covers the projections, got {um(self.height)}",
            )
        return self


def _build(g: RecurvedGeometry, dim: int) -> meshes.BuiltGeometry:
    shape = dict(pitch=g.pitch, neck_width=g.neck_width, head_width=g.head_width,
                 height=g.height, neck_height=g.neck_height, fillet_radius=g.fillet_radius,
                 **cell.builder_arguments(g, dim))
    if dim == 3:
        return meshes.build_recurved_3d(array=g.array, **shape)
    return meshes.build_recurved_2d(**shape)


KIND = cell.collector_kind(RecurvedGeometry, _build, closeup="projection",
                           pulloff_dims=(2, 3))
