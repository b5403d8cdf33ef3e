"""Result files: written into a temporary directory that is moved into place when complete."""

import csv
import fcntl
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
from dolfinx import fem
from dolfinx.io import VTXMeshPolicy, VTXWriter, XDMFFile
from mpi4py import MPI

from solver.errors import UserError
from solver.io import units
from solver.materials.constitutive import von_mises
from solver.numerics import compat

logger = logging.getLogger(__name__)


class ResultsDirectory:
    """Results appear at `target` only when complete, or when the run stopped early and
    says so (it ended with solver/stopping.py RunStopped, and the stage has written
    incomplete.json): a failed run leaves nothing there.

    An existing earlier result (it has a summary.json or an incomplete.json) is replaced;
    any other non-empty
    directory is left alone and the run refuses to start. One run at a time writes a
    target: rank 0 holds an exclusive lock (flock) on `.NAME.lock` beside it while the run
    lasts, and a second run is refused. The kernel releases the lock of a run that dies,
    however it dies; the next run then removes that run's temporary directories.
    """

    def __init__(self, target, comm):
        self.target = Path(target).absolute()
        self.comm = comm
        self.path = None
        self.lock = None

    def __enter__(self):
        error, path = None, None
        if self.comm.rank == 0:
            t = self.target
            if t.exists() and (not t.is_dir() or (any(t.iterdir())
                                                  and not is_result(t))):
                error = f"{t}: exists and is not a sinterfem result; choose another --out"
            else:
                t.parent.mkdir(parents=True, exist_ok=True)
                self.lock, error = _lock(t.parent / f".{t.name}.lock")
            if error is None:
                path = tempfile.mkdtemp(prefix=f".{t.name}.partial-", dir=t.parent)
        error, path = self.comm.bcast((error, path), root=0)
        if error:
            raise UserError(error)
        self.path = Path(path)
        return self.path

    def __exit__(self, exc_type, exc, traceback):
        from solver import launch
        from solver.stopping import RunStopped

        if isinstance(exc, RunStopped):  # every rank stopped at the same step
            exc_type = None  # the incomplete result moves into place
        elif exc is not None and not launch.failed_together(exc):
            # the other ranks are not here to meet at a barrier: this rank's error ends the
            # run (solver/launch.py); the temporary directory never becomes a result
            return False
        self.comm.barrier()
        if self.comm.rank == 0:
            try:
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
            finally:
                _unlock(self.lock)
        self.comm.barrier()
        return False


def is_result(path: Path) -> bool:
    """A result of sinterfem: complete (summary.json) or incomplete (incomplete.json)."""
    from solver.stopping import INCOMPLETE_FILE

    return (path / "summary.json").exists() or (path / INCOMPLETE_FILE).exists()


def _lock(path: Path):
    """(open lock file, None) once this process holds the lock at `path`, or (None, why
    not). A lock file whose lock nobody holds is a run that died: its temporary
    directories beside the target are removed."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip()
            os.close(descriptor)
            target = path.parent / path.name[1:-len(".lock")]
            return None, (f"{target}: another run is writing its results there "
                          f"({holder or 'starting'}); wait for it to end or choose another "
                          f"--out")
        try:  # the lock holder may have removed the file between open and flock
            if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(descriptor)
    previous = os.pread(descriptor, 200, 0).decode(errors="replace").strip()
    if previous:
        name = path.name[1:-len(".lock")]
        for leftover in [*path.parent.glob(f".{name}.partial-*"),
                         *path.parent.glob(f".{name}.old-*")]:
            shutil.rmtree(leftover, ignore_errors=True)
        logger.warning("%s: a run that ended without finishing (%s) left it; its temporary "
                       "files are removed", path.parent / name, previous)
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()} since "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
    return (path, descriptor), None


def _unlock(lock):
    """Remove the lock file, then release the lock (in this order: a run that opens the
    file meanwhile finds the lock held, then the file gone, and starts over)."""
    if lock is None:
        return
    path, descriptor = lock
    path.unlink(missing_ok=True)
    os.close(descriptor)


class CellStress:
    """The cell-average stress (DG0, 3x3) and its von Mises equivalent, updated at every
    step, written or not: the history's and the summary's largest von Mises stress."""

    def __init__(self, msh):
        self.stress = fem.Function(fem.functionspace(msh, ("DG", 0, (3, 3))), name="sigma")
        self.von_mises = fem.Function(fem.functionspace(msh, ("DG", 0)), name="von_mises")

    def update(self, problem):
        """From the problem's stress (its stress_into: the Cauchy stress)."""
        problem.stress_into(self.stress)
        self.von_mises.x.array[:] = von_mises(self.stress.x.array.reshape(-1, 3, 3))

    def max_von_mises(self) -> float:
        return largest(self.von_mises)


# The name of each field in the files: the solver's short names, which the ParaView views
# (solver/report) and users' scripts read.
FILE_NAMES = {"displacement": "u", "stress": "sigma", "temperature": "T", "soc": "soc",
              "von_mises": "von_mises", "material": "material"}
POINT_FIELDS = ("displacement", "soc")  # Lagrange fields; every other field is cell-wise


class FieldOutput:
    """The fields of one stage, written at the times the stage chooses, in the formats of
    [output] (docs/outputs.md):

    - xdmf: STEM.xdmf (+ .h5): the mesh and its material and boundary tags once, then per
      output time the point fields (u, soc) at the degree of the mesh geometry and the
      cell fields (sigma, von_mises, T, material, the internal variables) cell-wise (DG0:
      cell averages, projections for quadrature-point data).
    - vtx: PREFIXdisplacement.bp, the point fields at the displacement's element degree, and
      PREFIXstress.bp, the cell fields in DG of one degree less (the stress of the
      displacement element: exact for elastic materials, the cell-wise L2 projection of the
      quadrature-point stress otherwise); each VTX file holds its own nodes once.

    `sources`: what the stage can write, {field: fill(target)} (a point field's target is
    Lagrange, a cell field's DG, of the shapes above; von_mises is derived from the stress).
    `settings`: the case's [output] (its fields and formats; the stage chooses the times);
    a field the stage has not is skipped. Nothing is opened when no field is written.
    """

    def __init__(self, workdir: Path, stem: str, prefix: str, emesh, degree: int,
                 sources: dict, settings, stage: str):
        msh = emesh.mesh
        self.sources = sources
        names = [name for name in settings.fields if name in sources or
                 (name == "von_mises" and "stress" in sources)]
        skipped = [name for name in settings.fields if name not in names]
        if skipped:  # news where the case file lists them, not where the defaults do
            logger.log(logging.INFO if "fields" in settings.model_fields_set else logging.DEBUG,
                       "%s: no %s to write in this case", stage, ", ".join(skipped))
        self.names, self.times, self.files = names, [], []
        self.functions = {}  # per file: {field: the function written}
        self._writers = []  # per file: ([(field, function)], stress, write(time), close())
        if not names:
            return
        if "vtx" in settings.formats and not compat.has_adios2():
            raise UserError("output.formats: vtx needs DOLFINx built with ADIOS2; this one "
                            "is not: write xdmf")
        gdim = msh.geometry.dim
        if "xdmf" in settings.formats:
            xdmf = XDMFFile(msh.comm, str(workdir / f"{stem}.xdmf"), "w")
            xdmf.write_mesh(msh)
            emesh.cell_tags.name = "materials"
            emesh.facet_tags.name = "boundaries"
            xdmf.write_meshtags(emesh.cell_tags, msh.geometry)
            xdmf.write_meshtags(emesh.facet_tags, msh.geometry)
            fields, stress = self._fields(msh, compat.geometry_degree(msh), 0, gdim)

            def write_xdmf(time):
                for _, function in fields:
                    xdmf.write_function(function, time)

            self._writers.append((fields, stress, write_xdmf, xdmf.close))
            self.files.append(f"{stem}.xdmf")
            self.functions[f"{stem}.xdmf"] = dict(fields)
        if "vtx" in settings.formats:
            written, stress = self._fields(msh, degree, degree - 1, gdim)
            for point, file in ((True, f"{prefix}displacement.bp"),
                                (False, f"{prefix}stress.bp")):
                chosen = [(name, f) for name, f in written if (name in POINT_FIELDS) == point]
                if chosen:
                    vtx = VTXWriter(msh.comm, workdir / file, [f for _, f in chosen],
                                    engine="BP4", mesh_policy=VTXMeshPolicy.reuse)
                    self._writers.append((chosen, None if point else stress, vtx.write,
                                          vtx.close))
                    self.files.append(file)
                    self.functions[file] = dict(chosen)

    def _fields(self, msh, point_degree: int, cell_degree: int, gdim: int):
        """The functions of one format: [(field, function)] of the wanted fields in its
        spaces, and the stress in its cell space (for von Mises; None without either)."""
        written, stress = [], None
        for name in self.names:
            point = name in POINT_FIELDS
            shape = {"displacement": (gdim,), "stress": (3, 3)}.get(name, ())
            function = fem.Function(fem.functionspace(
                msh, ("Lagrange" if point else "DG", point_degree if point else cell_degree,
                      shape)), name=FILE_NAMES.get(name, name))
            written.append((name, function))
            if name == "stress":
                stress = function
        if stress is None and "von_mises" in self.names:
            stress = fem.Function(fem.functionspace(msh, ("DG", cell_degree, (3, 3))))
        return written, stress

    def write(self, time: float):
        """Every wanted field of the stage's present state, at `time` (collective)."""
        for fields, stress, write, _ in self._writers:
            if stress is not None:
                self.sources["stress"](stress)
            for name, function in fields:
                if name == "von_mises":
                    # same degree: the scalar DG dofs are the tensor's blocks
                    function.x.array[:] = von_mises(stress.x.array.reshape(-1, 3, 3))
                elif name != "stress":
                    self.sources[name](function)
            write(time)
        if self._writers:
            self.times.append(time)

    def summary(self) -> dict:
        """What was written: files, fields (by their names in [output]) and output times."""
        return {"files": self.files, "fields": self.names if self.files else [],
                "times": self.times}

    def close(self):
        for *_, close in self._writers:
            close()
        self._writers = []


def largest(function: fem.Function) -> float:
    """The largest value of a function's dofs over all ranks (0 where it has none)."""
    local = function.x.array
    comm = function.function_space.mesh.comm
    return comm.allreduce(float(local.max()) if len(local) else 0.0, op=MPI.MAX)


INTERFACE_COLUMNS = ["interface", "chain", "x", "y", "z", "arc_length", "nx", "ny", "nz",
                     "normal_traction", "shear_traction", "normal_traction_averaged",
                     "shear_traction_averaged", "risk"]


def write_interface_csv(path, tractions: dict):
    """One row per interface facet (SI units in the header: m, Pa); called on rank 0."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(units.header(INTERFACE_COLUMNS))
        for name, t in tractions.items():
            for i in range(len(t.sizes)):
                writer.writerow([name, int(t.chain[i]), *map(_number, t.midpoints[i]),
                                 _number(t.arc_length[i]), *map(_number, t.normals[i]),
                                 _number(t.normal_traction[i]), _number(t.shear_traction[i]),
                                 _number(t.normal_traction_averaged[i]),
                                 _number(t.shear_traction_averaged[i]), _number(t.risk[i])])


def _number(value):
    return "" if np.isnan(value) else f"{value:.9g}"


def write_table(path, columns, rows, dim: int = 2):
    """A CSV table whose header gives each column's SI unit (solver/io/units.py header; dim:
    2D forces and energies are per unit depth)."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(units.header(columns, dim))
        writer.writerows(rows)


def write_summary(path, summary: dict):
    """summary.json is written last: its presence marks a complete result."""
    Path(path).write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    logger.debug("wrote %s", path)
