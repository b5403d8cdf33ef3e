"""Fields of mesh data: cell-wise (DG0) values per material or cell tag, the dofs that a set
of cells touches, and UFL expressions interpolated into a space."""

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from petsc4py import PETSc

from solver.numerics import compat
from solver.numerics.linear import configured_ksp


def cellwise_field(emesh, values_by_material: dict, name: str) -> fem.Function:
    """A DG0 field holding, in every cell, the value of the cell's material."""
    field = fem.Function(fem.functionspace(emesh.mesh, ("DG", 0)), name=name)
    fill_cellwise(field, emesh, values_by_material)
    return field


def fill_cellwise(field: fem.Function, emesh, values_by_material: dict, default=None):
    """Set a DG0 field to the value of each cell's material (`default` for materials not
    named; None: every material must be named)."""
    fill_by_tag(field, emesh.cell_tags, {
        tag: values_by_material[material] if default is None
        else values_by_material.get(material, default)
        for tag, material in emesh.geometry.cell_materials.items()})


def field_by_tag(msh, cell_tags, values_by_tag: dict, name: str | None = None) -> fem.Function:
    """A DG0 field holding values_by_tag[t] in the cells tagged t (zero in the others)."""
    field = fem.Function(fem.functionspace(msh, ("DG", 0)), name=name)
    fill_by_tag(field, cell_tags, values_by_tag)
    return field


def fill_by_tag(field: fem.Function, cell_tags, values_by_tag: dict):
    """Set a DG0 field to values_by_tag[t] in the cells tagged t (the others as they are)."""
    dofs = field.function_space.dofmap.list
    for tag, value in values_by_tag.items():
        field.x.array[dofs[cell_tags.indices[cell_tags.values == tag], 0]] = value
    field.x.scatter_forward()


def tag_field(msh, cell_tags, name: str | None = None, untagged: float = 0.0) -> fem.Function:
    """A DG0 field holding every cell's tag (`untagged` in cells without one)."""
    field = fem.Function(fem.functionspace(msh, ("DG", 0)), name=name)
    field.x.array[:] = untagged
    field.x.array[field.function_space.dofmap.list[cell_tags.indices, 0]] = cell_tags.values
    field.x.scatter_forward()
    return field


def touched_dofs(space, cells) -> np.ndarray:
    """For every local (owned and ghost) dof of the scalar `space`: whether one of `cells`
    (local cells, on any rank) touches it."""
    marker = fem.Function(space)
    marker.x.array[space.dofmap.list[cells].ravel()] = 1.0
    vector = marker.x.petsc_vec
    vector.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    vector.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
    return marker.x.array > 0


def interpolate_expression(target: fem.Function, expression) -> fem.Function:
    """Interpolate a UFL expression into `target` (at its space's interpolation points)."""
    target.interpolate(fem.Expression(expression,
                                      compat.interpolation_points(target.function_space)))
    return target


class CellwiseProjector:
    """L2 projections of quadrature expressions (stresses and internal variables that live
    at quadrature points) onto DG spaces over the measure `dx`: local to each cell, so a
    block-Jacobi LU solve is exact. The mass matrix and load of each (target space,
    quantity) are built once; both are divided by `cell_volume` (a typical cell's), so that
    LU sees entries of order one."""

    def __init__(self, comm, dx, cell_volume: float):
        self.comm, self.dx, self.cell_volume = comm, dx, cell_volume
        self._systems = {}

    def project(self, quantity: str, expression, target: fem.Function) -> fem.Function:
        """Project `quantity` into target; expression() builds its UFL expression, once per
        target space."""
        space = target.function_space
        key = (id(space), quantity)
        if key not in self._systems:
            tau, w = ufl.TrialFunction(space), ufl.TestFunction(space)
            mass = fem_petsc.assemble_matrix(
                fem.form(ufl.inner(tau, w) / self.cell_volume * self.dx))
            mass.assemble()
            ksp = configured_ksp(self.comm, "projection",
                                 {"ksp_type": "preonly", "pc_type": "bjacobi",
                                  "sub_ksp_type": "preonly", "sub_pc_type": "lu"})
            ksp.setOperators(mass)
            load = fem.form(ufl.inner(expression(), w) / self.cell_volume * self.dx)
            # the space is kept with its forms: its id is then not reused
            self._systems[key] = (ksp, load, space)
        ksp, load, _ = self._systems[key]
        b = fem_petsc.assemble_vector(load)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        ksp.solve(b, target.x.petsc_vec)
        b.destroy()
        target.x.scatter_forward()
        return target
