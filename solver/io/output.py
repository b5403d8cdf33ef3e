"""Result files: written into a temporary directory that is moved into place when complete."""

import csv
import ctypes
import errno
import fcntl
import functools
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
from dolfinx import fem
from dolfinx.io import VTXMeshPolicy, VTXWriter, XDMFFile
from mpi4py import MPI

from solver.errors import DISK_ERRORS, OutputError, UserError, one_line, write_reason
from solver.io import units
from solver.materials.constitutive import von_mises
from solver.numerics import compat

logger = logging.getLogger(__name__)


# The HDF5 files of writes that failed. DOLFINx leaves the datasets of a failed write open,
# so HDF5 cannot close the file, and HDF5 2 asserts at its termination (in MPI_Finalize)
# that nothing is open: an abort and its stack trace after the run's error. The command
# line ends without that termination where this is not empty (solver/cli.py).
hdf5_failures: list[Path] = []

# What a result needs besides its fields, at least: summary.json, the tables, run.log,
# case.toml, resolved.toml and kinetics.png take 10 to 100 kB (a page each on tmpfs).
MINIMUM_FREE_BYTES = 64 * 1024


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

    Before the run: a target that is a file, a parent that cannot be created or written
    (permissions, a read-only file system) or a disk with less than MINIMUM_FREE_BYTES free
    is a UserError naming the path. During it: a write that fails for the disk (an OSError
    of DISK_ERRORS, an OutputError of a writer) ends the run with an OutputError naming the
    file; the temporary directory is removed, an earlier result at `target` is kept.
    """

    def __init__(self, target, comm):
        self.target = Path(target).absolute()
        self.comm = comm
        self.path = None
        self.lock = None

    def __enter__(self):
        error, path = None, None
        if self.comm.rank == 0:
            try:
                error = self._refusal()
                if error is None:
                    self.lock, error = _lock(self.target.parent / f".{self.target.name}.lock")
                if error is None:
                    path = tempfile.mkdtemp(prefix=f".{self.target.name}.partial-",
                                            dir=self.target.parent)
            except OSError as failure:
                _unlock(self.lock)
                error = (f"{failure.filename or self.target.parent}: {write_reason(failure)}: the "
                         f"results cannot be written there; choose another --out")
        error, path = self.comm.bcast((error, path), root=0)
        if error:
            raise UserError(error)
        self.path = Path(path)
        return self.path

    def _refusal(self) -> str | None:
        """Why the results cannot be written at the target, if it can be told before the
        run (rank 0)."""
        t = self.target
        if t.exists() and not t.is_dir():
            return f"{t}: is a file, not a results directory; choose another --out"
        if t.exists() and any(t.iterdir()) and not is_result(t):
            return f"{t}: exists and is not a sinterfem result; choose another --out"
        return directory_refusal(t.parent)

    def __exit__(self, exc_type, exc, traceback):
        from solver import launch
        from solver.stopping import RunStopped

        failure = (None if exc is None or isinstance(exc, RunStopped)
                   else self._output_error(exc))
        if isinstance(exc, RunStopped):  # every rank stopped at the same step
            exc_type = None  # the incomplete result moves into place
        elif exc is not None and not launch.failed_together(exc):
            # the other ranks are not here to meet at a barrier: this rank's error ends the
            # run (solver/launch.py), and nothing of the run may stay
            shutil.rmtree(self.path, ignore_errors=True)
            if self.lock is not None:
                _unlock(self.lock)
            else:  # rank 0 holds it, and the abort ends rank 0
                (self.target.parent / f".{self.target.name}.lock").unlink(missing_ok=True)
            if failure is exc:
                return False
            failure._sinter_failed_together = False
            raise failure from exc
        self.comm.barrier()
        refused = None
        if self.comm.rank == 0:
            try:
                if exc_type is None:
                    refused = self._move_into_place()
                else:
                    shutil.rmtree(self.path, ignore_errors=True)
            finally:
                _unlock(self.lock)
        refused = self.comm.bcast(refused, root=0)
        if refused is not None:
            raise self._output_error(OutputError(*refused))
        if failure is not None and failure is not exc:
            failure._sinter_failed_together = True
            raise failure from exc
        return False

    def _move_into_place(self) -> tuple[str, str] | None:
        """The complete result to the target, replacing an earlier one (rank 0); when the
        file system refuses, (the path, why) and the temporary directory is removed."""
        old = None
        try:
            if self.target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-",
                                            dir=self.target.parent))
                self.target.rename(old / "result")
            self.path.rename(self.target)
        except OSError as failure:
            if old is not None and (old / "result").exists():
                (old / "result").rename(self.target)
            shutil.rmtree(self.path, ignore_errors=True)
            return str(failure.filename or self.target), write_reason(failure)
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return None

    def _output_error(self, exc: BaseException) -> BaseException:
        """The error the run ends with: a failed write as an OutputError naming the file
        where the result would have been, and what happened to the target; any other
        error unchanged."""
        if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
            # a writer that does not say which file (pandas, matplotlib): the one written last
            exc = OutputError(exc.filename or _newest_file(self.path) or self.path,
                              write_reason(exc))
        if not isinstance(exc, OutputError):
            return exc
        where = Path(exc.path)
        if self.path is not None and where.is_relative_to(self.path):
            where = self.target / where.relative_to(self.path)
        kept = (f"the earlier result at {self.target} is kept"
                if (self.target / "summary.json").exists()
                else f"nothing was written to {self.target}")
        return OutputError(where, exc.reason, f"the run stopped; {kept}")


def directory_refusal(directory: Path, needed: int = MINIMUM_FREE_BYTES,
                      what: str = "a result (its tables and logs alone)") -> str | None:
    """Why files cannot be written into `directory` (created if need be), if it can be
    told before writing them: not writable, a read-only file system, less than `needed`
    bytes free (for `what`). An OSError where it cannot be created."""
    directory.mkdir(parents=True, exist_ok=True)
    if not os.access(directory, os.W_OK | os.X_OK):
        read_only = os.statvfs(directory).f_flag & os.ST_RDONLY
        return (f"{directory}: {'read-only file system' if read_only else 'not writable'}: "
                f"the results cannot be written there; choose another --out")
    free = free_bytes(directory)
    if free < needed:
        return (f"{directory}: {size_text(free)} free, {what} needs at least "
                f"{size_text(needed)}: free some space or choose another --out")
    return None


def _newest_file(directory: Path | None) -> Path | None:
    """The file of `directory` (and below) modified last, if any."""
    if directory is None:
        return None
    files = []
    for path in directory.rglob("*"):
        try:
            files.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    return max(files)[1] if files else None


def free_bytes(path) -> int:
    """The bytes an unprivileged user may still write on the file system of `path` (or
    of its nearest existing ancestor)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def size_text(size: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.3g} {unit}"
        size /= 1000
    return ""


def write_failure(path, error: Exception, written_bytes: int = 0) -> OutputError:
    """The OutputError of a failed write of `path`. HDF5's errors carry no errno and ADIOS2's
    in their text: without one, a file system with less free than the write needed
    (`written_bytes`) and a megabyte is full."""
    number = getattr(error, "errno", None)
    if number is None:
        found = re.search(r"errno = (\d+)", str(error))
        number = int(found[1]) if found else None
    if number is None and free_bytes(Path(path).parent) < written_bytes + 1_000_000:
        number = errno.ENOSPC
    if number is not None:
        return OutputError(path, DISK_ERRORS.get(number) or os.strerror(number))
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()
    return OutputError(path, f"writing failed: {one_line(text[0] if text else repr(error))}")


def write_text(path, text: str):
    """A text file of the results; a failed write is an OutputError naming it."""
    try:
        Path(path).write_text(text)
    except OSError as error:
        raise write_failure(path, error) from error


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
                 sources: dict, settings, stage: str, times: int = 1):
        msh = emesh.mesh
        self.sources = sources
        names = [name for name in settings.fields if name in sources or
                 (name == "von_mises" and "stress" in sources)]
        skipped = [name for name in settings.fields if name not in names]
        if skipped:  # news where the case file lists them, not where the defaults do
            logger.log(logging.INFO if "fields" in settings.model_fields_set else logging.DEBUG,
                       "%s: no %s to write in this case", stage, ", ".join(skipped))
        self.names, self.times, self.files = names, [], []
        self.workdir, self.failure = Path(workdir), None
        self.functions = {}  # per file: {field: the function written}
        self._writers = []  # per file: ([(field, function)], stress, write(time), close())
        if not names:
            return
        if "vtx" in settings.formats and not compat.has_adios2():
            raise UserError("output.formats: vtx needs DOLFINx built with ADIOS2; this one "
                            "is not: write xdmf")
        quiet_hdf5()
        gdim = msh.geometry.dim
        planned = []  # (file, [(field, function)], stress)
        if "xdmf" in settings.formats:
            planned.append((f"{stem}.xdmf",
                            *self._fields(msh, compat.geometry_degree(msh), 0, gdim)))
        if "vtx" in settings.formats:
            written, stress = self._fields(msh, degree, degree - 1, gdim)
            for point, file in ((True, f"{prefix}displacement.bp"),
                                (False, f"{prefix}stress.bp")):
                chosen = [(name, f) for name, f in written if (name in POINT_FIELDS) == point]
                if chosen:
                    planned.append((file, chosen, None if point else stress))
        self.bytes_per_time = sum(_payload(f) for _, fields, _ in planned for _, f in fields)
        # the mesh once per file: its nodes' coordinates at least
        mesh_bytes = 3 * 8 * sum(fields[0][1].function_space.dofmap.index_map.size_global
                                 for _, fields, _ in planned)
        check_free_space(self.workdir, mesh_bytes + times * self.bytes_per_time,
                         f"the {stage} stage's fields ({times} output time"
                         f"{'s' * (times != 1)} in {', '.join(settings.formats)})", msh.comm)
        for file, fields, stress in planned:
            try:
                if file.endswith(".xdmf"):
                    write, close = self._open_xdmf(workdir / file, emesh, fields)
                else:
                    vtx = VTXWriter(msh.comm, workdir / file, [f for _, f in fields],
                                    engine="BP4", mesh_policy=VTXMeshPolicy.reuse)
                    write, close = vtx.write, vtx.close
            except RuntimeError as error:
                self.close()
                raise self._failed(file, error) from error
            self._writers.append((fields, stress, write, close))
            self.files.append(file)
            self.functions[file] = dict(fields)

    @staticmethod
    def _open_xdmf(path: Path, emesh, fields):
        """An XDMF file with the mesh and its tags: (write(time), close())."""
        msh = emesh.mesh
        xdmf = XDMFFile(msh.comm, str(path), "w")
        try:
            xdmf.write_mesh(msh)
            emesh.cell_tags.name = "materials"
            emesh.facet_tags.name = "boundaries"
            xdmf.write_meshtags(emesh.cell_tags, msh.geometry)
            xdmf.write_meshtags(emesh.facet_tags, msh.geometry)
        except RuntimeError:
            xdmf.close()
            raise

        def write_xdmf(time):
            for _, function in fields:
                xdmf.write_function(function, time)

        return write_xdmf, xdmf.close

    def _failed(self, file: str, error: Exception) -> OutputError:
        """The error of the first failed write (an XDMF file's values are in its .h5)."""
        if self.failure is None:
            if file.endswith(".xdmf") and "HDF5" in str(error):
                file = file.removesuffix(".xdmf") + ".h5"
                hdf5_failures.append(self.workdir / file)
            self.failure = write_failure(self.workdir / file, error, self.bytes_per_time)
        return self.failure

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
        """Every wanted field of the stage's present state, at `time` (collective); a
        failed write is an OutputError naming the file."""
        for file, (fields, stress, write, _) in zip(self.files, self._writers, strict=True):
            if stress is not None:
                self.sources["stress"](stress)
            for name, function in fields:
                if name == "von_mises":
                    # same degree: the scalar DG dofs are the tensor's blocks
                    function.x.array[:] = von_mises(stress.x.array.reshape(-1, 3, 3))
                elif name != "stress":
                    self.sources[name](function)
            try:
                write(time)
            except RuntimeError as error:
                raise self._failed(file, error) from error
        if self._writers:
            self.times.append(time)

    def summary(self) -> dict:
        """What was written: files, fields (by their names in [output]) and output times."""
        return {"files": self.files, "fields": self.names if self.files else [],
                "times": self.times}

    def close(self):
        """Close the files (collective); a failure is an OutputError naming the file.
        Where the other ranks do not come to close (this rank failed alone, elsewhere or
        in a write), the writers are abandoned, not closed: closing would wait for the
        others in a collective, and the run ends in an abort. After a failed write, the
        VTX (ADIOS2) writers are abandoned too: their close retries the failed flush and
        fails again. The XDMF files are closed: HDF5 asserts at exit that none is open."""
        from solver import launch

        writers, self._writers = self._writers, []
        if not writers:
            return
        failed_before, together = self.failure is not None, launch.arrive_together()
        for file, (*_, close) in zip(self.files, writers, strict=True):
            if not together or (failed_before and file.endswith(".bp")):
                abandon(close)  # a bound method: it holds its writer
                continue
            try:
                close()
            except RuntimeError as error:
                abandon(close)
                self._failed(file, error)
        if self.failure is not None and not failed_before:
            raise self.failure


def abandon(writer):
    """Never destroy `writer` (an XDMFFile, a VTXWriter or a bound method of one) that
    failed: its destructor would close it again, and a C++ exception there ends the
    process (std::terminate). The process or the run's result ends soon after anyway."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(writer))


def _payload(function: fem.Function) -> int:
    """The bytes of a function's values in a file (float64), all ranks together."""
    index_map = function.function_space.dofmap.index_map
    return 8 * index_map.size_global * function.function_space.dofmap.index_map_bs


def check_free_space(directory: Path, needed: int, what: str, comm):
    """A UserError when the file system of `directory` has less free than `needed` bytes,
    a lower bound of what `what` writes (their values alone); a warning when less than
    twice that (the files' own structure, the tables and logs come on top). Collective."""
    free = comm.bcast(free_bytes(directory) if comm.rank == 0 else None, root=0)
    if free < needed:
        raise UserError(f"{Path(directory).parent}: {size_text(free)} free, {what} need at "
                        f"least {size_text(needed)}: free some space, write fewer fields or "
                        f"output times ([output] fields, every, at_times) or choose another "
                        f"--out")
    if free < 2 * needed:
        logger.warning("warning: %s: %s free, %s need at least %s: the disk may fill before "
                       "the run ends", Path(directory).parent, size_text(free), what,
                       size_text(needed))


@functools.cache
def quiet_hdf5():
    """Stop HDF5 printing its error stack on stderr (a write that fails is reported once,
    as an OutputError naming the file): H5Eset_auto2(H5E_DEFAULT, NULL, NULL) in the HDF5
    library DOLFINx loaded (found in /proc/self/maps, Linux; elsewhere nothing changes)."""
    try:
        with open("/proc/self/maps") as maps:
            libraries = {line.split()[-1] for line in maps
                         if "/libhdf5" in line and ".so" in line.split()[-1]}
    except OSError:
        return
    for library in libraries:
        try:
            hdf5 = ctypes.CDLL(library)
            hdf5.H5Eset_auto2.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
        except (OSError, AttributeError):
            continue
        hdf5.H5Eset_auto2(0, None, None)  # H5E_DEFAULT is 0


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
    rows = [[name, int(t.chain[i]), *map(_number, t.midpoints[i]), _number(t.arc_length[i]),
             *map(_number, t.normals[i]), _number(t.normal_traction[i]),
             _number(t.shear_traction[i]), _number(t.normal_traction_averaged[i]),
             _number(t.shear_traction_averaged[i]), _number(t.risk[i])]
            for name, t in tractions.items() for i in range(len(t.sizes))]
    write_table(path, INTERFACE_COLUMNS, rows)


def _number(value):
    return "" if np.isnan(value) else f"{value:.9g}"


def write_table(path, columns, rows, dim: int = 2):
    """A CSV table whose header gives each column's SI unit (solver/io/units.py header; dim:
    2D forces and energies are per unit depth); a failed write is an OutputError."""
    try:
        with open(path, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(units.header(columns, dim))
            writer.writerows(rows)
    except OSError as error:
        raise write_failure(path, error) from error


def write_summary(path, summary: dict):
    """summary.json is written last: its presence marks a complete result."""
    write_text(path, json.dumps(summary, indent=2, sort_keys=False) + "\n")
    logger.debug("wrote %s", path)
