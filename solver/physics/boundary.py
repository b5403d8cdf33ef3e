"""Boundary conditions of the geometry kinds.

- `layers`: a free strip or plate; only rigid-body motion is removed, by pinning points on
  the mid-length (and mid-width) symmetry lines, where the exact solution has the pinned
  components zero: the pins carry no force.
- `recurved` (and `flat`, `plain`, `rough`, built as the same cell): a unit cell of an
  endless periodic electrode. The left face is a symmetry
  plane; the right face stays straight and parallel to it but moves freely: all its points
  share one unknown normal displacement, chosen so that the net force on the face is zero
  (a roller would forbid the electrode's in-plane contraction and invent stress). The
  bottom is a symmetry plane (a foil coated on both sides).
- `particles`: the same cell in 2D. In 3D (and the 3D `recurved`, `flat`, `plain` and
  `rough` cells, meshes.collector3d) the left (x = 0), front (y = 0) and bottom faces
  are symmetry planes; the right (x = length) and back (y = width) faces stay plane and move
  by one shared unknown, a uniform in-plane strain (right by u, back by u width/length),
  with zero net force in the sense of that unknown: the mean in-plane stress on the two
  faces, (sigma_xx + sigma_yy) / 2, is zero, not each of them (an isotropic packing has them
  equal up to its random anisotropy).
"""

from dataclasses import dataclass, field

import numpy as np
import ufl
from dolfinx import fem, mesh
from petsc4py import PETSc

from solver.errors import GeometryError


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

    def free_face_force(self, problem) -> float:
        """Net normal force on the free face (the free faces' forces, each times its ratio):
        the variationally consistent reaction to the unknown displacement."""
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
    collector = g.kind in ("recurved", "flat", "plain", "rough")
    if (collector or g.kind == "particles") and case.case.dim == 2:
        constraints.dirichlet.append(_zero_component(emesh, V, "left", 0))
        constraints.dirichlet.append(_zero_component(emesh, V, "bottom", 1))
        _add_free_faces(constraints, emesh, V, [("right", 0, 1.0)])
        return constraints
    if collector or g.kind == "particles":
        for name, component in (("left", 0), ("front", 1), ("bottom", 2)):
            constraints.dirichlet.append(_zero_component(emesh, V, name, component))
        # The solvers condense one unknown: a uniform in-plane strain u_right / length, the
        # same along x and y (the packing is statistically isotropic in the plane; square and
        # hexagonal arrays respond isotropically in their plane to a thermal load).
        metrics = emesh.geometry.metrics
        length, width = ((metrics["cell_length"], metrics["cell_width"]) if collector
                         else (g.length, g.width))
        _add_free_faces(constraints, emesh, V,
                        [("right", 0, 1.0), ("back", 1, width / length)])
        return constraints
    raise GeometryError(f"geometry.kind: '{g.kind}' has no boundary conditions")
