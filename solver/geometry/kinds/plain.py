"""`kind = "plain"`: the collector cell of a projection with straight sides and a flat top,
no undercut: the comparison for the recurved cell (meshes/collector.py,
meshes/collector3d.py)."""

from typing import Literal

from pydantic import Field, model_validator

import meshes
from solver.case.units import OptionalPositiveLength, PositiveLength
from solver.geometry.kinds import cell


class PlainGeometry(cell.CollectorCell):
    kind: Literal["plain"] = Field(description="kind of geometry")
    pitch: PositiveLength = Field(description="distance between neighbouring projections")
    array: cell.Array = cell.array_field()
    base_width: PositiveLength = Field(
        description="width of a projection at the foil, where its straight sides start")
    top_width: PositiveLength = Field(
        description="width of a projection's flat top (<= base_width: no undercut)")
    height: PositiveLength = Field(description="height of a projection above the foil")
    fillet_radius: OptionalPositiveLength = Field(
        None,
        description="radius rounding the foot and top corners (a sharp foot is singular)",
        json_schema_extra={"default_text": "0.25 × top_width"},
    )

    @model_validator(mode="after")
    def _derive_fillet_radius(self) -> "PlainGeometry":
        if self.fillet_radius is None:
            self.fillet_radius = 0.25 * self.top_width
        return self


def _build(g: PlainGeometry, dim: int) -> meshes.BuiltGeometry:
    shape = dict(pitch=g.pitch, base_width=g.base_width, top_width=g.top_width,
                 height=g.height, fillet_radius=g.fillet_radius, **cell.builder_arguments(g, dim))
    if dim == 3:
        return meshes.build_plain_3d(array=g.array, **shape)
    return meshes.build_plain_2d(**shape)


KIND = cell.collector_kind(PlainGeometry, _build)
