"""Boundary conditions of the geometry kinds.

- `layers`: a free strip or plate; only rigid-body motion is removed, by pinning points on
  the mid-length (and mid-width) symmetry lines, where the exact solution has the pinned
  components zero: the pins carry no force.
- `recurved`: a unit cell of an endless periodic electrode. The left face is a symmetry
  plane; the right face stays straight and parallel to it but moves freely: all its points
  share one unknown normal displacement, chosen so that the net force on the face is zero
  (a roller would forbid the electrode's in-plane contraction and invent stress). The
  bottom is a symmetry plane (a foil coated on both sides).
"""

from dataclasses import dataclass, field

import numpy as np
import ufl
from dolfinx import fem, mesh
from petsc4py import PETSc

from .errors import GeometryError


@dataclass
class CellConstraints:
    dirichlet: list = field(default_factory=list)
    free_face: np.ndarray | None = None  # dofs of the face with one unknown displacement
    _face_value: fem.Constant | None = None
    _face_weight: fem.Function | None = None

    def set_face_displacement(self, value: float):
        if self._face_value is not None:
            self._face_value.value = value

    def free_face_force(self, problem) -> float:
        """Net normal force on the free face: the variationally consistent reaction."""
        sigma = problem.stress(problem.u, problem.delta_temperature,
                               problem.out_of_plane_strain)
        return problem.integrate(ufl.inner(sigma, problem.strain(self._face_weight)) * ufl.dx)


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


def cell_constraints(case, emesh, V) -> CellConstraints:
    g = case.geometry
    constraints = CellConstraints()
    if g.kind == "layers":
        height = sum(layer.thickness for layer in g.layers)
        tolerance = 1e-6 * min(g.mesh_size, height)
        if case.case.dim == 2:
            pins = [((g.length / 2, 0.0), (0, 1)), ((g.length / 2, height), (0,))]
        else:
            pins = [((g.length / 2, g.width / 2, 0.0), (0, 1, 2)),
                    ((g.length / 2, g.width / 2, height), (0, 1)),
                    ((g.length, g.width / 2, 0.0), (1,))]
        for point, components in pins:
            constraints.dirichlet += _pin(V, point, components, tolerance)
        return constraints
    if g.kind == "recurved":
        constraints.dirichlet.append(_zero_component(emesh, V, "left", 0))
        constraints.dirichlet.append(_zero_component(emesh, V, "bottom", 1))
        fdim = emesh.mesh.topology.dim - 1
        face_dofs = fem.locate_dofs_topological(V.sub(0), fdim, _facets(emesh, "right"))
        constraints._face_value = fem.Constant(emesh.mesh, PETSc.ScalarType(0.0))
        constraints.dirichlet.append(fem.dirichletbc(constraints._face_value, face_dofs,
                                                     V.sub(0)))
        constraints.free_face = face_dofs
        weight = fem.Function(V)
        weight.x.array[face_dofs] = 1.0
        constraints._face_weight = weight
        return constraints
    raise GeometryError(f"geometry.kind: '{g.kind}' has no boundary conditions")
