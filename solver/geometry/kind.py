"""What the solver knows about a kind of geometry.

A `GeometryKind` is one kind's schema (its [geometry] table), its builder call (a Gmsh builder
of meshes/) and its traits. The code that depends on the kind (the case file's rules, the
boundary conditions, the summary, the pull-off test, the pictures) asks the traits of
`solver.geometry.registry.geometry_kind(case)`; no module compares kind names.
"""

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from meshes.built import BuiltGeometry

Face = tuple[str, int]
"""A face of the cell: its facet group (as the builder names it) and its normal component."""
Pin = tuple[tuple[float, ...], tuple[int, ...]]
"""A point (m) and the displacement components held at zero there."""

# A unit cell of an endless periodic electrode on a foil coated on both sides (the collector
# cells, the particle layer). The left face, in 3D also the front, and the bottom (the foil's
# mid-plane) are symmetry planes. The right face, in 3D also the back, stays plane and moves
# along its normal by one shared unknown: a uniform in-plane strain, with zero net force (a
# roller would forbid the electrode's in-plane contraction and invent stress).
UNIT_CELL_SYMMETRY_PLANES: Mapping[int, tuple[Face, ...]] = {
    2: (("left", 0), ("bottom", 1)),
    3: (("left", 0), ("front", 1), ("bottom", 2)),
}
UNIT_CELL_FREE_FACES: Mapping[int, tuple[Face, ...]] = {
    2: (("right", 0),),
    3: (("right", 0), ("back", 1)),
}


@dataclass(frozen=True)
class FineMesh:
    """Where a kind's mesh decides its headline numbers, and how to make it finer there
    (`sinter run --convergence`, solver/post/convergence.py)."""

    key: str
    """The [geometry] key of the fine element size (interface_mesh_size, ...)."""
    size: Callable[[Any], float]
    """geometry -> the element size the builder actually uses there (m)."""
    with_size: Callable[[Any, float], Any]
    """(geometry, size) -> a copy of the geometry meshed at that size there, the same shape."""

    def refined(self, geometry: Any, factor: int) -> Any:
        """The geometry with its fine element size divided by `factor`."""
        return self.with_size(geometry, self.size(geometry) / factor)


@dataclass(frozen=True)
class GeometryKind:
    """A kind of geometry: `kind = "<name>"` in a case file's [geometry] table."""

    schema: type[BaseModel]
    """The [geometry] table: a solver.case.tables.Table with `kind: Literal["<name>"]`."""
    build: Callable[[Any, int], BuiltGeometry]
    """(geometry, case.dim) -> the meshes/ builder's result, on the current gmsh model."""
    dims: tuple[int, ...] = (2, 3)
    """The case.dim values the kind is built in."""
    is_layer_stack: bool = False
    """Flat layers, free in space: the summary reports the stack's bending curvature."""
    is_collector_cell: bool = False
    """A unit cell of the foil (with its projections and films) under a mix layer."""
    symmetry_planes: Mapping[int, tuple[Face, ...]] = field(default_factory=dict)
    """By case.dim: the faces held on their normal."""
    free_faces: Mapping[int, tuple[Face, ...]] = field(default_factory=dict)
    """By case.dim: the faces that stay plane and move along their normal by one shared
    unknown with zero net force; the first moves by the unknown itself."""
    cell_extent: Callable[[Any, dict], tuple[float, float]] | None = None
    """(geometry, the builder's metrics) -> the cell's in-plane extent (x, y) in 3D: each
    free face moves in proportion to its distance from the opposite symmetry plane."""
    rigid_body_pins: Callable[[Any, int], tuple[list[Pin], float]] | None = None
    """A body free in space: (geometry, case.dim) -> the points that remove its rigid-body
    motion without carrying force, and the distance within which a mesh vertex is one."""
    pulloff_dims: tuple[int, ...] = ()
    """The case.dim values in which `sinter pulloff` runs on the kind."""
    required_in_3d: Mapping[str, str] = field(default_factory=dict)
    """Keys (default none) required when case.dim = 3 -> what they are, for the message."""
    only_in_3d: tuple[str, ...] = ()
    """Keys a case file may give only when case.dim = 3."""
    only_in_2d: Mapping[str, str] = field(default_factory=dict)
    """Keys a case file may give only when case.dim = 2 -> the message when given in 3D."""
    file_keys: tuple[str, ...] = ()
    """Keys naming a file, relative to the case file (absolute once validated)."""
    fine_mesh: FineMesh | None = None
    """The element size that decides the interface numbers, refined by `sinter run
    --convergence`; None: the kind has none to refine (a mesh file)."""
    closeup: str = "interface, where its risk index is highest"
    """What the close-up picture of `sinter view` shows ("von Mises stress near the ...")."""

    @property
    def name(self) -> str:
        """The `kind` value, from the schema's `kind: Literal["<name>"]`."""
        (name,) = typing.get_args(self.schema.model_fields["kind"].annotation)
        return name

    def dim_problem(self, geometry: Any, dim: int) -> tuple[str, str] | None:
        """(key path, message) of the first key the case's dimension rules out, or None."""
        if dim not in self.dims:
            return "case.dim", (f"geometry kind '{self.name}' is built in "
                                f"{' or '.join(f'{d}D' for d in self.dims)} only")
        for key, what in self.required_in_3d.items():
            if dim == 3 and getattr(geometry, key) is None:
                return f"geometry.{key}", f"required in 3D ({what})"
        for key in self.only_in_3d:
            if dim == 2 and key in geometry.model_fields_set:
                return f"geometry.{key}", f"{key} is only used in 3D (case.dim = 3)"
        for key, message in self.only_in_2d.items():
            if dim == 3 and getattr(geometry, key) not in (None, []):
                return f"geometry.{key}", message
        return None
