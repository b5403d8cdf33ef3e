"""summary.json assembled from parts: the run's header and each stage's or post-processor's
part, in the order the pipeline (solver/stages/pipeline.py) lists them.

The keys and their order are those the report, the sweep's collector and the tests read
(docs/outputs.md); a part is a dict of top-level keys, and no key comes from two parts.
"""

import platform

import dolfinx

from solver.io.provenance import git_commit, sinterfem_version, timestamp


def header(case, emesh, dofs: int, comm, host: bool = True) -> dict:
    """What was run, with what, where, when and how large: case, case_file, versions, the
    git commit of the source, host (not in the pull-off's summary), the time the summary was
    made (UTC), ranks, dofs (of the stage's problem), cells, geometry."""
    msh = emesh.mesh
    return {
        "case": case.case.name,
        "case_file": str(case.source),
        "sinterfem_version": sinterfem_version(),
        "git_commit": git_commit(),
        "dolfinx_version": dolfinx.__version__,
        **({"host": platform.node()} if host else {}),
        "timestamp": timestamp(),
        "ranks": comm.size,
        "dofs": dofs,
        "cells": msh.topology.index_map(msh.topology.dim).size_global,
        "geometry": {"kind": case.geometry.kind, **emesh.geometry.metrics},
    }


def mesh_tags(emesh) -> dict:
    """The material of each cell tag and the boundary of each facet tag."""
    geometry = emesh.geometry
    return {"materials": {str(tag): name for tag, name in geometry.cell_materials.items()},
            "boundaries": {str(tag): name for name, tag in geometry.facet_groups.items()}}


def assemble(*parts: dict) -> dict:
    """One summary from its parts, in their order. `warnings` (a list of strings) may come
    from several parts: they are joined, in order, into one list, the last key."""
    summary, warnings = {}, []
    for part in parts:
        part = dict(part)
        warnings += part.pop("warnings", [])
        repeated = summary.keys() & part.keys()
        if repeated:
            raise ValueError(f"summary keys from two parts: {sorted(repeated)}")
        summary.update(part)
    summary["warnings"] = warnings
    return summary
