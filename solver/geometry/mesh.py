"""From a case's geometry to a distributed DOLFINx mesh: Gmsh runs on rank 0 only."""

import logging
from dataclasses import dataclass

import dolfinx
import gmsh
import numpy as np
from mpi4py import MPI

import meshes
from solver.errors import GeometryError
from solver.numerics import compat

logger = logging.getLogger(__name__)


@dataclass
class ElectrodeMesh:
    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    facet_tags: dolfinx.mesh.MeshTags
    geometry: meshes.BuiltGeometry


def build_geometry(case) -> meshes.BuiltGeometry:
    """Call the Gmsh builder the case's geometry asks for, on the current Gmsh model."""
    g = case.geometry
    if g.kind == "layers":
        return meshes.build_layers(
            length=g.length,
            thicknesses=[layer.thickness for layer in g.layers],
            materials=[layer.material for layer in g.layers],
            mesh_size=g.mesh_size,
            dim=case.case.dim,
            width=getattr(g, "width", None),
        )
    if g.kind in ("recurved", "flat", "plain", "rough") and case.case.dim == 3:
        return _build_collector_cell_3d(g)
    if g.kind == "recurved":
        return meshes.build_recurved_2d(
            pitch=g.pitch, foil_thickness=g.foil_thickness, neck_width=g.neck_width,
            head_width=g.head_width, height=g.height, neck_height=g.neck_height,
            fillet_radius=g.fillet_radius, mix_thickness=g.mix_thickness,
            mesh_size=g.mesh_size, interface_mesh_size=g.interface_mesh_size,
            foil_material=g.foil_material, mix_material=g.mix_material,
            films=[(film.material, film.thickness) for film in g.films],
        )
    if g.kind in ("flat", "plain", "rough"):
        return _build_collector_cell(g)
    if g.kind == "particles":
        return meshes.build_particles(
            length=g.length, width=g.width, dim=case.case.dim, foil_thickness=g.foil_thickness,
            layer_thickness=g.layer_thickness, volume_fraction=g.volume_fraction,
            mean_diameter=g.mean_diameter, diameter_spread=g.diameter_spread,
            diameter_distribution=g.diameter_distribution, min_gap=g.min_gap, seed=g.seed,
            conductive_fraction=g.conductive_fraction, conductive_diameter=g.conductive_diameter,
            mesh_size=g.mesh_size, particle_mesh_size=g.particle_mesh_size,
            foil_material=g.foil_material, binder_material=g.binder_material,
            particle_material=g.particle_material, conductive_material=g.conductive_material,
            projection=None if g.projection is None else meshes.RecurvedProfile(
                neck_width=g.projection.neck_width, head_width=g.projection.head_width,
                height=g.projection.height, neck_height=g.projection.neck_height,
                fillet_radius=g.projection.fillet_radius),
        )
    raise GeometryError(f"geometry.kind: '{g.kind}' has no builder")


def _build_collector_cell(g) -> meshes.BuiltGeometry:
    """The flat, plain and rough cells (meshes.collector), which share the cell's keys."""
    cell = dict(foil_thickness=g.foil_thickness, mix_thickness=g.mix_thickness,
                mesh_size=g.mesh_size, interface_mesh_size=g.interface_mesh_size,
                foil_material=g.foil_material, mix_material=g.mix_material,
                films=[(film.material, film.thickness) for film in g.films])
    if g.kind == "flat":
        return meshes.build_flat_2d(pitch=g.pitch, **cell)
    if g.kind == "plain":
        return meshes.build_plain_2d(
            pitch=g.pitch, base_width=g.base_width, top_width=g.top_width, height=g.height,
            fillet_radius=g.fillet_radius, **cell,
        )
    return meshes.build_rough_2d(
        length=g.length, target_ra=g.Ra, nodule_count=g.nodule_count,
        nodule_width=g.nodule_width, nodule_shape=g.nodule_shape, seed=g.seed, **cell,
    )


def _build_collector_cell_3d(g) -> meshes.BuiltGeometry:
    """The 3D cells of meshes.collector3d: arrays of nodules of revolution, a random field."""
    cell = dict(foil_thickness=g.foil_thickness, mix_thickness=g.mix_thickness,
                mesh_size=g.mesh_size, interface_mesh_size=g.interface_mesh_size,
                foil_material=g.foil_material, mix_material=g.mix_material)
    if g.kind == "recurved":
        return meshes.build_recurved_3d(
            pitch=g.pitch, neck_width=g.neck_width, head_width=g.head_width, height=g.height,
            neck_height=g.neck_height, fillet_radius=g.fillet_radius, array=g.array, **cell)
    if g.kind == "flat":
        return meshes.build_flat_3d(pitch=g.pitch, array=g.array, **cell)
    if g.kind == "plain":
        return meshes.build_plain_3d(
            pitch=g.pitch, base_width=g.base_width, top_width=g.top_width, height=g.height,
            fillet_radius=g.fillet_radius, array=g.array, **cell)
    return meshes.build_rough_3d(
        length=g.length, width=g.width, target_sa=g.Ra, nodule_count=g.nodule_count,
        nodule_width=g.nodule_width, nodule_shape=g.nodule_shape, seed=g.seed, **cell)


def _curve_elements(built: meshes.BuiltGeometry) -> None:
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
            if case.solver.geometry_degree == 2:
                _curve_elements(built)
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
    return ElectrodeMesh(msh, cell_tags, facet_tags, built)
