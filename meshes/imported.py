"""A mesh from a file (Gmsh .msh, Abaqus .inp, VTK/VTU and every format meshio reads),
loaded into the current gmsh model, so that it reaches DOLFINx by the builders' route.

The file's cells of the case's dimension are the mesh (triangles or tetrahedra, straight or
second-order); its cell sets, Gmsh physical groups or integer cell-data tags say which cells
are which material. Boundaries are the file's facet cells or node sets where the case names
them; the faces of the bounding box otherwise (bottom, top, left, right, in 3D front and
back, as the builders find them). The interfaces are the facets between two materials.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
from pathlib import Path

import gmsh
import meshio
import numpy as np

from meshes.built import BuiltGeometry, add_physical_group
from solver.errors import GeometryError

logger = logging.getLogger(__name__)

Selector = str | int
"""A group of the file: a cell set (Abaqus ELSET, Gmsh physical name), a node set (for a
boundary) or a value of the file's integer cell-data tags."""

# meshio cell type -> gmsh element type, of the cells the solver takes in each dimension
CELL_TYPES = {2: {"triangle": 2, "triangle6": 9}, 3: {"tetra": 4, "tetra10": 11}}
# meshio cell type -> (its facets' gmsh element type, the facets' nodes in gmsh order: the
# vertices, then the nodes on the edges, in the cell's own gmsh node order)
FACETS = {
    "triangle": (1, [[0, 1], [1, 2], [2, 0]]),
    "triangle6": (8, [[0, 1, 3], [1, 2, 4], [2, 0, 5]]),
    "tetra": (2, [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]),
    "tetra10": (9, [[0, 1, 2, 4, 5, 6], [0, 1, 3, 4, 9, 7], [0, 2, 3, 6, 8, 7],
                    [1, 2, 3, 5, 8, 9]]),
}
# meshio orders a cell's nodes as VTK does; gmsh's second-order tetrahedron swaps the nodes
# on the edges 1-3 and 2-3 (gmsh manual, "Node ordering")
TO_GMSH_ORDER = {"tetra10": [0, 1, 2, 3, 4, 5, 6, 7, 9, 8]}
# the faces of the bounding box, by dimension: name -> (axis, at its minimum?)
BOX_FACES = {
    2: {"bottom": (1, True), "top": (1, False), "left": (0, True), "right": (0, False)},
    3: {"bottom": (2, True), "top": (2, False), "left": (0, True), "right": (0, False),
        "front": (1, True), "back": (1, False)},
}
# The plane-strain and plane-stress triangles of a 2D Abaqus model that meshio 5.3's Abaqus
# reader does not list (it has CPS3 and CPE6): added to its table, where it has one.
ABAQUS_TRIANGLES = {"CPE3": "triangle", "CPE3H": "triangle", "CPS6": "triangle6",
                    "CPE6H": "triangle6", "CPE6M": "triangle6", "CPE6MH": "triangle6",
                    "CPS6M": "triangle6"}
_abaqus_table = getattr(getattr(meshio, "abaqus", None), "_abaqus", None)
for _element, _cell in ABAQUS_TRIANGLES.items():
    if hasattr(_abaqus_table, "abaqus_to_meshio_type"):
        _abaqus_table.abaqus_to_meshio_type.setdefault(_element, _cell)
# a mesh of an electrode's cell in metres spans about a micrometre to a millimetre: far
# outside, the length unit is wrong (a file in um read as m, or the reverse)
PLAUSIBLE_EXTENT = (1e-9, 1.0)


def _cell_dimension(cell_type: str) -> int:
    for dim, prefixes in ((0, ("vertex",)), (1, ("line",)), (2, ("triangle", "quad", "polygon")),
                          (3, ("tetra", "hexahedron", "wedge", "pyramid", "polyhedron"))):
        if cell_type.startswith(prefixes):
            return dim
    return -1


def _names(names) -> str:
    return ", ".join(str(name) for name in names) or "none"


class _File:
    """The meshio mesh and how its groups select cells."""

    def __init__(self, path: Path, tag_array: str | None):
        if not path.is_file():
            raise GeometryError(f"geometry.file: no such mesh file: {path}")
        # meshio raises its parsers' errors, or prints a reader's ReadError and exits
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                self.mesh = meshio.read(path)
        except (Exception, SystemExit) as error:
            # what the reader printed, before meshio's own "Couldn't read file" line
            said = (printed.getvalue().split("Error: Couldn't read file")[0]
                    if isinstance(error, SystemExit) else str(error))
            lines = said.strip().splitlines() or [f"not a valid {path.suffix or 'mesh'} file"]
            logger.debug("meshio could not read %s: %s", path, said, exc_info=True)
            raise GeometryError(f"geometry.file: cannot read {path} as a mesh: "
                                f"{lines[0]}") from error
        self.path = path
        self.blocks = [(block.type, np.asarray(block.data)) for block in self.mesh.cells]
        self._tag_array_name = tag_array

    def cell_types(self, dim: int) -> list[str]:
        return list(dict.fromkeys(t for t, _ in self.blocks if _cell_dimension(t) == dim))

    def tag_array(self) -> tuple[str, list[np.ndarray]]:
        """The integer cell data the numbers in the case refer to: (its name, per block)."""
        integer = [name for name, arrays in self.mesh.cell_data.items()
                   if all(np.issubdtype(np.asarray(a).dtype, np.integer) for a in arrays)]
        name = self._tag_array_name
        if name is None:
            candidates = ["gmsh:physical"] if "gmsh:physical" in integer else integer
            if len(candidates) != 1:
                raise GeometryError(
                    f"geometry.file: {self.path.name} has "
                    f"{'no' if not candidates else 'several'} integer cell-data arrays "
                    f"({_names(integer)}) for the numbers in the case"
                    + ("; name one in geometry.cell_data" if candidates else
                       "; name its cell sets instead"))
            name = candidates[0]
        elif name not in integer:
            raise GeometryError(f"geometry.cell_data: {self.path.name} has no integer "
                                f"cell-data array '{name}'; it has: {_names(integer)}")
        return name, [np.asarray(a).ravel() for a in self.mesh.cell_data[name]]

    def selected(self, key: str, selector: Selector, dim: int) -> list[np.ndarray]:
        """Indices, per block, of the cells of dimension `dim` in the group `selector`."""
        if isinstance(selector, int):
            name, tags = self.tag_array()
            chosen = [np.flatnonzero(values == selector) if _cell_dimension(t) == dim
                      else np.empty(0, int) for (t, _), values in zip(self.blocks, tags,
                                                                       strict=True)]
            if not sum(map(len, chosen)):
                present = sorted({int(v) for (t, _), values in zip(self.blocks, tags,
                                                                    strict=True)
                                  if _cell_dimension(t) == dim for v in np.unique(values)})
                raise GeometryError(f"{key}: no {dim}D cells have {name} = {selector} in "
                                    f"{self.path.name}; its values there: {_names(present)}")
            return chosen
        if selector not in self.mesh.cell_sets:
            raise GeometryError(f"{key}: {self.path.name} has no cell set '{selector}'; "
                                f"it has: {_names(self.set_names())}")
        chosen = [np.empty(0, int) if indices is None or _cell_dimension(t) != dim
                  else np.asarray(indices, int).ravel()
                  for (t, _), indices in zip(self.blocks, self.mesh.cell_sets[selector],
                                             strict=True)]
        if not sum(map(len, chosen)):
            raise GeometryError(f"{key}: the cell set '{selector}' of {self.path.name} holds "
                                f"no {dim}D cells")
        return chosen

    def set_names(self) -> list[str]:
        # gmsh:bounding_entities is meshio's bookkeeping of a .msh file's entities
        return [name for name in self.mesh.cell_sets if not name.startswith("gmsh:")]


def _cells(file: _File, dim: int) -> tuple[str, np.ndarray, list[int]]:
    """The file's cells of dimension dim, in gmsh node order: (type, cells, the index of
    each block's first cell, -1 for the blocks of other dimensions)."""
    higher = [t for t, _ in file.blocks if _cell_dimension(t) > dim]
    if higher:
        raise GeometryError(f"geometry.file: {file.path.name} holds {higher[0]} cells "
                            f"({_cell_dimension(higher[0])}D) in a {dim}D case: set case.dim")
    types = file.cell_types(dim)
    supported = CELL_TYPES[dim]
    if not types:
        present = list(dict.fromkeys(t for t, _ in file.blocks))
        raise GeometryError(f"geometry.file: {file.path.name} holds no {dim}D cells "
                            f"({' or '.join(supported)}); it holds {_names(present)}")
    unsupported = [t for t in types if t not in supported]
    if unsupported:
        raise GeometryError(f"geometry.file: {file.path.name} holds {unsupported[0]} cells; "
                            f"the solver takes {' or '.join(supported)} cells in {dim}D")
    if len(types) > 1:
        raise GeometryError(f"geometry.file: {file.path.name} mixes {' and '.join(types)} "
                            "cells; give one cell type")
    (cell_type,) = types
    first, offsets, count = [], [], 0
    for t, data in file.blocks:
        offsets.append(count if t == cell_type else -1)
        if t == cell_type:
            first.append(data)
            count += len(data)
    cells = np.concatenate(first)
    if cell_type in TO_GMSH_ORDER:
        cells = cells[:, TO_GMSH_ORDER[cell_type]]
    return cell_type, cells, offsets


def _global(chosen: list[np.ndarray], offsets: list[int]) -> np.ndarray:
    return np.concatenate([indices + offset for indices, offset in zip(chosen, offsets,
                                                                       strict=True)
                           if offset >= 0] + [np.empty(0, int)])


def _materials(file: _File, dim: int, cell_type: str, count: int, offsets: list[int],
               materials: dict[str, list[Selector]]) -> np.ndarray:
    """The index (in `materials`) of each cell's material."""
    material_of = np.full(count, -1)
    names = list(materials)
    for index, (name, selectors) in enumerate(materials.items()):
        for selector in selectors:
            cells = _global(file.selected(f"geometry.materials.{name}", selector, dim), offsets)
            other = material_of[cells]
            clash = other[(other >= 0) & (other != index)]
            if len(clash):
                raise GeometryError(f"geometry.materials: {len(clash)} {cell_type} cells are in "
                                    f"both '{names[clash[0]]}' and '{name}'")
            material_of[cells] = index
    unassigned = int(np.sum(material_of < 0))
    if unassigned:
        raise GeometryError(f"geometry.materials: {unassigned} of the {count} {cell_type} cells "
                            f"of {file.path.name} are in none of the groups given; its cell "
                            f"sets: {_names(file.set_names())}")
    return material_of


class _Facets:
    """The mesh's facets: each once, with its nodes (gmsh order) and its one or two cells."""

    def __init__(self, cell_type: str, cells: np.ndarray):
        self.gmsh_type, local = FACETS[cell_type]
        vertices = len(local[0]) if cell_type in ("triangle", "tetra") else {
            "triangle6": 2, "tetra10": 3}[cell_type]
        all_nodes = cells[:, local].reshape(-1, len(local[0]))
        keys = np.sort(all_nodes[:, :vertices], axis=1)
        # the rows in lexicographic order, each key's copies in the order of the cells (a
        # stable sort): what np.unique(keys, axis=0) gives, in a quarter of its time (the
        # 10M facets of 2.5M tetrahedra: 8 s against 31 s on the shared machine)
        order = np.lexsort(keys.T[::-1])
        ordered = keys[order]
        starts = np.flatnonzero(np.concatenate(
            [[True], np.any(ordered[1:] != ordered[:-1], axis=1)]))
        counts = np.diff(np.append(starts, len(keys)))
        self.keys = ordered[starts]
        self.nodes = all_nodes[order[starts]]
        per_cell = len(local)
        self.cells = np.full((len(self.keys), 2), -1)
        self.cells[:, 0] = order[starts] // per_cell
        two = counts == 2
        self.cells[two, 1] = order[starts[two] + 1] // per_cell
        if np.any(counts > 2):
            raise GeometryError("geometry.file: the mesh is not a manifold: a facet is shared "
                                f"by {counts.max()} cells")
        self.exterior = counts == 1
        self.vertices = vertices

    def find(self, facet_vertices: np.ndarray) -> np.ndarray:
        """The indices of facets given by their vertices (-1 where no facet has them)."""
        keys = np.sort(facet_vertices[:, :self.vertices], axis=1)
        view = np.ascontiguousarray(self.keys).view([("", self.keys.dtype)] * self.vertices)
        wanted = np.ascontiguousarray(keys.astype(self.keys.dtype)).view(view.dtype)
        position = np.searchsorted(view.ravel(), wanted.ravel())
        position = np.minimum(position, len(view) - 1)
        found = view.ravel()[position] == wanted.ravel()
        return np.where(found, position, -1)


def _named_boundary(file: _File, facets: _Facets, name: str, selectors: list[Selector],
                    dim: int) -> np.ndarray:
    """The exterior facets of a boundary the case names by the file's groups: its facet
    cells, or the exterior facets whose vertices are all in a node set."""
    key = f"geometry.boundaries.{name}"
    found = []
    for selector in selectors:
        if isinstance(selector, str) and selector in file.mesh.point_sets \
                and selector not in file.mesh.cell_sets:
            in_set = np.zeros(int(facets.keys.max()) + 1, bool)
            points = np.asarray(file.mesh.point_sets[selector], int)
            in_set[points[points <= facets.keys.max()]] = True
            chosen = np.flatnonzero(facets.exterior & in_set[facets.keys].all(axis=1))
            if not len(chosen):
                raise GeometryError(f"{key}: no boundary facet has all its vertices in the "
                                    f"node set '{selector}'")
            found.append(chosen)
            continue
        if isinstance(selector, str) and selector not in file.mesh.cell_sets:
            raise GeometryError(f"{key}: {file.path.name} has no cell set or node set "
                                f"'{selector}'; it has: "
                                f"{_names(file.set_names() + list(file.mesh.point_sets))}")
        chosen = file.selected(key, selector, dim - 1)
        vertices = np.concatenate([data[indices] [:, :facets.vertices]
                                   for (_, data), indices in zip(file.blocks, chosen,
                                                                 strict=True) if len(indices)])
        indices = facets.find(vertices)
        if np.any(indices < 0) or not np.all(facets.exterior[indices]):
            raise GeometryError(f"{key}: {int(np.sum((indices < 0) | ~facets.exterior[indices]))}"
                                f" facet cells of '{selector}' are not on the boundary of the "
                                f"{dim}D cells")
        found.append(indices)
    return np.unique(np.concatenate(found))


def _box_face(points: np.ndarray, facets: _Facets, name: str, axis: int, at_minimum: bool,
              tolerance: float) -> np.ndarray:
    value = points[:, axis].min() if at_minimum else points[:, axis].max()
    on_plane = np.abs(points[:, axis] - value) <= tolerance
    chosen = np.flatnonzero(facets.exterior & on_plane[facets.keys].all(axis=1))
    if not len(chosen):
        raise GeometryError(f"geometry.boundaries: no boundary facet lies on the bounding box's "
                            f"{name} face ({'xyz'[axis]} = {value:g} in the file's units): "
                            f"name the {name} boundary in geometry.boundaries")
    return chosen


def _measure(points: np.ndarray, nodes: np.ndarray, dim: int) -> float:
    """Total length (dim 2) or area (dim 3) of straight facets."""
    corners = points[nodes[:, :dim]]
    if dim == 2:
        return float(np.linalg.norm(corners[:, 1] - corners[:, 0], axis=1).sum())
    return float(0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0],
                                               corners[:, 2] - corners[:, 0]), axis=1).sum())


def _longest_edge(points: np.ndarray, cells: np.ndarray, dim: int) -> float:
    """The longest edge of the (straight) cells, edge by edge: all edges' coordinates at
    once took 0.7 GB for 2.5M tetrahedra."""
    longest = 0.0
    for a, b in itertools.combinations(range(dim + 1), 2):
        difference = points[cells[:, a]] - points[cells[:, b]]
        longest = max(longest, float(np.einsum("ij,ij->i", difference, difference).max()))
    return math.sqrt(longest)


def _element_quality(dim: int) -> tuple[float, float]:
    """Minimum and mean of gmsh's minSICN, whichever way round the file lists a cell's
    vertices (the sign says which; DOLFINx orders them itself)."""
    _, element_tags, _ = gmsh.model.mesh.getElements(dim)
    quality = np.abs(gmsh.model.mesh.getElementQualities(np.concatenate(element_tags),
                                                         "minSICN"))
    return float(quality.min()), float(quality.mean())


def build_from_file(path: Path, dim: int, length_scale: float,
                    materials: dict[str, list[Selector]],
                    boundaries: dict[str, list[Selector]],
                    interfaces: list[tuple[str, str]] | None = None,
                    tag_array: str | None = None) -> BuiltGeometry:
    """Read the mesh file and load it into the current gmsh model with the builders'
    physical groups: the materials (cells, in the order given), then the boundaries (the
    bounding box's faces unless named, then the other named ones) and the interfaces
    `interface_{a}_{b}` (a the lower, foil side): those given as (a, b), else between each
    two touching materials, a the one listed first."""
    file = _File(Path(path), tag_array)
    cell_type, cells, offsets = _cells(file, dim)
    material_of = _materials(file, dim, cell_type, len(cells), offsets, materials)

    points = np.asarray(file.mesh.points, float)
    if points.shape[1] > dim:
        off_plane = float(np.abs(points[np.unique(cells), dim:]).max())
        if off_plane > 1e-12 * float(np.abs(points).max()):
            raise GeometryError(f"geometry.file: the mesh's points leave the "
                                f"{'x-y plane' if dim == 2 else 'space'} (|z| up to "
                                f"{off_plane:g}): a 2D mesh lies in z = 0")
        points = points[:, :dim]
    used = np.unique(cells)
    extent = points[used].max(axis=0) - points[used].min(axis=0)
    largest = float(extent.max()) * length_scale
    if not PLAUSIBLE_EXTENT[0] <= largest <= PLAUSIBLE_EXTENT[1]:
        raise GeometryError(f"geometry.length_unit: the mesh spans {largest:.3g} m with "
                            f"{length_scale:g} m per unit of the file; a cell of an electrode "
                            "spans micrometres to millimetres: is the unit right?")

    facets = _Facets(cell_type, cells)
    tolerance = 1e-6 * float(extent.max())
    facet_groups: dict[str, np.ndarray] = {}
    for name, (axis, at_minimum) in BOX_FACES[dim].items():
        facet_groups[name] = (_named_boundary(file, facets, name, boundaries[name], dim)
                              if name in boundaries else
                              _box_face(points, facets, name, axis, at_minimum, tolerance))
    for name, selectors in boundaries.items():
        if name not in facet_groups:
            facet_groups[name] = _named_boundary(file, facets, name, selectors, dim)
    names = list(materials)
    shared = np.flatnonzero(~facets.exterior)
    sides = np.sort(material_of[facets.cells[shared]], axis=1)
    pairs = ([(names.index(a), names.index(b)) for a, b in interfaces] if interfaces is not None
             else [(a, b) for a in range(len(names)) for b in range(a + 1, len(names))])
    sides_of = {}  # interface name -> (lower, upper) material index
    for lower, upper in pairs:
        chosen = shared[(sides[:, 0] == min(lower, upper)) & (sides[:, 1] == max(lower, upper))]
        if len(chosen):
            name = f"interface_{names[lower]}_{names[upper]}"
            facet_groups[name] = chosen
            sides_of[name] = (lower, upper)
        elif interfaces is not None:
            raise GeometryError(f"geometry.interfaces: '{names[lower]}' and '{names[upper]}' "
                                "share no facet in the mesh")
    seen = np.zeros(len(facets.keys), int)
    for group, chosen in facet_groups.items():
        if np.any(seen[chosen]):
            raise GeometryError(f"geometry.boundaries: facets of '{group}' are in another "
                                "boundary too")
        seen[chosen] = 1

    # The gmsh model: node tags 1..n over the nodes the cells use, one discrete entity per
    # material and per facet group, each a physical group (tags from 1, as the builders').
    renumber = np.zeros(points.shape[0], np.int64)
    renumber[used] = np.arange(1, len(used) + 1)
    coordinates = np.zeros((len(used), 3))
    coordinates[:, :dim] = points[used]
    gmsh.model.addDiscreteEntity(dim, 1)
    gmsh.model.mesh.addNodes(dim, 1, np.arange(1, len(used) + 1), coordinates.ravel())
    element_tag = 1
    cell_groups: dict[str, int] = {}
    for index, name in enumerate(names):
        if index:
            gmsh.model.addDiscreteEntity(dim, index + 1)
        mine = cells[material_of == index]
        gmsh.model.mesh.addElementsByType(index + 1, CELL_TYPES[dim][cell_type],
                                          np.arange(element_tag, element_tag + len(mine)),
                                          renumber[mine].ravel())
        element_tag += len(mine)
        cell_groups[name] = add_physical_group(dim, [index + 1], name, index + 1)
    facet_tags: dict[str, int] = {}
    for index, (name, chosen) in enumerate(facet_groups.items()):
        gmsh.model.addDiscreteEntity(dim - 1, index + 1)
        gmsh.model.mesh.addElementsByType(index + 1, facets.gmsh_type,
                                          np.arange(element_tag, element_tag + len(chosen)),
                                          renumber[facets.nodes[chosen]].ravel())
        element_tag += len(chosen)
        facet_tags[name] = add_physical_group(dim - 1, [index + 1], name, index + 1)

    quality_min, quality_mean = _element_quality(dim)
    to_si = length_scale
    foil_interfaces = [name for name, (lower, _) in sides_of.items() if lower == 0]
    interface_measure = sum(_measure(points, facets.nodes[facet_groups[name]], dim)
                            for name in foil_interfaces)
    metrics: dict[str, float | bool] = {
        "element_count": len(cells),
        "element_size_max": _longest_edge(points, cells, dim) * to_si,
        "element_quality_min": quality_min,
        "element_quality_mean": quality_mean,
        "geometry_degree": 2 if cell_type in ("triangle6", "tetra10") else 1,
    }
    if dim == 2:
        metrics |= {"interface_length": interface_measure * to_si,
                    "projected_length": float(extent[0]) * to_si}
    else:
        metrics |= {"interface_area": interface_measure * to_si**2,
                    "projected_area": float(extent[0] * extent[1]) * to_si**2,
                    "cell_length": float(extent[0]) * to_si,
                    "cell_width": float(extent[1]) * to_si}
    logger.info("read %s: %d %s cells of %s, %s; element quality min %.3f mean %.3f",
                file.path.name, len(cells), cell_type, _names(names),
                _names(sides_of) if sides_of else "no interface", quality_min, quality_mean)
    if not math.isfinite(quality_min) or quality_min <= 1e-12:
        raise GeometryError(f"geometry.file: {file.path.name} has degenerate cells (gmsh "
                            f"minSICN down to {quality_min:.3g})")
    return BuiltGeometry(
        dim=dim,
        length_scale=length_scale,
        cell_groups=cell_groups,
        cell_materials={tag: name for name, tag in cell_groups.items()},
        facet_groups=facet_tags,
        interfaces={name: (facet_tags[name], cell_groups[names[lower]], cell_groups[names[upper]])
                    for name, (lower, upper) in sides_of.items()},
        metrics=metrics,
    )
