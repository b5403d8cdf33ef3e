"""What a result means: the largest von Mises stress of the stress field per material, the
delamination condition of each interface, the warnings of elastic materials stressed beyond
their flow stress, and the verdict over every condition (docs/outputs.md, "Verdict").

The conditions are rows {"condition", "value", "limit", "unit", "pass", "verdict"}
(solver.physics.kinetics.condition_row): the process window's and one per interface, "no
delamination at NAME", whose value is the interface's largest risk index over the schedule
(a debond does not heal when the stress falls again) against the limit 1: the quadratic
traction criterion reaches 1 where the averaged tractions reach the interface's strength,
so risk >= 1 predicts delamination there.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from solver.materials.constitutive import von_mises
from solver.physics.kinetics import condition_row
from solver.report.units import format_location

if TYPE_CHECKING:  # the sweep's driver reads RISK_LIMIT without initialising MPI
    from dolfinx import fem

logger = logging.getLogger(__name__)

RISK_LIMIT = 1.0  # the risk index at which the averaged tractions reach the strength


class VonMisesMaxima:
    """The largest von Mises stress of a stress field per material and where it is.

    The field is the problem's stress in DG of one degree below the displacement (P2
    displacement: DG1): the element's own stress for elastic materials, the cell-wise L2
    projection of the quadrature-point stress for inelastic ones. Von Mises is evaluated at
    the field's nodes (DG1: each cell's vertices). On a straight-sided cell a DG1 stress is
    affine in x and von Mises a (convex) norm of its deviator, so the largest value over the
    cell is at a vertex: for P2 elements the number is the maximum of the stress field itself,
    not of its cell averages (which `CellStress` gives, as the history does). Only owned
    cells count, and ties go to the smallest coordinates, so 1 and N ranks agree.
    """

    def __init__(self, stress: fem.Function, cell_tags, cell_materials: dict):
        space = stress.function_space
        msh = space.mesh
        self.stress, self.comm = stress, msh.comm
        owned = msh.topology.index_map(msh.topology.dim).size_local
        tag_of_cell = np.full(owned, -1, dtype=np.int64)
        local = cell_tags.indices < owned
        tag_of_cell[cell_tags.indices[local]] = cell_tags.values[local]
        cell_nodes = space.dofmap.list[:owned]
        self.coordinates = space.tabulate_dof_coordinates()[:, :msh.geometry.dim]
        self.nodes = {}  # material: the field's nodes in its owned cells
        for name in dict.fromkeys(cell_materials.values()):
            tags = [tag for tag, material in cell_materials.items() if material == name]
            self.nodes[name] = np.unique(cell_nodes[np.isin(tag_of_cell, tags)].ravel())

    def evaluate(self) -> dict:
        """{material: {"max": von Mises [Pa], "at": [x, y(, z)] [m]}} of the stress field now
        (collective)."""
        values = von_mises(self.stress.x.array.reshape(-1, 3, 3))
        local = {}
        for name, nodes in self.nodes.items():
            if len(nodes):
                best = nodes[np.argmax(values[nodes])]
                local[name] = (float(values[best]), [float(c) for c in self.coordinates[best]])
        maxima = {}
        for name in self.nodes:
            candidates = [found[name] for found in self.comm.allgather(local) if name in found]
            if candidates:
                value, at = max(candidates, key=lambda c: (c[0], [-x for x in c[1]]))
                maxima[name] = {"max": value, "at": at}
        return maxima


def delamination_rows(interfaces: dict, stage: str = "schedule") -> list[dict]:
    """One condition per interface: its largest risk over the stage ("schedule": the
    interfaces of the process stage, with peak_over_history; "lithiation": the swelling
    stage's, with peak_over_swelling) below RISK_LIMIT."""
    peaks, during = {"schedule": ("peak_over_history", ""),
                     "lithiation": ("peak_over_swelling", " during lithiation")}[stage]
    rows = []
    for name, data in interfaces.items():
        peak = data.get(peaks, {}).get("max_risk")
        risk = max(data["max_risk"], peak["value"]) if peak else data["max_risk"]
        rows.append(condition_row(f"no delamination at {name}{during} (largest risk index "
                                  f"over the {stage} below {RISK_LIMIT:g})", float(risk),
                                  RISK_LIMIT, "1", bool(risk < RISK_LIMIT)))
        if risk >= RISK_LIMIT:
            logger.warning("delamination predicted at %s%s: risk index %.3g >= %g (%.1f %% of "
                           "its length at risk >= 1 at the end)", name, during, risk,
                           RISK_LIMIT, 100 * data["critical_fraction"])
    return rows


def verdict(*condition_lists: list[dict]) -> dict:
    """Over every condition: "pass" (none of those that apply fails), the failed ones and
    those that do not apply."""
    rows = [row for rows in condition_lists for row in rows]
    failed = [row["condition"] for row in rows if row["verdict"] == "fail"]
    return {"pass": not failed, "failed": failed,
            "not_applicable": [row["condition"] for row in rows if row["verdict"] == "n/a"]}


def flow_stress_warnings(case, peaks: dict) -> list[str]:
    """A warning for each elastic material whose largest von Mises stress over the schedule
    (`peaks`: {material: {"max", "at", "time", "temperature"}}) exceeds its flow stress
    (the library's swelling_flow_stress: annealed copper 70 MPa, polyimide 69 MPa): an
    elastic model overstates the stress there, the plastic one (behaviour = "plastic",
    docs/constitutive.md) lets it yield."""
    warnings = []
    for name, peak in peaks.items():
        material = case.materials[name]
        flow_stress = material.swelling_flow_stress
        if material.behaviour not in (None, "elastic") or flow_stress is None \
                or peak["max"] <= flow_stress:
            continue
        warnings.append(
            f"{name} is elastic but its von Mises stress reaches {peak['max'] / 1e6:.0f} MPa "
            f"(at {format_location(peak['at'])}, {peak['temperature'] - 273.15:.0f} degC), "
            f"above its flow stress {flow_stress / 1e6:.0f} MPa: the stress there is "
            f"overstated; set [materials.{name}] behaviour = \"plastic\" "
            f"(docs/constitutive.md) to let it yield")
    for message in warnings:
        logger.warning("%s", message)
    return warnings
