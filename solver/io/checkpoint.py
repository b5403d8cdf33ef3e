"""Checkpoints of a running schedule, so that it can restart after a crash.

A checkpoint holds the displacement and every material point's internal state keyed by the
mesh's *original* cell index (the order Gmsh gave the cells on rank 0), not by the ranks'
local numbering: Gmsh rebuilds the same mesh from the same case, so a run restarts on any
number of ranks. The driver's own progress (step, history rows, peaks) goes with it. The
file is written by rank 0, to a temporary name first and then renamed, so a crash or a full
disk while writing leaves the previous checkpoint intact.
"""

import json
import logging
import os
from pathlib import Path

import numpy as np

from solver.errors import OutputError
from solver.io import output

logger = logging.getLogger(__name__)


def checkpoint_path(out) -> Path:
    """Beside the results directory, so that it survives a run that fails."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.checkpoint.npz"


def _owned_cells(msh):
    return np.arange(msh.topology.index_map(msh.topology.dim).size_local, dtype=np.int32)


def _gather(comm, array):
    parts = comm.gather(array, root=0)
    return np.concatenate(parts) if comm.rank == 0 else None


def write(path: Path, problem, progress: dict):
    """Write the state of `problem` and the driver's `progress` (JSON-serializable)."""
    msh = problem.emesh.mesh
    comm = msh.comm
    original = msh.topology.original_cell_index
    cells = _owned_cells(msh)
    space = problem.u.function_space
    block = space.dofmap.bs
    dofs = space.dofmap.list[cells]
    values = problem.u.x.array.reshape(-1, block)[dofs].reshape(len(cells), -1)
    arrays = {"u_cells": _gather(comm, original[cells].astype(np.int64)),
              "u_values": _gather(comm, values)}
    for name, (rows, *_) in getattr(problem, "material_points", {}).items():
        points = problem.points_per_cell
        owned = rows // points < len(cells)
        keys = original[rows[owned] // points].astype(np.int64) * points + rows[owned] % points
        arrays[f"{name}/keys"] = _gather(comm, keys)
        for variable, data in problem.states[name].items():
            arrays[f"{name}/{variable}"] = _gather(comm, np.asarray(data)[owned])
    failure = None
    if comm.rank == 0:
        progress = {**progress, "globals": problem_globals(problem)}
        temporary = path.with_name(path.name + ".writing.npz")
        try:
            np.savez(temporary, progress=json.dumps(progress), **arrays)
            os.replace(temporary, path)
        except OSError as error:  # a full disk: the previous checkpoint stays as it was
            temporary.unlink(missing_ok=True)
            failure = output.write_failure(path, error)
        else:
            logger.debug("checkpoint at step %d written to %s", progress["step"], path)
    failure = comm.bcast(None if failure is None else (failure.path, failure.reason), root=0)
    if failure is not None:  # every rank stops here, together
        raise OutputError(*failure)


def problem_globals(problem) -> dict:
    return {"out_of_plane_strain": float(problem.out_of_plane_strain.value)
            if hasattr(problem, "out_of_plane_strain") else 0.0,
            "face_displacement": float(getattr(problem, "face_displacement", 0.0)),
            "temperature": float(getattr(problem, "temperature", 0.0))}


def read(path: Path, problem) -> dict:
    """Restore `problem` from a checkpoint; returns the driver's progress."""
    msh = problem.emesh.mesh
    comm = msh.comm
    data = None
    if comm.rank == 0:
        with np.load(path) as stored:
            data = {key: stored[key] for key in stored.files}
    data = comm.bcast(data, root=0)
    original = msh.topology.original_cell_index
    space = problem.u.function_space
    block = space.dofmap.bs
    local_cells = np.arange(len(original), dtype=np.int32)
    order = np.argsort(data["u_cells"])
    found = order[np.searchsorted(data["u_cells"], original[local_cells], sorter=order)]
    values = data["u_values"][found].reshape(len(local_cells), -1, block)
    problem.u.x.array.reshape(-1, block)[space.dofmap.list[local_cells]] = values
    problem.u.x.scatter_forward()
    for name, (rows, *_) in getattr(problem, "material_points", {}).items():
        points = problem.points_per_cell
        keys = data[f"{name}/keys"]
        order = np.argsort(keys)
        wanted = original[rows // points].astype(np.int64) * points + rows % points
        found = order[np.searchsorted(keys, wanted, sorter=order)]
        problem.states[name] = {variable: data[f"{name}/{variable}"][found]
                                for variable in problem.states[name]}
    progress = json.loads(str(data["progress"]))
    stored = progress.pop("globals")
    if hasattr(problem, "face_displacement"):
        problem.out_of_plane_strain.value = stored["out_of_plane_strain"]
        problem.face_displacement = stored["face_displacement"]
        problem.temperature = stored["temperature"]
    logger.info("restarting from the checkpoint at step %d (t = %.6g s)", progress["step"],
                progress["time"])
    return progress
