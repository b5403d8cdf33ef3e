"""Heat transfer at the furnace scale: an electrode coil or stack heated by the furnace.

At the micrometre scale the electrode is isothermal during a ramp; at the scale of a wound
roll or a stack of sheets it is not: heat crosses hundreds of wraps of foil, coating and gas
gaps, and the middle of a roll trails the furnace by tens of kelvin. This module computes
that lag, so the unit-cell mechanics can follow the temperature a position in the coil sees
rather than the furnace set point.

The coil is a homogenized, anisotropic conductor: k_through across the wraps or sheets (in
series: coating, gas gaps, foil), k_along them (in parallel: the copper foil carries most of
it), with an effective density and specific heat. Transient conduction,

    rho c dT/dt = div(K grad T)                              in the body
    -n . K grad T = h (T - T_f) + eps sigma (T^4 - T_f^4)     on the heated faces,

with T_f(t) the furnace set point (atmosphere and walls), is solved with P1 elements and
backward Euler; the radiation term makes each step nonlinear and is solved by Newton's
method to convergence. The domain is 2D: the (r, z) half-plane of an axisymmetric roll
(every integral weighted by r), or the cross-section of a stack of sheets. Both bodies are
symmetric about their mid-planes and heated alike on both sides, so only the half (roll) or
quarter (stack) next to the heated faces is meshed, with zero flux on the symmetry planes.
"""

import csv
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import geometry as dolfinx_geometry
from dolfinx import mesh as dolfinx_mesh
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from solver.case.tables import rule_broken as _rule_broken
from solver.case.units import SIQuantity
from solver.io import units
from solver.materials.constitutive import TemperatureTable
from solver.materials.library import TABLE_NOTE, TemperatureDependent
from solver.numerics import compat
from solver.numerics.linear import (
    DIRECT_SOLVER,
    check_converged,
    configured_ksp,
    scalar_amg_solver,
    uses_direct_solver,
)
from solver.numerics.newton import Increment, NewtonSettings, newton_solve

logger = logging.getLogger(__name__)

STEFAN_BOLTZMANN = 5.670374419e-8  # W/m^2/K^4 (exact since the 2019 SI)

# Face names a case file may list under `insulated`, by geometry.
FACES = {"roll": ("inner", "outer", "ends"), "stack": ("faces", "edges")}
# Positions whose temperature history is always recorded, by geometry.
NAMED_POSITIONS = {"roll": ("inner", "middle", "outer"), "stack": ("surface", "quarter", "centre")}
DEFAULT_FOLLOW = {"roll": "middle", "stack": "centre"}
# The default mesh resolves the smallest extent of the meshed domain with this many cells.
DEFAULT_CELLS_ACROSS = 20
NEWTON_RTOL = 1e-10  # largest Newton correction relative to the largest temperature
# CG + BoomerAMG (mass + conduction + exchange: symmetric positive definite) stops when the
# heat imbalance is 1e-8 of the step's: the temperature is then within about 1e-8 of the
# step's change of it (1e-6 K for 100 K), also where a linear step is solved once.
ITERATIVE_RTOL = 1e-8
NEWTON_MAX_ITERATIONS = 30


def _range_error(message: str, **values) -> PydanticCustomError:
    # "range" errors carry their message as is into the case file's one-line error.
    return PydanticCustomError("range", message, values)


def _mm(length: float) -> str:
    return f"{length * 1e3:g} mm"


def _check_emissivity(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise _range_error("expected an emissivity between 0 and 1, got {value}", value=value)
    return value


def _check_not_negative(value: float) -> float:
    if value < 0.0:
        raise _range_error(
            "expected a heat transfer coefficient >= 0 (e.g. '10 W/m^2/K'), got {value}",
            value=value,
        )
    return value


PositiveLength = Annotated[float, SIQuantity("length", positive=True)]
OptionalPositiveLength = Annotated[float | None, SIQuantity("length", positive=True)]
Coordinate = Annotated[float, SIQuantity("length")]
# k and c_p may be tables against temperature, read as the material library's tables are.
Conductivity = Annotated[float | TemperatureTable,
                         TemperatureDependent("thermal conductivity", positive=True)]
SpecificHeat = Annotated[float | TemperatureTable,
                         TemperatureDependent("specific heat", positive=True)]
HeatTransferCoefficient = Annotated[
    float, SIQuantity("heat transfer coefficient"), AfterValidator(_check_not_negative)
]


class FurnaceSection(BaseModel):
    """The optional [furnace] table: the coil or stack in the furnace and how it is heated.

    Material values are effective (homogenized) properties of the wound or stacked
    electrode; the defaults are placeholders (docs/furnace.md says where they come from).
    """

    model_config = ConfigDict(extra="forbid")

    geometry: Literal["roll", "stack"] = Field(
        description="an axisymmetric wound roll, or a stack of flat sheets (its cross-section)"
    )
    width: PositiveLength = Field(
        description="roll: length along its axis; stack: width of the sheets in the "
        "cross-section"
    )
    inner_radius: OptionalPositiveLength = Field(
        None, description="roll only: radius of the bore (innermost wrap)",
        json_schema_extra={"default_text": "required for a roll"},
    )
    outer_radius: OptionalPositiveLength = Field(
        None, description="roll only: radius of the outermost wrap",
        json_schema_extra={"default_text": "required for a roll"},
    )
    thickness: OptionalPositiveLength = Field(
        None, description="stack only: height of the stack, across the sheets",
        json_schema_extra={"default_text": "required for a stack"},
    )
    k_through: Conductivity = Field(
        "0.7 W/m/K", validate_default=True,
        description="effective thermal conductivity across the wraps or sheets (placeholder)"
        + TABLE_NOTE,
    )
    k_along: Conductivity = Field(
        "40 W/m/K", validate_default=True,
        description="effective thermal conductivity along the wraps or sheets (placeholder)"
        + TABLE_NOTE,
    )
    density: Annotated[float, SIQuantity("density", positive=True)] = Field(
        "2300 kg/m^3", validate_default=True,
        description="effective density of the coil (placeholder)",
    )
    specific_heat: SpecificHeat = Field(
        "600 J/kg/K", validate_default=True,
        description="effective specific heat of the coil (placeholder)" + TABLE_NOTE,
    )
    heat_transfer_coefficient: HeatTransferCoefficient = Field(
        "10 W/m^2/K", validate_default=True,
        description="convective heat transfer coefficient to the furnace atmosphere",
    )
    emissivity: Annotated[float, AfterValidator(_check_emissivity)] = Field(
        0.8, description="emissivity of the heated faces, for radiation to the furnace walls"
    )
    insulated: list[Literal["inner", "outer", "ends", "faces", "edges"]] = Field(
        default_factory=list, json_schema_extra={"default_text": "none: every face heated"},
        description="faces that exchange no heat: roll inner, outer, ends; stack faces "
        "(top and bottom), edges",
    )
    probes: dict[str, tuple[Coordinate, Coordinate]] = Field(
        default_factory=dict, json_schema_extra={"default_text": "none"},
        description="more positions to record, NAME = [r, z] (roll, z from one end) or "
        "[x, y] (stack, from a bottom corner)",
    )
    follow: str | None = Field(
        None, description="the position whose history the unit-cell mechanics follows",
        json_schema_extra={"default_text": "middle (roll), centre (stack)"},
    )
    mesh_size: OptionalPositiveLength = Field(
        None, description="target element size",
        json_schema_extra={"default_text": "1/20 of the smallest half-extent"},
    )
    time_step: Annotated[float, SIQuantity("time", positive=True)] = Field(
        "1 min", validate_default=True, description="largest time step of the heat solve"
    )
    cool_down: Annotated[float, SIQuantity("time")] = Field(
        0.0,
        description="time after the schedule, with the furnace at its final temperature, for "
        "the roll or stack to cool down (the residual state is taken at its end)",
    )

    @model_validator(mode="after")
    def _check_geometry_and_positions(self) -> "FurnaceSection":
        own = {"roll": ("inner_radius", "outer_radius"), "stack": ("thickness",)}
        for geometry, keys in own.items():
            for key in keys:
                given = getattr(self, key) is not None
                if geometry == self.geometry and not given:
                    raise _rule_broken(key, f"required for geometry = '{geometry}'")
                if geometry != self.geometry and given:
                    raise _rule_broken(key, f"only used with geometry = '{geometry}'")
        if self.geometry == "roll" and self.outer_radius <= self.inner_radius:
            raise _rule_broken(
                "outer_radius",
                f"must be larger than inner_radius ({_mm(self.inner_radius)}), "
                f"got {_mm(self.outer_radius)}",
            )
        faces = FACES[self.geometry]
        for index, face in enumerate(self.insulated):
            if face not in faces:
                raise _rule_broken(
                    f"insulated[{index}]",
                    f"a {self.geometry} has the faces {', '.join(faces)}; got '{face}'",
                )
        if set(faces) <= set(self.insulated):
            raise _rule_broken("insulated", "at least one face must exchange heat")
        if self.heat_transfer_coefficient == 0 and self.emissivity == 0:
            raise _rule_broken(
                "heat_transfer_coefficient",
                "with emissivity = 0 the coil needs h > 0 to exchange heat",
            )
        body = Body.of(self)
        for name, point in self.probes.items():
            if name in NAMED_POSITIONS[self.geometry]:
                raise _rule_broken(f"probes.{name}", "is a built-in position; choose a new name")
            if not body.contains(point):
                where = ", ".join(_mm(coordinate) for coordinate in point)
                raise _rule_broken(f"probes.{name}", f"[{where}] is outside the "
                                   f"{self.geometry} ({body.extent_text()})")
        if self.follow is None:
            self.follow = DEFAULT_FOLLOW[self.geometry]
        names = [*NAMED_POSITIONS[self.geometry], *self.probes]
        if self.follow not in names:
            raise _rule_broken("follow", f"unknown position '{self.follow}'; known: "
                               f"{', '.join(names)}")
        if self.mesh_size is None:
            self.mesh_size = float(min(body.upper - body.lower)) / DEFAULT_CELLS_ACROSS
        return self


@dataclass(frozen=True)
class Body:
    """The meshed part of a coil: a rectangle in domain coordinates (x, y).

    Roll: x = r in [inner, outer], y = distance from the nearer end face in [0, width/2],
    axisymmetric. Stack: x = distance from the nearer sheet edge in [0, width/2], y =
    distance from the nearer top or bottom face in [0, thickness/2]. The far sides are
    mid-planes of symmetry. Positions are given in body coordinates (z from one end of a
    roll; x, y from a bottom corner of a stack) and folded into the meshed part.
    """

    geometry: str
    lower: np.ndarray  # (x, y) of the meshed rectangle's lower corner
    upper: np.ndarray
    full_extent: np.ndarray  # the body's extent in body coordinates (for folding)
    axisymmetric: bool
    conductivity: tuple[float | TemperatureTable, float | TemperatureTable]  # (k_xx, k_yy)
    faces: dict[str, tuple[int, float]]  # face name -> (axis, coordinate) of the plane
    positions: dict[str, tuple[float, float]]  # name -> body coordinates

    @classmethod
    def of(cls, section: FurnaceSection) -> "Body":
        width = section.width
        if section.geometry == "roll":
            r_in, r_out = section.inner_radius, section.outer_radius
            positions = {"inner": (r_in, width / 2), "middle": ((r_in + r_out) / 2, width / 2),
                         "outer": (r_out, width / 2)}
            return cls(
                "roll", np.array([r_in, 0.0]), np.array([r_out, width / 2]),
                np.array([np.nan, width]), True,
                # Radial heat crosses the wraps; axial heat runs along them.
                (section.k_through, section.k_along),
                {"inner": (0, r_in), "outer": (0, r_out), "ends": (1, 0.0)},
                {**positions, **section.probes},
            )
        thickness = section.thickness
        positions = {"surface": (width / 2, 0.0), "quarter": (width / 2, thickness / 4),
                     "centre": (width / 2, thickness / 2)}
        return cls(
            "stack", np.array([0.0, 0.0]), np.array([width / 2, thickness / 2]),
            np.array([width, thickness]), False,
            # The sheets lie along x: heat along x runs along them, along y crosses them.
            (section.k_along, section.k_through),
            {"edges": (0, 0.0), "faces": (1, 0.0)},
            {**positions, **section.probes},
        )

    def to_domain(self, point: Sequence[float]) -> np.ndarray:
        """Body coordinates folded into the meshed part by the mid-plane symmetries."""
        folded = np.array(point, dtype=float)
        for axis, extent in enumerate(self.full_extent):
            if not np.isnan(extent):  # a roll's radius is not folded
                folded[axis] = min(folded[axis], extent - folded[axis])
        return folded

    def contains(self, point: Sequence[float]) -> bool:
        folded = self.to_domain(point)
        tolerance = 1e-9 * max(self.upper)
        return bool(np.all(folded >= self.lower - tolerance)
                    and np.all(folded <= self.upper + tolerance))

    def extent_text(self) -> str:
        if self.geometry == "roll":
            return (f"r from {_mm(self.lower[0])} to {_mm(self.upper[0])}, "
                    f"z from 0 to {_mm(self.full_extent[1])}")
        return f"x from 0 to {_mm(self.full_extent[0])}, y from 0 to {_mm(self.full_extent[1])}"


@dataclass(frozen=True)
class FurnaceHistory:
    """Temperatures at named positions of the coil along the schedule (SI: s, K).

    The same on every rank.
    """

    times: np.ndarray  # s, from 0 (the initial state) to t_end
    furnace: np.ndarray  # K, the furnace set point at `times`
    temperatures: dict[str, np.ndarray]  # position name -> K at `times`
    positions: dict[str, tuple[float, float]]  # position name -> body coordinates, m
    follow: str  # the position the mechanics follows
    dofs: int
    newton_iterations: int  # over the whole history

    def lag(self, name: str) -> np.ndarray:
        """Furnace minus position: positive while the position trails a heating furnace."""
        return self.furnace - self.temperatures[name]

    def max_lag(self, name: str | None = None) -> float:
        """The largest furnace-minus-position over the history (the lag on heating)."""
        return float(self.lag(name or self.follow).max())

    def max_cooling_lag(self, name: str | None = None) -> float:
        """The largest position-minus-furnace over the history (the lag on cooling)."""
        name = name or self.follow
        return float((self.temperatures[name] - self.furnace).max())

    def max_spread(self) -> float:
        """The largest difference between the recorded positions at one time."""
        table = np.vstack(list(self.temperatures.values()))
        return float((table.max(axis=0) - table.min(axis=0)).max())

    def temperature_at(self, times, name: str | None = None) -> np.ndarray:
        """Temperature of a position (default: the followed one), linear between steps."""
        return np.interp(np.asarray(times, dtype=float), self.times,
                         self.temperatures[name or self.follow])

    def summary(self) -> dict:
        """Numbers for a run's summary.json."""
        return {
            "follow": self.follow,
            "dofs": self.dofs,
            "time_steps": len(self.times) - 1,
            "newton_iterations": self.newton_iterations,
            "max_spread": self.max_spread(),
            "positions": {
                name: {"coordinates": list(self.positions[name]),
                       "max_lag": self.max_lag(name),
                       "max_cooling_lag": self.max_cooling_lag(name),
                       "final_temperature": float(temperatures[-1])}
                for name, temperatures in self.temperatures.items()
            },
        }

    def write_csv(self, path: str | Path) -> None:
        """One row per time: time_s, furnace_K, then each position (NAME_K). Call on one
        rank."""
        names = list(self.temperatures)
        with open(path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(units.header(["time", "furnace", *names],
                                         units={name: "K" for name in names}))
            columns = [self.times, self.furnace, *(self.temperatures[n] for n in names)]
            for row in zip(*columns, strict=True):
                writer.writerow([f"{value:.10g}" for value in row])


class _PointEvaluator:
    """Values of a P1 function at fixed points, the same on every rank.

    The containing cells are found once; each rank evaluates the points in its owned
    cells, and a point on a partition boundary (found on two ranks) gets the mean.
    """

    def __init__(self, msh, points: np.ndarray):
        tdim = msh.topology.dim
        points3 = np.column_stack([points, np.zeros(len(points))])
        tree = dolfinx_geometry.bb_tree(msh, tdim)
        candidates = dolfinx_geometry.compute_collisions_points(tree, points3)
        owned = msh.topology.index_map(tdim).size_local
        nodes = compat.cell_geometry_nodes(msh)
        indices, cells = [], []
        for i, point in enumerate(points):
            for cell in candidates.links(i):
                if cell >= owned:
                    continue
                vertices = msh.geometry.x[nodes[cell][:3], :2]
                weights = np.linalg.solve((vertices[1:] - vertices[0]).T, point - vertices[0])
                if weights.min() >= -1e-9 and weights.sum() <= 1 + 1e-9:
                    indices.append(i)
                    cells.append(cell)
                    break
        self.comm = msh.comm
        self.count = len(points)
        self.indices = np.array(indices, dtype=np.int64)
        self.points3 = points3[self.indices]
        self.cells = np.array(cells, dtype=np.int32)
        found = np.zeros(self.count)
        found[self.indices] = 1.0
        self.found = self.comm.allreduce(found)
        if (self.found == 0).any():
            raise ValueError(f"point {points[self.found == 0][0]} is outside the mesh")

    def __call__(self, function: fem.Function) -> np.ndarray:
        values = np.zeros(self.count)
        if len(self.cells):
            # eval drops the value axis for a single point: reshape to (points, 1).
            evaluated = function.eval(self.points3, self.cells)
            values[self.indices] = np.reshape(evaluated, (len(self.cells), -1))[:, 0]
        return self.comm.allreduce(values) / self.found


def _piecewise_linear(table: TemperatureTable, temperature, constant):
    """The table's interpolation of `temperature` as a UFL expression: linear between the
    points, constant beyond the first and the last (as TemperatureTable.__call__)."""
    points = [constant(point) for point in table.temperatures]
    values = [constant(value) for value in table.values]
    expression = values[0]
    for i in range(len(points) - 1):
        clamped = ufl.min_value(ufl.max_value(temperature, points[i]), points[i + 1])
        expression = expression + (values[i + 1] - values[i]) / (points[i + 1] - points[i]) \
            * (clamped - points[i])
    return expression


def _step_times(t_end: float, dt_max: float, breakpoints: Sequence[float]) -> np.ndarray:
    """Times from 0 to t_end, every breakpoint among them, no step longer than dt_max."""
    marks = [0.0, t_end]
    for point in sorted(breakpoints):
        # A breakpoint within round-off of another would make a step of zero length.
        if 0.0 < point < t_end and min(abs(point - m) for m in marks) > 1e-9 * t_end:
            marks.append(float(point))
    marks.sort()
    times = [0.0]
    for start, end in zip(marks[:-1], marks[1:], strict=True):
        count = max(1, math.ceil((end - start) / dt_max - 1e-9))
        times.extend(start + (end - start) * np.arange(1, count + 1) / count)
    return np.array(times)


class FurnaceProblem:
    """The transient heat problem of one coil or stack, stepped by `advance`."""

    HEATED = 1  # facet tag of the faces that exchange heat with the furnace

    def __init__(self, section: FurnaceSection, comm, initial_temperature: float,
                 solver=None):
        self.section = section
        self.body = body = Body.of(section)
        counts = [max(1, math.ceil(extent / section.mesh_size - 1e-9))
                  for extent in body.upper - body.lower]
        self.mesh = msh = dolfinx_mesh.create_rectangle(
            comm, [body.lower, body.upper], counts, dolfinx_mesh.CellType.triangle)
        self.space = fem.functionspace(msh, ("Lagrange", 1))
        self.dofs = self.space.dofmap.index_map.size_global
        self.temperature = fem.Function(self.space, name="T")
        self.temperature.x.array[:] = initial_temperature
        self.previous = fem.Function(self.space, name="T_previous")
        self.previous.x.array[:] = initial_temperature

        def constant(value):
            return fem.Constant(msh, PETSc.ScalarType(value))

        def property_at_previous(value):
            # A table is evaluated at the previous step's temperature (lagged), which keeps
            # each step's problem as linear as the constant-property one.
            if isinstance(value, TemperatureTable):
                return _piecewise_linear(value, self.previous, constant)
            return constant(value)

        # Every parameter is a Constant, so every coil with the same geometry kind (and
        # table lengths) shares one compiled form instead of compiling one per value.
        self.furnace_temperature = constant(initial_temperature)
        self.dt = constant(1.0)
        k_xx, k_yy = (property_at_previous(k) for k in body.conductivity)
        if isinstance(section.specific_heat, TemperatureTable):
            heat_capacity = constant(section.density) * property_at_previous(
                section.specific_heat)
        else:
            heat_capacity = constant(section.density * section.specific_heat)
        h = constant(section.heat_transfer_coefficient)
        radiation = constant(section.emissivity * STEFAN_BOLTZMANN)
        self.linear = section.emissivity == 0.0
        # With a table the matrix changes with the previous temperature, every step.
        self.constant_properties = not any(
            isinstance(value, TemperatureTable) for value in (*body.conductivity,
                                                              section.specific_heat))

        ds = ufl.Measure("ds", domain=msh, subdomain_data=self._heated_facets())
        x = ufl.SpatialCoordinate(msh)
        # Axisymmetric: the 2 pi r of every volume and surface element, less the 2 pi.
        weight = x[0] if body.axisymmetric else 1.0
        T, T_old, T_f = self.temperature, self.previous, self.furnace_temperature
        v = ufl.TestFunction(self.space)
        conductivity = ufl.as_matrix([[k_xx, 0], [0, k_yy]])
        residual = (
            weight * (heat_capacity * (T - T_old) / self.dt * v
                      + ufl.inner(conductivity * ufl.grad(T), ufl.grad(v))) * ufl.dx
            + weight * (h * (T - T_f) + radiation * (T**4 - T_f**4)) * v * ds(self.HEATED)
        )
        jacobian = ufl.derivative(residual, T, ufl.TrialFunction(self.space))
        self.residual_form = fem.form(residual)
        self.jacobian_form = fem.form(jacobian)
        self.matrix = fem_petsc.create_matrix(self.jacobian_form)
        # Vectors of Functions: ghosted, as DOLFINx assembly writes into ghost entries too.
        # The Functions own the memory the vectors wrap, so they are kept.
        self._residual = fem.Function(self.space)
        self._correction = fem.Function(self.space)
        self.rhs, self.correction = self._residual.x.petsc_vec, self._correction.x.petsc_vec
        self._matrix_dt = None  # dt of the assembled matrix (a linear problem reuses it)
        if solver is None:
            from solver.case.solver_section import SolverSettings

            solver = SolverSettings()
        self.direct_solver = uses_direct_solver(solver.linear_solver, self.dofs,
                                                solver.direct_solver_max_dofs,
                                                self.space.mesh.geometry.dim)
        self.ksp = configured_ksp(comm, "furnace", DIRECT_SOLVER if self.direct_solver
                                  else scalar_amg_solver("cg", ITERATIVE_RTOL))
        self.ksp.setOperators(self.matrix)
        self.newton_iterations = 0
        self.newton = NewtonSettings(NEWTON_RTOL, NEWTON_MAX_ITERATIONS, criterion="increment",
                                     linear=self.linear)
        self._step_dt = self._temperature_scale = None  # of the step being solved

    def _heated_facets(self):
        msh = self.mesh
        fdim = msh.topology.dim - 1
        msh.topology.create_connectivity(fdim, msh.topology.dim)
        tolerance = 1e-9 * float(np.max(self.body.upper))
        heated = [
            dolfinx_mesh.locate_entities_boundary(
                msh, fdim, lambda x, a=axis, c=coordinate: np.abs(x[a] - c) < tolerance)
            for face, (axis, coordinate) in self.body.faces.items()
            if face not in self.section.insulated
        ]
        facets = np.unique(np.concatenate(heated)).astype(np.int32)
        return dolfinx_mesh.meshtags(msh, fdim, facets, np.full(len(facets), self.HEATED,
                                                                dtype=np.int32))

    def _assemble_matrix(self, dt: float):
        # The matrix of a linear problem depends only on dt: keep it, and with it its
        # factors (or its preconditioner).
        if self.linear and self.constant_properties and self._matrix_dt == dt:
            return
        self.matrix.zeroEntries()
        fem_petsc.assemble_matrix(self.matrix, self.jacobian_form)
        self.matrix.assemble()
        self._matrix_dt = dt

    def _assemble_residual(self):
        with self.rhs.localForm() as local:
            local.set(0.0)
        fem_petsc.assemble_vector(self.rhs, self.residual_form)
        self.rhs.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.rhs.scale(-1.0)

    def newton_increment(self) -> Increment:
        """Newton's hook: the correction at the current temperature; its size is the largest
        change relative to the largest temperature of the step."""
        self._assemble_matrix(self._step_dt)
        self._assemble_residual()
        self.ksp.solve(self.rhs, self.correction)
        check_converged(self.ksp, "the furnace heat solve")
        start = self.temperature.x.array.copy()

        def move(fraction: float):
            self.temperature.x.array[:] = start
            self.temperature.x.petsc_vec.axpy(fraction, self.correction)
            self.temperature.x.scatter_forward()

        return Increment(move, self.correction.norm(PETSc.NormType.NORM_INFINITY)
                         / self._temperature_scale)

    def advance(self, dt: float, furnace_temperature: float) -> int:
        """One backward Euler step to the furnace temperature at its end; Newton iterations
        (a linear problem, without radiation, is solved exactly by its first)."""
        self.previous.x.array[:] = self.temperature.x.array
        self.dt.value = dt
        self.furnace_temperature.value = furnace_temperature
        scale = max(float(np.abs(self.temperature.x.array).max(initial=0.0)),
                    abs(furnace_temperature))
        self._temperature_scale = self.mesh.comm.allreduce(scale, op=MPI.MAX)
        self._step_dt = dt
        iterations = newton_solve(self, self.newton, where=f"of the furnace heat solve at "
                                  f"T_f = {furnace_temperature:.6g} K, dt = {dt:g} s")
        self.newton_iterations += iterations
        return iterations

    def destroy(self):
        """Free the PETSc solver and matrix now, on every rank together (collective)."""
        self.ksp.destroy()
        self.matrix.destroy()


def solve_furnace(section: FurnaceSection, furnace_temperature: Callable[[float], float],
                  t_end: float, dt_max: float, comm, *,
                  initial_temperature: float | None = None,
                  breakpoints: Sequence[float] = (), solver=None) -> FurnaceHistory:
    """Heat the coil or stack of `section` from t = 0 to t_end in the furnace.

    furnace_temperature(t) is the set point in K (atmosphere and walls); the coil starts
    uniform at initial_temperature (default: the furnace at t = 0). Steps are at most dt_max
    and land on every breakpoint (the schedule's kinks, where the furnace ramp changes).
    solver: the case's [solver] settings, whose linear_solver and direct_solver_max_dofs
    choose LU or CG + BoomerAMG (None: their defaults).
    Collective on comm; the history is the same on every rank.
    """
    start = furnace_temperature(0.0) if initial_temperature is None else initial_temperature
    problem = FurnaceProblem(section, comm, float(start), solver)
    body = problem.body
    names = list(body.positions)
    probe = _PointEvaluator(problem.mesh,
                            np.array([body.to_domain(body.positions[n]) for n in names]))
    times = _step_times(t_end, dt_max, breakpoints)
    if comm.rank == 0:
        logger.info("furnace heat: %s, %d DOFs, %d time steps to %.6g s", section.geometry,
                    problem.dofs, len(times) - 1, t_end)
    furnace = np.array([furnace_temperature(t) for t in times], dtype=float)
    recorded = [probe(problem.temperature)]
    try:
        for step, (before, now) in enumerate(zip(times[:-1], times[1:], strict=True), start=1):
            iterations = problem.advance(now - before, furnace[step])
            recorded.append(probe(problem.temperature))
            if comm.rank == 0:
                logger.debug("furnace t = %.6g s, T_f = %.2f K, %s = %.2f K, %d Newton "
                             "iterations", now, furnace[step], section.follow,
                             recorded[-1][names.index(section.follow)], iterations)
    finally:
        # Not left to the garbage collector, which may run at different times on each rank.
        problem.destroy()
    recorded = np.array(recorded)
    return FurnaceHistory(
        times=times, furnace=furnace,
        temperatures={name: recorded[:, i] for i, name in enumerate(names)},
        positions=dict(body.positions), follow=section.follow, dofs=problem.dofs,
        newton_iterations=problem.newton_iterations,
    )
