"""What the collector cells (recurved, flat, plain, rough) share: the keys of the foil under
the mix and its films, the builders' common arguments, and the traits of a unit cell."""

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from meshes.built import BuiltGeometry
from solver.case.tables import Table
from solver.case.units import OptionalPositiveLength, PositiveLength
from solver.geometry.kind import (
    UNIT_CELL_FREE_FACES,
    UNIT_CELL_SYMMETRY_PLANES,
    FineMesh,
    GeometryKind,
)


class Film(Table):
    material: str = Field(description="material of the film: a library entry or a [materials.NAME]")
    thickness: PositiveLength = Field(description="film thickness, the same all along the foil")


class CollectorCell(Table):
    """What the recurved, flat, plain and rough unit cells share (same meaning)."""

    kind: str = Field(description="kind of geometry")
    foil_thickness: PositiveLength = Field(
        description="copper below the projections, down to the bottom symmetry plane "
        "(half of a foil coated on both sides)")
    mix_thickness: PositiveLength = Field(description="thickness of the mix layer over the foil")
    mesh_size: PositiveLength = Field(description="target element size")
    interface_mesh_size: OptionalPositiveLength = Field(
        None,
        description="element size along the foil/mix interface",
        json_schema_extra={"default_text": "mesh_size / 3"},
    )
    foil_material: str = Field("copper", description="material of the foil")
    mix_material: str = Field("mix", description="material of the mix layer")
    films: list[Film] = Field(
        default_factory=list,
        description="2D: films deposited in order on the foil under the mix, each following "
        "the foil surface at its thickness (conformal, seed 002); each is a material and has "
        "its interfaces (docs/geometry.md)",
    )

    @model_validator(mode="after")
    def _derive_interface_mesh_size(self) -> "CollectorCell":
        if self.interface_mesh_size is None:
            self.interface_mesh_size = self.mesh_size / 3
        return self

    def material_keys(self) -> list[tuple[str, str]]:
        """(key path relative to [geometry], material name) for every material reference."""
        return [("foil_material", self.foil_material), ("mix_material", self.mix_material)] + [
            (f"films[{index}].material", film.material) for index, film in enumerate(self.films)]


def array_field() -> Any:
    """The `array` key of the periodic cells (recurved, flat, plain): 3D only."""
    return Field(
        "square",
        description="3D only: square or hexagonal array of nodules of revolution (pitch: "
        "nearest-neighbour distance), meshed as its smallest symmetric cell",
    )


Array = Literal["square", "hexagonal"]


def builder_arguments(geometry: CollectorCell, dim: int) -> dict[str, Any]:
    """The arguments every collector-cell builder of meshes/ takes (films: 2D only)."""
    arguments = dict(
        foil_thickness=geometry.foil_thickness, mix_thickness=geometry.mix_thickness,
        mesh_size=geometry.mesh_size, interface_mesh_size=geometry.interface_mesh_size,
        foil_material=geometry.foil_material, mix_material=geometry.mix_material)
    if dim == 2:
        arguments["films"] = [(film.material, film.thickness) for film in geometry.films]
    return arguments


def _measured_extent(geometry: CollectorCell, metrics: dict) -> tuple[float, float]:
    # The 3D builders mesh the array's smallest symmetric cell and measure it.
    return metrics["cell_length"], metrics["cell_width"]


def _interface_size(geometry: CollectorCell) -> float:
    # meshes/collector.py meshes every interface of a cell with films at most twice the
    # thinnest film's thickness
    return min([geometry.interface_mesh_size] + [2 * film.thickness for film in geometry.films])


INTERFACE_MESH = FineMesh(
    key="interface_mesh_size", size=_interface_size,
    with_size=lambda geometry, size: geometry.model_copy(update={"interface_mesh_size": size}))


def collector_kind(schema: type[CollectorCell], build: Callable[[Any, int], BuiltGeometry],
                   **traits: Any) -> GeometryKind:
    """The GeometryKind of a collector cell; `traits` change the cells' common ones."""
    common = GeometryKind(
        schema=schema, build=build, is_collector_cell=True,
        symmetry_planes=UNIT_CELL_SYMMETRY_PLANES, free_faces=UNIT_CELL_FREE_FACES,
        cell_extent=_measured_extent, pulloff_dims=(2,), only_in_3d=("array",),
        fine_mesh=INTERFACE_MESH,
        only_in_2d={"films": "films are 2D only in this version"})
    return dataclasses.replace(common, **traits)
