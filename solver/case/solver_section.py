"""[solver]: the numerics of a run (element degrees, time steps, tolerances)."""

from typing import Literal

from pydantic import Field, model_validator

from solver.case.tables import Table, rule_broken
from solver.case.units import PositiveTemperatureDifference


class SolverSettings(Table):
    degree: Literal[1, 2] = Field(
        2, description="polynomial degree of the displacement element (1 locks when layers bend)"
    )
    geometry_degree: Literal[1, 2] = Field(
        1, description="polynomial degree of the mesh geometry: 2 curves the element edges "
        "onto curved outlines and interfaces (gmsh setOrder(2) and its high-order "
        "optimization)")
    temperature_increment: PositiveTemperatureDifference = Field(
        "10 K", validate_default=True, description="largest temperature change in one time step"
    )
    rtol: float = Field(
        1e-11, gt=0, lt=1, description="relative tolerance of the Krylov solves of the schedule's "
        "elastic and inelastic problems, on the unpreconditioned residual (every interface "
        "traction the same on 1 and 2 ranks to 1e-6 of the largest)")
    linear_solver: Literal["auto", "direct", "iterative"] = Field(
        "auto", description="the linear solver of the nonlinear stages' Newton steps (swelling, "
        "the cohesive interface, diffusion, the furnace): LU (direct), a Krylov method with "
        "algebraic multigrid (iterative), or auto: LU up to direct_solver_max_dofs unknowns, "
        "iterative above")
    direct_solver_max_dofs: int | None = Field(
        None, ge=0, description="the most unknowns that linear_solver = \"auto\" factorizes "
        "(default: 100,000 in 2D, 10,000 in 3D, where the factorization's fill grows faster)")
    hold_steps: int = Field(
        16, ge=1, description="time steps per hold, growing geometrically, where a material "
        "has a history (plastic, viscoelastic); elastic cases take one step per hold"
    )
    time_error_tolerance: float = Field(
        1e-3, ge=0, lt=1,
        description="largest estimated local time-integration error of a hold step of a "
        "viscoelastic material, relative to its largest stress: hold steps are cut into "
        "sub-steps that keep it (0: off, the steps of the schedule only)"
    )
    newton_rtol: float = Field(
        1e-9, gt=0, lt=1, description="relative tolerance of every Newton solve (the inelastic "
        "schedule, swelling, the pull-off's cohesive interface) on its residual norm")
    max_newton_iterations: int = Field(
        30, ge=1, description="Newton iterations of one step before the step is cut")
    line_search_halvings: int = Field(
        6, ge=0, description="times a Newton increment may be halved while it does not reduce "
        "the residual norm (where none does, the length with the smallest residual is taken)")
    max_step_cuts: int = Field(
        8, ge=0, description="times a load step (temperature, SOC, pull-off displacement) may "
        "be halved where Newton fails")

    @model_validator(mode="after")
    def _check_geometry_degree(self) -> "SolverSettings":
        if self.geometry_degree > self.degree:
            raise rule_broken(
                "geometry_degree", f"must not exceed degree ({self.degree}): the displacement "
                "is written at the geometry's degree")
        return self
