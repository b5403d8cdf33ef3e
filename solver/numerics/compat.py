"""Every difference between the DOLFINx versions we support (0.9, 0.10, 0.11) lives here."""

import dolfinx
import numpy as np

DOLFINX_VERSION = tuple(int(p) for p in dolfinx.__version__.split(".")[:2])

if DOLFINX_VERSION >= (0, 10):
    from dolfinx.io import gmsh as _gmshio
else:
    from dolfinx.io import gmshio as _gmshio


def model_to_mesh(model, comm, rank, gdim, partitioner=None):
    """Import a Gmsh model: returns (mesh, cell_tags, facet_tags) on every version."""
    kwargs = {"gdim": gdim}
    if partitioner is not None:
        kwargs["partitioner"] = partitioner
    result = _gmshio.model_to_mesh(model, comm, rank, **kwargs)
    if DOLFINX_VERSION >= (0, 10):
        return result.mesh, result.cell_tags, result.facet_tags
    return result[0], result[1], result[2]


def interpolation_points(space):
    """The reference points at which an Expression must be evaluated to interpolate into space."""
    points = space.element.interpolation_points
    return points() if callable(points) else points


def entities_to_geometry(msh, dim, entities):
    """Geometry node indices of mesh entities, as an (n, nodes per entity) array."""
    try:
        return dolfinx.mesh.entities_to_geometry(msh, dim, np.asarray(entities, np.int32), False)
    except TypeError:
        return dolfinx.mesh.entities_to_geometry(msh, dim, np.asarray(entities, np.int32))


def shared_facet_partitioner():
    """A cell partitioner that ghosts the cells across every partition-boundary facet."""
    mode = dolfinx.mesh.GhostMode.shared_facet
    if DOLFINX_VERSION >= (0, 10):
        return dolfinx.mesh.create_cell_partitioner(mode, 2)  # 2: a non-branching manifold
    return dolfinx.mesh.create_cell_partitioner(mode)


def cell_geometry_nodes(msh):
    """The (cells, nodes per cell) geometry dofmap (0.10+ holds one per cell type)."""
    if DOLFINX_VERSION >= (0, 10):
        return msh.geometry.dofmaps[0]
    return msh.geometry.dofmap


def geometry_degree(msh) -> int:
    """Polynomial degree of the mesh geometry (1: straight-sided cells); 0.11 deprecates
    geometry.cmap for one coordinate element per cell type, cmaps."""
    cmaps = getattr(msh.geometry, "cmaps", None)
    return cmaps[0].degree if cmaps else msh.geometry.cmap.degree


def has_adios2() -> bool:
    """Whether this DOLFINx writes VTX (ADIOS2) files."""
    return bool(getattr(dolfinx.common, "has_adios2", False))


def interpolation_matrix(coarse_space, fine_space):
    """The matrix of the interpolation from `coarse_space` into `fine_space`, assembled:
    0.11 returns it with the contributions to other ranks' rows not yet communicated."""
    from dolfinx.fem.petsc import interpolation_matrix as dolfinx_interpolation_matrix

    matrix = dolfinx_interpolation_matrix(coarse_space, fine_space)
    matrix.assemble()
    return matrix
