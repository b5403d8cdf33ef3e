"""`kind = "layers"`: flat layers stacked bottom to top (y in 2D, z in 3D), free in space.

Only rigid-body motion is removed, by pins on the mid-length (and mid-width) symmetry lines,
where the exact solution has the pinned components zero: the pins carry no force.
"""

from typing import Literal

from pydantic import Field

import meshes
from solver.case.tables import Table
from solver.case.units import OptionalPositiveLength, PositiveLength
from solver.geometry.kind import FineMesh, GeometryKind, Pin


class Layer(Table):
    material: str = Field(description="material name: a library entry or a [materials.NAME]")
    thickness: PositiveLength = Field(description="layer thickness")


class LayersGeometry(Table):
    kind: Literal["layers"] = Field(description="kind of geometry")
    length: PositiveLength = Field(description="in-plane length of the stack (x)")
    width: OptionalPositiveLength = Field(
        None,
        description="width of the stack (y; layers stack along z in 3D); 3D only",
        json_schema_extra={"default_text": "required in 3D"},
    )
    layers: list[Layer] = Field(min_length=1, description="the flat layers, bottom to top")
    mesh_size: PositiveLength = Field(description="target element size")

    def material_keys(self) -> list[tuple[str, str]]:
        """(key path relative to [geometry], material name) for every material reference."""
        return [(f"layers[{i}].material", layer.material) for i, layer in enumerate(self.layers)]


def _build(g: LayersGeometry, dim: int) -> meshes.BuiltGeometry:
    return meshes.build_layers(
        length=g.length,
        thicknesses=[layer.thickness for layer in g.layers],
        materials=[layer.material for layer in g.layers],
        mesh_size=g.mesh_size,
        dim=dim,
        width=g.width,
    )


def _pins(g: LayersGeometry, dim: int) -> tuple[list[Pin], float]:
    height = sum(layer.thickness for layer in g.layers)
    tolerance = 1e-6 * min(g.mesh_size, height)
    if dim == 2:
        return [((g.length / 2, 0.0), (0, 1)), ((g.length / 2, height), (0,))], tolerance
    return [((g.length / 2, g.width / 2, 0.0), (0, 1, 2)),
            ((g.length / 2, g.width / 2, height), (0, 1)),
            ((g.length, g.width / 2, 0.0), (1,))], tolerance


# The layers are meshed at one size throughout: the whole mesh is refined.
UNIFORM_MESH = FineMesh(
    key="mesh_size", size=lambda geometry: geometry.mesh_size,
    with_size=lambda geometry, size: geometry.model_copy(update={"mesh_size": size}))

KIND = GeometryKind(
    schema=LayersGeometry, build=_build, is_layer_stack=True, rigid_body_pins=_pins,
    fine_mesh=UNIFORM_MESH,
    required_in_3d={"width": "the stack's extent in z"}, only_in_3d=("width",))
