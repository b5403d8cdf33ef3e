"""How far a run's headline numbers are from their mesh-converged values (`sinter run
--convergence`, docs/outputs.md "Discretization error").

The case is solved again with the element size that decides its interface numbers (the
geometry kind's FineMesh: interface_mesh_size for the collector cells, particle_mesh_size
for particles, mesh_size for layer stacks) halved, and halved again. For a quantity with
values f0, f1, f2 on the three meshes, the differences d1 = f1 - f0 and d2 = f2 - f1 have the
ratio q = d2 / d1. Where 0 < q < 1 the sequence converges monotonically, the error of a mesh
falls by q per halving (observed order p = log2(1/q)), and the remaining differences sum to
the geometric series d2 (q + q^2 + ...): Richardson's extrapolation

    f_limit = f2 + d2 q / (1 - q),

the same as f2 + (f2 - f1) / (2^p - 1) (L. F. Richardson, Phil. Trans. R. Soc. A 210,
1911; P. J. Roache, "Verification and Validation in Computational Science and
Engineering", 1998). The error estimate of the finest value is |f_limit - f2|. The order
is observed, never assumed: the averaged tractions at the re-entrant fillets converge slowly
(q about 0.66, p about 0.6, against the P2 element's 2 for smooth solutions), so a limit
from an assumed order would understate the error several times. A quantity whose
differences do not shrink (|q| >= 1: a traction at a sharp corner, singular) gets no limit;
where they alternate in sign and shrink (-1 < q < 0, the maximum moving between places as
the mesh changes) the limit lies between the last two values, and the last difference is
the error estimate.
"""

import logging
import math
from dataclasses import replace

from solver.case.casefile import mesh_size_problem
from solver.errors import UserError
from solver.geometry.registry import geometry_kind

logger = logging.getLogger(__name__)

# Within this relative distance of the extrapolated limit a headline number is accurate
# enough (issue 14: the shipped cases' meshes are chosen to meet it).
TARGET_RELATIVE_ERROR = 0.02

# Differences below this share of a quantity are the solver's, not the mesh's: the summary
# numbers agree to it between runs on 1 and 2 ranks (a bending curvature changes by 1e-9 of
# itself when a layer stack's mesh is halved).
SOLVER_NOISE = 1e-6

# The interface numbers the summary calls headline (solver/post/interface.py, each the
# final value along the interface): (key, unit).
INTERFACE_QUANTITIES = (("max_risk", "1"), ("max_normal_traction_averaged", "Pa"),
                        ("max_shear_traction_averaged", "Pa"), ("max_normal_traction", "Pa"),
                        ("max_shear_traction", "Pa"))


def refined_case(case, factor: int):
    """The case with its fine element size divided by `factor` (the same shape and physics);
    a UserError where the kind has no size to refine or the finer mesh would be too large."""
    kind = geometry_kind(case)
    if kind.fine_mesh is None:
        raise UserError(f"{case.source}: --convergence refines the case's mesh sizes, and a "
                        f"geometry of kind '{kind.name}' has none: refine the mesh file in the "
                        "tool that made it and compare the runs")
    geometry = kind.fine_mesh.refined(case.geometry, factor)
    problem = mesh_size_problem(geometry, case.case.dim)
    if problem is not None:
        key, why = problem
        raise UserError(f"{case.source}: --convergence: {key} / {factor}: {why}")
    return replace(case, geometry=geometry)


def headline_numbers(summary: dict) -> dict[str, tuple[float, str]]:
    """{dotted summary key: (value, unit)} of a run's headline numbers: each interface's
    INTERFACE_QUANTITIES, each material's largest von Mises stress and the bending
    curvatures of a layer stack (the process stage's summary part and its bending part)."""
    found = {}
    for name, data in summary.get("interfaces", {}).items():
        for key, unit in INTERFACE_QUANTITIES:
            if key in data:
                found[f"interfaces.{name}.{key}"] = (data[key], unit)
    for name, data in summary.get("final", {}).get("von_mises_by_material", {}).items():
        found[f"final.von_mises_by_material.{name}.max"] = (data["max"], "Pa")
    for key, value in (summary.get("bending") or {}).items():
        found[f"bending.{key}"] = (value, "1/m")
    return found


def richardson(values: list[float]) -> dict:
    """The differences, ratio, observed order, extrapolated limit and error estimate of a
    sequence of values on meshes halved in turn (module docstring); two values give the
    difference alone. `status`: "converging" (0 < q < 1), "converged" (both differences
    within SOLVER_NOISE: the finest value is the limit),
    "oscillating" (q < 0), "not converging" (q >= 1) or "one refinement"."""
    differences = [b - a for a, b in zip(values, values[1:], strict=False)]
    result = {"values": list(values), "differences": differences, "ratio": None, "order": None,
              "limit": None, "error_estimate": None, "status": "one refinement"}
    if len(values) < 3:
        return result
    d1, d2 = differences[-2:]
    finest = values[-1]
    scale = max(abs(v) for v in values) or 1.0
    if abs(d1) <= SOLVER_NOISE * scale and abs(d2) <= SOLVER_NOISE * scale:
        return {**result, "ratio": 0.0, "limit": finest, "error_estimate": 0.0,
                "status": "converged"}
    if d1 == 0.0:
        return {**result, "status": "not converging"}
    ratio = d2 / d1
    result["ratio"] = ratio
    if abs(ratio) >= 1:
        return {**result, "status": "not converging"}
    limit = finest + d2 * ratio / (1 - ratio)
    if ratio < 0:
        # alternating differences that shrink: the limit lies between the last two values,
        # so the last difference bounds the finest value's error
        return {**result, "limit": limit, "error_estimate": abs(d2), "status": "oscillating"}
    return {**result, "order": math.log2(1 / ratio) if ratio > 0 else None, "limit": limit,
            "error_estimate": abs(limit - finest), "status": "converging"}


def convergence_rows(sequences: dict[str, list[float]], units: dict[str, str]) -> list[dict]:
    """One row per quantity: its name and unit, richardson()'s numbers, and the relative
    distance of the first (the case's own) and of the finest value from the limit."""
    rows = []
    for quantity, values in sequences.items():
        estimate = richardson(values)
        limit = estimate["limit"]
        relative = ({"relative_error": abs(values[0] - limit) / abs(limit),
                     "relative_error_finest": abs(values[-1] - limit) / abs(limit)}
                    if limit else {"relative_error": None, "relative_error_finest": None})
        rows.append({"quantity": quantity, "unit": units[quantity], **estimate, **relative})
    return rows


def convergence_summary(case, base: dict, base_time: float,
                        refined: list[tuple[dict, dict]]) -> dict:
    """summary.json's `convergence`: the refined key, one row per mesh (the case's, then
    each refined: its factor, fine element size, cells, DOFs, wall time) and one row per
    headline number (convergence_rows). base: the run's summary so far, base_time: its
    solve's wall time; refined: per refined mesh, its process part with bending and its
    mesh row."""
    kind = geometry_kind(case)
    numbers = headline_numbers(base)
    sequences = {key: [value] for key, (value, _) in numbers.items()}
    for part, _ in refined:
        for key, (value, _) in headline_numbers(part).items():
            if key in sequences:
                sequences[key].append(value)
    meshes = [{"refinement": 1, "fine_mesh_size": kind.fine_mesh.size(case.geometry),
               "cells": base["cells"], "dofs": base["dofs"], "wall_time": base_time}] \
        + [row for _, row in refined]
    rows = convergence_rows(sequences, {key: unit for key, (_, unit) in numbers.items()})
    return {"refined": f"geometry.{kind.fine_mesh.key}", "meshes": meshes, "quantities": rows}


def accuracy_warnings(convergence: dict) -> list[str]:
    """A warning for each interface's risk index whose value on the case's mesh is more than
    TARGET_RELATIVE_ERROR from the extrapolated limit, or has no limit (with one refined
    mesh: that changes by more than that)."""
    warnings = []
    for row in convergence["quantities"]:
        if not row["quantity"].endswith(".max_risk"):
            continue
        name = row["quantity"].split(".")[1]
        values = row["values"]
        if row["status"] == "one refinement":
            change = abs(values[1] - values[0]) / max(abs(values[0]), 1e-300)
            if change > TARGET_RELATIVE_ERROR:
                warnings.append(f"{name}: the max risk index changes by {100 * change:.1f} % "
                                f"({values[0]:.4g} to {values[1]:.4g}) with "
                                f"{convergence['refined']} halved: refine it")
        elif row["relative_error"] is None:
            warnings.append(f"{name}: the max risk index does not converge on the refined "
                            f"meshes ({row['status']}: " + ", ".join(
                                f"{v:.4g}" for v in row["values"]) + ")")
        elif row["relative_error"] > TARGET_RELATIVE_ERROR:
            warnings.append(
                f"{name}: the max risk index {row['values'][0]:.4g} is "
                f"{100 * row['relative_error']:.1f} % from its extrapolated limit "
                f"{row['limit']:.4g} (more than {100 * TARGET_RELATIVE_ERROR:g} %): refine "
                f"{convergence['refined']}")
    for message in warnings:
        logger.warning("%s", message)
    return warnings
