"""From a case's geometry to a distributed DOLFINx mesh: Gmsh runs on rank 0 only."""

import logging
from dataclasses import dataclass

import dolfinx
import gmsh
import numpy as np
from mpi4py import MPI

import meshes
from solver.errors import GeometryError
from solver.geometry.registry import geometry_kind
from solver.numerics import compat

logger = logging.getLogger(__name__)


@dataclass
class ElectrodeMesh:
    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    facet_tags: dolfinx.mesh.MeshTags
    geometry: meshes.BuiltGeometry
    mesh_size: float
    """The typical element size (m): the length scale of the solvers' tolerances."""


def build_geometry(case) -> meshes.BuiltGeometry:
    """Call the Gmsh builder of the case's geometry kind, on the current Gmsh model."""
    return geometry_kind(case).build(case.geometry, case.case.dim)


def curve_elements(built: meshes.BuiltGeometry) -> None:
    """Second-order geometry: the edge midpoints move onto the curves they mesh. Straight
    triangles in the thin mix wedge at a tangent foot fillet would fold when curved (minimum
    scaled Jacobian 0.01 on the recurved cell); gmsh's high-order optimization untangles
    them (0.41)."""
    with meshes.built.gmsh_errors("second-order geometry"):
        gmsh.model.mesh.setOrder(2)
        gmsh.model.mesh.optimize("HighOrder")
        _, element_tags, _ = gmsh.model.mesh.getElements(built.dim)
        jacobians = gmsh.model.mesh.getElementQualities(np.concatenate(element_tags), "minSJ")
    built.metrics["geometry_degree"] = 2
    built.metrics["element_scaled_jacobian_min"] = float(np.min(jacobians))
    if not built.metrics["element_scaled_jacobian_min"] > 0:
        raise GeometryError("geometry: second-order elements come out inverted even after "
                            "optimization; use solver.geometry_degree = 1 or a finer mesh")


def _check_file_degree(case, degree: int) -> None:
    """A mesh file's cells decide its geometry's degree: second-order geometry needs
    second-order cells in the file, which need a second-order displacement."""
    if case.solver.geometry_degree == 2 and degree == 1:
        raise GeometryError("solver.geometry_degree: 2 needs second-order cells in the mesh "
                            "file (triangle6, tetra10); its cells are straight")
    if degree == 2 and case.solver.degree == 1:
        raise GeometryError("solver.degree: the mesh file's cells are second-order: the "
                            "displacement needs degree = 2")


def build_mesh(case, comm=MPI.COMM_WORLD, msh_file=None) -> ElectrodeMesh:
    """Build the geometry with Gmsh on rank 0 and distribute the mesh over comm.

    A geometry error on rank 0 is broadcast so that every rank raises it (no rank waits
    forever in the mesh distribution).
    """
    built, error = None, None
    if comm.rank == 0:
        if not gmsh.isInitialized():
            gmsh.initialize(interruptible=False)
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add(case.case.name)
        try:
            built = build_geometry(case)
            # What [mix] computed goes into the summary with the geometry's metrics.
            built.metrics.update({f"mix_{key}": value
                                  for key, value in (case.mix_properties or {}).items()})
            if "geometry_degree" in built.metrics:  # a mesh file brings its own cells
                _check_file_degree(case, built.metrics["geometry_degree"])
            elif case.solver.geometry_degree == 2:
                curve_elements(built)
            if msh_file is not None:
                gmsh.write(str(msh_file))
        except GeometryError as exc:
            error = str(exc)
    built, error = comm.bcast((built, error), root=0)
    if error is not None:
        if comm.rank == 0:
            gmsh.finalize()
        raise GeometryError(error)

    # shared_facet ghosting: both cells of every owned interface facet are on its rank.
    partitioner = compat.shared_facet_partitioner()
    msh, cell_tags, facet_tags = compat.model_to_mesh(
        gmsh.model if comm.rank == 0 else None, comm, 0, built.dim, partitioner
    )
    if comm.rank == 0:
        gmsh.finalize()
    # Gmsh builds in micrometres (OCC's tolerances are absolute); the solver works in SI.
    msh.geometry.x[:] *= built.length_scale
    msh.topology.create_connectivity(msh.topology.dim - 1, msh.topology.dim)
    cells = msh.topology.index_map(msh.topology.dim).size_global
    logger.info("mesh: %d cells of dimension %d on %d rank(s)", cells, built.dim, comm.size)
    # A mesh file may leave the element size to be measured.
    mesh_size = case.geometry.mesh_size
    if mesh_size is None:
        mesh_size = built.metrics["element_size_max"]
    return ElectrodeMesh(msh, cell_tags, facet_tags, built, mesh_size)
