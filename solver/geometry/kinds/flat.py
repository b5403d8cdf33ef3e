"""`kind = "flat"`: the collector cell of a flat foil, the reference without projections
(meshes/collector.py, meshes/collector3d.py)."""

from typing import Literal

from pydantic import Field

import meshes
from solver.case.units import PositiveLength
from solver.geometry.kinds import cell


class FlatGeometry(cell.CollectorCell):
    kind: Literal["flat"] = Field(description="kind of geometry")
    pitch: PositiveLength = Field(description="width of the cell, as the recurved cell's pitch")
    array: cell.Array = cell.array_field()


def _build(g: FlatGeometry, dim: int) -> meshes.BuiltGeometry:
    if dim == 3:
        return meshes.build_flat_3d(pitch=g.pitch, array=g.array, **cell.builder_arguments(g, dim))
    return meshes.build_flat_2d(pitch=g.pitch, **cell.builder_arguments(g, dim))


KIND = cell.collector_kind(FlatGeometry, _build, pulloff_dims=(2, 3))
