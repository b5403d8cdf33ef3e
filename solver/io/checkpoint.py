"""Checkpoints of a running stage, so that it can resume after a crash or an interrupt.

A checkpoint holds the displacement and every material point's internal state keyed by the
mesh's *original* cell index (the order Gmsh gave the cells on rank 0), not by the ranks'
local numbering: Gmsh rebuilds the same mesh from the same case, so a run restarts on any
number of ranks. The driver's own progress (step, history rows, peaks) goes with it. The
file is written by rank 0, to a temporary name first and then renamed, so a crash or a full
disk while writing leaves the previous checkpoint intact.

`write` / `read`: the process stage's problem (displacement and material points).
`write_fields` / `read_fields`: any stage's state as named arrays on the dofs of a space
(its functions' values, or per-node arrays on a space's dof blocks such as the cohesive
interface's damage), keyed the same way, with the stage's progress; `progress` reads the
progress alone (which stage the checkpoint is of).
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
    keys, values = _keyed(msh, *_blocks(problem.u))
    arrays = {"u_cells": _gather(comm, keys), "u_values": _gather(comm, values)}
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
            "temperature": float(getattr(problem, "temperature", 0.0)),
            # the process eigenstrains of the last step: the next one interpolates from them
            "eigenstrain": dict(getattr(problem, "_last_eigenstrain", {}))}


def read(path: Path, problem) -> dict:
    """Restore `problem` from a checkpoint; returns the driver's progress."""
    msh = problem.emesh.mesh
    data = _load(path, msh.comm)
    original = msh.topology.original_cell_index
    dofmap = problem.u.function_space.dofmap
    _unkeyed(msh, dofmap, data["u_cells"], data["u_values"],
             problem.u.x.array.reshape(-1, dofmap.bs))
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
    if hasattr(problem, "_last_eigenstrain"):
        problem._last_eigenstrain = dict(stored.get("eigenstrain", {}))
    logger.info("restarting from the checkpoint at step %d (t = %.6g s)", progress["step"],
                progress["time"])
    return progress


def _keyed(msh, dofmap, blocks: np.ndarray):
    """(original cell index of each owned cell, the values of `blocks` (one row per dof
    block of `dofmap`) at the cell's dofs, one row per cell)."""
    cells = _owned_cells(msh)
    original = msh.topology.original_cell_index
    return (original[cells].astype(np.int64),
            blocks[dofmap.list[cells]].reshape(len(cells), -1))


def _unkeyed(msh, dofmap, keys, values, blocks: np.ndarray):
    """Set `blocks` (this rank's dof blocks, ghosts too) from the cell-keyed values."""
    original = msh.topology.original_cell_index
    local_cells = np.arange(len(original), dtype=np.int32)
    order = np.argsort(keys)
    found = order[np.searchsorted(keys, original[local_cells], sorter=order)]
    dofs = dofmap.list[local_cells]
    blocks[dofs] = values[found].reshape(*dofs.shape, *blocks.shape[1:])


def _blocks(entry):
    """A function, or (dofmap, array of dof blocks): its dofmap and its values by block."""
    if isinstance(entry, tuple):
        dofmap, array = entry
        return dofmap, array.reshape(len(array), -1)
    dofmap = entry.function_space.dofmap
    return dofmap, entry.x.array.reshape(-1, dofmap.bs)


def write_fields(path: Path, msh, fields: dict, progress: dict):
    """Write `fields` ({name: a function, or (dofmap, array with one row per dof block)})
    and `progress` (JSON-serializable) to `path` (collective; rank 0 writes)."""
    comm = msh.comm
    arrays = {}
    for name, entry in fields.items():
        keys, values = _keyed(msh, *_blocks(entry))
        arrays[f"{name}/cells"] = _gather(comm, keys)
        arrays[f"{name}/values"] = _gather(comm, values)
    if comm.rank == 0:
        temporary = path.with_name(path.name + ".writing.npz")
        np.savez(temporary, progress=json.dumps(progress), **arrays)
        os.replace(temporary, path)
        logger.debug("%s checkpoint at step %d written to %s", progress.get("stage"),
                     progress.get("step", -1), path)
    comm.barrier()


def read_fields(path: Path, msh, fields: dict) -> dict:
    """Set `fields` (as write_fields's, the same names) from `path`; returns the progress."""
    data = _load(path, msh.comm)
    for name, entry in fields.items():
        dofmap, blocks = _blocks(entry)
        _unkeyed(msh, dofmap, data[f"{name}/cells"], data[f"{name}/values"], blocks)
        if not isinstance(entry, tuple):
            entry.x.scatter_forward()
    return json.loads(str(data["progress"]))


def _load(path: Path, comm) -> dict:
    """Every array of the checkpoint at `path`, read on rank 0, on every rank."""
    data = None
    if comm.rank == 0:
        with np.load(path) as stored:
            data = {key: stored[key] for key in stored.files}
    return comm.bcast(data, root=0)


def progress(path: Path, comm) -> dict | None:
    """The progress stored in the checkpoint at `path` (None: there is none), on every
    rank."""
    found = None
    if comm.rank == 0 and path.exists():
        with np.load(path) as stored:
            found = json.loads(str(stored["progress"]))
    return comm.bcast(found, root=0)
