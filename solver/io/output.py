"""Result files: written into a temporary directory that is moved into place when complete."""

import csv
import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
from dolfinx import fem
from dolfinx.io import VTXWriter, XDMFFile
from mpi4py import MPI

from solver.errors import UserError
from solver.materials.constitutive import von_mises
from solver.numerics import compat
from solver.numerics.fields import tag_field

logger = logging.getLogger(__name__)


class ResultsDirectory:
    """Results appear at `target` only when complete: a failed run leaves nothing there.

    An existing earlier result (it has a summary.json) is replaced; any other non-empty
    directory is left alone and the run refuses to start.
    """

    def __init__(self, target, comm):
        self.target = Path(target).absolute()
        self.comm = comm
        self.path = None

    def __enter__(self):
        error, path = None, None
        if self.comm.rank == 0:
            t = self.target
            if t.exists() and (not t.is_dir() or (any(t.iterdir())
                                                  and not (t / "summary.json").exists())):
                error = f"{t}: exists and is not a sinterfem result; choose another --out"
            else:
                t.parent.mkdir(parents=True, exist_ok=True)
                path = tempfile.mkdtemp(prefix=f".{t.name}.partial-", dir=t.parent)
        error, path = self.comm.bcast((error, path), root=0)
        if error:
            raise UserError(error)
        self.path = Path(path)
        return self.path

    def __exit__(self, exc_type, exc, traceback):
        self.comm.barrier()
        if self.comm.rank == 0:
            if exc_type is None:
                if self.target.exists():
                    old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-",
                                                dir=self.target.parent))
                    self.target.rename(old / "result")
                    self.path.rename(self.target)
                    shutil.rmtree(old)
                else:
                    self.path.rename(self.target)
            else:
                shutil.rmtree(self.path, ignore_errors=True)
        self.comm.barrier()
        return False


class FieldWriter:
    """fields.xdmf: mesh, material and boundary tags, and per time step u (at the degree of
    the mesh geometry: P1, or P2 with solver.geometry_degree = 2), T, sigma,
    von_mises and material (cell-wise); displacement.bp (VTX): u at its element degree;
    stress.bp (VTX): sigma in DG of one degree less (the stress of the displacement
    element, exact for elastic materials, the L2 projection of the quadrature-point stress
    for inelastic ones) and the inelastic materials' internal variables projected to the
    same space. Times are seconds of the schedule."""

    def __init__(self, path, problem, emesh):
        msh = emesh.mesh
        self.problem = problem
        self.xdmf = XDMFFile(msh.comm, str(path), "w")
        self.xdmf.write_mesh(msh)
        emesh.cell_tags.name = "materials"
        emesh.facet_tags.name = "boundaries"
        self.xdmf.write_meshtags(emesh.cell_tags, msh.geometry)
        self.xdmf.write_meshtags(emesh.facet_tags, msh.geometry)
        gdim = msh.geometry.dim
        self.displacement = fem.Function(
            fem.functionspace(msh, ("Lagrange", compat.geometry_degree(msh), (gdim,))), name="u")
        self.temperature = fem.Function(fem.functionspace(msh, ("DG", 0)), name="T")
        self.stress = fem.Function(fem.functionspace(msh, ("DG", 0, (3, 3))), name="sigma")
        self.von_mises = fem.Function(fem.functionspace(msh, ("DG", 0)), name="von_mises")
        # ParaView's XDMF readers drop the tag grids of a file with time series, so the
        # material tags also go out as a cell field at every time step.
        self.material = tag_field(msh, emesh.cell_tags, "material")
        # XDMF holds the geometry's degree only: the displacement at its own degree goes to VTX
        self.vtx = VTXWriter(msh.comm, Path(path).with_name("displacement.bp"), [problem.u],
                             engine="BP4")
        stress_degree = problem.V.ufl_element().degree - 1
        self.stress_field = fem.Function(fem.functionspace(msh, ("DG", stress_degree, (3, 3))),
                                         name="sigma")
        scalars = fem.functionspace(msh, ("DG", stress_degree))
        self.internal_variables = [
            fem.Function(scalars, name=name)
            for name in getattr(problem, "internal_variable_names", list)()]
        self.stress_vtx = VTXWriter(msh.comm, Path(path).with_name("stress.bp"),
                                    [self.stress_field, *self.internal_variables], engine="BP4")

    def write(self, time: float, temperature: float):
        self.displacement.interpolate(self.problem.u)
        self.temperature.x.array[:] = temperature
        self.problem.stress_into(self.stress)
        self.von_mises.x.array[:] = von_mises(self.stress.x.array.reshape(-1, 3, 3))
        for function in (self.displacement, self.temperature, self.stress, self.von_mises,
                         self.material):
            self.xdmf.write_function(function, time)
        self.vtx.write(time)
        self.problem.stress_into(self.stress_field)
        for variable in self.internal_variables:
            self.problem.internal_variable_into(variable.name, variable)
        self.stress_vtx.write(time)

    def max_von_mises(self) -> float:
        return largest(self.von_mises)

    def close(self):
        self.xdmf.close()
        self.vtx.close()
        self.stress_vtx.close()


class SwellingFields:
    """The swelling stage's fields: swelling.xdmf (u [P1], Cauchy sigma and von Mises
    cell-wise, material tags, the equivalent plastic strain where a material flows, the
    SOC with diffusion), per SOC step; the time value is the step number. `problem`: the
    SwellingProblem (solver/physics/swelling.py)."""

    def __init__(self, path, problem, emesh, stress_degree: int):
        msh = emesh.mesh
        self.problem = problem
        self.xdmf = XDMFFile(msh.comm, str(path), "w")
        self.xdmf.write_mesh(msh)
        gdim = msh.geometry.dim
        self.displacement = fem.Function(fem.functionspace(msh, ("Lagrange", 1, (gdim,))),
                                         name="u")
        self.cauchy = fem.Function(fem.functionspace(msh, ("DG", 0, (3, 3))), name="sigma")
        self.von_mises = fem.Function(fem.functionspace(msh, ("DG", 0)), name="von_mises")
        self.material = tag_field(msh, emesh.cell_tags, "material")
        # nominal stress (force per reference area) for the interface tractions
        self.nominal = fem.Function(fem.functionspace(msh, ("DG", stress_degree, (3, 3))))
        self.plastic_strain = None
        if problem.flowing_materials:
            self.plastic_strain = fem.Function(fem.functionspace(msh, ("DG", 0)),
                                               name="equivalent_plastic_strain")

    def write(self, step_number: float):
        self.displacement.interpolate(self.problem.u)
        self.problem.stress_into(self.cauchy)
        self.von_mises.x.array[:] = von_mises(self.cauchy.x.array.reshape(-1, 3, 3))
        functions = [self.displacement, self.cauchy, self.von_mises, self.material]
        if self.plastic_strain is not None:
            self.problem.stress_into(self.plastic_strain,
                                     self.problem.equivalent_plastic_strain, "plastic strain")
            functions.append(self.plastic_strain)
        if self.problem.diffusion is not None:
            functions.append(self.problem.diffusion.soc)
        for function in functions:
            self.xdmf.write_function(function, step_number)

    def nominal_stress(self) -> fem.Function:
        return self.problem.stress_into(self.nominal, self.problem.first_piola, "nominal")

    def max_von_mises(self) -> float:
        return largest(self.von_mises)

    def close(self):
        self.xdmf.close()


def largest(function: fem.Function) -> float:
    """The largest value of a function's dofs over all ranks (0 where it has none)."""
    local = function.x.array
    comm = function.function_space.mesh.comm
    return comm.allreduce(float(local.max()) if len(local) else 0.0, op=MPI.MAX)


INTERFACE_COLUMNS = ["interface", "chain", "x", "y", "z", "arc_length", "nx", "ny", "nz",
                     "normal_traction", "shear_traction", "normal_traction_averaged",
                     "shear_traction_averaged", "risk"]


def write_interface_csv(path, tractions: dict):
    """One row per interface facet (SI units: m, Pa); called on rank 0."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(INTERFACE_COLUMNS)
        for name, t in tractions.items():
            for i in range(len(t.sizes)):
                writer.writerow([name, int(t.chain[i]), *map(_number, t.midpoints[i]),
                                 _number(t.arc_length[i]), *map(_number, t.normals[i]),
                                 _number(t.normal_traction[i]), _number(t.shear_traction[i]),
                                 _number(t.normal_traction_averaged[i]),
                                 _number(t.shear_traction_averaged[i]), _number(t.risk[i])])


def _number(value):
    return "" if np.isnan(value) else f"{value:.9g}"


def write_table(path, header, rows):
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)


def write_summary(path, summary: dict):
    """summary.json is written last: its presence marks a complete result."""
    Path(path).write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    logger.debug("wrote %s", path)
