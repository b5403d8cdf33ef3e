"""Phase times of a sinterfem run, measured from outside the solver (`make bench` only).

- assembly: the wall time inside dolfinx.fem.petsc's assemble_matrix and assemble_vector
  (every problem assembles through them, as module attributes);
- setup and solve: PETSc's own log: setup = events KSPSetUp + PCSetUp (the preconditioner
  or the factorization), solve = event KSPSolve. KSPSolve sets the KSP and its
  preconditioner up before its own event begins, so the two do not overlap; an event
  nested in itself (the smoothers' setups inside GAMG's, its eigenvalue estimates) is
  counted once, at its outermost level (PETSc 3.22, checked against wall clocks);
- iterations: a monitor on every KSP that solver.numerics.linear.configured_ksp creates
  (every solver KSP comes from there), counting the Krylov iterations of all solves;
- mesh: solver.geometry.mesh.build_mesh (Gmsh and the distribution of the mesh), whose
  last mesh is kept for last_mesh();
- memory by phase: the kernel's peak resident memory (VmHWM, reset at every change of
  phase through /proc/self/clear_refs) within each of mesh, assembly, the elasticity
  solver's set-up (solver.numerics.linear.elasticity_ksp: the AMG hierarchy or the
  p-multigrid), the solves with Dirichlet conditions (solve_dirichlet: the elastic
  solves) and the rest, and the resident memory when each phase ends (what it left
  held), rank 0's;
- CPU seconds (process time, which the other jobs of a shared machine change less than the
  wall time) within each of those phases, the solves' including the assembly of their
  right-hand sides, and in all (cpu_s), rank 0's.

install() must run before solver.stages is imported: the solver modules bind
configured_ksp and build_mesh by name when they are imported.
"""

import resource
import time
from contextlib import contextmanager

from mpi4py import MPI
from petsc4py import PETSc

_seconds = {"mesh": 0.0, "assemble": 0.0}
_iterations = {"krylov": 0}
_meshes = []
_phases = ["rest"]  # the stack of memory phases, the current one last
_peak_mb: dict[str, float] = {}  # per phase, the largest peak resident memory in it
_left_mb: dict[str, float] = {}  # per phase, the largest resident memory as it ended
_cpu_s: dict[str, float] = {}  # per phase, the CPU seconds within it


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _close_phase_memory():
    """The current phase's peak since the last change of phase; the peak restarts."""
    phase = _phases[-1]
    _peak_mb[phase] = max(_peak_mb.get(phase, 0.0), _status_mb("VmHWM"))
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # VmHWM := VmRSS (Linux >= 4.0)


def _enter(phase: str):
    _close_phase_memory()
    _phases.append(phase)


def _leave():
    _close_phase_memory()
    phase = _phases.pop()
    _left_mb[phase] = max(_left_mb.get(phase, 0.0), _status_mb("VmRSS"))


def _in_phase(function, phase: str):
    def phased(*args, **kwargs):
        _enter(phase)
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            _cpu_s[phase] = _cpu_s.get(phase, 0.0) + time.process_time() - started
            _leave()

    return phased


def _timed(function, phase: str):
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _seconds[phase] += time.perf_counter() - started

    return timed


def _count_iterations(ksp, iteration: int, residual_norm: float):
    if iteration > 0:  # iteration 0 is the initial residual
        _iterations["krylov"] += 1


def install():
    """Wrap the assembly, the mesh build and the KSP factory; start PETSc's log."""
    from dolfinx.fem import petsc as fem_petsc

    import solver.geometry.mesh
    import solver.numerics.linear

    PETSc.Log.begin()
    for name in ("assemble_matrix", "assemble_vector"):
        setattr(fem_petsc, name, _in_phase(_timed(getattr(fem_petsc, name), "assemble"),
                                           "assemble"))
    build_mesh = solver.geometry.mesh.build_mesh

    def kept_mesh(*args, **kwargs):
        _meshes[:] = [build_mesh(*args, **kwargs)]
        return _meshes[0]

    solver.geometry.mesh.build_mesh = _in_phase(_timed(kept_mesh, "mesh"), "mesh")
    linear = solver.numerics.linear
    linear.elasticity_ksp = _in_phase(linear.elasticity_ksp, "setup")
    linear.solve_dirichlet = _in_phase(linear.solve_dirichlet, "solve")
    configured_ksp = solver.numerics.linear.configured_ksp

    def monitored_ksp(*args, **kwargs):
        ksp = configured_ksp(*args, **kwargs)
        ksp.setMonitor(_count_iterations)
        return ksp

    solver.numerics.linear.configured_ksp = monitored_ksp


def last_mesh():
    """The ElectrodeMesh that build_mesh made last."""
    return _meshes[0]


def event(name: str) -> dict:
    """PETSc's record of event `name` on this rank: its "time" (s), "count", ..."""
    return PETSc.Log.Event(name).getPerfInfo()


def peak_memory_mb(comm) -> float:
    """The peak resident memory of all ranks together, MB (ru_maxrss is in kB on Linux)."""
    return comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024.0


@contextmanager
def measured(comm, record: dict):
    """Fill `record` with the phases of the run inside the block: each the largest over
    the ranks (the slowest rank sets the pace)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    yield record
    total = time.perf_counter() - started
    record["cpu_s"] = {**_cpu_s, "total": time.process_time() - cpu_started}
    setup = event("KSPSetUp")["time"] + event("PCSetUp")["time"]
    phases = {"mesh_s": _seconds["mesh"], "assemble_s": _seconds["assemble"],
              "setup_s": setup, "solve_s": event("KSPSolve")["time"],
              "total_s": total}
    record.update({key: comm.allreduce(value, op=MPI.MAX) for key, value in phases.items()})
    record["iterations"] = _iterations["krylov"]
    record["linear_solves"] = event("KSPSolve")["count"]
    record["peak_mem_mb"] = peak_memory_mb(comm)
    _close_phase_memory()
    record["memory_by_phase_mb"] = {"peak": dict(_peak_mb), "left_at_end": dict(_left_mb)}
    record["ranks"] = comm.size
