"""`kind = "mesh"`: the user's own mesh from a file (Gmsh .msh, Abaqus .inp, VTK/VTU and
every format meshio reads; meshes/imported.py), held as a unit cell like the collector
cells: left and bottom (3D: also front) symmetry planes, right (3D: also back) free faces
(solver/geometry/kind.py). docs/user-meshes.md says what the file needs."""

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

import meshes
from solver.case.tables import Table, rule_broken
from solver.case.units import OptionalPositiveLength, PositiveLengthUnit
from solver.geometry.kind import UNIT_CELL_FREE_FACES, UNIT_CELL_SYMMETRY_PLANES, GeometryKind

Groups = int | str | list[int | str]

# a bare unit ("um") is one of it; a quantity ("0.5 mm") as written
_LEADING_NUMBER = re.compile(r"\s*[-+]?(\d|\.\d)")


class MeshFileGeometry(Table):
    kind: Literal["mesh"] = Field(description="kind of geometry")
    file: str = Field(
        min_length=1,
        description="the mesh file, relative to the case file (or absolute): any format "
        "meshio reads (.msh, .inp, .vtu, .vtk, .med, ...), triangles (2D) or tetrahedra "
        "(3D), straight or second-order")
    length_unit: PositiveLengthUnit = Field(
        description="the length of one unit of the file's coordinates: 'um', 'mm', 'm' or a "
        "scale such as '0.5 um'")
    materials: dict[str, Groups] = Field(
        min_length=1,
        description="material name -> the file's cell set or Gmsh physical name (or integer "
        "tag of its cell data), or a list of them; every cell in exactly one. The first "
        "material is the foil: the lower side of its interfaces, the body the pull-off holds")
    boundaries: dict[str, Groups] = Field(
        default_factory=dict,
        description="boundary name -> the file's facet cell set, node set or integer tag; "
        "bottom, top, left, right (3D: front, back) that are not given are the bounding "
        "box's faces",
        json_schema_extra={"default_text": "the bounding box's faces"})
    interfaces: list[tuple[str, str]] | None = Field(
        None,
        description="the pairs [lower, upper] of materials whose shared facets are interfaces "
        "(tractions, risk; the pull-off's cohesive interface is the foil's)",
        json_schema_extra={"default_text": "every two touching materials, the one listed "
                           "first in materials the lower"})
    cell_data: str | None = Field(
        None,
        description="the file's integer cell-data array that integer groups refer to",
        json_schema_extra={"default_text": "gmsh:physical, or the file's only integer array"})
    mesh_size: OptionalPositiveLength = Field(
        None,
        description="the typical element size: the length scale of the solvers' tolerances",
        json_schema_extra={"default_text": "the file's longest cell edge"})

    @field_validator("length_unit", mode="before")
    @classmethod
    def _one_of_a_bare_unit(cls, value: Any) -> Any:
        if isinstance(value, str) and not _LEADING_NUMBER.match(value):
            return f"1 {value}"
        return value

    @model_validator(mode="after")
    def _relative_to_the_case_file(self, info: ValidationInfo) -> "MeshFileGeometry":
        case_dir = (info.context or {}).get("case_dir")
        if case_dir is None:  # a table validated on its own: as written
            return self
        path = Path(self.file).expanduser()
        if not path.is_absolute():
            path = Path(case_dir) / path
        if not path.is_file():
            raise rule_broken("file", f"no such mesh file: {path.resolve()}")
        self.file = str(path.resolve())
        return self

    @field_validator("boundaries")
    @classmethod
    def _not_an_interface(cls, value: dict) -> dict:
        for name in value:
            if name.startswith("interface_"):
                raise rule_broken(name, "interfaces are the facets between "
                                  "two materials, found by the solver: name boundaries only")
        return value

    @model_validator(mode="after")
    def _interfaces_between_listed_materials(self) -> "MeshFileGeometry":
        for index, pair in enumerate(self.interfaces or []):
            unknown = [name for name in pair if name not in self.materials]
            if unknown or pair[0] == pair[1]:
                raise rule_broken(
                    f"interfaces[{index}]",
                    f"'{unknown[0]}' is not in geometry.materials" if unknown else
                    "an interface is between two different materials")
        return self

    @property
    def foil_material(self) -> str:
        """The first material: the foil side of its interfaces (the pull-off holds it)."""
        return next(iter(self.materials))

    def material_keys(self) -> list[tuple[str, str]]:
        """(key path relative to [geometry], material name) for every material reference."""
        return [(f"materials.{name}", name) for name in self.materials]


def _listed(groups: Groups) -> list[int | str]:
    return groups if isinstance(groups, list) else [groups]


def _build(g: MeshFileGeometry, dim: int) -> meshes.BuiltGeometry:
    return meshes.build_from_file(
        Path(g.file), dim, g.length_unit,
        materials={name: _listed(groups) for name, groups in g.materials.items()},
        boundaries={name: _listed(groups) for name, groups in g.boundaries.items()},
        interfaces=g.interfaces, tag_array=g.cell_data)


def _extent(g: MeshFileGeometry, metrics: dict) -> tuple[float, float]:
    return metrics["cell_length"], metrics["cell_width"]


KIND = GeometryKind(
    schema=MeshFileGeometry, build=_build, symmetry_planes=UNIT_CELL_SYMMETRY_PLANES,
    free_faces=UNIT_CELL_FREE_FACES, cell_extent=_extent, pulloff_dims=(2, 3),
    file_keys=("file",))
