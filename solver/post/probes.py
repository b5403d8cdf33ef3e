"""Quantities derived from a solution: point probes, bending curvature."""

import numpy as np
from dolfinx import fem, geometry

from solver.numerics import compat


def probe(function: fem.Function, points) -> np.ndarray:
    """Values of function at points (n, gdim or 3), the same on every rank.

    Each rank evaluates the points in its cells; a point found on several ranks (a ghost
    cell) has the same value on each, so the values are averaged over the finders.
    """
    msh = function.function_space.mesh
    points = np.asarray(points, dtype=float)
    points = np.column_stack([points, np.zeros((len(points), 3 - points.shape[1]))])
    tdim = msh.topology.dim
    tree = geometry.bb_tree(msh, tdim)
    candidates = geometry.compute_collisions_points(tree, points)
    size = int(np.prod(function.ufl_shape))
    values = np.zeros((len(points), size))
    found = np.zeros(len(points))
    for i, point in enumerate(points):
        cell = _containing_cell(msh, candidates.links(i), point)
        if cell is not None:
            values[i] = function.eval(point, np.array([cell], dtype=np.int32))
            found[i] = 1
    comm = msh.comm
    values, found = comm.allreduce(values), comm.allreduce(found)
    if (found == 0).any():
        missing = points[found == 0][0]
        raise ValueError(f"probe point {missing} is outside the mesh")
    return values / found[:, None]


def _containing_cell(msh, candidates, point, tolerance=1e-9):
    """The first candidate simplex containing point, by its barycentric coordinates.

    DOLFINx's compute_colliding_cells uses an absolute distance tolerance that fails on
    micrometre-sized cells in SI units, so affine simplices are tested here instead.
    """
    tdim = msh.topology.dim
    nodes = compat.cell_geometry_nodes(msh)
    for cell in candidates:
        vertices = msh.geometry.x[nodes[cell][: tdim + 1], :tdim]
        edges = (vertices[1:] - vertices[0]).T
        weights = np.linalg.solve(edges, point[:tdim] - vertices[0])
        if weights.min() >= -tolerance and weights.sum() <= 1 + tolerance:
            return cell
    return None


def bending_curvature(displacement: fem.Function, bottom_facets, length, width=None) -> dict:
    """Curvature w'' of the bottom face from a quadratic fit over its central half.

    The central half keeps away from the free ends, where the stress is not the beam's.
    2D: w(x); 3D: w(x, y) with curvatures along x and y.
    """
    space = displacement.function_space
    msh = space.mesh
    gdim = msh.geometry.dim
    fdim = msh.topology.dim - 1
    nodes = fem.locate_dofs_topological(space, fdim, bottom_facets)
    nodes = nodes[nodes < space.dofmap.index_map.size_local]
    coords = space.tabulate_dof_coordinates()[nodes]
    deflection = displacement.x.array.reshape(-1, gdim)[nodes, gdim - 1]
    comm = msh.comm
    coords = np.concatenate(comm.allgather(coords))
    deflection = np.concatenate(comm.allgather(deflection))
    x = coords[:, 0] - length / 2
    central = np.abs(x) <= length / 4
    if gdim == 2:
        fit = np.polyfit(x[central], deflection[central], 2)
        return {"curvature": float(2 * fit[0])}
    y = coords[:, 1] - width / 2
    central &= np.abs(y) <= width / 4
    x, y = x[central], y[central]
    basis = np.column_stack([np.ones_like(x), x, y, x**2, y**2, x * y])
    fit = np.linalg.lstsq(basis, deflection[central], rcond=None)[0]
    return {"curvature_x": float(2 * fit[3]), "curvature_y": float(2 * fit[4])}
