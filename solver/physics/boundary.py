"""Boundary conditions of the geometry kinds, from their traits (solver/geometry/kind.py).

- A body free in space (`layers`: a strip or plate): only rigid-body motion is removed, by
  pinning points (the kind's `rigid_body_pins`, on the mid-length and mid-width symmetry
  lines) where the exact solution has the pinned components zero: the pins carry no force.
- A unit cell of an endless periodic electrode (the collector cells `recurved`, `flat`,
  `plain`, `rough`, and `particles`): the kind's `symmetry_planes` (left and bottom; in 3D
  also front) are held on their normal. The `free_faces` (right; in 3D also back) stay
  plane and move along their normal by one shared unknown, chosen so that the net force in
  the sense of that unknown is zero (a roller would forbid the electrode's in-plane
  contraction and invent stress). In 3D that unknown is a uniform in-plane strain (right by
  u, back by u width/length, from the kind's `cell_extent`): the mean in-plane stress on the
  two faces, (sigma_xx + sigma_yy) / 2, is zero, not each of them (an isotropic packing has
  them equal up to its random anisotropy).
"""

from dataclasses import dataclass, field

import numpy as np
from dolfinx import fem, mesh
from petsc4py import PETSc

from solver.errors import GeometryError
from solver.geometry.registry import geometry_kind


@dataclass
class CellConstraints:
    dirichlet: list = field(default_factory=list)
    free_face: np.ndarray | None = None  # dofs of the free face(s), moved by one unknown
    # (value, ratio) per free face: the face moves ratio times the unknown displacement
    _face_values: list[tuple[fem.Constant, float]] = field(default_factory=list)
    _face_weight: fem.Function | None = None

    def set_face_displacement(self, value: float):
        for face_value, ratio in self._face_values:
            face_value.value = ratio * value


def _facets(emesh, name):
    tag = emesh.geometry.facet_groups[name]
    return emesh.facet_tags.indices[emesh.facet_tags.values == tag]


def _zero_component(emesh, V, name, component):
    fdim = emesh.mesh.topology.dim - 1
    dofs = fem.locate_dofs_topological(V.sub(component), fdim, _facets(emesh, name))
    return fem.dirichletbc(PETSc.ScalarType(0.0), dofs, V.sub(component))


def _pin(V, point, components, tolerance):
    msh = V.mesh
    point = np.asarray(point, dtype=float)

    def at_point(x):
        return np.linalg.norm(x[: len(point)].T - point, axis=1) < tolerance

    msh.topology.create_connectivity(0, msh.topology.dim)
    vertices = mesh.locate_entities(msh, 0, at_point)
    if msh.comm.allreduce(len(vertices)) == 0:
        raise GeometryError(f"no mesh vertex at {point} to pin rigid-body motion")
    return [fem.dirichletbc(PETSc.ScalarType(0.0),
                            fem.locate_dofs_topological(V.sub(c), 0, vertices), V.sub(c))
            for c in components]


def _add_free_faces(constraints: CellConstraints, emesh, V, faces):
    """Faces (name, normal component, ratio) that stay plane and move along their normal by
    ratio times one shared unknown displacement, fixed by zero net (ratio-weighted) force."""
    fdim = emesh.mesh.topology.dim - 1
    weight = fem.Function(V)
    face_dofs = []
    for name, component, ratio in faces:
        dofs = fem.locate_dofs_topological(V.sub(component), fdim, _facets(emesh, name))
        face_value = fem.Constant(emesh.mesh, PETSc.ScalarType(0.0))
        constraints.dirichlet.append(fem.dirichletbc(face_value, dofs, V.sub(component)))
        constraints._face_values.append((face_value, ratio))
        # The weight is the unit displacement pattern: its virtual work is the net force.
        weight.x.array[dofs] = ratio
        face_dofs.append(dofs)
    constraints.free_face = np.concatenate(face_dofs)
    constraints._face_weight = weight


def cell_constraints(case, emesh, V) -> CellConstraints:
    """The boundary conditions of the case's geometry kind, from its traits."""
    kind = geometry_kind(case)
    dim = case.case.dim
    constraints = CellConstraints()
    if kind.rigid_body_pins is not None:
        pins, tolerance = kind.rigid_body_pins(case.geometry, dim)
        for point, components in pins:
            constraints.dirichlet += _pin(V, point, components, tolerance)
        return constraints
    if dim not in kind.symmetry_planes:
        raise GeometryError(f"geometry.kind: '{kind.name}' has no boundary conditions")
    for name, component in kind.symmetry_planes[dim]:
        constraints.dirichlet.append(_zero_component(emesh, V, name, component))
    # The solvers condense one unknown: the first free face's normal displacement. In 3D the
    # faces move by one uniform in-plane strain, the same along x and y (a packing is
    # statistically isotropic in the plane; square and hexagonal arrays respond isotropically
    # in their plane to a thermal load): each by the strain times the cell's extent along
    # its normal.
    faces = kind.free_faces[dim]
    if len(faces) == 1:
        ratios = [1.0]
    else:
        extent = kind.cell_extent(case.geometry, emesh.geometry.metrics)
        ratios = [extent[component] / extent[faces[0][1]] for _, component in faces]
    _add_free_faces(constraints, emesh, V,
                    [(*face, ratio) for face, ratio in zip(faces, ratios, strict=True)])
    return constraints
